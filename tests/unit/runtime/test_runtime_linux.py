"""runtime/_linux (the C module) and runtime/_linux_ctypes (its ctypes fall-back): one
suite run against both, so that either makes the same calls with the same results and
errors. Calls that change the process run in a forked child, in new namespaces where
they would touch the host."""

from __future__ import annotations

import errno
import fcntl
import os
import resource
import struct
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from hafen.runtime import _linux_ctypes, _sys

try:
    from hafen.runtime import _linux as _linux_c
except ImportError:  # scripts/setup builds it; test_the_runtime_uses_the_c_module says so
    _linux_c = None  # type: ignore[assignment]

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWPID = 0x20000000
MS_REC, MS_PRIVATE = 0x4000, 0x40000
TMPFS_MAGIC, PROC_SUPER_MAGIC = 0x01021994, 0x9FA0
PR_GET_DUMPABLE, PR_CAPBSET_READ = 3, 23
BPF_RET_ALLOW = (0x06).to_bytes(2, "little") + b"\0\0" + (0x7FFF0000).to_bytes(4, "little")


@pytest.fixture(params=["c", "ctypes"])
def linux(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    if request.param == "c":
        if _linux_c is None:
            pytest.fail("runtime/_linux.c is not built: run scripts/setup")
        yield _linux_c
    else:
        yield _linux_ctypes


def in_child(body: Callable[[], int]) -> int:
    """Run ``body`` in a forked child; its return value (or 99 on an exception, printed)
    is the child's exit status."""
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            code = body()
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_the_runtime_uses_the_c_module() -> None:
    assert _linux_c is not None, "runtime/_linux.c is not built: run scripts/setup"
    assert _linux_c.API == _linux_ctypes.API == _sys.LINUX_API, "stale build: run scripts/setup"
    assert _sys._linux is _linux_c


def test_mount_and_umount2_in_a_private_mount_namespace(linux: ModuleType, tmp_path: Path) -> None:
    def body() -> int:
        linux.unshare(CLONE_NEWNS)
        linux.mount(None, "/", None, MS_REC | MS_PRIVATE, None)
        linux.mount("tmpfs", str(tmp_path), "tmpfs", 0, "size=1m,mode=0700")
        assert linux.statfs_type(str(tmp_path)) == TMPFS_MAGIC
        assert (tmp_path.stat().st_mode & 0o777) == 0o700
        linux.umount2(os.fsencode(tmp_path), 0)  # bytes as well as str
        return 0 if linux.statfs_type(str(tmp_path)) != TMPFS_MAGIC else 1

    assert in_child(body) == 0


def test_failures_raise_oserror_with_the_errno(linux: ModuleType) -> None:
    cases: list[tuple[Callable[[], object], int]] = [
        (lambda: linux.mount(None, "/nonexistent/hafen", None, 0x20, None), errno.ENOENT),
        (lambda: linux.umount2("/nonexistent/hafen", 0), errno.ENOENT),
        (lambda: linux.pivot_root("/nonexistent/hafen", "/nonexistent/hafen"), errno.ENOENT),
        (lambda: linux.statfs_type("/nonexistent/hafen"), errno.ENOENT),
        (lambda: linux.setns(-1, 0), errno.EBADF),
        (lambda: linux.prctl(-1), errno.EINVAL),
    ]
    for call, expected in cases:
        with pytest.raises(OSError) as raised:
            call()
        assert raised.value.errno == expected
        assert raised.value.strerror == os.strerror(expected)


def test_statfs_prctl_and_socket(linux: ModuleType) -> None:
    assert linux.statfs_type("/proc") == PROC_SUPER_MAGIC
    assert linux.prctl(PR_GET_DUMPABLE) == 1
    assert linux.prctl(PR_CAPBSET_READ, 0) == 1  # CAP_CHOWN, as root
    fd = linux.inet_dgram_socket()
    try:
        assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    finally:
        os.close(fd)


def test_hostname_rlimits_capabilities_and_seccomp_in_a_child(linux: ModuleType) -> None:
    def body() -> int:
        linux.unshare(CLONE_NEWUTS)
        linux.sethostname("hafen-linux")
        linux.setdomainname("example")
        assert os.uname().nodename == "hafen-linux"
        linux.setrlimit(resource.RLIMIT_NOFILE, 100, 200)
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (100, 200)
        linux.setrlimit(resource.RLIMIT_CORE, 2**64 - 1, 2**64 - 1)
        assert resource.getrlimit(resource.RLIMIT_CORE) == (-1, -1)  # unlimited
        linux.seccomp_set_filter(BPF_RET_ALLOW)  # as root: no no_new_privs needed
        status = Path("/proc/self/status").read_text()
        assert "\nSeccomp:\t2\n" in status
        # CAP_CHOWN (0) and CAP_SYS_ADMIN (21) kept in the low word, CAP_BPF (39) in the high
        caps = (1 << 0) | (1 << 21) | (1 << 39)
        linux.capset(caps, caps, 0)
        status = Path("/proc/self/status").read_text()
        assert f"\nCapEff:\t{caps:016x}\n" in status
        assert f"\nCapPrm:\t{caps:016x}\n" in status
        return 0

    assert in_child(body) == 0


def test_a_bpf_program_must_be_whole_instructions(linux: ModuleType) -> None:
    with pytest.raises(ValueError, match="8-byte instructions"):
        linux.seccomp_set_filter(b"\0" * 12)


def test_clone_fork_makes_a_child_in_new_namespaces(linux: ModuleType, tmp_path: Path) -> None:
    pid = linux.clone_fork(CLONE_NEWPID | CLONE_NEWUTS, -1)
    if pid == 0:
        code = 1
        try:
            linux.sethostname("cloned")  # its own UTS namespace: the host's is untouched
            code = 0 if os.getpid() == 1 else 2
        finally:
            os._exit(code)
    assert pid > 1
    assert os.uname().nodename != "cloned"
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def test_clone_fork_refusals_make_no_child(linux: ModuleType) -> None:
    with pytest.raises(OSError) as raised:
        linux.clone_fork(0, 1_000_000)  # CLONE_INTO_CGROUP of a fd that is not open
    assert raised.value.errno == errno.EBADF


def test_sys_names_the_failed_call() -> None:
    with pytest.raises(OSError, match="mount none on /nonexistent/hafen") as raised:
        _sys.mount(None, "/nonexistent/hafen", None, _sys.MS_REMOUNT, None)
    assert raised.value.errno == errno.ENOENT
    with pytest.raises(OSError, match=r"^\[Errno 2\] umount2 /nonexistent/hafen: No such file"):
        _sys.umount2("/nonexistent/hafen", 0)


def test_close_range_marks_fds_close_on_exec_from_the_lowest(linux: ModuleType) -> None:
    def body() -> int:
        low, high = os.open("/dev/null", os.O_RDONLY), os.open("/dev/null", os.O_RDONLY)
        os.set_inheritable(low, True)
        os.set_inheritable(high, True)
        linux.close_range(high, 2**32 - 1, 1 << 2)  # CLOSE_RANGE_CLOEXEC
        assert os.get_inheritable(low) and not os.get_inheritable(high)
        return 0

    assert in_child(body) == 0


def test_sys_cloexec_from_leaves_the_fds_below_open_and_inheritable() -> None:
    def body() -> int:
        fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(3)]
        for fd in fds:
            os.set_inheritable(fd, True)
        assert _sys.cloexec_from(fds[1])
        assert [os.get_inheritable(fd) for fd in fds] == [True, False, False]
        return 0

    assert in_child(body) == 0


