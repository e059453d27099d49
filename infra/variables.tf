# =============================================================================
# Project and naming
# =============================================================================

variable "project_id" {
  description = "ID of the Google Cloud project that hosts the monitor (function, scheduler, state dataset, secret)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "The project_id must be a project ID (6-30 lowercase letters, digits or hyphens), not a project name or number."
  }
}

variable "region" {
  description = "Region of the function, the scheduler jobs and the source bucket, e.g. europe-west1."
  type        = string
  default     = "europe-west1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "The region must be a Google Cloud region such as europe-west1 or us-central1 (not a zone or multi-region)."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name (function, service accounts, bucket, scheduler jobs)."
  type        = string
  default     = "anomaly-monitor"

  validation {
    # Service-account IDs are "<prefix>-invoker": at most 30 characters.
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.name_prefix))
    error_message = "The name_prefix must be 3-20 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "labels" {
  description = "Labels added to every resource that supports them."
  type        = map(string)
  default     = {}
}

# =============================================================================
# Check registry (Google Sheet)
# =============================================================================

variable "checks_sheet_key" {
  description = "Key of the Google Sheet holding the checks: the part between /d/ and /edit in its URL. Share the sheet (Editor) with the runtime service account (output runtime_service_account_email)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{20,}$", var.checks_sheet_key))
    error_message = "The checks_sheet_key must be the spreadsheet key from its URL (https://docs.google.com/spreadsheets/d/KEY/edit), not the whole URL."
  }
}

variable "checks_worksheet" {
  description = "Worksheet (tab) of the sheet that lists the checks."
  type        = string
  default     = "checks"

  validation {
    condition     = length(trimspace(var.checks_worksheet)) > 0
    error_message = "The checks_worksheet must not be empty."
  }
}

variable "status_worksheet" {
  description = "Worksheet (tab) to which each check's latest status is written."
  type        = string
  default     = "status"

  validation {
    condition     = length(trimspace(var.status_worksheet)) > 0
    error_message = "The status_worksheet must not be empty."
  }
}

variable "exclusions_worksheet" {
  description = "Worksheet (tab) of exclusion windows (holidays, known outages) left out of anomaly baselines; optional in the sheet."
  type        = string
  default     = "exclusions"

  validation {
    condition     = length(trimspace(var.exclusions_worksheet)) > 0
    error_message = "The exclusions_worksheet must not be empty."
  }
}

# =============================================================================
# BigQuery: the monitored data and the state (history) dataset
# =============================================================================

variable "warehouse_dataset" {
  description = "Dataset in which unqualified table names in the checks' SQL resolve, as DATASET (in project_id) or PROJECT.DATASET. The runtime account gets BigQuery Data Viewer on it."
  type        = string

  validation {
    condition     = can(regex("^([a-z][a-z0-9.:-]*[a-z0-9]\\.)?[A-Za-z0-9_]+$", var.warehouse_dataset))
    error_message = "The warehouse_dataset must be DATASET or PROJECT.DATASET (dataset IDs are letters, digits and underscores)."
  }
}

variable "monitored_datasets" {
  description = "Further datasets the checks read (fully qualified in their SQL), each DATASET or PROJECT.DATASET. The runtime account gets BigQuery Data Viewer on each one, and on nothing else."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for ref in var.monitored_datasets : can(regex("^([a-z][a-z0-9.:-]*[a-z0-9]\\.)?[A-Za-z0-9_]+$", ref))])
    error_message = "Each entry of monitored_datasets must be DATASET or PROJECT.DATASET (dataset IDs are letters, digits and underscores)."
  }
}

variable "state_dataset_id" {
  description = "ID of the dataset created for the monitor's history table check_results."
  type        = string
  default     = "anomaly_monitor"

  validation {
    condition     = can(regex("^[A-Za-z0-9_]+$", var.state_dataset_id))
    error_message = "The state_dataset_id may contain only letters, digits and underscores."
  }
}

variable "bigquery_location" {
  description = "Location of the state dataset (US, EU or a region). Keep it where the monitored data lives."
  type        = string
  default     = "US"

  validation {
    condition     = can(regex("^(US|EU|[a-z]+-[a-z]+[0-9]+)$", var.bigquery_location))
    error_message = "The bigquery_location must be US, EU or a region such as europe-west1."
  }
}

variable "deletion_protection" {
  description = "Refuse to destroy the check_results table (the monitor's history and alert state). Set to false, apply, then destroy to tear everything down."
  type        = bool
  default     = true
}

# =============================================================================
# Slack
# =============================================================================

variable "slack_secret_id" {
  description = "Secret Manager secret created for the Slack bot token. Terraform creates the empty secret; add the token yourself with `gcloud secrets versions add`, so that it never enters Terraform state."
  type        = string
  default     = "slack-bot-token"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,255}$", var.slack_secret_id))
    error_message = "The slack_secret_id may contain only letters, digits, hyphens and underscores (at most 255)."
  }
}

