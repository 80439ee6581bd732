"""python -m ensemble: blend soft CSVs (by path, glob or run folder) into one submission. See --help."""
from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

import numpy as np

from ensemble.blending import MEANS, vote
from ensemble.blends import (
    BLENDS,
    FITTERS,
    FOLD_SEED,
    FOLDS,
    MAX_ROWS,
    BlendSettings,
    Fitted,
    OutOfFit,
    WeightedBlend,
    choose_blend,
    comparable,
    compare_blends,
)
from ensemble.gathering import REFIT_MODES, best_per_task, count_by_task, gather
from ensemble.library import Library
from ensemble.members import Member, expand, merged
from ensemble.outputs import output_frames, soft_path, write_outputs
from ensemble.selection import METRICS, Selection
from ensemble.tasks import ALL_TASKS, MULTI, TASK_CLASSES, answer_from_tasks, vote_plan
from harness.cli import run_cli
from harness.errors import UserError
from harness.metrics import DEFAULT_SELECTION_METRIC
from harness.outputs.soft_csv import read_ids

PROG = "python -m ensemble"

DESCRIPTION = """\
Blend soft CSVs into one submission (ImageID,ans).

Per task, the probability columns of its CSVs are averaged (weighted, rows
matched by ImageID), the argmax is taken, and ans = mask*6 + gender*3 + age.
18-class --multi CSVs given with per-task ones join each task's vote through
their marginal probabilities. With --multi CSVs only, ans is the argmax of
their average (any number of classes K). Each task's blend is also written
beside the output as <OUTPUT stem>_<task>_soft.csv.

Every input is checked before anything is written: a bad input ends with one
line naming the file and the problem, exit status 2, and no output files."""

EPILOG = """\
examples:
  # mask contest, per-task CSVs. Globs are expanded here (sorted), so quote
  # them; g2.csv:2 counts g2.csv twice.
  python -m ensemble --mask 'runs/mask_*/submission*_soft.csv' \\
      --gender g1.csv g2.csv:2 --age a.csv --info eval/info.csv -o sub.csv

  # 18-class models join every task's vote through their marginals (here
  # gender and age come from the multi CSVs alone), at half weight each
  python -m ensemble --mask m1.csv m2.csv \\
      --multi 'runs/multi_*/submission*_soft.csv:0.5' --mean geometric \\
      -o sub.csv

  # a plain single-label contest (K classes): multi CSVs only
  python -m ensemble --multi 'runs/*/submission*_soft.csv' -o sub.csv

  # every run of an experiment; the 5 best CSVs per task by validation score
  python -m ensemble --from nni_experiments/Xy12abCd --top_k 5 -o sub.csv

  # automatic selection on the validation CSVs, then the blend of the chosen
  python -m ensemble --from nni_experiments/Xy12abCd --select -o sub.csv

files:
  submission{epoch}_{acc}_{loss}_soft.csv  an eval soft CSV: ImageID, class
      columns 0..K-1 holding probabilities (column order and other columns
      do not matter)
  valid{epoch}_{acc}_{loss}_soft.csv  its validation pair, beside it:
      ImageID, label, 0..K-1 (used by --top_k and --select)
  <experiment>/<run>/params.json  a run folder: 'classification' gives the
      task of its soft CSVs (mask 3 classes, gender 2, age 3, multi 18 =
      mask*6 + gender*3 + age, or K in a plain contest)
"""


