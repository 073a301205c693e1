"""Log driver options (``--log-driver``/``--log-opt``, daemon.json ``log-driver``/``log-opts``).

Owns validation (Docker's json-file option names and value syntax) and the mapping to
what the shim needs: a rotation size in bytes, a file count, and the attributes every
record carries (``labels``/``labels-regex``/``env``/``env-regex`` pick the container's
labels and environment variables, ``tag`` renders a template: dockerd's
``ExtraAttributes`` and ``ParseLogTag``; ``logs --details`` shows them). A container
that names no options of its own gets the daemon's defaults when it uses the daemon's
driver. ``mode``/``max-buffer-size`` (dockerd's options common to every driver):
``mode=non-blocking`` puts a buffer of ``max-buffer-size`` bytes (default 1m) between the
container's output and its log file, dropping whole records when it is full, so a slow
file never blocks the container (``shim/logbuffer.py``); ``blocking`` (the default) writes
as the output comes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hafen.errors import InvalidArgument

DRIVERS = ("json-file", "local", "none")
# the json-file options hafen implements; dockerd's others are refused by name rather
# than accepted and ignored
_COMMON_OPTS = {"mode", "max-buffer-size"}  # dockerd's builtInLogOpts: every driver's
JSON_FILE_OPTS = {
    "max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex", "tag",
} | _COMMON_OPTS  # fmt: skip
LOCAL_OPTS = {"max-size", "max-file", "compress"} | _COMMON_OPTS
MODES = ("blocking", "non-blocking")
DEFAULT_MAX_BUFFER_SIZE = 1024 * 1024  # dockerd's ring buffer default (1m)
# dockerd's local driver keeps 5 files of 20 MB, compressed, unless told otherwise
LOCAL_DEFAULTS = {"max-size": "20m", "max-file": "5", "compress": "true"}
_BOOLS = {"1": True, "t": True, "true": True, "0": False, "f": False, "false": False}
# ``tag`` templates: dockerd's logger.Info fields (a Go template; hafen renders the fields)
_TAG_FIELD = re.compile(r"\{\{\s*\.(\w+)\s*\}\}")
_TAG_FIELDS = {"ID", "FullID", "Name", "ImageID", "ImageFullID", "ImageName", "DaemonName"}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}


def parse_size(text: str) -> int:
    """Docker's ``RAMInBytes``: ``10m`` → 10485760 (binary units)."""
    match = _SIZE.match(text.strip())
    if not match:
        raise InvalidArgument(f"invalid size: '{text}'")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def validate(driver: str, options: dict[str, str]) -> None:
    if driver not in DRIVERS:
        raise InvalidArgument(
            f"HostConfig.LogConfig.Type: unsupported log driver {driver!r} "
            f"(supported: {', '.join(DRIVERS)})"
        )
    if driver == "none":
        if options:
            raise InvalidArgument("the none log driver takes no options")
        return
    known = LOCAL_OPTS if driver == "local" else JSON_FILE_OPTS
    _check_mode(options)
    for key, value in options.items():
        if key not in known:
            raise InvalidArgument(f"unknown log opt '{key}' for {driver} log driver")
        if key == "max-size":
            if parse_size(value) <= 0:
                raise InvalidArgument("max-size must be a positive size")
        elif key == "max-file" and (not value.isdigit() or int(value) < 1):
            raise InvalidArgument("max-file cannot be less than 1")
        elif key == "compress":
            if value.lower() not in _BOOLS:
                raise InvalidArgument(f"compress: invalid boolean value {value!r}")
        elif key in ("labels-regex", "env-regex"):
            try:
                re.compile(value)
            except re.error as e:
                raise InvalidArgument(f"log opt '{key}': invalid regular expression: {e}")
        elif key == "tag":
            _check_tag(value)
    if (
        _BOOLS.get((options.get("compress") or "").lower())
        and options.get("max-file", "5" if driver == "local" else "1") == "1"
    ):
        raise InvalidArgument("compress cannot be true when max-file is less than 2")


def _check_mode(options: dict[str, str]) -> None:
    """dockerd's checks (ValidateLogOpts), in its words."""
    mode = options.get("mode", "")
    if mode and mode not in MODES:
        raise InvalidArgument(
            f"logger: logging mode not supported: {mode} (expected blocking or non-blocking)"
        )
    if "max-buffer-size" in options:
        if mode != "non-blocking":
            raise InvalidArgument(
                "logger: max-buffer-size option is only supported with 'mode=non-blocking'"
            )
        try:
            parse_size(options["max-buffer-size"])
        except InvalidArgument as e:
            raise InvalidArgument(f"error parsing option max-buffer-size: {e.message}") from e


