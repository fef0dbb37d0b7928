"""Chakra decoding: the official protobuf runtime vs simcluster's hand-written decoder.

Builds the Chakra schema (``et_def.proto``) at run time with ``descriptor_pb2`` (no protoc,
no generated code), decodes every node of the real feeder trace
(``../shared/data/chakra/feeder_tests_trace.tar.gz``) with both, checks that they give the
same nodes, times them (best of 5), and feeds both the same 20,000 mutated node messages,
counting what each decodes, refuses, or raises otherwise. Needs ``pip install protobuf``
(not a simcluster dependency). The figures are in ``docs/reliability.md``.

Usage::

    pip install protobuf && python bench/compare_protobuf.py
"""

from __future__ import annotations

import random
import sys
import tarfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FEEDER = ROOT.parent / "shared" / "data" / "chakra" / "feeder_tests_trace.tar.gz"

from google.protobuf import __version__ as PROTOBUF_VERSION  # noqa: E402
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory  # noqa: E402
from google.protobuf.internal import api_implementation  # noqa: E402
from google.protobuf.message import DecodeError  # noqa: E402

from simcluster.workload.chakra.etfile import EtNode, decode_node  # noqa: E402
from simcluster.workload.protowire import WireError, iter_delimited  # noqa: E402

F = descriptor_pb2.FieldDescriptorProto
SCALARS = ["double", "float", "int32", "int64", "uint32", "uint64", "sint32", "sint64",
           "fixed32", "fixed64", "sfixed32", "sfixed64", "bool", "string", "bytes"]


def node_class() -> Any:
    """The ``Node`` message class of et_def.proto, built from descriptors."""
    fd = descriptor_pb2.FileDescriptorProto(name="et_def.proto", package="ChakraProtoMsg",
                                            syntax="proto3")
    pkg = ".ChakraProtoMsg."

    def message(name: str) -> Any:
        return fd.message_type.add(name=name)

    for t in SCALARS:
        message(t.capitalize() + "List").field.add(
            name="values", number=1, label=F.LABEL_REPEATED,
            type=getattr(F, "TYPE_" + t.upper()))
    attr = message("AttributeProto")
    attr.field.add(name="name", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    attr.field.add(name="doc_string", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    attr.oneof_decl.add(name="value")
    for k, t in enumerate(SCALARS):
        attr.field.add(name=f"{t}_val", number=3 + 2 * k, label=F.LABEL_OPTIONAL,
                       type=getattr(F, "TYPE_" + t.upper()), oneof_index=0)
        attr.field.add(name=f"{t}_list", number=4 + 2 * k, label=F.LABEL_OPTIONAL,
                       type=F.TYPE_MESSAGE, type_name=pkg + t.capitalize() + "List",
                       oneof_index=0)
    message("IOInfo")
    node = message("Node")
    for number, name, typ, label, type_name in [
            (1, "id", F.TYPE_UINT64, F.LABEL_OPTIONAL, ""),
            (2, "name", F.TYPE_STRING, F.LABEL_OPTIONAL, ""),
            (3, "type", F.TYPE_INT32, F.LABEL_OPTIONAL, ""),
            (4, "ctrl_deps", F.TYPE_UINT64, F.LABEL_REPEATED, ""),
            (5, "data_deps", F.TYPE_UINT64, F.LABEL_REPEATED, ""),
            (6, "start_time_micros", F.TYPE_UINT64, F.LABEL_OPTIONAL, ""),
            (7, "duration_micros", F.TYPE_UINT64, F.LABEL_OPTIONAL, ""),
            (8, "inputs", F.TYPE_MESSAGE, F.LABEL_OPTIONAL, pkg + "IOInfo"),
            (9, "outputs", F.TYPE_MESSAGE, F.LABEL_OPTIONAL, pkg + "IOInfo"),
            (10, "attr", F.TYPE_MESSAGE, F.LABEL_REPEATED, pkg + "AttributeProto")]:
        field = node.field.add(name=name, number=number, type=typ, label=label)
        if type_name:
            field.type_name = type_name
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("ChakraProtoMsg.Node"))


NODE = node_class()


def _attr_value(a: Any) -> Any:
    which = a.WhichOneof("value")
    if which is None:
        return None
    v = getattr(a, which)
    return list(v.values) if which.endswith("_list") else v


def protobuf_node(raw: bytes) -> EtNode:
    """One Node through the protobuf runtime, as the same EtNode. proto3 scalars have no
    presence: a duration of 0 and no duration read the same (None here)."""
    n = NODE.FromString(raw)
    return EtNode(n.id, n.name, n.type, tuple(n.data_deps), tuple(n.ctrl_deps),
                  float(n.start_time_micros) if n.start_time_micros else None,
                  float(n.duration_micros) if n.duration_micros else None,
                  {a.name: _attr_value(a) for a in n.attr})


def best_of(f: Callable[[bytes], EtNode], msgs: list[bytes], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for m in msgs:
            f(m)
        times.append(time.perf_counter() - t0)
    return min(times)


def mutated(msgs: list[bytes], rng: random.Random) -> bytes:
    m = bytearray(rng.choice(msgs))
    for _ in range(rng.randint(1, 3)):
        p = rng.randrange(len(m))
        op = rng.randrange(3)
        if op == 0:
            m[p] ^= 1 << rng.randrange(8)
        elif op == 1:
            m[p] = rng.choice((0, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        else:
            del m[p:]
        if not m:
            m = bytearray(b"\x08")
    return bytes(m)


def main() -> None:
    with tarfile.open(FEEDER) as tar:
        data = next(tar.extractfile(m).read() for m in tar.getmembers()  # type: ignore
                    if m.name.endswith(".et"))
    msgs = list(iter_delimited(data))[1:]
    print(f"protobuf {PROTOBUF_VERSION} ({api_implementation.Type()}); feeder trace "
          f"{len(data):,} bytes, {len(msgs):,} nodes")
    same = sum(decode_node(m) == protobuf_node(m) for m in msgs)
    print(f"same EtNode from both decoders: {same:,} of {len(msgs):,}")
    for name, f in (("hand-written", decode_node), ("protobuf", protobuf_node)):
        t = best_of(f, msgs)
        print(f"{name:12s}: {t * 1e3:6.1f} ms ({len(msgs) / t / 1e3:.0f}k nodes/s)")
    rng = random.Random(0)
    outcomes: dict[str, Counter[str]] = {"hand-written": Counter(), "protobuf": Counter()}
    disagree = 0
    for _ in range(20_000):
        m = mutated(msgs, rng)
        got = []
        for name, f in (("hand-written", decode_node), ("protobuf", protobuf_node)):
            try:
                f(m)
                r = "decoded"
            except (WireError, DecodeError):
                r = "refused"
            except Exception as exc:  # noqa: BLE001 - what we count
                r = "other " + type(exc).__name__
            outcomes[name][r] += 1
            got.append(r)
        disagree += got[0] != got[1]
    for name, c in outcomes.items():
        print(f"{name:12s}: 20,000 mutated nodes: " + ", ".join(f"{k} {v:,}" for k, v in
                                                               sorted(c.items())))
    print(f"outcomes differ on {disagree:,}")


if __name__ == "__main__":
    main()
