"""OCI lifecycle hooks: running ``hooks.<kind>`` programs with the container state on stdin.

Owns running one hook (fork + execve, the state JSON written to its stdin, its timeout)
and the rules of config.md "POSIX-platform Hooks" for where each kind runs:

    prestart, createRuntime   create, runtime namespace, after the namespaces and mounts
                              exist and before pivot_root (the parent runs them while
                              the init waits)                     state "creating"
    createContainer           create, in the container's namespaces, before pivot_root
                              (the init runs them)                state "creating"
    startContainer            start, inside the container, just before the user
                              process is exec'd (the init)        state "created"
    poststart                 start, runtime namespace, after the process started
                                                                  state "running"
    poststop                  delete, runtime namespace, after cleanup   state "stopped"

A failing prestart/createRuntime/createContainer/startContainer hook fails the
operation (and create leaves nothing behind); poststart and poststop failures are
logged as warnings and the lifecycle continues, as the spec says.

fork/exec rather than ``subprocess``: this runs in the container's init, where importing
``subprocess`` would cost start-up time and may not even be possible after pivot_root.
"""

from __future__ import annotations

import json
import os
import signal
import time

from hafen.errors import RuntimeFailure
from hafen.runtime.config import Hook

_CATCHABLE = frozenset(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP}

KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


def run_hook(hook: Hook, state: dict[str, object], kind: str) -> None:
    """Run one hook; raise RuntimeFailure when it cannot run, fails, or times out."""
    data = json.dumps(state).encode()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            # a hook starts with every signal at its default, as an exec'd runtime's would
            # (whatever runs this, an interpreter ignores SIGPIPE and SIGXFSZ, and the
            # shim SIGINT and SIGHUP: ignored dispositions survive execve)
            for sig in _CATCHABLE:
                try:
                    signal.signal(sig, signal.SIG_DFL)
                except (OSError, ValueError):
                    pass  # glibc's own real-time signals
            signal.pthread_sigmask(signal.SIG_SETMASK, ())
            os.close(w)
            os.dup2(r, 0)
            if r != 0:
                os.close(r)
            argv = hook.args or [hook.path]
            os.execve(hook.path, argv, _env(hook.env))
        except BaseException as e:
            try:
                os.write(2, f"{kind} hook {hook.path}: {e}\n".encode())
            except BaseException:
                pass
        os._exit(127)
    os.close(r)
    try:
        while data:
            data = data[os.write(w, data) :]
    except BrokenPipeError:
        pass  # a hook may ignore its stdin
    finally:
        os.close(w)
    deadline = time.monotonic() + hook.timeout if hook.timeout else None
    try:
        while True:
            waited, status = os.waitpid(pid, os.WNOHANG if deadline else 0)
            if waited:
                break
            if deadline and time.monotonic() > deadline:
                raise RuntimeFailure(f"{kind} hook {hook.path} timed out after {hook.timeout}s")
            time.sleep(0.002)
    except BaseException:
        # its own timeout, or the caller's (an interrupt, the shim's verb timeout): the
        # hook goes too, and is reaped
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeFailure(f"{kind} hook {hook.path} failed with exit status {code}")


def _env(entries: list[str]) -> dict[str, str]:
    env = {}
    for entry in entries:
        key, sep, value = entry.partition("=")
        if sep:
            env[key] = value
    return env


def run_all(hooks: list[Hook], state: dict[str, object], kind: str) -> None:
    for hook in hooks:
        run_hook(hook, state, kind)


def run_warn(hooks: list[Hook], state: dict[str, object], kind: str) -> None:
    """poststart/poststop: a failure is a warning on stderr, not an error."""
    import sys

    for hook in hooks:
        try:
            run_hook(hook, state, kind)
        except (RuntimeFailure, OSError) as e:
            sys.stderr.write(f"warning: {e}\n")
