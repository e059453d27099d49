"""Wiring of infra/: what Terraform deploys matches what the code reads, and nothing is public."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

# python-hcl2 8.x: labels and strings come back quoted unless strip_string_quotes is set.
hcl2 = pytest.importorskip("hcl2", minversion="8")

from anomaly_monitor.settings import ENV_VARS  # noqa: E402
from anomaly_monitor.state.schema import CHECK_RESULTS_SCHEMA  # noqa: E402

INFRA = Path(__file__).resolve().parent.parent / "infra"

# Read by the code but only ever set by tests, against local fakes.
TEST_ONLY_ENV = {"SLACK_API_URL", "BIGQUERY_API_ENDPOINT", "SHEETS_API_URL"}
# The alternative to SLACK_BOT_TOKEN; infra/ passes the token itself as a secret env var.
ALTERNATIVE_ENV = {"SLACK_BOT_TOKEN_SECRET"}
# Set by Cloud Functions itself; declared in infra/ only to avoid a permanent diff.
PLATFORM_ENV = {"LOG_EXECUTION_ID"}

FUNCTION = "google_cloudfunctions2_function.monitor"
FUNCTION_URI = f"${{{FUNCTION}.service_config[0].uri}}"
FUNCTION_SERVICE = f"${{{FUNCTION}.service_config[0].service}}"
RUNTIME_MEMBER = "serviceAccount:${google_service_account.runtime.email}"
INVOKER_MEMBER = "serviceAccount:${google_service_account.invoker.email}"
PUBLIC_PRINCIPALS = ("allUsers", "allAuthenticatedUsers")


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


def the_function(tf: dict[str, Any]) -> dict[str, Any]:
    functions = resources(tf, "google_cloudfunctions2_function")
    assert list(functions) == ["monitor"], f"infra/ deploys exactly one function, {FUNCTION}"
    return functions["monitor"]


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
    for address, _, body in invoker_grants:
        assert address.startswith("google_cloud_run_v2_service_iam_member."), f"{address}: bind on the service"
        assert body["name"] == FUNCTION_SERVICE, f"{address}: must name the function's own Cloud Run service"
        assert body["role"] == "roles/run.invoker"


def test_invoker_account_has_no_other_role(tf):
    for address, member, body in iam_grants(tf):
        if member == INVOKER_MEMBER:
            assert address.startswith("google_cloud_run_v2_service_iam_member."), address
            assert body["role"] == "roles/run.invoker", address


def test_slack_secret_is_readable_by_the_runtime_account_only(tf):
    secrets = resources(tf, "google_secret_manager_secret")
    assert list(secrets) == ["slack_bot_token"]
    assert block(secrets["slack_bot_token"], "replication") == {"auto": [{}]}
    secret_grants = [(a, m, b) for a, m, b in iam_grants(tf) if a.startswith("google_secret_manager_secret_iam_")]
    assert [(m, b["role"]) for _, m, b in secret_grants] == [(RUNTIME_MEMBER, "roles/secretmanager.secretAccessor")]
    assert secret_grants[0][2]["secret_id"] == "${google_secret_manager_secret.slack_bot_token.secret_id}"
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


def test_nothing_is_granted_to_the_public(tf):
    for address, member, _ in iam_grants(tf):
        assert member not in PUBLIC_PRINCIPALS, address
    condition = tf["variable"]["extra_invokers"]["validation"][0]["condition"]
    pattern = re.search(r'regex\("(.+?)", m\)', condition).group(1).replace("\\\\", "\\")
    for public in PUBLIC_PRINCIPALS:
        assert not re.search(pattern, public), f"extra_invokers would accept {public}"
    assert re.search(pattern, "user:you@example.com")


# --- BigQuery ----------------------------------------------------------------


def test_history_table_schema_is_the_codes_schema(tf):
    table = resources(tf, "google_bigquery_table")["check_results"]
    m = re.fullmatch(r"\$\{file\(\"\$\{path\.module\}/(.+)\"\)\}", table["schema"])
    assert m, f"schema should be read from a JSON file in infra/, got {table['schema']!r}"
    columns = json.loads((INFRA / m.group(1)).read_text())
    assert [(c["name"], c["type"], c["mode"]) for c in columns] == CHECK_RESULTS_SCHEMA


def test_history_table_is_day_partitioned_on_checked_at_and_clustered_by_check_name(tf):
    table = resources(tf, "google_bigquery_table")["check_results"]
    assert table["table_id"] == "check_results"
    assert table["dataset_id"] == "${google_bigquery_dataset.state.dataset_id}"
    assert block(table, "time_partitioning") == {"type": "DAY", "field": "checked_at"}
    assert table["clustering"] == ["check_name"]
    assert table["deletion_protection"] == "${var.deletion_protection}"
    assert tf["variable"]["deletion_protection"]["default"] is True


# --- The function ------------------------------------------------------------


def test_function_sets_every_environment_variable_the_code_reads_in_the_cloud(tf):
    service = block(the_function(tf), "service_config")
    plain = service["environment_variables"]
    secret = {s["key"]: s for s in service["secret_environment_variables"]}
    expected = set(ENV_VARS) - TEST_ONLY_ENV - ALTERNATIVE_ENV
    assert expected <= set(plain) | set(secret), f"not set: {sorted(expected - set(plain) - set(secret))}"
    assert set(plain) - PLATFORM_ENV <= set(ENV_VARS), f"unknown to the code: {sorted(set(plain) - set(ENV_VARS))}"
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
    assert {f"{api}.googleapis.com" for api in needed | {"sheets", "iam", "logging"}} <= enabled


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
    }
    assert wanted <= set(tf["output"])
    assert tf["output"]["function_url"]["value"] == FUNCTION_URI
