"""hafen-shim: the per-container monitor, and the daemon's client for it.

One detached ``hafen-shim`` runs per container. It is the container's parent (a child
subreaper), holds its stdio, writes its json-file log, serves a small JSON-lines
protocol on ``<state-dir>/shim.sock`` and records the exit status in
``<state-dir>/exit.json``. The container outlives the daemon: the shim is never the
daemon's child after launch.

Modules:
    main      the ``hafen-shim`` command line and the launcher (fork, readiness report)
    monitor   the shim's single-threaded event loop (stdio, clients, reaping, exit)
    stdio     the container's stdio (pipes or a pty over the console socket) and create
    logfile   Docker's json-file log writer (line splitting, 16 KiB partial records)
    runtime   invoking the OCI runtime (create/start/kill/delete/exec) and its errors;
              hafen's own runtime runs in a fork of the shim instead of a new interpreter
    zygote    the daemon's pre-imported shim: forks shims on request
    oom       whether the OOM killer struck in the container's memory cgroup
    proto     names and wire formats shared by the shim and its client
    client    the daemon side: ``launch_shim`` (through a zygote), ``ShimClient``,
              ``read_exit_status`` (asyncio; import it as ``hafen.shim.client``)

Everything here but ``client`` runs under ``python3 -S`` and imports only the standard
library and ``hafen.runtime`` (itself standard library only); this ``__init__`` imports
nothing so that start-up stays cheap.
"""
