"""Connected components of a binary mask (8-connected), by runs and union-find, in NumPy.

Each row's runs of ink are found with np.diff; a run joins every run of the row above that
overlaps it or touches it diagonally (columns [a-1, b] against [c, d)). The work is linear in
the number of runs, which a page of handwriting keeps in the tens of thousands.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Component:
    top: int
    left: int
    mask: np.ndarray        # h x w bool, the component's own pixels in its box

    @property
    def bottom(self) -> int:
        return self.top + self.mask.shape[0]

    @property
    def right(self) -> int:
        return self.left + self.mask.shape[1]

    @property
    def height(self) -> int:
        return self.mask.shape[0]

    @property
    def width(self) -> int:
        return self.mask.shape[1]

    @property
    def area(self) -> int:
        return int(self.mask.sum())


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, start, end) of every horizontal run of True, in row-major order."""
    padded = np.zeros((mask.shape[0], mask.shape[1] + 2), np.int8)
    padded[:, 1:-1] = mask
    edges = np.diff(padded, axis=1)
    rows_s, starts = np.nonzero(edges == 1)
    _, ends = np.nonzero(edges == -1)
    return rows_s, starts, ends


def components(mask: np.ndarray, max_runs: int | None = None) -> list[Component]:
    """The 8-connected components of `mask`, ordered by their first pixel (row-major)."""
    rows, starts, ends = _runs(mask)
    n = len(rows)
    if max_runs is not None and n > max_runs:
        raise OverflowError(n)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    row_first = np.searchsorted(rows, np.arange(mask.shape[0] + 1))
    for r in range(1, mask.shape[0]):
        a0, a1 = row_first[r - 1], row_first[r]      # runs of the row above
        b0, b1 = row_first[r], row_first[r + 1]
        i = a0
        for j in range(b0, b1):
            s, e = starts[j] - 1, ends[j] + 1       # diagonal neighbours count
            while i < a1 and ends[i] <= s:
                i += 1
            k = i
            while k < a1 and starts[k] < e:
                ri, rj = find(k), find(j)
                if ri != rj:
                    parent[max(ri, rj)] = min(ri, rj)
                k += 1
    roots = np.array([find(i) for i in range(n)], dtype=np.int64)
    out: list[Component] = []
    if n == 0:
        return out
    order = np.argsort(roots, kind="stable")
    splits = np.flatnonzero(np.diff(roots[order])) + 1
    for group in np.split(order, splits):
        r, s, e = rows[group], starts[group], ends[group]
        top, left = int(r.min()), int(s.min())
        box = np.zeros((int(r.max()) - top + 1, int(e.max()) - left), bool)
        for rr, ss, ee in zip(r - top, s - left, e - left):
            box[rr, ss:ee] = True
        out.append(Component(top, left, box))
    return out
