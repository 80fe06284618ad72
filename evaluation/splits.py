"""Train / validation / test rows fixed by a seed, and nested labelled subsets of the train rows.

One split serves every task, so no object that scores a model was seen by that model's fit or by
the choice of its hyper-parameters: probes and kNN fit on train, choose C or k on validation, and
report on test. (The self-supervised encoder saw every object's pixels, without labels, as Stein et
al. 2022 train on the survey they search; no label reaches it.)

Label fractions draw from the train rows class by class, at least one object per class, and are
nested: the 10 % subset contains the 1 % subset, so a label-efficiency curve measures more labels
and not different ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Split:
    train: np.ndarray  # sorted row indices
    val: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train": int(len(self.train)), "val": int(len(self.val)), "test": int(len(self.test))}


def three_way_split(n: int, test_fraction: float, val_fraction: float, seed: int) -> Split:
    """Disjoint sorted train/val/test rows covering range(n), sizes rounded from the fractions."""
    if not (0 < test_fraction and 0 <= val_fraction and test_fraction + val_fraction < 1):
        raise ValueError(f"need 0 < test_fraction, 0 <= val_fraction, sum < 1; got {test_fraction}, {val_fraction}")
    perm = np.random.default_rng(np.random.SeedSequence([seed, 0x5B11])).permutation(n)
    n_test, n_val = int(round(n * test_fraction)), int(round(n * val_fraction))
    return Split(
        train=np.sort(perm[n_test + n_val :]), val=np.sort(perm[n_test : n_test + n_val]), test=np.sort(perm[:n_test])
    )


def labelled_subset(rows: np.ndarray, labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """ceil(fraction x n_c) rows of each class c present in labels[rows] (at least one), sorted.

    rows: candidate row indices; labels: per-row labels over the whole survey. The same seed gives
    the same per-class order at every fraction, hence nested subsets.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    rows = np.asarray(rows, dtype=np.int64)
    lab = np.asarray(labels)[rows]
    out = []
    for i, c in enumerate(np.unique(lab)):
        members = rows[lab == c]
        order = np.random.default_rng(np.random.SeedSequence([seed, 0x1AB, i])).permutation(len(members))
        out.append(members[order[: max(1, math.ceil(fraction * len(members) - 1e-9))]])
    return np.sort(np.concatenate(out)) if out else np.zeros(0, dtype=np.int64)
