"""Image verbs: images, rmi, tag, ``image bootstrap`` and the ``image`` group of aliases."""

from __future__ import annotations

import sys
from typing import Any, BinaryIO

from hafen.cli import flags
from hafen.cli._common import CLIError, confirm, daemon_error_text, echo, get_client, write_out
from hafen.errors import HafenError


@flags.command()
@flags.option(
    "-a",
    "--all",
    "show_all",
    is_flag=True,
    help="Show all images (default hides intermediate images)",
)
@flags.option("-q", "--quiet", is_flag=True, help="Only show image IDs")
@flags.option("--digests", is_flag=True, help="Show digests")
@flags.option("--no-trunc", is_flag=True, help="Don't truncate output")
@flags.option(
    "-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided"
)
@flags.option("--format", "fmt", help="Format output using a custom template")
@flags.argument("reference", required=False)
@flags.pass_context
def images(
    ctx: flags.Context,
    show_all: bool,
    quiet: bool,
    digests: bool,
    no_trunc: bool,
    filters: tuple[str, ...],
    fmt: str | None,
    reference: str | None,
) -> None:
    """List images."""
    from hafen.cli.commands.container import _parse_filters
    from hafen.cli.template import TemplateError, render_rows
    from hafen.cli.views import (
        IMAGES_DEFAULT_FORMAT,
        IMAGES_DIGEST_FORMAT,
        IMAGES_HEADERS,
        image_rows,
    )

    parsed = _parse_filters(filters)
    if reference:
        parsed.setdefault("reference", []).append(reference)
    entries = get_client(ctx).images(all=show_all, digests=digests, filters=parsed or None)
    if quiet:
        fmt = "{{.ID}}"
    elif not fmt or fmt == "table":
        fmt = IMAGES_DIGEST_FORMAT if digests else IMAGES_DEFAULT_FORMAT
    rows = image_rows(entries, show_digests=digests, trunc=not no_trunc)
    try:
        write_out(render_rows(fmt, rows, IMAGES_HEADERS))
    except TemplateError as exc:
        raise CLIError(f"template parsing error: {exc}", 1)


@flags.command()
@flags.option("-f", "--force", is_flag=True, help="Force removal of the image")
@flags.option("--no-prune", is_flag=True, help="Do not delete untagged parents")
@flags.argument("names", nargs=-1, required=True)
@flags.pass_context
def rmi(ctx: flags.Context, force: bool, no_prune: bool, names: tuple[str, ...]) -> None:
    """Remove one or more images."""
    client = get_client(ctx)
    failures: list[str] = []
    for name in names:
        try:
            deleted = client.remove_image(name, force=force, noprune=no_prune)
        except HafenError as exc:
            failures.append(daemon_error_text(exc))
            continue
        for item in deleted:
            if item.get("Untagged"):
                echo(f"Untagged: {item['Untagged']}")
            if item.get("Deleted"):
                echo(f"Deleted: {item['Deleted']}")
    if failures:
        raise CLIError("\n".join(failures), 1)


@flags.command()
@flags.argument("source")
@flags.argument("target")
@flags.pass_context
def tag(ctx: flags.Context, source: str, target: str) -> None:
    """Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE."""
    from hafen.cli.runopts import split_repo_tag

    if "@" in target:
        raise CLIError("refusing to create a tag with a digest reference", 1)
    repo, tag_name = split_repo_tag(target)
    if not repo or repo != repo.lower():
        raise CLIError(f"invalid reference format: repository name ({repo}) must be lowercase", 1)
    get_client(ctx).tag(source, repo, tag_name or "latest")


