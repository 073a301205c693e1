"""``--log-driver`` and ``--log-opt`` of run/create, mapped to ``HostConfig.LogConfig``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from hafen.errors import InvalidArgument


def log_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--log-opt", "log_opts", multiple=True, help="Log driver options")(func)
    return click.option("--log-driver", help="Logging driver for the container")(func)


def log_config_from_flags(params: dict[str, Any]) -> dict[str, Any] | None:
    """``{"Type": ..., "Config": {...}}``, or None when neither flag was given."""
    driver = params.get("log_driver") or ""
    config: dict[str, str] = {}
    for item in params.get("log_opts") or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"invalid log opt '{item}': expected key=value")
        config[key] = value
    if not driver and not config:
        return None
    return {"Type": driver, "Config": config}
