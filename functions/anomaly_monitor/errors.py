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
    """A check's query failed in the warehouse; becomes an `error` result, never stops the run."""


class DeliveryError(MonitorError):
    """A notification could not be delivered; the alert is retried on the next run."""


class UnknownCheckError(ConfigError):
    """The run asked for a check by a name the registry does not have (HTTP 400, CLI exit 3)."""
