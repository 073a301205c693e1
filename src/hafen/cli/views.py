"""Row contexts for ``ps`` and ``images``: the fields docker's ``--format`` templates see.

Owns how one API list entry turns into docker's columns (CONTAINER ID, IMAGE,
COMMAND, CREATED, STATUS, PORTS, NAMES / REPOSITORY, TAG, IMAGE ID, CREATED, SIZE),
with docker's truncation rules, plus the default table formats and header titles.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from hafen.cli.format import ellipsis, go_time_string, human_size, time_ago, truncate_id

PS_DEFAULT_FORMAT = (
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
)
PS_HEADERS = {
    "ID": "CONTAINER ID",
    "Image": "IMAGE",
    "Command": "COMMAND",
    "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED",
    "Ports": "PORTS",
    "State": "STATE",
    "Status": "STATUS",
    "Size": "SIZE",
    "Names": "NAMES",
    "Labels": "LABELS",
    "Label": "LABEL",
    "Mounts": "MOUNTS",
    "Networks": "NETWORKS",
    "LocalVolumes": "LOCAL VOLUMES",
}

IMAGES_DEFAULT_FORMAT = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
IMAGES_DIGEST_FORMAT = (
    "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
)
IMAGES_HEADERS = {
    "ID": "IMAGE ID",
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "Digest": "DIGEST",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "Size": "SIZE",
    "Containers": "CONTAINERS",
    "SharedSize": "SHARED SIZE",
    "UniqueSize": "UNIQUE SIZE",
    "VirtualSize": "VIRTUAL SIZE",
}


def familiar_name(name: str) -> str:
    """Drop docker.io's implied prefixes: ``docker.io/library/busybox`` -> ``busybox``."""
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/"):
        if name.startswith(prefix):
            rest = name[len(prefix) :]
            # "docker.io/foo" (one component) means library/foo only via the library prefix.
            return rest
    return name


def display_ports(ports: list[Mapping[str, Any]] | None) -> str:
    """docker's ``DisplayablePorts``: "0.0.0.0:8080->80/tcp, 443/tcp", ranges collapsed."""
    if not ports:
        return ""
    groups: dict[str, list[tuple[int, int]]] = {}
    order: list[str] = []
    for port in ports:
        proto = port.get("Type") or "tcp"
        private = int(port.get("PrivatePort") or 0)
        public = int(port.get("PublicPort") or 0)
        ip = port.get("IP") or ""
        if public:
            host = f"[{ip}]" if ":" in ip else ip
            key = f"{host}:{{}}->{{}}/{proto}"
            # Consecutive ports collapse only when host and container ports move together.
            group_key = f"{key}|{public - private}"
        else:
            key = f"{{}}/{proto}"
            group_key = key
        if group_key not in groups:
            groups[group_key] = []
            order.append(group_key)
        groups[group_key].append((private, public))
    parts: list[tuple[int, str]] = []
    for group_key in order:
        template = group_key.split("|")[0]
        entries = sorted(set(groups[group_key]))
        runs: list[list[tuple[int, int]]] = []
        for entry in entries:
            if runs and entry[0] == runs[-1][-1][0] + 1:
                runs[-1].append(entry)
            else:
                runs.append([entry])
        for run in runs:
            first, last = run[0], run[-1]
            priv = str(first[0]) if first == last else f"{first[0]}-{last[0]}"
            if first[1]:
                pub = str(first[1]) if first == last else f"{first[1]}-{last[1]}"
                parts.append((first[0], template.format(pub, priv)))
            else:
                parts.append((first[0], template.format(priv)))
    parts.sort(key=lambda p: p[0])
    return ", ".join(text for _port, text in parts)


