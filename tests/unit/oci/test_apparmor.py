"""AppArmor: the profile a container gets (dockerd's rules), hafen-default's text (it must
compile with apparmor_parser), loading it only when the kernel lacks it, and the
runtime's ``exec <profile>`` write to the process's attr file."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from hafen.errors import InvalidConfig, RuntimeFailure
from hafen.oci import apparmor
from hafen.oci.spec import SpecOptions, build_spec
from hafen.runtime import apparmor as rt_apparmor


@pytest.mark.parametrize(
    ("requested", "privileged", "enabled", "profile"),
    [
        ("", False, True, "hafen-default"),
        ("", True, True, "unconfined"),
        ("unconfined", False, True, "unconfined"),
        ("my-profile", True, True, "my-profile"),  # an explicit choice beats --privileged
        ("", False, False, ""),  # no AppArmor on the host: nothing, as dockerd
        ("my-profile", False, False, ""),  # and --security-opt apparmor= is ignored
    ],
)
def test_container_profile_follows_dockerd(
    requested: str, privileged: bool, enabled: bool, profile: str
) -> None:
    assert apparmor.container_profile(requested, privileged, enabled) == profile


def test_default_profile_denies_what_dockers_template_denies() -> None:
    text = apparmor.default_profile_text()
    assert text.startswith("#include <tunables/global>\n")
    assert "profile hafen-default flags=(attach_disconnected,mediate_deleted) {" in text
    rules = {line.strip() for line in text.splitlines()}
    for rule in (
        "deny mount,",
        "deny /proc/sysrq-trigger rwklx,",
        "deny /proc/kcore rwklx,",
        "deny /proc/sys/[^k]** w,",
        "deny /sys/firmware/** rwklx,",
        "deny /sys/kernel/security/** rwklx,",
        "signal (receive) peer=unconfined,",
        "signal (send,receive) peer=hafen-default,",
        "ptrace (trace,read,tracedby,readby) peer=hafen-default,",
        "network,",
        "capability,",
        "file,",
    ):
        assert rule in rules, rule
    assert text.rstrip().endswith("}")


def test_profile_name_and_abstractions_are_parameters() -> None:
    text = apparmor.default_profile_text("custom", base_abstraction=False)
    assert "profile custom flags=" in text
    assert "peer=custom," in text
    assert "#include" not in text


@pytest.mark.skipif(not os.access(apparmor.APPARMOR_PARSER, os.X_OK), reason="no apparmor_parser")
@pytest.mark.parametrize("base", [True, False], ids=["with-abstractions", "bare"])
def test_default_profile_compiles(tmp_path: Path, base: bool) -> None:
    if base and not apparmor.has_base_abstraction():
        pytest.skip("the apparmor package's policy files are not installed")
    source = tmp_path / "hafen-default"
    source.write_text(apparmor.default_profile_text(base_abstraction=base))
    # -Q: compile only, load nothing (works on hosts whose kernel has no AppArmor).
    result = subprocess.run(
        [apparmor.APPARMOR_PARSER, "-QK", "-o", os.devnull, str(source)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def _securityfs(tmp_path: Path, profiles: str) -> Path:
    fs = tmp_path / "securityfs"
    fs.mkdir()
    (fs / "profiles").write_text(profiles)
    return fs


def test_is_loaded_reads_the_kernels_profile_list(tmp_path: Path) -> None:
    fs = _securityfs(tmp_path, "hafen-default (enforce)\n/usr/bin/man (enforce)\n")
    assert apparmor.is_loaded("hafen-default", str(fs))
    assert not apparmor.is_loaded("hafen", str(fs))
    assert not apparmor.is_loaded("hafen-default", str(tmp_path / "missing"))


def _fake_parser(tmp_path: Path, exit_code: int = 0) -> tuple[Path, Path]:
    log = tmp_path / "parser.log"
    parser = tmp_path / "apparmor_parser"
    parser.write_text(
        "#!/bin/sh\n"
        f'echo "$1" > {log}; cat "$2" >> {log}\n'
        f"[ {exit_code} = 0 ] || echo 'syntax error in profile' >&2\n"
        f"exit {exit_code}\n"
    )
    parser.chmod(0o755)
    return parser, log


def test_ensure_loaded_loads_only_when_missing(tmp_path: Path) -> None:
    parser, log = _fake_parser(tmp_path)
    fs = _securityfs(tmp_path, "hafen-default (enforce)\n")
    apparmor.ensure_loaded(parser=str(parser), securityfs=str(fs))
    assert not log.exists()  # already in the kernel: nothing run
    (fs / "profiles").write_text("other (complain)\n")
    apparmor.ensure_loaded(parser=str(parser), securityfs=str(fs))
    flags, _, text = log.read_text().partition("\n")
    assert flags == "-Kr"  # replace, no cache
    assert "profile hafen-default flags=" in text


def test_ensure_loaded_errors_name_the_way_out(tmp_path: Path) -> None:
    fs = _securityfs(tmp_path, "")
    with pytest.raises(RuntimeFailure, match="install the 'apparmor' package"):
        apparmor.ensure_loaded(parser=str(tmp_path / "none"), securityfs=str(fs))
    parser, _ = _fake_parser(tmp_path, exit_code=1)
    with pytest.raises(RuntimeFailure, match="syntax error in profile"):
        apparmor.ensure_loaded(parser=str(parser), securityfs=str(fs))


def test_host_enabled_needs_the_module_and_securityfs(tmp_path: Path) -> None:
    enabled = tmp_path / "enabled"
    enabled.write_text("Y\n")
    assert apparmor.host_enabled(str(enabled), str(tmp_path))
    assert not apparmor.host_enabled(str(enabled), str(tmp_path / "no-securityfs"))
    enabled.write_text("N\n")
    assert not apparmor.host_enabled(str(enabled), str(tmp_path))
    assert not apparmor.host_enabled(str(tmp_path / "no-module"), str(tmp_path))


def test_spec_carries_the_profile_unconfined_included() -> None:
    for profile in ("hafen-default", "unconfined"):
        spec = build_spec(SpecOptions(args=["sh"], env=[], apparmor_profile=profile))
        assert spec["process"]["apparmorProfile"] == profile
    assert "apparmorProfile" not in build_spec(SpecOptions(args=["sh"], env=[]))["process"]


def test_runtime_writes_exec_profile_to_the_first_attr_file_there(tmp_path: Path) -> None:
    lsm = tmp_path / "attr" / "apparmor" / "exec"
    legacy = tmp_path / "attr" / "exec"
    legacy.parent.mkdir()
    legacy.write_text("")
    rt_apparmor.change_on_exec("hafen-default", (str(lsm), str(legacy)))
    assert legacy.read_text() == "exec hafen-default"  # no apparmor/ dir: the legacy file
    lsm.parent.mkdir()
    lsm.write_text("")
    rt_apparmor.change_on_exec("unconfined", (str(lsm), str(legacy)))
    assert lsm.read_text() == "exec unconfined"
    rt_apparmor.change_on_exec("", (str(tmp_path / "x"),))  # no profile: nothing to do
    with pytest.raises(OSError, match="cannot set profile"):
        rt_apparmor.change_on_exec("p", (str(tmp_path / "no" / "exec"),))


def test_runtime_refuses_a_profile_it_cannot_apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rt_apparmor, "is_enabled", lambda: False)
    with pytest.raises(InvalidConfig, match="AppArmor is not enabled"):
        rt_apparmor.require("hafen-default")
    rt_apparmor.require("")  # no profile asked: fine anywhere
