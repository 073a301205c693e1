"""Registry benchmark: push and pull of a ~135 MB, 5-layer image, hafen against skopeo,
side by side in one run, against Debian's docker-registry on 127.0.0.1.

- push: `hafen push` of the image (gzip layers) vs `skopeo copy oci:<layout>
  docker://...` of the same blobs; every run pushes into a freshly started, empty
  registry (so nothing is skipped or mounted). hafen sends each stored blob with
  sendfile, all layers at once; the registry's own work (receive, hash, write) is most
  of what is left on both sides.
- pull: `hafen pull` into an empty store (the image is removed, blobs and layers
  collected, before each run), compared with two skopeo runs that do different work:
  * `skopeo` = `skopeo copy docker://... oci:<empty dir>`: skopeo only downloads,
    verifies and writes the compressed blobs (no decompression, no unpack, no fsync).
    hafen does all of that too *and* unpacks every layer (decompress, hash the tar
    for its DiffID, write ~170 MB of files) and syncs it to disk, so this ratio is a
    lower bound: the layout copy is what a pull costs if nothing were unpacked.
  * `skopeo+unpack` = `skopeo copy docker://... containers-storage:[overlay@<empty
    root>]`: skopeo unpacks into overlay layers as hafen does — the like-for-like
    peer (what podman/CRI-O pay for a pull).
  hafen reads each layer off the network once: download → sha256 → blob file and
  (isal) decompression → untar into its overlay layer, in a worker thread per layer,
  all layers in parallel; one syncfs before the layers and blobs are published.
- dockerd (Debian's docker.io, when installed; `--no-dockerd` leaves it out): `docker
  push` of the image it pulled (it recompresses its layers, as Docker does) and
  `docker pull` after `docker rmi` (unpacks, like hafen). With dockerd the whole
  benchmark re-runs itself in private network/mount/PID namespaces (loopback only;
  dockerd runs without bridge or iptables), so the machine's network is never touched.
Prints median MB/s (of the compressed image size) and min-max per tool, and the ratios.
The host is shared: compare ratios from one run (runs are interleaved so drift hits
every tool alike), not MB/s across runs.
Run as root from the repository root: `.venv/bin/python bench/bench_registry.py [-n N]`.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.compat.registries import SKOPEO, DockerRegistry
from tests.conftest import Hafend

LAYER_MB = (50, 40, 35, 28, 20)
DOCKERD = shutil.which("dockerd") or "/usr/sbin/dockerd"
DOCKER = shutil.which("docker") or "/usr/local/bin/docker"


def _blob(layout: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def make_layout(layout: Path) -> int:
    """An OCI layout of a 5-layer image whose files are 3/4 random, 1/4 text (gzip ~1.3x)."""
    import io
    import tarfile

    (layout / "blobs" / "sha256").mkdir(parents=True)
    layers, diff_ids = [], []
    for i, mb in enumerate(LAYER_MB):
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            for j in range(mb):
                payload = os.urandom(768 * 1024) + (b"hafen bench line %d\n" % j) * 13000
                info = tarfile.TarInfo(f"layer{i}/file{j}")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
        plain = raw.getvalue()
        diff_ids.append("sha256:" + hashlib.sha256(plain).hexdigest())
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                       **_blob(layout, gzip.compress(plain, compresslevel=1, mtime=0))})  # fmt: skip
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()  # fmt: skip
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **_blob(layout, config)},
                           "layers": layers}).encode()  # fmt: skip
    desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json", **_blob(layout, manifest),
            "annotations": {"org.opencontainers.image.ref.name": "bench.local/bench/image:latest"}}  # fmt: skip
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [desc]}))
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return sum(int(layer["size"]) for layer in layers)  # type: ignore[call-overload]


def run(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


def summary(name: str, times: list[float], size_mb: float) -> tuple[str, float]:
    rates = sorted(size_mb / t for t in times)
    med = statistics.median(rates)
    return f"  {name:<14} {med:8.1f} MB/s   (min {rates[0]:.1f}, max {rates[-1]:.1f})", med


class Dockerd:
    """Debian's dockerd on private roots, without bridge or iptables (and, as the whole
    benchmark, inside a private network namespace)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.host = f"unix://{root / 'docker.sock'}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Dockerd:
        self.root.mkdir(parents=True)
        with open(self.root / "dockerd.log", "wb") as log:
            self.proc = subprocess.Popen(
                [DOCKERD, "--data-root", str(self.root / "data"), "--exec-root",
                 str(self.root / "exec"), "--pidfile", str(self.root / "dockerd.pid"),
                 "-H", self.host, "--bridge=none", "--iptables=false", "--ip6tables=false",
                 "--ip-masq=false", "--userland-proxy=false"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        for _ in range(100):
            if self.cli("version", check=False).returncode == 0:
                return self
            time.sleep(0.2)
        raise SystemExit(f"dockerd did not start:\n{(self.root / 'dockerd.log').read_text()}")

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DOCKER_HOST": self.host, "DOCKER_CONFIG": str(self.root)}
        result = subprocess.run([DOCKER, *args], capture_output=True, text=True, env=env)
        if check and result.returncode != 0:
            raise SystemExit(f"docker {' '.join(args)} failed: {result.stderr}")
        return result

    def argv(self, *args: str) -> list[str]:
        return ["env", f"DOCKER_HOST={self.host}", f"DOCKER_CONFIG={self.root}", DOCKER, *args]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        subprocess.run(["umount", "-R", str(self.root / "data")], capture_output=True)
        subprocess.run(["umount", "-R", str(self.root / "exec")], capture_output=True)


def in_private_netns() -> None:
    """Re-run this benchmark in private network, mount and PID namespaces (loopback
    only): dockerd must not touch the machine's network, and whatever the run leaves
    behind dies with its namespace."""
    if os.environ.get("HAFEN_BENCH_NETNS") == "1":
        return
    argv = [sys.executable, *sys.argv]
    script = 'ip link set lo up && exec "$@"'
    os.execvpe(
        "unshare", ["unshare", "--net", "--pid", "--fork", "--mount-proc", "sh", "-c", script,
                    "sh", *argv],
        {**os.environ, "HAFEN_BENCH_NETNS": "1"},
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=5, help="runs per measurement")
    parser.add_argument("--no-dockerd", action="store_true", help="leave dockerd out")
    args = parser.parse_args()
    with_dockerd = not args.no_dockerd and Path(DOCKERD).exists() and Path(DOCKER).exists()
    if with_dockerd:
        in_private_netns()
    root = Path(tempfile.mkdtemp(prefix="hafen-bench-registry-"))
    daemon = Hafend(root / "hafend")
    dockerd = Dockerd(root / "dockerd") if with_dockerd else None
    registries: list[DockerRegistry] = []
    try:
        layout = root / "layout"
        size = make_layout(layout)
        size_mb = size / 1e6
        archive = root / "image.tar"
        subprocess.run(["tar", "-C", str(layout), "-cf", str(archive), "."], check=True)
        daemon.start()
        daemon.cli("load", "-i", str(archive), timeout=600)
        hafen = [str(Path(sys.executable).parent / "hafen"), "-H", daemon.host]
        skopeo = [SKOPEO, "--insecure-policy"]
        push: dict[str, list[float]] = {"hafen": [], "skopeo": []}
        pull: dict[str, list[float]] = {"hafen": [], "skopeo": [], "skopeo+unpack": []}
        reg = DockerRegistry(root / "reg-pull").start()
        registries.append(reg)
        ref = f"{reg.host}/bench/image:latest"
        daemon.cli("tag", "bench.local/bench/image:latest", ref)
        daemon.cli("push", ref, timeout=600)
        if dockerd is not None:
            dockerd.start()
            dockerd.cli("pull", ref)  # dockerd's copy of the image, for its pushes
            push["dockerd"], pull["dockerd"] = [], []
        for i in range(args.n):
            for tool in push:  # interleaved, so drift hits every tool alike
                target = DockerRegistry(root / f"reg-{tool}-{i}").start()
                registries.append(target)
                dest_ref = f"{target.host}/bench/image:latest"
                if tool == "hafen":
                    daemon.cli("tag", "bench.local/bench/image:latest", dest_ref)
                    push[tool].append(run([*hafen, "push", dest_ref]))
                    daemon.cli("rmi", dest_ref)
                elif tool == "skopeo":
                    push[tool].append(run([*skopeo, "copy", "--dest-tls-verify=false",
                                           f"oci:{layout}", f"docker://{dest_ref}"]))  # fmt: skip
                else:
                    assert dockerd is not None
                    dockerd.cli("tag", ref, dest_ref)
                    push[tool].append(run(dockerd.argv("push", dest_ref)))
                    dockerd.cli("rmi", dest_ref)
                target.stop()
                registries.remove(target)
        daemon.cli("rmi", ref)
        daemon.cli("rmi", "bench.local/bench/image:latest")
        if dockerd is not None:
            dockerd.cli("rmi", ref)
        for i in range(args.n):
            if dockerd is not None:  # docker rmi removes the layers: an empty store again
                pull["dockerd"].append(run(dockerd.argv("pull", ref)))
                dockerd.cli("rmi", ref)
            pull["hafen"].append(run([*hafen, "pull", ref]))
            daemon.cli("rmi", ref)
            dest = root / f"pulled-{i}"
            pull["skopeo"].append(run([*skopeo, "copy", "--src-tls-verify=false",
                                       f"docker://{ref}", f"oci:{dest}"]))  # fmt: skip
            shutil.rmtree(dest)
            storage = root / f"storage-{i}"
            pull["skopeo+unpack"].append(run([*skopeo, "copy", "--src-tls-verify=false",
                f"docker://{ref}",
                f"containers-storage:[overlay@{storage}/graph+{storage}/run]bench/image:latest"]))  # fmt: skip
            subprocess.run(["umount", "-R", f"{storage}/graph/overlay"], capture_output=True)
            shutil.rmtree(storage, ignore_errors=True)
        print(f"image: {len(LAYER_MB)} layers, {size_mb:.1f} MB compressed; {args.n} runs each")
        for label, table in (("push", push), ("pull", pull)):
            print(f"{label}:")
            lines = {tool: summary(tool, times, size_mb) for tool, times in table.items()}
            for text, _ in lines.values():
                print(text)
            for other in (t for t in table if t != "hafen"):
                print(f"  ratio hafen/{other}: {lines['hafen'][1] / lines[other][1]:.2f}x")
    finally:
        for reg in registries:
            reg.stop()
        if dockerd is not None:
            dockerd.stop()
        daemon.cleanup()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
