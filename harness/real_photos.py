"""python -m harness.real_photos: lay out a real labelled photo set from a public repository's snapshot (see
harness/data/real_photos.py for the sets, what is skipped and what the output holds).

    python -m harness.real_photos --source PATH --out data/real/NAME [--set NAME] [--heldout 0.2] [--seed 0]"""
from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli import run_cli
from harness.data import real_photos
from harness.data.real_photos import PROG, SETS, lay_out


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1 (both excluded), got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=real_photos.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, required=True, help="a git clone, a folder or a bare git directory")
    parser.add_argument("--out", type=Path, required=True, help="folder to (re)write, e.g. data/real/face-mask")
    parser.add_argument("--set", choices=sorted(SETS), default=None,
                        help="which set to read (default: the first whose folder the source has)")
    parser.add_argument("--heldout", type=fraction, default=0.2, help="part of each class held out as eval/")
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out draw")
    args = parser.parse_args(argv)
    lay_out(args.source, args.out, args.set, args.heldout, args.seed)
    return 0


if __name__ == "__main__":
    run_cli(main, PROG)
