# =============================================================================
# Slack actions: the Request URL of the Slack app's interactivity (Acknowledge,
# Snooze, Mute, Expected). Everything here exists only when
# enable_slack_actions is true.
# =============================================================================

# The app's signing secret, empty: add its value with `gcloud secrets versions
# add` (infra/README.md). No google_secret_manager_secret_version here, for the
# same reason as the bot token's: its value would sit in plain text in state.
resource "google_secret_manager_secret" "slack_signing_secret" {
  count = var.enable_slack_actions ? 1 : 0

  project   = var.project_id
  secret_id = var.slack_signing_secret_id
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "slack_actions" {
  count = var.enable_slack_actions ? 1 : 0

  project      = var.project_id
  account_id   = "${var.name_prefix}-actions"
  display_name = "Anomaly monitor Slack actions"
  description  = "Identity of the slack_actions function: verifies Slack's signature, records clicks in incident_events, updates the message."

  depends_on = [google_project_service.enabled]
}

# =============================================================================
# Its account: what recording a click needs, each on the one resource
# =============================================================================

# The click is checked against check_results (was this message posted for an
# open incident of this check?) with a query, and running any query is
# bigquery.jobs.create, which exists only at project level: no dataset-level
# role grants it. It lets the account start jobs, not read data; what a job
# may read is still decided by the dataset grants below (only the state dataset).
resource "google_project_iam_member" "slack_actions_bigquery_job_user" {
  count = var.enable_slack_actions ? 1 : 0

  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = "serviceAccount:${google_service_account.slack_actions[0].email}"
}

# Look the incident up in check_results, append the click to incident_events.
resource "google_bigquery_dataset_iam_member" "slack_actions_writes_state" {
  count = var.enable_slack_actions ? 1 : 0

  project    = var.project_id
  dataset_id = google_bigquery_dataset.state.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = "serviceAccount:${google_service_account.slack_actions[0].email}"
}

# Update the clicked message ("Acknowledged by @ana") with the bot token.
resource "google_secret_manager_secret_iam_member" "slack_actions_reads_slack_token" {
  count = var.enable_slack_actions ? 1 : 0

  project   = var.project_id
  secret_id = google_secret_manager_secret.slack_bot_token.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.slack_actions[0].email}"
}

# Verify each request's v0 signature.
resource "google_secret_manager_secret_iam_member" "slack_actions_reads_signing_secret" {
  count = var.enable_slack_actions ? 1 : 0

  project   = var.project_id
  secret_id = google_secret_manager_secret.slack_signing_secret[0].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.slack_actions[0].email}"
}

# =============================================================================
# The function: same source zip, entry point slack_actions
# =============================================================================

resource "google_cloudfunctions2_function" "slack_actions" {
  # checkov:skip=CKV_GCP_124: Slack calls the Request URL from the internet, so ingress must be ALLOW_ALL; every request must carry Slack's signature (see slack_actions_public).
  count = var.enable_slack_actions ? 1 : 0

  project     = var.project_id
  location    = var.region
  name        = local.actions_function_name
  description = "Slack interactivity endpoint of the anomaly monitor: records Acknowledge, Snooze, Mute and Expected clicks."
  labels      = local.labels

  build_config {
    runtime         = "python312"
    entry_point     = "slack_actions"
    service_account = google_service_account.build.id

    source {
      storage_source {
        bucket = google_storage_bucket.function_source.name
        object = google_storage_bucket_object.function_source.name
      }
    }
  }

  service_config {
    service_account_email = google_service_account.slack_actions[0].email
    # Slack calls from the internet; the signature check is the authentication.
    ingress_settings = "ALLOW_ALL"
    # Slack waits 3 s for the answer; a click never needs longer than this.
    timeout_seconds = 60
    # A whole CPU: the cold start is mostly CPU-bound imports, and it counts
    # against Slack's 3 s. Billed only while a request is handled.
    available_memory = "512Mi"
    available_cpu    = "1"

    # Clicks are rare; a cap bounds what a flood of unsigned requests can cost.
    min_instance_count               = var.slack_actions_min_instances
    max_instance_count               = 3
    max_instance_request_concurrency = 1
    all_traffic_on_latest_revision   = true

    # The secrets are read from Secret Manager when the first click arrives
    # (not as secret environment variables): the function deploys even before
    # the signing secret has a value, and neither value is in Terraform state.
    environment_variables = {
      STATE_URL                   = "bigquery://${var.project_id}/${google_bigquery_dataset.state.dataset_id}"
      SLACK_BOT_TOKEN_SECRET      = "projects/${var.project_id}/secrets/${google_secret_manager_secret.slack_bot_token.secret_id}/versions/${var.slack_secret_version}"
      SLACK_SIGNING_SECRET_SECRET = "projects/${var.project_id}/secrets/${google_secret_manager_secret.slack_signing_secret[0].secret_id}/versions/${var.slack_signing_secret_version}"
      LOG_FORMAT                  = "json"
      # Cloud Functions adds this one itself; declaring it avoids a permanent diff.
      LOG_EXECUTION_ID = "true"
    }
  }

  depends_on = [
    google_project_service.enabled,
    google_project_iam_member.build_builder,
    google_storage_bucket_iam_member.build_reads_source,
  ]
}

# Public invoker, on this function's Cloud Run service only. Slack cannot
# present a Google identity (OIDC) token, so Cloud Run cannot authenticate it;
# the function authenticates every request itself by Slack's v0 signature
# (HMAC-SHA256 with the signing secret, timestamp within 5 minutes) and
# answers anything else 401 without reading or writing any state.
resource "google_cloud_run_v2_service_iam_member" "slack_actions_public" {
  # checkov:skip=CKV_GCP_102: Slack's requests carry no Google identity; the function verifies Slack's signature instead (see above). checkov 3.3 applies this check to v1 google_cloud_run_service_iam_* only; the skip names the exception should it cover v2.
  count = var.enable_slack_actions ? 1 : 0

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.slack_actions[0].service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}
