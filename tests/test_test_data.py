"""The suite reads real data only from tests/data, where every file is accounted for: tests that
read real pixels from a path outside the repository skipped on every fresh clone (STYLE.md §7)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data"
OUTSIDE = re.compile(r"""["'](?:/work/|/home/|(?:\.\./)+shared\b)|shared/data/""")  # a path outside the repo
MISSING_SKIP = re.compile(r"skipif\([^)]*(?:is_dir|exists|is_file)\(")


def test_no_test_reads_data_from_outside_the_repository() -> None:
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        if path == Path(__file__).resolve():
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if OUTSIDE.search(line) or MISSING_SKIP.search(line):
                offenders.append(f"{path.relative_to(TESTS)}:{n}: {line.strip()}")
    assert not offenders, "ship the data under tests/data (with its provenance) instead:\n" + "\n".join(offenders)


def test_every_external_file_is_listed_with_its_sha256() -> None:
    external = DATA / "external"
    listed = dict(re.findall(r"^([0-9a-f]{64})  (\S+)$", (external / "PROVENANCE.md").read_text(), re.M))
    files = {str(p.relative_to(external)): p for p in external.rglob("*") if p.is_file() and p.name != "PROVENANCE.md"}
    assert set(listed.values()) == set(files), (sorted(listed.values()), sorted(files))
    for digest, rel in listed.items():
        assert hashlib.sha256(files[rel].read_bytes()).hexdigest() == digest, rel
