"""Build benchmark: hafen against `buildah bud --layers`, side by side in one run.

The same fixed 8-step Dockerfile (FROM busybox, ENV, WORKDIR, three RUNs, COPY of a
2,000-file ~20 MB context, CMD) is built, each over N runs (default 7):
  - cold: `--no-cache` (every step runs, every layer is written);
  - cached: a full rebuild where every step is a cache hit.
Networking is off for both (`--network none`). Median and min–max wall time, then the
ratios hafen / buildah.

hafen: `hafen build` against a hafend this script starts on temporary roots, with busybox
from `hafen image bootstrap busybox`. buildah (Debian's `buildah`, `apt-get install
buildah`) runs with private --root/--runroot under the same temporary directory and
`--runtime runc`: its default runtime crun refuses this host's hybrid cgroup layout
("cgroups in hybrid mode not supported"). Its busybox is the same static busybox binary,
committed with `buildah from scratch` + `buildah add`.

BuildKit and Docker's classic builder are not measured: they need Debian's dockerd, which
creates a bridge and iptables rules on the host's own network, which these shared VMs must
not change. Run as root: `.venv/bin/python bench/bench_build.py [-n N]`.
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
HAFEN = str(VENV_BIN / "hafen")
HAFEND = str(VENV_BIN / "hafend")

DOCKERFILE = """FROM busybox
ENV APP_HOME=/app MODE=bench
WORKDIR /app
RUN echo one > /app/one
RUN mkdir -p /app/data && echo two > /app/data/two
RUN echo three >> /app/one && ls /app > /app/listing
COPY files /app/files
CMD ["sh", "-c", "ls /app"]
"""


def make_context(root: Path) -> Path:
    ctx = root / "ctx"
    for i in range(2000):
        d = ctx / "files" / f"d{i % 20:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:04d}.bin").write_bytes(os.urandom(10_000))
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    return ctx


def timed(argv: list[str], runs: int, env: dict[str, str] | None = None) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       env=env)  # fmt: skip
        times.append(time.perf_counter() - start)
    return times


class HafenSide:
    def __init__(self, root: Path) -> None:
        self.root = root / "hafen"
        self.root.mkdir()
        self.host = f"unix://{self.root}/hafen.sock"
        self.env = {**os.environ, "HAFEN_HOST": self.host}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.root / "hafend.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [HAFEND, "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
             "-H", self.host, "--config-file", str(self.root / "daemon.json")],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        for _ in range(200):
            if subprocess.run([HAFEN, "version"], env=self.env, capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        subprocess.run([HAFEN, "image", "bootstrap", "busybox"], env=self.env, check=True,
                       capture_output=True)  # fmt: skip

    def build(self, ctx: Path, no_cache: bool) -> list[str]:
        flags = ["--no-cache"] if no_cache else []
        return [HAFEN, "build", "-q", "--network", "none", *flags, "-t", "bench", str(ctx)]

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)


class BuildahSide:
    def __init__(self, root: Path) -> None:
        self.root = root / "buildah"
        self.root.mkdir()
        self.base = ["buildah", "--root", str(self.root / "root"), "--runroot",
                     str(self.root / "runroot"), "--storage-driver", "overlay"]  # fmt: skip
        self.env = dict(os.environ)

    def start(self) -> None:
        rootfs = self.root / "rootfs"
        (rootfs / "bin").mkdir(parents=True)
        for d in ("etc", "tmp"):
            (rootfs / d).mkdir()
        busybox = shutil.which("busybox") or "/bin/busybox"
        shutil.copy2(busybox, rootfs / "bin" / "busybox")
        applets = subprocess.run([busybox, "--list"], capture_output=True, text=True).stdout.split()
        for applet in applets:
            if not (rootfs / "bin" / applet).exists():
                os.symlink("busybox", rootfs / "bin" / applet)
        tar = self.root / "busybox.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar), "."], check=True)
        ctr = subprocess.run([*self.base, "from", "scratch"], check=True, capture_output=True,
                             text=True).stdout.strip()  # fmt: skip
        subprocess.run([*self.base, "add", ctr, str(tar), "/"], check=True, capture_output=True)
        subprocess.run([*self.base, "commit", "-q", ctr, "localhost/busybox:latest"], check=True,
                       capture_output=True)  # fmt: skip

    def build(self, ctx: Path, no_cache: bool) -> list[str]:
        flags = ["--no-cache"] if no_cache else []
        return [*self.base, "bud", "--layers", "--network", "none", "--runtime", "runc", "-q",
                *flags, "-t", "bench", str(ctx)]  # fmt: skip

    def stop(self) -> None:
        subprocess.run([*self.base, "rm", "--all"], capture_output=True)
        subprocess.run([*self.base, "rmi", "--all", "--force"], capture_output=True)


def summary(times: list[float]) -> str:
    return f"{statistics.median(times):7.3f}s  ({min(times):.3f}–{max(times):.3f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=7)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="hafen-bench-build-"))
    sides: dict[str, HafenSide | BuildahSide] = {"hafen": HafenSide(tmp)}
    if shutil.which("buildah"):
        sides["buildah"] = BuildahSide(tmp)
    else:
        print("buildah is not installed (apt-get install buildah): hafen only")
    results: dict[tuple[str, str], list[float]] = {}
    try:
        ctx = make_context(tmp)
        for name, side in sides.items():
            side.start()
            run: Callable[[bool], list[str]] = lambda no_cache, s=side: s.build(ctx, no_cache)  # noqa: E731
            env = side.env
            subprocess.run(run(True), check=True, capture_output=True, env=env)  # warm-up
            results[(name, "cold")] = timed(run(True), args.runs, env)
            subprocess.run(run(False), check=True, capture_output=True, env=env)
            results[(name, "cached")] = timed(run(False), args.runs, env)
    finally:
        for side in sides.values():
            side.stop()
        subprocess.run(["umount", "-R", "-l", str(tmp)], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"8-step Dockerfile, 2,000-file ~20 MB context, {args.runs} runs each, median (min–max)")
    for kind in ("cold", "cached"):
        for name in sides:
            print(f"  {kind:7s} {name:8s} {summary(results[(name, kind)])}")
        if "buildah" in sides:
            ratio = statistics.median(results[("hafen", kind)]) / statistics.median(
                results[("buildah", kind)]
            )
            print(f"  {kind:7s} ratio hafen/buildah: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
