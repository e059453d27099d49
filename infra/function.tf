# =============================================================================
# Function source: functions/ zipped, stored in a private bucket by content hash
# =============================================================================

data "archive_file" "function_source" {
  type        = "zip"
  source_dir  = "${path.module}/../functions"
  output_path = "${path.module}/build/function-source.zip"

  # Same bytes for the same code on every machine, so the hash below only
  # changes when the code does.
  output_file_mode = "0644"

  excludes = [
    "**/__pycache__",
    "**/__pycache__/**",
    "**/*.pyc",
    "**/.pytest_cache/**",
    "**/.DS_Store",
    "**/*.db",
    "**/*.db-*",
    "tests",
    "tests/**",
    "data",
    "data/**",
    ".venv",
    ".venv/**",
  ]
}

resource "google_storage_bucket" "function_source" {
  # checkov:skip=CKV_GCP_62: The bucket only holds the function's zipped source; Cloud Audit Logs record access to it.
  project  = var.project_id
  name     = "${var.project_id}-${var.name_prefix}-source"
  location = var.region
  labels   = local.labels

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  # Objects are named by content hash and never overwritten; versioning only
  # guards against deletion, and old versions expire.
  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
    }
    action {
      type = "Delete"
    }
  }

  # Only build inputs live here: let `terraform destroy` empty the bucket.
  force_destroy = true

  depends_on = [google_project_service.enabled]
}

resource "google_storage_bucket_object" "function_source" {
  bucket = google_storage_bucket.function_source.name
  # A new name for every code change makes Terraform update the function.
  name         = "function-source-${data.archive_file.function_source.output_md5}.zip"
  source       = data.archive_file.function_source.output_path
  content_type = "application/zip"
}

# =============================================================================
# The Cloud Function (gen2)
# =============================================================================

resource "google_cloudfunctions2_function" "monitor" {
  project     = var.project_id
  location    = var.region
  name        = local.monitor_function_name
  description = "Runs the SQL anomaly checks from the Google Sheet against BigQuery and alerts on Slack."
  labels      = local.labels

  build_config {
    runtime         = "python312"
    entry_point     = "run_checks"
    service_account = google_service_account.build.id

    source {
      storage_source {
        bucket = google_storage_bucket.function_source.name
        object = google_storage_bucket_object.function_source.name
      }
    }
  }

  service_config {
    service_account_email = google_service_account.runtime.email
    ingress_settings      = var.ingress_settings
    timeout_seconds       = var.function_timeout_s
    available_memory      = var.function_memory

    # One run at a time: overlapping runs could post the same alert twice.
    min_instance_count               = 0
    max_instance_count               = 1
    max_instance_request_concurrency = 1
    all_traffic_on_latest_revision   = true

    environment_variables = {
      CHECKS_SOURCE         = "sheets://${var.checks_sheet_key}"
      CHECKS_WORKSHEET      = var.checks_worksheet
      STATUS_WORKSHEET      = var.status_worksheet
      EXCLUSIONS_WORKSHEET  = var.exclusions_worksheet
      WAREHOUSE_URL         = "bigquery://${local.warehouse.project}/${local.warehouse.dataset}"
      STATE_URL             = "bigquery://${var.project_id}/${google_bigquery_dataset.state.dataset_id}"
      SLACK_DEFAULT_CHANNEL = var.slack_default_channel
      MAX_GB_BILLED         = tostring(var.max_gb_billed)
      QUERY_TIMEOUT_S       = tostring(var.query_timeout_s)
      MAX_WORKERS           = tostring(var.max_workers)
      LOG_FORMAT            = "json"
      # Slack waits (Retry-After, pacing) must end before the invocation does.
      RUN_TIMEOUT_S           = tostring(var.function_timeout_s)
      SHARED_CAUSE_MIN_CHECKS = tostring(var.shared_cause_min_checks)
      # Cloud Functions adds this one itself; declaring it avoids a permanent diff.
      LOG_EXECUTION_ID = "true"
    }

    # The token reaches the function as an environment variable, read from
    # Secret Manager when an instance starts; it is never in Terraform state.
    secret_environment_variables {
      key        = "SLACK_BOT_TOKEN"
      project_id = var.project_id
      secret     = google_secret_manager_secret.slack_bot_token.secret_id
      version    = var.slack_secret_version
    }
  }

  lifecycle {
    precondition {
      condition     = var.query_timeout_s < var.function_timeout_s
      error_message = "The query_timeout_s must be shorter than function_timeout_s, or a slow query outlives the invocation."
    }
  }

  depends_on = [
    google_project_service.enabled,
    # Cloud Run checks at deploy time that the runtime account can read the secret.
    google_secret_manager_secret_iam_member.runtime_reads_slack_token,
    google_project_iam_member.build_builder,
    google_storage_bucket_iam_member.build_reads_source,
  ]
}