def comma_list(choices: Sequence[str] | None = None) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = [item.strip() for item in text.split(",") if item.strip()]
        unknown = [item for item in items if choices is not None and item not in choices]
        if unknown or not items:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(choices or ['names'])}")
        return items
    return parse


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    inputs = parser.add_argument_group("inputs (each flag takes paths or quoted globs, PATH[:WEIGHT], repeatable)")
    for task in ALL_TASKS:
        classes = f"{TASK_CLASSES[task]} classes" if task in TASK_CLASSES else "18 classes, or K for a plain contest"
        inputs.add_argument(f"--{task}", nargs="+", action="extend", default=[], metavar="PATH[:W]",
                            help=f"eval soft CSVs of {task} models ({classes}); W: a positive weight (default 1)")
    inputs.add_argument("--from", dest="roots", nargs="+", action="extend", default=[], type=Path, metavar="DIR",
                        help="gather every eval soft CSV of the run folders under DIR (one run, an experiment, or "
                             "all of nni_experiments/), grouped by task through each run's params.json")
    inputs.add_argument("--info", type=Path, metavar="PATH",
                        help="eval/info.csv: the output follows its ImageID order (default: the first CSV's, "
                             "taking --mask, --gender, --age, --multi in that order)")
    gathering = parser.add_argument_group("filters on what --from gathers")
    gathering.add_argument("--tasks", type=comma_list(ALL_TASKS), metavar="LIST",
                           help=f"tasks to take, e.g. mask,gender (default: all of {','.join(ALL_TASKS)})")
    gathering.add_argument("--models", type=comma_list(), metavar="LIST",
                           help="models to take (params.json 'model'), e.g. ecaresnet50t,efficientnet_b4")
    gathering.add_argument("--refit", choices=REFIT_MODES, default="replace",
                           help="a refit run (trial.py --refit) uses its source's validation CSV: replace (default) "
                                "puts its eval CSV in place of the source's for that epoch, add keeps both, ignore "
                                "leaves refits out")
    gathering.add_argument("--top_k", type=positive_int, metavar="K",
                           help="per task, the K eval CSVs whose validation pair scores best (--metric); a CSV "
                                "without a validation pair ranks after all that have one (a note says so)")
    voting = parser.add_argument_group("voting")
    voting.add_argument("--mean", choices=MEANS, default="arithmetic",
                        help="average probabilities (default), or their geometric mean; renormalised per row")
    voting.add_argument("--softmax", action="store_true",
                        help="the inputs hold logits: apply a row softmax to each CSV first")
    voting.add_argument("--select", action="store_true",
                        help="choose members and weights by greedy forward selection with replacement (Caruana et "
                             "al., ICML 2004) on the validation CSVs, per task; every eval CSV needs its valid pair")
    voting.add_argument("--rounds", type=positive_int, default=25, metavar="N",
                        help="selection rounds (default 25); the best-scoring prefix is kept")
    voting.add_argument("--metric", choices=tuple(METRICS), default=DEFAULT_SELECTION_METRIC,
                        help=f"validation score for --select and --top_k (default {DEFAULT_SELECTION_METRIC}; "
                             f"python -m harness.report --select_metric takes the same names and default)"),
    voting.add_argument("--blend", choices=(*BLENDS, "best"),
                        help="with --select: fit caruana (the selection), weights (weights optimised on the "
                             "validation log-loss) and stack (a logistic regression on the members' probabilities), "
                             f"print their out-of-fit scores ({FOLDS}-fold over the validation rows), and blend the "
                             "eval CSVs with the one named, or with the best of them out of fit (best); without it, "
                             "--select is caruana alone (about 20 times faster)")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUTPUT",
                        help="submission CSV to write (ImageID,ans)")
    return parser


def check_flags(args: argparse.Namespace) -> None:
    if not args.roots and (args.tasks or args.models or args.top_k):
        raise UserError("--tasks, --models and --top_k filter what --from gathers: give --from DIR too")
    if args.blend is not None and not args.select:
        raise UserError(f"--blend {args.blend} fits a blend on the validation CSVs: give --select too")


def explicit_members(args: argparse.Namespace) -> list[Member]:
    members = [member for task in ALL_TASKS for argument in getattr(args, task) for member in expand(argument, task)]
    if args.select and any(member.weight != 1 for member in members):
        raise UserError("weights (PATH:W) cannot be combined with --select: the selection sets the weights")
    return members


def gathered_members(args: argparse.Namespace, library: Library) -> list[Member]:
    members = gather(args.roots, args.tasks, args.models, args.refit)
    where = ", ".join(map(str, args.roots))
    if not members:
        raise UserError(f"{where}: no eval soft CSVs (submission{{epoch}}_..._soft.csv) in the runs that pass "
                        f"the filters (given to --from)")
    print(f"gathered {len(members)} eval CSVs from {len({m.path.parent for m in members})} runs under {where}: "
          f"{count_by_task(members)}")
    if not args.top_k:
        return members
    scores = [library.valid_score(member, args.metric) for member in members]
    kept = best_per_task(members, scores, args.top_k)
    print(f"--top_k {args.top_k}: kept {count_by_task(kept)}, the best by validation {args.metric}")
    unscored = [member for member, score in zip(members, scores) if score is None]
    if unscored:
        print(f"note: {len(unscored)} CSVs have no validation pair and rank last for --top_k "
              f"(e.g. {unscored[0].name}); {sum(m in kept for m in unscored)} of them kept")
    return kept


def plan_summary(plan: dict[str, list[Member]], mean: str) -> str:
    """'blending (arithmetic mean): mask 4 + 1 multi, gender 1 + 1 multi, age 1 + 1 multi'"""
    def count(task: str, members: list[Member]) -> str:
        multi = sum(m.task != task for m in members)
        return f"{task} {len(members) - multi}" + (f" + {multi} multi" if multi else "")
    return f"blending ({mean} mean): " + ", ".join(count(task, members) for task, members in plan.items())


