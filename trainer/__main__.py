"""python -m trainer: Training from Caffe solver and network files with Caffe's semantics; DIGITS model jobs."""
from __future__ import annotations

import argparse
import sys

from prototxt.cli import command_parser, main_with_commands


def build_parser() -> argparse.ArgumentParser:
    parser, _commands = command_parser("python -m trainer", "Training from Caffe solver and network files with Caffe's semantics; DIGITS model jobs.")
    return parser


def main(argv: list[str] | None = None) -> int:
    return main_with_commands(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
