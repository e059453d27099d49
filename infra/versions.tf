# =============================================================================
# Versions: Terraform itself and the providers this configuration is written for
# =============================================================================

terraform {
  # optional() attribute defaults in variable types, check-free preconditions.
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0, < 7.0"
    }
    # archive_file with glob patterns in `excludes`.
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.7, < 3.0"
    }
  }
}