variable "slack_secret_version" {
  description = "Version of the Slack token secret exposed to the function as SLACK_BOT_TOKEN: \"latest\" or a version number. Secret environment variables are read when an instance starts."
  type        = string
  default     = "latest"

  validation {
    condition     = can(regex("^(latest|[1-9][0-9]*)$", var.slack_secret_version))
    error_message = "The slack_secret_version must be \"latest\" or a version number such as \"3\"."
  }
}

variable "slack_default_channel" {
  description = "Slack channel for checks without a channel of their own: an ID (C0123ABCD) or #name. Invite the bot to it."
  type        = string

  validation {
    condition     = can(regex("^(#[^\\s#]+|[CG][A-Z0-9]{6,})$", var.slack_default_channel))
    error_message = "The slack_default_channel must be a channel ID such as C0123ABCD or a name such as #data-alerts."
  }
}

# =============================================================================
# Slack actions: the buttons on incident messages (a second, public function)
# =============================================================================

variable "enable_slack_actions" {
  description = "Deploy the slack_actions function (Acknowledge, Snooze, Mute, Expected buttons), its signing secret and its public URL. False: no public endpoint at all; the buttons then get no answer."
  type        = bool
  default     = true
}

variable "slack_signing_secret_id" {
  description = "Secret Manager secret created for the Slack app's signing secret (Basic Information -> App Credentials). Terraform creates it empty; add the value with `gcloud secrets versions add`, so that it never enters Terraform state."
  type        = string
  default     = "slack-signing-secret"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,255}$", var.slack_signing_secret_id))
    error_message = "The slack_signing_secret_id may contain only letters, digits, hyphens and underscores (at most 255)."
  }
}

variable "slack_signing_secret_version" {
  description = "Version of the signing secret the slack_actions function reads: \"latest\" or a version number. It is read on an instance's first click and kept; set the new number after a rotation to switch at once."
  type        = string
  default     = "latest"

  validation {
    condition     = can(regex("^(latest|[1-9][0-9]*)$", var.slack_signing_secret_version))
    error_message = "The slack_signing_secret_version must be \"latest\" or a version number such as \"2\"."
  }
}

variable "slack_actions_min_instances" {
  description = "Instances of the slack_actions function kept warm. Slack wants an answer within 3 seconds; 0 costs nothing when idle, but the first click after a quiet spell meets a cold start and Slack may retry it (it is recorded once). 1 keeps clicks fast for a small idle charge."
  type        = number
  default     = 0

  validation {
    condition     = contains([0, 1], var.slack_actions_min_instances)
    error_message = "The slack_actions_min_instances must be 0 or 1."
  }
}

# =============================================================================
# Run-time limits
# =============================================================================

variable "max_gb_billed" {
  description = "Default cap on the bytes one check may bill, in GB (a check's max_gb_billed column overrides it)."
  type        = number
  default     = 10

  validation {
    condition     = var.max_gb_billed > 0
    error_message = "The max_gb_billed must be greater than 0."
  }
}

variable "query_timeout_s" {
  description = "Timeout of one check's query, in seconds. Must be shorter than function_timeout_s."
  type        = number
  default     = 120

  validation {
    condition     = var.query_timeout_s > 0
    error_message = "The query_timeout_s must be greater than 0."
  }
}

variable "max_workers" {
  description = "How many checks run at once inside one invocation."
  type        = number
  default     = 8

  validation {
    condition     = var.max_workers >= 1 && var.max_workers <= 64 && floor(var.max_workers) == var.max_workers
    error_message = "The max_workers must be a whole number from 1 to 64."
  }
}

variable "shared_cause_min_checks" {
  description = "How many checks failing in one run for one cause outside their SQL (warehouse unreachable, credentials, a dataset's permissions, quota) make one grouped Slack incident instead of one per check."
  type        = number
  default     = 3

  validation {
    condition     = var.shared_cause_min_checks >= 2 && floor(var.shared_cause_min_checks) == var.shared_cause_min_checks
    error_message = "The shared_cause_min_checks must be a whole number of at least 2."
  }
}

# =============================================================================
# Function
# =============================================================================

variable "function_timeout_s" {
  description = "Timeout of one invocation of the function, in seconds. Cloud Scheduler waits this long plus a margin, and at most 30 minutes."
  type        = number
  default     = 540

  validation {
    condition     = var.function_timeout_s >= 60 && var.function_timeout_s <= 1770 && floor(var.function_timeout_s) == var.function_timeout_s
    error_message = "The function_timeout_s must be a whole number from 60 to 1770 (Cloud Scheduler waits at most 1800 s for an answer)."
  }
}

variable "function_memory" {
  description = "Memory of the function instance, e.g. 512Mi or 1Gi."
  type        = string
  default     = "512Mi"

  validation {
    condition     = can(regex("^[1-9][0-9]*(Mi|Gi|M|G)$", var.function_memory))
    error_message = "The function_memory must be a size such as 256Mi, 512Mi, 1Gi or 2Gi."
  }
}

