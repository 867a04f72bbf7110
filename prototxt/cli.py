"""Command-line plumbing shared by every package: `error: <what>, <where>, <what to do>`,
a non-zero exit, and no traceback unless --debug."""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Callable

from .errors import PrototxtError


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1, or a one-line usage error."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return value


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")


def run(main: Callable[[argparse.Namespace], int], parser: argparse.ArgumentParser,
        argv: list[str] | None = None, errors: tuple[type[BaseException], ...] = ()) -> int:
    """Parse `argv`, run `main(args)` and turn the package's own errors into one clear line."""
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.debug else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    previous = _terminate_like_ctrl_c()
    try:
        return main(args)
    except (PrototxtError, OSError, ValueError, *errors) as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Terminated:
        print("error: terminated (SIGTERM)", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM (timeout, docker stop, Slurm) raised where the program is, as Ctrl-C is, so that
    the same clean-up runs (temporary folders removed, pools stopped); the exit status is 143.
    Commands with a gentler stop (trainer run: finish the iteration, snapshot) install their own
    handler while they run."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated


def _terminate_like_ctrl_c():
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


def command_parser(prog: str, description: str) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    """A package's top-level parser with the common flags and a place for its commands.

    Each command's sub-parser sets `func=callable(args) -> int` (see prototxt/__main__.py).
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_common_flags(parser)
    commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    return parser, commands


def main_with_commands(parser: argparse.ArgumentParser, argv: list[str] | None = None,
                       errors: tuple[type[BaseException], ...] = ()) -> int:
    """Run the chosen command; with none, print the help and exit 2."""
    def dispatch(args: argparse.Namespace) -> int:
        if getattr(args, "func", None) is None:
            parser.print_help()
            return 2
        return args.func(args)

    return run(dispatch, parser, argv, errors)
