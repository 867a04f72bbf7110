"""`redigits COMMAND ...`: the five packages' commands under one name.

Every command is handed to its package's own command line, `<package>.__main__.main(argv)`, with
the arguments untouched: `python -m <package>` keeps working, no option is declared twice, and a
command a package adds shows up here without an edit. Only the names are chosen here:

| package | redigits commands | why |
|---|---|---|
| lmdb_builder | `dataset mnist`, `dataset folder`, `dataset list`, `dataset inspect`, ... | one group: DIGITS' "New Dataset"; `list` or `verify` alone would not say of what |
| trainer | `new`, `train` (its `run`), `time`, and whatever it adds | DIGITS' "New Model"; `train` is the word DIGITS, Caffe and PyTorch users reach for |
| converter | `export` (its `onnx`), `shapes`, `layers` | DIGITS' "Download Model" became an export |
| inference | `classify`, `classify-many`, `bench`, `serve`, and whatever it adds | DIGITS' Classify One / Many |
| prototxt | `check`, `split`, `upgrade` | Caffe's own file tools |

A renamed command also answers to its package name (`redigits run`, `redigits onnx`) while no
other command takes it. Top-level names are claimed in the order of the table below: a package
command whose name is already taken is reached, like every command, as `redigits <package>
<command>` (`redigits trainer run ...` is `python -m trainer run ...`).

The flags the packages share (`--debug`, `-q`) may come before the command and are passed on.
"""
from __future__ import annotations

import argparse
import difflib
import importlib
import sys
from dataclasses import dataclass, field
from types import MappingProxyType, ModuleType
from typing import Iterator, Mapping, Sequence

from . import __version__

PROG = "redigits"
SHARED_FLAGS = ("--debug", "-q", "--quiet")   # prototxt.cli.add_common_flags, in every package


@dataclass(frozen=True)
class Package:
    """One package's place in `redigits`: under a group word, or at the top level (renamed where
    its own name is not what a DIGITS or PyTorch user would type)."""
    module: str
    title: str
    group: str | None = None
    renames: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


PACKAGES: tuple[Package, ...] = (
    Package("lmdb_builder", "datasets: MNIST, image folders and list files into DIGITS' LMDB",
            group="dataset"),
    Package("trainer", "model jobs and training with Caffe's solver semantics",
            renames=MappingProxyType({"run": "train"})),
    Package("converter", "Caffe nets in PyTorch, ONNX export",
            renames=MappingProxyType({"onnx": "export"})),
    Package("inference", "classification and serving with ONNX Runtime"),
    Package("prototxt", "Caffe files: check, split, upgrade"),
)


@dataclass(frozen=True)
class Command:
    """A redigits command: the words typed after `redigits` and where they go."""
    words: tuple[str, ...]        # ("train",) or ("dataset", "mnist")
    package: str                  # "trainer"
    target: str                   # the package's own command name: "run"
    help: str
    aliases: tuple[str, ...] = ()

    @property
    def same_as(self) -> str:
        return f"python -m {self.package} {self.target}"


class UsageError(Exception):
    """A redigits-level mistake (unknown command or flag), printed as one `error:` line."""


def package_main(module: str) -> ModuleType:
    """`<module>.__main__`, which every package gives `build_parser()` and `main(argv) -> int`."""
    return importlib.import_module(f"{module}.__main__")


def package_commands(module: str) -> list[tuple[str, str]]:
    """(name, help) of each command of `python -m <module>`, in the order its parser lists them;
    a command's argparse aliases are left out (they reach the same parser)."""
    parser = package_main(module).build_parser()
    # argparse offers no public way to list sub-commands: the _SubParsersAction holds them.
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if len(actions) != 1:
        raise RuntimeError(f"python -m {module}: expected one set of sub-commands in its "
                           f"build_parser(), found {len(actions)}")
    helps = {a.dest: a.help or "" for a in actions[0]._choices_actions}
    seen, out = set(), []
    for name, sub in actions[0].choices.items():
        if id(sub) not in seen:
            seen.add(id(sub))
            out.append((name, helps.get(name, "")))
    return out


