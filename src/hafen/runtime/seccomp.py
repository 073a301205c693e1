"""Seccomp: compile config.json's ``linux.seccomp`` to a classic BPF program, and cache it.

Owns what libseccomp does for runc, in Python: the architecture check, syscall names to
numbers (``_syscall_table``), argument comparisons on 64-bit values, the actions, and a
binary search over syscall-number ranges so a filter of ~400 rules costs ~10 instructions
per syscall. Compiling takes milliseconds, so ``load_filter`` keeps the result under
``<runtime root>/seccomp/<sha256 of the JSON>.bpf``: a container start reads one file.

Program layout (``struct seccomp_data``: nr @0, arch @4, args[i] @16+8i, little-endian):

    load arch; for each supported arch: jeq AUDIT_ARCH → that arch's tree; else bad-arch
    tree (per arch): x32 bit set → default; binary search on nr over ranges whose outcome
    is the same; a leaf returns an action, or checks argument rules in order (first match
    wins) and falls back to the default action.

Syscalls above the highest number this table knows return ENOSYS when the default action
is not "allow" (runc does the same) so that new libc fallbacks (clone3 → clone) work.
"""

from __future__ import annotations

import _struct as struct

from hafen.errors import InvalidConfig
from hafen.runtime import _os as os
from hafen.runtime._fastjson import dumps, loads

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# BPF opcodes.
_LD_W_ABS = 0x20
_JMP_JA = 0x05
_JEQ_K = 0x15
_JGT_K = 0x25
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06
_ALU_AND_K = 0x54

_RET_KILL_PROCESS = 0x80000000
_RET_KILL_THREAD = 0x00000000
_RET_TRAP = 0x00030000
_RET_ERRNO = 0x00050000
_RET_TRACE = 0x7FF00000
_RET_LOG = 0x7FFC0000
_RET_ALLOW = 0x7FFF0000

ENOSYS = 38
EPERM = 1

# AUDIT_ARCH_* of linux/audit.h: EM_* | __AUDIT_ARCH_64BIT (0x80000000) | _LE (0x40000000).
_AUDIT_ARCH = {
    "SCMP_ARCH_X86_64": 0xC000003E,
    "SCMP_ARCH_X86": 0x40000003,
    "SCMP_ARCH_AARCH64": 0xC00000B7,
}
_NATIVE = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}
_X32_BIT = 0x40000000


def _table(arch: str) -> dict[str, int]:
    from hafen.runtime import _syscall_table

    tables = {
        "SCMP_ARCH_X86_64": _syscall_table.X86_64,
        "SCMP_ARCH_X86": _syscall_table.X86,
        "SCMP_ARCH_AARCH64": _syscall_table.AARCH64,
    }
    return tables[arch]


def action_value(action: str, errno_ret: int | None, default_errno: int) -> int:
    """An OCI action name -> the SECCOMP_RET_* value the filter returns."""
    err = default_errno if errno_ret is None else errno_ret
    if action == "SCMP_ACT_ALLOW":
        return _RET_ALLOW
    if action == "SCMP_ACT_ERRNO":
        return _RET_ERRNO | (err & 0xFFFF)
    if action in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return _RET_KILL_THREAD
    if action == "SCMP_ACT_KILL_PROCESS":
        return _RET_KILL_PROCESS
    if action == "SCMP_ACT_TRAP":
        return _RET_TRAP
    if action == "SCMP_ACT_TRACE":
        return _RET_TRACE | (err & 0xFFFF)
    if action == "SCMP_ACT_LOG":
        return _RET_LOG
    if action == "SCMP_ACT_NOTIFY":
        raise InvalidConfig("config.json: linux.seccomp: SCMP_ACT_NOTIFY is not supported")
    raise InvalidConfig(f"config.json: linux.seccomp: unknown action {action!r}")


