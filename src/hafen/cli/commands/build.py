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

import io
import json
import os
import secrets
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import IO, Any

import click

from hafen.cli._common import CLIError, get_client

_CTX = {"help_option_names": ["--help"], "max_content_width": 120}
_WINDOW = 6  # lines of a running step's output shown in tty mode


def _context_tar(root: Path | None, dockerfile: str | None, dockerfile_text: str | None,
                 out: IO[bytes]) -> str:  # fmt: skip
    """Write the context tar to ``out``; the Dockerfile name the daemon should read."""
    from hafen.build.ignore import IgnoreRules

    name = "Dockerfile"
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:

        def add(path: Path, arcname: str) -> None:
            info = archive.gettarinfo(str(path), arcname=arcname)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isreg():
                with open(path, "rb") as f:
                    archive.addfile(info, f)
            elif info.isdir() or info.issym() or info.islnk() or info.isfifo():
                archive.addfile(info)

        if root is not None:
            ignore_file = root / ".dockerignore"
            rules = (
                IgnoreRules.from_text(ignore_file.read_text())
                if ignore_file.is_file()
                else (IgnoreRules([]))
            )
            keep = {".dockerignore"}
            if dockerfile and dockerfile_text is None:
                resolved = (Path.cwd() / dockerfile).resolve()
                try:
                    name = str(resolved.relative_to(root.resolve()))
                    keep.add(name)
                except ValueError:
                    dockerfile_text = resolved.read_text()
            else:
                keep.add("Dockerfile")
            for dirpath, dirnames, filenames in os.walk(root):
                rel_dir = os.path.relpath(dirpath, root)
                rel_dir = "" if rel_dir == "." else rel_dir + "/"
                dirnames.sort()
                for entry in sorted(filenames) + [d for d in dirnames]:
                    rel = rel_dir + entry
                    if rules.excluded(rel) and rel not in keep:
                        if entry in dirnames and not rules.may_include_below(rel):
                            dirnames.remove(entry)
                        continue
                    add(Path(dirpath) / entry, rel)
        if dockerfile_text is not None:
            name = f".dockerfile.{secrets.token_hex(10)}"
            data = dockerfile_text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o600
            archive.addfile(info, io.BytesIO(data))
    return name


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


@click.command(context_settings=_CTX)
@click.option("-t", "--tag", "tags", multiple=True, help="Name and optionally a tag (name:tag)")
@click.option(
    "-f", "--file", "dockerfile", help="Name of the Dockerfile (default: PATH/Dockerfile)"
)
@click.option("--build-arg", "build_args", multiple=True, help="Set build-time variables")
@click.option("--target", default="", help="Set the target build stage to build")
@click.option("--no-cache", is_flag=True, help="Do not use cache when building the image")
@click.option("--pull", is_flag=True, help="Always attempt to pull a newer version of the image")
@click.option("--label", "labels", multiple=True, help="Set metadata for an image")
@click.option(
    "--cache-from", "cache_from", multiple=True, help="Images to consider as cache sources"
)
@click.option("--network", default="", help="Networking mode for the RUN instructions")
@click.option("--platform", default="", help="Set platform if server is multi-platform capable")
@click.option("--progress", default="auto", type=click.Choice(["auto", "plain", "tty"]),
              help="Type of progress output")  # fmt: skip
@click.option("--iidfile", help="Write the image ID to the file")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the build output and print image ID")
@click.argument("path")
@click.pass_context
def build(
    ctx: click.Context,
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
    quiet: bool,
    path: str,
) -> None:
    """Build an image from a Dockerfile."""
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
        "rm": "1",
    }
    with tempfile.TemporaryFile() as body:
        if path == "-":
            data = sys.stdin.buffer.read()
            if data[257:262] == b"ustar" or data[:2] == b"\x1f\x8b":
                body.write(data)
                params["dockerfile"] = dockerfile or None
            else:
                params["dockerfile"] = _context_tar(None, None, data.decode(), body)
        else:
            root = Path(path)
            if not root.is_dir():
                raise CLIError(f'unable to prepare context: path "{path}" not found', 1)
            text = sys.stdin.read() if dockerfile == "-" else None
            if dockerfile and dockerfile != "-" and not Path(dockerfile).is_file():
                raise CLIError(f"unable to prepare context: the Dockerfile ({dockerfile}) "
                               "cannot be found", 1)  # fmt: skip
            params["dockerfile"] = _context_tar(root, None if dockerfile == "-" else dockerfile,
                                                text, body)  # fmt: skip
        body.seek(0)
        display = BuildDisplay(progress)
        image_id = ""
        for message in get_client(ctx).build(body, params):
            if message.get("error") or message.get("errorDetail"):
                display.failed()
                detail = message.get("errorDetail") or {}
                code = detail.get("code") or 1
                raise CLIError(str(detail.get("message") or message.get("error")), int(code))
            aux = message.get("aux")
            if isinstance(aux, dict) and aux.get("ID"):
                image_id = str(aux["ID"])
                continue
            stream = message.get("stream")
            if stream and not quiet:
                display.text(str(stream))
    if quiet:
        click.echo(image_id)
    if iidfile and image_id:
        Path(iidfile).write_text(image_id)


@click.group(context_settings=_CTX)
def builder_group() -> None:
    """Manage builds"""


@builder_group.command("prune", context_settings=_CTX)
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused build cache")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.pass_context
def builder_prune(ctx: click.Context, all_: bool, force: bool) -> None:
    """Remove build cache"""
    if not force and not click.confirm(
        "WARNING! This will remove all dangling build cache.\nAre you sure you want to continue?",
        default=False,
    ):
        return
    from hafen.cli.format import human_size

    result = get_client(ctx).prune_builder()
    deleted = result.get("CachesDeleted") or []
    if deleted:
        click.echo("Deleted build cache objects:")
        for item in deleted:
            click.echo(str(item).removeprefix("sha256:")[:25])
        click.echo()
    click.echo(f"Total reclaimed space: {human_size(int(result.get('SpaceReclaimed') or 0))}")
