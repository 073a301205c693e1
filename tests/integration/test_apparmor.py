"""AppArmor as dockerd applies it, proved from inside containers.

On a host whose kernel enforces AppArmor, a container runs under ``hafen-default``
(loaded by the daemon when missing): /proc/self/attr/current names it, and it refuses
what Docker's default profile refuses (writing /proc/sysrq-trigger, mount even with
CAP_SYS_ADMIN and no seccomp). ``--privileged`` and ``--security-opt
apparmor=unconfined`` run unconfined; inspect's AppArmorProfile says which. On a host
without AppArmor, dockerd sets no profile and ignores ``apparmor=``: so does hafen.
"""

from __future__ import annotations

import json

import pytest

from hafen.oci import apparmor
from tests.conftest import Hafend

ENABLED = apparmor.host_enabled()
needs_apparmor = pytest.mark.skipif(
    not ENABLED,
    reason="this host's kernel has no AppArmor (/sys/module/apparmor/parameters/enabled "
    "missing or N, no /sys/kernel/security/apparmor): nothing can confine a container here",
)


def _profile(hafend: Hafend, name: str) -> str:
    profile: str = json.loads(hafend.cli("inspect", name).stdout)[0]["AppArmorProfile"]
    return profile


@needs_apparmor
def test_default_profile_confines_the_container(hafend: Hafend) -> None:
    probe = (
        "cat /proc/self/attr/current; "
        "(echo h > /proc/sysrq-trigger) 2>/dev/null && echo sysrq-written || echo sysrq-denied; "
        "mkdir -p /mnt; mount -t tmpfs t /mnt 2>/dev/null && echo mount-ok || echo mount-denied"
    )
    try:
        out = hafend.cli(
            "run", "--name", "aa-default", "--cap-add", "SYS_ADMIN",
            "--security-opt", "seccomp=unconfined", "busybox", "sh", "-c", probe,
        ).stdout.splitlines()  # fmt: skip
        assert out == ["hafen-default (enforce)", "sysrq-denied", "mount-denied"]
        assert _profile(hafend, "aa-default") == "hafen-default"
        assert apparmor.is_loaded("hafen-default")
    finally:
        hafend.cli("rm", "-f", "aa-default", check=False)


@needs_apparmor
@pytest.mark.parametrize(
    "flags", [["--privileged"], ["--security-opt", "apparmor=unconfined"]], ids=["priv", "opt"]
)
def test_privileged_and_unconfined_run_unconfined(hafend: Hafend, flags: list[str]) -> None:
    try:
        out = hafend.cli(
            "run", "--name", "aa-unconf", *flags, "busybox", "cat", "/proc/self/attr/current"
        ).stdout  # fmt: skip
        assert out.strip() == "unconfined"
        assert _profile(hafend, "aa-unconf") == "unconfined"
    finally:
        hafend.cli("rm", "-f", "aa-unconf", check=False)


@pytest.mark.skipif(ENABLED, reason="this host enforces AppArmor")
def test_without_apparmor_no_profile_and_the_option_is_ignored(hafend: Hafend) -> None:
    try:
        out = hafend.cli(
            "run", "--name", "aa-none", "--security-opt", "apparmor=some-profile",
            "busybox", "echo", "ran",
        ).stdout  # fmt: skip
        assert out.strip() == "ran"  # as dockerd: not refused, not applied
        assert _profile(hafend, "aa-none") == ""
    finally:
        hafend.cli("rm", "-f", "aa-none", check=False)
