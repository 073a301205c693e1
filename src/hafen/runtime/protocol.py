"""The OCI runtime as the engine sees it: one ``Runtime`` protocol, any runc-compatible CLI.

Lifecycle of a container (OCI runtime spec, runtime.md), whatever implements it:

    create(id, bundle)   status "created": the init process exists with every namespace,
                         mount, cgroup, hostname and capability set up, and is blocked
                         before exec'ing the user program; its pid is known.
    start(id)            status "running": the init execs process.args.
    (process exits)      status "stopped": the pid is gone; nothing is cleaned up yet.
    kill(id, signal)     sends a signal to the init (all=True: every process in its cgroup);
                         allowed while created or running.
    delete(id)           removes what create made (state, cgroup). Refused while running
                         unless force=True, which SIGKILLs first; a created container is
                         killed and removed as runc does.
    state(id)            at any point between create and delete.

Implementations: ``hafen.runtime.cli_runtime.OCIRuntimeCLI`` drives a runtime binary
(hafen-runtime, runc, crun). Create and start are usually run by the shim, which must be
the init's parent (subreaper) and hand the container its stdio; the daemon uses state,
kill and delete.

    rt = OCIRuntimeCLI(["runc"], root="/run/hafen/runtime")
    if rt.state(cid).status == "running":
        rt.kill(cid, signal.SIGTERM)
    rt.delete(cid, force=True)

Errors: ``ContainerNotFound`` for an unknown id, ``Conflict`` for a wrong state,
``RuntimeFailure`` for anything else, each carrying the runtime's own message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass
class RuntimeState:
    """The OCI state of a container (runtime.md "State"), plus runc's extras."""

    id: str
    status: str  # "creating" | "created" | "running" | "stopped"
    pid: int = 0
    bundle: str = ""
    oci_version: str = ""
    rootfs: str = ""
    created: str = ""
    annotations: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Runtime(Protocol):
    """An OCI runtime, driven through its command-line lifecycle (see module docstring)."""

    def state(self, container_id: str) -> RuntimeState:
        """The container's current state; ``ContainerNotFound`` when unknown."""
        ...

    def kill(self, container_id: str, signal: int, all: bool = False) -> None:
        """Send ``signal`` to the init (``all``: to every process of the container)."""
        ...

    def delete(self, container_id: str, force: bool = False) -> None:
        """Remove a stopped container; ``force`` kills a running one first."""
        ...
