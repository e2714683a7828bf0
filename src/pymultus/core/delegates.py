"""Running one delegate (a single config or a conflist) through libcni's runtime API."""

from __future__ import annotations

from pymultus.cni.chain import CNIConfig, RuntimeConf
from pymultus.cni.convert import AnyResult
from pymultus.cni.netconf import NetConf, NetConfList
from pymultus.core.deps import Deps
from pymultus.core.request import Request


def cni_for(req: Request, deps: Deps) -> CNIConfig:
    """libcni for this call: ``binDir`` first, then the runtime's CNI_PATH (row 46); libcni's
    result cache lives in ``cniDir``."""
    path = [req.conf.bin_dir, *[p for p in req.cmd.path if p != req.conf.bin_dir]]
    return CNIConfig(
        path, cache_dir=req.conf.cni_dir, executor=deps.executor, timeout=deps.plugin_timeout
    )


def add(cni: CNIConfig, net: NetConf | NetConfList, rt: RuntimeConf) -> AnyResult:
    if isinstance(net, NetConfList):
        return cni.add_network_list(net, rt)
    return cni.add_network(net, rt)


def delete(cni: CNIConfig, net: NetConf | NetConfList, rt: RuntimeConf) -> None:
    if isinstance(net, NetConfList):
        cni.del_network_list(net, rt)
    else:
        cni.del_network(net, rt)


def check(cni: CNIConfig, net: NetConf | NetConfList, rt: RuntimeConf) -> None:
    if isinstance(net, NetConfList):
        cni.check_network_list(net, rt)
    else:
        cni.check_network(net, rt)


def network_name(net: NetConf | NetConfList) -> str:
    return net.name
