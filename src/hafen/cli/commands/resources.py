"""Container verbs on live resources: pause, unpause, update, top, stats (docker's output).

``stats`` prints docker's table (CPU % from two samples, memory without the page cache,
block I/O, pids): once with ``--no-stream``, else redrawn every second until ^C or
until every listed container has stopped.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

from hafen.cli import flags
from hafen.cli._common import CLIError, daemon_error_text, echo, get_client
from hafen.cli.format import bytes_size, human_size, ram_in_bytes, tabwrite
from hafen.errors import HafenError, InvalidArgument


@flags.command()
@flags.argument("containers", nargs=-1, required=True)
@flags.pass_context
def pause(ctx: flags.Context, containers: tuple[str, ...]) -> None:
    """Pause all processes within one or more containers."""
    client = get_client(ctx)
    _finish(_collect(containers, client.pause))


@flags.command()
@flags.argument("containers", nargs=-1, required=True)
@flags.pass_context
def unpause(ctx: flags.Context, containers: tuple[str, ...]) -> None:
    """Unpause all processes within one or more containers."""
    client = get_client(ctx)
    _finish(_collect(containers, client.unpause))


@flags.command()
@flags.option("-m", "--memory", help="Memory limit")
@flags.option("--memory-swap", help="Swap limit equal to memory plus swap: -1 for unlimited")
@flags.option("--memory-reservation", help="Memory soft limit")
@flags.option("--cpus", type=float, help="Number of CPUs")
@flags.option("-c", "--cpu-shares", type=int, help="CPU shares (relative weight)")
@flags.option("--cpu-period", type=int, help="Limit CPU CFS (Completely Fair Scheduler) period")
@flags.option("--cpu-quota", type=int, help="Limit CPU CFS (Completely Fair Scheduler) quota")
@flags.option("--cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1)")
@flags.option("--cpuset-mems", help="MEMs in which to allow execution (0-3, 0,1)")
@flags.option("--pids-limit", type=int, help="Tune container pids limit (set -1 for unlimited)")
@flags.option("--blkio-weight", type=int, help="Block IO (relative weight), 10 to 1000")
@flags.option("--restart", help="Restart policy to apply when a container exits")
@flags.argument("containers", nargs=-1, required=True)
@flags.pass_context
def update(ctx: flags.Context, containers: tuple[str, ...], **flags: Any) -> None:
    """Update configuration of one or more containers."""
    try:
        body = update_body(flags)
    except InvalidArgument as exc:
        raise CLIError(f"hafen: {exc}.\nSee 'hafen update --help'.", 125)
    if not body:
        raise CLIError("hafen: you must provide one or more flags when using this command.", 125)
    client = get_client(ctx)
    _finish(_collect(containers, lambda c: _warn(client.update_container(c, body))))


def _collect(names: tuple[str, ...], action: Any) -> list[tuple[str, str]]:
    # imported here: commands.container imports this module to add its group aliases
    from hafen.cli.commands.container import _collect as collect

    return collect(names, action)


def _finish(failures: list[tuple[str, str]]) -> None:
    from hafen.cli.commands.container import _finish as finish

    finish(failures)


def _warn(warnings: list[str]) -> None:
    for w in warnings:
        sys.stderr.write(f"WARNING: {w}\n")


def update_body(flags: dict[str, Any]) -> dict[str, Any]:
    """``docker update``'s flags -> the update body (only what was given)."""
    body: dict[str, Any] = {}
    for flag, key in (("memory", "Memory"), ("memory_reservation", "MemoryReservation")):
        if flags.get(flag):
            body[key] = ram_in_bytes(flags[flag])
    if flags.get("memory_swap"):
        swap = flags["memory_swap"]
        body["MemorySwap"] = -1 if swap == "-1" else ram_in_bytes(swap)
    if flags.get("cpus") is not None:
        body["NanoCpus"] = round(flags["cpus"] * 1e9)
    for flag, key in (
        ("cpu_shares", "CpuShares"),
        ("cpu_period", "CpuPeriod"),
        ("cpu_quota", "CpuQuota"),
        ("cpuset_cpus", "CpusetCpus"),
        ("cpuset_mems", "CpusetMems"),
        ("pids_limit", "PidsLimit"),
        ("blkio_weight", "BlkioWeight"),
    ):
        if flags.get(flag) is not None:
            body[key] = flags[flag]
    if flags.get("restart"):
        from hafen.cli.runopts import parse_restart

        body["RestartPolicy"] = parse_restart(flags["restart"])
    return body


