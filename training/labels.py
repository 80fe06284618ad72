"""A labelled catalogue column for fine-tuning: its labels, a held-out split, a labelled fraction.

The held-out split is a seeded hash of `object_id`, not of the row number: an object stays on the
same side when the survey is re-ingested in another order or grows, so a model fine-tuned on a
later catalogue is still scored on objects it never trained on. Labelled fractions take, class by
class, the objects whose (differently salted) hash is lowest, so the 10 % set contains the 1 % set.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

from survey.catalog import Catalog

from .errors import LabelError

MIN_PER_CLASS = 2  # a class with one labelled object can be memorised but not learnt


@dataclass(frozen=True)
class Labels:
    """y over all N rows: class indices (-1 = unlabelled) or float values (NaN = unlabelled)."""

    task: str
    column: str
    y: np.ndarray
    classes: tuple[str, ...] = ()

    def labelled(self) -> np.ndarray:
        return self.y >= 0 if self.task == "classification" else np.isfinite(self.y)


def unit_hash(object_ids: np.ndarray, seed: int, salt: str) -> np.ndarray:
    """(N,) floats in [0, 1), a fixed function of (seed, salt, object_id)."""
    out = np.empty(len(object_ids), dtype=np.float64)
    for i, oid in enumerate(object_ids):
        d = hashlib.blake2b(f"{seed}\x00{salt}\x00{oid}".encode(), digest_size=8).digest()
        out[i] = int.from_bytes(d, "big") / 2.0**64
    return out


def read_labels(catalog: Catalog, column: str, task: str, where: str) -> Labels:
    """The column as labels. Empty strings, 'nan' and NaN are unlabelled. `where` names the survey."""
    if column not in catalog:
        cols = ", ".join(sorted(c for c in catalog.columns if c not in ("object_id", "ra", "dec")))
        raise LabelError(f"label_column {column!r} is not a column of {where} (its columns: {cols or 'none'})")
    raw = np.asarray(catalog[column])
    if task == "regression":
        if raw.dtype.kind not in "biuf":
            raise LabelError(
                f"label_column {column!r} of {where} is not numeric ({raw.dtype}, e.g. "
                f"{raw[0]!r}), so it cannot be regressed: use --task classification"
            )
        y = raw.astype(np.float64)
        if not np.isfinite(y).any():
            raise LabelError(f"label_column {column!r} of {where} has no finite value")
        return Labels("regression", column, y)
    if raw.dtype.kind == "f":
        text = np.array(["" if not np.isfinite(v) else f"{v:g}" for v in raw], dtype=object)
    else:
        text = np.array([str(v).strip() for v in raw], dtype=object)
    known = (text != "") & (np.char.lower(text.astype(str)) != "nan")
    classes = tuple(sorted(set(text[known].tolist())))
    if len(classes) < 2:
        raise LabelError(
            f"label_column {column!r} of {where} has {len(classes)} class(es) {list(classes)}; "
            "classification needs at least two"
        )
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[t] if k else -1 for t, k in zip(text, known, strict=True)], dtype=np.int64)
    return Labels("classification", column, y, classes)


def heldout_split(
    object_ids: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) sorted rows: hash < test_fraction is test, the next val_fraction is
    validation (early stopping), the rest train."""
    u = unit_hash(object_ids, seed, "split")
    test = u < test_fraction
    val = ~test & (u < test_fraction + val_fraction)
    return np.nonzero(~test & ~val)[0], np.nonzero(val)[0], np.nonzero(test)[0]


def labelled_fraction(
    rows: np.ndarray, labels: Labels, fraction: float, object_ids: np.ndarray, seed: int
) -> np.ndarray:
    """ceil(fraction x n) of the labelled `rows`, per class for classification; refuses a fraction
    that leaves fewer than MIN_PER_CLASS objects of a class (or of the whole set, for regression)."""
    rows = rows[labels.labelled()[rows]]
    order = unit_hash(object_ids[rows], seed, "fraction")
    groups = (
        [rows[labels.y[rows] == k] for k in range(len(labels.classes))] if labels.task == "classification" else [rows]
    )
    ranks = (
        [order[labels.y[rows] == k] for k in range(len(labels.classes))] if labels.task == "classification" else [order]
    )
    out, short = [], []
    for i, (members, rank) in enumerate(zip(groups, ranks, strict=True)):
        take = math.ceil(fraction * len(members) - 1e-9)
        if take < MIN_PER_CLASS:
            name = labels.classes[i] if labels.task == "classification" else "labelled objects"
            short.append(f"{name} ({take} of {len(members)})")
        out.append(members[np.argsort(rank, kind="stable")[:take]])
    if short:
        raise LabelError(
            f"label_fraction {fraction:g} leaves fewer than {MIN_PER_CLASS} labelled training "
            f"objects of {', '.join(short)}; raise label_fraction or label more objects"
        )
    return np.sort(np.concatenate(out))
