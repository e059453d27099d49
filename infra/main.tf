# =============================================================================
# Provider and shared values
# =============================================================================

provider "google" {
  project = var.project_id
  region  = var.region
}

locals {
  # Every dataset the checks may read, keyed by how the user wrote it:
  # "DATASET" lives in project_id, "PROJECT.DATASET" names its project.
  monitored_datasets = {
    for ref in distinct(concat([var.warehouse_dataset], var.monitored_datasets)) : ref => {
      project = length(regexall("\\.", ref)) > 0 ? regex("^(.+)\\.[^.]+$", ref)[0] : var.project_id
      dataset = regex("[^.]+$", ref)
    }
  }
  warehouse = local.monitored_datasets[var.warehouse_dataset]

  labels = merge({ app = "anomaly-monitor" }, var.labels)

  # Function names, which are also the names of the Cloud Run services that
  # serve them (and so the service_name label on their logs and metrics).
  monitor_function_name = var.name_prefix
  actions_function_name = "${var.name_prefix}-slack-actions"

  # APIs the monitor needs. Sheets (and Drive, which gspread may call for file
  # metadata) are called by the function; the rest by the deployment (Cloud
  # Functions gen2 builds with Cloud Build, stores the image in Artifact
  # Registry and runs it on Cloud Run; Logging and Monitoring watch it).
  services = toset([
    "artifactregistry.googleapis.com",
    "bigquery.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "drive.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "sheets.googleapis.com",
    "storage.googleapis.com",
  ])
}

# =============================================================================
# Required APIs
# =============================================================================

resource "google_project_service" "enabled" {
  for_each = local.services

  project = var.project_id
  service = each.value

  # Other workloads in the project may rely on these APIs: never switch them off.
  disable_on_destroy = false
}
