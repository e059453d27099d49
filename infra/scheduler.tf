# =============================================================================
# Cloud Scheduler: one job per entry of var.schedules
# =============================================================================

locals {
  function_uri = google_cloudfunctions2_function.monitor.service_config[0].uri

  # The HTTP API refuses unknown fields; unset ones are left out, not sent as null.
  schedule_bodies = {
    for name, schedule in var.schedules :
    name => { for field, value in schedule.body : field => value if value != null }
  }
}

resource "google_cloud_scheduler_job" "run_checks" {
  for_each = var.schedules

  project     = var.project_id
  region      = var.region
  name        = "${var.name_prefix}-${each.key}"
  description = "Calls the anomaly-monitor function (${each.key})."
  schedule    = each.value.cron
  time_zone   = each.value.time_zone

  # Wait for the whole run (plus a margin for a cold start) before calling it failed.
  attempt_deadline = "${min(var.function_timeout_s + 30, 1800)}s"

  # A 5xx ("the run could not happen") or a timeout is retried with backoff;
  # the function does not post the same alert twice.
  retry_config {
    retry_count          = var.scheduler_retry_count
    min_backoff_duration = "30s"
    max_backoff_duration = "300s"
    max_doublings        = 3
  }

  http_target {
    http_method = "POST"
    uri         = local.function_uri
    body        = base64encode(jsonencode(local.schedule_bodies[each.key]))
    headers = {
      "Content-Type" = "application/json"
    }

    oidc_token {
      service_account_email = google_service_account.invoker.email
      audience              = local.function_uri
    }
  }

  depends_on = [
    google_project_service.enabled,
    google_cloud_run_v2_service_iam_member.invoker_calls_function,
  ]
}
