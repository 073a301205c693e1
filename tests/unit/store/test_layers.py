"""DiffIDs chain into ChainIDs as the OCI image spec defines."""

from __future__ import annotations

import hashlib

from hafen.store.layers import chain_ids


def _sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def test_no_layers_no_chain() -> None:
    assert chain_ids([]) == []


def test_the_base_chain_id_is_its_diff_id() -> None:
    d0 = _sha("layer 0")
    assert chain_ids([d0]) == [d0]


def test_each_chain_id_hashes_the_one_below_a_space_and_the_diff_id() -> None:
    d0, d1, d2 = _sha("layer 0"), _sha("layer 1"), _sha("layer 2")
    c1 = "sha256:" + hashlib.sha256(f"{d0} {d1}".encode()).hexdigest()
    c2 = "sha256:" + hashlib.sha256(f"{c1} {d2}".encode()).hexdigest()
    assert chain_ids([d0, d1, d2]) == [d0, c1, c2]


def test_known_value_from_fixed_diff_ids() -> None:
    d0 = "sha256:" + "a" * 64
    d1 = "sha256:" + "b" * 64
    expected = hashlib.sha256(b"sha256:" + b"a" * 64 + b" sha256:" + b"b" * 64).hexdigest()
    assert chain_ids([d0, d1]) == [d0, "sha256:" + expected]


def test_same_diff_ids_in_another_order_give_another_chain() -> None:
    d0, d1 = _sha("x"), _sha("y")
    assert chain_ids([d0, d1])[-1] != chain_ids([d1, d0])[-1]