def _reserved() -> set[str]:
    """Names that are never a package command's: groups, package names, renames, `help`."""
    names = {"help"}
    for p in PACKAGES:
        names.add(p.module)
        names.update(p.renames.values())
        if p.group:
            names.add(p.group)
    return names


def iter_commands() -> Iterator[Command]:
    """Every routed command, package by package (importing each package's command line only
    when the walk reaches it). Commands shadowed by an earlier package are not yielded."""
    reserved, taken = _reserved(), set()
    for p in PACKAGES:
        for name, help_text in package_commands(p.module):
            if p.group:
                yield Command((p.group, name), p.module, name, help_text)
                continue
            if name in p.renames:
                new = p.renames[name]
                alias = () if name in reserved or name in taken else (name,)
                taken.update((new, *alias))
                yield Command((new,), p.module, name, help_text, alias)
            elif name not in reserved and name not in taken:
                taken.add(name)
                yield Command((name,), p.module, name, help_text)


def resolve(word: str) -> tuple[str, list[str]]:
    """(package, the package's argv prefix) for the first word after `redigits`."""
    for p in PACKAGES:
        if word == p.module or word == p.group:
            return p.module, []
        for old, new in p.renames.items():
            if word == new:
                return p.module, [old]
    for command in iter_commands():
        if word in command.words[:1] + command.aliases and len(command.words) == 1:
            return command.package, [command.target]
    commands = list(iter_commands())
    grouped = [" ".join(c.words) for c in commands if c.words[-1] == word]
    names = sorted({c.words[0] for c in commands} | _reserved())
    close = grouped or difflib.get_close_matches(word, names, n=3)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise UsageError(f"unknown command {word!r}, {PROG}, {hint}run {PROG} --help for the list")


def help_text() -> str:
    """`redigits --help`: every command with its package help line and what it runs."""
    commands = list(iter_commands())
    width = max(len(" ".join(c.words) + (f" ({', '.join(c.aliases)})" if c.aliases else ""))
                for c in commands) + 2
    lines = [
        f"usage: {PROG} [--debug] [-q] COMMAND [ARGS...]",
        f"       {PROG} --version | --help | help COMMAND",
        "",
        "NVIDIA DIGITS' Caffe workflow on PyTorch and ONNX. Each command is one package's own",
        f"command line, unchanged ({PROG} train ... is python -m trainer run ...);",
        f"`{PROG} COMMAND --help` shows its options.",
    ]
    for p in PACKAGES:
        lines += ["", f"{p.title} (python -m {p.module}):"]
        for c in (c for c in commands if c.package == p.module):
            name = " ".join(c.words) + (f" ({', '.join(c.aliases)})" if c.aliases else "")
            renamed = c.words[-1] != c.target and c.target not in c.aliases
            same = f" [= {c.same_as}]" if renamed else ""
            lines.append(f"  {name:<{width}}{c.help}{same}")
    lines += [
        "",
        "options:",
        "  -h, --help     this list",
        "  --version      print the installed version",
        "  --debug        (before COMMAND) tracebacks and debug logs",
        "  -q, --quiet    (before COMMAND) warnings and errors only",
        "",
        f"Every package also answers to its own name: {PROG} PACKAGE COMMAND ... is",
        f"python -m PACKAGE COMMAND ... ({', '.join(p.module for p in PACKAGES)}).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """The `redigits` console script: route to a package's main; return its exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    shared: list[str] = []
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        if flag in ("-h", "--help"):
            sys.stdout.write(help_text())
            return 0
        if flag == "--version":
            print(f"{PROG} {__version__}")
            return 0
        if flag not in SHARED_FLAGS:
            print(f"error: unknown option {flag!r}, {PROG}, put a command's own options after "
                  f"the command (run {PROG} --help)", file=sys.stderr)
            return 2
        shared.append(flag)
    if not args:
        sys.stderr.write(help_text())
        return 2
    word, rest = args[0], args[1:]
    if word == "help":
        if not rest:
            sys.stdout.write(help_text())
            return 0
        word, rest = rest[0], [*rest[1:], "--help"]
    try:
        module, prefix = resolve(word)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return package_main(module).main([*shared, *prefix, *rest])
    except SystemExit as exc:   # argparse's --help (0) and usage errors (2)
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
