"""A stand-in kubelet PodResources gRPC server on a unix socket, for tests.

It answers ``v1.PodResourcesLister/List`` with the pods it was given, encoded here by a small
protobuf encoder written independently of the client's decoder (and able to add fields the
client must skip: cpu_ids, memory, topology, dynamic_resources, unknown numbers)::

    with PodResourcesServer(tmp_path / "kubelet.sock") as kubelet:
        kubelet.pods = [pod("ns", "p", container("c", ("intel.com/sriov", ["0000:03:00.1"])))]
        ... load_resource_map(..., socket_path=str(kubelet.socket_path)) ...

Knobs: ``pods`` (what List returns), ``fail_with`` (a ``grpc.StatusCode`` every call ends
with), ``raw_answer`` (bytes sent as they are), ``delay`` (seconds before answering),
``calls`` (how many List calls arrived), ``extras`` (fill the fields the client skips).
``Container.dynamic`` holds DRA ``dynamic_resources`` (claim name and CDI device names).
"""

from __future__ import annotations

import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

SERVICE = "v1.PodResourcesLister"


# ---------------------------------------------------------------- protobuf encoding


def varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64 as protobuf writes a negative number: ten bytes
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def length_delimited(number: int, payload: bytes) -> bytes:
    return key(number, 2) + varint(len(payload)) + payload


def string(number: int, value: str) -> bytes:
    return length_delimited(number, value.encode())


def packed_int64(number: int, values: list[int]) -> bytes:
    return length_delimited(number, b"".join(varint(v) for v in values))


@dataclass
class Devices:
    resource_name: str
    device_ids: list[str]
    numa_nodes: list[int] = field(default_factory=list)


@dataclass
class Dynamic:
    """A DRA ``DynamicResource``: the claim's name and its devices' CDI names."""

    claim_name: str
    cdi_devices: list[str] = field(default_factory=list)


@dataclass
class Container:
    name: str
    devices: list[Devices] = field(default_factory=list)
    dynamic: list[Dynamic] = field(default_factory=list)


@dataclass
class Pod:
    namespace: str
    name: str
    containers: list[Container] = field(default_factory=list)


def container(name: str, *devices: tuple[str, list[str]]) -> Container:
    return Container(name, [Devices(res, list(ids)) for res, ids in devices])


def pod(namespace: str, name: str, *containers: Container) -> Pod:
    return Pod(namespace, name, list(containers))


def encode_devices(dev: Devices, extras: bool) -> bytes:
    out = string(1, dev.resource_name) + b"".join(string(2, i) for i in dev.device_ids)
    if extras or dev.numa_nodes:
        # TopologyInfo { repeated NUMANode nodes = 1 }, NUMANode { int64 ID = 1 }
        nodes = b"".join(length_delimited(1, key(1, 0) + varint(n)) for n in dev.numa_nodes)
        out += length_delimited(3, nodes)
    return out


def encode_dynamic(d: Dynamic, extras: bool) -> bytes:
    """DynamicResource { class_name = 1 (gone since 1.31); claim_name = 2; claim_namespace = 3;
    repeated ClaimResource claim_resources = 4 }, ClaimResource { repeated CDIDevice
    cdi_devices = 1; driver_name = 2; pool_name = 3; device_name = 4 }, CDIDevice { name = 1 }."""
    out = string(1, "dra-class") if extras else b""
    out += string(2, d.claim_name) + (string(3, "ns") if extras else b"")
    claim = b"".join(length_delimited(1, string(1, n)) for n in d.cdi_devices)
    if extras:
        claim += string(2, "driver") + string(3, "pool") + string(4, "dev")
    return out + length_delimited(4, claim)


def encode_container(c: Container, extras: bool) -> bytes:
    out = string(1, c.name)
    out += b"".join(length_delimited(2, encode_devices(d, extras)) for d in c.devices)
    out += b"".join(length_delimited(5, encode_dynamic(d, extras)) for d in c.dynamic)
    if extras:
        out += packed_int64(3, [0, 1, 7])  # cpu_ids
        memory = string(1, "memory") + key(2, 0) + varint(1 << 33)  # ContainerMemory
        out += length_delimited(4, memory)
        out += key(99, 5) + b"\x01\x02\x03\x04" + key(98, 1) + b"\x00" * 8  # unknown fields
    return out


def encode_pod(p: Pod, extras: bool) -> bytes:
    out = b""
    if extras:
        out += key(50, 0) + varint(-1)  # an unknown int64 field before the known ones
    out += string(1, p.name) + string(2, p.namespace)
    return out + b"".join(length_delimited(3, encode_container(c, extras)) for c in p.containers)


def encode_list_response(pods: list[Pod], extras: bool = False) -> bytes:
    return b"".join(length_delimited(1, encode_pod(p, extras)) for p in pods)


# ---------------------------------------------------------------- the server


class PodResourcesServer:
    """A gRPC server bound to ``unix://<socket_path>``, started by ``start``/``with``."""

    def __init__(self, socket_path: str | Path) -> None:
        self.socket_path = Path(socket_path)
        self.pods: list[Pod] = []
        self.fail_with: grpc.StatusCode | None = None
        self.raw_answer: bytes | None = None
        self.delay = 0.0
        self.extras = False
        self.calls = 0
        self._lock = threading.Lock()
        self._server: Any = None

    def _list(self, request: bytes, context: Any) -> bytes:
        with self._lock:
            self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        if self.fail_with is not None:
            context.abort(self.fail_with, "stand-in kubelet refuses")
        if self.raw_answer is not None:
            return self.raw_answer
        return encode_list_response(self.pods, self.extras)

    def start(self) -> PodResourcesServer:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handler = grpc.unary_unary_rpc_method_handler(self._list)  # bytes in, bytes out
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, {"List": handler}),)
        )
        if not server.add_insecure_port(f"unix://{self.socket_path}"):
            raise RuntimeError(f"cannot listen on {self.socket_path}")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait(5)
            self._server = None
        self.socket_path.unlink(missing_ok=True)

    def __enter__(self) -> PodResourcesServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
