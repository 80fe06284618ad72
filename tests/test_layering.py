"""The import arrows of DESIGN.md §2: survey imports nothing of ours, nothing imports app, only
evaluation (and the top-level command) imports training."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OURS = {"survey", "encoder", "training", "indexer", "evaluation", "app", "skysift"}
ALLOWED = {
    "survey": set(),
    "encoder": {"survey"},
    "training": {"encoder", "survey"},
    "indexer": {"encoder", "survey"},
    "evaluation": {"encoder", "indexer", "survey", "training"},
    "app": {"indexer", "encoder", "survey"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out & OURS


def test_import_arrows() -> None:
    bad = []
    for pkg, allowed in ALLOWED.items():
        for f in (ROOT / pkg).rglob("*.py"):
            wrong = imported_packages(f) - allowed - {pkg}
            if wrong:
                bad.append(f"{f.relative_to(ROOT)} imports {sorted(wrong)}")
    assert not bad, "\n".join(bad)


def test_packages_import_together() -> None:
    r = subprocess.run([sys.executable, "-c", "import app, encoder, indexer, training, survey"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
