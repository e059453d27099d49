"""The product's exceptions: one base class, a few specific kinds."""


class MonitorError(Exception):
    """Base class: the monitor could not do something it had to."""


class ConfigError(MonitorError):
    """A setting, option or URL is wrong; the message says which and how to fix it."""


class RegistryError(MonitorError):
    """The check registry could not be read at all (a bad row is not this: it is an `invalid` result)."""


class StateError(MonitorError):
    """The state store (history table) could not be read or written."""


class QueryError(MonitorError):
    """A check's query failed in the warehouse; becomes an `error` result, never stops the run.

    `cause` names a failure outside the check's own SQL that other checks share (the warehouse unreachable,
    credentials, a dataset's permissions, a quota), e.g. "permission:proj.sales"; None for the check's own."""

    def __init__(self, message: str, cause: str | None = None) -> None:
        super().__init__(message)
        self.cause = cause


class DeliveryError(MonitorError):
    """A notification was certainly not delivered (Slack refused it or was never reached); retried next run."""


class DeliveryUnknown(DeliveryError):
    """A notification may or may not have been delivered (time-out, answer lost, 5xx): looked for, never re-sent."""


class LookupUnavailable(MonitorError):
    """Slack cannot be searched for an unconfirmed notice (e.g. the app lacks the history scopes)."""


class UnknownCheckError(ConfigError):
    """The run asked for a check by a name the registry does not have (HTTP 400, CLI exit 3)."""
