"""Holds the IndexedSurvey being served and swaps it for a new version with no downtime.

A request takes one reference (`holder.get()`) at its start and uses only that object, so every
response comes from exactly one version; a swap replaces the reference atomically (a single
attribute assignment under the GIL) after the new version has fully loaded.

With `verify_hashes` (the service's default) a version is served only if every file matches the
sha256 its manifest records: a disk or copy error in an index or embedding file would otherwise give
wrong neighbours without a word. It costs one read of the version's files per load (measured in
docs/indexing.md); a version that fails is remembered by its manifest's mtime and not hashed again
every watch interval.
"""

from __future__ import annotations

import threading
from pathlib import Path

from indexer.artifacts import MANIFEST, current_dir
from indexer.errors import ArtifactMismatch, CorruptVersion, NoCurrentVersion
from indexer.searchers import Backend
from indexer.store import IndexedSurvey


class IndexHolder:
    def __init__(self, artifacts: Path, survey_root: Path | None = None, verify_hashes: bool = True,
                 backend: Backend = "faiss", milvus_uri: str | None = None) -> None:
        self.artifacts, self.survey_root, self.verify_hashes = Path(artifacts), survey_root, verify_hashes
        self.backend, self.milvus_uri = backend, milvus_uri
        self._store: IndexedSurvey | None = None
        self._rejected: tuple[Path, float, str] | None = None  # (version dir, manifest mtime, why)
        self._lock = threading.Lock()

    def get(self) -> IndexedSurvey:
        store = self._store
        if store is None:
            self.reload()
            store = self._store
            if store is None:
                raise NoCurrentVersion(f"nothing published under {self.artifacts} yet")
        return store

    @property
    def loaded(self) -> bool:
        return self._store is not None

    def reload(self) -> bool:
        """Load `current` if it changed; returns True when a new version was swapped in."""
        with self._lock:
            target = current_dir(self.artifacts)
            if self._store is not None and self._store.dir == target:
                return False
            stamp = _manifest_mtime(target)
            if self._rejected is not None and self._rejected[:2] == (target, stamp):
                raise CorruptVersion(self._rejected[2])
            try:
                new = IndexedSurvey(target, self.survey_root, check_hashes=self.verify_hashes,
                                    backend=self.backend, milvus_uri=self.milvus_uri)
            except ArtifactMismatch as e:
                why = f"version {target.name} is not served: {e}"
                self._rejected = (target, stamp, why)
                raise CorruptVersion(why) from e
            self._store = new
            return True

    def try_reload(self) -> bool:
        try:
            return self.reload()
        except (NoCurrentVersion, OSError, ValueError):
            return False


def _manifest_mtime(version_dir: Path) -> float:
    try:
        return (version_dir / MANIFEST).stat().st_mtime
    except OSError:
        return -1.0
