"""``hafen build`` and ``hafen builder prune``: the context tar, the request, the live display.

The context directory is sent as a tar, as the docker CLI sends it: ``.dockerignore``
applied here (the Dockerfile and ``.dockerignore`` always go along), owners zeroed, a
Dockerfile from outside the context or from stdin added under a private name. ``PATH``
may be ``-``: stdin is then a context tar, or a lone Dockerfile.

The display is ``plain`` (every line as it comes) or ``tty`` (each step's header stays,
its output scrolls in a small window rewritten in place, then folds away when the step
is done); ``auto`` picks ``tty`` on a terminal.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hafen.cli import flags
from hafen.cli._common import CLIError, confirm, echo, get_client

_WINDOW = 6  # lines of a running step's output shown in tty mode


_BATCH = 1024 * 1024  # bytes per chunk of the request body


@dataclass
class _Member:
    """One member of the context tar: a file, directory, symlink or hard link ("f", "d",
    "l", "h") as the walk found it, or a file the CLI makes (``data``, no ``stat``)."""

    rel: str
    kind: str
    mode: int
    stat: os.stat_result | None
    path: str | None = None
    data: bytes | None = None
    linkname: str = ""

    @property
    def mtime(self) -> int:
        return int(self.stat.st_mtime) if self.stat is not None else 0

    def manifest_entry(self, racy_after_ns: int | None = None) -> list[Any]:
        """Its line of the context manifest (``hafen.build.contextsync.ManifestEntry``).

        A member changed at or after ``racy_after_ns`` is sent every time (inode -1) until
        it is older: a second write within the file system's timestamp granularity would
        leave every fact as it was (git calls such entries racily clean).
        """
        st = self.stat
        if st is None or self.data is not None:  # made here: always sent
            return [self.rel, self.kind, self.mode, len(self.data or b""), 0, 0, -1, ""]
        size = st.st_size if self.kind == "f" else 0
        racy = racy_after_ns is not None and max(st.st_mtime_ns, st.st_ctime_ns) >= racy_after_ns
        return [self.rel, self.kind, self.mode, size, st.st_mtime_ns, st.st_ctime_ns,
                -1 if racy else st.st_ino, self.linkname]  # fmt: skip


class _ContextStream:
    """The context tar, produced as the request body is sent (never spooled whole).

    Headers are written by ``hafen.store.ustar`` (``tarfile`` costs ~100 µs a member):
    owners zeroed and mtimes whole seconds, as the docker CLI sends them; hard links
    stay hard links. ``name`` is the Dockerfile name the daemon should read.
    """

    def __init__(self, root: Path | None, dockerfile: str | None,
                 dockerfile_text: str | None) -> None:  # fmt: skip
        from hafen.build.ignore import IgnoreRules

        self.root = root
        self.name = "Dockerfile"
        self.keep = {".dockerignore"}
        self.rules = IgnoreRules([])
        if root is not None:
            ignore_file = root / ".dockerignore"
            if ignore_file.is_file():
                self.rules = IgnoreRules.from_text(ignore_file.read_text())
            if dockerfile and dockerfile_text is None:
                resolved = (Path.cwd() / dockerfile).resolve()
                try:
                    self.name = str(resolved.relative_to(root.resolve()))
                    self.keep.add(self.name)
                except ValueError:
                    dockerfile_text = resolved.read_text()
            else:
                self.keep.add("Dockerfile")
        self.extra: bytes | None = None
        if dockerfile_text is not None:
            self.name = f".dockerfile.{os.urandom(10).hex()}"  # (secrets costs 4 ms to import)
            self.extra = dockerfile_text.encode()
        self.selected: set[int] | None = None  # members to send (None: all of them)
        self._members: list[_Member] | None = None

    @property
    def key(self) -> str:
        """This context directory's name for the daemon's context cache."""
        import hashlib

        assert self.root is not None
        where = f"{os.uname().nodename}\0{os.path.realpath(self.root)}"
        return hashlib.sha256(where.encode()).hexdigest()[:32]

    def members(self) -> list[_Member]:
        """What the tar holds, in order, from one walk (``lstat`` only: no file is read)."""
        if self._members is None:
            try:
                self._members = list(self._list())
            except OSError as e:
                raise CLIError(f"error checking context: {e}", 1) from None
        return self._members

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._chunks()
        except OSError as e:
            raise CLIError(f"error checking context: {e}", 1) from None

    def _list(self) -> Iterator[_Member]:
        links: dict[tuple[int, int], str] = {}
        ignore_sent = False
        if self.root is not None:
            for path, rel, st in self._walk(str(self.root), ""):
                mode = stat.S_IMODE(st.st_mode)
                if rel == ".dockerignore" and self.extra is not None and stat.S_ISREG(st.st_mode):
                    ignore = Path(path).read_bytes().rstrip(b"\n") + b"\n" + self.name.encode()
                    yield _Member(rel, "f", mode, st, data=ignore)
                    ignore_sent = True
                elif stat.S_ISREG(st.st_mode):
                    if st.st_nlink > 1:
                        first = links.setdefault((st.st_dev, st.st_ino), rel)
                        if first != rel:
                            yield _Member(rel, "h", mode, st, linkname=first)
                            continue
                    yield _Member(rel, "f", mode, st, path=path)
                elif stat.S_ISDIR(st.st_mode):
                    yield _Member(rel, "d", mode, st)
                elif stat.S_ISLNK(st.st_mode):
                    yield _Member(rel, "l", mode, st, linkname=os.readlink(path))
                # sockets, fifos, devices: nothing a build can use
        if self.extra is not None:
            yield _Member(self.name, "f", 0o600, None, data=self.extra)
            if not ignore_sent:  # as the docker CLI: COPY must not see the added Dockerfile
                yield _Member(".dockerignore", "f", 0o644, None, data=self.name.encode())

    def _chunks(self) -> Iterator[bytes]:
        from hafen.store import ustar

        buf = bytearray()
        selected = self.selected
        for i, m in enumerate(self.members()):
            if selected is not None and i not in selected:
                continue
            rel, mode, mtime = m.rel, m.mode, m.mtime
            if m.kind == "f" and m.path is None:
                data = m.data or b""
                buf += ustar.header(rel, mode=mode, size=len(data), mtime=mtime)
                buf += data + ustar.padding(len(data))
            elif m.kind == "f":
                assert m.stat is not None and m.path is not None
                size = m.stat.st_size  # the walk's lstat: no fstat per file
                fd = os.open(m.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
                try:
                    buf += ustar.header(rel, mode=mode, size=size, mtime=mtime)
                    left = size
                    while left > 0:
                        data = os.read(fd, min(left, _BATCH))
                        if not data:
                            raise CLIError(f"error checking context: {m.path} shrank while "
                                           "being read", 1)  # fmt: skip
                        buf += data
                        left -= len(data)
                        if len(buf) >= _BATCH:
                            yield bytes(buf)
                            buf.clear()
                finally:
                    os.close(fd)
                buf += ustar.padding(size)
            elif m.kind == "h":
                buf += ustar.header(rel, mode=mode, mtime=mtime, kind=ustar.LNKTYPE,
                                    linkname=m.linkname)  # fmt: skip
            elif m.kind == "d":
                buf += ustar.header(rel + "/", mode=mode, mtime=mtime, kind=ustar.DIRTYPE)
            else:
                buf += ustar.header(rel, mode=mode, mtime=mtime, kind=ustar.SYMTYPE,
                                    linkname=m.linkname)  # fmt: skip
            if len(buf) >= _BATCH:
                yield bytes(buf)
                buf.clear()
        buf += ustar.END
        yield bytes(buf)

    def _walk(self, directory: str, prefix: str) -> Iterator[tuple[str, str, os.stat_result]]:
        """(host path, context path, lstat) of what goes in, files of a directory first."""
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
        subdirs = []
        for entry in entries:
            rel = prefix + entry.name
            is_dir = entry.is_dir(follow_symlinks=False)
            if self.rules and self.rules.excluded(rel) and rel not in self.keep:
                if is_dir and self.rules.may_include_below(rel):
                    subdirs.append((entry, rel, False))
                continue
            if is_dir:
                subdirs.append((entry, rel, True))
            else:
                yield entry.path, rel, entry.stat(follow_symlinks=False)
        for entry, rel, included in subdirs:
            if included:
                yield entry.path, rel, entry.stat(follow_symlinks=False)
            yield from self._walk(entry.path, rel + "/")


def _sync_context(client: Any, stream: _ContextStream, headers: dict[str, str]) -> None:
    """Send only what the daemon's copy of this context lacks (hafen's context sync); a
    daemon without it (dockerd) gets the whole context."""
    import time

    from hafen import errors

    # what changed in the last two seconds is not trusted to its timestamps (FAT keeps
    # mtimes in 2 s steps; ext4 in clock ticks)
    racy_after = time.time_ns() - 2_000_000_000
    entries = [m.manifest_entry(racy_after) for m in stream.members()]
    try:
        answer = client.build_context_session(stream.key, entries)
    except errors.NotFound:
        return
    stream.selected = {int(i) for i in answer["Need"]}
    headers["X-Hafen-Context-Session"] = str(answer["Session"])


def _secrets_header(specs: tuple[str, ...]) -> str:
    """``--secret id=…,src=…|env=…`` → the header that carries them (base64 JSON)."""
    import base64

    found: dict[str, str] = {}
    for spec in specs:
        fields: dict[str, str] = {}
        for part in spec.split(","):
            key, sep, value = part.partition("=")
            if not sep:
                raise CLIError(f"invalid secret {spec!r}: expected id=ID[,src=PATH|,env=VAR]", 1)
            fields[key.strip().lower()] = value
        sid = fields.pop("id", "")
        kind = fields.pop("type", "")
        src = fields.pop("src", "") or fields.pop("source", "")
        env = fields.pop("env", "")
        if not sid or fields or kind not in ("", "file", "env") or (src and env):
            raise CLIError(f"invalid secret {spec!r}: expected id=ID[,src=PATH|,env=VAR]", 1)
        if kind == "env" and not env:
            env, src = src or sid, ""
        if not src and not env:
            env = sid if sid in os.environ else ""
            src = "" if env else sid
        if env:
            if env not in os.environ:
                raise CLIError(f"secret {sid}: environment variable {env} is not set", 1)
            data = os.environ[env].encode()
        else:
            try:
                data = Path(src).expanduser().read_bytes()
            except OSError as e:
                raise CLIError(f"secret {sid}: cannot read {src}: {e.strerror}", 1) from None
        if len(data) > 500 * 1024:
            raise CLIError(f"secret {sid} is larger than 500 KiB", 1)
        found[sid] = base64.b64encode(data).decode()
    return base64.b64encode(json.dumps(found).encode()).decode()


class BuildDisplay:
    """Shows the ``stream`` messages: plain, or a tty view with a rolling output window."""

    def __init__(self, mode: str, out: Any = None) -> None:
        self.out = out or sys.stdout
        self.tty = mode == "tty" or (mode == "auto" and self.out.isatty())
        self.window: list[str] = []
        self.shown = 0
        self.partial = ""

    def _clear_window(self) -> None:
        if self.shown:
            self.out.write(f"\x1b[{self.shown}A\x1b[J")
            self.shown = 0
        self.window = []

    def text(self, text: str) -> None:
        if not self.tty:
            self.out.write(text)
            self.out.flush()
            return
        self.partial += text
        *lines, self.partial = self.partial.split("\n")
        for line in lines:
            if line.startswith("Step ") or (line.startswith(" ---> ") and "Running in" not in line):
                self._clear_window()
                self.out.write(line + "\n")
            elif line.startswith(("Successfully ", "Removing intermediate", " ---> Running in")):
                if line.startswith("Successfully "):
                    self._clear_window()
                    self.out.write(line + "\n")
            else:
                self.window = [*self.window, line][-_WINDOW:]
                if self.shown:
                    self.out.write(f"\x1b[{self.shown}A\x1b[J")
                for shown in self.window:
                    self.out.write(f"\x1b[2m  {shown[:200]}\x1b[0m\n")
                self.shown = len(self.window)
        self.out.flush()

    def failed(self) -> None:
        """Leave the failing step's output on screen."""
        self.shown = 0
        if self.partial:
            self.out.write(self.partial + "\n")


