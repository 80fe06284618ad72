"""Schemathesis over the whole OpenAPI schema, in process (ASGI), on the tiny published version.

Each operation is one test per generation mode: up to MAX_EXAMPLES requests with valid inputs
("positive"), as many with invalid ones ("negative"), and, for operations that name an object,
valid inputs whose object_id is a real one ("known-ids": random IDs almost never exist, so
without it the success paths would be barely exercised). Each response is checked for no 5xx,
a documented status code, a documented content type and a body matching the documented schema.
Derandomized (same requests every run); the module takes a few minutes on two cores.

Why not `@schema.parametrize()` with `schemathesis.pytest.from_fixture`: the lazy loader sets
`request.node._nodeid`, which pytest 9 no longer has (AttributeError). The operations are
listed at collection time from an app built without artifacts (the OpenAPI document does not
depend on them), and each test draws cases from that operation's Hypothesis strategy.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.main import create_app
from app.settings import ServiceSettings

MAX_EXAMPLES = 60  # per operation and generation mode
MIN_TOTAL_REQUESTS = 1000
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
CALLS: Counter[str] = Counter()
STATUSES: Counter[tuple[str, int]] = Counter()

_HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}
_DOC = create_app(ServiceSettings(artifacts=Path("/nonexistent"), watch_interval_s=0)).openapi()
OPERATIONS = sorted((path, method) for path, item in _DOC["paths"].items() for method in item
                    if method in _HTTP_METHODS)


@pytest.fixture(scope="module")
def api_schema(tiny_artifacts: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    votes = tmp_path_factory.mktemp("schemathesis") / "votes.sqlite"
    app = create_app(ServiceSettings(artifacts=tiny_artifacts, votes_db=votes, watch_interval_s=0,
                                     admin_token="schemathesis-token"))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


KNOWN_IDS = [f"sim-{i:07d}" for i in (0, 1, 42, 117, 239)]  # the tiny survey has sim-0000000 .. sim-0000239


def with_known_id(pair: tuple[schemathesis.Case, str]) -> schemathesis.Case:
    case, object_id = pair
    if case.path_parameters and "object_id" in case.path_parameters:
        case.path_parameters["object_id"] = object_id
    if isinstance(case.query, dict) and "object_id" in case.query:
        case.query["object_id"] = object_id
    if isinstance(case.body, dict) and "object_id" in case.body:
        case.body["object_id"] = object_id
    return case


def names_an_object(operation) -> bool:  # type: ignore[no-untyped-def]
    text = str(operation.definition.raw)
    return "'object_id'" in text or "/VoteIn" in text


@pytest.mark.parametrize("mode", ["positive", "negative", "known-ids"])
@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m.upper()} {p}" for p, m in OPERATIONS])
def test_operation_conforms_to_its_schema(api_schema, path: str, method: str, mode: str) -> None:  # type: ignore[no-untyped-def]
    operation = api_schema[path][method]
    label = f"{method.upper()} {path}"
    if mode == "known-ids":
        if not names_an_object(operation):
            pytest.skip(f"{label} takes no object_id")
        strategy = st.tuples(operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                             st.sampled_from(KNOWN_IDS)).map(with_known_id)
    else:
        strategy = operation.as_strategy(generation_mode=GenerationMode(mode))

    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def check(case: schemathesis.Case) -> None:
        response = case.call()
        CALLS[label] += 1
        STATUSES[(label, response.status_code)] += 1
        case.validate_response(response, checks=CHECKS)

    try:
        check()
    except Unsatisfiable:
        if mode != "negative":
            raise
        # no parameters, or only path strings: nothing invalid can be expressed in a URL
        pytest.skip(f"{label} has no input that can be made invalid")


def test_enough_requests_were_generated() -> None:
    """Runs after the tests above (file order): together they made >= 1,000 requests."""
    if len({label for label in CALLS}) < len(OPERATIONS):
        pytest.skip("not every operation's test ran in this session")
    total = sum(CALLS.values())
    print(f"\nschemathesis: {total} requests over {len(CALLS)} operations")
    for label, n in sorted(CALLS.items()):
        codes = {s: c for (op, s), c in STATUSES.items() if op == label}
        print(f"  {label}: {n} requests, statuses {dict(sorted(codes.items()))}")
    assert not any(status >= 500 for (_, status) in STATUSES), STATUSES
    assert total >= MIN_TOTAL_REQUESTS, f"only {total} requests generated: {dict(CALLS)}"
