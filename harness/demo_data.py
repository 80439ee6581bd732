"""python -m harness.demo_data: write the synthetic demo data set (see harness/data/demo.py for what it holds).

    python -m harness.demo_data --out data/demo [--people 120] [--eval 300] [--size 384x512] [--seed 0]"""
from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli import run_cli
from harness.data import demo


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, e.g. 384x512, got {text!r}") from None
    if width < 32 or height < 32:
        raise argparse.ArgumentTypeError(f"size must be at least 32x32, got {text!r}")
    return width, height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.demo_data", description=demo.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/demo"), help="folder to (re)write")
    parser.add_argument("--people", type=int, default=120, help="people in train/ (7 photos each)")
    parser.add_argument("--eval", type=int, default=300, help="images in eval/")
    parser.add_argument("--size", type=parse_size, default=(384, 512), help="WIDTHxHEIGHT of every photo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jpeg_only", action="store_true", help="every photo a .jpg (no mixed extensions)")
    args = parser.parse_args(argv)
    demo.generate(args.out, args.people, args.eval, *args.size, seed=args.seed, jpeg_only=args.jpeg_only)
    print(f"wrote a demo data set to {args.out}: {args.people} people x 7 photos, {args.eval} eval images")
    return 0


if __name__ == "__main__":
    run_cli(main, "python -m harness.demo_data")
