"""The ``driftd`` command."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="driftd", description="Drift and decay monitoring for deployed ML models.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the detectors on a generated stream with known changes")
    demo.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.command == "demo":
        from . import demo as demo_module

        demo_module.run(seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