@flags.command()
@flags.option("-t", "--tag", "tags", multiple=True, help="Name and optionally a tag (name:tag)")
@flags.option(
    "-f", "--file", "dockerfile", help="Name of the Dockerfile (default: PATH/Dockerfile)"
)
@flags.option("--build-arg", "build_args", multiple=True, help="Set build-time variables")
@flags.option("--target", default="", help="Set the target build stage to build")
@flags.option("--no-cache", is_flag=True, help="Do not use cache when building the image")
@flags.option("--pull", is_flag=True, help="Always attempt to pull a newer version of the image")
@flags.option("--label", "labels", multiple=True, help="Set metadata for an image")
@flags.option(
    "--cache-from", "cache_from", multiple=True, help="Images to consider as cache sources"
)
@flags.option("--network", default="", help="Networking mode for the RUN instructions")
@flags.option("--platform", default="", help="Set platform if server is multi-platform capable")
@flags.option("--progress", default="auto", type=flags.Choice(["auto", "plain", "tty"]),
              help="Type of progress output")  # fmt: skip
@flags.option("--iidfile", help="Write the image ID to the file")
@flags.option(
    "--secret",
    "secret_specs",
    multiple=True,
    help="Secret to expose to the build: id=mysecret[,src=/local/secret|,env=VAR]",
)
@flags.option(
    "--rm",
    "rm",
    is_flag=True,
    default=True,
    help="Remove intermediate containers after a successful build",
)
@flags.option("--force-rm", is_flag=True, help="Always remove intermediate containers")
@flags.option(
    "--add-host", "add_hosts", multiple=True, help="Add a custom host-to-IP mapping (host:ip)"
)
@flags.option("-m", "--memory", default="", help="Memory limit")
@flags.option(
    "--memory-swap",
    default="",
    help="Swap limit equal to memory plus swap: -1 to enable unlimited swap",
)
@flags.option("--shm-size", default="", help="Size of /dev/shm")
@flags.option("-c", "--cpu-shares", type=int, default=0, help="CPU shares (relative weight)")
@flags.option("--cpuset-cpus", default="", help="CPUs in which to allow execution (0-3, 0,1)")
@flags.option(
    "--cpu-period", type=int, default=0, help="Limit the CPU CFS (Completely Fair Scheduler) period"
)
@flags.option(
    "--cpu-quota", type=int, default=0, help="Limit the CPU CFS (Completely Fair Scheduler) quota"
)
@flags.option("-q", "--quiet", is_flag=True, help="Suppress the build output and print image ID")
@flags.argument("path")
@flags.pass_context
def build(
    ctx: flags.Context,
    tags: tuple[str, ...],
    dockerfile: str | None,
    build_args: tuple[str, ...],
    target: str,
    no_cache: bool,
    pull: bool,
    labels: tuple[str, ...],
    cache_from: tuple[str, ...],
    network: str,
    platform: str,
    progress: str,
    iidfile: str | None,
    secret_specs: tuple[str, ...],
    rm: bool,
    force_rm: bool,
    add_hosts: tuple[str, ...],
    memory: str,
    memory_swap: str,
    shm_size: str,
    cpu_shares: int,
    cpuset_cpus: str,
    cpu_period: int,
    cpu_quota: int,
    quiet: bool,
    path: str,
) -> None:
    """Build an image from a Dockerfile."""
    from hafen.cli.format import ram_in_bytes

    headers = {"X-Hafen-Build-Secrets": _secrets_header(secret_specs)} if secret_specs else {}
    args: dict[str, str | None] = {}
    for item in build_args:
        key, sep, value = item.partition("=")
        args[key] = value if sep else os.environ.get(key)
    label_map = {}
    for item in labels:
        key, _, value = item.partition("=")
        label_map[key] = value
    params: dict[str, Any] = {
        "t": tuple(tags) or None,
        "buildargs": json.dumps(args) if args else None,
        "labels": json.dumps(label_map) if label_map else None,
        "cachefrom": json.dumps(list(cache_from)) if cache_from else None,
        "target": target or None,
        "nocache": "1" if no_cache else None,
        "pull": "1" if pull else None,
        "q": "1" if quiet else None,
        "networkmode": network or None,
        "platform": platform or None,
        "rm": "1" if rm else "0",
        "forcerm": "1" if force_rm else None,
        "extrahosts": ",".join(add_hosts) or None,
        "memory": ram_in_bytes(memory) if memory else None,
        "memswap": (-1 if memory_swap == "-1" else ram_in_bytes(memory_swap))
        if memory_swap
        else None,
        "shmsize": ram_in_bytes(shm_size) if shm_size else None,
        "cpushares": cpu_shares or None,
        "cpusetcpus": cpuset_cpus or None,
        "cpuperiod": cpu_period or None,
        "cpuquota": cpu_quota or None,
    }
    body: Iterable[bytes]
    if path == "-":
        data = sys.stdin.buffer.read()
        if data[257:262] == b"ustar" or data[:2] == b"\x1f\x8b":
            body = iter([data])
            params["dockerfile"] = dockerfile or None
        else:
            stream = _ContextStream(None, None, data.decode())
            body, params["dockerfile"] = stream, stream.name
    else:
        root = Path(path)
        if not root.is_dir():
            raise CLIError(f'unable to prepare context: path "{path}" not found', 1)
        text = sys.stdin.read() if dockerfile == "-" else None
        if dockerfile and dockerfile != "-" and not Path(dockerfile).is_file():
            raise CLIError(f"unable to prepare context: the Dockerfile ({dockerfile}) "
                           "cannot be found", 1)  # fmt: skip
        stream = _ContextStream(root, None if dockerfile == "-" else dockerfile, text)
        body, params["dockerfile"] = stream, stream.name
    client = get_client(ctx)
    if isinstance(body, _ContextStream) and body.root is not None:
        _sync_context(client, body, headers)
    display = BuildDisplay(progress)
    image_id = ""
    for message in client.build(body, params, headers):
        if message.get("error") or message.get("errorDetail"):
            display.failed()
            detail = message.get("errorDetail") or {}
            code = detail.get("code") or 1
            raise CLIError(str(detail.get("message") or message.get("error")), int(code))
        aux = message.get("aux")
        if isinstance(aux, dict) and aux.get("ID"):
            image_id = str(aux["ID"])
            continue
        text = message.get("stream")
        if text and not quiet:
            display.text(str(text))
    if quiet:
        echo(image_id)
    if iidfile and image_id:
        Path(iidfile).write_text(image_id)


@flags.group()
def builder_group() -> None:
    """Manage builds"""


@builder_group.command("prune")
@flags.option("-a", "--all", "all_", is_flag=True, help="Remove all unused build cache")
@flags.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@flags.pass_context
def builder_prune(ctx: flags.Context, all_: bool, force: bool) -> None:
    """Remove build cache"""
    if not force and not confirm(
        "WARNING! This will remove all dangling build cache.\nAre you sure you want to continue?",
    ):
        return
    from hafen.cli.format import human_size

    result = get_client(ctx).prune_builder()
    deleted = result.get("CachesDeleted") or []
    if deleted:
        echo("Deleted build cache objects:")
        for item in deleted:
            echo(str(item).removeprefix("sha256:")[:25])
        echo()
    echo(f"Total reclaimed space: {human_size(int(result.get('SpaceReclaimed') or 0))}")