class _Asm:
    """Instructions with symbolic jump targets, resolved once the program is laid out."""

    def __init__(self) -> None:
        self.code: list[list[Any]] = []  # [op, jt, jf, k]; jt/jf/k may be label names
        self.labels: dict[str, int] = {}
        self.n = 0

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def new(self) -> str:
        self.n += 1
        return f"L{self.n}"

    def emit(self, op: int, k: int | str = 0, jt: int | str = 0, jf: int | str = 0) -> None:
        self.code.append([op, jt, jf, k])

    def assemble(self) -> bytes:
        out = bytearray()
        for pc, (op, jt, jf, k) in enumerate(self.code):
            if isinstance(jt, str):
                jt = self.labels[jt] - pc - 1
            if isinstance(jf, str):
                jf = self.labels[jf] - pc - 1
            if isinstance(k, str):
                k = self.labels[k] - pc - 1
            if not (0 <= jt <= 255 and 0 <= jf <= 255 and k >= 0):
                raise ValueError("seccomp: jump out of range")  # a compiler bug
            out += struct.pack("<HBBI", op, jt, jf, k & 0xFFFFFFFF)
        if len(self.code) > 4096:
            raise InvalidConfig("config.json: linux.seccomp: filter is too large (over 4096)")
        return bytes(out)


def _cmp64(asm: _Asm, index: int, op: str, value: int, value2: int, fail: str) -> None:
    """Fall through when args[index] <op> value holds, else jump to ``fail``."""
    lo_off = 16 + 8 * index
    hi_off = lo_off + 4
    v_lo, v_hi = value & 0xFFFFFFFF, (value >> 32) & 0xFFFFFFFF
    if op == "SCMP_CMP_MASKED_EQ":
        m_lo, m_hi = v_lo, v_hi
        d_lo, d_hi = value2 & 0xFFFFFFFF, (value2 >> 32) & 0xFFFFFFFF
        asm.emit(_LD_W_ABS, hi_off)
        asm.emit(_ALU_AND_K, m_hi)
        asm.emit(_JEQ_K, d_hi, 0, fail)
        asm.emit(_LD_W_ABS, lo_off)
        asm.emit(_ALU_AND_K, m_lo)
        asm.emit(_JEQ_K, d_lo, 0, fail)
        return
    if op in ("SCMP_CMP_EQ", "SCMP_CMP_NE"):
        ok = asm.new()
        if op == "SCMP_CMP_EQ":
            asm.emit(_LD_W_ABS, hi_off)
            asm.emit(_JEQ_K, v_hi, 0, fail)
            asm.emit(_LD_W_ABS, lo_off)
            asm.emit(_JEQ_K, v_lo, 0, fail)
        else:
            asm.emit(_LD_W_ABS, hi_off)
            asm.emit(_JEQ_K, v_hi, 0, ok)
            asm.emit(_LD_W_ABS, lo_off)
            asm.emit(_JEQ_K, v_lo, fail, 0)
        asm.label(ok)
        return
    # Unsigned 64-bit order: decide on the high word unless equal, then the low word.
    ok = asm.new()
    asm.emit(_LD_W_ABS, hi_off)
    if op in ("SCMP_CMP_GT", "SCMP_CMP_GE"):
        asm.emit(_JGT_K, v_hi, ok, 0)
        asm.emit(_JEQ_K, v_hi, 0, fail)
        asm.emit(_LD_W_ABS, lo_off)
        asm.emit(_JGT_K if op == "SCMP_CMP_GT" else _JGE_K, v_lo, 0, fail)
    elif op in ("SCMP_CMP_LT", "SCMP_CMP_LE"):
        asm.emit(_JGT_K, v_hi, fail, 0)
        asm.emit(_JEQ_K, v_hi, 0, ok)
        asm.emit(_LD_W_ABS, lo_off)
        # lo < v  <=> not (lo >= v); lo <= v <=> not (lo > v)
        asm.emit(_JGE_K if op == "SCMP_CMP_LT" else _JGT_K, v_lo, fail, 0)
    else:
        raise InvalidConfig(f"config.json: linux.seccomp: unknown argument operator {op!r}")
    asm.label(ok)


