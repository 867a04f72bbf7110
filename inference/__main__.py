"""python -m inference: ONNX Runtime classification: command line and a draw-a-digit web app."""
from __future__ import annotations

import argparse
import sys

from prototxt.cli import command_parser, main_with_commands


def build_parser() -> argparse.ArgumentParser:
    parser, _commands = command_parser("python -m inference", "ONNX Runtime classification: command line and a draw-a-digit web app.")
    return parser


def main(argv: list[str] | None = None) -> int:
    return main_with_commands(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
