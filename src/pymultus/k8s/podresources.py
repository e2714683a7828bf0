"""Client of the kubelet's PodResources API: which device IDs the kubelet gave a pod.

Go Multus calls ``v1.PodResourcesLister/List`` on the kubelet's unix socket (10 s timeout,
16 MiB largest answer) and keeps, for the pod of the request (matched by name and
namespace), every device of every container, grouped by resource name (row 28).

Why no generated protobuf code: ``List`` takes an empty message and we read four fields of
the answer, so a small wire decoder (below, with unknown fields skipped as protobuf does)
replaces ``protoc`` output and the ``protobuf`` runtime. grpcio is imported only inside
``list_pod_resources``: the thin plugin loads this module on every ADD and must not pay for
gRPC unless a NAD names a resource.

Wire schema read (``k8s.io/kubelet/pkg/apis/podresources/v1/api.proto``)::

    ListPodResourcesResponse { repeated PodResources pod_resources = 1; }
    PodResources             { string name = 1; string namespace = 2;
                               repeated ContainerResources containers = 3; }
    ContainerResources       { string name = 1; repeated ContainerDevices devices = 2; ...
                               repeated DynamicResource dynamic_resources = 5; }
    ContainerDevices         { string resource_name = 1; repeated string device_ids = 2; ... }
    DynamicResource          { string claim_name = 2; ...
                               repeated ClaimResource claim_resources = 4; }
    ClaimResource            { repeated CDIDevice cdi_devices = 1; ... }
    CDIDevice                { string name = 1; }

DRA devices (``dynamic_resources``, kubelet gate ``KubeletPodResourcesDynamicResources``) go
into the map as Go Multus v4.3.0 puts them: under the ResourceClaim's name, each CDI device
name ``vendor.com/class=dev0`` as ``dev0`` (a name without exactly one ``=`` is skipped);
a claim shared by two containers counts once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from typing import Any

import msgspec

from pymultus.cni.errors import DecodeError, InvalidEnvironmentError, IOFailure, TryAgainLaterError

log = logging.getLogger(__name__)

#: Where the kubelet serves the API (kubelet ``--root-dir`` default ``/var/lib/kubelet``).
KUBELET_SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock"
LIST_METHOD = "/v1.PodResourcesLister/List"
#: Seconds for connecting and answering together; Go allows 10 s for each.
TIMEOUT = 10.0
#: The largest answer accepted, in bytes: Go's 16 MiB (gRPC's own default is 4 MiB, too small
#: for a node with many pods and devices).
MAX_MESSAGE = 16 * 1024 * 1024

_LEN = 2  # wire type of strings, bytes and embedded messages
_TRANSIENT = ("UNAVAILABLE", "DEADLINE_EXCEEDED")


class ContainerDevices(msgspec.Struct, frozen=True):
    resource_name: str
    device_ids: tuple[str, ...] = ()


class DynamicResource(msgspec.Struct, frozen=True):
    claim_name: str
    cdi_devices: tuple[str, ...] = ()


class ContainerResources(msgspec.Struct, frozen=True):
    name: str
    devices: tuple[ContainerDevices, ...] = ()
    dynamic: tuple[DynamicResource, ...] = ()


class PodResources(msgspec.Struct, frozen=True):
    name: str
    namespace: str
    containers: tuple[ContainerResources, ...] = ()


# ---------------------------------------------------------------- protobuf wire decoding


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    """A base-128 varint at ``pos``: (value, position after it)."""
    value = shift = 0
    while True:
        if pos >= len(data):
            raise DecodeError("invalid PodResources answer: truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift >= 70:
            raise DecodeError("invalid PodResources answer: varint longer than 10 bytes")


def _skip(data: memoryview, pos: int, wire: int) -> int:
    """The position after a number field's value of wire type ``wire``; groups (3, 4) were
    removed from protobuf and the kubelet never sends them."""
    if wire == 0:
        return _varint(data, pos)[1]
    if wire == 1:
        return pos + 8
    if wire == 5:
        return pos + 4
    raise DecodeError(f"invalid PodResources answer: unsupported wire type {wire}")


def _fields(data: memoryview) -> Iterator[tuple[int, memoryview]]:
    """(field number, bytes) of every length-delimited field; other wire types (numbers,
    and so the fields this client does not read) are skipped, as protobuf skips unknown
    fields."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise DecodeError("invalid PodResources answer: field number 0")
        if wire != _LEN:
            pos = _skip(data, pos, wire)
            if pos > len(data):
                raise DecodeError("invalid PodResources answer: truncated field")
            continue
        length, start = _varint(data, pos)
        pos = start + length
        if pos > len(data):
            raise DecodeError("invalid PodResources answer: truncated field")
        yield number, data[start:pos]


def _text(value: memoryview) -> str:
    try:
        return str(value, "utf-8")
    except UnicodeDecodeError as err:
        raise DecodeError(f"invalid PodResources answer: string is not UTF-8: {err}") from err


def _container_devices(data: memoryview) -> ContainerDevices:
    resource, ids = "", []
    for number, value in _fields(data):
        if number == 1:
            resource = _text(value)
        elif number == 2:
            ids.append(_text(value))
    return ContainerDevices(resource, tuple(ids))


