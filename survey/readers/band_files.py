"""One object from one file per band: the `--band-files` pattern of image and FITS folders.

    pattern = BandFilePattern("{id}_{band}.fits", ("g", "r", "z"))
    pattern.match("sub/obj1_g.fits")      # ("sub/obj1", "g")
    pattern.path("obj1", "z")             # "obj1_z.fits"
    groups, unmatched = pattern.find(root, suffixes=(".fits",))

A pattern is a path relative to the folder holding `{id}` and `{band}` once each, e.g.
`{id}_{band}.fits`, `{id}-{band}.png` or `{band}/{id}.fits` (one sub-folder per band). `{band}`
matches one of the band names given (longest first), so `obj_1_g.fits` is object `obj_1`, band
`g`; `{id}` matches anything non-empty, sub-folders included (`sub/obj1`). The match is on the
whole relative path (POSIX separators) and case-sensitive. Files of the folder that match no
band's pattern are listed in `unmatched` (the caller reports them: nothing is dropped silently).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from .common import list_files

EXAMPLES = "'{id}_{band}.fits' or '{band}/{id}.png'"


class BandFilePattern:
    def __init__(self, pattern: str, bands: Sequence[str]) -> None:
        self.pattern = pattern.strip()
        self.bands = tuple(bands)
        p = self.pattern
        if p.count("{id}") != 1 or p.count("{band}") != 1:
            raise ValueError(f"band_files={pattern!r} must hold {{id}} and {{band}} once each, e.g. {EXAMPLES}")
        rest = p.replace("{id}", "").replace("{band}", "")
        if "{" in rest or "}" in rest:
            raise ValueError(f"band_files={pattern!r}: only {{id}} and {{band}} may appear in braces, e.g. {EXAMPLES}")
        parts = p.split("/")
        if p.startswith("/") or "\\" in p or any(part in ("", ".", "..") for part in parts):
            raise ValueError(f"band_files={pattern!r} must be a relative path inside the folder, e.g. {EXAMPLES}")
        if not self.bands or any(not b or "/" in b for b in self.bands):
            raise ValueError(f"band_files= needs the band names (bands=), got {self.bands}")
        if len(set(self.bands)) != len(self.bands):
            raise ValueError(f"bands {self.bands} name a band twice")
        choices = "|".join(re.escape(b) for b in sorted(self.bands, key=len, reverse=True))
        regex = ""
        for token in re.split(r"(\{id\}|\{band\})", p):
            if token == "{id}":
                regex += "(?P<id>.+)"
            elif token == "{band}":
                regex += f"(?P<band>{choices})"
            else:
                regex += re.escape(token)
        self._regex = re.compile(regex)

    def __repr__(self) -> str:
        return f"BandFilePattern({self.pattern!r}, {self.bands})"

    def match(self, rel_path: str) -> tuple[str, str] | None:
        """(object id, band) of a relative POSIX path, or None if it does not fit the pattern."""
        m = self._regex.fullmatch(rel_path)
        if m is None:
            return None
        return m.group("id"), m.group("band")

    def path(self, object_id: str, band: str) -> str:
        """The relative path of `object_id`'s file for `band`."""
        return self.pattern.replace("{id}", object_id).replace("{band}", band)

    def display(self, object_id: str) -> str:
        """The object's files in words, e.g. 'obj1_{band}.fits'."""
        return self.pattern.replace("{id}", object_id)

    def find(self, root: Path, suffixes: tuple[str, ...]) -> tuple[dict[str, dict[str, str]], list[str]]:
        """({object id: {band: relative path}} sorted by id, files with `suffixes` that did not match)."""
        groups: dict[str, dict[str, str]] = {}
        unmatched: list[str] = []
        for rel in list_files(root):
            hit = self.match(rel)
            if hit is None:
                if rel.lower().endswith(tuple(s.lower() for s in suffixes)):
                    unmatched.append(rel)
                continue
            groups.setdefault(hit[0], {})[hit[1]] = rel
        return dict(sorted(groups.items())), unmatched


def unmatched_note(unmatched: list[str], pattern: BandFilePattern) -> str:
    shown = ", ".join(unmatched[:3]) + (", ..." if len(unmatched) > 3 else "")
    return (f"{len(unmatched)} file(s) match no band of {pattern.pattern!r} (bands {','.join(pattern.bands)}) "
            f"and were not read: {shown}")


def missing_bands_note(groups: dict[str, dict[str, str]], bands: Sequence[str]) -> str | None:
    incomplete = [oid for oid, files in groups.items() if len(files) < len(bands)]
    if not incomplete:
        return None
    shown = ", ".join(incomplete[:3]) + (", ..." if len(incomplete) > 3 else "")
    return f"{len(incomplete)} object(s) lack a file for some band and are rejected: {shown}"