def buffer_size(options: dict[str, str]) -> int | None:
    """``mode=non-blocking``: how many bytes of records may wait for the log file (the
    shim's ring buffer); None in blocking mode."""
    if options.get("mode") != "non-blocking":
        return None
    text = options.get("max-buffer-size")
    return parse_size(text) if text else DEFAULT_MAX_BUFFER_SIZE


def _check_tag(template: str) -> None:
    unknown = {m.group(1) for m in _TAG_FIELD.finditer(template)} - _TAG_FIELDS
    if unknown:
        raise InvalidArgument(
            f"log opt 'tag': unknown field {sorted(unknown)[0]!r} in template {template!r} "
            f"(fields: {', '.join(sorted(_TAG_FIELDS))})"
        )
    if "{{" in _TAG_FIELD.sub("", template):
        raise InvalidArgument(
            f"log opt 'tag': hafen renders only {{{{.Field}}}} in templates, not {template!r}"
        )


@dataclass
class LogInfo:
    """What a container's log attributes are taken from (dockerd's ``logger.Info``)."""

    id: str
    name: str
    image_id: str  # sha256:<hex>
    image_name: str
    labels: dict[str, str]
    env: list[str]


def attributes(options: dict[str, str], info: LogInfo) -> dict[str, str]:
    """The attrs every record carries: picked labels and env vars, and ``tag``."""
    attrs: dict[str, str] = {}
    for key in filter(None, (options.get("labels") or "").split(",")):
        if key in info.labels:
            attrs[key] = info.labels[key]
    if options.get("labels-regex"):
        pattern = re.compile(options["labels-regex"])
        attrs.update({k: v for k, v in info.labels.items() if pattern.search(k)})
    env: dict[str, str] = {}
    for item in info.env:
        key, sep, value = item.partition("=")
        if sep:
            env[key] = value
    for key in filter(None, (options.get("env") or "").split(",")):
        if key in env:
            attrs[key] = env[key]
    if options.get("env-regex"):
        pattern = re.compile(options["env-regex"])
        attrs.update({k: v for k, v in env.items() if pattern.search(k)})
    if options.get("tag"):
        image_hex = info.image_id.removeprefix("sha256:")
        fields = {
            "ID": info.id[:12],
            "FullID": info.id,
            "Name": info.name.lstrip("/"),
            "ImageID": image_hex[:12],
            "ImageFullID": image_hex,
            "ImageName": info.image_name,
            "DaemonName": "docker",  # what tools that parse tags expect (dockerd's value)
        }
        attrs["tag"] = _TAG_FIELD.sub(lambda m: fields[m.group(1)], options["tag"])
    return attrs


def effective(
    driver: str, options: dict[str, str], default_driver: str, default_opts: dict[str, str]
) -> tuple[str, dict[str, str]]:
    """The driver and options a container runs with: no driver given means the daemon's;
    with the daemon's driver, each daemon option the container does not set is added
    (dockerd's merge: ``--log-opt max-size=1m`` keeps daemon.json's ``max-file``)."""
    driver = driver or default_driver
    if driver == default_driver:
        return driver, {**default_opts, **options}
    return driver, dict(options)


def rotation(options: dict[str, str], driver: str = "json-file") -> tuple[int, int]:
    """(max size in bytes or 0, max files) for the shim."""
    if driver == "local":
        options = {**LOCAL_DEFAULTS, **options}
    size = parse_size(options["max-size"]) if options.get("max-size") else 0
    files = int(options.get("max-file") or 1)
    return size, files


def compressed(options: dict[str, str], driver: str = "json-file") -> bool:
    """Whether rotated files are gzipped (never with a single file: nothing rotates)."""
    if driver == "local":
        options = {**LOCAL_DEFAULTS, **options}
    return _BOOLS.get((options.get("compress") or "false").lower(), False) and (
        rotation(options, driver)[1] > 1
    )


__all__ = [
    "DRIVERS",
    "LogInfo",
    "attributes",
    "buffer_size",
    "compressed",
    "effective",
    "parse_size",
    "rotation",
    "validate",
]
