"""Engine benchmark: hafend against Debian's dockerd, the docker CLI as the client for both.

Both daemons run side by side on temporary roots, each inside its own private network
namespace (dockerd with --bridge=none --iptables=false: networking off), and the same
docker CLI drives them. Measured, each a median over N runs (and the ratio hafen/docker):

  - `docker run --rm busybox true`            end to end
  - `docker exec <c> true`                    latency
  - `docker ps -a` with K containers          (created, not started)
  - `docker logs <c>` of M MB                 one container's json-file log
  - `docker events --since/--until`           replaying the events of the above
  - idle RSS                                  daemon + shims (dockerd: + containerd + shims)

busybox reaches dockerd through `docker save` from hafend and `docker load`.
Run as root: `.venv/bin/python bench/bench_engine.py [-n 15] [-k 200] [--log-mb 20]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
DOCKER = shutil.which("docker") or "/usr/local/bin/docker"


class Daemon:
    def __init__(self, name: str, root: Path, argv: list[str], sock: Path) -> None:
        self.name = name
        self.root = root
        self.sock = sock
        root.mkdir(parents=True, exist_ok=True)
        with open(root / "daemon.log", "wb") as log:
            self.proc = subprocess.Popen(
                ["unshare", "--net", "--fork", "--kill-child", "--",
                 "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *argv],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        self.env = {
            **os.environ,
            "DOCKER_HOST": f"unix://{sock}",
            "DOCKER_CONFIG": str(root / "docker-config"),
            "DOCKER_CLI_HINTS": "false",
        }
        deadline = time.monotonic() + 60
        while self.docker("version", check=False).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{(root / 'daemon.log').read_text()}")
            time.sleep(0.2)

    def docker(self, *args: str, check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
        kw.setdefault("timeout", 300)
        return subprocess.run(
            [DOCKER, *args], env=self.env, capture_output=True, text=True, check=check, **kw  # type: ignore[arg-type]
        )

    def tree_rss_kb(self) -> int:
        """RSS of the daemon's process tree (everything started under unshare)."""
        pids = subprocess.run(
            ["sh", "-c", f"pgrep -g {self.proc.pid} || true"], capture_output=True, text=True
        ).stdout.split()
        # shims detach into their own sessions: add every process whose cmdline names our root
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if str(self.root) in (entry / "cmdline").read_text(errors="replace"):
                        pids.append(entry.name)
                except OSError:
                    pass
        total = 0
        for pid in set(pids):
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total

    def stop(self) -> None:
        ids = self.docker("ps", "-aq", check=False).stdout.split()
        if ids:
            self.docker("rm", "-f", *ids, check=False, timeout=300)
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            for pid in children.read_text().split():
                os.kill(int(pid), signal.SIGTERM)
        except OSError:
            pass
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        subprocess.run(
            ["sh", "-c", f"grep -o ' {self.root}[^ ]*' /proc/self/mounts | sort -r | xargs -r -n1 umount -l"],
            check=False,
        )


def median_ms(fn: Callable[[], None], runs: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def bench(d: Daemon, runs: int, count: int, log_mb: int) -> dict[str, float]:
    out: dict[str, float] = {}
    out["run --rm true (ms)"] = median_ms(lambda: d.docker("run", "--rm", "busybox", "true") and None, runs)
    cid = d.docker("run", "-d", "busybox", "sleep", "3600").stdout.strip()
    out["exec true (ms)"] = median_ms(lambda: d.docker("exec", cid, "true") and None, runs)
    since = f"{time.time():.3f}"
    for _ in range(count):
        d.docker("create", "busybox", "true")
    until = f"{time.time() + 0.5:.3f}"
    out[f"ps -a, {count + 1} containers (ms)"] = median_ms(lambda: d.docker("ps", "-a") and None, runs)
    out[f"events replay, {count} creates (ms)"] = median_ms(
        lambda: d.docker("events", "--since", since, "--until", until) and None, runs
    )
    lines = log_mb * 1024 * 1024 // 100
    logger = d.docker(
        "run", "-d", "busybox", "sh", "-c",
        f"yes 0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456 | head -n {lines}",
    ).stdout.strip()  # fmt: skip
    d.docker("wait", logger)

    def logs() -> None:
        subprocess.run(
            [DOCKER, "logs", logger], env=d.env, stdout=subprocess.DEVNULL, check=True, timeout=300
        )

    out[f"logs of {log_mb} MB (ms)"] = median_ms(logs, max(3, runs // 3))
    time.sleep(2)
    out["idle RSS, 1 running container (MB)"] = d.tree_rss_kb() / 1024
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", "--runs", type=int, default=15)
    parser.add_argument("-k", "--containers", type=int, default=200)
    parser.add_argument("--log-mb", type=int, default=20)
    args = parser.parse_args()
    if shutil.which("dockerd") is None:
        sys.exit("dockerd is not installed (Debian's docker.io)")
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="engine-bench-") as tmp:
        root = Path(tmp)
        hafen_root = root / "hafen"
        hafen = Daemon(
            "hafen", hafen_root,
            [str(VENV_BIN / "hafend"), "--data-root", str(hafen_root / "data"), "--exec-root",
             str(hafen_root / "exec"), "-H", f"unix://{hafen_root / 'd.sock'}",
             "--config-file", str(hafen_root / "none.json")],
            hafen_root / "d.sock",
        )  # fmt: skip
        docker_root = root / "docker"
        dockerd = None
        try:
            subprocess.run([str(VENV_BIN / "hafen"), "-H", f"unix://{hafen_root / 'd.sock'}",
                            "image", "bootstrap", "busybox"], check=True, capture_output=True)  # fmt: skip
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
            for d in (hafen, dockerd):
                results[d.name] = bench(d, args.runs, args.containers, args.log_mb)
        finally:
            hafen.stop()
            if dockerd is not None:
                dockerd.stop()
    print(f"{'measure':<40} {'hafen':>10} {'dockerd':>10} {'ratio':>7}")
    for key in results["hafen"]:
        h, dk = results["hafen"][key], results["docker"][key]
        print(f"{key:<40} {h:>10.1f} {dk:>10.1f} {h / dk if dk else float('nan'):>7.2f}")


if __name__ == "__main__":
    main()
