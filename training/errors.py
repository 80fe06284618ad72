"""Named errors of the training package."""

from __future__ import annotations


class ResumeMismatch(ValueError):
    """A checkpoint that cannot continue this run: other settings, survey size or process count."""


class RankDivergence(RuntimeError):
    """Processes of one DDP run hold different weights or queues: gradients or broadcasts went wrong."""


class LabelError(ValueError):
    """A catalogue column that cannot train a head as asked: missing, non-numeric for a regression,
    or too few labelled objects per class."""


class InitEncoderMismatch(ValueError):
    """--init-encoder names an encoder another architecture, band set or kind of units than this run's."""
