"""Container start benchmark: hafen against runc, crun and dockerd, side by side in one run.

Measures, each over N runs (default 15), median and min-max wall time of:
  - `<runtime> run` of /bin/true on one busybox bundle (create + start + wait + delete),
    for hafen-runtime (`python3 -S -P -c "import hafen.runtime.__main__"`, how hafen runs
    it), runc and crun (crun 1.8 refuses hybrid cgroups: it runs in a private mount
    namespace with /sys/fs/cgroup/unified unmounted there, so its figures include an
    `unshare` and a `sh`, ~2 ms);
  - the same with Docker's default seccomp profile in config.json (what hafend writes),
    so the filter's compile/cache/load cost is on the table;
  - `<runtime> exec <id> true` into a running container;
  - the shim alone (what hafend does per container): launch (= runtime create), start,
    wait for the recorded exit, with hafen-runtime in the shim's own fork + the shim
    zygote (hafend's default), with hafen-runtime exec'd as a CLI and no zygote (the old
    path), and with runc;
  - with --engine: `docker run --rm busybox true` and `docker exec <c> true` with the
    docker CLI against hafend and against Debian's dockerd, and `hafen run --rm busybox
    true` (our CLI) against hafend, each daemon in its own network namespace with
    networking off (bench_engine.py's daemons; bench_engine.py measures more).
Prints a table, the ratios and the machine's load. Run as root:
`.venv/bin/python bench/bench_run.py [-n N] [--engine]`.

Where the time goes (2 vCPUs, shared; strace -f -ttt --seccomp-bpf, -X importtime and
CLOCK_MONOTONIC stamps written by each process of one start; before -> after the fast
paths; absolute numbers move with the load):
  hafen-runtime run (one process; 46 -> 34 -> 24 -> 22 ms at load ~0.5, runc 19-27,
  crun 11-13): interpreter start with -S ~7-8 ms; runpy for -m ~4 ms -> 0 (hafen runs
  the CLI as `-S -c "import hafen.runtime.__main__"`); imports ~8 -> ~2 ms (json, re,
  enum, signal, ctypes no longer imported: the C modules _json, _signal and _ctypes
  directly, runtime/_ffi.py); config ~0.7 ms, cgroup open/mkdir/apply ~1.5 ms; joining
  the cgroup by pid (cgroup.procs) took the kernel's global threadgroup lock, whose
  first taking after a quiet spell waits for an RCU grace period (13.5 ms here under
  perf trace; runc and crun pay it) -> 0: the one-thread child writes 0 to each v1
  `tasks` file (a thread moves without that lock), and on v2 is born in the cgroup
  (clone3 CLONE_INTO_CGROUP; on a v2 view of this host 64 -> 40 ms); the init is born
  in its namespaces by that clone3 (no intermediate: fork + unshare + fork ~3.1 ->
  clone3 ~1.7 ms); init: cgroup join and lo ~0.8, mounts ~1.5, devices ~0.4,
  pivot_root, /proc masks, rlimits, caps ~1.2 ms; exec + exit of true ~1 ms; delete
  ~1.3 ms (cgroup rmdir's EBUSY retry slept 10 ms, now 0.5 ms doubling); interpreter
  teardown ~3-5 ms -> 0 (os._exit after flushing). The runs alternate, so runc's and
  crun's cgroup writes often find the lock's grace period already passed by the run
  before (crun's 11 ms is such a run; alone, crun waits 17 ms on its write).
  shim path, daemon -> shim -> create -> start -> exit recorded (101 -> 27 -> 23 -> 17
  ms median; runc under the same shim 43 ms): before, four interpreters per container
  (the launcher, then `hafen-runtime create`, `start`, `delete`, ~15-25 ms each) and
  two fsyncs (shim.json, exit.json); after, none: the daemon's zygote forks the shim
  itself (no launcher), the shim forks `exec` (hafen.runtime.main in process) and runs
  `create`, `start`, `kill` and `delete` in its own process (a fork, exit and
  wake-up cost ~2 ms per verb), no fsync in the exec root, no wait for the cgroup lock.
  Of the 17 ms: launch 12.8 (zygote fork and shim set-up ~2, create verb fork ~1,
  runtime create ~9, its exit and the shim's records ~1.5), start 1.6, exit 2; with
  create in the shim's own process (no verb fork, exit and wake-up) launch 12.1 -> 10.1
  ms alternating.
  exec: the shim forks `hafen-runtime exec` instead of exec'ing an interpreter: ~15 ms
  per exec at the shim (runc 21, exec'd CLI 53); `docker exec true` 23 ms (dockerd 56).
  docker run --rm against hafend (83 -> 47 -> 42 -> 31-36 ms, dockerd 102-120): the
  docker CLI itself ~16 ms (8.5 ms before its first request, ~3 ms after the last
  answer); create ~1.3 ms; start ~12.6: overlay mount, bundle and config.json ~1.2,
  then one launch (the zygote's spare shim, forked ahead, takes it: create in the
  shim's own process, the waiting attacher connected over the report connection, start)
  ~10.6, the shim's own set-up (~1 ms) since overlapping the bundle, the record ~0.5;
  then the exit: attached streams end with the output, the shim answers the daemon's
  wait once exit.json is written, the daemon unmounts while the shim runs the runtime's
  delete (~0.9 ms; its end of the connection says it is done), the record's deletion
  answers the client's wait, and the layer's and state dir's rmtree (~1.3 ms) come after
  the answer.
  2026-11-24 (hafen-runtime run 15.0-15.6 -> 14.3-15.0 ms at load < 1.3): the Linux
  calls through a C module (runtime/_linux.c) instead of _ctypes (-0.9 to -1.1 ms, and
  -0.7 to -1.0 on the shim's launch), run's state kept in memory from create to start
  and delete, close_range for the init's fds (-0.35 to -0.5 together); then the init
  sharing the runtime's memory while it sets up (clone with CLONE_VM, the CLI on v1):
  14.33 -> 12.95 ms A/B, no page-table copy, no copy-on-write faults, an exec with
  nothing to tear down (run 12.6-14.1 ms, crun 9.6-10.6: 1.29-1.36).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
HAFEN_PYTHONPATH = str(Path(__file__).resolve().parent.parent / "src")
sys.path.insert(0, HAFEN_PYTHONPATH)

from hafen.runtime import command as hafen_runtime_command  # noqa: E402


def make_bundle(root: Path, name: str = "bundle", seccomp: bool = False) -> Path:
    bundle = root / name
    rootfs = bundle / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", rootfs / "bin" / "busybox")
    for applet in ("true", "sh"):
        os.symlink("busybox", rootfs / "bin" / applet)
    for d in ("proc", "sys", "dev", "tmp", "etc"):
        (rootfs / d).mkdir(exist_ok=True)
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["/bin/true"]
    spec["root"]["readonly"] = False
    if seccomp:
        from hafen.oci.seccomp import default_profile, to_oci

        caps = spec["process"]["capabilities"]["bounding"]
        spec["linux"]["seccomp"] = to_oci(default_profile(), caps)
    (bundle / "config.json").write_text(json.dumps(spec))
    return bundle


def run_quiet(argv: list[str], env: dict[str, str] | None = None) -> None:
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env)


def alternate(fns: dict[str, Callable[[], object]], runs: int) -> dict[str, list[float]]:
    """Time each function ``runs`` times (seconds), alternating between them (ABC, then
    CBA), so that a shared machine's changing load falls on every contender alike."""
    for fn in fns.values():
        fn()  # warm the page cache and the caches
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(runs):
        for name in list(fns) if i % 2 == 0 else list(reversed(fns)):
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return times


