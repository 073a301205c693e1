"""``hafen-runtime``: the runc-compatible command line.

Owns argument parsing (runc's global flags and verbs, hand-parsed: argparse costs start-up
time on every container start), error reporting (stderr, and ``--log`` as JSON lines
``{"level":"error","msg":...,"time":...}`` when ``--log-format json``, as containerd and
Docker read it) and exit statuses (0, 1 on any error, the container's status for ``run``).

Runs as ``python3 -S -c "import hafen.runtime.__main__"`` (``hafen.runtime.command``):
the standard library and the runtime's own C module of Linux calls (``_linux``), imports
made lazily.
"""

from __future__ import annotations

import sys

from hafen.runtime import _os as os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


USAGE = """usage: hafen-runtime [--root DIR] [--log FILE] [--log-format text|json] [--debug] VERB ...

verbs:
  create [--bundle DIR] [--console-socket PATH] [--pid-file PATH] [--no-pivot] ID
  start ID
  state ID
  kill [--all] ID [SIGNAL]
  delete [--force] ID
  run [--bundle DIR] [--console-socket PATH] [--pid-file PATH] [--detach] ID
  exec [--process FILE | -e K=V -u UID[:GID] --cwd DIR -c CAP -g GID] [-t] [-d]
       [--pid-file PATH] [--console-socket PATH] [--no-new-privs] ID [COMMAND ARG...]
  pause ID | resume ID
  update [-r resources.json|-] [--memory N] [--memory-swap N] [--memory-reservation N]
         [--cpu-share N] [--cpu-period N] [--cpu-quota N] [--cpuset-cpus L]
         [--cpuset-mems L] [--pids-limit N] [--blkio-weight N] ID
  events --stats ID
  ps [--format table|json] ID [PS ARGS...]
  list [--format table|json] [--quiet]
  features
"""

# flag name -> (canonical key, 0 no value / 1 one value / 2 repeatable value)
_GLOBAL_FLAGS: dict[str, tuple[str, int]] = {
    "root": ("root", True),
    "log": ("log", True),
    "log-format": ("log_format", True),
    "debug": ("debug", False),
    "systemd-cgroup": ("systemd_cgroup", False),
    "rootless": ("rootless", True),
    "criu": ("criu", True),
    "help": ("help", False),
    "h": ("help", False),
    "version": ("version", False),
    "v": ("version", False),
}
_CREATE_FLAGS: dict[str, tuple[str, int]] = {
    "bundle": ("bundle", True),
    "b": ("bundle", True),
    "console-socket": ("console_socket", True),
    "pid-file": ("pid_file", True),
    "no-pivot": ("no_pivot", False),
    "no-new-keyring": ("no_new_keyring", False),
    "preserve-fds": ("preserve_fds", True),
}
_EXEC_FLAGS: dict[str, tuple[str, int]] = {
    "console-socket": ("console_socket", True),
    "pid-file": ("pid_file", True),
    "cwd": ("cwd", True),
    "env": ("env", 2),
    "e": ("env", 2),
    "tty": ("tty", False),
    "t": ("tty", False),
    "user": ("user", True),
    "u": ("user", True),
    "additional-gids": ("additional_gids", 2),
    "g": ("additional_gids", 2),
    "process": ("process", True),
    "p": ("process", True),
    "detach": ("detach", False),
    "d": ("detach", False),
    "process-label": ("process_label", True),
    "apparmor": ("apparmor", True),
    "no-new-privs": ("no_new_privs", False),
    "cap": ("cap", 2),
    "c": ("cap", 2),
    "preserve-fds": ("preserve_fds", True),
    "ignore-paused": ("ignore_paused", False),
}
_VERB_FLAGS: dict[str, dict[str, tuple[str, int]]] = {
    "create": _CREATE_FLAGS,
    "run": {**_CREATE_FLAGS, "detach": ("detach", False), "d": ("detach", False)},
    "start": {},
    "state": {},
    "kill": {"all": ("all", False), "a": ("all", False)},
    "delete": {"force": ("force", False), "f": ("force", False)},
    "ps": {"format": ("format", True), "f": ("format", True)},
    "list": {
        "format": ("format", True),
        "f": ("format", True),
        "quiet": ("quiet", False),
        "q": ("quiet", False),
    },
    "features": {},
    "exec": _EXEC_FLAGS,
    "pause": {},
    "resume": {},
    "update": {
        "resources": ("resources", True),
        "r": ("resources", True),
        "memory": ("memory", True),
        "memory-swap": ("memory_swap", True),
        "memory-reservation": ("memory_reservation", True),
        "kernel-memory": ("kernel_memory", True),
        "kernel-memory-tcp": ("kernel_memory_tcp", True),
        "cpu-share": ("cpu_share", True),
        "cpu-period": ("cpu_period", True),
        "cpu-quota": ("cpu_quota", True),
        "cpu-rt-period": ("cpu_rt_period", True),
        "cpu-rt-runtime": ("cpu_rt_runtime", True),
        "cpuset-cpus": ("cpuset_cpus", True),
        "cpuset-mems": ("cpuset_mems", True),
        "pids-limit": ("pids_limit", True),
        "blkio-weight": ("blkio_weight", True),
    },
    "events": {"stats": ("stats", False), "interval": ("interval", True)},
}
# Verbs whose flags end at the first positional argument (the rest is a command line).
_STOP_AT_POSITIONAL = {"exec", "ps"}


