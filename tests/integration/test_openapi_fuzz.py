"""Fuzz the published OpenAPI document with schemathesis: whatever is sent, never a 5xx.

The live service's ``/openapi.json`` is loaded, and for every operation schemathesis
generates requests that fit the schema (positive) and requests that break it
(negative). Each carries a fresh valid token for the endpoint it calls, so fuzzing
reaches validation, prefetch handling and the engine rather than stopping at 401.
Examples are bounded and derandomised to keep CI time small.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from servers import token

OPERATIONS = [
    "GET /cds-services",
    "POST /cds-services/{service_id}",
    "POST /cds-services/{service_id}/feedback",
    "GET /cds-services/{service_id}/feedback",
    "GET /health",
    "GET /docs/rules/{page}",
]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def cds_schema(service):
    return schemathesis.openapi.from_url(f"{service.url}/openapi.json")


def test_every_operation_is_fuzzed(cds_schema):
    """The fuzzed list is the published one, so no new endpoint escapes."""
    published = sorted(result.ok().label for result in cds_schema.get_all_operations())

    assert sorted(OPERATIONS) == published


CASES = [(label, GenerationMode.POSITIVE) for label in OPERATIONS] + [
    (label, GenerationMode.NEGATIVE)
    for label in OPERATIONS
    if "{" in label  # the rest take no input to break
]


@pytest.mark.parametrize(("label", "mode"), CASES, ids=[f"{label} {mode.value}" for label, mode in CASES])
def test_no_request_makes_the_service_fail(cds_schema, service, label, mode):
    """Generated requests (fitting the schema, or breaking it) get a documented answer below 500."""
    operation = cds_schema.find_operation_by_label(label)

    @given(case=operation.as_strategy(mode))
    @settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    def fuzz(case):
        audience = f"{service.settings.base_url}{case.formatted_path}"
        case.call_and_validate(
            base_url=service.url, headers={"Authorization": f"Bearer {token(audience)}"}, checks=CHECKS
        )

    fuzz()
