"""A launch that also attaches and starts (hafend's start of a container): one trip to
the shim, every byte of output to the attached client, a failed start undone."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest

from hafen.errors import RuntimeFailure

from .conftest import RUNTIME, Shims, run, runtime_has_state, wait_gone
from .test_shim_attach import joined, read_frames


def test_a_launch_that_attaches_and_starts_delivers_every_byte(shims: Shims) -> None:
    async def scenario() -> tuple[bool, list[tuple[int, bytes]], int]:
        # output written at once, before any attach request could have come
        c = await shims.launch_async(
            ["sh", "-c", "echo out; echo err >&2; exit 4"],
            start=True,
            attach=(False, True, True),
        )
        assert c.info.attached is not None
        reader, writer = c.info.attached
        frames = await read_frames(reader)
        writer.close()
        return c.info.started, frames, (await c.client.wait()).exit_code

    started, frames, code = run(scenario())
    assert started
    assert joined(frames, 1) == b"out\n" and joined(frames, 2) == b"err\n"
    assert code == 4


def test_stdin_goes_through_the_launch_connection(shims: Shims) -> None:
    async def scenario() -> tuple[list[tuple[int, bytes]], int]:
        c = await shims.launch_async(
            ["sh", "-c", "read x; echo got $x"], stdin=True, start=True,
            attach=(True, True, True),
        )  # fmt: skip
        assert c.info.attached is not None
        reader, writer = c.info.attached
        writer.write(b"hi\n")
        await writer.drain()
        frames = await read_frames(reader)
        writer.close()
        return frames, (await c.client.wait()).exit_code

    frames, code = run(scenario())
    assert joined(frames, 1) == b"got hi\n"
    assert code == 0


def test_a_start_without_attach_comes_with_the_launch(shims: Shims) -> None:
    c = shims.launch(["sh", "-c", "exit 6"], start=True)
    assert c.info.started and c.info.attached is None
    assert run(c.client.wait()).exit_code == 6


def test_the_execd_launcher_starts_but_leaves_an_attach_to_the_caller(
    shims: Shims, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAFEN_SHIM_ZYGOTE", "0")
    plain = shims.launch(["sh", "-c", "exit 2"], start=True)
    assert plain.info.started
    assert run(plain.client.wait()).exit_code == 2

    # its report comes through a pipe: no stream can follow it, so it only creates, and
    # the caller attaches first and then starts
    async def scenario() -> tuple[bool, list[tuple[int, bytes]], int]:
        c = await shims.launch_async(["echo", "late"], start=True, attach=(False, True, True))
        assert c.info.attached is None
        started = c.info.started
        reader, writer = await c.client.attach(stdin=False, stdout=True, stderr=True)
        await c.client.start()
        frames = await read_frames(reader)
        writer.close()
        return started, frames, (await c.client.wait()).exit_code

    started, frames, code = run(scenario())
    assert not started
    assert joined(frames, 1) == b"late\n"
    assert code == 0


def test_a_failed_start_in_the_launch_is_undone(shims: Shims, tmp_path: Path) -> None:
    # a runtime whose start fails: everything else is the suite's runtime's
    wrapper = tmp_path / "refusing-runtime"
    wrapper.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do [ "$a" = start ] && { echo "start refused by the test" >&2; '
        "exit 1; }; done\n"
        f'exec {" ".join(RUNTIME)} "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)

    async def scenario() -> None:
        await shims.launch_async(
            ["sleep", "60"], start=True, attach=(False, True, True), runtime=[str(wrapper)]
        )

    with pytest.raises(RuntimeFailure, match="start refused by the test"):
        run(scenario())
    _nothing_left(shims, shims.ids[-1])


def _nothing_left(shims: Shims, cid: str) -> None:
    """No runtime state, no shim socket, no shim process of ``cid``."""
    assert not runtime_has_state(shims, cid)
    assert not (shims.state_dir_for(cid) / "shim.sock").exists()
    shims_left = [
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and _comm(p) == f"shim-{cid[:10]}"
    ]
    assert all(wait_gone(pid) for pid in shims_left)


def _comm(proc: Path) -> str:
    try:
        return (proc / "comm").read_text().strip()
    except OSError:
        return ""


def test_a_launch_sets_up_while_the_bundle_is_made_and_creates_after(shims: Shims) -> None:
    async def make_bundle(bundle: Path) -> None:
        # config.json appears only now: a create before the go would find none
        config = bundle / "config.json"
        held = config.read_bytes()
        config.unlink()
        await asyncio.sleep(0.3)
        config.write_bytes(held)

    async def scenario() -> tuple[bool, int]:
        c = await shims.launch_async(["sh", "-c", "exit 5"], start=True, bundle_ready=make_bundle)
        return c.info.started, (await c.client.wait()).exit_code

    assert run(scenario()) == (True, 5)


def test_a_bundle_that_cannot_be_made_ends_the_waiting_shim(shims: Shims) -> None:
    async def fail(_bundle: Path) -> None:
        await asyncio.sleep(0.1)
        raise RuntimeFailure("no bundle today")

    with pytest.raises(RuntimeFailure, match="no bundle today"):
        run(shims.launch_async(["true"], start=True, bundle_ready=fail))
    _nothing_left(shims, shims.ids[-1])
