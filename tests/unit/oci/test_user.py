"""User resolution against the image's own /etc/passwd and /etc/group."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hafen.errors import InvalidArgument
from hafen.oci.user import resolve_group, resolve_user


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
        "app:x:1000:1000::/srv/app:/bin/sh\n"
    )
    (etc / "group").write_text("root:x:0:\nnogroup:x:65534:\napp:x:1000:\nstaff:x:50:app\n")
    return tmp_path


def test_default_is_root(rootfs: Path) -> None:
    user = resolve_user(rootfs, "")
    assert (user.uid, user.gid, user.home) == (0, 0, "/root")


def test_name_resolves_uid_gid_home_and_supplementary_groups(rootfs: Path) -> None:
    user = resolve_user(rootfs, "app")
    assert (user.uid, user.gid, user.home, user.additional_gids) == (1000, 1000, "/srv/app", [50])


def test_numeric_user_not_in_passwd_is_allowed(rootfs: Path) -> None:
    assert resolve_user(rootfs, "4242:4343").uid == 4242
    assert resolve_user(rootfs, "4242:4343").gid == 4343


def test_user_with_group_name(rootfs: Path) -> None:
    assert resolve_user(rootfs, "nobody:staff").gid == 50


def test_unknown_names_are_refused_by_name(rootfs: Path) -> None:
    with pytest.raises(InvalidArgument, match="unable to find user ghost"):
        resolve_user(rootfs, "ghost")
    with pytest.raises(InvalidArgument, match="unable to find group ghosts"):
        resolve_user(rootfs, "app:ghosts")
    with pytest.raises(InvalidArgument):
        resolve_group(rootfs, "ghosts")


def test_symlinked_passwd_never_escapes_the_rootfs(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    outside = tmp_path / "host-passwd"
    outside.write_text("evil:x:0:0::/:/bin/sh\n")
    os.symlink(str(outside), root / "etc" / "passwd")  # absolute: resolved inside root
    with pytest.raises(InvalidArgument):
        resolve_user(root, "evil")
