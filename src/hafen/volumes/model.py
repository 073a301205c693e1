"""Volume and mount-point records: what the daemon stores (Docker's JSON lives in api/)."""

from __future__ import annotations

from dataclasses import dataclass, field

ANONYMOUS_LABEL = "com.docker.volume.anonymous"


@dataclass
class Volume:
    name: str
    driver: str
    mountpoint: str
    created_at: str  # RFC 3339
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS_LABEL in self.labels


@dataclass
class MountPoint:
    """One mount of a container, resolved at create time (Docker's ``MountPoint``).

    ``type`` is ``bind``, ``volume`` or ``tmpfs``. For volumes ``name`` is the volume and
    ``source`` is filled in when it is mounted; for binds ``source`` is the host path.
    """

    type: str
    destination: str
    source: str = ""
    name: str = ""
    driver: str = ""
    rw: bool = True
    mode: str = ""  # the mode text the user gave ("ro", "z", …), shown by inspect
    propagation: str = ""
    copy_up: bool = True  # volumes: fill an empty volume from the image (not with nocopy)
    create_source: bool = False  # binds from -v create a missing host path; --mount refuses
    tmpfs_options: list[str] = field(default_factory=list)
    volume_options: dict[str, str] = field(default_factory=dict)  # --mount volume-opt=
    volume_labels: dict[str, str] = field(default_factory=dict)
    anonymous: bool = False
