"""Linear probe: multinomial logistic regression on frozen embeddings (Hayat et al. 2021; Stein et
al. 2022). The standard test of a self-supervised representation: if the classes are linearly
separable in it, the representation carries them without the encoder ever seeing a label.

Features are standardised on the labelled rows (embeddings are unit vectors whose coordinates
have very different spreads; L-BFGS converges faster and C means the same at every label count).
The inverse regularisation strength C is chosen on the validation rows by macro-F1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler


@dataclass
class ProbeFit:
    model: Pipeline
    C: float
    val_macro_f1: float


def fit_probe(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    Cs: Sequence[float],
    seed: int = 0,
    max_iter: int = 2000,
) -> ProbeFit:
    """Fit one probe per C on (x_train, y_train) (N, D), (N,) int; keep the best on validation
    (ties: the smaller C, i.e. the stronger regularisation). An empty validation set keeps the
    first C."""
    if len(np.unique(y_train)) < 2:
        raise ValueError("a probe needs labelled examples of at least two classes")
    best: ProbeFit | None = None
    for c in Cs:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=max_iter, random_state=seed))
        model.fit(x_train, y_train)
        if len(y_val) == 0:
            return ProbeFit(model, float(c), float("nan"))
        f1 = float(f1_score(y_val, model.predict(x_val), average="macro", zero_division=0))
        if best is None or f1 > best.val_macro_f1 or (f1 == best.val_macro_f1 and c < best.C):
            best = ProbeFit(model, float(c), f1)
    if best is None:
        raise ValueError("Cs is empty")
    return best