@flags.command()
@flags.option("-t", "--tag", "tag_name", help="Name and optionally a tag in the 'name:tag' format")
@flags.option("-q", "--quiet", is_flag=True, help="Print only the image ID")
@flags.argument("image")
@flags.pass_context
def bootstrap(ctx: flags.Context, tag_name: str | None, quiet: bool, image: str) -> None:
    """Create a base image from the host (hafen extension; e.g. "busybox")."""
    client = get_client(ctx)
    target = tag_name or (image if ":" in image else f"{image}:latest")
    image_id = ""
    tty = sys.stdout.isatty()
    last_id: object = None
    open_line = False  # on a terminal the current line is left open for progress rewrites
    for message in client.post_stream("/images/bootstrap", {"image": image, "tag": target}):
        if message.get("error") or message.get("errorDetail"):
            if open_line:
                sys.stdout.write("\n")
            detail = message.get("errorDetail") or {}
            raise CLIError(str(detail.get("message") or message.get("error")), 1)
        aux = message.get("aux")
        if isinstance(aux, dict) and aux.get("ID"):
            image_id = str(aux["ID"])
            continue
        line = None if quiet else _message_line(message)
        if line is None:
            continue
        ident = message.get("id")
        if not tty:
            sys.stdout.write(line + "\n")
        elif open_line and ident and ident == last_id and message.get("progress"):
            sys.stdout.write("\r\x1b[2K" + line)
        else:
            sys.stdout.write(("\n" if open_line else "") + line)
            open_line = True
        last_id = ident
        sys.stdout.flush()
    if open_line:
        sys.stdout.write("\n")
    if image_id:
        echo(image_id)


def _message_line(message: dict[str, object]) -> str | None:
    """docker's jsonmessage text for one message (without the terminal's progress bar)."""
    if message.get("stream"):
        return str(message["stream"]).rstrip("\n")
    status = message.get("status")
    if status is None:
        return None
    text = str(status)
    if message.get("progress"):
        text += f" {message['progress']}"
    if message.get("id"):
        text = f"{message['id']}: {text}"
    return text


@flags.group()
def image_group() -> None:
    """Manage images."""


@flags.command("inspect")
@flags.option("-f", "--format", "fmt", help="Format output using a custom template")
@flags.argument("names", nargs=-1, required=True)
@flags.pass_context
def image_inspect(ctx: flags.Context, fmt: str | None, names: tuple[str, ...]) -> None:
    """Display detailed information on one or more images."""
    from hafen.cli.commands.system import inspect_objects

    inspect_objects(get_client(ctx), names, "image", fmt, False)


image_group.add_command(images, "ls")
image_group.add_command(images, "list")
image_group.add_command(rmi, "rm")
image_group.add_command(rmi, "remove")
image_group.add_command(tag)
image_group.add_command(image_inspect)
image_group.add_command(bootstrap)


def _registry_command(name: str) -> flags.Command:
    from hafen.cli.commands import registry

    command: flags.Command = getattr(registry, name)
    return command


for _verb in ("pull", "push"):
    image_group.add_command(_registry_command(_verb), _verb)

__all__ = ["bootstrap", "image_group", "images", "rmi", "tag"]


@flags.command()
@flags.option("-o", "--output", help="Write to a file, instead of STDOUT")
@flags.argument("names", nargs=-1, required=True)
@flags.pass_context
def save(ctx: flags.Context, output: str | None, names: tuple[str, ...]) -> None:
    """Save one or more images to a tar archive (streamed to STDOUT by default)."""
    import os

    if not output and sys.stdout.isatty():
        raise CLIError("Cowardly refusing to save to a terminal. Use the -o flag or redirect", 1)
    stream = get_client(ctx).save_images(list(names))
    target = output + ".tmp" if output else None
    try:
        with stream, (open(target, "wb") if target else os.fdopen(
            os.dup(sys.stdout.fileno()), "wb"
        )) as out:  # fmt: skip
            while chunk := stream.read(1024 * 1024):
                out.write(chunk)
        if target and output:
            os.replace(target, output)
    finally:
        if target and os.path.exists(target):
            os.unlink(target)


@flags.command()
@flags.option("-i", "--input", "input_path", help="Read from tar archive file, instead of STDIN")
@flags.option("-q", "--quiet", is_flag=True, help="Suppress the load output")
@flags.pass_context
def load(ctx: flags.Context, input_path: str | None, quiet: bool) -> None:
    """Load an image from a tar archive or STDIN."""
    source: BinaryIO
    if input_path:
        try:
            source = open(input_path, "rb")  # noqa: SIM115 (closed below)
        except OSError as e:
            raise CLIError(f"open {input_path}: {e.strerror}", 1)
    else:
        if sys.stdin.isatty():
            raise CLIError("requested load from stdin, but stdin is empty (use -i or redirect)", 1)
        source = sys.stdin.buffer
    with source:
        messages = get_client(ctx).load_images(source, quiet)
    for message in messages:
        if message.get("error") or message.get("errorDetail"):
            detail = message.get("errorDetail") or {}
            raise CLIError(str(detail.get("message") or message.get("error")), 1)
        if not quiet and message.get("stream"):
            echo(str(message["stream"]), nl=False)


