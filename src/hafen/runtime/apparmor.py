"""AppArmor: whether the host enforces it, and confining the next exec to a profile.

Owns the two things the runtime does with ``process.apparmorProfile`` (and exec's
``--apparmor``): refuse a profile on a host without AppArmor (runc's rule: a profile that
cannot be applied is an error, never silently ignored), and ask the kernel to switch to
the profile at the next execve (``exec <profile>`` written to the process's attr file).
"""

from __future__ import annotations

from hafen.errors import InvalidConfig
from hafen.runtime import _os as os

_ENABLED = "/sys/module/apparmor/parameters/enabled"


def is_enabled(enabled_file: str = _ENABLED) -> bool:
    try:
        with open(enabled_file) as f:
            return f.read().strip() == "Y" and os.path.isdir("/sys/kernel/security/apparmor")
    except OSError:
        return False


def require(profile: str) -> None:
    """Refuse ``profile`` when the host cannot apply it."""
    if profile and not is_enabled():
        raise InvalidConfig(
            f"apparmor profile {profile!r} was requested but AppArmor is not enabled on this host"
        )


# The LSM-specific file first (kernels with stacked LSMs), then the legacy shared one.
EXEC_ATTRS = ("/proc/self/attr/apparmor/exec", "/proc/self/attr/exec")


def change_on_exec(profile: str, attrs: tuple[str, ...] = EXEC_ATTRS) -> None:
    """Confine the next execve of this process to ``profile`` (runs inside the container)."""
    if not profile:
        return
    for attr in attrs:
        try:
            with open(attr, "w") as f:
                f.write("exec " + profile)
            return
        except FileNotFoundError:
            continue
    raise OSError(f"apparmor: cannot set profile {profile!r} for exec")
