"""Seccomp from inside the container, on every runtime: Docker's default profile refuses
``mount``, ``unshare`` and ``keyctl`` even with CAP_SYS_ADMIN granted; custom profiles'
errno values and argument comparisons behave as libseccomp's (runc, crun) do."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hafen.oci import defaults
from hafen.oci.seccomp import default_profile, to_oci

from .conftest import Runtime, make_busybox_bundle, run_in

KEYCTL_C = r"""
#include <errno.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
    long r = syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */, 0);
    printf("keyctl=%ld errno=%d\n", r, r < 0 ? errno : 0);
    return 0;
}
"""

PROBE = (
    "mkdir -p /mnt; mount -t tmpfs t /mnt && echo mount-ok || echo mount-refused; "
    "unshare -m true && echo unshare-ok || echo unshare-refused; "
    "/keyctl-probe"
)


def _with_sys_admin(seccomp: dict[str, Any] | None) -> dict[str, Any]:
    caps = [*defaults.DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"]
    linux: dict[str, Any] = {}
    if seccomp is not None:
        linux["seccomp"] = seccomp
    return {
        "process": {"capabilities": {k: caps for k in ("bounding", "effective", "permitted")}},
        "linux": linux,
    }


def _bundle(tmp_path: Path, args: list[str], **over: Any) -> Path:
    bundle = make_busybox_bundle(tmp_path, args, **over)
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the keyctl probe")
    src = tmp_path / "keyctl.c"
    src.write_text(KEYCTL_C)
    subprocess.run(
        ["gcc", "-static", "-O1", "-o", str(bundle / "rootfs" / "keyctl-probe"), str(src)],
        check=True,
        capture_output=True,
    )
    return bundle


def test_default_profile_refuses_mount_unshare_keyctl(any_rt: Runtime, tmp_path: Path) -> None:
    # The profile Docker derives for its default capabilities, on a container that still
    # holds CAP_SYS_ADMIN: whatever is refused is refused by the filter, not by caps.
    profile = to_oci(default_profile(), list(defaults.DEFAULT_CAPABILITIES))
    bundle = _bundle(tmp_path, ["sh", "-c", PROBE], **_with_sys_admin(profile))
    code, out, err = run_in(any_rt, bundle)
    assert code == 0, err
    assert "mount-refused" in out
    assert "unshare-refused" in out
    assert "keyctl=-1 errno=1" in out  # EPERM, the profile's defaultErrnoRet
    # The same container without the filter may do all three.
    free = _bundle(tmp_path, ["sh", "-c", PROBE], **_with_sys_admin(None))
    code, out, err = run_in(any_rt, free)
    assert code == 0, err
    assert "mount-ok" in out and "unshare-ok" in out and "errno=1" not in out


def test_default_profile_applies_to_exec(any_rt: Runtime, tmp_path: Path) -> None:
    profile = to_oci(default_profile(), list(defaults.DEFAULT_CAPABILITIES))
    bundle = _bundle(tmp_path, ["sleep", "60"], **_with_sys_admin(profile))
    any_rt("run", "-d", "--bundle", str(bundle), "sx", check=True)
    result = any_rt("exec", "sx", "sh", "-c", PROBE)
    assert result.returncode == 0, result.stderr
    assert "mount-refused" in result.stdout and "errno=1" in result.stdout


def test_custom_profile_errno_and_argument_rules(any_rt: Runtime, tmp_path: Path) -> None:
    # renice -n is relative to the niceness the container inherits from whoever runs the tests
    base_nice = os.getpriority(os.PRIO_PROCESS, 0)
    seccomp = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["chmod"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 1, "value": 511, "op": "SCMP_CMP_EQ"}]},
            {"names": ["fchmodat"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 2, "value": 511, "op": "SCMP_CMP_EQ"}]},
            {"names": ["setpriority"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 2, "value": base_nice + 10, "op": "SCMP_CMP_GT"}]},
        ],
    }  # fmt: skip
    script = (
        "mkdir /tmp/d 2>&1; touch /tmp/f; "
        "chmod 755 /tmp/f && echo chmod755-ok; chmod 777 /tmp/f || echo chmod777-refused; "
        "renice -n 5 $$ >/dev/null && echo nice5-ok; renice -n 15 $$ 2>/dev/null || echo nice15-refused"
    )
    bundle = make_busybox_bundle(tmp_path, ["sh", "-c", script], linux={"seccomp": seccomp})
    code, out, err = run_in(any_rt, bundle)
    assert code == 0, err
    assert "Permission denied" in out  # errnoRet 13 = EACCES
    assert "chmod755-ok" in out and "chmod777-refused" in out
    assert "nice5-ok" in out and "nice15-refused" in out