def _dynamic_resource(data: memoryview) -> DynamicResource:
    claim, cdi = "", []
    for number, value in _fields(data):
        if number == 2:
            claim = _text(value)
        elif number == 4:  # ClaimResource: cdi_devices = 1, each CDIDevice { name = 1 }
            for n, device in _fields(value):
                cdi += [_text(v) for k, v in _fields(device) if k == 1] if n == 1 else []
    return DynamicResource(claim, tuple(cdi))


def _container(data: memoryview) -> ContainerResources:
    name, devices, dynamic = "", [], []
    for number, value in _fields(data):
        if number == 1:
            name = _text(value)
        elif number == 2:
            devices.append(_container_devices(value))
        elif number == 5:
            dynamic.append(_dynamic_resource(value))
    return ContainerResources(name, tuple(devices), tuple(dynamic))


def _pod(data: memoryview) -> PodResources:
    name, namespace, containers = "", "", []
    for number, value in _fields(data):
        if number == 1:
            name = _text(value)
        elif number == 2:
            namespace = _text(value)
        elif number == 3:
            containers.append(_container(value))
    return PodResources(name, namespace, tuple(containers))


def decode_list_response(data: bytes) -> list[PodResources]:
    """``ListPodResourcesResponse`` from its protobuf bytes; ``DecodeError`` when malformed."""
    return [_pod(value) for number, value in _fields(memoryview(data)) if number == 1]


# ---------------------------------------------------------------- the gRPC call


def _target(socket_path: str) -> str:
    return "unix://" + os.path.abspath(socket_path)


def list_pod_resources(
    socket_path: str = KUBELET_SOCKET, *, timeout: float = TIMEOUT
) -> list[PodResources]:
    """Every pod's resources as the kubelet reports them (one ``List`` call).

    A kubelet that cannot answer now (socket not accepting, timeout) gives
    ``TryAgainLaterError``; any other gRPC failure gives ``IOFailure``.
    """
    import grpc  # type: ignore[import-untyped]  # noqa: PLC0415  (lazy on purpose)

    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE),
        ("grpc.enable_http_proxy", 0),
    ]
    with grpc.insecure_channel(_target(socket_path), options=options) as channel:
        # The answer comes back as bytes and is decoded here, not in a gRPC deserializer,
        # which would turn a DecodeError into an anonymous INTERNAL status.
        call = channel.unary_unary(LIST_METHOD, request_serializer=_empty_request)
        try:
            answer: bytes = call(b"", timeout=timeout)
        except grpc.RpcError as err:
            raise _rpc_failure(err, socket_path) from err
    return decode_list_response(answer)


def _empty_request(_: Any) -> bytes:
    """``ListPodResourcesRequest`` has no fields: its encoding is empty."""
    return b""


def _rpc_failure(err: Any, socket_path: str) -> IOFailure | TryAgainLaterError:
    code = err.code() if callable(getattr(err, "code", None)) else None
    name = getattr(code, "name", "UNKNOWN")
    details = err.details() if callable(getattr(err, "details", None)) else str(err)
    msg = f"error listing pod resources from the kubelet at {socket_path}: {name}: {details}"
    if name in _TRANSIENT:
        return TryAgainLaterError(msg, path=socket_path)
    return IOFailure(msg, path=socket_path)


# ---------------------------------------------------------------- per pod


def resource_map_of(
    pods: Iterable[PodResources], namespace: str, name: str
) -> dict[str, list[str]]:
    """``{resource: [device IDs, sorted]}`` over every container of the pod ``namespace/name``;
    empty when the kubelet does not list the pod."""
    found: dict[str, list[str]] = {}
    for pod in pods:
        if pod.name != name or pod.namespace != namespace:
            continue
        claims: set[str] = set()
        for container in pod.containers:
            for dev in container.devices:
                found.setdefault(dev.resource_name, []).extend(dev.device_ids)
            for dyn in container.dynamic:
                if dyn.claim_name not in claims:
                    claims.add(dyn.claim_name)
                    found.setdefault(dyn.claim_name, []).extend(cdi_device_ids(dyn.cdi_devices))
    return {resource: sorted(ids) for resource, ids in found.items()}


def cdi_device_ids(names: Iterable[str]) -> list[str]:
    """The device part of fully qualified CDI names (``vendor.com/class=dev0`` -> ``dev0``)."""
    ids = []
    for name in names:
        parts = name.split("=")
        if len(parts) == 2:
            ids.append(parts[1])
        else:
            log.warning("invalid CDI device name %r: skipped", name)
    return ids


def get_pod_resource_map(
    namespace: str, name: str, *, socket_path: str = KUBELET_SOCKET, timeout: float = TIMEOUT
) -> dict[str, list[str]]:
    """The device IDs the kubelet allocated to one pod, by resource name."""
    if not namespace or not name:
        raise InvalidEnvironmentError(
            "cannot look up pod resources: the pod name or namespace is empty",
            field="K8S_POD_NAME" if not name else "K8S_POD_NAMESPACE",
        )
    return resource_map_of(list_pod_resources(socket_path, timeout=timeout), namespace, name)