class UsageError(Exception):
    pass


class _ExecFailed(Exception):
    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _parse_flags(
    argv: list[str], table: dict[str, tuple[str, int]], stop_at_positional: bool
) -> tuple[dict[str, Any], list[str]]:
    """Go-style flags (-x, --x, --x=v, --x v) up to the first positional argument."""
    opts: dict[str, Any] = {}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i + 1 :])
            break
        if not arg.startswith("-") or arg == "-":
            if stop_at_positional:
                rest.extend(argv[i:])
                break
            rest.append(arg)
            i += 1
            continue
        name = arg.lstrip("-")
        value: str | None = None
        if "=" in name:
            name, value = name.split("=", 1)
        if name not in table:
            raise UsageError(f"flag provided but not defined: -{name}")
        key, takes_value = table[name]
        if takes_value:
            if value is None:
                i += 1
                if i >= len(argv):
                    raise UsageError(f"flag needs an argument: -{name}")
                value = argv[i]
            if takes_value == 2:
                opts.setdefault(key, []).append(value)
            else:
                opts[key] = value
        else:
            opts[key] = value is None or value.lower() in ("1", "true", "yes")
        i += 1
    return opts, rest


class _Logger:
    def __init__(self, path: str | None, fmt: str) -> None:
        self.path = path
        self.fmt = fmt

    def error(self, msg: str) -> None:
        sys.stderr.write(msg.rstrip("\n") + "\n")
        sys.stderr.flush()
        self._log("error", msg)

    def debug(self, msg: str) -> None:
        self._log("debug", msg)

    def _log(self, level: str, msg: str) -> None:
        if not self.path:
            return
        import time

        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if self.fmt == "json":
            import json

            line = json.dumps({"level": level, "msg": msg, "time": now})
        else:
            line = f'time="{now}" level={level} msg="{msg}"'
        try:
            with open(self.path, "a") as f:
                f.write(line + "\n")
        except OSError:
            pass


def parse_signal(text: str) -> int:
    """SIGTERM, TERM, term or 15 -> 15 (as runc accepts them)."""
    from hafen.runtime._signals import signal

    if text.isdigit():
        num = int(text)
        if not 0 < num < 65:
            raise UsageError(f"invalid signal number {text}")
        return num
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(getattr(signal, name))
    except AttributeError:
        pass
    if name.startswith("SIGRTMIN") or name.startswith("SIGRTMAX"):
        base = signal.SIGRTMIN if name.startswith("SIGRTMIN") else signal.SIGRTMAX
        offset = name[8:]
        try:
            return int(base) + (int(offset) if offset else 0)
        except ValueError:
            pass
    raise UsageError(f"unknown signal {text!r}")


def _one_id(verb: str, rest: list[str]) -> str:
    if len(rest) != 1:
        raise UsageError(f'"{verb}" requires exactly 1 argument (container id), got {len(rest)}')
    return rest[0]


def _print_json(obj: Any) -> None:
    import json

    sys.stdout.write(json.dumps(obj, indent=2) + "\n")
    sys.stdout.flush()


