"""Device access rules on cgroup v2: an eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE.

cgroup v2 has no devices.allow/deny files; the kernel asks a BPF program attached to the
cgroup on every open/mknod of a device node. This module owns writing that program from
``linux.resources.devices`` (as runc's devicefilter does), loading it with bpf(2) and
attaching it to the container's cgroup (BPF_F_ALLOW_MULTI: an ancestor's programs still
apply). The attachment lives as long as the cgroup; nothing is left to clean up.

Rule semantics are v1's, which the OCI rules are written for: rules apply in order and a
later rule overrides an earlier one, so the program checks them last to first and the
first match decides (allow = return 1, deny = return 0). The context
(``struct bpf_cgroup_dev_ctx``) is {u32 access_type (access << 16 | type); u32 major;
u32 minor}, type 1 block / 2 char, access 1 mknod / 2 read / 4 write.
"""

from __future__ import annotations

import _struct as struct

from hafen.errors import RuntimeFailure
from hafen.runtime import _os as os
from hafen.runtime import _sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_BPF_PROG_LOAD = 5
_BPF_PROG_ATTACH = 8
_BPF_PROG_TYPE_CGROUP_DEVICE = 15
_BPF_CGROUP_DEVICE = 6
_BPF_F_ALLOW_MULTI = 2

_TYPES = {"b": 1, "c": 2}
_ACCESS = {"m": 1, "r": 2, "w": 4}

# eBPF opcodes used below.
_LDXW = 0x61  # dst = *(u32 *)(src + off)
_MOV64_REG = 0xBF
_MOV64_IMM = 0xB7
_AND64_IMM = 0x57
_RSH64_IMM = 0x77
_JNE_IMM = 0x55
_EXIT = 0x95


def _insn(op: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", op, (src << 4) | dst, off, imm)


def _rule_checks(rule: dict[str, Any]) -> list[tuple[int, int, int, int]]:
    """(op, dst, src, imm) conditional jumps that skip the rule when they hold."""
    checks = []
    typ = rule.get("type") or "a"
    if typ in _TYPES:
        checks.append((_JNE_IMM, 3, 0, _TYPES[typ]))
    access = 0
    for ch in rule.get("access") or "rwm":
        access |= _ACCESS.get(ch, 0)
    if access != 7:
        # r7 = requested & ~allowed: a request for more than the rule covers skips it
        checks.append((-1, 7, 0, (~access) & 7))
    if rule.get("major") is not None and rule["major"] >= 0 and typ != "a":
        checks.append((_JNE_IMM, 5, 0, rule["major"]))
    if rule.get("minor") is not None and rule["minor"] >= 0 and typ != "a":
        checks.append((_JNE_IMM, 6, 0, rule["minor"]))
    return checks


def build_program(rules: list[dict[str, Any]]) -> bytes:
    """The eBPF program for OCI device rules (``allow``, ``type``, ``major``, ``minor``,
    ``access``)."""
    code = [
        _insn(_LDXW, 2, 1, 0),  # r2 = access_type
        _insn(_MOV64_REG, 3, 2),  # r3 = type
        _insn(_AND64_IMM, 3, 0, 0, 0xFFFF),
        _insn(_MOV64_REG, 4, 2),  # r4 = access
        _insn(_RSH64_IMM, 4, 0, 0, 16),
        _insn(_LDXW, 5, 1, 4),  # r5 = major
        _insn(_LDXW, 6, 1, 8),  # r6 = minor
    ]
    for rule in reversed(rules):
        checks = _rule_checks(rule)
        # Each check is one jump, except the access check (three instructions).
        block: list[tuple[str, tuple[int, int, int, int]]] = []
        for c in checks:
            if c[0] == -1:
                block.append(("mov", (_MOV64_REG, 7, 4, 0)))
                block.append(("and", (_AND64_IMM, 7, 0, c[3])))
                block.append(("jump", (_JNE_IMM, 7, 0, 0)))
            else:
                block.append(("jump", c))
        body = [_insn(_MOV64_IMM, 0, 0, 0, 1 if rule.get("allow") else 0), _insn(_EXIT)]
        n = len(block)
        for i, (kind, (op, dst, src, imm)) in enumerate(block):
            if kind == "jump":
                skip = (n - i - 1) + len(body)  # past the rest of the block and the body
                code.append(_insn(op, dst, src, skip, imm))
            else:
                code.append(_insn(op, dst, src, 0, imm))
        code.extend(body)
        if not block:
            # Matches everything: what follows is unreachable (and the verifier refuses
            # unreachable instructions).
            return b"".join(code)
    # No rule matched: the v1 default (allow), as for a cgroup with no rules at all.
    code += [_insn(_MOV64_IMM, 0, 0, 0, 1), _insn(_EXIT)]
    return b"".join(code)


def attach(cgroup_dir: str, rules: list[dict[str, Any]]) -> None:
    """Load the program for ``rules`` and attach it to the cgroup v2 directory."""
    program = build_program(rules)
    # the kernel reads these through the pointers in attr: they live across the call
    insns = bytearray(program)
    license_ = bytearray(b"Apache\0")
    log = bytearray(65536)
    # union bpf_attr for BPF_PROG_LOAD: prog_type, insn_cnt, insns, license,
    # log_level, log_size, log_buf (the rest zero).
    load = struct.pack(
        "<IIQQIIQ",
        _BPF_PROG_TYPE_CGROUP_DEVICE,
        len(program) // 8,
        _sys.buffer_address(insns),
        _sys.buffer_address(license_),
        1,
        len(log),
        _sys.buffer_address(log),
    ).ljust(128, b"\0")
    try:
        prog_fd = _sys.bpf(_BPF_PROG_LOAD, load, "BPF_PROG_LOAD")
    except OSError as e:
        detail = log.split(b"\0", 1)[0].decode(errors="replace").strip()[-300:]
        raise RuntimeFailure(f"cgroup v2 device filter: {e.strerror} {detail}")
    try:
        try:
            cg_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise RuntimeFailure(f"cgroup v2 device filter: {cgroup_dir}: {e.strerror}")
        try:
            # attach: target_fd, attach_bpf_fd, attach_type, attach_flags
            attr = struct.pack(
                "<IIII", cg_fd, prog_fd, _BPF_CGROUP_DEVICE, _BPF_F_ALLOW_MULTI
            ).ljust(128, b"\0")
            try:
                _sys.bpf(_BPF_PROG_ATTACH, attr, "BPF_PROG_ATTACH")
            except OSError as e:
                raise RuntimeFailure(
                    f"cgroup v2 device filter: attach to {cgroup_dir}: {os.strerror(e.errno or 0)}"
                )
        finally:
            os.close(cg_fd)
    finally:
        os.close(prog_fd)
