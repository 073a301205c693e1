"""AppArmor for containers, as dockerd does it: which profile a container gets, the
text of hafen's default profile, and loading that profile into the kernel.

Lifecycle (dockerd's, with ``hafen-default`` in the place of ``docker-default``):

    name = container_profile(security_opt_value, privileged, host_enabled())  # at create
    # inspect shows ``name`` as AppArmorProfile ("" on a host without AppArmor)
    if name == DEFAULT_PROFILE: ensure_loaded()     # at each start: it may have been unloaded
    # config.json process.apparmorProfile = name; the runtime confines the container's
    # first process with it at execve (runtime/apparmor.change_on_exec)

On a host without AppArmor, dockerd sets no profile and ignores ``--security-opt
apparmor=...``; so does hafen. The default profile follows the semantics of Docker's
template (profiles/apparmor/template.go in moby): everything a container normally does
is allowed (files, network, capabilities its capability set grants), while mount, the
kernel's dangerous /proc and /sys files, and signals/ptrace from other confinements are
denied. The text is ours.
"""

from __future__ import annotations

import os
import subprocess
import tempfile

from hafen.errors import RuntimeFailure

DEFAULT_PROFILE = "hafen-default"
UNCONFINED = "unconfined"
APPARMOR_PARSER = "/usr/sbin/apparmor_parser"
_SECURITYFS = "/sys/kernel/security/apparmor"
_ENABLED = "/sys/module/apparmor/parameters/enabled"
_BASE_ABSTRACTION = "/etc/apparmor.d/abstractions/base"
_TUNABLES = "/etc/apparmor.d/tunables/global"


def host_enabled(enabled_file: str = _ENABLED, securityfs: str = _SECURITYFS) -> bool:
    """True when the kernel enforces AppArmor here (dockerd's apparmor.HostSupports)."""
    try:
        with open(enabled_file) as f:
            return f.read().strip() == "Y" and os.path.isdir(securityfs)
    except OSError:
        return False


def container_profile(requested: str, privileged: bool, enabled: bool) -> str:
    """The profile a container gets (dockerd's saveAppArmorConfig): "" without AppArmor
    on the host, else ``--security-opt apparmor=<name>``, else unconfined for
    ``--privileged``, else the default profile."""
    if not enabled:
        return ""
    if requested:
        return requested
    return UNCONFINED if privileged else DEFAULT_PROFILE


def default_profile_text(name: str = DEFAULT_PROFILE, base_abstraction: bool = True) -> str:
    """The default profile's source, for apparmor_parser."""
    proc_pid_dirs = "{[^1-9],[^1-9][^0-9],[^1-9s][^0-9y][^0-9s],[^1-9][^0-9][^0-9][^0-9/]*}"
    lines = [
        # The base abstraction uses variables that tunables/global declares.
        *(["#include <tunables/global>", ""] if base_abstraction else []),
        f"profile {name} flags=(attach_disconnected,mediate_deleted) {{",
        *(["  #include <abstractions/base>"] if base_abstraction else []),
        "",
        "  # What a container does day to day: the capability set and seccomp decide the rest.",
        "  network,",
        "  capability,",
        "  file,",
        "  umount,",
        "",
        "  # Signals from the host's unconfined processes (the runtime, the shim, kill) and",
        "  # between the container's own processes; nothing from other confinements.",
        "  signal (receive) peer=unconfined,",
        f"  signal (send,receive) peer={name},",
        f"  ptrace (trace,read,tracedby,readby) peer={name},",
        "",
        "  # No mounts from inside, whatever the capabilities (CAP_SYS_ADMIN included).",
        "  deny mount,",
        "",
        "  # /proc: only a process's own directories are writable; the kernel's knobs are not.",
        "  deny /proc/* w,",
        f"  deny /proc/{proc_pid_dirs}/** w,",
        "  deny /proc/sys/[^k]** w,",
        "  deny /proc/sys/kernel/{?,??,[^s][^h][^m]**} w,",
        "  deny /proc/sysrq-trigger rwklx,",
        "  deny /proc/kcore rwklx,",
        "",
        "  # /sys: nothing writable outside /sys/fs/cgroup; firmware and LSM state unreadable.",
        "  deny /sys/[^f]*/** wklx,",
        "  deny /sys/f[^s]*/** wklx,",
        "  deny /sys/fs/[^c]*/** wklx,",
        "  deny /sys/fs/c[^g]*/** wklx,",
        "  deny /sys/fs/cg[^r]*/** wklx,",
        "  deny /sys/firmware/** rwklx,",
        "  deny /sys/devices/virtual/powercap/** rwklx,",
        "  deny /sys/kernel/security/** rwklx,",
        "}",
        "",
    ]
    return "\n".join(lines)


def has_base_abstraction() -> bool:
    """Whether the host's AppArmor policy files (the 'apparmor' package) are installed."""
    return os.path.exists(_BASE_ABSTRACTION) and os.path.exists(_TUNABLES)


def is_loaded(name: str, securityfs: str = _SECURITYFS) -> bool:
    """Whether the kernel has a profile of that name ("name (mode)" lines in profiles)."""
    try:
        with open(os.path.join(securityfs, "profiles")) as f:
            return any(line.rsplit(" (", 1)[0] == name for line in f)
    except OSError:
        return False


def ensure_loaded(
    name: str = DEFAULT_PROFILE,
    parser: str = APPARMOR_PARSER,
    securityfs: str = _SECURITYFS,
) -> None:
    """Load the default profile unless the kernel has it (blocking: a worker thread runs it).

    dockerd reloads on every start because other tools unload profiles; so do we.
    """
    if is_loaded(name, securityfs):
        return
    if not os.access(parser, os.X_OK):
        raise RuntimeFailure(
            f"AppArmor is enabled but {parser} is missing: install the 'apparmor' package "
            f"to load the {name!r} profile, or run with --security-opt apparmor=unconfined"
        )
    text = default_profile_text(name, has_base_abstraction())
    with tempfile.NamedTemporaryFile("w", prefix="hafen-apparmor-", suffix=".profile") as f:
        f.write(text)
        f.flush()
        # -K: do not cache the compiled profile; -r: replace one of that name if present.
        result = subprocess.run([parser, "-Kr", f.name], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeFailure(
            f"loading AppArmor profile {name!r}: {result.stderr.strip() or 'apparmor_parser failed'}"
        )