def _features() -> dict[str, Any]:
    from hafen.runtime import apparmor
    from hafen.runtime.config import CAPABILITIES, HOOK_KINDS, NAMESPACE_FLAGS
    from hafen.runtime.rootfs import _FLAGS, _PROPAGATION

    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.0.2",
        "hooks": list(HOOK_KINDS),
        "mountOptions": sorted([*_FLAGS, *_PROPAGATION]),
        "linux": {
            "namespaces": sorted(NAMESPACE_FLAGS),
            "capabilities": CAPABILITIES,
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": {
                "enabled": True,
                "actions": [
                    "SCMP_ACT_ALLOW",
                    "SCMP_ACT_ERRNO",
                    "SCMP_ACT_KILL",
                    "SCMP_ACT_KILL_PROCESS",
                    "SCMP_ACT_KILL_THREAD",
                    "SCMP_ACT_LOG",
                    "SCMP_ACT_TRACE",
                    "SCMP_ACT_TRAP",
                ],
                "operators": [
                    "SCMP_CMP_EQ",
                    "SCMP_CMP_GE",
                    "SCMP_CMP_GT",
                    "SCMP_CMP_LE",
                    "SCMP_CMP_LT",
                    "SCMP_CMP_MASKED_EQ",
                    "SCMP_CMP_NE",
                ],
                "archs": ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64"],
            },
            "apparmor": {"enabled": apparmor.is_enabled()},
            "selinux": {"enabled": False},
        },
        "annotations": {"org.hafen.runtime.name": "hafen-runtime"},
    }


