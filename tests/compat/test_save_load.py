"""save/load: hafen's archives are docker-archives and OCI layouts that skopeo and the
docker CLI read; hafen loads what skopeo and docker write; bad archives are refused."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.compat.registries import SKOPEO
from tests.compat.test_registry import DOCKER, docker
from tests.conftest import Hafend


def skopeo_json(*args: str) -> dict[str, object]:
    result = subprocess.run([SKOPEO, *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def busybox_id(d: Hafend) -> str:
    return json.loads(d.cli("image", "inspect", "busybox").stdout)[0]["Id"]


@pytest.fixture(scope="module")
def saved(hafend: Hafend, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("save") / "busybox.tar"
    hafend.cli("save", "-o", str(path), "busybox")
    return path


@pytest.mark.skipif(not Path(SKOPEO).exists(), reason="skopeo is not installed")
def test_skopeo_reads_a_saved_archive_both_ways(hafend: Hafend, saved: Path) -> None:
    diff_ids = json.loads(hafend.cli("image", "inspect", "busybox").stdout)[0]["RootFS"]["Layers"]
    as_docker = skopeo_json("inspect", f"docker-archive:{saved}")
    assert as_docker["Layers"] == diff_ids
    as_oci = skopeo_json("inspect", f"oci-archive:{saved}")
    assert as_oci["Layers"] == diff_ids
    config = skopeo_json("inspect", "--config", f"docker-archive:{saved}")
    assert config["rootfs"] == {"type": "layers", "diff_ids": diff_ids}


def test_load_round_trip_plain_and_gzip(
    hafend: Hafend, empty_hafend: Hafend, saved: Path, tmp_path: Path
) -> None:
    out = empty_hafend.cli("load", "-i", str(saved)).stdout
    assert out == "Loaded image: busybox:latest\n"
    assert busybox_id(empty_hafend) == busybox_id(hafend)
    run = empty_hafend.cli("run", "--rm", "busybox", "echo", "loaded")
    assert run.stdout == "loaded\n"
    empty_hafend.cli("rmi", "busybox")
    compressed = tmp_path / "busybox.tar.gz"
    compressed.write_bytes(gzip.compress(saved.read_bytes()))
    with open(compressed, "rb") as f:  # from stdin, as `hafen load < file`
        result = subprocess.run(
            [*empty_hafend_cmd(empty_hafend), "load"], stdin=f, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert busybox_id(empty_hafend) == busybox_id(hafend)
    empty_hafend.cli("rmi", "busybox")


def empty_hafend_cmd(d: Hafend) -> list[str]:
    from tests.conftest import HAFEN

    return [HAFEN, "-H", d.host]


@pytest.mark.skipif(not Path(SKOPEO).exists(), reason="skopeo is not installed")
def test_load_an_oci_archive_skopeo_wrote(
    hafend: Hafend, empty_hafend: Hafend, saved: Path, tmp_path: Path
) -> None:
    oci = tmp_path / "skopeo-oci.tar"
    result = subprocess.run(
        [SKOPEO, "--insecure-policy", "copy", f"docker-archive:{saved}",
         f"oci-archive:{oci}:example.com/skopeo/made:v2"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = empty_hafend.cli("load", "-i", str(oci)).stdout
    # skopeo names the image by its ref.name annotation
    assert out == "Loaded image: example.com/skopeo/made:v2\n"
    inspect = json.loads(empty_hafend.cli("image", "inspect", out.split()[-1]).stdout)[0]
    assert (
        inspect["RootFS"]["Layers"]
        == json.loads(hafend.cli("image", "inspect", "busybox").stdout)[0]["RootFS"]["Layers"]
    )
    empty_hafend.cli("rmi", "-f", inspect["Id"])


@pytest.mark.skipif(not Path(DOCKER).exists(), reason="the docker CLI is not installed")
def test_docker_save_pipes_into_docker_load(
    hafend: Hafend, empty_hafend: Hafend, tmp_path: Path
) -> None:
    archive = tmp_path / "d.tar"
    docker(hafend, tmp_path, "save", "-o", str(archive), "busybox")
    loaded = docker(empty_hafend, tmp_path, "load", "-i", str(archive)).stdout
    assert "Loaded image: busybox:latest" in loaded
    assert busybox_id(empty_hafend) == busybox_id(hafend)
    docker(empty_hafend, tmp_path, "rmi", "busybox")


def _tar(entries: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({"hello.txt": b"hi"}, "neither manifest.json"),
        ({"manifest.json": b"{nope"}, "manifest.json is not valid JSON"),
        ({"manifest.json": json.dumps([{"Config": "../../etc/passwd", "Layers": []}]).encode()},
         "'../../etc/passwd' is missing"),
        ({"manifest.json": json.dumps([{"Config": "c.json", "Layers": ["l.tar"]}]).encode(),
          "c.json": b'{"rootfs":{"type":"layers","diff_ids":["sha256:' + b"0" * 64 + b'"]}}',
          "l.tar": _tar({"x": b"y"})},
         "unpacks to"),
    ],
)  # fmt: skip
def test_bad_archives_are_refused_and_leave_nothing(
    empty_hafend: Hafend, tmp_path: Path, entries: dict[str, bytes], message: str
) -> None:
    before = empty_hafend.cli("images", "-aq").stdout
    archive = tmp_path / "bad.tar"
    archive.write_bytes(_tar(entries))
    result = empty_hafend.cli("load", "-i", str(archive), check=False)
    assert result.returncode == 1
    assert message in result.stderr
    assert empty_hafend.cli("images", "-aq").stdout == before
    assert not list((empty_hafend.data_root / "tmp").iterdir())


UMOCI = shutil.which("umoci") or "/usr/bin/umoci"


@pytest.mark.skipif(not Path(UMOCI).exists(), reason="umoci is not installed")
def test_load_an_oci_layout_umoci_made(hafend: Hafend, tmp_path: Path) -> None:
    """umoci builds a two-layer image (the second deletes a file of the first: an OCI
    whiteout); hafen loads the layout, tarred, and runs it."""

    def umoci(*args: str) -> None:
        result = subprocess.run([UMOCI, *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"umoci {' '.join(args)}: {result.stderr}"

    layout = tmp_path / "layout"
    umoci("init", "--layout", str(layout))
    umoci("new", "--image", f"{layout}:v1")
    bundle = tmp_path / "bundle"
    umoci("unpack", "--image", f"{layout}:v1", str(bundle))
    rootfs = bundle / "rootfs"
    (rootfs / "bin").mkdir(exist_ok=True)
    shutil.copy2("/bin/busybox", rootfs / "bin" / "busybox")
    (rootfs / "first.txt").write_text("from layer one\n")
    (rootfs / "gone.txt").write_text("deleted by layer two\n")
    umoci("repack", "--image", f"{layout}:v1", str(bundle))
    shutil.rmtree(bundle)
    umoci("unpack", "--image", f"{layout}:v1", str(bundle))
    (rootfs / "gone.txt").unlink()
    (rootfs / "second.txt").write_text("from layer two\n")
    umoci("repack", "--image", f"{layout}:v1", str(bundle))
    umoci("config", "--image", f"{layout}:v1", "--config.entrypoint", "/bin/busybox")
    umoci("gc", "--layout", str(layout))
    archive = tmp_path / "umoci.tar"
    subprocess.run(["tar", "-C", str(layout), "-cf", str(archive), "."], check=True)

    out = hafend.cli("load", "-i", str(archive)).stdout
    # umoci's ref.name is a bare tag ("v1"), not an image name: loaded by ID, as docker does
    assert out.startswith("Loaded image ID: sha256:"), out
    image_id = out.split()[-1]
    try:
        inspect = json.loads(hafend.cli("image", "inspect", image_id).stdout)[0]
        assert len(inspect["RootFS"]["Layers"]) == 2  # one per repack
        ran = hafend.cli(
            "run", "--rm", image_id, "sh", "-c",
            "cat /first.txt /second.txt; test -e /gone.txt && echo still-there || echo gone",
        ).stdout  # fmt: skip
        assert ran == "from layer one\nfrom layer two\ngone\n"
    finally:
        hafend.cli("rmi", "-f", image_id, check=False)
