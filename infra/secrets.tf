# =============================================================================
# Slack bot token secret (the value is added outside Terraform)
# =============================================================================

# There is deliberately no google_secret_manager_secret_version here: its
# secret_data would be stored in plain text in the Terraform state. Add the
# token with `gcloud secrets versions add` (see infra/README.md).
resource "google_secret_manager_secret" "slack_bot_token" {
  project   = var.project_id
  secret_id = var.slack_secret_id
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}
