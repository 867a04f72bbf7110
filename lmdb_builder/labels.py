"""Labels a classifier cannot take: negative ones, and with the dataset's labels.txt (DIGITS'
dataset folder) any label >= its number of lines. `verify` reports them by key, since the trainer
stops on the first one it meets (and torch alone said only "index 99 is out of bounds").
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .datum import parse_datum
from .errors import BuilderError
from .folders import read_labels
from .reader import DatumDB


@dataclass
class LabelReport:
    path: Path
    classes: int | None                      # lines of labels.txt, None without one
    records: int = 0
    outside: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))  # label -> keys

    @property
    def bad(self) -> int:
        return sum(len(keys) for keys in self.outside.values())


def check_labels(db: str | Path, classes: int | None) -> LabelReport:
    """Every record's label against [0, classes) (only >= 0 when classes is None). Records that
    do not parse are left to the decode check."""
    report = LabelReport(Path(db), classes)
    with DatumDB(db) as reader:
        for key, value in reader.items():
            name = bytes(key).decode(errors="replace")
            try:
                label = parse_datum(bytes(value), name).label
            except BuilderError:
                continue
            report.records += 1
            if label < 0 or (classes is not None and label >= classes):
                report.outside[int(label)].append(name)
    return report


def describe_labels(report: LabelReport, max_report: int = 10) -> list[str]:
    """The lines `verify` prints: one per label value outside the range, with its keys."""
    span = (f"0 to {report.classes - 1} ({report.classes} labels in labels.txt)"
            if report.classes is not None else "0 or more (no labels.txt beside the database)")
    lines = []
    for label in sorted(report.outside):
        keys = report.outside[label]
        shown = ", ".join(keys[:max_report]) + (f", ... ({len(keys) - max_report} more)"
                                                if len(keys) > max_report else "")
        lines.append(f"  label {label} outside {span}: {len(keys)} record(s): {shown}")
    return lines


def report_labels(db: Path, result, max_report: int = 10) -> int:
    """Print the label problems of a database `verify_db` read whole (`result`); return how many
    records have one. A database that verify found damaged is not read again here."""
    if getattr(result, "damage", None) is not None:
        return 0
    labels = db.parent / "labels.txt"
    report = check_labels(db, len(read_labels(labels)) if labels.is_file() else None)
    for line in describe_labels(report, max_report):
        print(line)
    return report.bad