class ContainerRow:
    """One ``GET /containers/json`` entry as docker's ps formatter shows it."""

    def __init__(
        self, data: Mapping[str, Any], trunc: bool = True, now: float | None = None
    ) -> None:
        self._c = data
        self._trunc = trunc
        self._now = time.time() if now is None else now

    @property
    def ID(self) -> str:
        ident = str(self._c.get("Id", ""))
        return truncate_id(ident) if self._trunc else ident

    @property
    def Image(self) -> str:
        image = str(self._c.get("Image") or "")
        if not image:
            return "<no image>"
        if self._trunc:
            image_id = str(self._c.get("ImageID") or "")
            if image_id and truncate_id(image_id) == truncate_id(image):
                return truncate_id(image)
            # Drop the digest of name@digest / name:tag@digest references.
            if "@" in image:
                image = image.split("@", 1)[0]
            return familiar_name(image)
        return image

    @property
    def Command(self) -> str:
        command = str(self._c.get("Command") or "")
        if self._trunc:
            command = ellipsis(command, 20)
        return _go_quote(command)

    @property
    def CreatedAt(self) -> str:
        return go_time_string(float(self._c.get("Created") or 0))

    @property
    def RunningFor(self) -> str:
        return time_ago(float(self._c.get("Created") or 0), self._now)

    @property
    def Ports(self) -> str:
        return display_ports(self._c.get("Ports"))

    @property
    def State(self) -> str:
        return str(self._c.get("State") or "")

    @property
    def Status(self) -> str:
        return str(self._c.get("Status") or self._c.get("State") or "")

    @property
    def Size(self) -> str:
        rw = self._c.get("SizeRw")
        root = self._c.get("SizeRootFs")
        if rw is None and root is None:
            return "0B"
        text = human_size(float(rw or 0))
        if root:
            text += f" (virtual {human_size(float(root))})"
        return text

    @property
    def Names(self) -> str:
        names = []
        for name in self._c.get("Names") or []:
            stripped = str(name).lstrip("/")
            # Truncated output hides link aliases ("/other/alias").
            if self._trunc and "/" in stripped:
                continue
            names.append(stripped)
        return ",".join(names)

    @property
    def Labels(self) -> str:
        labels = self._c.get("Labels") or {}
        return ",".join(f"{k}={v}" for k, v in labels.items())

    def Label(self, name: str) -> str:
        labels = self._c.get("Labels") or {}
        return str(labels.get(name, ""))

    @property
    def Mounts(self) -> str:
        names = []
        for mount in self._c.get("Mounts") or []:
            name = str(mount.get("Name") or mount.get("Source") or "")
            if self._trunc:
                name = ellipsis(name, 15)
            names.append(name)
        return ",".join(names)

    @property
    def LocalVolumes(self) -> str:
        count = sum(1 for m in self._c.get("Mounts") or [] if m.get("Driver") == "local")
        return str(count)

    @property
    def Networks(self) -> str:
        networks = ((self._c.get("NetworkSettings") or {}).get("Networks")) or {}
        return ",".join(sorted(networks))

    def __template_json__(self) -> dict[str, str]:
        return {
            "Command": self.Command,
            "CreatedAt": self.CreatedAt,
            "ID": self.ID,
            "Image": self.Image,
            "Labels": self.Labels,
            "LocalVolumes": self.LocalVolumes,
            "Mounts": self.Mounts,
            "Names": self.Names,
            "Networks": self.Networks,
            "Ports": self.Ports,
            "RunningFor": self.RunningFor,
            "Size": self.Size,
            "State": self.State,
            "Status": self.Status,
        }


def _go_quote(text: str) -> str:
    """Go's ``strconv.Quote`` for the printable text a command usually is."""
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