def _prog_load_attr(linux: ModuleType, insns: bytearray, license_: bytearray) -> bytes:
    # union bpf_attr for BPF_PROG_LOAD: prog_type (15: cgroup device), insn_cnt, insns,
    # license; no log
    return struct.pack(
        "<IIQQ", 15, len(insns) // 8, linux.buffer_address(insns), linux.buffer_address(license_)
    ).ljust(128, b"\0")


def test_bpf_loads_a_program_through_buffer_addresses(linux: ModuleType) -> None:
    # r0 = 1; exit: allow every device
    insns = bytearray(struct.pack("<BBhi", 0xB7, 0, 0, 1) + struct.pack("<BBhi", 0x95, 0, 0, 0))
    license_ = bytearray(b"Apache\0")
    fd = linux.bpf(5, _prog_load_attr(linux, insns, license_))  # BPF_PROG_LOAD
    try:
        assert fd > 2
        assert "bpf-prog" in os.readlink(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def test_bpf_refusals_raise_oserror(linux: ModuleType) -> None:
    with pytest.raises(OSError) as raised:  # no instructions
        linux.bpf(5, _prog_load_attr(linux, bytearray(), bytearray(b"GPL\0")))
    assert raised.value.errno in (errno.E2BIG, errno.EINVAL)  # by kernel version
    with pytest.raises(ValueError):
        linux.bpf(5, b"\0" * 257)
    with pytest.raises(TypeError):
        linux.buffer_address(b"immutable")  # type: ignore[arg-type]


def test_a_path_with_a_nul_is_refused_not_cut_short(linux: ModuleType) -> None:
    # "/nonexistent\0/x" cut at the NUL would be a different path than the one asked for
    for call in (
        lambda: linux.mount(None, "/tmp\0/x", None, 0x20, None),
        lambda: linux.umount2(b"/tmp\0/x", 0),
        lambda: linux.pivot_root("/", "/tmp\0/x"),
        lambda: linux.statfs_type("/proc\0/x"),
    ):
        with pytest.raises(ValueError, match="null"):
            call()


_SHARED_INIT = """
import os, sys
from hafen.runtime import _sys
mode, fifo_dir = sys.argv[1], sys.argv[2]
seen = []
def init():
    seen.append(os.getpid())  # in this process's memory: the parent sees it
    if mode == "die":
        os.kill(os.getpid(), 9)  # inside Python: the parent must not go back there
    if mode == "refuse":
        return None
    dir_fd = os.open(fifo_dir, os.O_RDONLY | os.O_DIRECTORY)
    return (b"/bin/sh", [b"sh", b"-c", b"exit 5"], [b"A=1"], 0o22, dir_fd, b"fifo", [2, 13])
cleanup = [b"/bin/sh", b"-c", b"echo cleaned up; exit 7"]
pid, planned = _sys.clone_vm_run(0x04000000, init, cleanup)  # a new UTS namespace
assert seen == [pid], (seen, pid)
if not planned:
    print("refused", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    sys.exit(0)
fd = os.open(os.path.join(fifo_dir, "fifo"), os.O_RDONLY)  # the child waits for this
assert os.read(fd, 1) == b"0"
print("exited", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


@pytest.mark.parametrize(
    ("mode", "out", "code"),
    [("exec", "exited 5", 0), ("refuse", "refused 1", 0), ("die", "cleaned up", 7)],
)
def test_an_init_sharing_this_memory_runs_in_it_then_execs_or_never_returns_to_python(
    tmp_path: Path, mode: str, out: str, code: int
) -> None:
    if _linux_c is None or not hasattr(_linux_c, "clone_vm_run"):
        pytest.fail("runtime/_linux.c is not built with clone_vm_run: run scripts/setup")
    os.mkfifo(tmp_path / "fifo")
    src = str(Path(__file__).resolve().parents[3] / "src")
    result = subprocess.run(
        [sys.executable, "-S", "-c", _SHARED_INIT, mode, str(tmp_path)],
        capture_output=True, text=True, timeout=30, env={"PYTHONPATH": src},
    )  # fmt: skip
    assert (result.returncode, result.stdout.strip()) == (code, out), result.stderr