def _ps_table(pids: list[int], ps_args: list[str]) -> None:
    """runc's table: the host's ``ps`` output, only the container's processes."""
    import subprocess

    out = subprocess.run(["ps", *ps_args], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise UsageError(f"ps {' '.join(ps_args)}: {out.stderr.strip()}")
    lines = out.stdout.splitlines()
    if not lines:
        return
    titles = lines[0].split()
    if "PID" not in titles:
        raise UsageError("couldn't find PID field in ps output")
    col = titles.index("PID")
    keep = [lines[0]]
    wanted = set(pids)
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in wanted:
            keep.append(line)
    sys.stdout.write("\n".join(keep) + "\n")


def _preserve_fds(opts: dict[str, Any]) -> int:
    try:
        return int(opts.get("preserve_fds", 0))
    except ValueError:
        raise UsageError("--preserve-fds must be a number")


def _exec(root: str, opts: dict[str, Any], rest: list[str]) -> int:
    from hafen.runtime import exec_process as ex
    from hafen.runtime.state import StateDir

    if not rest:
        raise UsageError('"exec" requires a container id')
    cid, command = rest[0], rest[1:]
    if opts.get("process"):
        if command:
            raise UsageError("exec: give either --process or a command, not both")
        process = ex.load_process_file(opts["process"])
        if opts.get("tty"):
            process.terminal = True
    else:
        st = StateDir(root, cid).load()
        process = ex.process_from_flags(
            st.bundle,
            command,
            env=opts.get("env"),
            cwd=opts.get("cwd"),
            user=opts.get("user"),
            additional_gids=opts.get("additional_gids"),
            caps=opts.get("cap"),
            no_new_privs=bool(opts.get("no_new_privs")),
            tty=bool(opts.get("tty")),
        )
    if opts.get("apparmor"):
        process.apparmor_profile = opts["apparmor"]
    return ex.exec_process(
        root,
        cid,
        process,
        detach=bool(opts.get("detach")),
        pid_file=opts.get("pid_file"),
        console_socket=opts.get("console_socket"),
        preserve_fds=_preserve_fds(opts),
        ignore_paused=bool(opts.get("ignore_paused")),
    )


def _dispatch(
    verb: str,
    opts: dict[str, Any],
    rest: list[str],
    g: dict[str, Any],
    stdio: tuple[int, int, int] | None = None,
) -> int:
    from hafen.runtime import container

    root = g.get("root") or "/run/hafen-runtime"
    debug = bool(g.get("debug"))
    if verb in ("create", "run"):
        cid = _one_id(verb, rest)
        try:
            preserve = int(opts.get("preserve_fds", 0))
        except ValueError:
            raise UsageError("--preserve-fds must be a number")
        kwargs: dict[str, Any] = {
            "console_socket": opts.get("console_socket"),
            "pid_file": opts.get("pid_file"),
            "no_pivot": bool(opts.get("no_pivot")),
            "preserve_fds": preserve,
            "debug": debug,
        }
        bundle = opts.get("bundle") or os.getcwd()
        if verb == "create":
            container.create(root, cid, bundle, stdio=stdio, **kwargs)
            return 0
        return container.run(root, cid, bundle, detach=bool(opts.get("detach")), **kwargs)
    if verb == "exec":
        try:
            return _exec(root, opts, rest)
        except UsageError:
            raise
        except Exception as e:
            # runc exits 255 when exec itself fails (not the process): callers tell apart
            # "the command failed" from "the command never ran".
            raise _ExecFailed(e)
    if verb in ("pause", "resume"):
        container.pause(root, _one_id(verb, rest), verb == "pause")
        return 0
    if verb == "update":
        from hafen.runtime import update

        container.update(root, _one_id(verb, rest), update.resources_from_flags(opts))
        return 0
    if verb == "events":
        if not opts.get("stats"):
            raise UsageError("events: only --stats is supported")
        cid = _one_id(verb, rest)
        _print_json({"type": "stats", "id": cid, "data": container.stats(root, cid)})
        return 0
    if verb == "start":
        container.start(root, _one_id(verb, rest))
        return 0
    if verb == "state":
        _print_json(container.state(root, _one_id(verb, rest)))
        return 0
    if verb == "kill":
        if not 1 <= len(rest) <= 2:
            raise UsageError(f'"kill" requires 1 or 2 arguments (ID [SIGNAL]), got {len(rest)}')
        sig = parse_signal(rest[1]) if len(rest) == 2 else 15
        container.kill(root, rest[0], sig, bool(opts.get("all")))
        return 0
    if verb == "delete":
        container.delete(root, _one_id(verb, rest), bool(opts.get("force")))
        return 0
    if verb == "ps":
        from hafen.runtime import cgroups
        from hafen.runtime.state import StateDir

        if not rest:
            raise UsageError('"ps" requires a container id')
        st = StateDir(root, rest[0]).load()
        pids = cgroups.manager_from_state(st.cgroup_path, st.cgroup_unified).pids()
        if opts.get("format") == "json":
            _print_json(pids)
            return 0
        if opts.get("format") not in (None, "table"):
            raise UsageError(f"invalid format option {opts['format']!r} (table or json)")
        _ps_table(pids, rest[1:] or ["-ef"])
        return 0
    if verb == "list":
        states = container.list_states(root)
        if opts.get("quiet"):
            sys.stdout.write("".join(s["id"] + "\n" for s in states))
        elif opts.get("format") == "json":
            _print_json(states)
        else:
            lines = ["ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER"]
            for s in states:
                lines.append(
                    f"{s['id']}\t{s['pid']}\t{s['status']}\t{s['bundle']}\t{s['created']}\troot"
                )
            sys.stdout.write("\n".join(lines) + "\n")
        return 0
    if verb == "features":
        _print_json(_features())
        return 0
    raise UsageError(f"unknown command {verb!r}")


def main(argv: list[str] | None = None, *, stdio: tuple[int, int, int] | None = None) -> int:
    """The CLI; ``stdio``: a caller running ``create`` in its own process (the shim) gives
    the container's fds 0-2 here, where a CLI's child would inherit the CLI's."""
    args = sys.argv[1:] if argv is None else argv
    log = _Logger(None, "text")
    try:
        g, rest = _parse_flags(args, _GLOBAL_FLAGS, stop_at_positional=True)
        log = _Logger(g.get("log"), g.get("log_format") or "text")
        if g.get("log_format") not in (None, "text", "json"):
            raise UsageError(f"unknown log-format {g['log_format']!r} (text or json)")
        if g.get("version"):
            from hafen import __version__

            sys.stdout.write(f"hafen-runtime version {__version__}\nspec: 1.0.2\n")
            return 0
        if g.get("help") or not rest:
            sys.stdout.write(USAGE)
            return 0 if g.get("help") else 1
        if g.get("systemd_cgroup"):
            raise UsageError("--systemd-cgroup is not supported by hafen-runtime")
        verb, verb_args = rest[0], rest[1:]
        if verb not in _VERB_FLAGS:
            raise UsageError(f"unknown command {verb!r}")
        opts, positional = _parse_flags(
            verb_args, _VERB_FLAGS[verb], stop_at_positional=verb in _STOP_AT_POSITIONAL
        )
        if g.get("debug"):
            log.debug(f"{verb} {' '.join(verb_args)}")
        return _dispatch(verb, opts, positional, g, stdio)
    except UsageError as e:
        log.error(f"{e}")
        return 1
    except KeyboardInterrupt:
        return 130
    except _ExecFailed as failed:
        _report(log, failed.cause)
        return 255
    except Exception as e:
        _report(log, e)
        return 1


def _report(log: _Logger, e: Exception) -> None:
    from hafen.errors import HafenError

    if isinstance(e, HafenError):
        log.error(e.message)
    elif isinstance(e, OSError):
        log.error(str(e.strerror if e.strerror and not e.filename else e))
    else:
        log.error(f"{type(e).__name__}: {e}")


if __name__ == "__main__":
    raise SystemExit(main())