variable "ingress_settings" {
  description = "Network ingress of the function. ALLOW_INTERNAL_ONLY admits Cloud Scheduler of this project; ALLOW_ALL also lets you call the URL from your machine (an identity token with run.invoker is needed either way)."
  type        = string
  default     = "ALLOW_INTERNAL_ONLY"

  validation {
    condition     = contains(["ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB", "ALLOW_ALL"], var.ingress_settings)
    error_message = "The ingress_settings must be ALLOW_INTERNAL_ONLY, ALLOW_INTERNAL_AND_GCLB or ALLOW_ALL."
  }
}

variable "extra_invokers" {
  description = "Further principals allowed to call the function (roles/run.invoker on its service only), e.g. [\"user:you@example.com\"] for the system tests. Never allUsers or allAuthenticatedUsers."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.extra_invokers : can(regex("^(user|serviceAccount|group|domain):[^\\s]+$", m))])
    error_message = "Each extra_invokers entry must be user:EMAIL, serviceAccount:EMAIL, group:EMAIL or domain:DOMAIN; public principals are not allowed."
  }
}

# =============================================================================
# Schedules
# =============================================================================

variable "schedules" {
  description = <<-EOT
    Cloud Scheduler jobs that call the function: name => { cron, time_zone, body }.
    cron is a 5-field expression in time_zone (default UTC); body is the JSON
    request of the HTTP API: { checks, tags, force, dry_run }, all optional.
    Without a body every due check runs (each check's own schedule column decides).
    Mind the field names: Terraform drops attributes the type does not declare.
  EOT
  type = map(object({
    cron      = string
    time_zone = optional(string, "UTC")
    body = optional(object({
      checks  = optional(list(string))
      tags    = optional(list(string))
      force   = optional(bool)
      dry_run = optional(bool)
    }), {})
  }))
  default = {
    every-10-min = {
      cron = "*/10 * * * *"
    }
  }

  validation {
    condition     = length(var.schedules) > 0
    error_message = "Define at least one schedule, or nothing will ever call the function."
  }

  validation {
    condition     = alltrue([for name in keys(var.schedules) : can(regex("^[a-z][a-z0-9-]{0,39}$", name))])
    error_message = "Schedule names must be 1-40 lowercase letters, digits or hyphens, starting with a letter (they become job names)."
  }

  validation {
    condition     = alltrue([for s in values(var.schedules) : can(regex("^\\S+( +\\S+){4}$", trimspace(s.cron)))])
    error_message = "Each schedule's cron must have exactly 5 fields, e.g. \"*/10 * * * *\" or \"0 7 * * 1-5\"."
  }
}

variable "scheduler_retry_count" {
  description = "How many times Cloud Scheduler retries a call that failed (HTTP 5xx or timeout) before waiting for the next tick."
  type        = number
  default     = 3

  validation {
    condition     = var.scheduler_retry_count >= 0 && var.scheduler_retry_count <= 5 && floor(var.scheduler_retry_count) == var.scheduler_retry_count
    error_message = "The scheduler_retry_count must be a whole number from 0 to 5."
  }
}

# =============================================================================
# Watching the monitor from outside (Cloud Monitoring)
# =============================================================================

variable "alert_emails" {
  description = "E-mail addresses told (by Cloud Monitoring, not Slack) when no run has finished for max_silence_minutes, when a run could not happen, or when a function answers 5xx. Empty, together with alert_notification_channels: no alert policies."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for e in var.alert_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", e))])
    error_message = "Each alert_emails entry must be an e-mail address such as data-oncall@example.com."
  }
}

variable "alert_notification_channels" {
  description = "Existing Cloud Monitoring notification channels (PagerDuty, SMS, a Slack workspace other than the monitor's, ...) to notify as well, as projects/PROJECT/notificationChannels/ID."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.alert_notification_channels : can(regex("^projects/[^/]+/notificationChannels/[^/]+$", c))])
    error_message = "Each alert_notification_channels entry must be a channel name such as projects/my-project/notificationChannels/1234567890 (gcloud beta monitoring channels list)."
  }
}

variable "max_silence_minutes" {
  description = "Alert when no run has finished for this many minutes. null (default): twice the shortest schedule interval plus the function timeout, e.g. 29 for every 10 minutes with the default 540 s timeout; off when that exceeds 1410 (23.5 hours, the longest absence Cloud Monitoring watches), as for daily schedules, or when no cron is of a form it recognises (see infra/README.md). 0: off."
  type        = number
  default     = null

  validation {
    condition     = var.max_silence_minutes == null ? true : (var.max_silence_minutes == 0 || (var.max_silence_minutes >= 5 && var.max_silence_minutes <= 1410)) && floor(var.max_silence_minutes) == var.max_silence_minutes
    error_message = "The max_silence_minutes must be null (derived from the schedules), 0 (off) or a whole number from 5 to 1410 (23.5 hours, the longest absence Cloud Monitoring watches)."
  }
}