@flags.command(interspersed=False)
@flags.argument("container")
@flags.argument("ps_args", nargs=-1)
@flags.pass_context
def top(ctx: flags.Context, container: str, ps_args: tuple[str, ...]) -> None:
    """Display the running processes of a container."""
    try:
        result = get_client(ctx).top(container, " ".join(ps_args) or None)
    except HafenError as exc:
        raise CLIError(daemon_error_text(exc), 1)
    lines = ["\t".join(result.get("Titles") or [])]
    lines += ["\t".join(row) for row in result.get("Processes") or []]
    echo(tabwrite(lines, minwidth=1, padding=3))


# ----------------------------------------------------------------------------- stats


def cpu_percent(stats: dict[str, Any]) -> float:
    """docker's calculateCPUPercentUnix."""
    cpu, pre = stats.get("cpu_stats") or {}, stats.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (
        pre.get("cpu_usage") or {}
    ).get("total_usage", 0)
    system_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or [1])
    if system_delta > 0 and cpu_delta > 0:
        return cpu_delta / system_delta * online * 100.0
    return 0.0


def memory_usage(mem: dict[str, Any]) -> int:
    """Usage without the page cache, as the docker CLI shows it (v1 and v2 keys)."""
    raw = mem.get("stats") or {}
    usage = int(mem.get("usage", 0))
    for key in ("total_inactive_file", "inactive_file"):
        if key in raw and raw[key] < usage:
            return usage - int(raw[key])
    return usage


def stats_row(stats: dict[str, Any]) -> str:
    mem = stats.get("memory_stats") or {}
    usage, limit = memory_usage(mem), int(mem.get("limit", 0))
    mem_pct = usage / limit * 100.0 if limit else 0.0
    read = write = 0
    for entry in (stats.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
        op = str(entry.get("op", "")).lower()
        if op == "read":
            read += int(entry.get("value", 0))
        elif op == "write":
            write += int(entry.get("value", 0))
    name = str(stats.get("name", "")).lstrip("/")
    pids = (stats.get("pids_stats") or {}).get("current", 0)
    return "\t".join(
        [
            str(stats.get("id", ""))[:12],
            name,
            f"{cpu_percent(stats):.2f}%",
            f"{bytes_size(usage)} / {bytes_size(limit)}",
            f"{mem_pct:.2f}%",
            "0B / 0B",
            f"{human_size(read)} / {human_size(write)}",
            str(pids),
        ]
    )


HEADER = "CONTAINER ID\tNAME\tCPU %\tMEM USAGE / LIMIT\tMEM %\tNET I/O\tBLOCK I/O\tPIDS"


@flags.command()
@flags.option(
    "-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running)"
)
@flags.option(
    "--no-stream", is_flag=True, help="Disable streaming stats and only pull the first result"
)
@flags.option("--no-trunc", is_flag=True, help="Do not truncate output")
@flags.argument("containers", nargs=-1)
@flags.pass_context
def stats(
    ctx: flags.Context, all_: bool, no_stream: bool, no_trunc: bool, containers: tuple[str, ...]
) -> None:
    """Display a live stream of container(s) resource usage statistics."""
    client = get_client(ctx)
    try:
        names = list(containers) or [c["Id"] for c in client.containers(all=all_)]
    except HafenError as exc:
        raise CLIError(daemon_error_text(exc), 1)
    if no_stream:
        rows, failures = [], []
        for name in names:
            try:
                rows.append(stats_row(client.stats(name)))
            except HafenError as exc:
                failures.append((name, daemon_error_text(exc)))
        echo(tabwrite([HEADER, *rows], minwidth=2, padding=3))
        _finish(failures)
        return
    _live(client, names)


def _live(client: Any, names: list[str]) -> None:
    latest: dict[str, str] = {}
    lock = threading.Lock()

    def follow(name: str) -> None:
        try:
            stream = client.stats_stream(name)
        except HafenError:
            return
        buffer = b""
        with stream:
            for chunk in stream:
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        with lock:
                            latest[name] = stats_row(json.loads(line))

    threads = [threading.Thread(target=follow, args=(n,), daemon=True) for n in names]
    for t in threads:
        t.start()
    try:
        while any(t.is_alive() for t in threads):
            threading.Event().wait(1.0)
            with lock:
                rows = [latest[n] for n in names if n in latest]
            # docker redraws in place: clear the screen, home the cursor
            sys.stdout.write("\033[2J\033[H" + tabwrite([HEADER, *rows], minwidth=2, padding=3))
            sys.stdout.flush()
    except KeyboardInterrupt:
        return