image_group.add_command(save)
image_group.add_command(load)


HISTORY_FORMAT = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
HISTORY_HEADERS = {
    "ID": "IMAGE",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "CreatedBy": "CREATED BY",
    "Size": "SIZE",
    "Comment": "COMMENT",
}


class HistoryRow:
    """One ``docker history`` line, with docker's field names for ``--format``."""

    def __init__(self, entry: dict[str, Any], trunc: bool, human: bool) -> None:
        self._entry = entry
        self._trunc = trunc
        self._human = human

    @property
    def ID(self) -> str:
        ident = str(self._entry.get("Id") or "")
        if self._trunc and ident.startswith("sha256:"):
            return ident[7:19]
        return ident

    @property
    def CreatedSince(self) -> str:
        from hafen.cli.format import time_ago

        created = float(self._entry.get("Created") or 0)
        if not self._human:
            return self.CreatedAt
        return time_ago(created) if created else "N/A"

    @property
    def CreatedAt(self) -> str:
        from datetime import UTC, datetime

        created = float(self._entry.get("Created") or 0)
        return datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    @property
    def CreatedBy(self) -> str:
        from hafen.cli.format import ellipsis

        text = str(self._entry.get("CreatedBy") or "").replace("\t", " ")
        return ellipsis(text, 45) if self._trunc else text

    @property
    def Size(self) -> str:
        from hafen.cli.format import human_size

        size = int(self._entry.get("Size") or 0)
        return human_size(size) if self._human else str(size)

    @property
    def Comment(self) -> str:
        return str(self._entry.get("Comment") or "")


@flags.command()
@flags.option(
    "-H",
    "--human",
    is_flag=True,
    default=True,
    help="Print sizes and dates in human readable format",
)
@flags.option("--no-trunc", is_flag=True, help="Don't truncate output")
@flags.option("-q", "--quiet", is_flag=True, help="Only show image IDs")
@flags.option("--format", "fmt", help="Format output using a custom template")
@flags.argument("name")
@flags.pass_context
def history(
    ctx: flags.Context, human: bool, no_trunc: bool, quiet: bool, fmt: str | None, name: str
) -> None:
    """Show the history of an image."""
    from hafen.cli.template import TemplateError, render_rows

    entries = get_client(ctx).image_history(name)
    rows = [HistoryRow(e, not no_trunc, human) for e in entries]
    if quiet:
        fmt = "{{.ID}}"
    try:
        write_out(render_rows(fmt or HISTORY_FORMAT, rows, HISTORY_HEADERS))
    except TemplateError as exc:
        raise CLIError(f"template parsing error: {exc}", 1)


@flags.command("prune")
@flags.option(
    "-a",
    "--all",
    "all_images",
    is_flag=True,
    help="Remove all unused images, not just dangling ones",
)
@flags.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@flags.option(
    "--filter", "filters", multiple=True, help='Provide filter values (e.g. "until=<timestamp>")'
)
@flags.pass_context
def image_prune(
    ctx: flags.Context, all_images: bool, force: bool, filters: tuple[str, ...]
) -> None:
    """Remove unused images."""
    from hafen.cli.commands.container import _parse_filters
    from hafen.cli.format import human_size

    if not force:
        what = (
            "all images without at least one container associated to them"
            if all_images
            else "all dangling images"
        )
        echo(f"WARNING! This will remove {what}.")
        if not confirm("Are you sure you want to continue?"):
            return
    parsed = _parse_filters(filters)
    if all_images:
        parsed["dangling"] = ["false"]
    report = get_client(ctx).prune_images(parsed)
    deleted = report.get("ImagesDeleted") or []
    if deleted:
        echo("Deleted Images:")
        for item in deleted:
            for key in ("Untagged", "Deleted"):
                if item.get(key):
                    echo(f"{key.lower()}: {item[key]}")
        echo()
    echo(f"Total reclaimed space: {human_size(int(report.get('SpaceReclaimed') or 0))}")


