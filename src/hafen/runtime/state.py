"""The runtime's on-disk container state: ``<root>/<id>/state.json`` and the exec fifo.

Owns: the state record, its status computed as runc computes it, and the pid-reuse guard.

    created   the init exists and waits on <root>/<id>/exec.fifo (start has not run)
    running   the init exists and the fifo is gone (start consumed it)
    paused    running, with its cgroup frozen (``pause``)
    stopped   the init is gone, a zombie, or its pid now belongs to another process

The init's start time (field 22 of /proc/<pid>/stat) is stored with its pid: a pid whose
start time differs is somebody else's process and the container counts as stopped.
"""

from __future__ import annotations

from hafen.errors import ContainerNotFound, InvalidArgument
from hafen.records import as_dict, field, record
from hafen.runtime import _files
from hafen.runtime import _os as os
from hafen.runtime._fastjson import dumps, loads

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


DEFAULT_ROOT = "/run/hafen-runtime"
FIFO_NAME = "exec.fifo"
STATE_NAME = "state.json"
OCI_VERSION = "1.0.2"

_ID_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_ID_CHARS = _ID_FIRST | frozenset("_+.-")


class NoSuchContainer(ContainerNotFound):
    """``container "<id>" does not exist`` (runc's wording, which callers match on)."""

    def __init__(self, container_id: str) -> None:
        super().__init__(container_id)
        self.message = f'container "{container_id}" does not exist'


def validate_id(container_id: str) -> None:
    if not container_id:
        raise InvalidArgument("container id cannot be empty")
    # ^[A-Za-z0-9][A-Za-z0-9_+.-]*$ (as runc), without importing re on the start path
    if (
        len(container_id) > 1024
        or container_id[0] not in _ID_FIRST
        or not _ID_CHARS.issuperset(container_id)
    ):
        raise InvalidArgument(f"invalid container id {container_id!r}")


@record
class ContainerState:
    id: str
    pid: int
    bundle: str
    rootfs: str
    created: str
    start_time: int = 0
    cgroup_path: str = ""
    cgroup_unified: bool = False
    annotations: dict[str, str] = field(default_factory=dict)
    oci_version: str = OCI_VERSION
    owner: str = ""
    # Namespace types the container has (not shared with the host): exec joins these.
    namespaces: list[str] = field(default_factory=list)
    # poststart/poststop hooks as config.json gave them (start and delete run them).
    hooks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def proc_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat, or None when the pid does not exist or is a zombie."""
    try:
        data = _files.read_bytes(f"/proc/{pid}/stat")
    except OSError:
        return None
    # comm (field 2) may contain spaces and parens; fields resume after the last ')'.
    rest = data[data.rindex(b")") + 2 :].split()
    if rest[0] in (b"Z", b"X"):
        return None
    return int(rest[19])


class StateDir:
    """``<root>/<id>``: where one container's state lives."""

    def __init__(self, root: str, container_id: str) -> None:
        validate_id(container_id)
        self.root = root
        self.id = container_id
        self.path = os.path.join(root, container_id)
        self.fifo = os.path.join(self.path, FIFO_NAME)
        self.state_file = os.path.join(self.path, STATE_NAME)

    def exists(self) -> bool:
        return os.path.exists(self.state_file)

    def load(self) -> ContainerState:
        try:
            raw = loads(_files.read_text(self.state_file))
        except FileNotFoundError:
            raise NoSuchContainer(self.id)
        return ContainerState(**raw)

    def save(self, state: ContainerState) -> None:
        tmp = self.state_file + ".tmp"
        _files.write_new(tmp, dumps(as_dict(state)).encode())
        os.rename(tmp, self.state_file)

    def status(self, state: ContainerState) -> str:
        if state.pid <= 0:
            return "stopped"
        start = proc_start_time(state.pid)
        if start is None or (state.start_time and start != state.start_time):
            return "stopped"
        if os.path.exists(self.fifo):
            return "created"
        if state.cgroup_path:
            from hafen.runtime import cgroups

            if cgroups.manager_from_state(state.cgroup_path, state.cgroup_unified).frozen():
                return "paused"
        return "running"


def oci_state(sd: StateDir, state: ContainerState) -> dict[str, Any]:
    """The state JSON that ``state`` prints: the OCI fields plus runc's extras."""
    status = sd.status(state)
    return {
        "ociVersion": state.oci_version,
        "id": state.id,
        "pid": state.pid if status != "stopped" else 0,
        "status": status,
        "bundle": state.bundle,
        "rootfs": state.rootfs,
        "created": state.created,
        "owner": state.owner,
        "annotations": state.annotations,
    }


def list_ids(root: str) -> list[str]:
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    return [n for n in names if os.path.exists(os.path.join(root, n, STATE_NAME))]