def selection_report(task: str, members: Sequence[Member], selection: Selection, metric: str) -> str:
    best = members[selection.best_single]
    lines = [f"{task}: ensemble {metric} {selection.score:.4f} vs best single {selection.single_scores.max():.4f} "
             f"({best.name}); {int((selection.counts > 0).sum())} members, {selection.rounds} picks"]
    for i in np.argsort(-selection.counts, kind="stable")[: int((selection.counts > 0).sum())]:
        via = " (multi, marginals)" if members[i].task != task else ""
        lines.append(f"  {selection.counts[i]:>3}/{selection.rounds}  {members[i].name}{via}")
    return "\n".join(lines)


def comparison_report(task: str, scores: dict[str, OutOfFit], chosen: str, rows: int, args: argparse.Namespace
                      ) -> str:
    """The three blends side by side, scored on rows they were not fitted on."""
    if not scores:
        return (f"{task}: blends not compared out of fit ({rows} validation rows, where it takes {2 * FOLDS} to "
                f"{MAX_ROWS}): {chosen}")
    lines = [f"{task}: blends out of fit ({FOLDS}-fold over {rows} validation rows, fold seed {FOLD_SEED}): "
             f"{args.metric} / log-loss"]
    for name, score in scores.items():
        used = f"  <- used (--blend {args.blend})" if name == chosen else ""
        lines.append(f"  {name:<8} {score.score:.4f} / {score.log_loss:.4f}{used}")
    return "\n".join(lines)


def blend_report(task: str, members: Sequence[Member], fitted: Fitted, metric: str) -> str:
    """What the chosen blend, refitted on every validation row, does with the members."""
    if isinstance(fitted, WeightedBlend) and fitted.selection is not None:
        return selection_report(task, members, fitted.selection, metric)
    if isinstance(fitted, WeightedBlend):
        lines = [f"{task}: optimised weights, {sum(w > 0 for w in fitted.weights)} members"]
        for i in np.argsort(-np.asarray(fitted.weights), kind="stable")[:sum(w > 0 for w in fitted.weights)]:
            lines.append(f"  {fitted.weights[i]:.3f}  {members[i].name}")
        return "\n".join(lines)
    lines = [f"{task}: stacking, a logistic regression on the log-probabilities of {len(fitted.members)} members"]
    return "\n".join(lines + [f"  {members[i].name}" for i in fitted.members])


def selected_blends(plan: dict[str, list[Member]], library: Library, args: argparse.Namespace) -> dict[str, Fitted]:
    """Caruana's selection per task; with --blend, the three blends compared out of fit and the named one."""
    print(f"selection on validation ({args.metric}, {args.rounds} rounds, {args.mean} mean):")
    settings = BlendSettings(args.metric, args.rounds, args.mean)
    fitted = {}
    for task, members in plan.items():
        probs, labels = library.valid_votes(members, task)
        num_classes = probs[0].shape[1]
        compared = args.blend is not None and comparable(len(labels))
        scores = compare_blends(probs, labels, num_classes, settings) if compared else {}
        chosen = choose_blend(scores, args.blend or "caruana")
        fitted[task] = FITTERS[chosen](probs, labels, num_classes, settings)
        if args.blend is not None:
            print(comparison_report(task, scores, chosen, len(labels), args))
        print(blend_report(task, members, fitted[task], args.metric))
    return fitted


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_flags(args)
    library = Library(apply_softmax=args.softmax)
    members = explicit_members(args) + (gathered_members(args, library) if args.roots else [])
    by_task = {task: [m for m in members if m.task == task] for task in ALL_TASKS}
    plan = {task: merged(voters) for task, voters in vote_plan(by_task).items()}
    library.fix_multi_classes(by_task[MULTI], combined=MULTI not in plan)

    first = next(m for voters in by_task.values() for m in voters)
    order, reference = (read_ids(args.info), args.info) if args.info else (library.eval_csv(first).ids, first.path)
    # Reading every eval CSV before selecting means a bad file fails the run even when selection would drop it.
    votes = {task: library.eval_votes(voters, task, order, reference) for task, voters in plan.items()}
    if args.select:
        fitted = selected_blends(plan, library, args)
    else:
        print(plan_summary(plan, args.mean))
        fitted = {task: WeightedBlend(tuple(m.weight for m in voters), args.mean) for task, voters in plan.items()}

    blended = {task: fitted[task].combine(votes[task]) for task in plan}
    answer = vote(blended[MULTI]) if MULTI in blended else answer_from_tasks({t: vote(p) for t, p in blended.items()})
    frames = output_frames(args.output, order, blended, answer)
    write_outputs(frames, protected=[*library.paths_read, *([args.info] if args.info else [])])
    print(f"wrote {args.output} ({len(order)} rows) and {', '.join(soft_path(args.output, t).name for t in plan)}")
    return 0


def run(argv: Sequence[str] | None = None) -> NoReturn:
    """The console entry point: a UserError becomes one line on stderr and exit status 2."""
    run_cli(lambda: main(argv), PROG)