def _rules_by_number(
    seccomp: dict[str, Any], arch: str, default_errno: int
) -> dict[int, list[tuple[int, list[dict[str, Any]]]]]:
    table = _table(arch)
    rules: dict[int, list[tuple[int, list[dict[str, Any]]]]] = {}
    for i, rule in enumerate(seccomp.get("syscalls") or []):
        where = f"linux.seccomp.syscalls[{i}]"
        if not isinstance(rule, dict):
            raise InvalidConfig(f"config.json: {where}: expected an object")
        value = action_value(str(rule.get("action")), rule.get("errnoRet"), default_errno)
        args = list(rule.get("args") or [])
        for a in args:
            if not isinstance(a, dict) or not 0 <= int(a.get("index", -1)) <= 5:
                raise InvalidConfig(f"config.json: {where}.args: index must be 0..5")
        for name in rule.get("names") or ([rule["name"]] if rule.get("name") else []):
            nr = table.get(name)
            if nr is None:
                continue  # not a syscall of this architecture
            rules.setdefault(nr, []).append((value, args))
    return rules


def _outcome(entries: list[tuple[int, list[dict[str, Any]]]]) -> Any:
    """A hashable summary: an int (one action, no args) or a tuple of argument rules."""
    # Rules with argument checks first (in order); an unconditional rule ends the list.
    conditional = [e for e in entries if e[1]]
    plain = [e for e in entries if not e[1]]
    if not conditional:
        return plain[0][0]
    key = tuple((v, dumps(a, sort_keys=True)) for v, a in conditional)
    return (key, plain[0][0] if plain else None)


def _arch_tree(asm: _Asm, seccomp: dict[str, Any], arch: str, default: int, errno: int) -> None:
    rules = _rules_by_number(seccomp, arch, errno)
    table = _table(arch)
    top = max(table.values())
    if arch == "SCMP_ARCH_X86_64":
        # x32 shares the x86_64 audit arch with bit 30 set: not supported, default action.
        native = asm.new()
        asm.emit(_LD_W_ABS, 0)
        asm.emit(_JGE_K, _X32_BIT, 0, native)
        asm.emit(_RET_K, default)
        asm.label(native)
    else:
        asm.emit(_LD_W_ABS, 0)
    above = _RET_ERRNO | ENOSYS if default != _RET_ALLOW else default
    # Ranges [lo, hi] of equal outcome covering 0..top, then (top, 2^32) -> above.
    ranges: list[tuple[int, int, Any]] = []
    for nr in range(top + 1):
        out = _outcome(rules[nr]) if nr in rules else default
        if ranges and ranges[-1][2] == out and not isinstance(out, tuple):
            ranges[-1] = (ranges[-1][0], nr, out)
        else:
            ranges.append((nr, nr, out))
    ranges.append((top + 1, 0xFFFFFFFF, above))
    _tree(asm, ranges, 0, len(ranges) - 1, default)


def _tree(asm: _Asm, ranges: list[tuple[int, int, Any]], i: int, j: int, default: int) -> None:
    """Binary search on the syscall number (in the accumulator) over ranges[i..j]."""
    if i == j:
        _leaf(asm, ranges[i][2], default)
        return
    mid = (i + j + 1) // 2
    right = asm.new()
    asm.emit(_JGE_K, ranges[mid][0], 0, 1)
    asm.emit(_JMP_JA, right)
    _tree(asm, ranges, i, mid - 1, default)
    asm.label(right)
    _tree(asm, ranges, mid, j, default)


def _leaf(asm: _Asm, outcome: Any, default: int) -> None:
    if not isinstance(outcome, tuple):
        asm.emit(_RET_K, outcome)
        return
    conditional, plain = outcome
    for value, args_json in conditional:
        nxt = asm.new()
        for a in loads(args_json):
            _cmp64(
                asm,
                int(a["index"]),
                str(a.get("op")),
                int(a.get("value", 0)),
                int(a.get("valueTwo", 0)),
                nxt,
            )
        asm.emit(_RET_K, value)
        asm.label(nxt)
    asm.emit(_RET_K, default if plain is None else plain)


