"""Events: the bus over the API and ``hafen events``, since/until, filters, persistence."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse

from tests.conftest import HAFEN, Hafend
from tests.integration.test_api import UnixHTTPConnection, call


def events_between(d: Hafend, since: float, until: float, filters: dict | None = None) -> list:
    query = {"since": f"{since:.9f}", "until": f"{until:.9f}"}
    if filters:
        query["filters"] = json.dumps(filters)
    conn = UnixHTTPConnection(str(d.socket))
    try:
        conn.request("GET", "/events?" + urllib.parse.urlencode(query))
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    assert response.status == 200, raw
    return [json.loads(line) for line in raw.splitlines() if line.strip()]


def test_container_lifecycle_events_in_dockers_shape(hafend: Hafend) -> None:
    since = time.time()
    r = hafend.cli("run", "--name", "ev-life", "-l", "team=a", "busybox", "sh", "-c", "exit 3",
                   check=False)  # fmt: skip
    assert r.returncode == 3
    cid = hafend.cli("inspect", "-f", "{{.Id}}", "ev-life").stdout.strip()
    hafend.cli("rm", "ev-life")
    evs = events_between(hafend, since, time.time() + 0.5, {"container": ["ev-life"]})
    actions = [e["Action"] for e in evs]
    assert actions == ["create", "attach", "start", "die", "destroy"]
    die = evs[3]
    assert die["Type"] == "container" and die["status"] == "die" and die["id"] == cid
    assert die["from"] == "busybox" and die["scope"] == "local"
    assert die["Actor"] == {
        "ID": cid,
        "Attributes": {"exitCode": "3", "image": "busybox", "name": "ev-life", "team": "a"},
    }
    assert die["time"] == die["timeNano"] // 1_000_000_000
    assert [e["timeNano"] for e in evs] == sorted(e["timeNano"] for e in evs)


def test_filters_by_event_type_and_label(hafend: Hafend) -> None:
    since = time.time()
    cid = hafend.cli("run", "-d", "-l", "k=v", "busybox", "sleep", "30").stdout.strip()
    hafend.cli("exec", cid, "true")
    hafend.cli("stop", "-t", "1", cid)
    hafend.cli("rm", cid)
    until = time.time() + 0.5
    evs = events_between(hafend, since, until, {"event": ["die", "stop", "exec_create"]})
    mine = [e for e in evs if e["Actor"]["ID"] == cid]
    assert [e["Action"].split(":")[0] for e in mine] == ["exec_create", "die", "stop"]
    assert mine[0]["Action"] == "exec_create: true"
    kills = events_between(hafend, since, until, {"event": ["kill"], "label": ["k=v"]})
    # sleep as pid 1 ignores SIGTERM: stop escalates to SIGKILL after -t 1
    assert [e["Actor"]["Attributes"]["signal"] for e in kills] == ["15", "9"]
    assert events_between(hafend, since, until, {"type": ["image"], "container": [cid]}) == []


def test_bad_event_queries_are_refused(hafend: Hafend) -> None:
    assert call(hafend, "GET", "/events?since=yesterday")[0] == 400
    status, body, _ = call(hafend, "GET", '/events?until=1&filters={"bogus":["x"]}')
    assert status == 400 and "bogus" in body["message"]
    assert call(hafend, "GET", "/events?since=10&until=5")[0] == 400


def test_hafen_events_follows_live_and_formats(hafend: Hafend) -> None:
    proc = subprocess.Popen(
        [HAFEN, "-H", hafend.host, "events", "--filter", "type=container", "--filter",
         "event=create", "--format", "{{.Action}} {{.Actor.Attributes.name}}"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(0.5)
        hafend.cli("create", "--name", "ev-live", "busybox", "true")
        assert proc.stdout is not None
        assert proc.stdout.readline() == "create ev-live\n"
    finally:
        proc.kill()
        proc.wait()
        hafend.cli("rm", "ev-live", check=False)


def test_hafen_events_default_line(hafend: Hafend) -> None:
    since = time.time()
    hafend.cli("tag", "busybox", "evtag:one")
    hafend.cli("rmi", "evtag:one")
    out = hafend.cli(
        "events", "--since", f"{since:.3f}", "--until", f"{time.time() + 0.3:.3f}",
        "--filter", "type=image",
    ).stdout.splitlines()  # fmt: skip
    assert [line.split()[1:3] for line in out] == [["image", "tag"], ["image", "untag"]]
    assert out[0].endswith("(name=evtag:one)") and out[0].split()[0].endswith("Z")


def test_events_survive_a_daemon_restart(fresh_hafend: Hafend) -> None:
    since = time.time()
    cid = fresh_hafend.cli("create", "--name", "ev-kept", "busybox", "true").stdout.strip()
    # The journal is appended by a worker thread after the answer: wait until the event
    # is there (a kill in the few milliseconds before may lose it, by design), then kill.
    journal = fresh_hafend.data_root / "events.jsonl"
    deadline = time.monotonic() + 10
    while cid not in (journal.read_text() if journal.exists() else ""):
        assert time.monotonic() < deadline, "the create event never reached the journal"
        time.sleep(0.01)
    fresh_hafend.kill()
    fresh_hafend.start()
    evs = events_between(fresh_hafend, since, time.time(), {"container": ["ev-kept"]})
    assert [e["Action"] for e in evs] == ["create"]
