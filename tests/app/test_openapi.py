"""The OpenAPI document states the limits the server enforces (k, size, the sky region's three
parameters, strict JSON numbers), so a request the document allows is one the server accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.schemas import MAX_CUTOUT_PX, MAX_K
from app.settings import ServiceSettings

DOC = create_app(ServiceSettings(artifacts=Path("/nonexistent"), watch_interval_s=0)).openapi()
SIMILAR = "/api/v1/objects/{object_id}/similar"


@pytest.fixture(scope="module")
def client(tiny_artifacts: Path) -> TestClient:
    with TestClient(create_app(ServiceSettings(artifacts=tiny_artifacts, watch_interval_s=0)),
                    raise_server_exceptions=False) as c:
        yield c


def param(path: str, name: str, method: str = "get") -> dict:
    return next(p for p in DOC["paths"][path][method]["parameters"] if p["name"] == name)


def bounds(schema: dict) -> dict:
    """The numeric bounds of a schema, looking into anyOf [..., null]."""
    for s in [schema, *schema.get("anyOf", [])]:
        if s.get("type") in ("integer", "number"):
            return {k: v for k, v in s.items() if k in ("minimum", "maximum", "exclusiveMinimum",
                                                        "exclusiveMaximum")}
    raise AssertionError(schema)


@pytest.mark.parametrize(("path", "name"), [(SIMILAR, "k"), ("/api/v1/search/position", "k")])
def test_k_states_its_maximum(path: str, name: str) -> None:
    assert bounds(param(path, name)["schema"])["maximum"] == MAX_K


def test_k_of_the_bodies_states_its_maximum() -> None:
    examples = DOC["components"]["schemas"]["ExamplesRequest"]["properties"]["k"]
    form = DOC["paths"]["/api/v1/search/cutout"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert bounds(examples)["maximum"] == bounds(form["properties"]["k"])["maximum"] == MAX_K


def test_cutout_size_states_its_maximum() -> None:
    assert bounds(param("/api/v1/cutouts/{object_id}.png", "size")["schema"])["maximum"] == MAX_CUTOUT_PX


def test_the_limits_stated_are_the_limits_enforced(client: TestClient) -> None:
    r = client.get("/api/v1/objects/sim-0000042/similar", params={"k": MAX_K})
    assert r.status_code == 200 and len(r.json()["neighbours"]) == 240  # the whole tiny survey
    assert client.get("/api/v1/objects/sim-0000042/similar", params={"k": MAX_K + 1}).status_code == 422
    assert client.get("/api/v1/cutouts/sim-0000042.png", params={"size": MAX_CUTOUT_PX}).status_code == 200
    assert client.get("/api/v1/cutouts/sim-0000042.png", params={"size": MAX_CUTOUT_PX + 1}).status_code == 422


def test_a_setting_may_only_lower_the_stated_ceiling() -> None:
    with pytest.raises(ValueError, match="max_k"):
        ServiceSettings(max_k=MAX_K + 1)
    with pytest.raises(ValueError, match="max_cutout_px"):
        ServiceSettings(max_cutout_px=MAX_CUTOUT_PX + 1)


def test_the_sky_region_says_it_needs_all_three() -> None:
    for name in ("ra", "dec", "radius"):
        assert "needs all three of ra, dec and radius" in param(SIMILAR, name)["description"]


@pytest.mark.parametrize("given", [{"radius": 1.0}, {"ra": 150.0, "dec": 2.0}, {"ra": 150.0, "radius": 1.0}])
def test_part_of_a_sky_region_is_refused_not_ignored(client: TestClient, given: dict) -> None:
    r = client.get("/api/v1/objects/sim-0000042/similar", params=given)
    assert r.status_code == 422 and "needs ra, dec and radius together" in r.json()["detail"], r.text


def test_json_numbers_are_strict_in_the_schema_too() -> None:
    """A JSON boolean or string is not a number: the document's types are the server's."""
    props = DOC["components"]["schemas"]["ExamplesRequest"]["properties"]
    assert {s["type"] for s in props["mag_max"]["anyOf"]} == {"number", "null"}
    assert props["positive"]["items"] == {"type": "string", "minLength": 1, "maxLength": 256}
