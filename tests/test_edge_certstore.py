"""The packed certificate store: rows, versions, shared chains, holes and compaction."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from linkcert.edge.certstore import CertificateStore

CHAIN_A = (b"intermediate A",)
CHAIN_B = (b"intermediate B", b"root-ish B")


def test_put_get_replace_remove() -> None:
    store = CertificateStore()
    assert store.put("a.test", 1, b"leaf-a", CHAIN_A, "PRIVATE KEY", b"key-a") is True
    got = store.get("a.test")
    assert got is not None
    assert (got.version, got.leaf, got.intermediates, got.key_label, got.key_der) == (
        1,
        b"leaf-a",
        CHAIN_A,
        "PRIVATE KEY",
        b"key-a",
    )
    # The same content again only moves the version on.
    assert store.put("a.test", 2, b"leaf-a", CHAIN_A, "PRIVATE KEY", b"key-a") is False
    assert store.version("a.test") == 2
    assert store.packed_bytes == len(b"leaf-a" + b"key-a")
    assert store.put("a.test", 3, b"leaf-a2", CHAIN_B, "EC PRIVATE KEY", b"key-a2") is True
    got = store.get("a.test")
    assert got is not None and (got.leaf, got.intermediates, got.key_label) == (
        b"leaf-a2",
        CHAIN_B,
        "EC PRIVATE KEY",
    )
    assert store.remove("a.test") is True
    assert store.remove("a.test") is False
    assert store.get("a.test") is None and store.version("a.test") is None
    assert len(store) == 0 and "a.test" not in store


def test_chains_are_shared_and_forgotten_with_their_last_user() -> None:
    store = CertificateStore()
    store.put("a.test", 1, b"a", (b"inter",), "PRIVATE KEY", b"ka")
    store.put("b.test", 1, b"b", (b"inter",), "PRIVATE KEY", b"kb")
    a, b = store.get("a.test"), store.get("b.test")
    assert a is not None and b is not None and a.intermediates is b.intermediates
    store.remove("a.test")
    store.put("b.test", 2, b"b2", CHAIN_B, "PRIVATE KEY", b"kb")
    assert store._chain_index == {CHAIN_B: store._chain[store._rows["b.test"]]}


def test_holes_are_compacted_away() -> None:
    store = CertificateStore()
    big = b"x" * 100_000
    for version in range(30):  # each replacement leaves a 100 kB hole
        store.put("a.test", version, big + bytes([version]), CHAIN_A, "PRIVATE KEY", b"k")
        store.put("b.test", version, b"leaf-b", CHAIN_A, "PRIVATE KEY", b"key-b")
    # 3 MB went in; holes are kept below 1 MiB (or below what is live, if that is more).
    assert store.packed_bytes < (1 << 20) + 2 * len(big)
    a, b = store.get("a.test"), store.get("b.test")
    assert a is not None and a.leaf == big + bytes([29]) and a.key_der == b"k"
    assert b is not None and b.leaf == b"leaf-b" and b.key_der == b"key-b"


_names = st.sampled_from([f"n{i}.test" for i in range(8)])
_operations = st.lists(
    st.tuples(
        st.sampled_from(["put", "remove"]),
        _names,
        st.binary(min_size=1, max_size=300_000),
        st.sampled_from([CHAIN_A, CHAIN_B]),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(operations=_operations)
def test_behaves_like_a_dict(operations: list[tuple[str, str, bytes, tuple[bytes, ...]]]) -> None:
    store = CertificateStore()
    model: dict[str, tuple[int, bytes, tuple[bytes, ...], bytes]] = {}
    for version, (operation, name, data, chain) in enumerate(operations):
        if operation == "put":
            leaf, key = data[: len(data) // 2 + 1], data[len(data) // 2 :]
            store.put(name, version, leaf, chain, "PRIVATE KEY", key)
            model[name] = (version, leaf, chain, key)
        else:
            assert store.remove(name) == (model.pop(name, None) is not None)
    assert sorted(store.names()) == sorted(model)
    for name, (version, leaf, chain, key) in model.items():
        got = store.get(name)
        assert got is not None
        assert (got.version, got.leaf, got.intermediates, got.key_der) == (
            version,
            leaf,
            chain,
            key,
        )
