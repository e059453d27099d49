# =============================================================================
# Service accounts: one to run the function, one for Scheduler to call it,
# one for Cloud Build to build it
# =============================================================================

resource "google_service_account" "runtime" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-run"
  display_name = "Anomaly monitor runtime"
  description  = "Identity of the anomaly-monitor function: reads the checks sheet, queries BigQuery, writes history, reads the Slack token."

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "invoker" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-invoker"
  display_name = "Anomaly monitor invoker"
  description  = "Identity of the Cloud Scheduler jobs that call the anomaly-monitor function (OIDC)."

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-build"
  display_name = "Anomaly monitor build"
  description  = "Identity of Cloud Build when it builds the anomaly-monitor function."

  depends_on = [google_project_service.enabled]
}

# =============================================================================
# Runtime account: each role on the single resource that needs it
# =============================================================================

# Running a query is a project-level permission (bigquery.jobs.create).
resource "google_project_iam_member" "runtime_bigquery_job_user" {
  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = "serviceAccount:${google_service_account.runtime.email}"
}

# Read access to the monitored datasets, one binding per dataset.
resource "google_bigquery_dataset_iam_member" "runtime_reads_monitored" {
  for_each = local.monitored_datasets

  project    = each.value.project
  dataset_id = each.value.dataset
  role       = "roles/bigquery.dataViewer"
  member     = "serviceAccount:${google_service_account.runtime.email}"
}

# Write access to the monitor's own state dataset only.
resource "google_bigquery_dataset_iam_member" "runtime_writes_state" {
  project    = var.project_id
  dataset_id = google_bigquery_dataset.state.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = "serviceAccount:${google_service_account.runtime.email}"
}

# The Slack token, and no other secret.
resource "google_secret_manager_secret_iam_member" "runtime_reads_slack_token" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.slack_bot_token.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.runtime.email}"
}

# =============================================================================
# Invoker account: may call this function's Cloud Run service, nothing else
# =============================================================================

# A gen2 function is served by a Cloud Run service; invoking it needs
# run.routes.invoke on that service. `service` is its full resource name,
# which this resource accepts as `name`.
resource "google_cloud_run_v2_service_iam_member" "invoker_calls_function" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.monitor.service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.invoker.email}"
}

resource "google_cloud_run_v2_service_iam_member" "extra_invokers" {
  for_each = toset(var.extra_invokers)

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.monitor.service_config[0].service
  role     = "roles/run.invoker"
  member   = each.value
}

# =============================================================================
# Build account: what Cloud Build needs to turn the source into an image
# =============================================================================

# Cloud Run Builder: write build logs, push the image to Artifact Registry.
resource "google_project_iam_member" "build_builder" {
  project = var.project_id
  role    = "roles/run.builder"
  member  = "serviceAccount:${google_service_account.build.email}"
}

resource "google_storage_bucket_iam_member" "build_reads_source" {
  bucket = google_storage_bucket.function_source.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.build.email}"
}
