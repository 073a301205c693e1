"""Start-up cost guards: the create path stays on a lean set of stdlib modules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hafen.records import as_dict, field, record
from hafen.runtime import _fastjson

SRC = str(Path(__file__).resolve().parents[3] / "src")


def test_start_path_imports_no_heavy_modules() -> None:
    code = (
        "import sys; import hafen.runtime.main, hafen.runtime.container, hafen.runtime._init, "
        "hafen.runtime._sys, hafen.runtime.seccomp, hafen.runtime.exec_process, "
        "hafen.runtime._setns, hafen.runtime.devices_bpf; "
        "hafen.runtime.seccomp._sha256_hex(b'{}'); "
        "print(' '.join(sorted(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": SRC},
    ).stdout.split()
    heavy_modules = ("typing", "dataclasses", "inspect", "socket", "argparse", "subprocess")
    # ctypes: ~3 ms, its C module _ctypes and libffi ~0.5 ms more; the runtime's Linux
    # calls are its own C module (runtime/_linux.c, built by scripts/setup)
    heavy_modules += ("ctypes", "_ctypes")
    # json (through re) and signal import enum, re, functools, collections: ~3-5 ms
    # os (its environ builds _collections_abc's ABCs: ~0.7 ms; runtime/_os.py), the
    # Python layers over C modules (struct, stat), resource (a shared library), importlib
    heavy_modules += ("os", "_collections_abc", "struct", "stat", "resource", "importlib")
    for heavy in (*heavy_modules, "json", "re", "enum", "signal"):
        assert heavy not in out, f"{heavy} is imported on the start path"


def test_python_dash_m_entry_point_runs_without_site() -> None:
    result = subprocess.run(
        [sys.executable, "-S", "-m", "hafen.runtime", "--version"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": SRC},
    )
    assert result.returncode == 0
    assert result.stdout.startswith("hafen-runtime version")


def test_the_working_directory_cannot_shadow_what_the_runtime_and_shim_import(
    tmp_path: Path,
) -> None:
    # A runtime runs as root in its caller's working directory (a bundle), the shim in
    # the daemon's: modules planted there must not be imported in place of the stdlib's.
    from hafen.daemon.config import python_module_command
    from hafen.runtime import command

    marker = tmp_path / "planted-module-ran"
    for name in ("_json", "_ctypes", "struct", "select", "resource", "json", "selectors"):
        (tmp_path / f"{name}.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    runtime = subprocess.run(
        [*command(sys.executable), "--root", str(tmp_path / "state"), "run",
         "--bundle", str(tmp_path / "no-bundle"), "c1"],
        capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": SRC},
    )  # fmt: skip
    assert runtime.returncode != 0 and "config.json not found" in runtime.stderr
    shim = subprocess.run(
        [*python_module_command("hafen.shim"), "--bogus"],
        capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": SRC},
    )  # fmt: skip
    assert shim.returncode != 0 and "unknown flag --bogus" in shim.stderr
    assert not marker.exists()


@record
class _Point:
    x: int
    y: int = 0
    tags: list[str] = field(default_factory=list)


def test_record_init_defaults_and_factories() -> None:
    a = _Point(1)
    b = _Point(1)
    a.tags.append("t")
    assert b.tags == []  # a fresh list per instance
    assert _Point(2, y=3) == _Point(x=2, y=3, tags=[])
    assert repr(_Point(1, 2)) == "_Point(x=1, y=2, tags=[])"
    assert as_dict(_Point(1)) == {"x": 1, "y": 0, "tags": []}


def test_record_argument_errors() -> None:
    with pytest.raises(TypeError, match="missing argument 'x'"):
        _Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected"):
        _Point(1, z=2)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "doc",
    [
        '{"a": [1, 2.5, "x\\u00e9\\ud83d\\ude00", null, true, false]}',
        " [1, -0.0, 1e5] \n",
        '{"b": 1, "a": {"z": 1, "y": [{}]}}',
        '"\\n\\t"',
        "NaN",
        '{"k": Infinity}',
    ],
)
def test_fastjson_loads_and_dumps_as_json_does(doc: str) -> None:
    expected = json.loads(doc)
    got = _fastjson.loads(doc)
    assert repr(got) == repr(expected)  # repr: NaN != NaN
    assert repr(_fastjson.loads(doc.encode())) == repr(expected)
    assert _fastjson.dumps(expected) == json.dumps(expected)
    compact = {"sort_keys": True, "separators": (",", ":")}
    assert _fastjson.dumps(expected, **compact) == json.dumps(expected, **compact)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", "{", "[1] x", '{"a":}', b"\xff"])
def test_fastjson_errors_are_jsons(bad: str | bytes) -> None:
    with pytest.raises(json.JSONDecodeError if isinstance(bad, str) else ValueError) as mine:
        _fastjson.loads(bad)
    with pytest.raises(ValueError) as theirs:
        json.loads(bad)
    assert str(mine.value) == str(theirs.value)
    with pytest.raises(TypeError, match="not JSON serializable"):
        _fastjson.dumps({"a": object()})
