"""config.json generation: Docker's defaults and the flags that change them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hafen.errors import InvalidArgument
from hafen.oci import defaults
from hafen.oci.spec import (
    BindMount,
    SpecOptions,
    available_capabilities,
    build_spec,
    effective_capabilities,
)

SCHEMA_DIR = (
    Path(__file__).resolve().parents[4] / "shared" / "specs" / "oci-runtime-spec" / "schema"
)


def test_default_spec_has_dockers_capabilities_masks_and_namespaces() -> None:
    spec = build_spec(SpecOptions(args=["sh"], env=["PATH=/bin"]))
    caps = spec["process"]["capabilities"]
    assert caps["bounding"] == list(defaults.DEFAULT_CAPABILITIES)
    assert caps["effective"] == caps["permitted"] == caps["bounding"]
    assert "inheritable" not in caps and "ambient" not in caps
    assert {ns["type"] for ns in spec["linux"]["namespaces"]} == {
        "pid",
        "network",
        "ipc",
        "uts",
        "mount",
    }
    assert "/proc/kcore" in spec["linux"]["maskedPaths"]
    assert "/proc/sys" in spec["linux"]["readonlyPaths"]
    sys_mount = next(m for m in spec["mounts"] if m["destination"] == "/sys")
    assert "ro" in sys_mount["options"]
    devices = spec["linux"]["resources"]["devices"]
    assert devices[0] == {"allow": False, "access": "rwm"}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_spec_validates_against_the_runtime_spec_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    if not SCHEMA_DIR.exists():
        pytest.skip("shared/specs not beside the checkout")
    schema = json.loads((SCHEMA_DIR / "config-schema.json").read_text())
    resolver_base = SCHEMA_DIR.as_uri() + "/"
    spec = build_spec(
        SpecOptions(
            args=["sh"], env=["A=1"], memory=64 << 20, pids_limit=50, nano_cpus=500_000_000,
            binds=[BindMount("/tmp", "/data", read_only=True)], cgroups_path="/hafen/x",
        )
    )  # fmt: skip
    validator_cls = jsonschema.validators.validator_for(schema)
    resolver = jsonschema.RefResolver(base_uri=resolver_base, referrer=schema)
    validator_cls(schema, resolver=resolver).validate(spec)


def test_resources_map_docker_flags() -> None:
    spec = build_spec(
        SpecOptions(args=["sh"], env=[], memory=128 << 20, memory_swap=256 << 20, pids_limit=10,
                    nano_cpus=1_500_000_000, cpu_shares=512, cpuset_cpus="0")
    )  # fmt: skip
    res = spec["linux"]["resources"]
    assert res["memory"] == {"limit": 128 << 20, "swap": 256 << 20}
    assert res["pids"] == {"limit": 10}
    assert res["cpu"] == {"shares": 512, "period": 100000, "quota": 150000, "cpus": "0"}


def test_cap_add_and_drop_follow_dockers_rules() -> None:
    caps = effective_capabilities(False, ["net_admin"], ["chown", "CAP_KILL"])
    assert "CAP_NET_ADMIN" in caps and "CAP_CHOWN" not in caps and "CAP_KILL" not in caps
    assert effective_capabilities(False, [], ["ALL"]) == []
    assert effective_capabilities(False, ["SYS_ADMIN"], ["ALL"]) == ["CAP_SYS_ADMIN"]
    assert effective_capabilities(True, [], []) == available_capabilities()


def test_unknown_capability_is_refused_by_name() -> None:
    with pytest.raises(InvalidArgument, match="bogus"):
        effective_capabilities(False, ["bogus"], [])


def test_privileged_lifts_masks_and_device_rules() -> None:
    spec = build_spec(SpecOptions(args=["sh"], env=[], privileged=True))
    assert "maskedPaths" not in spec["linux"]
    assert spec["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]


def test_empty_command_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="no command"):
        build_spec(SpecOptions(args=[], env=[]))


def test_default_seccomp_profile_is_filtered_by_capabilities() -> None:
    spec = build_spec(SpecOptions(args=["sh"], env=[]))
    sec = spec["linux"]["seccomp"]
    assert sec["defaultAction"] == "SCMP_ACT_ERRNO"
    plain = {n for r in sec["syscalls"] if "args" not in r for n in r["names"]}
    assert "mount" not in plain and "read" in plain
    admin = build_spec(SpecOptions(args=["sh"], env=[], cap_add=["SYS_ADMIN"]))["linux"]["seccomp"]
    assert "mount" in {n for r in admin["syscalls"] for n in r["names"]}
    assert "seccomp" not in build_spec(SpecOptions(args=["sh"], env=[], privileged=True))["linux"]
    unconfined = SpecOptions(args=["sh"], env=[], seccomp_profile="unconfined")
    assert "seccomp" not in build_spec(unconfined)["linux"]
    custom = SpecOptions(
        args=["sh"], env=[], seccomp_profile='{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}'
    )
    assert build_spec(custom)["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ALLOW"
    with pytest.raises(InvalidArgument, match="seccomp"):
        build_spec(SpecOptions(args=["sh"], env=[], seccomp_profile="{not json"))


def test_process_flags_init_ulimits_oom_and_no_new_privileges() -> None:
    from hafen.oci.spec import INIT_PATH, Ulimit

    spec = build_spec(
        SpecOptions(
            args=["sleep", "1"], env=[], init_path="/opt/hafen-init", no_new_privileges=True,
            oom_score_adj=500, ulimits=[Ulimit("nofile", 100, 200), Ulimit("core", -1, -1)],
        )
    )  # fmt: skip
    proc = spec["process"]
    assert proc["args"] == [INIT_PATH, "--", "sleep", "1"]
    assert {"destination": INIT_PATH, "type": "bind", "source": "/opt/hafen-init",
            "options": ["rbind", "ro", "rprivate"]} in spec["mounts"]  # fmt: skip
    assert proc["noNewPrivileges"] is True and proc["oomScoreAdj"] == 500
    assert {"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200} in proc["rlimits"]
    assert {"type": "RLIMIT_CORE", "soft": 2**64 - 1, "hard": 2**64 - 1} in proc["rlimits"]
    with pytest.raises(InvalidArgument, match="invalid ulimit type"):
        build_spec(SpecOptions(args=["x"], env=[], ulimits=[Ulimit("bogus", 1, 1)]))
    with pytest.raises(InvalidArgument, match="soft limit"):
        build_spec(SpecOptions(args=["x"], env=[], ulimits=[Ulimit("nofile", 5, 1)]))


def test_namespace_modes_sysctls_and_user_namespace() -> None:
    from hafen.oci.spec import IDMap

    spec = build_spec(
        SpecOptions(
            args=["sh"], env=[], sysctls={"net.ipv4.ip_forward": "1"},
            namespaces={"pid": "host", "ipc": "/proc/42/ns/ipc", "cgroup": ""},
            uid_mappings=[IDMap(0, 100000, 65536)],
        )
    )  # fmt: skip
    ns = spec["linux"]["namespaces"]
    assert {"type": "pid"} not in ns
    assert {"type": "ipc", "path": "/proc/42/ns/ipc"} in ns
    assert {"type": "cgroup"} in ns and {"type": "user"} in ns
    assert spec["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 100000, "size": 65536}]
    assert spec["linux"]["gidMappings"] == spec["linux"]["uidMappings"]
    assert spec["linux"]["sysctl"] == {"net.ipv4.ip_forward": "1"}


def test_devices_rules_blkio_and_memory_defaults() -> None:
    from hafen.oci.spec import DeviceMapping, Throttle, parse_device_cgroup_rule

    spec = build_spec(
        SpecOptions(
            args=["sh"], env=[], memory=64 << 20, oom_kill_disable=True, cpuset_mems="0",
            devices=[DeviceMapping("/dev/null", "/dev/mynull", "rw")],
            device_cgroup_rules=["c 42:* rmw"],
        )
    )  # fmt: skip
    res = spec["linux"]["resources"]
    assert res["memory"] == {"limit": 64 << 20, "swap": 128 << 20, "disableOOMKiller": True}
    assert res["cpu"] == {"mems": "0"}
    assert {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"} in res["devices"]
    assert {"allow": True, "type": "c", "major": 42, "access": "rmw"} in res["devices"]
    (dev,) = spec["linux"]["devices"]
    assert (dev["path"], dev["type"], dev["major"], dev["minor"]) == ("/dev/mynull", "c", 1, 3)
    assert parse_device_cgroup_rule("a *:* rwm") == {"allow": True, "type": "a", "access": "rwm"}
    with pytest.raises(InvalidArgument, match="device cgroup rule"):
        parse_device_cgroup_rule("x 1:2 rwm")
    with pytest.raises(InvalidArgument, match="not a block device"):
        build_spec(SpecOptions(args=["x"], env=[], device_read_bps=[Throttle("/dev/null", 1)]))
    with pytest.raises(InvalidArgument, match="memory limit"):
        build_spec(SpecOptions(args=["x"], env=[], memory_swap=1 << 20))
    privileged = build_spec(SpecOptions(args=["x"], env=[], privileged=True))
    assert any(d["path"] == "/dev/null" for d in privileged["linux"]["devices"])
