"""The ``local`` volume driver: a directory under ``<data-root>/volumes/<name>/_data``.

Without options the directory itself is the volume. With ``type``/``device``/``o`` (as
Docker's local driver) the directory is a mountpoint: ``mount -t <type> -o <o> <device>``
runs when the first container using the volume starts and is undone when the last one
stops. ``type=none,o=bind,device=/path`` makes a named volume of a host directory.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

from hafen.errors import Conflict, InvalidArgument, RuntimeFailure
from hafen.store._mount import is_mount_point

VALID_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_OPTION_KEYS = ("type", "device", "o")


class LocalDriver:
    name = "local"

    def __init__(self, root: Path, owner: tuple[int, int] | None = None) -> None:
        self.root = root
        # (uid, gid) that owns each new volume's _data: the remapped root under
        # userns-remap (as dockerd's local driver), else None (root).
        self.owner = owner
        root.mkdir(parents=True, exist_ok=True)
        self._refs: dict[str, int] = {}
        self._lock = threading.Lock()

    def _data(self, name: str) -> Path:
        return self.root / name / "_data"

    def validate(self, options: dict[str, str]) -> None:
        for key in options:
            if key not in _OPTION_KEYS:
                raise InvalidArgument(
                    f"invalid option key: {key!r} (the local driver accepts type, device, o)"
                )
        if options and not options.get("type"):
            raise InvalidArgument("the local driver needs option type= when device or o is given")
        kind = options.get("type", "")
        if kind and kind not in ("tmpfs",) and not options.get("device"):
            raise InvalidArgument(f"the local driver needs option device= for type={kind}")
        if "bind" in options.get("o", "").split(","):
            device = options.get("device", "")
            if not device.startswith("/") or not os.path.isdir(device):
                raise InvalidArgument(
                    f"invalid bind volume: device {device!r} must be an existing absolute directory"
                )

    def create(self, name: str, options: dict[str, str]) -> str:
        if not VALID_NAME.match(name):
            raise InvalidArgument(
                f'"{name}" includes invalid characters for a local volume name, '
                "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed. If you intended to pass a host "
                "directory, use absolute path"
            )
        data = self._data(name)
        fresh = not data.exists()
        data.mkdir(parents=True, exist_ok=True)
        os.chmod(data.parent, 0o701)
        if fresh and self.owner is not None:
            os.chown(data, *self.owner)
        return str(data)

    def mount(self, name: str, options: dict[str, str]) -> str:
        data = self._data(name)
        if not options.get("type"):
            return str(data)
        with self._lock:
            count = self._refs.get(name, 0)
            if count == 0 and not is_mount_point(data):
                data.mkdir(parents=True, exist_ok=True)
                cmd = ["mount", "-t", options["type"]]
                if options.get("o"):
                    cmd += ["-o", options["o"]]
                cmd += [options.get("device") or options["type"], str(data)]
                result = subprocess.run(cmd, capture_output=True, text=True)
                if result.returncode != 0:
                    raise RuntimeFailure(
                        f"error while mounting volume {name!r}: "
                        f"{result.stderr.strip() or 'mount failed'}"
                    )
            self._refs[name] = count + 1
        return str(data)

    def unmount(self, name: str, options: dict[str, str]) -> None:
        if not options.get("type"):
            return
        with self._lock:
            count = self._refs.get(name, 1) - 1
            if count > 0:
                self._refs[name] = count
                return
            self._refs.pop(name, None)
            data = self._data(name)
            if is_mount_point(data):
                subprocess.run(["umount", str(data)], capture_output=True)

    def remove(self, name: str, options: dict[str, str]) -> None:
        data = self._data(name)
        if is_mount_point(data):
            if self._refs.get(name):
                raise Conflict(f"remove {name}: volume is mounted")
            subprocess.run(["umount", str(data)], capture_output=True)
        if is_mount_point(data):
            raise RuntimeFailure(f"remove {name}: cannot unmount {data}")
        shutil.rmtree(self.root / name, ignore_errors=True)

    def size(self, name: str) -> int:
        total = 0
        for dirpath, _dirs, files in os.walk(self._data(name)):
            for f in files:
                try:
                    total += os.lstat(os.path.join(dirpath, f)).st_size
                except OSError:
                    pass
        return total
