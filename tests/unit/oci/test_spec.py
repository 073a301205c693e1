"""config.json generation: Docker's defaults and the flags that change them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hafen.errors import InvalidArgument
from hafen.oci import defaults
from hafen.oci.spec import BindMount, SpecOptions, build_spec, effective_capabilities

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
    assert len(effective_capabilities(True, [], [])) == len(defaults.ALL_CAPABILITIES)


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
