# =============================================================================
# State dataset: the check_results history, the notices delivery journal and the incident_events of Slack clicks
# =============================================================================

resource "google_bigquery_dataset" "state" {
  # checkov:skip=CKV_GCP_81: Google-managed encryption is enough for check outcomes; a CMEK would add a KMS key to create and rotate.
  project     = var.project_id
  dataset_id  = var.state_dataset_id
  location    = var.bigquery_location
  description = "History and alert state of the SQL anomaly monitor."
  labels      = local.labels

  # Never drop the history with the dataset; the table's deletion protection guards it too.
  delete_contents_on_destroy = false

  depends_on = [google_project_service.enabled]
}

resource "google_bigquery_table" "check_results" {
  # checkov:skip=CKV_GCP_80: Google-managed encryption is enough for check outcomes; see the dataset.
  project     = var.project_id
  dataset_id  = google_bigquery_dataset.state.dataset_id
  table_id    = "check_results"
  description = "One row per check evaluation (append-only); alert state is derived from it."
  labels      = local.labels

  # Same columns, types and modes as CHECK_RESULTS_SCHEMA in
  # functions/anomaly_monitor/state/schema.py (tests/test_infra.py keeps them equal).
  # FLOAT64/INT64/BOOL: the API accepts them and the provider treats them as
  # equal to the FLOAT/INTEGER/BOOLEAN it reads back, so there is no diff.
  schema = file("${path.module}/schemas/check_results.json")

  time_partitioning {
    type  = "DAY"
    field = "checked_at"
  }

  clustering = ["check_name"]

  deletion_protection = var.deletion_protection
}

resource "google_bigquery_table" "incident_events" {
  # checkov:skip=CKV_GCP_80: Google-managed encryption is enough for who clicked what on an alert; see the dataset.
  project     = var.project_id
  dataset_id  = google_bigquery_dataset.state.dataset_id
  table_id    = "incident_events"
  description = "What people did to an incident from Slack (acknowledge, snooze, mute, expected), one row per click (append-only); the lifecycle reads it with check_results."
  labels      = local.labels

  # Same columns, types and modes as the code's incident_events schema in
  # functions/anomaly_monitor/state/schema.py (tests/test_infra.py keeps them
  # equal). Created here even when enable_slack_actions is false: runs read it.
  schema = file("${path.module}/schemas/incident_events.json")

  time_partitioning {
    type  = "DAY"
    field = "at"
  }

  clustering = ["check_name"]

  deletion_protection = var.deletion_protection
}

resource "google_bigquery_table" "notices" {
  # checkov:skip=CKV_GCP_80: Google-managed encryption is enough for delivery records; see the dataset.
  project     = var.project_id
  dataset_id  = google_bigquery_dataset.state.dataset_id
  table_id    = "notices"
  description = "The delivery journal (append-only): each Slack notice before it is sent, and what became of it."
  labels      = local.labels

  # Same columns as NOTICES_SCHEMA in functions/anomaly_monitor/state/schema.py.
  schema = file("${path.module}/schemas/notices.json")

  time_partitioning {
    type  = "DAY"
    field = "recorded_at"
  }

  clustering = ["check_name"]

  deletion_protection = var.deletion_protection
}
