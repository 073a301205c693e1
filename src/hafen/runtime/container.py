"""The runtime's verbs on the caller's side: create, start, state, kill, delete, run, list.

Owns the parent half of create (the children are in ``_init``) and the rule that a failed
create leaves nothing behind: no state dir, no cgroup it made, no stray process (mounts
live only in the container's own mount namespace, so none reach the host).
"""

from __future__ import annotations

import errno
import time

from hafen.errors import Conflict, HafenError, InvalidArgument, InvalidConfig, RuntimeFailure
from hafen.records import as_dict
from hafen.runtime import _files, cgroups
from hafen.runtime import _os as os
from hafen.runtime._signals import signal
from hafen.runtime.config import Spec, load_spec
from hafen.runtime.state import (
    ContainerState,
    NoSuchContainer,
    StateDir,
    list_ids,
    oci_state,
    proc_start_time,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable
    from typing import Any

    from hafen.runtime._init import Channel, InitArgs


# Device rules runc appends for every container so its default /dev nodes work.
DEFAULT_DEVICE_RULES: list[dict[str, Any]] = [
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
]


def _now_rfc3339() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + (
        f".{ns % 1_000_000_000:09d}Z"
    )


def _write_pid_file(path: str, pid: int) -> None:
    path = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    _files.write_new(tmp, str(pid).encode())
    os.rename(tmp, path)


def _resources_with_defaults(spec: Spec) -> dict[str, Any]:
    resources = dict(spec.resources)
    if "devices" in resources:
        rules = list(resources["devices"])
        for d in spec.devices:
            rules.append(
                {"allow": True, "type": d.type, "major": d.major, "minor": d.minor, "access": "rwm"}
            )
        resources["devices"] = rules + DEFAULT_DEVICE_RULES
    return resources


def _wait_gone(pid: int, start_time: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = proc_start_time(pid)
        if now is None or (start_time and now != start_time):
            return
        time.sleep(0.002)
    raise RuntimeFailure(f"process {pid} did not exit after SIGKILL")


def _remove_state_dir(sd: StateDir) -> None:
    for name in os.listdir(sd.path) if os.path.isdir(sd.path) else []:
        try:
            os.unlink(os.path.join(sd.path, name))
        except FileNotFoundError:
            pass
    try:
        os.rmdir(sd.path)
    except FileNotFoundError:
        pass


def create(
    root: str,
    container_id: str,
    bundle: str,
    console_socket: str | None = None,
    pid_file: str | None = None,
    no_pivot: bool = False,
    preserve_fds: int = 0,
    debug: bool = False,
    proxy: list[Any] | None = None,
    stdio: tuple[int, int, int] | None = None,
) -> ContainerState:
    """Create the container; return the state it saved (the init's host pid among it)
    once the init waits on the exec fifo.

    ``proxy`` (``run`` in the foreground): a terminal without a console socket is then
    allowed; the pty's master arrives on the socket appended to the list. ``stdio``
    (a caller running create in its own process, the shim): the container's fds 0-2,
    instead of this process's.
    """
    sd = StateDir(root, container_id)
    spec = load_spec(bundle)
    proc = spec.process
    if proc is None:
        raise InvalidConfig("config.json: process is required to create a container")
    if not spec.has_namespace("mount"):
        raise InvalidConfig("config.json: linux.namespaces must include a mount namespace")
    if spec.hostname and not spec.has_namespace("uts"):
        raise InvalidConfig("config.json: unable to set hostname without a private UTS namespace")
    if proc.terminal and not console_socket and proxy is None:
        raise InvalidArgument(
            "cannot allocate tty if hafen-runtime will detach without setting console socket"
        )
    if console_socket and not proc.terminal:
        raise InvalidArgument("cannot use console socket if process.terminal is false")
    if stdio is not None and preserve_fds:
        raise InvalidArgument("preserved fds are the caller's: not with stdio given in-process")
    if proc.apparmor_profile:
        from hafen.runtime import apparmor

        apparmor.require(proc.apparmor_profile)
    manager = cgroups.open_manager(spec.cgroups_path, container_id)

    os.makedirs(root, mode=0o700, exist_ok=True)
    try:
        os.mkdir(sd.path, 0o711)
    except FileExistsError:
        raise Conflict(f"container with id exists: {container_id}")
    os.chmod(sd.path, 0o711)
    made_cgroup = False
    pid = 0
    console: socket.socket | None = None
    try:
        os.mkfifo(sd.fifo, 0o622)
        os.chmod(sd.fifo, 0o622)
        if console_socket or (proc.terminal and proxy is not None):
            import socket

            from hafen.runtime import console as _console  # noqa: F401  (loaded pre-fork)

            if console_socket:
                console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    console.connect(console_socket)
                except OSError as e:
                    raise InvalidArgument(f"console socket {console_socket}: {e.strerror}")
            else:
                console, ours = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
                assert proxy is not None
                proxy.append(ours)
        seccomp_filter = _seccomp_filter(root, sd, spec)
        if spec.hooks:
            from hafen.runtime import hooks as _hooks  # noqa: F401  (the init needs it)
        made_cgroup = not manager.exists()
        manager.create()
        manager.apply(_resources_with_defaults(spec))
        saved: list[ContainerState] = []

        def save_state(init_pid: int) -> None:
            # Called as soon as the init's pid is known, while it sets itself up: the
            # state is on disk before it is ready, so a create cut short leaves a state
            # that `delete --force` can act on.
            st = ContainerState(
                id=container_id,
                pid=init_pid,
                bundle=spec.bundle,
                rootfs=spec.rootfs,
                created=_now_rfc3339(),
                start_time=proc_start_time(init_pid) or 0,
                cgroup_path=manager.path,
                cgroup_unified=isinstance(manager, cgroups.CgroupV2),
                annotations=spec.annotations,
                oci_version=spec.oci_version or "1.0.2",
                owner="",
                namespaces=[ns.type for ns in spec.namespaces],
                hooks={
                    kind: [as_dict(h) for h in spec.hooks[kind]]
                    for kind in ("poststart", "poststop")
                    if spec.hooks.get(kind)
                },
            )
            sd.save(st)
            saved.append(st)

        pid = _spawn(
            sd, spec, manager, console, no_pivot, preserve_fds, debug, seccomp_filter, made_cgroup,
            save_state, stdio,
        )  # fmt: skip
        if pid_file:
            _write_pid_file(pid_file, pid)
        return saved[0]
    except BaseException:
        if pid > 0:
            _kill_quietly(pid)
        if made_cgroup:
            for p in manager.pids():
                _kill_quietly(p)
            try:
                manager.destroy()
            except HafenError:
                pass
        _remove_state_dir(sd)
        raise
    finally:
        if console is not None:
            console.close()


def _seccomp_filter(root: str, sd: StateDir, spec: Spec) -> bytes | None:
    """The compiled linux.seccomp (cached by content under the root); kept for exec."""
    if spec.seccomp is None:
        return None
    from hafen.runtime import seccomp
    from hafen.runtime._fastjson import dumps

    raw = dumps(spec.seccomp, sort_keys=True, separators=(",", ":"))
    program = seccomp.load_filter(root, raw)
    with open(os.path.join(sd.path, "seccomp.bpf"), "wb") as f:
        f.write(program)
    return program


def _kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def _spawn(
    sd: StateDir,
    spec: Spec,
    manager: cgroups.CgroupManager,
    console: socket.socket | None,
    no_pivot: bool,
    preserve_fds: int,
    debug: bool,
    seccomp_filter: bytes | None,
    made_cgroup: bool,
    on_pid: Callable[[int], None],
    stdio: tuple[int, int, int] | None = None,
) -> int:
    """Fork the init and wait until it is ready (waiting on the exec fifo); its host pid.
    ``on_pid`` runs once, with the init's pid, as soon as that is known; ``made_cgroup``:
    create made the cgroup (what a failed create removes)."""
    from hafen.runtime import _init

    to_parent_r, to_parent_w = os.pipe()
    to_child_r, to_child_w = os.pipe()
    child_chan = _init.Channel(to_child_r, to_parent_w)
    parent_chan = _init.Channel(to_parent_r, to_child_w)
    state_fd = os.open(sd.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    hooks_sync = any(
        spec.hooks.get(k)
        for k in ("prestart", "createRuntime", "createContainer", "startContainer")
    )
    args = _init.InitArgs(
        spec=spec,
        channel=child_chan,
        state_dir_fd=state_fd,
        fifo_name=os.path.basename(sd.fifo),
        cgroup_paths=manager.paths(),
        cgroup_join=[],  # the child's own, set after the fork
        console=console,
        no_pivot=no_pivot,
        preserve_fds=preserve_fds,
        debug=debug,
        seccomp_filter=seccomp_filter,
        container_id=sd.id,
        hooks_sync=hooks_sync,
        stdio=stdio,
    )
    # Born in its namespaces where it can be (one clone3, as crun); else through an
    # intermediate that joins or unshares them and forks the init.
    namespaces = _init.direct_namespaces(spec)
    child = -1
    if namespaces is not None and _can_share_memory(spec, manager, console, stdio, hooks_sync):
        child = _clone_sharing_memory(namespaces, args, parent_chan, sd, manager, made_cgroup)
    else:
        if namespaces is not None:
            try:
                child, joins = manager.fork_child(namespaces)
            except OSError:
                namespaces = None  # clone3 refused (Linux < 5.3, a seccomp profile)
        if namespaces is None:
            child, joins = manager.fork_child()
        if child == 0:
            args.cgroup_join = joins
            parent_chan.close()
            if namespaces is not None:
                _init.run_direct(args)
            _init.run_intermediate(args)
    direct = namespaces is not None
    child_chan.close()
    os.close(state_fd)
    pid = child if direct else 0
    error = ""
    ready = False
    try:
        if direct:
            on_pid(child)
        while True:
            msg = parent_chan.read()
            if msg is None:
                break
            kind = msg.get("type")
            if kind == "userns":
                _write_id_maps(int(str(msg["pid"])), spec)
                parent_chan.send({"type": "ack"})
            elif kind == "pid":
                pid = int(str(msg["pid"]))
                on_pid(pid)
            elif kind == "hooks":
                try:
                    _create_hooks(sd, spec, pid)
                except (HafenError, OSError) as e:
                    error = str(e)
                    break
                parent_chan.send({"type": "ack", "pid": pid})
            elif kind == "ready":
                ready = True
                break
            elif kind == "error":
                error = str(msg.get("msg"))
                break
    except BaseException:
        if direct:
            _kill_quietly(child)
            _reap(child)
        raise
    finally:
        parent_chan.close()
        if not direct:
            _reap(child)  # the intermediate (the init is re-parented)
    if ready and pid:
        return pid
    if pid:
        _kill_quietly(pid)
    if direct:
        _reap(child)
    raise RuntimeFailure(
        "unable to start container process: " + (error or "container init exited during setup")
    )


def _can_share_memory(
    spec: Spec,
    manager: cgroups.CgroupManager,
    console: socket.socket | None,
    stdio: tuple[int, int, int] | None,
    hooks_sync: bool,
) -> bool:
    """Whether the init can share this process's memory instead of being a copy of it
    (``_sys.clone_vm_run``: no copy-on-write). Not for a caller running create in its
    own process (the shim: its threads and objects), a console or hooks (the init's
    Python would change objects this process holds or wait on it), or cgroup v2 (where
    the init is born inside its cgroup by clone3)."""
    from hafen.runtime import _sys

    return (
        stdio is None
        and console is None
        and not hooks_sync
        and not spec.hooks.get("startContainer")
        and not isinstance(manager, cgroups.CgroupV2)
        and _sys.can_share_memory()
    )


def _clone_sharing_memory(
    namespaces: int,
    args: InitArgs,
    parent_chan: Channel,
    sd: StateDir,
    manager: cgroups.CgroupManager,
    made_cgroup: bool,
) -> int:
    """The init, sharing this process's memory: it runs its set-up here and is ready, or
    has reported its error, when this returns; its pid."""
    import gc
    import sys

    from hafen.runtime import _init, _sys

    args.cgroup_join = manager.join_files()

    def init() -> object:
        parent_chan.close()  # the child's copies of the parent's ends
        return _init.prepare_direct(args)

    unified = "1" if isinstance(manager, cgroups.CgroupV2) else "0"
    cleanup = [
        os.fsencode(a)
        for a in (sys.executable, "-S", "-P", "-c", _CLEANUP, sd.root, sd.id, manager.path,
                  unified, "1" if made_cgroup else "0")
    ]  # fmt: skip
    collecting = gc.isenabled()
    gc.disable()  # no collection, no finalizer of this process's objects in the child
    try:
        child, _planned = _sys.clone_vm_run(namespaces, init, cleanup)
    finally:
        if collecting:
            gc.enable()
    return child


# What a runtime whose init died inside its Python set-up execs instead of going on (the
# interpreter state they shared may be half-changed): remove what create made, and fail.
_CLEANUP = (
    "import sys\n"
    "from hafen.runtime import cgroups, container\n"
    "from hafen.runtime.main import main\n"
    "root, cid, path, unified, made = sys.argv[1:]\n"
    "main(['--root', root, 'delete', '--force', cid])\n"
    "manager = cgroups.manager_from_state(path, unified == '1')\n"
    "if made == '1' and manager.exists():\n"
    "    container._kill_cgroup(manager)\n"
    "sys.stderr.write('unable to start container process: container init died during setup\\n')\n"
    "raise SystemExit(1)\n"
)


def _hook_state(sd: StateDir, spec_or_state: Any, pid: int, status: str) -> dict[str, Any]:
    return {
        "ociVersion": spec_or_state.oci_version or "1.0.2",
        "id": sd.id,
        "status": status,
        "pid": pid,
        "bundle": spec_or_state.bundle,
        "annotations": spec_or_state.annotations,
    }


def _create_hooks(sd: StateDir, spec: Spec, pid: int) -> None:
    from hafen.runtime import hooks

    state = _hook_state(sd, spec, pid, "creating")
    for kind in ("prestart", "createRuntime"):
        hooks.run_all(spec.hooks.get(kind) or [], state, kind)


def _stored_hooks(st: ContainerState, kind: str) -> list[Any]:
    from hafen.runtime.config import Hook

    return [Hook(**h) for h in st.hooks.get(kind) or []]


def _reap(pid: int) -> None:
    while True:
        try:
            os.waitpid(pid, 0)
            return
        except ChildProcessError:
            return
        except InterruptedError:
            continue


def _write_id_maps(pid: int, spec: Spec) -> None:
    for name, maps in (("uid_map", spec.uid_mappings), ("gid_map", spec.gid_mappings)):
        data = "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps)
        _files.write_text(f"/proc/{pid}/{name}", data)


def _load(root: str, container_id: str) -> tuple[StateDir, ContainerState]:
    sd = StateDir(root, container_id)
    return sd, sd.load()


def start(root: str, container_id: str) -> None:
    """Let a created container's init exec the user process."""
    sd, st = _load(root, container_id)
    status = sd.status(st)
    if status == "running":
        raise Conflict("cannot start an already running container")
    if status != "created":
        raise Conflict(f"cannot start a container that has {status}")
    _start(sd, st)


def _start(sd: StateDir, st: ContainerState) -> None:
    """``start`` of a container known to be created (``run`` has just created it)."""
    import select

    fd = os.open(sd.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            try:
                if os.read(fd, 1):
                    break
            except BlockingIOError:
                pass
            if sd.status(st) == "stopped":
                raise Conflict("cannot start a container that has stopped")
            # Our open let the init's open of its end through; it writes at once. Wake
            # on that byte (a sleep-and-look loop cost ~0.5 ms a start), or look again
            # whether the init died.
            poller.poll(10)
    finally:
        os.close(fd)
        try:
            os.unlink(sd.fifo)
        except FileNotFoundError:
            pass
    if st.hooks.get("poststart"):
        from hafen.runtime import hooks

        state = _hook_state(sd, st, st.pid, "running")
        hooks.run_warn(_stored_hooks(st, "poststart"), state, "poststart")


def state(root: str, container_id: str) -> dict[str, Any]:
    sd, st = _load(root, container_id)
    return oci_state(sd, st)


def list_states(root: str) -> list[dict[str, Any]]:
    out = []
    for cid in list_ids(root):
        try:
            out.append(state(root, cid))
        except (HafenError, OSError, ValueError):
            continue
    return out


def kill(root: str, container_id: str, sig: int, all_processes: bool = False) -> None:
    sd, st = _load(root, container_id)
    if sd.status(st) == "stopped" and not all_processes:
        raise Conflict("container not running")
    if all_processes:
        manager = cgroups.manager_from_state(st.cgroup_path, st.cgroup_unified)
        if sig == signal.SIGKILL and manager.kill_all():
            return
        for p in manager.pids():
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        return
    try:
        os.kill(st.pid, sig)
    except ProcessLookupError:
        raise Conflict("container not running")


def pause(root: str, container_id: str, freeze: bool = True) -> None:
    """Freeze (pause) or thaw (resume) every process of a running container."""
    sd, st = _load(root, container_id)
    status = sd.status(st)
    manager = cgroups.manager_from_state(st.cgroup_path, st.cgroup_unified)
    if freeze:
        if status != "running":
            raise Conflict(f"container not running (status {status})")
        manager.freeze()
    else:
        if status != "paused":
            raise Conflict(f"container not paused (status {status})")
        manager.thaw()


def update(root: str, container_id: str, resources: dict[str, Any]) -> None:
    """Write new limits into a created, running or paused container's cgroups."""
    sd, st = _load(root, container_id)
    if sd.status(st) == "stopped":
        raise Conflict("cannot update a stopped container")
    cgroups.manager_from_state(st.cgroup_path, st.cgroup_unified).apply(resources)


def stats(root: str, container_id: str) -> dict[str, Any]:
    sd, st = _load(root, container_id)
    if sd.status(st) == "stopped":
        raise Conflict("container not running")
    return cgroups.manager_from_state(st.cgroup_path, st.cgroup_unified).stats()


def delete(root: str, container_id: str, force: bool = False) -> None:
    """Remove a stopped (or, as runc, created) container; --force kills a running one."""
    sd = StateDir(root, container_id)
    try:
        st = sd.load()
    except NoSuchContainer:
        if force:
            if os.path.isdir(sd.path):
                _remove_state_dir(sd)
            return
        raise
    _delete(sd, st, force)


def _delete(sd: StateDir, st: ContainerState, force: bool) -> None:
    status = sd.status(st)
    if status == "running" and not force:
        raise Conflict(f"cannot delete container {st.id} that is not stopped: running")
    manager = cgroups.manager_from_state(st.cgroup_path, st.cgroup_unified)
    if status != "stopped":
        _kill_quietly(st.pid)
        if status == "paused":
            manager.thaw()  # a frozen process cannot die
        _wait_gone(st.pid, st.start_time)
    try:
        if not manager.remove_if_empty():
            _kill_cgroup(manager)
    except RuntimeFailure:
        if not force:
            raise
    _remove_state_dir(sd)
    if st.hooks.get("poststop"):
        from hafen.runtime import hooks

        state = _hook_state(sd, st, 0, "stopped")
        hooks.run_warn(_stored_hooks(st, "poststop"), state, "poststop")


def _kill_cgroup(manager: cgroups.CgroupManager) -> None:
    """Whatever is left in the cgroup (no pid namespace, or escaped daemons) goes, then
    the cgroup."""
    for _ in range(100):
        left = manager.pids()
        if not left:
            break
        if not manager.kill_all():
            for p in left:
                _kill_quietly(p)
        if manager.frozen():
            manager.thaw()
        time.sleep(0.005)
    manager.destroy()


_FORWARDED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
)


def run(
    root: str,
    container_id: str,
    bundle: str,
    console_socket: str | None = None,
    pid_file: str | None = None,
    detach: bool = False,
    no_pivot: bool = False,
    preserve_fds: int = 0,
    debug: bool = False,
) -> int:
    """create + start; without ``detach`` wait and return the container's exit status."""
    if not detach:
        from hafen.runtime import _sys

        # The init is re-parented to us when the intermediate exits, so we can wait on it.
        _sys.prctl(_sys.PR_SET_CHILD_SUBREAPER, 1)
    proxy: list[Any] = []
    # The state create saved goes on in memory: start and delete need not read it back.
    st = create(
        root, container_id, bundle, console_socket, pid_file, no_pivot, preserve_fds, debug,
        proxy=None if detach else proxy,
    )  # fmt: skip
    sd, pid = StateDir(root, container_id), st.pid
    master = -1
    try:
        if proxy:
            from hafen.runtime import console

            # runc's behaviour without --console-socket: hold the pty, copy our stdio.
            master, _name = console.recv_console(proxy[0])
            proxy[0].close()
        _start(sd, st)
    except BaseException:
        if master >= 0:
            os.close(master)
        _delete(sd, st, force=True)
        raise
    if detach:
        return 0

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for s in _FORWARDED:
        signal.signal(s, forward)
    if master >= 0:
        from hafen.runtime import console

        console.proxy(master)  # until the container's side of the pty is closed
    code = 255
    while True:
        try:
            waited, status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except OSError as e:
            if e.errno == errno.EINTR:
                continue
            raise
        if waited == pid:
            code = os.waitstatus_to_exitcode(status)
            code = 128 - code if code < 0 else code
            break
    for s in _FORWARDED:
        signal.signal(s, signal.SIG_DFL)
    _delete(sd, st, force=True)
    return code
