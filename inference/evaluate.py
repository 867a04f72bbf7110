"""DIGITS' "Classify Many": a list of `path label` lines -> top-1 / top-k accuracy and the
confusion matrix.

The list is parsed as lmdb_builder reads DIGITS' text-file lists (regex `(.+)\\s+(\\d+)\\s*$`);
relative paths are taken from the list file's folder, or from `root` when given (e.g. the
folder DIGITS' MNIST downloader filled, for lmdb_builder's train.txt / val.txt / test.txt, whose
paths are `train/<label>/<index:05d>.png`). An image that cannot be read is reported and left
out of the scores (DIGITS skipped it too).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lmdb_builder.folders import parse_list_file

from .classifier import Classifier
from .errors import BadImageError, InferenceError


class _Bar(tqdm):
    """No monitor thread: it would outlive the run and make later forks unsafe."""
    monitor_interval = 0


@dataclass
class Evaluation:
    labels: list[str]
    top: int
    count: int = 0
    top1_correct: int = 0
    topk_correct: int = 0
    confusion: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64))  # [true, predicted]
    failed: list[tuple[str, str]] = field(default_factory=list)   # (path, why)

    @property
    def top1(self) -> float:
        return self.top1_correct / self.count if self.count else 0.0

    @property
    def topk(self) -> float:
        return self.topk_correct / self.count if self.count else 0.0

    def per_class(self) -> list[float | None]:
        """Recall per true class (None where the list has no image of it)."""
        totals = self.confusion.sum(axis=1)
        return [float(self.confusion[i, i] / t) if t else None for i, t in enumerate(totals)]

    def as_dict(self) -> dict:
        return {"count": self.count, "top1_accuracy": self.top1, f"top{self.top}_accuracy": self.topk,
                "labels": self.labels, "confusion_matrix": self.confusion.tolist(),
                "per_class_accuracy": self.per_class(),
                "failed": [{"path": p, "error": e} for p, e in self.failed]}

    def table(self) -> str:
        """DIGITS' summary and confusion matrix as text (rows: true class, columns: predicted)."""
        lines = [f"{self.count} images: top-1 accuracy {100 * self.top1:.2f} %, "
                 f"top-{self.top} accuracy {100 * self.topk:.2f} %"
                 + (f" ({len(self.failed)} could not be read)" if self.failed else "")]
        width = max([5, *(len(label) for label in self.labels), len(str(self.confusion.max(initial=0)))])
        lines.append("confusion matrix (rows: true, columns: predicted)")
        lines.append(" " * width + " " + " ".join(f"{label:>{width}}" for label in self.labels)
                     + "  accuracy")
        for label, row, acc in zip(self.labels, self.confusion, self.per_class()):
            shown = "-" if acc is None else f"{100 * acc:.2f} %"
            lines.append(f"{label:>{width}} " + " ".join(f"{v:>{width}}" for v in row) + f"  {shown:>8}")
        return "\n".join(lines)


def read_list(list_file: str | os.PathLike, root: str | os.PathLike | None,
              num_labels: int) -> list[tuple[str, int]]:
    """(path, label) pairs; relative paths from `root`, else from the list file's folder."""
    base = Path(root) if root is not None else Path(list_file).resolve().parent
    return [(entry.name, entry.label)
            for entry in parse_list_file(list_file, base, num_labels or None)]


def evaluate(classifier: Classifier, items: list[tuple[str, int]], top: int = 5,
             batch_size: int = 64, progress: bool | None = None, workers: int = 4) -> Evaluation:
    """Classify every (path, label) and score; images are loaded on `workers` threads."""
    classes = len(classifier.labels) or int(classifier.probabilities(
        np.zeros((1, *classifier.info.input_shape), np.float32)).shape[1])
    labels = classifier.labels or [str(i) for i in range(classes)]
    result = Evaluation(labels, top, confusion=np.zeros((classes, classes), np.int64))
    bar = _Bar(total=len(items), unit="img", disable=None if progress is None else not progress,
               desc="classifying")

    def load(item: tuple[str, int]):
        try:
            return classifier.preprocess(item[0]), item
        except (BadImageError, InferenceError) as exc:
            return exc, item

    with ThreadPoolExecutor(max(1, workers)) as pool:
        for start in range(0, len(items), batch_size):
            loaded = list(pool.map(load, items[start:start + batch_size]))
            good = [(x, item) for x, item in loaded if isinstance(x, np.ndarray)]
            result.failed += [(item[0], str(x)) for x, item in loaded if not isinstance(x, np.ndarray)]
            if good:
                probs = classifier.probabilities(np.stack([x for x, _ in good]))
                for p, (_, (_, label)) in zip(probs, good):
                    if label >= classes:
                        raise InferenceError(f"label {label} is out of range for the model's "
                                             f"{classes} classes")
                    ranked = np.argsort(-p, kind="stable")
                    result.count += 1
                    result.top1_correct += int(ranked[0] == label)
                    result.topk_correct += int(label in ranked[:top])
                    result.confusion[label, ranked[0]] += 1
            bar.update(len(loaded))
    bar.close()
    return result
