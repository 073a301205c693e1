"""Restart policies (``--restart``) and dockerd's back-off between restarts.

``should_restart`` is the policy decision for one exit: ``always`` restarts whatever the
exit; ``unless-stopped`` likewise unless the user stopped the container; ``on-failure[:N]``
on a non-zero exit, at most N times (unlimited when N is 0); ``no`` never. A container
the user stopped (``stop``, ``restart``'s stop half) is never restarted by ``always``
either until it is started again, as in dockerd.

``Backoff`` holds the delay for one container: 100 ms before the first restart, doubled
before each next one up to one minute, back to 100 ms after a run of 10 seconds or more.
"""

from __future__ import annotations

from dataclasses import dataclass

from hafen.errors import InvalidArgument

BACKOFF_START = 0.1
BACKOFF_MAX = 60.0
BACKOFF_RESET_AFTER = 10.0
POLICIES = ("no", "always", "on-failure", "unless-stopped")


def validate_policy(name: str, maximum_retry_count: int) -> None:
    """Docker's checks on a restart policy; InvalidArgument names what is wrong."""
    if name not in ("", *POLICIES):
        raise InvalidArgument(f"invalid restart policy '{name}'")
    if maximum_retry_count < 0:
        raise InvalidArgument("invalid value for MaximumRetryCount: it must not be negative")
    if maximum_retry_count and name != "on-failure":
        raise InvalidArgument(
            f"invalid restart policy: maximum retry count can only be used with 'on-failure'"
            f" (policy {name or 'no'!r})"
        )


def should_restart(
    policy: str, max_retries: int, exit_code: int, manually_stopped: bool, restart_count: int
) -> bool:
    if manually_stopped:
        return False
    if policy in ("always", "unless-stopped"):
        return True
    if policy == "on-failure":
        return exit_code != 0 and (max_retries == 0 or restart_count < max_retries)
    return False


@dataclass
class Backoff:
    """The delay before a container's next restart."""

    delay: float = 0.0

    def next(self, ran_for: float) -> float:
        if ran_for >= BACKOFF_RESET_AFTER:
            self.delay = 0.0
        self.delay = BACKOFF_START if self.delay == 0.0 else min(self.delay * 2, BACKOFF_MAX)
        return self.delay


__all__ = ["POLICIES", "Backoff", "should_restart", "validate_policy"]
