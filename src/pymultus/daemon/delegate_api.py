"""``POST /delegate``: run ONE delegate config for a running pod (behaviour row 54).

The hot-plug API of multus-dynamic-networks-controller: it posts a single CNI config (not a
Multus config) with the pod's sandbox identity, and for ADD optional ``interfaceAttributes``
(``ips``, ``mac``, ``cni-args``), which reach the delegate the way an annotation's requests
do: ``ips``/``mac`` as capability args and ``IP=``/``MAC=`` in CNI_ARGS, ``cni-args`` merged
into ``args.cni``.

As in Go: ADD, DEL, CHECK and STATUS (no GC); ``binDir``/``cniDir`` from the daemon config;
no network-status update and no delegate cache (the controller updates the status itself);
DEL errors are returned, not swallowed. Beyond Go: the interface name is checked to be free in
the pod before ADD, and the call holds the container's lock, so a hot-plug never interleaves
with the pod's own ADD or DEL.
"""

from __future__ import annotations

import logging

import msgspec

from pymultus.cni import netconf
from pymultus.cni.chain import CNIConfig, RuntimeConf
from pymultus.cni.env import parse_plugin_env
from pymultus.cni.errors import InvalidEnvironmentError, UnknownContainerError
from pymultus.cni.netconf import NetConf, NetConfList
from pymultus.config.daemon import DaemonConf
from pymultus.config.multus import DEFAULT_BIN_DIR, DEFAULT_CNI_DIR, MultusConf
from pymultus.core import delegates, resolve
from pymultus.core.add import check_ifname_free, emit_added
from pymultus.core.delegate import Delegate, load_delegate
from pymultus.core.pods import pod_for_add
from pymultus.core.request import Request
from pymultus.core.runtime import runtime_conf
from pymultus.daemon.handler import Backend, add_response, require_pod
from pymultus.daemon.server import JSON, HttpRequest, HttpResponse
from pymultus.protocol import wire

log = logging.getLogger(__name__)

VERBS = frozenset({"ADD", "DEL", "CHECK", "STATUS"})
_OK = HttpResponse(200, headers=(("Content-Type", JSON),))


def delegate_conf(daemon: DaemonConf) -> MultusConf:
    """The Multus settings a delegate call uses: the daemon config's dirs (Go unmarshals
    the daemon config into a default ``NetConf`` for every /delegate call)."""
    return MultusConf(
        raw=daemon.raw,
        name="multus-cni-network",
        cni_version=daemon.cni_version,
        bin_dir=daemon.bin_dir or DEFAULT_BIN_DIR,
        cni_dir=daemon.cni_dir or DEFAULT_CNI_DIR,
    )


class DelegateHandler:
    """``POST /delegate``."""

    def __init__(self, daemon: DaemonConf, backend: Backend) -> None:
        self.conf = delegate_conf(daemon)
        self.backend = backend

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        return await self.backend.serve(
            request, "/delegate", wire.decode_delegate_request, self.run
        )

    def run(self, body: wire.DelegateRequest) -> HttpResponse:
        """The whole call, in a worker thread."""
        cmd = parse_plugin_env(self.backend.complete_env(body.env), body.config)
        if cmd.command not in VERBS:
            raise InvalidEnvironmentError(
                f"/delegate does not run {cmd.command}: use ADD, DEL, CHECK or STATUS",
                field="CNI_COMMAND",
            )
        req = Request.build(cmd, self.conf)
        require_pod(req)
        delegate = with_attributes(
            load_delegate(body.config, prefix="config."), body.interfaceAttributes
        )
        net = resolve.net_of(delegate)
        cni = delegates.cni_for(req, self.backend.deps)
        if cmd.command == "ADD":
            return self._add(req, delegate, cni, net)
        if cmd.command == "STATUS":
            cni.status_network_list(
                net if isinstance(net, NetConfList) else netconf.conflist_from_conf(net)
            )
            return _OK
        rt = self._runtime(req, delegate)
        if cmd.command == "DEL":
            delegates.delete(cni, net, rt)
        else:
            delegates.check(cni, net, rt)
        return _OK

    def _add(
        self, req: Request, delegate: Delegate, cni: CNIConfig, net: NetConf | NetConfList
    ) -> HttpResponse:
        deps = self.backend.deps
        pod = pod_for_add(req, deps)
        if pod is None and deps.has_kubernetes:
            raise UnknownContainerError(
                f"pod {req.k8s.pod_namespace}/{req.k8s.pod_name} not found", pod=req.who
            )
        check_ifname_free(req, deps, req.cmd.ifname, delegate.name)
        result = delegates.add(cni, net, self._runtime(req, delegate))
        emit_added(deps, pod, req.cmd.ifname, delegate.name, result)
        return add_response(result, JSON)

    def _runtime(self, req: Request, delegate: Delegate) -> RuntimeConf:
        return runtime_conf(
            req,
            delegate,
            req.cmd.ifname,
            is_master=False,
            append_runtime_args=self.backend.deps.append_runtime_args,
        )


def with_attributes(delegate: Delegate, attrs: wire.InterfaceAttributes | None) -> Delegate:
    """The delegate with the caller's ips, mac and cni-args applied (Go: ``cmdDelegateAdd``)."""
    if attrs is None:
        return delegate
    if attrs.cni_args:
        delegate = msgspec.structs.replace(
            delegate, raw=resolve.with_cni_args(delegate.raw, attrs.cni_args)
        )
    return msgspec.structs.replace(
        delegate,
        ip_requests=tuple(attrs.ips or ()) or delegate.ip_requests,
        mac_request=attrs.mac or delegate.mac_request,
    )
