"""Holds the IndexedSurvey being served and swaps it for a new version with no downtime.

A request takes one reference (`holder.get()`) at its start and uses only that object, so every
response comes from exactly one version; a swap replaces the reference atomically (a single
attribute assignment under the GIL) after the new version has fully loaded.
"""

from __future__ import annotations

import threading
from pathlib import Path

from indexer.artifacts import current_dir
from indexer.errors import NoCurrentVersion
from indexer.store import IndexedSurvey


class IndexHolder:
    def __init__(self, artifacts: Path, survey_root: Path | None = None) -> None:
        self.artifacts, self.survey_root = Path(artifacts), survey_root
        self._store: IndexedSurvey | None = None
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
            new = IndexedSurvey(target, self.survey_root)
            self._store = new
            return True

    def try_reload(self) -> bool:
        try:
            return self.reload()
        except (NoCurrentVersion, OSError, ValueError):
            return False
