"""Named errors of the evaluation."""

from __future__ import annotations


class EvaluationError(ValueError):
    """The version or survey cannot be evaluated as asked."""


class MissingTruth(EvaluationError):
    """The catalog lacks a ground-truth column a task needs (the simulator writes them all)."""
