# =============================================================================
# Outputs
# =============================================================================

output "function_name" {
  description = "Name of the Cloud Function (gen2)."
  value       = google_cloudfunctions2_function.monitor.name
}

output "function_url" {
  description = "HTTPS URL of the function; callers need an identity token with roles/run.invoker."
  value       = google_cloudfunctions2_function.monitor.service_config[0].uri
}

output "runtime_service_account_email" {
  description = "The function's identity. Share the checks Google Sheet with this address (Editor: it writes the status tab)."
  value       = google_service_account.runtime.email
}

output "invoker_service_account_email" {
  description = "Identity the Cloud Scheduler jobs use to call the function."
  value       = google_service_account.invoker.email
}

output "build_service_account_email" {
  description = "Identity Cloud Build uses to build the function."
  value       = google_service_account.build.email
}

output "scheduler_job_names" {
  description = "Cloud Scheduler job names by schedule, for `gcloud scheduler jobs run NAME --location=REGION`."
  value       = { for key, job in google_cloud_scheduler_job.run_checks : key => job.name }
}

output "region" {
  description = "Region of the function and the scheduler jobs."
  value       = var.region
}

output "state_table_id" {
  description = "The history table, as PROJECT.DATASET.TABLE for SQL."
  value       = "${google_bigquery_table.check_results.project}.${google_bigquery_table.check_results.dataset_id}.${google_bigquery_table.check_results.table_id}"
}

output "slack_secret_id" {
  description = "Secret Manager secret that holds the Slack bot token; add its value with `gcloud secrets versions add`."
  value       = google_secret_manager_secret.slack_bot_token.secret_id
}

output "slack_secret_name" {
  description = "Full resource name of the Slack token secret."
  value       = google_secret_manager_secret.slack_bot_token.name
}

output "source_bucket" {
  description = "Private bucket holding the zipped function source."
  value       = google_storage_bucket.function_source.name
}

output "incident_events_table_id" {
  description = "The table of Slack clicks (acknowledge, snooze, mute, expected), as PROJECT.DATASET.TABLE for SQL."
  value       = "${google_bigquery_table.incident_events.project}.${google_bigquery_table.incident_events.dataset_id}.${google_bigquery_table.incident_events.table_id}"
}

# --- Slack actions (null when enable_slack_actions = false) -------------------

output "slack_actions_url" {
  description = "Paste into the Slack app: Interactivity & Shortcuts -> Request URL (settings.interactivity.request_url in slack-app-manifest.yml)."
  value       = one(google_cloudfunctions2_function.slack_actions[*].service_config[0].uri)
}

output "slack_actions_service_account_email" {
  description = "Identity of the slack_actions function."
  value       = one(google_service_account.slack_actions[*].email)
}

output "slack_signing_secret_id" {
  description = "Secret Manager secret that holds the Slack signing secret; add its value with `gcloud secrets versions add`."
  value       = one(google_secret_manager_secret.slack_signing_secret[*].secret_id)
}

# --- Watching the monitor ------------------------------------------------------

output "runs_finished_metric" {
  description = "The log-based metric counting finished runs, as a Cloud Monitoring metric type."
  value       = "logging.googleapis.com/user/${google_logging_metric.runs_finished.name}"
}

output "max_silence_minutes" {
  description = "Minutes without a finished run after which the silence alert fires (0: not watched)."
  value       = local.silence_minutes
}

output "alert_policies" {
  description = "Cloud Monitoring alert policies watching the monitor (empty without alert_emails or alert_notification_channels)."
  value = concat(
    google_monitoring_alert_policy.silence[*].name,
    google_monitoring_alert_policy.server_errors[*].name,
    google_monitoring_alert_policy.run_failed[*].name,
  )
}
