"""Container start benchmark: hafen against runc and crun, side by side in one run.

Measures, each over N runs (default 15), median and min–max wall time of:
  - `<runtime> run` of /bin/true on one busybox bundle, for hafen-runtime, runc and crun
    (crun 1.8 refuses hybrid cgroups: it runs in a private mount namespace with
    /sys/fs/cgroup/unified unmounted there);
  - the same with Docker's default seccomp profile in config.json (what hafend writes),
    so the filter's compile/cache/load cost is on the table;
  - `<runtime> exec <id> true` into a running container;
  - `hafen run --rm busybox true` end to end (CLI start-up, API, shim, runtime) against a
    hafend started by this script on temporary roots.
Prints a table and the ratios. Run as root: `.venv/bin/python bench/bench_run.py [-n N]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
HAFEN_PYTHONPATH = str(Path(__file__).resolve().parent.parent / "src")


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
        sys.path.insert(0, HAFEN_PYTHONPATH)
        from hafen.oci.seccomp import default_profile, to_oci

        caps = spec["process"]["capabilities"]["bounding"]
        spec["linux"]["seccomp"] = to_oci(default_profile(), caps)
    (bundle / "config.json").write_text(json.dumps(spec))
    return bundle


def timed(
    argv: list[str], runs: int, env: dict[str, str] | None = None, before=None
) -> list[float]:
    times = []
    for _ in range(runs):
        if before:
            before()
        start = time.perf_counter()
        subprocess.run(
            argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env
        )
        times.append(time.perf_counter() - start)
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
        "hafen-runtime": [sys.executable, "-S", "-m", "hafen.runtime", "--root", str(state / "hafen"),
                          *args, "bench-hafen", *tail],
        "runc": ["runc", "--root", str(state / "runc"), *args, "bench-runc", *tail],
        "crun": ["unshare", "--mount", "--propagation", "private", "sh", "-c", crun_ns],
    }  # fmt: skip


def start_hafend(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    host = f"unix://{root / 'hafen.sock'}"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "hafend.log", "wb") as log:
        proc = subprocess.Popen(
            [str(VENV_BIN / "hafend"), "--data-root", str(root / "data"), "--exec-root",
             str(root / "exec"), "-H", host, "--config-file", str(root / "none.json")],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    env = {**os.environ, "HAFEN_HOST": host}
    for _ in range(200):
        if (
            subprocess.run(
                [str(VENV_BIN / "hafen"), "version"], env=env, capture_output=True
            ).returncode
            == 0
        ):
            break
        time.sleep(0.1)
    subprocess.run([str(VENV_BIN / "hafen"), "image", "bootstrap", "busybox"], env=env, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    return proc, host


def report(results: dict[str, list[float]]) -> None:
    print(f"{'what':<34} {'median ms':>10} {'min ms':>8} {'max ms':>8}")
    for name, times in results.items():
        ms = [t * 1000 for t in times]
        print(f"{name:<34} {statistics.median(ms):>10.1f} {min(ms):>8.1f} {max(ms):>8.1f}")
    med = {k: statistics.median(v) for k, v in results.items()}
    print()
    for what in ("run", "run (seccomp)", "exec true"):
        mine = med.get(f"hafen-runtime {what}")
        for peer in ("runc", "crun"):
            if mine and f"{peer} {what}" in med:
                print(f"ratio hafen-runtime / {peer} ({what}): {mine / med[f'{peer} {what}']:.2f}")
    if "hafen run --rm (CLI end to end)" in med and "runc run" in med:
        print(
            f"ratio hafen run --rm / runc run: {med['hafen run --rm (CLI end to end)'] / med['runc run']:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", "--runs", type=int, default=15)
    args = parser.parse_args()
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="hafen-bench-") as tmp:
        root = Path(tmp)
        bundle = make_bundle(root)
        env = {**os.environ, "PYTHONPATH": HAFEN_PYTHONPATH}
        for name, argv in runtime_commands(bundle, root / "state").items():
            if shutil.which(argv[0]) is None and not Path(argv[0]).exists():
                print(f"skipping {name}: not installed")
                continue
            timed(argv, 2, env)  # warm the page cache
            results[f"{name} run"] = timed(argv, args.runs, env)
        seccomp_bundle = make_bundle(root, "bundle-seccomp", seccomp=True)
        for name, argv in runtime_commands(seccomp_bundle, root / "state").items():
            if shutil.which(argv[0]) is None and not Path(argv[0]).exists():
                continue
            timed(argv, 2, env)
            results[f"{name} run (seccomp)"] = timed(argv, args.runs, env)
        sleeper = make_bundle(root, "bundle-sleep")
        spec = json.loads((sleeper / "config.json").read_text())
        spec["process"]["args"] = ["/bin/busybox", "sleep", "600"]
        os.symlink("busybox", sleeper / "rootfs" / "bin" / "sleep")
        (sleeper / "config.json").write_text(json.dumps(spec))
        for name in ("hafen-runtime", "runc", "crun"):
            start = runtime_commands(sleeper, root / "state", "run", "-d", "--bundle", str(sleeper))
            stop = runtime_commands(sleeper, root / "state", "delete", "-f")
            if shutil.which(start[name][0]) is None:
                continue
            if subprocess.run(
                start[name],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ).returncode:
                print(f"skipping {name} exec: the container did not start")
                continue  # fmt: skip
            try:
                argv = runtime_commands(sleeper, root / "state", "exec")[name]
                timed(argv, 2, env)
                results[f"{name} exec true"] = timed(argv, args.runs, env)
            finally:
                subprocess.run(stop[name], env=env, capture_output=True)
        proc, host = start_hafend(root / "hafend")
        try:
            cli_env = {**os.environ, "HAFEN_HOST": host}
            argv = [str(VENV_BIN / "hafen"), "run", "--rm", "busybox", "true"]
            timed(argv, 2, cli_env)
            results["hafen run --rm (CLI end to end)"] = timed(argv, args.runs, cli_env)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            subprocess.run(
                ["sh", "-c", f"grep -o ' {root}[^ ]*' /proc/self/mounts | xargs -r -n1 umount -l"]
            )
    report(results)


if __name__ == "__main__":
    main()
