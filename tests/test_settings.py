"""Settings from the environment: defaults, clear errors naming the variable, and no secret in the repr."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anomaly_monitor.errors import ConfigError
from anomaly_monitor.settings import ENV_VARS, Settings


def test_an_empty_environment_gives_the_local_defaults() -> None:
    assert Settings.from_env({}) == Settings()
    assert Settings().warehouse_url == "sqlite:///data/warehouse.db"
    assert (Settings().max_gb_billed, Settings().max_workers, Settings().log_format) == (10.0, 8, "text")


def test_each_field_is_read_from_its_variable_and_blank_means_default() -> None:
    settings = Settings.from_env(
        {
            "CHECKS_SOURCE": " sheets://KEY ",
            "MAX_GB_BILLED": "2.5",
            "QUERY_TIMEOUT_S": "30",
            "MAX_WORKERS": "3",
            "SLACK_DEFAULT_CHANNEL": "",
            "LOG_FORMAT": "json",
            "RUN_TIMEOUT_S": "30",
            "SHARED_CAUSE_MIN_CHECKS": "5",
        }
    )
    assert settings.checks_source == "sheets://KEY"
    assert (settings.max_gb_billed, settings.query_timeout_s, settings.max_workers) == (2.5, 30.0, 3)
    assert settings.slack_default_channel is None
    assert settings.log_format == "json"
    assert (settings.run_timeout_s, settings.shared_cause_min_checks) == (30.0, 5)


def test_the_cloud_logs_json_unless_told_otherwise() -> None:
    assert Settings.from_env({"K_SERVICE": "monitor"}).log_format == "json"
    assert Settings.from_env({"K_SERVICE": "monitor", "LOG_FORMAT": "text"}).log_format == "text"


@pytest.mark.parametrize("item", [f for f in dataclasses.fields(Settings) if not f.metadata], ids=lambda f: f.name)
def test_every_text_setting_is_read_from_its_variable(item: dataclasses.Field) -> None:
    assert item.name.upper() in ENV_VARS
    assert getattr(Settings.from_env({item.name.upper(): "some-value"}), item.name) == "some-value"


@pytest.mark.parametrize(
    ("variable", "raw", "says"),
    [
        ("MAX_GB_BILLED", "0", "MAX_GB_BILLED must be a number above 0, got '0'"),
        ("MAX_GB_BILLED", "-1", "MAX_GB_BILLED must be a number above 0"),
        ("MAX_GB_BILLED", "ten", "MAX_GB_BILLED must be a number, got 'ten'"),
        ("MAX_GB_BILLED", "nan", "MAX_GB_BILLED must be a number above 0"),
        ("QUERY_TIMEOUT_S", "inf", "QUERY_TIMEOUT_S must be a number above 0"),
        ("MAX_WORKERS", "2.5", "MAX_WORKERS must be a whole number such as 8, got '2.5'"),
        ("MAX_WORKERS", "0", "MAX_WORKERS must be at least 1"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT must be 'json' or 'text', got 'xml'"),
        ("RUN_TIMEOUT_S", "10", "RUN_TIMEOUT_S must be a number at least 30, got '10'"),
        ("SHARED_CAUSE_MIN_CHECKS", "1", "SHARED_CAUSE_MIN_CHECKS must be at least 2, got '1'"),
        ("SLACK_API_URL", "not a url", "SLACK_API_URL must be an http\\(s\\) URL such as http://127.0.0.1:8080/"),
        ("SHEETS_API_URL", "ftp://sheets.local/", "SHEETS_API_URL must be an http\\(s\\) URL"),
        ("BIGQUERY_API_ENDPOINT", "http://[::1", "BIGQUERY_API_ENDPOINT must be an http\\(s\\) URL"),
        ("BIGQUERY_API_ENDPOINT", "localhost:9050", "BIGQUERY_API_ENDPOINT must be an http\\(s\\) URL"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(variable: str, raw: str, says: str) -> None:
    with pytest.raises(ConfigError, match=f"^environment variable {says}"):
        Settings.from_env({variable: raw})


def test_the_token_is_left_out_of_the_repr() -> None:
    token = "xoxb-1234-secret"
    settings = Settings.from_env({"SLACK_BOT_TOKEN": token, "CHECKS_SOURCE": "data/checks.csv"})
    assert settings.slack_bot_token == token
    assert token not in repr(settings) and "slack_bot_token=" not in repr(settings)
    assert "checks_source='data/checks.csv'" in repr(settings)


@given(st.dictionaries(st.sampled_from(ENV_VARS), st.text(max_size=20)))
def test_any_environment_gives_settings_or_a_config_error(environ: dict[str, str]) -> None:
    try:
        settings = Settings.from_env(environ)
    except ConfigError as exc:
        assert str(exc).startswith("environment variable ")
        return
    assert settings.max_gb_billed > 0 and settings.query_timeout_s > 0 and settings.max_workers >= 1
    assert settings.run_timeout_s >= 30 and settings.shared_cause_min_checks >= 2


def test_the_readme_configuration_table_lists_every_variable_with_its_default() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 3:
            rows[cells[0].strip("`")] = cells[1]
    assert list(rows) == list(ENV_VARS), "one row per variable, in the order Settings declares them"
    for variable in dataclasses.fields(Settings):
        shown = rows[variable.name.upper()]
        default = variable.default
        if default is None:
            assert shown in ("unset", "Slack's own", "Google's own"), variable.name
        else:
            text = f"{default:g}" if isinstance(default, float) else str(default)
            assert f"`{text}`" in shown, f"{variable.name}: the README says {shown}, Settings {default!r}"


def test_the_api_addresses_are_read_as_given() -> None:
    environ = {"SLACK_API_URL": "http://127.0.0.1:1234/api/", "SHEETS_API_URL": "https://sheets.example"}
    settings = Settings.from_env(environ | {"BIGQUERY_API_ENDPOINT": "http://[::1]:9050"})
    assert (settings.slack_api_url, settings.sheets_api_url) == tuple(environ.values())
    assert settings.bigquery_api_endpoint == "http://[::1]:9050"


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        ({"STATUS_WORKSHEET": "checks"}, "STATUS_WORKSHEET names worksheet 'checks', as CHECKS_WORKSHEET does"),
        ({"CHECKS_WORKSHEET": "Registry", "EXCLUSIONS_WORKSHEET": "registry"}, "EXCLUSIONS_WORKSHEET names worksheet"),
        ({"EXCLUSIONS_WORKSHEET": "status"}, "EXCLUSIONS_WORKSHEET names worksheet 'status', as STATUS_WORKSHEET"),
    ],
)
def test_two_jobs_on_one_worksheet_are_refused_naming_both_variables(environ: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError, match=f"^environment variable {says}"):
        Settings.from_env(environ)
