"""The seccomp compiler: BPF programs evaluated by a small interpreter, and the cache."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hafen.errors import InvalidConfig
from hafen.oci import defaults
from hafen.oci.seccomp import default_profile, to_oci
from hafen.runtime import seccomp
from hafen.runtime._syscall_table import AARCH64, X86, X86_64

X64 = 0xC000003E
I386 = 0x40000003
ALLOW = 0x7FFF0000
EPERM = 0x00050001


@pytest.fixture(scope="module")
def docker_default() -> bytes:
    profile = to_oci(default_profile(), list(defaults.DEFAULT_CAPABILITIES), machine="x86_64")
    return seccomp.compile_filter(profile, machine="x86_64")


def _run(program: bytes, name: str, *args: int, arch: int = X64) -> int:
    table = X86_64 if arch == X64 else X86
    return seccomp.evaluate(program, table[name], arch, args)


@pytest.mark.parametrize("name", ["read", "write", "execve", "openat", "clone", "futex"])
def test_default_profile_allows_ordinary_syscalls(docker_default: bytes, name: str) -> None:
    assert _run(docker_default, name, 0x11) == ALLOW


@pytest.mark.parametrize("name", ["mount", "unshare", "keyctl", "add_key", "setns", "bpf"])
def test_default_profile_refuses_with_eperm(docker_default: bytes, name: str) -> None:
    assert _run(docker_default, name) == EPERM


def test_default_profile_argument_rules(docker_default: bytes) -> None:
    assert _run(docker_default, "socket", 2) == ALLOW  # AF_INET
    assert _run(docker_default, "socket", 40) == EPERM  # AF_VSOCK
    assert _run(docker_default, "personality", 0xFFFFFFFF) == ALLOW
    assert _run(docker_default, "personality", 3) == EPERM
    clone_newuser = 0x10000000
    assert _run(docker_default, "clone", clone_newuser | 0x11) == EPERM
    assert _run(docker_default, "clone3") == 0x00050000 | 38  # ENOSYS: libc falls back
    assert _run(docker_default, "read", arch=I386) == ALLOW  # 32-bit binaries still run


def test_unknown_arch_x32_and_new_syscalls(docker_default: bytes) -> None:
    assert seccomp.evaluate(docker_default, 0, 0x12345678) == 0x80000000  # kill process
    assert seccomp.evaluate(docker_default, 0x40000000, X64) == EPERM  # x32: default
    assert seccomp.evaluate(docker_default, 1000, X64) == 0x00050000 | 38  # above the table
    assert seccomp.evaluate(docker_default, 463, X64) == 0x00050000 | 38
    assert _run(docker_default, "fchmodat2") == ALLOW  # newer than the 6.1 headers
    assert _run(docker_default, "futex_wait", arch=I386) == ALLOW


def test_64_bit_comparisons() -> None:
    def prog(op: str, value: int, value2: int = 0) -> bytes:
        rule = {"index": 0, "op": op, "value": value, "valueTwo": value2}
        return seccomp.compile_filter(
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_KILL", "args": [rule]}],
            },
            machine="x86_64",
        )

    big = (5 << 32) | 7
    cases = {
        ("SCMP_CMP_EQ", big): {big: True, 7: False, 5 << 32: False},
        ("SCMP_CMP_NE", big): {big: False, 7: True},
        ("SCMP_CMP_GT", big): {big: False, big + 1: True, 6 << 32: True, 4 << 32 | 9: False},
        ("SCMP_CMP_GE", big): {big: True, big - 1: False},
        ("SCMP_CMP_LT", big): {big: False, big - 1: True, 6 << 32: False, 4 << 32 | 9: True},
        ("SCMP_CMP_LE", big): {big: True, big + 1: False},
    }
    for (op, value), expect in cases.items():
        program = prog(op, value)
        for arg, killed in expect.items():
            got = seccomp.evaluate(program, X86_64["read"], X64, (arg,))
            assert (got == 0) is killed, (op, hex(arg))
    masked = prog("SCMP_CMP_MASKED_EQ", 0xF0, 0x30)
    assert seccomp.evaluate(masked, X86_64["read"], X64, (0x3F,)) == 0
    assert seccomp.evaluate(masked, X86_64["read"], X64, (0x4F,)) == ALLOW


def test_actions_and_bad_input() -> None:
    assert seccomp.action_value("SCMP_ACT_ERRNO", 13, 1) == 0x0005000D
    assert seccomp.action_value("SCMP_ACT_ERRNO", None, 1) == EPERM
    assert seccomp.action_value("SCMP_ACT_KILL_PROCESS", None, 1) == 0x80000000
    assert seccomp.action_value("SCMP_ACT_LOG", None, 1) == 0x7FFC0000
    with pytest.raises(InvalidConfig, match="unknown action"):
        seccomp.compile_filter({"defaultAction": "SCMP_ACT_MAYBE"}, machine="x86_64")
    with pytest.raises(InvalidConfig, match="NOTIFY"):
        seccomp.compile_filter({"defaultAction": "SCMP_ACT_NOTIFY"}, machine="x86_64")
    with pytest.raises(InvalidConfig, match="operator"):
        seccomp.compile_filter(
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {"names": ["read"], "action": "SCMP_ACT_ERRNO",
                     "args": [{"index": 0, "op": "SCMP_CMP_SOMETIMES", "value": 1}]}
                ],
            },
            machine="x86_64",
        )  # fmt: skip


def test_compiled_filter_is_cached_by_content(tmp_path: Path) -> None:
    raw = '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[]}'
    first = seccomp.load_filter(str(tmp_path), raw)
    cached = list((tmp_path / "seccomp").iterdir())
    assert len(cached) == 1 and cached[0].read_bytes() == first
    cached[0].write_bytes(b"\x06\x00\x00\x00\x00\x00\xff\x7f")  # proves the next read hits it
    assert seccomp.load_filter(str(tmp_path), raw) == cached[0].read_bytes()


def test_docker_filtering_by_caps_and_arch() -> None:
    base = to_oci(default_profile(), list(defaults.DEFAULT_CAPABILITIES), machine="x86_64")
    names = {n for r in base["syscalls"] for n in r["names"] if "args" not in r}
    assert base["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert "arch_prctl" in names and "s390_runtime_instr" not in names
    assert "mount" not in names and "ptrace" in names
    admin = to_oci(
        default_profile(), [*defaults.DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"], machine="x86_64"
    )
    admin_names = {n for r in admin["syscalls"] for n in r["names"] if "args" not in r}
    assert {"mount", "unshare", "setns", "clone"} <= admin_names
    old = to_oci(default_profile(), [], machine="x86_64", kernel=(4, 4))
    assert "ptrace" not in {n for r in old["syscalls"] for n in r["names"]}


AARCH64_AUDIT = 0xC00000B7


@pytest.fixture(scope="module")
def arm64_default() -> tuple[dict[str, object], bytes]:
    profile = to_oci(default_profile(), list(defaults.DEFAULT_CAPABILITIES), machine="aarch64")
    return profile, seccomp.compile_filter(profile, machine="aarch64")


def test_aarch64_docker_default_profile(arm64_default: tuple[dict[str, object], bytes]) -> None:
    profile, program = arm64_default
    # Docker's archMap: an arm64 host lists aarch64 and its 32-bit compat mode.
    assert profile["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]

    def run(name: str, *args: int) -> int:
        return seccomp.evaluate(program, AARCH64[name], AARCH64_AUDIT, args)

    for name in ("read", "write", "openat", "execve", "clone", "futex", "newfstatat"):
        assert run(name, 0x11) == ALLOW, name
    for name in ("mount", "unshare", "keyctl", "setns", "bpf"):
        assert run(name) == EPERM, name
    assert run("clone", 0x10000000 | 0x11) == EPERM  # CLONE_NEWUSER: flags are arg0 here
    assert run("socket", 40) == EPERM  # AF_VSOCK
    assert run("clone3") == 0x00050000 | 38  # ENOSYS: libc falls back to clone
    # x86 is not in this program: another architecture's syscall kills the process.
    assert seccomp.evaluate(program, 0, X64) == 0x80000000


def test_aarch64_table_has_the_generic_numbers() -> None:
    # asm-generic/unistd.h numbering (arm64 has no open/stat/fork: only the *at forms).
    assert (AARCH64["io_setup"], AARCH64["openat"], AARCH64["read"]) == (0, 56, 63)
    assert (AARCH64["execve"], AARCH64["clone3"], AARCH64["mseal"]) == (221, 435, 462)
    assert not {"open", "stat", "fork", "arch_prctl", "fcntl64"} & set(AARCH64)


@pytest.mark.skipif(
    not (Path("/usr/include/asm-generic/unistd.h").exists() and shutil.which("gcc")),
    reason="needs gcc and the kernel's uapi headers (linux-libc-dev) to regenerate",
)
def test_aarch64_table_is_what_the_generator_prints() -> None:
    script = Path(__file__).resolve().parents[3] / "scripts" / "gen-syscall-table-aarch64"
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True
    ).stdout
    generated: dict[str, dict[str, int]] = {}
    exec(out, {}, generated)  # the script prints one dict literal: AARCH64 = {...}
    assert generated["AARCH64"] == AARCH64
