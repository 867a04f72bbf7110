"""Regenerate the shipped standard-network files from their builders.

    python -m prototxt.networks.build            # rewrite lenet/alexnet/googlenet.prototxt
    python -m prototxt.networks.build --check    # exit 1 if a shipped file is stale
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from google.protobuf import text_format

from prototxt.io import atomic_write
from prototxt.networks import STANDARD_NETWORKS, build_network, network_path

HEADER = """\
# DIGITS' standard network {title!r}, generated from prototxt/networks/{name}.py by
# `python -m prototxt.networks.build`: edit the builder, not this file.
# Classifier layers without num_output get it from DIGITS (the dataset's number of classes).
"""


def render(name: str) -> str:
    """The text of standard network `name` as it is shipped."""
    net = build_network(name)
    return HEADER.format(title=net.name, name=name) + text_format.MessageToString(net)


def write(name: str, path: Path | None = None) -> Path:
    """Write network `name` atomically (temporary file in the same folder, then rename)."""
    return atomic_write(path or network_path(name), render(name).encode("utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prototxt.networks.build",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="only compare the shipped files with the builders")
    args = parser.parse_args(argv)
    stale = []
    for name in STANDARD_NETWORKS:
        path = network_path(name)
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != render(name):
                stale.append(path)
        else:
            print(f"wrote {write(name)}")
    for path in stale:
        print(f"error: {path} is stale, run python -m prototxt.networks.build", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
