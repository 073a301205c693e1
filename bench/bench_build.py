"""Build benchmark: hafen against BuildKit, Docker's classic builder and `buildah bud
--layers`, side by side in one run.

The same fixed 8-step Dockerfile (FROM busybox, ENV, WORKDIR, three RUNs, COPY of a
2,000-file ~20 MB context, CMD) is built, each over N runs (default 7):
  - cold: `--no-cache` (every step runs, every layer is written);
  - cached: a full rebuild where every step is a cache hit.
Networking is off for all (`--network none`). Median and min-max wall time, then the
ratios hafen / each peer.

hafen: `hafen build` against a hafend this script starts on temporary roots, with busybox
from `hafen image bootstrap busybox` (hafen's modules compiled first, as an installed
package has them; its CLI syncs the context incrementally, so a cached rebuild sends no
file that did not change); "docker>hafen" is Debian's docker CLI with DOCKER_BUILDKIT=0 against
that same hafend. buildah (Debian's `buildah`, `apt-get install
buildah`) runs with private --root/--runroot under the same temporary directory and
`--runtime runc`: its default runtime crun refuses this host's hybrid cgroup layout
("cgroups in hybrid mode not supported"). Its busybox is the same static busybox binary,
committed with `buildah from scratch` + `buildah add`.

BuildKit (`DOCKER_BUILDKIT=1`) and the classic builder (`DOCKER_BUILDKIT=0`) use Debian's
docker.io 20.10 client (/usr/bin/docker) against its dockerd, started on temporary roots
inside a private network namespace (dockerd makes a bridge and iptables rules: there they
touch nothing of the host's network); its busybox is the same binary, `docker import`ed.
Every daemon of the run lives in that namespace. Run as root:
`.venv/bin/python bench/bench_build.py [-n N]`.
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
DOCKER = "/usr/bin/docker"  # Debian's docker.io 20.10 client (BuildKit built in)
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


class Netns:
    """A private network namespace, held by a sleeping process, with lo up."""

    def __init__(self) -> None:
        self.holder = subprocess.Popen(
            ["unshare", "--net", "--", "sh", "-c", "ip link set lo up && exec sleep 3600"]
        )
        time.sleep(0.3)

    def wrap(self, argv: list[str]) -> list[str]:
        return ["nsenter", f"--net=/proc/{self.holder.pid}/ns/net", "--", *argv]

    def close(self) -> None:
        self.holder.kill()
        self.holder.wait()


def busybox_tar(root: Path) -> Path:
    """A busybox root filesystem as a tar: the static binary and its applet links."""
    tar = root / "busybox.tar"
    if tar.exists():
        return tar
    rootfs = root / "busybox-rootfs"
    (rootfs / "bin").mkdir(parents=True)
    for d in ("etc", "tmp"):
        (rootfs / d).mkdir()
    busybox = shutil.which("busybox") or "/bin/busybox"
    shutil.copy2(busybox, rootfs / "bin" / "busybox")
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True).stdout.split()
    for applet in applets:
        if not (rootfs / "bin" / applet).exists():
            os.symlink("busybox", rootfs / "bin" / applet)
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar), "."], check=True)
    return tar


class DockerdSide:
    """Debian's dockerd in the namespace, driven by its own 20.10 client."""

    def __init__(self, root: Path, ns: Netns, buildkit: bool) -> None:
        self.root = root / ("dockerd-buildkit" if buildkit else "dockerd-classic")
        self.root.mkdir()
        self.ns = ns
        sock = self.root / "docker.sock"
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{sock}",
                    "DOCKER_BUILDKIT": "1" if buildkit else "0",
                    "DOCKER_CONFIG": str(self.root / "client")}  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        (self.root / "daemon.json").write_text("{}")
        log = open(self.root / "dockerd.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.ns.wrap(["dockerd", "--data-root", str(self.root / "data"), "--exec-root",
                          str(self.root / "exec"), "-H", self.env["DOCKER_HOST"], "--pidfile",
                          str(self.root / "dockerd.pid"), "--config-file",
                          str(self.root / "daemon.json"), "--log-level", "error"]),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        for _ in range(300):
            if (
                subprocess.run([DOCKER, "version"], env=self.env, capture_output=True).returncode
                == 0
            ):
                break
            time.sleep(0.2)
        subprocess.run([DOCKER, "import", str(busybox_tar(self.root.parent)), "busybox:latest"],
                       env=self.env, check=True, capture_output=True)  # fmt: skip

    def build(self, ctx: Path, no_cache: bool) -> list[str]:
        flags = ["--no-cache"] if no_cache else []
        return [DOCKER, "build", "-q", "--network", "none", *flags, "-t", "bench", str(ctx)]

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)


