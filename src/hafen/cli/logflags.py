"""``--log-driver`` and ``--log-opt`` of run/create, mapped to ``HostConfig.LogConfig``."""

from __future__ import annotations

from hafen.cli import flags
from hafen.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def log_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = flags.option("--log-opt", "log_opts", multiple=True, help="Log driver options")(func)
    return flags.option("--log-driver", help="Logging driver for the container")(func)


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
