"""Invoking the OCI runtime CLI (runc-compatible) from the shim.

Owns the argv of each verb (the runtime prefix, then the global ``--root`` and
``--log <state-dir>/runtime.log --log-format json`` flags, then the verb), spawning it
with chosen stdio and every signal disposition reset to default (the shim ignores
SIGINT/SIGHUP/SIGPIPE; ignored signals survive exec and would reach the container), and
turning a failure into one message: the runtime's last error in its JSON log, else its
stderr, else its exit status.

The shim is single-threaded, so each call blocks until the runtime exits (they take
milliseconds); the caller reaps other children afterwards.

Fast path: when the runtime is hafen's own (``hafen.runtime.is_cli``), a verb does not
start a new interpreter: the shim (which has the runtime's modules imported, see
``preload``) forks and the child runs ``hafen.runtime.main.main(args)`` with the same
stdio, signal defaults, argv and log as the exec'd CLI would get, then leaves with
``os._exit``. Exit statuses, the JSON log and stderr are those of the CLI; only the
~20-40 ms of interpreter start-up and imports per verb are gone. ``start``, ``kill`` and
``delete`` do not even fork: they read the runtime's state, signal, and remove files and
cgroups, which changes nothing in the process that runs them, so the shim calls
``main`` itself (a fork, the child's exit and the wake-up cost ~2 ms per verb, on every
container's start and exit path). ``create`` without a terminal runs here too: the init
it clones is then this process's child, and it makes itself what a CLI's child would be
(the container's stdio, no fd or signal handler of the shim's) before anything else.
With a terminal it forks, as the shim serves the console socket while it runs. Any other
prefix (runc, crun, ``env python -S -m hafen.runtime``) is exec'd as before.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
from dataclasses import dataclass

from hafen.runtime import is_cli
from hafen.runtime._init import take_stdio
from hafen.shim.proto import RUNTIME_LOG_NAME


class _VerbTimeout(BaseException):
    """An in-process verb ran past its time (a BaseException: the CLI's ``main`` turns
    every Exception into an exit status, and this must reach ``_run_here``)."""


# hafen-runtime verbs the shim runs in its own process through ``run`` (see the module
# docstring; ``create`` too, through ``run_with_stdio``); the others set up processes
# (exec) or print (state, ps) and run in a fork
_IN_PROCESS_VERBS = frozenset({"start", "kill", "delete"})

# the runtime's modules a verb uses (its start path, exec, the console, seccomp)
_RUNTIME_MODULES = (
    "hafen.runtime.main",
    "hafen.runtime.container",
    "hafen.runtime._init",
    "hafen.runtime.exec_process",
    "hafen.runtime._setns",
    "hafen.runtime.console",
    "hafen.runtime.seccomp",
)


def preload() -> None:
    """Import the runtime's modules now, so that every forked verb finds them loaded."""
    import importlib

    for name in _RUNTIME_MODULES:
        importlib.import_module(name)


def _run_forked_verb(args: list[str], stdio: tuple[int, int, int]) -> None:
    """The forked child: become what an exec'd runtime CLI would be, run the verb, leave."""
    code = 1
    try:
        take_stdio(stdio)
        # the shim's sockets, pipes and selector are not the runtime's to hold
        os.closerange(3, 1 << 16)
        import gc

        gc.disable()  # short-lived; a collection could finalize the shim's closed objects
        from hafen.runtime.main import main

        code = main(args)
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        try:
            import traceback

            traceback.print_exc()
            sys.stderr.flush()
        except BaseException:
            pass
    os._exit(code)


def _fork_exec(argv: list[str], stdio: tuple[int, int, int]) -> int:
    """Exec ``argv`` in a fork with ``stdio`` as its fds 0-2 and every signal at its
    default; its pid, or the OSError of a failed exec (through a close-on-exec pipe).

    Not posix_spawn: glibc's leaves its two internal signals (32, 33) ignored in what it
    starts, no later sigaction can reset them, and the runtime's containers would inherit
    them ignored."""
    report_r, report_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(report_r)
            take_stdio(stdio)
            os.execvpe(argv[0], argv, dict(os.environ))
        except OSError as e:
            os.write(report_w, str(e.errno or 0).encode())
        finally:
            os._exit(127)
    os.close(report_w)
    try:
        failed = os.read(report_r, 32)  # nothing, then EOF: the exec closed the pipe
    finally:
        os.close(report_r)
    if failed:
        os.waitpid(pid, 0)
        errno = int(failed)
        raise OSError(errno, os.strerror(errno), argv[0])
    return pid


@dataclass
class RuntimeResult:
    """How one runtime invocation ended; ``message`` explains a non-zero ``status``."""

    status: int
    output: bytes
    message: str

    @property
    def ok(self) -> bool:
        return self.status == 0


