"""Instructions that only change the image config: ENV, LABEL, MAINTAINER, EXPOSE, VOLUME,
USER, STOPSIGNAL, SHELL, CMD, ENTRYPOINT, HEALTHCHECK, ONBUILD.

``apply_metadata`` changes the stage's config as Docker does (variables expanded only in
the instructions where Docker expands them) and gives the ``created_by`` text of the
history entry, in the classic builder's wording.
"""

from __future__ import annotations

import json
import re
import signal as signals
from typing import Any, Protocol

from hafen.build.dockerfile import Node, process_word, process_words
from hafen.build.plan import flag_map, one
from hafen.build.state import ImageState
from hafen.errors import InvalidArgument


class StageRun(Protocol):
    state: ImageState
    cmd_set: bool  # CMD was set in this stage (ENTRYPOINT then keeps it)


def parse_duration(text: str, flag: str) -> int:
    """Go durations (``30s``, ``1m30s``, ``500ms``) → nanoseconds."""
    if text in ("", "0"):
        return 0
    units = {"ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
             "h": 3600 * 10**9}  # fmt: skip
    total = 0.0
    pos = 0
    for m in re.finditer(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * units[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0:
        raise InvalidArgument(f"invalid value for --{flag}: {text!r} is not a duration")
    return int(total)


def expose_ports(words: list[str]) -> list[str]:
    out: list[str] = []
    for word in words:
        port, _, proto = word.partition("/")
        proto = (proto or "tcp").lower()
        if proto not in ("tcp", "udp", "sctp"):
            raise InvalidArgument(f"invalid proto: {proto}")
        low, _, high = port.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise InvalidArgument(f"invalid containerPort: {port}")
        for number in range(int(low), int(high or low) + 1):
            out.append(f"{number}/{proto}")
    return out


def go_quoted(items: list[str]) -> str:
    """Go's ``%q`` of a string slice, as the classic builder writes it in history."""
    return "[" + " ".join(json.dumps(i, ensure_ascii=False) for i in items) + "]"


def check_signal(value: str) -> None:
    text = value.upper()
    if text.isdigit():
        return
    name = text if text.startswith("SIG") else "SIG" + text
    if name not in signals.Signals.__members__ and not name.startswith("SIGRTMIN"):
        raise InvalidArgument(f"Invalid signal: {value}")


def apply_metadata(run: StageRun, node: Node, env: dict[str, str], esc: str) -> str:
    """Apply one metadata instruction to ``run.state``; the history's ``created_by``."""
    kw = node.keyword
    state = run.state
    cfg = state.config

    def word(text: str) -> str:
        return process_word(text, env, esc)

    if kw == "env":
        pairs = []
        for item in node.args:
            key, _, value = item.partition("=")
            key, value = word(key), word(value)
            pairs.append((key, value))
        for key, value in pairs:
            state.set_env(key, value)
        created_by = "ENV " + " ".join(f"{k}={v}" for k, v in pairs)
    elif kw == "label":
        labels = dict(cfg.get("Labels") or {})
        shown = []
        for item in node.args:
            key, _, value = item.partition("=")
            key, value = word(key), word(value)
            labels[key] = value
            shown.append(f"{key}={value}")
        cfg["Labels"] = labels
        created_by = "LABEL " + " ".join(shown)
    elif kw == "maintainer":
        state.raw["author"] = node.args[0]
        created_by = f"MAINTAINER {node.args[0]}"
    elif kw == "expose":
        words = [w for a in node.args for w in process_words(a, env, esc)]
        ports = expose_ports(words)
        exposed = dict(cfg.get("ExposedPorts") or {})
        for port in ports:
            exposed[port] = {}
        cfg["ExposedPorts"] = exposed
        created_by = "EXPOSE " + " ".join(ports)
    elif kw == "volume":
        volumes = dict(cfg.get("Volumes") or {})
        names = [word(a) for a in node.args]
        for name in names:
            if not name.strip():
                raise InvalidArgument("VOLUME specified can not be an empty string")
            volumes[name] = {}
        cfg["Volumes"] = volumes
        created_by = f"VOLUME [{' '.join(names)}]"
    elif kw == "user":
        cfg["User"] = word(node.args[0])
        created_by = f"USER {cfg['User']}"
    elif kw == "stopsignal":
        sig = word(node.args[0])
        check_signal(sig)
        cfg["StopSignal"] = sig
        created_by = f"STOPSIGNAL {sig}"
    elif kw == "shell":
        if not node.json_form:
            raise InvalidArgument("SHELL requires the arguments to be in JSON form")
        cfg["Shell"] = list(node.args)
        created_by = f"SHELL [{' '.join(node.args)}]"
    elif kw in ("cmd", "entrypoint"):
        argv = list(node.args) if node.json_form else [*state.shell, *node.args]
        if kw == "cmd":
            cfg["Cmd"] = argv
            run.cmd_set = True
        else:
            cfg["Entrypoint"] = argv
            if not run.cmd_set:
                cfg["Cmd"] = None
        created_by = f"{kw.upper()} {go_quoted(argv)}"
    elif kw == "healthcheck":
        cfg["Healthcheck"] = healthcheck(node)
        created_by = "HEALTHCHECK &{" + go_quoted(cfg["Healthcheck"]["Test"]) + "}"
    elif kw == "onbuild":
        assert node.sub is not None
        triggers = list(cfg.get("OnBuild") or [])
        triggers.append(node.args[0])
        cfg["OnBuild"] = triggers
        created_by = f"ONBUILD {node.args[0]}"
    else:
        raise InvalidArgument(f"unknown instruction: {kw.upper()}")
    return created_by


def healthcheck(node: Node) -> dict[str, Any]:
    """HEALTHCHECK NONE | [--interval --timeout --start-period --start-interval --retries] CMD."""
    if node.args[0] == "NONE":
        return {"Test": ["NONE"]}
    flags = flag_map(node, ("interval", "timeout", "start-period", "start-interval",
                             "retries"))  # fmt: skip
    cmd = node.args[1:]
    test = ["CMD", *cmd] if node.json_form else ["CMD-SHELL", cmd[0]]
    hc: dict[str, Any] = {"Test": test}
    for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                      ("start-period", "StartPeriod"), ("start-interval", "StartInterval")):  # fmt: skip
        if flag in flags:
            hc[key] = parse_duration(one(flags, flag), flag)
    if "retries" in flags:
        retries = one(flags, "retries")
        if not retries.isdigit() or int(retries) < 1:
            raise InvalidArgument("--retries must be at least 1")
        hc["Retries"] = int(retries)
    return hc
