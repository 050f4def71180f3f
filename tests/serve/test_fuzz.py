"""A schema-driven fuzz of the JSON API (schemathesis over the app's own OpenAPI
document): whatever it sends, no 500."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402


@pytest.fixture(scope="module")
def fuzz_app(served_ws, cache_dir):
    from imgatlas.serve import create_app

    ws, _ = served_ws
    return create_app(ws, model=ws / "models" / "m", allow_edits=True, cache_dir=cache_dir)


def test_no_operation_answers_500(fuzz_app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    failures: list[str] = []
    statuses: dict[str, set[int]] = {}
    operations = [op.ok() for op in schema.get_all_operations()]
    assert len(operations) >= 10
    def fuzz(operation) -> None:
        @settings(max_examples=25, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def run(case):
            response = case.call()
            statuses.setdefault(operation.label, set()).add(response.status_code)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> "
                                f"{response.status_code}: {response.text[:200]}")

        run()

    for operation in operations:
        fuzz(operation)
    assert not failures, "\n".join(failures[:10])
    assert len(statuses) == len(operations)  # every operation was called
    assert any(c < 300 for codes in statuses.values() for c in codes)
    assert any(400 <= c < 500 for codes in statuses.values() for c in codes)