def compile_filter(seccomp: dict[str, Any], machine: str | None = None) -> bytes:
    """The BPF program (8 bytes per instruction) for an OCI ``linux.seccomp`` object."""
    if not isinstance(seccomp, dict):
        raise InvalidConfig("config.json: linux.seccomp: expected an object")
    machine = machine or os.uname().machine
    native = _NATIVE.get(machine)
    if native is None:
        raise InvalidConfig(f"config.json: linux.seccomp: no syscall table for {machine}")
    errno = int(seccomp.get("defaultErrnoRet") or EPERM)
    default = action_value(str(seccomp.get("defaultAction")), None, errno)
    for flag in seccomp.get("flags") or []:
        # TSYNC: the init is single-threaded; LOG and SPEC_ALLOW change only logging and
        # speculation mitigations, which the kernel's defaults cover (runc accepts them).
        if flag not in (
            "SECCOMP_FILTER_FLAG_TSYNC",
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            "SECCOMP_FILTER_FLAG_LOG",
        ):
            raise InvalidConfig(f"config.json: linux.seccomp.flags: {flag!r} is not supported")
    arches = [native]
    for a in seccomp.get("architectures") or []:
        if a in _AUDIT_ARCH and a not in arches:
            arches.append(a)
    asm = _Asm()
    asm.emit(_LD_W_ABS, 4)
    labels = [asm.new() for _ in arches]
    for arch, lab in zip(arches, labels, strict=True):
        asm.emit(_JEQ_K, _AUDIT_ARCH[arch], 0, 1)
        asm.emit(_JMP_JA, lab)
    asm.emit(_RET_K, _RET_KILL_PROCESS)  # an architecture the profile does not allow
    for arch, lab in zip(arches, labels, strict=True):
        asm.label(lab)
        _arch_tree(asm, seccomp, arch, default, errno)
    return asm.assemble()


def _sha256_hex(data: bytes) -> str:
    # The builtin module loads in ~1 ms; hashlib (OpenSSL) in ~3 ms, on every start.
    # ``__import__``, not importlib: importing importlib (and warnings) costs ~0.3 ms.
    for name in ("_sha256", "_sha2", "hashlib"):
        try:
            module = __import__(name)
            break
        except ImportError:
            continue
    digest: str = module.sha256(data).hexdigest()
    return digest


def load_filter(root: str, raw: bytes | str) -> bytes:
    """The compiled filter for a seccomp JSON document, from the cache under ``root``."""
    data = raw.encode() if isinstance(raw, str) else raw
    key = _sha256_hex(data)
    cache = os.path.join(root, "seccomp")
    path = os.path.join(cache, key + ".bpf")
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        pass
    program = compile_filter(loads(data))
    os.makedirs(cache, mode=0o700, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(program)
    os.rename(tmp, path)
    return program


def evaluate(program: bytes, nr: int, arch: int, args: tuple[int, ...] = ()) -> int:
    """Run the program on one syscall (a tiny BPF interpreter, for tests and debugging)."""
    full = list(args) + [0] * (6 - len(args))
    data = struct.pack("<iI Q", nr, arch, 0) + b"".join(struct.pack("<Q", a) for a in full)
    acc = 0
    pc = 0
    insns = [struct.unpack("<HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    while True:
        op, jt, jf, k = insns[pc]
        pc += 1
        if op == _LD_W_ABS:
            acc = struct.unpack_from("<I", data, k)[0]
        elif op == _ALU_AND_K:
            acc &= k
        elif op == _JMP_JA:
            pc += k
        elif op in (_JEQ_K, _JGT_K, _JGE_K, _JSET_K):
            hit = {
                _JEQ_K: acc == k,
                _JGT_K: acc > k,
                _JGE_K: acc >= k,
                _JSET_K: bool(acc & k),
            }[op]
            pc += jt if hit else jf
        elif op == _RET_K:
            return k
        else:
            raise ValueError(f"unknown BPF opcode {op:#x}")
