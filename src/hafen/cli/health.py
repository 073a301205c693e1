"""The ``--health-*`` and ``--no-healthcheck`` flags of run/create, mapped to ``Healthcheck``."""

from __future__ import annotations

from hafen.cli import flags
from hafen.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

NS = 1_000_000_000


def health_options(func: Callable[..., Any]) -> Callable[..., Any]:
    decorators = [
        flags.option("--health-cmd", help="Command to run to check health"),
        flags.option("--health-interval", help="Time between running the check (ms|s|m|h)"),
        flags.option("--health-timeout", help="Maximum time to allow one check to run"),
        flags.option("--health-start-period", help="Start period for the container to initialize"),
        flags.option("--health-start-interval", help="Time between checks during the start period"),
        flags.option("--health-retries", type=int, help="Consecutive failures needed to report unhealthy"),
        flags.option("--no-healthcheck", is_flag=True, help="Disable any container-specified HEALTHCHECK"),
    ]  # fmt: skip
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def _duration(flag: str, value: str | None) -> int:
    from hafen.cli.format import parse_go_duration

    if not value:
        return 0
    seconds = parse_go_duration(value)
    if seconds < 0:
        raise InvalidArgument(f"{flag} cannot be negative")
    return int(seconds * NS)


def healthcheck_from_flags(params: dict[str, Any]) -> dict[str, Any] | None:
    """The ``Healthcheck`` object for the flags given; None when none were."""
    durations = {
        "Interval": _duration("--health-interval", params.get("health_interval")),
        "Timeout": _duration("--health-timeout", params.get("health_timeout")),
        "StartPeriod": _duration("--health-start-period", params.get("health_start_period")),
        "StartInterval": _duration("--health-start-interval", params.get("health_start_interval")),
    }
    retries = params.get("health_retries")
    cmd = params.get("health_cmd")
    if params.get("no_healthcheck"):
        if cmd or any(durations.values()) or retries:
            raise InvalidArgument("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if retries is not None and retries < 0:
        raise InvalidArgument("--health-retries cannot be negative")
    if not cmd and not any(durations.values()) and retries is None:
        return None
    check: dict[str, Any] = {"Test": ["CMD-SHELL", cmd] if cmd else None, **durations}
    check["Retries"] = retries or 0
    return check
