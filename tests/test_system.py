"""The system tier: the deployed function itself, skipped unless its URL is given.

    SYSTEM_FUNCTION_URL=$(terraform -chdir=infra output -raw function_url) \
    SYSTEM_ID_TOKEN=$(gcloud auth print-identity-token) make test-system

Runs are dry runs: they evaluate every check but post and record nothing. The caller needs run.invoker on
the function and ingress that admits it (infra/README.md: "Calling the function yourself").
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

import pytest

URL = os.environ.get("SYSTEM_FUNCTION_URL", "")
TOKEN = os.environ.get("SYSTEM_ID_TOKEN", "")
pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(not URL, reason="set SYSTEM_FUNCTION_URL (and SYSTEM_ID_TOKEN) to test a deployed function"),
]


def call(method: str, body: bytes | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(URL, data=body, method=method)
    request.add_header("Content-Type", "application/json")
    if TOKEN:
        request.add_header("Authorization", f"Bearer {TOKEN}")
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_a_dry_run_answers_the_run_document():
    status, doc = call("POST", json.dumps({"force": True, "dry_run": True}).encode())
    assert status == 200, doc
    assert set(doc) == {"run_id", "started_at", "finished_at", "summary", "checks"}
    assert sum(doc["summary"].values()) == len(doc["checks"]) > 0
    assert not any(check["notified"] for check in doc["checks"]), "a dry run posts nothing"


def test_an_unknown_field_is_a_400():
    status, doc = call("POST", json.dumps({"dryrun": True}).encode())
    assert status == 400
    assert "dryrun" in doc["error"]


def test_other_methods_are_a_405():
    status, _ = call("GET")
    assert status == 405
