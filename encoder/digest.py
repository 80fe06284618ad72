"""sha256 of a file, read in 1 MiB blocks: the one digest of weights, version files and survey shards.

A module of its own, without torch, so that the artifact code (versions, manifests) can use it
without loading the model stack.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