image_group.add_command(history)
image_group.add_command(image_prune)


@flags.command()
@flags.option(
    "-a", "--author", default="", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")'
)
@flags.option(
    "-c",
    "--change",
    "changes",
    multiple=True,
    help="Apply Dockerfile instruction to the created image",
)
@flags.option("-m", "--message", default="", help="Commit message")
@flags.option("-p", "--pause", is_flag=True, default=True, help="Pause container during commit")
@flags.argument("container")
@flags.argument("repository", required=False, default="")
@flags.pass_context
def commit(
    ctx: flags.Context,
    author: str,
    changes: tuple[str, ...],
    message: str,
    pause: bool,
    container: str,
    repository: str,
) -> None:
    """Create a new image from a container's changes."""
    from hafen.cli.runopts import split_repo_tag

    repo, tag_name = split_repo_tag(repository) if repository else ("", "")
    params = {
        "container": container, "repo": repo or None, "tag": tag_name or None,
        "author": author or None, "comment": message or None, "pause": pause,
        "changes": tuple(changes) or None,
    }  # fmt: skip
    result = get_client(ctx).commit(params)
    echo(str(result.get("Id", "")))


@flags.command()
@flags.argument("container")
@flags.pass_context
def diff(ctx: flags.Context, container: str) -> None:
    """Inspect changes to files or directories on a container's filesystem."""
    kinds = {0: "C", 1: "A", 2: "D"}
    for change in get_client(ctx).container_changes(container) or []:
        echo(f"{kinds.get(int(change.get('Kind', 0)), '?')} {change.get('Path')}")


@flags.command("import")
@flags.option(
    "-c",
    "--change",
    "changes",
    multiple=True,
    help="Apply Dockerfile instruction to the created image",
)
@flags.option("-m", "--message", default="", help="Set commit message for imported image")
@flags.option("--platform", default="", help="Set platform if server is multi-platform capable")
@flags.argument("source")
@flags.argument("repository", required=False, default="")
@flags.pass_context
def import_(
    ctx: flags.Context,
    changes: tuple[str, ...],
    message: str,
    platform: str,
    source: str,
    repository: str,
) -> None:
    """Import the contents from a tarball (a file, a URL, or - for STDIN) to create an image."""
    from hafen.cli.runopts import split_repo_tag

    repo, tag_name = split_repo_tag(repository) if repository else ("", "")
    params = {
        "fromSrc": "-", "repo": repo or None, "tag": tag_name or None,
        "message": message or None, "changes": tuple(changes) or None,
    }  # fmt: skip
    body: BinaryIO | None
    if source.startswith(("http://", "https://")):
        params["fromSrc"], body = source, None  # the daemon downloads it
    elif source == "-":
        body = sys.stdin.buffer
    else:
        try:
            body = open(source, "rb")  # noqa: SIM115 (closed below)
        except OSError as e:
            raise CLIError(f"open {source}: {e.strerror}", 1)
    if body is None:
        messages = list(get_client(ctx).post_stream("/images/create", params))
    else:
        with body:
            messages = list(get_client(ctx).post_stream("/images/create", params, body))
    for message_ in messages:
        if message_.get("error") or message_.get("errorDetail"):
            detail = message_.get("errorDetail") or {}
            raise CLIError(str(detail.get("message") or message_.get("error")), 1)
        if message_.get("status"):
            echo(str(message_["status"]))


image_group.add_command(import_, "import")


@flags.command()
@flags.option("-o", "--output", help="Write to a file, instead of STDOUT")
@flags.argument("container")
@flags.pass_context
def export(ctx: flags.Context, output: str | None, container: str) -> None:
    """Export a container's filesystem as a tar archive."""
    import os

    if not output and sys.stdout.isatty():
        raise CLIError("Cowardly refusing to save to a terminal. Use the -o flag or redirect", 1)
    stream = get_client(ctx).export_container(container)
    target = output + ".tmp" if output else None
    try:
        with stream, (open(target, "wb") if target else os.fdopen(
            os.dup(sys.stdout.fileno()), "wb"
        )) as out:  # fmt: skip
            while chunk := stream.read(1024 * 1024):
                out.write(chunk)
        if target and output:
            os.replace(target, output)
    finally:
        if target and os.path.exists(target):
            os.unlink(target)
