# =============================================================================
# The monitor watched from outside: a log-based metric of finished runs and
# Cloud Monitoring alert policies that e-mail when the monitor itself fails
# =============================================================================

# How long without a finished run is too long (tests/test_infra.py evaluates
# this block with Terraform itself; keep it free of resource references).
locals {
  # Minutes between two ticks of each schedule whose cron has a form read here:
  # "* * * * *", "*/N * * * *", "M * * * *", "M */N * * *", "M H * * *".
  # Any other cron (weekdays, lists, ranges) gives no figure.
  schedule_crons = [for s in values(var.schedules) : replace(trimspace(s.cron), "/\\s+/", " ")]
  schedule_tick_minutes = [
    for c in local.schedule_crons : (
      c == "* * * * *" ? 1 :
      can(regex("^\\*/[1-9][0-9]* \\* \\* \\* \\*$", c)) ? min(60, tonumber(regex("^\\*/([0-9]+) ", c)[0])) :
      can(regex("^[0-9]+ \\* \\* \\* \\*$", c)) ? 60 :
      can(regex("^[0-9]+ \\*/[1-9][0-9]* \\* \\* \\*$", c)) ? min(1440, 60 * tonumber(regex("^[0-9]+ \\*/([0-9]+) ", c)[0])) :
      can(regex("^[0-9]+ [0-9]+ \\* \\* \\*$", c)) ? 1440 :
      0
    )
  ]
  # Two missed ticks plus a run that takes the whole timeout; one missed tick
  # alone (a retry that came late) is not worth an e-mail.
  derived_silence_minutes = 2 * min(concat([for m in local.schedule_tick_minutes : m if m > 0], [100000])...) + ceil(var.function_timeout_s / 60)
  # Cloud Monitoring watches an absence for at most 23.5 hours: beyond that, off.
  silence_minutes = var.max_silence_minutes != null ? var.max_silence_minutes : (local.derived_silence_minutes <= 1410 ? local.derived_silence_minutes : 0)
}

locals {
  # A gen2 function is served by a Cloud Run service of the same name: its
  # logs and request metrics carry that name as resource label service_name.
  watched_services = concat([local.monitor_function_name], var.enable_slack_actions ? [local.actions_function_name] : [])

  alert_channels = concat([for channel in google_monitoring_notification_channel.email : channel.id], var.alert_notification_channels)
  alerting       = length(var.alert_emails) + length(var.alert_notification_channels) > 0

  logs_link = "https://console.cloud.google.com/logs/query;query=resource.type%3D%22cloud_run_revision%22%0Aresource.labels.service_name%3D%22${local.monitor_function_name}%22?project=${var.project_id}"
}

# =============================================================================
# Log-based metric: one point per finished run
# =============================================================================

# The function logs one summary line per run with jsonPayload.event =
# "run_finished" (functions/anomaly_monitor/logs.py); counting those lines
# says the monitor is alive, whatever its checks found.
resource "google_logging_metric" "runs_finished" {
  project     = var.project_id
  name        = "${var.name_prefix}-runs-finished"
  description = "Runs of the anomaly monitor that finished (the run's summary line, whatever the checks found)."
  filter      = <<-EOT
    resource.type="cloud_run_revision"
    resource.labels.service_name="${local.monitor_function_name}"
    jsonPayload.event="run_finished"
  EOT

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Anomaly monitor runs finished"
  }

  depends_on = [google_project_service.enabled]
}

# =============================================================================
# Where the alerts go
# =============================================================================

resource "google_monitoring_notification_channel" "email" {
  for_each = toset(var.alert_emails)

  project      = var.project_id
  type         = "email"
  display_name = "Anomaly monitor: ${each.value}"
  description  = "Told when the anomaly monitor itself fails (infra/monitoring.tf)."
  labels = {
    email_address = each.value
  }
  user_labels = local.labels

  depends_on = [google_project_service.enabled]
}

# =============================================================================
# Alert policies (none unless alert_emails or alert_notification_channels is set)
# =============================================================================

