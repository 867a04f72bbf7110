"""`redigits`: every package command is reachable, routed to the package's own main unchanged,
new commands appear without an edit, and redigits' own errors are one line."""
from __future__ import annotations

import argparse
import configparser
import sys
import types
from importlib.metadata import version
from pathlib import Path

import pytest

import redigits
from redigits import cli

REPO = Path(__file__).resolve().parents[2]


def _run(capsys, argv) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_every_package_command_has_a_redigits_name():
    routed = {(c.package, c.target): c for c in cli.iter_commands()}
    for package in cli.PACKAGES:
        names = [name for name, _ in cli.package_commands(package.module)]
        assert names, package.module
        for name in names:
            command = routed.get((package.module, name))
            assert command is not None, f"python -m {package.module} {name} has no redigits name"
            if package.group:
                assert command.words == (package.group, name)
            else:   # the first word alone reaches it
                assert cli.resolve(command.words[0]) == (package.module, [name])
                for alias in command.aliases:
                    assert cli.resolve(alias) == (package.module, [name])


def test_the_names_a_digits_user_guesses():
    assert cli.resolve("dataset") == ("lmdb_builder", [])
    assert cli.resolve("new") == ("trainer", ["new"])
    assert cli.resolve("train") == ("trainer", ["run"])
    assert cli.resolve("run") == ("trainer", ["run"])
    assert cli.resolve("time") == ("trainer", ["time"])
    assert cli.resolve("export") == ("converter", ["onnx"])
    assert cli.resolve("onnx") == ("converter", ["onnx"])
    assert cli.resolve("layers") == ("converter", ["layers"])
    assert cli.resolve("classify") == ("inference", ["classify"])
    assert cli.resolve("serve") == ("inference", ["serve"])
    assert cli.resolve("bench") == ("inference", ["bench"])
    assert cli.resolve("check") == ("prototxt", ["check"])
    assert cli.resolve("upgrade") == ("prototxt", ["upgrade"])
    for package in cli.PACKAGES:                       # `redigits trainer run ...`
        assert cli.resolve(package.module) == (package.module, [])


def test_help_is_the_packages_own(capsys):
    code, out, _ = _run(capsys, ["train", "--help"])
    assert code == 0
    with pytest.raises(SystemExit) as exc:
        cli.package_main("trainer").main(["run", "--help"])
    assert exc.value.code == 0
    assert out == capsys.readouterr().out and "--max-iter" in out
    code, out, _ = _run(capsys, ["help", "dataset", "mnist"])
    assert code == 0 and "--mnist-dir" in out and "--limit" in out


def test_top_level_help_lists_every_command(capsys):
    code, out, _ = _run(capsys, ["--help"])
    assert code == 0
    for command in cli.iter_commands():
        assert f"  {' '.join(command.words)} " in out, command
    code, _, err = _run(capsys, [])
    assert code == 2 and "usage: redigits" in err


def test_version_is_the_distributions(capsys):
    code, out, _ = _run(capsys, ["--version"])
    assert code == 0 and out == f"redigits {version('redigits')}\n"
    assert redigits.__version__ == version("redigits")


def test_a_real_command_and_the_shared_flags(capsys, seed_job):
    solver = str(seed_job / "solver.prototxt")
    code, out, _ = _run(capsys, ["check", solver])
    assert code == 0 and out.startswith(f"{solver}: solver type SGD")
    missing = str(seed_job / "no-such.prototxt")
    code, _, err = _run(capsys, ["check", missing])
    assert code == 2 and err.startswith(f"error: {missing}: no such file")
    with pytest.raises(Exception, match="no such file"):   # --debug reaches the package
        cli.main(["--debug", "check", missing])


def test_usage_errors_are_one_line(capsys):
    code, out, err = _run(capsys, ["trian"])
    assert code == 2 and out == ""
    assert err == ("error: unknown command 'trian', redigits, did you mean train or trainer? "
                   "run redigits --help for the list\n")
    code, _, err = _run(capsys, ["verify"])
    assert code == 2 and "did you mean dataset verify?" in err
    code, _, err = _run(capsys, ["--max-iter", "3", "train"])
    assert code == 2 and err.startswith("error: unknown option '--max-iter', redigits,")
    code, _, err = _run(capsys, ["train", "solver.prototxt", "--no-such-flag"])
    assert code == 2 and "unrecognized arguments: --no-such-flag" in err   # the package's own


def _fake_package(monkeypatch, module: str, commands: list[str]) -> list[list[str]]:
    """A package `module` whose command line has `commands`; returns the argv its main saw."""
    seen: list[list[str]] = []

    def build_parser():
        parser = argparse.ArgumentParser(prog=f"python -m {module}")
        sub = parser.add_subparsers(dest="command")
        for name in commands:
            sub.add_parser(name, help=f"{module}'s {name}", aliases=[f"{name}-alias"])
        return parser

    def main(argv):
        seen.append(list(argv))
        return 7

    fake = types.ModuleType(f"{module}.__main__")
    fake.build_parser, fake.main = build_parser, main
    monkeypatch.setitem(sys.modules, module, types.ModuleType(module))
    monkeypatch.setitem(sys.modules, f"{module}.__main__", fake)
    return seen


def test_new_commands_appear_and_the_first_package_keeps_a_name(monkeypatch, capsys):
    first = _fake_package(monkeypatch, "fakefirst", ["watch", "inspect", "run"])
    second = _fake_package(monkeypatch, "fakesecond", ["inspect", "read"])
    monkeypatch.setattr(cli, "PACKAGES", (
        cli.Package("fakefirst", "first", renames={"run": "train"}),
        cli.Package("fakesecond", "second")))
    words = {c.words: (c.package, c.target, c.aliases) for c in cli.iter_commands()}
    assert words == {("watch",): ("fakefirst", "watch", ()),
                     ("inspect",): ("fakefirst", "inspect", ()),
                     ("train",): ("fakefirst", "run", ("run",)),
                     ("read",): ("fakesecond", "read", ())}   # argparse aliases not listed
    assert cli.main(["-q", "watch", "JOB", "--port", "0"]) == 7
    assert cli.main(["train", "x"]) == 7 and cli.main(["read"]) == 7
    assert cli.main(["fakesecond", "inspect", "--deep"]) == 7       # the shadowed one
    assert first == [["-q", "watch", "JOB", "--port", "0"], ["run", "x"]]
    assert second == [["read"], ["inspect", "--deep"]]
    out = _run(capsys, ["--help"])[1]
    assert "  watch " in out and "fakesecond's read" in out and "fakesecond's inspect" not in out


def test_setup_cfg_installs_the_console_script():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    scripts = cfg["options.entry_points"]["console_scripts"].split("\n")
    assert "redigits = redigits.cli:main" in [s.strip() for s in scripts]
    include = cfg["options.packages.find"]["include"].split()
    for package in ("redigits", *(p.module for p in cli.PACKAGES)):
        assert package in include
