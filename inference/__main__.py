"""python -m inference --help"""
from __future__ import annotations

import argparse
import sys

from prototxt.cli import add_common_flags, run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m inference", description="ONNX Runtime classification: command line and a draw-a-digit web app.")
    add_common_flags(parser)
    parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()

    def dispatch(args: argparse.Namespace) -> int:
        if getattr(args, "func", None) is None:
            parser.print_help()
            return 2
        return args.func(args)

    return run(dispatch, parser, argv)


if __name__ == "__main__":
    sys.exit(main())