# Nothing finished for too long: Scheduler paused or deleted, the deploy
# broken, every call refused before the code runs, the function hanging.
resource "google_monitoring_alert_policy" "silence" {
  count = local.alerting && local.silence_minutes > 0 ? 1 : 0

  project               = var.project_id
  display_name          = "Anomaly monitor: no run finished for ${local.silence_minutes} minutes"
  combiner              = "OR"
  severity              = "CRITICAL"
  notification_channels = local.alert_channels
  user_labels           = local.labels

  conditions {
    display_name = "No run_finished log entry for ${local.silence_minutes} minutes"

    condition_absent {
      filter   = "resource.type = \"cloud_run_revision\" AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.runs_finished.name}\""
      duration = "${local.silence_minutes * 60}s"

      # Summed over all revisions into one series: a deploy retires a revision,
      # and an absence watched per revision would fire for the old one.
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  documentation {
    subject   = "Anomaly monitor: no run has finished for ${local.silence_minutes} minutes"
    mime_type = "text/markdown"
    content   = <<-EOT
      No run of the anomaly monitor (function `${local.monitor_function_name}`) has logged
      `jsonPayload.event="run_finished"` for ${local.silence_minutes} minutes, so its checks are not
      being evaluated and nobody is alerted about the data.

      Look at, in this order:
      1. Cloud Scheduler: are the `${var.name_prefix}-*` jobs enabled, and what did the last run answer?
         `gcloud scheduler jobs list --location=${var.region}`
      2. The function's logs: [Logs Explorer](${local.logs_link}), or
         `gcloud functions logs read ${local.monitor_function_name} --gen2 --region=${var.region} --limit=50`
      3. The last deploy: `gcloud functions describe ${local.monitor_function_name} --gen2 --region=${var.region}`

      The incident closes by itself once a run finishes.
    EOT
  }
}

# The function answered 5xx: the run could not happen (Scheduler retries it),
# or the instance crashed, ran out of memory or hit its timeout. Also watches
# the slack_actions function, whose 5xx means a click was not recorded.
resource "google_monitoring_alert_policy" "server_errors" {
  count = local.alerting ? 1 : 0

  project               = var.project_id
  display_name          = "Anomaly monitor: function answered 5xx"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.alert_channels
  user_labels           = local.labels

  conditions {
    display_name = "5xx answers from ${join(" or ", local.watched_services)}"

    condition_threshold {
      filter          = "resource.type = \"cloud_run_revision\" AND resource.label.service_name = one_of(${join(", ", [for s in local.watched_services : "\"${s}\""])}) AND metric.type = \"run.googleapis.com/request_count\" AND metric.label.response_code_class = \"5xx\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      # No 5xx in a window means no data point at all: the incident then closes.
      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    subject   = "Anomaly monitor: a function answered 5xx"
    mime_type = "text/markdown"
    content   = <<-EOT
      A function of the anomaly monitor answered with a 5xx status in the last 5 minutes
      (the incident names the Cloud Run service: `${local.monitor_function_name}` runs the checks,
      `${local.actions_function_name}` takes the Slack buttons).

      For `${local.monitor_function_name}`, a 500 means the run could not happen (registry or state
      unreachable: the "run could not happen" alert says why); 503/504 mean a crash, out of memory or the
      ${var.function_timeout_s} s timeout. Cloud Scheduler retries each failed call ${var.scheduler_retry_count} times.

      [Logs Explorer](${local.logs_link}) (add `severity>=ERROR`), or
      `gcloud functions logs read ${local.monitor_function_name} --gen2 --region=${var.region} --limit=50`
    EOT
  }
}

# The run could not happen (registry unreadable, state store unreachable, bad
# settings): the function logs one ERROR line with jsonPayload.event =
# "run_failed" saying why. A log-match condition sends that entry itself.
resource "google_monitoring_alert_policy" "run_failed" {
  count = local.alerting ? 1 : 0

  project               = var.project_id
  display_name          = "Anomaly monitor: a run could not happen"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.alert_channels
  user_labels           = local.labels

  conditions {
    display_name = "run_failed logged by ${local.monitor_function_name}"

    condition_matched_log {
      filter = <<-EOT
        resource.type="cloud_run_revision"
        resource.labels.service_name="${local.monitor_function_name}"
        severity>=ERROR
        jsonPayload.event="run_failed"
      EOT
    }
  }

  alert_strategy {
    # Required for log-match conditions. Scheduler's retries of the same tick
    # land in one incident; a failure that lasts is re-sent at most hourly.
    notification_rate_limit {
      period = "3600s"
    }
    auto_close = "1800s"
  }

  documentation {
    subject   = "Anomaly monitor: a run could not happen"
    mime_type = "text/markdown"
    content   = <<-EOT
      The anomaly monitor (function `${local.monitor_function_name}`) logged that a run could not
      happen: no check was evaluated. The log entry (linked below) says why; the usual causes are
      the checks sheet no longer shared with the runtime service account or its tab renamed, the
      state dataset unreachable, or a bad setting. When the registry is unreadable, the `_registry`
      incident is also posted to the default Slack channel.

      [Logs Explorer](${local.logs_link}) (add `jsonPayload.event="run_failed"`)
    EOT
  }
}

# Alerts were asked for, but the silence watch could not be derived.
check "silence_is_watched" {
  assert {
    condition     = !(local.alerting && var.max_silence_minutes == null && local.silence_minutes == 0)
    error_message = "No run-silence alert: no schedule's cron gives a tick interval that Cloud Monitoring can watch (at most 23.5 hours of absence). Set max_silence_minutes (e.g. 1410), or 0 to silence this warning."
  }
}
