"""Named errors of the indexer."""

from __future__ import annotations


class ArtifactError(ValueError):
    """An artifact directory is missing, incomplete or inconsistent."""


class ArtifactMismatch(ArtifactError):
    """Two things that must agree do not: counts, hashes, encoder of a query vs of the index."""


class CorruptVersion(ArtifactError):
    """A published version's files differ from its manifest (size or sha256): it is not served."""


class NoCurrentVersion(ArtifactError):
    """Nothing has been published yet (no `current` link)."""
