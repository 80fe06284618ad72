"""Morphology: linear probe on frozen embeddings vs the supervised CNN, at equal label budgets.

The claim under test (Hayat et al. 2021; Stein et al. 2022) is that the self-supervised
representation needs 2-4x fewer labels than a CNN trained from scratch. Both models see the same
nested labelled subsets of the train rows (`splits.labelled_subset`) and are scored on the same
test rows; the probe additionally picks its C on the validation rows. Scores: accuracy and
macro-F1 (the headline: the classes are unbalanced, and macro-F1 does not reward predicting the
common ones). "Reaches the supervised 100 % score" is read off the probe's curve with
`metrics.reach_fraction`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .metrics import classification_metrics, reach_fraction
from .probe import fit_probe
from .splits import Split, labelled_subset
from .supervised import SupervisedResult, Target

# (train_rows, test_rows, {name: Target}) -> (result, how it trained)
CNNRunner = Callable[[np.ndarray, np.ndarray, dict[str, Target]], tuple[SupervisedResult, dict[str, Any]]]
HEADLINE = "macro_f1"


def encode_classes(classes: np.ndarray, exclude: tuple[str, ...] | list[str], what: str
                   ) -> tuple[tuple[str, ...], np.ndarray]:
    """(sorted class names outside `exclude`, index of each object's class or -1 if excluded); a
    ValueError naming `what` when fewer than two classes are left."""
    classes = np.asarray(classes).astype(str)
    names = tuple(sorted(set(classes.tolist()) - set(exclude)))
    if len(names) < 2:
        raise ValueError(f"{what} needs at least two classes outside {list(exclude)}, got {list(names)}")
    return names, np.array([names.index(c) if c in names else -1 for c in classes])


def run_morphology(
    embeddings: np.ndarray,
    classes: np.ndarray,
    split: Split,
    *,
    fractions: Sequence[float],
    cnn_fractions: Sequence[float],
    Cs: Sequence[float],
    exclude: Sequence[str],
    seed: int,
    cnn: CNNRunner | None,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """embeddings (N, D) unit vectors; classes (N,) str truth. Objects whose class is in `exclude`
    take no part. Returns the JSON section (see evaluation/evaluate.py for its layout)."""
    names, y = encode_classes(classes, exclude, "morphology")
    train, val, test = (rows[y[rows] >= 0] for rows in (split.train, split.val, split.test))
    if not len(test):
        raise ValueError("no labelled object in the test rows")
    x = np.asarray(embeddings, dtype=np.float32)
    majority = int(np.bincount(y[train], minlength=len(names)).argmax())
    chance = classification_metrics(np.full(len(test), majority), y[test], names)

    curve = []
    for f in sorted(set(fractions) | set(cnn_fractions)):
        rows = labelled_subset(train, y, f, seed)
        fit = fit_probe(x[rows], y[rows], x[val], y[val], Cs, seed=seed)
        m = classification_metrics(fit.model.predict(x[test]), y[test], names)
        curve.append(
            {
                "fraction": f,
                "n_labels": int(len(rows)),
                "accuracy": m["accuracy"],
                "macro_f1": m["macro_f1"],
                "C": fit.C,
                "val_macro_f1": fit.val_macro_f1,
                "recall": m["recall"],
            }
        )
        log(f"  probe {f:>6.1%} ({len(rows)} labels): accuracy {m['accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f}")

    supervised = []
    for f in sorted(cnn_fractions) if cnn is not None else []:
        rows = labelled_subset(train, y, f, seed)
        res, info = cnn(rows, test, {"class": Target("class", y, names)})
        m = res.metrics["class"]
        supervised.append(
            {
                "fraction": f,
                "n_labels": int(len(rows)),
                "accuracy": m["accuracy"],
                "macro_f1": m["macro_f1"],
                "recall": m["recall"],
                **info,
            }
        )
        log(f"  CNN   {f:>6.1%} ({len(rows)} labels): accuracy {m['accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f}")

    out: dict[str, Any] = {
        "classes": list(names),
        "excluded_classes": list(exclude),
        "headline_metric": HEADLINE,
        "n_train_labelled": int(len(train)),
        "n_val": int(len(val)),
        "n_test": int(len(test)),
        "chance": {"predict": names[majority], "accuracy": chance["accuracy"], "macro_f1": chance["macro_f1"]},
        "probe": curve,
        "supervised": supervised,
    }
    full = next((p for p in supervised if p["fraction"] == 1.0), None)
    if full is not None:
        target = full[HEADLINE]
        interp, first = reach_fraction([p["fraction"] for p in curve], [p[HEADLINE] for p in curve], target)
        out["probe_reaches_supervised_full"] = {
            "metric": HEADLINE,
            "supervised_full_score": target,
            "fraction": interp,
            "first_measured_fraction": first,
        }
    return out