class HafenSide:
    def __init__(self, root: Path, ns: Netns) -> None:
        self.ns = ns
        self.root = root / "hafen"
        self.root.mkdir()
        self.host = f"unix://{self.root}/hafen.sock"
        self.env = {**os.environ, "HAFEN_HOST": self.host}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.root / "hafend.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.ns.wrap([HAFEND, "--data-root", str(self.root / "data"), "--exec-root",
                          str(self.root / "exec"), "-H", self.host, "--config-file",
                          str(self.root / "daemon.json")]),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        for _ in range(200):
            if (
                subprocess.run([HAFEN, "version"], env=self.env, capture_output=True).returncode
                == 0
            ):
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


class DockerCliOnHafenSide:
    """Docker's own CLI (``DOCKER_BUILDKIT=0``: the classic /build API) against the hafend
    of ``HafenSide``: the same daemon path, the docker CLI's context tar."""

    def __init__(self, hafen: HafenSide) -> None:
        self.hafen = hafen
        self.env = {**os.environ, "DOCKER_HOST": hafen.host, "DOCKER_BUILDKIT": "0",
                    "DOCKER_CONFIG": str(hafen.root / "docker-client")}  # fmt: skip

    def start(self) -> None:
        pass  # the hafend of HafenSide, started before

    def build(self, ctx: Path, no_cache: bool) -> list[str]:
        flags = ["--no-cache"] if no_cache else []
        return [DOCKER, "build", "-q", "--network", "none", *flags, "-t", "bench-docker", str(ctx)]

    def stop(self) -> None:
        pass


class BuildahSide:
    def __init__(self, root: Path) -> None:
        self.root = root / "buildah"
        self.root.mkdir()
        self.base = ["buildah", "--root", str(self.root / "root"), "--runroot",
                     str(self.root / "runroot"), "--storage-driver", "overlay"]  # fmt: skip
        self.env = dict(os.environ)

    def start(self) -> None:
        tar = busybox_tar(self.root.parent)
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
    return f"{statistics.median(times):7.3f}s  ({min(times):.3f}-{max(times):.3f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=7)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="hafen-bench-build-"))
    ns = Netns()
    # hafen's CLI ships compiled like any installed package: with PYTHONDONTWRITEBYTECODE
    # set (as on these VMs) every call would otherwise compile its modules again (~40 ms)
    import hafen

    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(hafen.__file__).parent)],
                   check=False, env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""})  # fmt: skip
    hafen_side = HafenSide(tmp, ns)
    sides: dict[str, HafenSide | BuildahSide | DockerdSide | DockerCliOnHafenSide] = {
        "hafen": hafen_side
    }
    if Path(DOCKER).exists():
        sides["docker>hafen"] = DockerCliOnHafenSide(hafen_side)
    if shutil.which("dockerd") and Path(DOCKER).exists():
        sides["buildkit"] = DockerdSide(tmp, ns, buildkit=True)
        sides["classic"] = DockerdSide(tmp, ns, buildkit=False)
    else:
        print("dockerd is not installed (apt-get install docker.io): no BuildKit/classic")
    if shutil.which("buildah"):
        sides["buildah"] = BuildahSide(tmp)
    else:
        print("buildah is not installed (apt-get install buildah): no buildah")
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
        ns.close()
        subprocess.run(["umount", "-R", "-l", str(tmp)], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"8-step Dockerfile, 2,000-file ~20 MB context, {args.runs} runs each, median (min-max)")
    for kind in ("cold", "cached"):
        for name in sides:
            print(f"  {kind:7s} {name:12s} {summary(results[(name, kind)])}")
        for peer in sides:
            if peer not in ("hafen", "docker>hafen"):
                ratio = statistics.median(results[("hafen", kind)]) / statistics.median(
                    results[(peer, kind)]
                )
                print(f"  {kind:7s} ratio hafen/{peer}: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
