"""``hafen-shim``: the command line and the launcher.

    hafen-shim --id ID --bundle DIR --state-dir DIR --log-path FILE --runtime CMD
               [--runtime-root DIR] [--tty] [--stdin] [--stdin-once] [--start]
               [--report-attach STREAMS] [--await-bundle]
    hafen-shim --zygote FD      (the daemon's pre-imported launcher, see ``zygote``)

With ``--start`` the shim starts the container before it reports (``"started": true``
in the report): the daemon's start is one launch, not a launch and a start request.
``--report-attach stdout,stderr`` (zygote launches only) keeps the report connection
open after the report line as an attach stream of those streams, connected before the
start, so that an attached client misses nothing without an attach request either.
``--await-bundle`` (zygote launches only): the shim sets itself up while the daemon
makes the bundle, and creates once the daemon writes ``BUNDLE_READY`` on that connection.

The launcher creates the state dir, binds and listens on ``<state-dir>/shim.sock``
before forking (so the daemon can connect as soon as the launcher exits), forks the
shim and waits on a pipe for its readiness report, then prints exactly one JSON line —
``{"pid": <container init>, "shim_pid": <shim>}`` and exits 0, or ``{"error": "..."}``
and exits 1 (the shim is then gone and has cleaned up after itself). The shim is not
the launcher's child for long: the launcher exits, so the shim is reparented. Through
the daemon's zygote there is no launcher: the zygote's child becomes the shim
(``become_shim``) and writes the same report line to the daemon itself.

Arguments are hand-parsed (argparse costs start-up time on every container start).
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import sys

from hafen.runtime import is_cli
from hafen.shim.monitor import ShimOptions, run_shim
from hafen.shim.proto import SOCKET_NAME, reachable_path
from hafen.shim.runtime import preload

USAGE = """usage: hafen-shim --id ID --bundle DIR --state-dir DIR --log-path FILE --runtime CMD
                  [--runtime-root DIR] [--tty] [--stdin] [--stdin-once]
                  [--log-max-size BYTES] [--log-max-file N] [--log-attrs JSON]
                  [--log-format json-file|local] [--log-compress]
                  [--log-mode blocking|non-blocking] [--log-max-buffer-size BYTES]
                  [--start] [--report-attach stdin,stdout,stderr] [--await-bundle]"""

_VALUE_FLAGS = {
    "id": "id",
    "bundle": "bundle",
    "state-dir": "state_dir",
    "log-path": "log_path",
    "runtime": "runtime",
    "runtime-root": "runtime_root",
    "log-max-size": "log_max_size",
    "log-max-file": "log_max_files",
    "log-attrs": "log_attrs",
    "log-format": "log_format",
    "log-mode": "log_mode",
    "log-max-buffer-size": "log_max_buffer_size",
    "report-attach": "report_attach",
}
_BOOL_FLAGS = {
    "tty": "tty",
    "stdin": "stdin",
    "stdin-once": "stdin_once",
    "log-compress": "log_compress",
    "start": "start",
    "await-bundle": "await_bundle",
}
_REQUIRED = ("id", "bundle", "state-dir", "log-path", "runtime")


class UsageError(Exception):
    pass


def parse_args(argv: list[str]) -> ShimOptions:
    """The options of one command line; UsageError names what is wrong."""
    values: dict[str, str] = {}
    flags: dict[str, bool] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("--"):
            raise UsageError(f"unexpected argument {arg!r}")
        name, eq, value = arg[2:].partition("=")
        if name in _BOOL_FLAGS:
            if eq:
                if value not in ("true", "false"):
                    raise UsageError(f"--{name} takes true or false, not {value!r}")
                flags[name] = value == "true"
            else:
                flags[name] = True
        elif name in _VALUE_FLAGS:
            if not eq:
                if i >= len(argv):
                    raise UsageError(f"--{name} needs a value")
                value = argv[i]
                i += 1
            values[name] = value
        else:
            raise UsageError(f"unknown flag --{name}")
    missing = [f"--{n}" for n in _REQUIRED if not values.get(n)]
    if missing:
        raise UsageError(f"missing {', '.join(missing)}")
    runtime = shlex.split(values["runtime"])
    if not runtime:
        raise UsageError("--runtime is empty")
    return ShimOptions(
        id=values["id"],
        bundle=os.path.abspath(values["bundle"]),
        state_dir=os.path.abspath(values["state-dir"]),
        log_path=os.path.abspath(values["log-path"]),
        runtime=runtime,
        runtime_root=os.path.abspath(values["runtime-root"])
        if values.get("runtime-root")
        else None,
        tty=flags.get("tty", False),
        stdin=flags.get("stdin", False),
        stdin_once=flags.get("stdin-once", False),
        log_max_size=_count(values, "log-max-size", 0),
        log_max_files=_count(values, "log-max-file", 1),
        log_attrs=_attrs(values.get("log-attrs")),
        log_format=_log_format(values.get("log-format")),
        log_compress=flags.get("log-compress", False),
        log_buffer_size=_log_buffer(values),
        start=flags.get("start", False),
        report_attach=_report_attach(values.get("report-attach")),
        await_bundle=flags.get("await-bundle", False),
    )


def _report_attach(text: str | None) -> tuple[bool, bool, bool] | None:
    """``--report-attach stdout,stderr``: which streams (stdin, stdout, stderr)."""
    if text is None:
        return None
    names = {n for n in text.split(",") if n}
    unknown = names - {"stdin", "stdout", "stderr"}
    if unknown:
        raise UsageError(f"--report-attach takes stdin, stdout and stderr, not {sorted(unknown)}")
    return "stdin" in names, "stdout" in names, "stderr" in names


def _log_buffer(values: dict[str, str]) -> int | None:
    """``--log-mode non-blocking`` [``--log-max-buffer-size``]: the ring's size in bytes;
    None in blocking mode (the default)."""
    mode = values.get("log-mode") or "blocking"
    if mode not in ("blocking", "non-blocking"):
        raise UsageError(f"--log-mode takes blocking or non-blocking, not {mode!r}")
    if mode == "blocking":
        if values.get("log-max-buffer-size"):
            raise UsageError("--log-max-buffer-size needs --log-mode non-blocking")
        return None
    from hafen.shim.logbuffer import DEFAULT_MAX_BYTES

    return _count(values, "log-max-buffer-size", DEFAULT_MAX_BYTES)


def _log_format(text: str | None) -> str:
    if text in (None, "", "json-file", "local"):
        return text or "json-file"
    raise UsageError(f"--log-format takes json-file or local, not {text!r}")


def _attrs(text: str | None) -> dict[str, str] | None:
    """``--log-attrs``: a JSON object of strings (the record's ``attrs``)."""
    if not text:
        return None
    import json

    try:
        attrs = json.loads(text)
    except ValueError as e:
        raise UsageError(f"--log-attrs is not JSON: {e}") from e
    if not isinstance(attrs, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in attrs.items()
    ):
        raise UsageError("--log-attrs must be a JSON object of strings")
    return attrs or None


def _count(values: dict[str, str], name: str, default: int) -> int:
    text = values.get(name)
    if not text:
        return default
    if not text.isdigit():
        raise UsageError(f"--{name} takes a non-negative integer, not {text!r}")
    return int(text)


def _listen(path: str) -> socket.socket:
    """Bind and listen on the shim socket (replacing a stale one)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    target, dirfd = reachable_path(path)
    try:
        sock.bind(target)
        os.chmod(path, 0o600)
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    finally:
        if dirfd is not None:
            os.close(dirfd)
    return sock


def _emit(obj: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _prepare(opts: ShimOptions) -> tuple[bool, socket.socket]:
    """Make the state dir and listen on its socket: (whether the dir is new, listener).

    Raises OSError with a message naming the dir."""
    try:
        made_dir = not os.path.isdir(opts.state_dir)
        os.makedirs(opts.state_dir, mode=0o711, exist_ok=True)
        return made_dir, _listen(os.path.join(opts.state_dir, SOCKET_NAME))
    except OSError as e:
        raise OSError(f"shim: cannot listen in {opts.state_dir}: {e}") from e


def become_shim(args: list[str], report_fd: int) -> int:
    """The zygote's launch: this process becomes the shim itself (no launcher, no second
    fork) and writes the launcher's report line to ``report_fd``: it closes that fd
    after reporting success, and leaves it to its exit after a failure."""
    try:
        opts = parse_args(args)
        _made_dir, listener = _prepare(opts)
    except (UsageError, OSError) as e:
        _report_line(
            report_fd, {"error": f"hafen-shim: {e}" if isinstance(e, UsageError) else str(e)}
        )
        return 2 if isinstance(e, UsageError) else 1
    return run_shim(opts, listener, report_fd)


def _report_line(fd: int, obj: dict[str, object]) -> None:
    """Write a failure's report; the fd closes when this process exits, so the daemon's
    EOF means the shim is gone (as after an exec'd launcher's answer)."""
    data = json.dumps(obj).encode() + b"\n"
    while data:
        data = data[os.write(fd, data) :]


def launch(opts: ShimOptions) -> int:
    """Fork the shim, relay its readiness report; the launcher's exit status."""
    if opts.report_attach is not None or opts.await_bundle:
        # the report goes through a pipe and our stdout: nothing can come back on it
        _emit({"error": "hafen-shim: --report-attach and --await-bundle need the zygote"})
        return 2
    try:
        made_dir, listener = _prepare(opts)
    except OSError as e:
        _emit({"error": str(e)})
        return 1
    r, w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            code = run_shim(opts, listener, w)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(w)
    listener.close()
    chunks = []
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(r)
    report: dict[str, object] = {}
    for line in b"".join(chunks).splitlines():
        try:
            report = json.loads(line)
        except ValueError:
            continue
    if isinstance(report.get("pid"), int):
        _emit(
            {
                "pid": report["pid"],
                "shim_pid": report.get("shim_pid", pid),
                "started": report.get("started") is True,
            }
        )
        return 0
    # the shim is finishing its clean-up: wait so that "gone" is true when we answer
    os.waitpid(pid, 0)
    message = report.get("error") or "shim exited before reporting (see its shim.log)"
    if made_dir and not report:
        try:
            os.rmdir(opts.state_dir)
        except OSError:
            pass
    _emit({"error": str(message)})
    return 1


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--zygote"] and len(args) == 2 and args[1].isdigit():
        from hafen.shim.zygote import serve

        return serve(int(args[1]))
    try:
        opts = parse_args(args)
    except UsageError as e:
        print(f"hafen-shim: {e}\n{USAGE}", file=sys.stderr)
        _emit({"error": f"hafen-shim: {e}"})
        return 2
    if is_cli(opts.runtime):
        preload()  # before the fork: the shim runs each runtime verb in a fork of itself
    return launch(opts)
