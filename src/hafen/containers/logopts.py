"""Log driver options (``--log-driver``/``--log-opt``, daemon.json ``log-driver``/``log-opts``).

Owns validation (Docker's json-file option names and value syntax) and the mapping to
what the shim needs: a rotation size in bytes and a file count. A container that names
no options of its own gets the daemon's defaults when it uses the daemon's driver.
"""

from __future__ import annotations

import re

from hafen.errors import InvalidArgument

DRIVERS = ("json-file", "none")
# the json-file options hafen implements; dockerd's others (compress, labels, env, tag,
# mode, …) are refused by name rather than accepted and ignored
JSON_FILE_OPTS = {"max-size", "max-file"}
_NOT_IMPLEMENTED = {
    "compress", "labels", "labels-regex", "env", "env-regex", "tag", "mode", "max-buffer-size",
}  # fmt: skip
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
    for key, value in options.items():
        if key in _NOT_IMPLEMENTED:
            raise InvalidArgument(
                f"log opt '{key}' of the json-file driver is not supported by hafen"
            )
        if key not in JSON_FILE_OPTS:
            raise InvalidArgument(f"unknown log opt '{key}' for json-file log driver")
        if key == "max-size":
            if parse_size(value) <= 0:
                raise InvalidArgument("max-size must be a positive size")
        elif key == "max-file" and (not value.isdigit() or int(value) < 1):
            raise InvalidArgument("max-file cannot be less than 1")


def effective(
    driver: str, options: dict[str, str], default_driver: str, default_opts: dict[str, str]
) -> tuple[str, dict[str, str]]:
    """The driver and options a container runs with."""
    if driver == default_driver and not options:
        return default_driver, dict(default_opts)
    return driver, dict(options)


def rotation(options: dict[str, str]) -> tuple[int, int]:
    """(max size in bytes or 0, max files) for the shim."""
    size = parse_size(options["max-size"]) if options.get("max-size") else 0
    files = int(options.get("max-file") or 1)
    return size, files


__all__ = ["DRIVERS", "effective", "parse_size", "rotation", "validate"]