class ImageRow:
    """One row of ``images``: an image under one of its repository names."""

    def __init__(
        self,
        data: Mapping[str, Any],
        repo: str,
        tag: str,
        digest: str,
        trunc: bool = True,
        now: float | None = None,
    ) -> None:
        self._i = data
        self.Repository = repo
        self.Tag = tag
        self.Digest = digest
        self._trunc = trunc
        self._now = time.time() if now is None else now

    @property
    def ID(self) -> str:
        ident = str(self._i.get("Id", ""))
        return truncate_id(ident) if self._trunc else ident

    @property
    def CreatedSince(self) -> str:
        created = self._i.get("Created")
        if not created:
            return "N/A"
        return time_ago(float(created), self._now)

    @property
    def CreatedAt(self) -> str:
        return go_time_string(float(self._i.get("Created") or 0))

    @property
    def Size(self) -> str:
        return human_size(float(self._i.get("Size") or 0))

    @property
    def VirtualSize(self) -> str:
        return human_size(float(self._i.get("VirtualSize") or self._i.get("Size") or 0))

    @property
    def SharedSize(self) -> str:
        shared = self._i.get("SharedSize", -1)
        return "N/A" if shared is None or shared < 0 else human_size(float(shared))

    @property
    def UniqueSize(self) -> str:
        shared = self._i.get("SharedSize", -1)
        if shared is None or shared < 0:
            return "N/A"
        return human_size(float((self._i.get("Size") or 0) - shared))

    @property
    def Containers(self) -> str:
        count = self._i.get("Containers", -1)
        return "N/A" if count is None or count < 0 else str(count)

    def __template_json__(self) -> dict[str, str]:
        return {
            "Containers": self.Containers,
            "CreatedAt": self.CreatedAt,
            "CreatedSince": self.CreatedSince,
            "Digest": self.Digest,
            "ID": self.ID,
            "Repository": self.Repository,
            "SharedSize": self.SharedSize,
            "Size": self.Size,
            "Tag": self.Tag,
            "UniqueSize": self.UniqueSize,
            "VirtualSize": self.VirtualSize,
        }


def _is_dangling(image: Mapping[str, Any]) -> bool:
    tags = image.get("RepoTags") or []
    digests = image.get("RepoDigests") or []
    if not tags and not digests:
        return True
    return tags == ["<none>:<none>"] and digests in ([], ["<none>@<none>"])


def image_rows(
    images: Sequence[Mapping[str, Any]],
    show_digests: bool = False,
    trunc: bool = True,
    now: float | None = None,
) -> list[ImageRow]:
    """docker's ``imageFormatTaggedAndDigest``: one row per repository tag, digests
    under their tags when ``--digests``, leftover digest-only names as ``<none>`` tags."""
    rows: list[ImageRow] = []
    ordered = sorted(images, key=lambda i: -(i.get("Created") or 0))
    for image in ordered:
        if _is_dangling(image):
            rows.append(ImageRow(image, "<none>", "<none>", "<none>", trunc, now))
            continue
        repo_tags: dict[str, list[str]] = {}
        repo_digests: dict[str, list[str]] = {}
        for ref in image.get("RepoTags") or []:
            if ref == "<none>:<none>":
                continue
            head, sep, last = ref.rpartition("/")
            if ":" not in last:
                continue
            name, tag = last.rsplit(":", 1)
            repo_tags.setdefault(familiar_name(head + sep + name), []).append(tag)
        for ref in image.get("RepoDigests") or []:
            if "@" not in ref or ref == "<none>@<none>":
                continue
            name, digest = ref.split("@", 1)
            repo_digests.setdefault(familiar_name(name), []).append(digest)
        for repo, tags in repo_tags.items():
            digests = repo_digests.pop(repo, [])
            if not show_digests:
                digests = []
            for tag in tags:
                if not digests:
                    rows.append(ImageRow(image, repo, tag, "<none>", trunc, now))
                for digest in digests:
                    rows.append(ImageRow(image, repo, tag, digest, trunc, now))
        for repo, digests in repo_digests.items():
            if show_digests:
                for digest in digests:
                    rows.append(ImageRow(image, repo, "<none>", digest, trunc, now))
            else:
                rows.append(ImageRow(image, repo, "<none>", "", trunc, now))
    return rows
