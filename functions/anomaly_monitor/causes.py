"""One shared cause, one message: checks failing for one reason outside their SQL become one grouped incident.

A warehouse outage, revoked credentials, a dataset's permissions or a quota make every check that needs them
fail in the same run. When at least `SHARED_CAUSE_MIN_CHECKS` do, Slack gets one incident for the cause, under
the reserved name `_cause:<cause>`, with the usual lifecycle; while it is open, every check failing for that
cause is covered by it (its own result and history still say what happened, but it posts nothing itself). The
grouped incident resolves when a check that had failed for the cause runs again and none fails for it any more.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from anomaly_monitor.incidents import Lifecycle
from anomaly_monitor.models import Check, CheckResult, Severity, Status

PREFIX = "_cause:"
SHOWN_OWNERS = 10
DESCRIPTIONS = {
    "warehouse": "the warehouse could not be reached",
    "authentication": "the warehouse refused the monitor's credentials",
    "permission": "permission was denied",
    "quota": "a warehouse quota or rate limit was exceeded",
}
SEVERITY_ORDER = (Severity.CRITICAL, Severity.WARNING, Severity.INFO)


def describe(cause: str) -> str:
    """ "permission:proj.sales" -> "permission was denied on proj.sales"."""
    kind, _, scope = cause.partition(":")
    text = DESCRIPTIONS.get(kind, kind)
    return f"{text} on {scope}" if scope else text


@dataclass(frozen=True)
class Group:
    """A grouped incident's result in this run, and the pseudo-check it belongs to."""

    check: Check
    result: CheckResult
    members: tuple[str, ...]  # the checks it covers in this run (failing now, or recovered now)


def group_check(cause: str, members: Sequence[Check]) -> Check:
    """The pseudo-check of a cause: where its incident is posted, with whom and how loudly."""
    channels = {m.channel for m in members}
    owners = list(dict.fromkeys(o for m in members for o in m.owners))[:SHOWN_OWNERS]
    reminders = [m.renotify_hours for m in members if m.renotify_hours > 0]
    return Check(
        name=PREFIX + cause,
        sql="",
        severity=min((m.severity for m in members), key=SEVERITY_ORDER.index, default=Severity.WARNING),
        channel=channels.pop() if len(channels) == 1 else None,  # several channels: SLACK_DEFAULT_CHANNEL
        owners=tuple(owners),
        renotify_hours=min(reminders, default=0.0),
        description=f"Several checks could not run because {describe(cause)}.",
    )


def shared_causes(
    results: Sequence[CheckResult], states: Mapping[str, Lifecycle], min_checks: int
) -> tuple[list[Group], dict[str, str]]:
    """The grouped incidents this run's results call for, and the checks they cover (name -> group name)."""
    failing: dict[str, list[CheckResult]] = defaultdict(list)
    for result in results:
        if result.status is Status.ERROR and result.cause and result.check is not None:
            failing[result.cause].append(result)
    groups: list[Group] = []
    covered: dict[str, str] = {}
    for cause, members in sorted(failing.items()):
        name = PREFIX + cause
        if len(members) < min_checks and not states.get(name, Lifecycle()).open:
            continue  # a few checks failing alike are told one by one
        check = group_check(cause, [m.check for m in members if m.check])
        names = tuple(m.name for m in members)
        message = f"{len(names)} checks could not run because {describe(cause)}: {members[0].message}"
        groups.append(Group(check, CheckResult(name, None, Status.ERROR, message, cause=cause, check=check), names))
        covered.update((n, name) for n in names)
    ran = [r for r in results if r.status in (Status.OK, Status.ALERT, Status.ERROR) and r.check is not None]
    for name, state in sorted(states.items()):
        cause = name.removeprefix(PREFIX)
        if not name.startswith(PREFIX) or not state.open or cause in failing:
            continue
        recovered = [r for r in ran if (s := states.get(r.name)) is not None and s.cause == cause]
        if recovered:  # a check that had failed for the cause ran again, and no check fails for it any more
            check = group_check(cause, [r.check for r in recovered if r.check])
            names = tuple(r.name for r in recovered)
            message = f"{', '.join(names)} ran again: {describe(cause)} no more"
            groups.append(Group(check, CheckResult(name, None, Status.OK, message, check=check), names))
    return groups, covered
