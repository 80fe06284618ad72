"""Schemathesis over the whole OpenAPI schema, in process (ASGI), on the tiny published version.

Each operation is one test per generation mode: up to MAX_EXAMPLES requests (fewer on the second
engine) with valid inputs ("positive"), as many with invalid ones ("negative"), and, for operations that name an object,
valid inputs whose object_id is a real one ("known-ids": random IDs almost never exist, so
without it the success paths would be barely exercised), and schemathesis's coverage phase
("coverage": boundary values, each required part left out, every method a path does not have).
Derandomized (same requests every run); the module takes a few minutes on two cores.

Every response goes through every check schemathesis has that can judge one request on its own:
not_a_server_error, status_code_conformance, content_type_conformance,
response_headers_conformance, response_schema_conformance, negative_data_rejection,
positive_data_acceptance, missing_required_header, unsupported_method (405 with Allow, from the
coverage cases), allow_header_conformance and ignored_auth. Not in the list, because no single
case can show them: use_after_free and ensure_resource_availability judge a request by the
earlier requests of a stateful scenario (a DELETE, then a read of what it deleted), which
`validate_response` without a recorder never has; object_level_authorization needs several
configured identities, and the service has one token per role, no per-user objects.

positive_data_acceptance has one narrow exception (positive_data_acceptance_within_documented_rules):
a 4xx is accepted for a schema-valid request only when the request breaks a rule docs/api.md states
and OpenAPI cannot (z_min <= z_max; ra, dec and radius together; no ID both a positive and a
negative example; an uploaded file that is no cutout the model can take) and the answer names it.

Why not `@schema.parametrize()` with `schemathesis.pytest.from_fixture`: the lazy loader sets
`request.node._nodeid`, which pytest 9 no longer has (AttributeError). The operations are
listed at collection time from an app built without artifacts (the OpenAPI document does not
depend on them), and each test draws cases from that operation's Hypothesis strategy.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from app.main import create_app
from app.settings import ServiceSettings

MAX_EXAMPLES = 60  # per operation and generation mode, on FAISS
# On Milvus: the checks judge the API layer, which both engines share; this run shows the operations the
# engine answers stay within the schema (what they answer is asserted on both engines by the rest of tests/app)
MAX_EXAMPLES_SECOND_ENGINE = 25
MIN_TOTAL_REQUESTS = 1000


def _value(case: schemathesis.Case, name: str) -> Any:
    """A parameter of the request wherever it travels: query string, JSON body or form field."""
    for part in (case.query, case.body):
        if isinstance(part, dict) and part.get(name) is not None:
            return part[name]
    return None


def _float(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _breaks_a_documented_rule(case: schemathesis.Case, body: dict[str, Any]) -> bool:
    """Whether the request breaks one of the rules docs/api.md states and OpenAPI cannot (a schema
    relates no two parameters, and says nothing of what bytes a file holds), and the answer names it."""
    code, detail = body.get("error"), str(body.get("detail", ""))
    z_min, z_max = _float(_value(case, "z_min")), _float(_value(case, "z_max"))
    if code == "invalid_parameter" and z_min is not None and z_max is not None and z_min > z_max \
            and "above z_max" in detail:
        return True
    region = [name for name in ("ra", "dec", "radius") if _value(case, name) is not None]
    if code == "invalid_parameter" and (case.path.endswith("/similar") or "/rankings/" in case.path) \
            and 0 < len(region) < 3 \
            and "sky-region filter needs ra, dec and radius together" in detail:
        return True
    positive, negative = _value(case, "positive"), _value(case, "negative")
    if code == "invalid_parameter" and isinstance(positive, list) and isinstance(negative, list) \
            and set(positive) & set(negative) and "both a positive and a negative example" in detail:
        return True
    if case.path.endswith("/search/cutout"):  # the bytes are no cutout the served model can take
        return code in FILE_CONTENT_ERRORS or (code == "invalid_parameter" and detail.startswith("bands="))
    return False


# app/errors.py STATUS_CODES: what the file holds (random bytes, a greyscale PNG for a 3-band model)
FILE_CONTENT_ERRORS = {"unsupported_format", "unreadable_cutout", "incompatible_cutout", "format_mismatch",
                       "empty_upload", "empty_image", "missing_pixel_scale", "unsupported_array",
                       "conflicting_input"}


def positive_data_acceptance_within_documented_rules(ctx, response, case):  # type: ignore[no-untyped-def]
    """positive_data_acceptance, except for a 4xx that names a rule of _breaks_a_documented_rule
    which the request breaks (the check's expected statuses are per operation: any 422 would pass)."""
    try:
        return positive_data_acceptance(ctx, response, case)
    except RejectedPositiveData:
        try:
            body = response.json()
        except ValueError:
            raise
        if isinstance(body, dict) and _breaks_a_documented_rule(case, body):
            return None
        raise


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection, positive_data_acceptance_within_documented_rules,
          missing_required_header, unsupported_method, allow_header_conformance, ignored_auth]
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


@pytest.mark.parametrize("mode", ["positive", "negative", "known-ids", "coverage"])
@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m.upper()} {p}" for p, m in OPERATIONS])
def test_operation_conforms_to_its_schema(api_schema, backend: str, path: str, method: str,  # type: ignore[no-untyped-def]
                                         mode: str) -> None:
    operation = api_schema[path][method]
    label = f"{method.upper()} {path}"
    if mode == "coverage":
        run_coverage_cases(operation, label)
        return
    if mode == "known-ids":
        if not names_an_object(operation):
            pytest.skip(f"{label} takes no object_id")
        strategy = st.tuples(operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                             st.sampled_from(KNOWN_IDS)).map(with_known_id)
    else:
        strategy = operation.as_strategy(generation_mode=GenerationMode(mode))

    examples = MAX_EXAMPLES if backend == "faiss" else MAX_EXAMPLES_SECOND_ENGINE

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
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


def run_coverage_cases(operation, label: str) -> None:  # type: ignore[no-untyped-def]
    """Schemathesis's coverage phase for one operation: boundary values of every parameter, each
    required part left out, and every method the path does not have (unsupported_method)."""
    config = operation.schema.config.generation_for(operation=operation, phase="coverage")
    cases = operation.schema.iter_coverage_cases(
        operation, generation_modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], generation_config=config)
    failures = []
    for case in cases:
        response = case.call()
        CALLS[label] += 1
        STATUSES[(label, response.status_code)] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except (AssertionError, BaseExceptionGroup) as e:  # collect them all: one run shows every failure
            failures.append(f"{case.method} {case.formatted_path} {case.query} {str(case.body)[:200]}: {e}")
    assert not failures, f"{len(failures)} coverage cases failed:\n" + "\n\n".join(failures[:30])


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
