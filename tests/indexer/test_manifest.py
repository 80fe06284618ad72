"""The typed manifest: a published version reads into Manifest with every field the read side uses;
older manifests (no units, map or score words) and newer keys both still open."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from indexer.artifacts import current_dir, read_manifest
from indexer.manifest import Manifest
from indexer.store import IndexedSurvey


def test_a_published_version_reads_into_the_typed_manifest(tiny_artifacts: Path) -> None:
    raw = read_manifest(current_dir(tiny_artifacts))
    m = Manifest.model_validate(raw)
    assert m.version == raw["version"] and m.n_objects == raw["n_objects"] == 240
    assert m.survey.bands == tuple(raw["survey"]["bands"])
    assert m.survey.image_shape == tuple(raw["survey"]["image_shape"])
    assert m.survey.units is not None and m.survey.units.bands == m.survey.bands
    assert m.encoder.weights_sha256 == raw["encoder"]["weights_sha256"]
    assert m.map is not None and m.map.method == raw["map"]["method"]
    assert "data quality" in (m.describe("artifact") or "") and m.describe("nonexistent") is None
    store = IndexedSurvey.open_current(tiny_artifacts)
    assert store.info == m and store.weights_sha256 == m.encoder.weights_sha256


def test_older_and_newer_manifests_open(tiny_artifacts: Path) -> None:
    raw = read_manifest(current_dir(tiny_artifacts))
    old = json.loads(json.dumps(raw))
    for key in ("map", "scores", "columns", "healpix", "code_version"):
        old.pop(key)
    old["survey"].pop("units")
    old["survey"].pop("source_pixel_scale_arcsec")
    m = Manifest.model_validate(old)
    assert m.map is None and m.survey.units is None and m.columns["redshift"] == "z" and m.describe("anomaly") is None
    newer = {**raw, "something_new": {"a": 1}}
    assert Manifest.model_validate(newer).model_extra == {"something_new": {"a": 1}}


def test_a_manifest_without_what_the_read_side_needs_is_refused(tiny_artifacts: Path) -> None:
    raw = read_manifest(current_dir(tiny_artifacts))
    broken = {**raw, "survey": {k: v for k, v in raw["survey"].items() if k != "bands"}}
    with pytest.raises(ValidationError, match="bands"):
        Manifest.model_validate(broken)
