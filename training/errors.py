"""Named errors of the training package."""

from __future__ import annotations


class ResumeMismatch(ValueError):
    """A checkpoint that cannot continue this run: other settings, survey size or process count."""


class RankDivergence(RuntimeError):
    """Processes of one DDP run hold different weights or queues: gradients or broadcasts went wrong."""