class RuntimeCommand:
    """One runtime CLI for one container: builds argv and runs verbs."""

    def __init__(self, prefix: list[str], root: str | None, state_dir: str, wake_fd: int) -> None:
        if not prefix:
            raise ValueError("empty runtime command")
        self.prefix = prefix
        # hafen's own runtime runs in a forked child of the shim (no new interpreter)
        self.in_process = is_cli(prefix)
        self.root = root
        self.log_path = os.path.join(state_dir, RUNTIME_LOG_NAME)
        # the shim's SIGCHLD wake-up pipe: readable when a child (the runtime) exits
        self.wake_fd = wake_fd

    def argv(self, *args: str) -> list[str]:
        cmd = list(self.prefix)
        if self.root:
            cmd += ["--root", self.root]
        cmd += ["--log", self.log_path, "--log-format", "json"]
        return cmd + list(args)

    def spawn(self, args: list[str], stdio: tuple[int, int, int]) -> int:
        """Start the runtime with ``stdio`` as its fds 0, 1, 2; return its pid."""
        argv = self.argv(*args)
        if self.in_process:
            # buffered output of the shim must not be written twice (by the child too)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _run_forked_verb(argv[len(self.prefix) :], stdio)
            return pid
        return _fork_exec(argv, stdio)

    def run_with_stdio(self, args: list[str], stdio: tuple[int, int, int], timeout: float) -> int:
        """Run a verb that starts a container's process (``create``, ``exec``) with
        ``stdio`` as that process's fds 0-2; its exit status. hafen's own ``create`` runs
        in this process: no fork of the shim, no wait for the fork's exit (~1.5 ms of
        every start); its init is this process's child and drops the shim's fds and
        signal handlers before anything else (``hafen.runtime._init.adopt_stdio``)."""
        if self.in_process and args[0] == "create":
            return self._run_here(args, self.log_offset(), timeout, stdio=stdio).status
        pid = self.spawn(args, stdio)
        return self.wait(pid, timeout)

    def log_offset(self) -> int:
        try:
            return os.stat(self.log_path).st_size
        except OSError:
            return 0

    def run(self, args: list[str], timeout: float = 30.0) -> RuntimeResult:
        """Run a verb with stdin from /dev/null and stdout+stderr captured."""
        offset = self.log_offset()
        if self.in_process and args[0] in _IN_PROCESS_VERBS:
            return self._run_here(args, offset, timeout)
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        r, w = os.pipe()
        try:
            pid = self.spawn(args, (null, w, w))
        except OSError as e:
            os.close(r)
            return RuntimeResult(127, b"", f"cannot run runtime {self.prefix[0]!r}: {e}")
        finally:
            os.close(null)
            os.close(w)
        output = bytearray()
        status = self.wait(pid, timeout, capture=r, into=output)
        os.close(r)
        return RuntimeResult(
            status, bytes(output), self.error_message(args[0], status, offset, output)
        )

    def _run_here(
        self,
        args: list[str],
        offset: int,
        timeout: float,
        stdio: tuple[int, int, int] | None = None,
    ) -> RuntimeResult:
        """Run a verb of hafen-runtime in this process; its messages go to the log as the
        CLI's do (and to this process's stderr, the shim's log). Bounded by ``timeout``
        as a forked verb is (a start or delete waits on the container's hooks)."""
        from hafen.runtime.main import main

        def expire(_signum: int, _frame: object) -> None:
            raise _VerbTimeout

        # what the shim has buffered must not be written again by a child
        sys.stdout.flush()
        sys.stderr.flush()
        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            status = main(self.argv(*args)[len(self.prefix) :], stdio=stdio)
        except _VerbTimeout:
            status = 124
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        return RuntimeResult(status, b"", self.error_message(args[0], status, offset, b""))

    def wait(
        self,
        pid: int,
        timeout: float,
        capture: int | None = None,
        into: bytearray | None = None,
        extra: list[int] | None = None,
        on_extra: object = None,
    ) -> int:
        """Wait for ``pid`` to exit, reading ``capture`` meanwhile; its exit status.

        Wakes on the SIGCHLD pipe (left undrained here would spin, so it is drained; the
        caller runs a reap pass afterwards). ``extra`` fds are passed to ``on_extra`` when
        readable (the console socket during ``create``). Past ``timeout`` the runtime is
        killed and 124 returned.
        """
        deadline = time.monotonic() + timeout
        watch = [self.wake_fd]
        if capture is not None:
            watch.append(capture)
        if extra:
            watch += extra
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                if capture is not None and into is not None:
                    read_available(capture, into)
                return os.waitstatus_to_exitcode(status) if status else 0
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return 124
            ready, _, _ = select.select(watch, [], [], min(left, 0.05))
            for fd in ready:
                if fd == self.wake_fd:
                    _drain(fd)
                elif fd == capture and into is not None:
                    if not read_available(capture, into):
                        watch.remove(capture)  # EOF: the runtime is about to exit
                elif callable(on_extra):
                    on_extra(fd)

    def error_message(
        self, verb: str, status: int, log_offset: int, output: bytes | bytearray
    ) -> str:
        """The runtime's own words for a failure ("" when it succeeded)."""
        if status == 0:
            return ""
        errors: list[str] = []
        try:
            with open(self.log_path, "rb") as f:
                f.seek(log_offset)
                for line in f.read().splitlines():
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(rec, dict) and rec.get("level") in ("error", "fatal"):
                        errors.append(str(rec.get("msg", "")).strip())
        except OSError:
            pass
        errors = [e for e in errors if e]
        if errors:
            return errors[-1]
        text = bytes(output).decode("utf-8", "replace").strip()
        if text:
            return text.splitlines()[-1].strip()
        if status == 124:
            return f"runtime {verb} timed out"
        if status < 0:
            return f"runtime {verb} killed by signal {-status}"
        return f"runtime {verb} exited with status {status}"


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def read_available(fd: int, into: bytearray) -> bool:
    """Read what ``fd`` holds without blocking; False at EOF."""
    os.set_blocking(fd, False)
    try:
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return False
            # keep only the tail: an error message is short, a chatty runtime is not
            into += chunk
            if len(into) > 65536:
                del into[:-65536]
    except BlockingIOError:
        return True
    except OSError:
        return False
