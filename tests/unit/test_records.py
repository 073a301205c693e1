"""hafen.records: dataclass-style records for what starts often (the runtime, the CLI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hafen.records import FrozenRecordError, field, record, replace

SRC = str(Path(__file__).resolve().parents[2] / "src")


@record(frozen=True)
class _Address:
    host: str
    port: int = 0


@record
class _Bag:
    items: list[str] = field(default_factory=list)


@record
class _State:
    name: str
    count: int = 0


def test_frozen_records_refuse_assignment_and_hash_by_value() -> None:
    a = _Address("h", 1)
    with pytest.raises(FrozenRecordError, match="cannot assign to field 'port'"):
        a.port = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del a.host  # type: ignore[misc]
    assert {_Address("h", 1): "x"}[a] == "x"  # equal values, equal hashes
    assert _Address("h", 1) == a and _Address("h", 2) != a


def test_plain_records_are_mutable_and_unhashable() -> None:
    assert _Bag().items is not _Bag().items  # a fresh list per instance
    s = _State("n")
    s.count += 1
    assert s == _State("n", 1)
    with pytest.raises(TypeError):
        hash(s)


def test_replace_copies_with_changes_and_names_unknown_fields() -> None:
    a = _Address("h", 1)
    b = replace(a, port=2)
    assert (b.host, b.port, a.port) == ("h", 2, 1)
    with pytest.raises(TypeError, match="no fields"):
        replace(a, nope=1)


def test_the_cli_run_path_builds_no_dataclasses() -> None:
    """``hafen run`` loads these modules on every call: no dataclass compiles at import."""
    code = (
        "import sys, hafen.cli.main, hafen.cli.commands.container, hafen.cli.runopts, "
        "hafen.client, hafen.cli._stdio; print('dataclasses' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={"PYTHONPATH": SRC},
    ).stdout.strip()  # fmt: skip
    assert out == "False"