def runtime_commands(bundle: Path, state: Path, *verb: str) -> dict[str, list[str]]:
    """argv per runtime for ``run --bundle B <id>`` (default) or another verb's arguments."""
    args = list(verb) or ["run", "--bundle", str(bundle)]
    crun_ns = (
        "umount /sys/fs/cgroup/unified 2>/dev/null; exec crun --root "
        f"{state / 'crun'} {' '.join(args)} bench-crun" + (" true" if verb[:1] == ("exec",) else "")
    )
    tail = ["true"] if verb[:1] == ("exec",) else []
    return {
        "hafen-runtime": [*hafen_runtime_command(sys.executable), "--root", str(state / "hafen"),
                          *args, "bench-hafen", *tail],
        "runc": ["runc", "--root", str(state / "runc"), *args, "bench-runc", *tail],
        "crun": ["unshare", "--mount", "--propagation", "private", "sh", "-c", crun_ns],
    }  # fmt: skip


def shim_bench(root: Path, bundle: Path, runs: int) -> dict[str, list[float]]:
    """The shim as hafend drives it: launch (create), start, wait for the recorded exit."""
    import asyncio
    import uuid

    sys.path.insert(0, HAFEN_PYTHONPATH)
    from hafen.shim.client import ShimClient, close_zygotes, launch_shim

    python = os.path.realpath(sys.executable)
    shim = [python, "-S", "-P", "-m", "hafen.shim"]
    shim_env = {"PYTHONPATH": HAFEN_PYTHONPATH, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    spec = json.loads((bundle / "config.json").read_text())
    spec["root"] = {"path": str(bundle / "rootfs"), "readonly": True}
    variants = {
        # hafend's default: zygote-forked launcher, runtime verbs in forks of the shim
        "hafen-runtime in shim + zygote": (hafen_runtime_command(python), True),
        # the path before: an exec'd launcher and one interpreter per runtime verb
        "hafen-runtime exec'd, no zygote": (["env", *hafen_runtime_command(python)], False),
        "runc (zygote)": (["runc"], True),
    }
    parts: dict[str, list[float]] = {}

    async def once(name: str) -> None:
        runtime, zygote = variants[name]
        os.environ["HAFEN_SHIM_ZYGOTE"] = "1" if zygote else "0"
        cid = "bench-" + uuid.uuid4().hex[:12]
        state = root / "shim" / cid[-12:]
        state.mkdir(parents=True)
        (state / "config.json").write_text(json.dumps(spec))
        t0 = time.perf_counter()
        await launch_shim(
            shim, container_id=cid, bundle=str(state), state_dir=str(state),
            log_path=str(state / "c.log"), runtime=runtime,
            runtime_root=str(root / "shim-runtime"), tty=False, stdin=False, stdin_once=False,
            env=shim_env,
        )  # fmt: skip
        t1 = time.perf_counter()
        client = ShimClient(str(state))
        await client.start()
        t2 = time.perf_counter()
        await client.wait()
        t3 = time.perf_counter()
        for label, value in (("launch", t1 - t0), ("start", t2 - t1), ("exit", t3 - t2)):
            parts.setdefault(f"shim {label}: {name}", []).append(value)
        shutil.rmtree(state, ignore_errors=True)

    times = alternate({name: (lambda n=name: asyncio.run(once(n))) for name in variants}, runs)
    os.environ.pop("HAFEN_SHIM_ZYGOTE", None)
    close_zygotes()
    out = {f"shim total: {name}": t for name, t in times.items()}
    for key, values in parts.items():
        out[key] = values[2:]  # without the warm-up runs
    return out


def engine_bench(root: Path, runs: int) -> dict[str, list[float]]:
    """docker CLI against hafend and dockerd (bench_engine's daemons), hafen run --rm."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_engine import Daemon, start_hafend

    if shutil.which("dockerd") is None:
        print("skipping the engine comparison: dockerd is not installed")
        return {}
    hafen_root, docker_root = root / "eh", root / "ed"
    hafen = start_hafend(hafen_root)
    dockerd = None
    try:
        tar = root / "busybox.tar"
        hafen.docker("save", "-o", str(tar), "busybox")
        docker_root.mkdir(parents=True, exist_ok=True)
        (docker_root / "none.json").write_text("{}")
        dockerd = Daemon(
            "docker", docker_root,
            ["dockerd", "--data-root", str(docker_root / "data"), "--exec-root",
             str(docker_root / "exec"), "--pidfile", str(docker_root / "dockerd.pid"),
             "-H", f"unix://{docker_root / 'd.sock'}", "--bridge=none", "--iptables=false",
             "--ip6tables=false", "--ip-masq=false", "--userland-proxy=false",
             "--config-file", str(docker_root / "none.json")],
            docker_root / "d.sock",
        )  # fmt: skip
        dockerd.docker("load", "-i", str(tar))
        hafen_cli = [str(VENV_BIN / "hafen"), "-H", f"unix://{hafen_root / 'd.sock'}", "run",
                     "--rm", "busybox", "true"]  # fmt: skip
        out = alternate(
            {
                "docker run --rm (hafend)": lambda: hafen.docker("run", "--rm", "busybox", "true"),
                "docker run --rm (dockerd)": lambda: dockerd.docker(  # type: ignore[union-attr]
                    "run", "--rm", "busybox", "true"
                ),
                "hafen run --rm (hafend)": lambda: run_quiet(hafen_cli),
            },
            runs,
        )
        sleepers = {
            d.name: d.docker("run", "-d", "busybox", "sleep", "3600").stdout.strip()
            for d in (hafen, dockerd)
        }
        out.update(
            alternate(
                {
                    f"docker exec true ({'hafend' if d.name == 'hafen' else 'dockerd'})": (
                        lambda d=d: d.docker("exec", sleepers[d.name], "true")
                    )
                    for d in (hafen, dockerd)
                },
                runs,
            )
        )
        return out
    finally:
        hafen.stop()
        if dockerd is not None:
            dockerd.stop()


def report(results: dict[str, list[float]], load: tuple[float, float]) -> None:
    print(
        f"{os.cpu_count()} CPUs; load average {load[0]:.2f} before, {load[1]:.2f} after; "
        f"runs alternate between contenders; -n {len(next(iter(results.values()), []))}"
    )
    print(f"{'what':<46} {'median ms':>10} {'min ms':>8} {'max ms':>8}")
    for name, times in results.items():
        ms = [t * 1000 for t in times]
        print(f"{name:<46} {statistics.median(ms):>10.1f} {min(ms):>8.1f} {max(ms):>8.1f}")
    med = {k: statistics.median(v) for k, v in results.items() if v}
    print()

    def ratio(label: str, mine: str, theirs: str, goal: str = "") -> None:
        if mine in med and theirs in med:
            print(f"ratio {label}: {med[mine] / med[theirs]:.2f}{goal}")

    for what in ("run", "run (seccomp)", "exec true"):
        for peer in ("runc", "crun"):
            goal = {"runc": " (goal < 1)", "crun": " (goal <= 1.5)"}[peer] if what == "run" else ""
            ratio(
                f"hafen-runtime / {peer} ({what})", f"hafen-runtime {what}", f"{peer} {what}", goal
            )
    ratio(
        "shim, hafen fast path / old path",
        "shim total: hafen-runtime in shim + zygote",
        "shim total: hafen-runtime exec'd, no zygote",
    )
    ratio(
        "shim, hafen fast path / runc",
        "shim total: hafen-runtime in shim + zygote",
        "shim total: runc (zygote)",
    )
    ratio(
        "docker run --rm, hafend / dockerd",
        "docker run --rm (hafend)",
        "docker run --rm (dockerd)",
        " (goal <= 0.3)",
    )
    ratio(
        "hafen run --rm (hafend) / docker run --rm (dockerd)",
        "hafen run --rm (hafend)",
        "docker run --rm (dockerd)",
        " (goal <= 0.5)",
    )
    ratio(
        "docker exec true, hafend / dockerd",
        "docker exec true (hafend)",
        "docker exec true (dockerd)",
    )
    if "docker exec true (hafend)" in med:
        print(
            f"docker exec true against hafend: {med['docker exec true (hafend)'] * 1000:.1f} ms (goal <= 50)"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", "--runs", type=int, default=15)
    parser.add_argument(
        "--engine", action="store_true", help="also docker CLI against hafend vs dockerd"
    )
    args = parser.parse_args()
    # bytecode for sources edited since scripts/setup: with PYTHONDONTWRITEBYTECODE set,
    # every runtime and shim start would otherwise compile them again
    subprocess.run([sys.executable, "-m", "compileall", "-q", HAFEN_PYTHONPATH], check=False)
    load_before = os.getloadavg()[0]
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="hafen-bench-") as tmp:
        root = Path(tmp)
        env = {**os.environ, "PYTHONPATH": HAFEN_PYTHONPATH}
        for label, bundle in (("run", make_bundle(root)),
                              ("run (seccomp)", make_bundle(root, "bundle-seccomp", seccomp=True))):  # fmt: skip
            cmds = {
                name: argv
                for name, argv in runtime_commands(bundle, root / "state").items()
                if shutil.which(argv[0]) or Path(argv[0]).exists()
            }
            results.update(
                {
                    f"{name} {label}": t
                    for name, t in alternate(
                        {name: (lambda a=argv: run_quiet(a, env)) for name, argv in cmds.items()},
                        args.runs,
                    ).items()
                }
            )
        sleeper = make_bundle(root, "bundle-sleep")
        spec = json.loads((sleeper / "config.json").read_text())
        spec["process"]["args"] = ["/bin/busybox", "sleep", "600"]
        os.symlink("busybox", sleeper / "rootfs" / "bin" / "sleep")
        (sleeper / "config.json").write_text(json.dumps(spec))
        started: dict[str, list[str]] = {}
        try:
            for name in ("hafen-runtime", "runc", "crun"):
                start = runtime_commands(
                    sleeper, root / "state", "run", "-d", "--bundle", str(sleeper)
                )
                if shutil.which(start[name][0]) is None:
                    continue
                if subprocess.run(start[name], env=env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode:  # fmt: skip
                    print(f"skipping {name} exec: the container did not start")
                    continue
                started[name] = runtime_commands(sleeper, root / "state", "exec")[name]
            results.update(
                {
                    f"{name} exec true": t
                    for name, t in alternate(
                        {
                            name: (lambda a=argv: run_quiet(a, env))
                            for name, argv in started.items()
                        },
                        args.runs,
                    ).items()
                }
            )
        finally:
            for name in started:
                stop = runtime_commands(sleeper, root / "state", "delete", "-f")
                subprocess.run(stop[name], env=env, capture_output=True)
        results.update(shim_bench(root, make_bundle(root, "bundle-shim"), args.runs))
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_engine import start_hafend

        hafend = start_hafend(root / "hafend")
        try:
            cli_env = {**os.environ, "HAFEN_HOST": f"unix://{hafend.sock}"}
            argv = [str(VENV_BIN / "hafen"), "run", "--rm", "busybox", "true"]
            results.update(
                alternate(
                    {"hafen run --rm (CLI end to end)": lambda: run_quiet(argv, cli_env)}, args.runs
                )
            )
        finally:
            hafend.stop()
        if args.engine:
            results.update(engine_bench(root, args.runs))
    report(results, (load_before, os.getloadavg()[0]))


if __name__ == "__main__":
    main()
