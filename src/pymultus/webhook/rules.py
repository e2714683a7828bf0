"""What the webhook allows: NetworkAttachmentDefinitions and the pod annotations that select
networks, judged by the parsers and rules ADD uses, so a write the webhook lets through does
not fail later at ADD for the same reason, and the messages are the ones ADD would give.

- NAD CREATE/UPDATE: ``spec.config`` empty (the config comes from ``confDir``), or JSON that
  loads as a delegate the way ADD loads it, with a known ``cniVersion``, ``type``s that are
  plain file names and, in a conflist, no plugin named other than the list; the
  ``k8s.v1.cni.cncf.io/resourceName`` annotation a ``domain/name`` resource name.
- Pod CREATE, and UPDATE when the networks annotation changed (hot-plug): the networks and
  default-network annotations as the core parses them, one IPv4 and one IPv6 gateway at most,
  and namespace isolation. A referenced NAD that does not exist (yet) is allowed with a
  warning: GitOps tools create pods and NADs in any order.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol

from pymultus.cni import netconf
from pymultus.cni.env import validate_network_name
from pymultus.cni.errors import CniError, InvalidConfigError
from pymultus.cni.version import require_known
from pymultus.config.multus import MultusConf
from pymultus.core.delegate import load_delegate
from pymultus.core.resolve import check_isolation, net_of
from pymultus.k8s.objects import (
    DEFAULT_NETWORK_ANNOTATION,
    NETWORKS_ANNOTATION,
    RESOURCE_NAME_ANNOTATION,
    Pod,
)
from pymultus.k8s.selection import (
    NetworkSelection,
    check_gateways,
    parse_default_network_annotation,
    parse_networks_annotation,
)
from pymultus.webhook.review import ALLOWED, AdmissionRequest, Verdict, deny

NAD_KIND = ("k8s.cni.cncf.io", "NetworkAttachmentDefinition")
POD_KIND = ("", "Pod")
_WRITES = frozenset({"CREATE", "UPDATE"})
_QUALIFIED = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")

# Denial reasons (the ``reason`` label of the denial counter).
INVALID_NAD_CONFIG = "invalid_nad_config"
INVALID_RESOURCE_NAME = "invalid_resource_name"
INVALID_NETWORKS = "invalid_networks_annotation"
INVALID_DEFAULT_NETWORK = "invalid_default_network_annotation"
NAMESPACE_ISOLATION = "namespace_isolation"


class NadLookup(Protocol):
    def get_nad(self, namespace: str, name: str) -> object | None:
        """The NAD, None when it does not exist; ``CniError`` when the API cannot say."""
        ...


def judge(req: AdmissionRequest, conf: MultusConf, nads: NadLookup | None) -> Verdict:
    """The verdict on one admission request; kinds other than NADs and pods are allowed."""
    kind = (req.kind.group, req.kind.kind)
    if req.operation not in _WRITES or req.object is None:
        return ALLOWED
    if kind == NAD_KIND:
        return judge_nad(req.object, req.namespace)
    if kind == POD_KIND:
        return judge_pod(req, conf, nads)
    return ALLOWED


# ---------------------------------------------------------------- NetworkAttachmentDefinitions


def judge_nad(obj: Mapping[str, Any], namespace: str) -> Verdict:
    meta = _mapping(obj.get("metadata"))
    resource = _mapping(meta.get("annotations")).get(RESOURCE_NAME_ANNOTATION)
    if resource is not None:
        problem = resource_name_problem(resource)
        if problem:
            where = f"metadata.annotations[{RESOURCE_NAME_ANNOTATION}]"
            return deny(f"{where}: {problem}", INVALID_RESOURCE_NAME)
    config = _mapping(obj.get("spec")).get("config")
    if config is None or (isinstance(config, str) and not config.strip()):
        return ALLOWED  # Go's "config from confDir" form
    if not isinstance(config, str):
        return deny("spec.config: must be a string holding the CNI config JSON", INVALID_NAD_CONFIG)
    name = str(meta.get("name") or meta.get("generateName") or "")
    try:
        check_nad_config(config, f"{namespace or meta.get('namespace', '')}/{name}", name)
    except CniError as err:
        return deny(_located("spec.config", err), INVALID_NAD_CONFIG)
    return ALLOWED


def resource_name_problem(value: Any) -> str:
    """Why ``value`` is not a device-plugin resource name (``vendor.example/resource``)."""
    if not isinstance(value, str):
        return "must be a string"
    domain, slash, name = value.partition("/")
    if not slash:
        return f"{value!r} must be <domain>/<name>, e.g. intel.com/intel_sriov_netdevice"
    if len(domain) > 253 or not _SUBDOMAIN.fullmatch(domain):
        return f"{domain!r} is not a DNS subdomain (lower-case letters, digits, '-' and '.')"
    if len(name) > 63 or not _QUALIFIED.fullmatch(name):
        return (
            f"{name!r} is not a valid resource name (at most 63 letters, digits, '-', '_' and "
            "'.', starting and ending with a letter or digit)"
        )
    return ""


def check_nad_config(config: str, status_name: str, nad_name: str) -> None:
    """``spec.config`` loaded as ADD loads it, then what ADD finds only at exec time."""
    raw = config.encode("utf-8", "surrogatepass")  # a lone surrogate: the decoder refuses it
    obj = netconf.decode_object(raw, "the CNI config")
    if not obj.get("name"):
        raw = netconf.inject(raw, name=nad_name or "placeholder")
        obj = netconf.decode_object(raw)
    if isinstance(obj.get("name"), str):
        validate_network_name(obj["name"])
    net = net_of(load_delegate(raw, name=status_name))
    require_known(net.cni_version)
    plugins = net.plugins if isinstance(net, netconf.NetConfList) else (net,)
    for i, plugin in enumerate(plugins):
        prefix = f"plugins[{i}]." if isinstance(net, netconf.NetConfList) else ""
        _plain_file_name(plugin.type, f"{prefix}type")
        ipam = plugin.data.get("ipam")
        if isinstance(ipam, dict) and ipam.get("type"):
            _plain_file_name(str(ipam["type"]), f"{prefix}ipam.type")
        if isinstance(net, netconf.NetConfList) and plugin.name not in ("", net.name):
            raise InvalidConfigError(
                f"{prefix}name: {plugin.name!r} differs from the list's name {net.name!r}",
                field=f"{prefix}name",
            )


def _plain_file_name(value: str, field: str) -> None:
    """libcni finds a plugin by file name in its bin dirs; anything else can never run."""
    if "/" in value or "\0" in value or value in (".", ".."):
        raise InvalidConfigError(
            f"{field}: {value!r} is not a plain file name (a plugin binary in the CNI bin dir)",
            field=field,
        )


def _located(where: str, err: CniError) -> str:
    """``err``'s message under ``where`` (``spec.config.plugins[0].type: ...``)."""
    field = err.field or ""
    message = err.msg
    if field and message.startswith(f"{field}: "):
        message = message[len(field) + 2 :]
    if err.details and err.details not in message:
        message = f"{message} ({err.details})"
    location = f"{where}.{field}" if field else where
    return f"{location}: {message}"


# ---------------------------------------------------------------- pods


def judge_pod(req: AdmissionRequest, conf: MultusConf, nads: NadLookup | None) -> Verdict:
    obj = req.object or {}
    meta = _mapping(obj.get("metadata"))
    annotations = _annotations(meta)
    networks = annotations.get(NETWORKS_ANNOTATION)
    default = annotations.get(DEFAULT_NETWORK_ANNOTATION) if req.operation == "CREATE" else None
    if req.operation == "UPDATE":
        old = _annotations(_mapping(_mapping(req.oldObject).get("metadata")))
        if networks == old.get(NETWORKS_ANNOTATION):
            return ALLOWED
    pod = Pod(namespace=req.namespace or str(meta.get("namespace") or ""), name=req.name)
    selected = _selections(networks or "", pod, conf)
    if isinstance(selected, Verdict):
        return selected
    if default:
        try:
            sel = parse_default_network_annotation(default, conf.multus_namespace)
        except InvalidConfigError as err:
            return deny(err.msg, INVALID_DEFAULT_NETWORK)
        except UnicodeError:
            where = DEFAULT_NETWORK_ANNOTATION
            return deny(f"{where}: is not valid UTF-8 text", INVALID_DEFAULT_NETWORK)
        selected.append((DEFAULT_NETWORK_ANNOTATION, sel))
    warnings = missing_nads(selected, nads) if nads is not None else ()
    return Verdict(True, warnings=warnings)


def _selections(
    value: str, pod: Pod, conf: MultusConf
) -> list[tuple[str, NetworkSelection]] | Verdict:
    """Every element of the networks annotation with its location, checked as ADD checks
    them; the denial when one fails."""
    try:
        selections = parse_networks_annotation(value, pod.namespace)
        check_gateways(selections)
    except InvalidConfigError as err:
        return deny(err.msg, INVALID_NETWORKS)
    except UnicodeError:  # a lone surrogate (never from the API server, which is Go)
        return deny(f"{NETWORKS_ANNOTATION}: is not valid UTF-8 text", INVALID_NETWORKS)
    located = [(f"{NETWORKS_ANNOTATION}[{i}]", sel) for i, sel in enumerate(selections)]
    for where, sel in located:
        try:
            check_isolation(sel, conf, pod)
        except InvalidConfigError as err:
            return deny(f"{where}: {err.msg}", NAMESPACE_ISOLATION, 403)
    return located


def missing_nads(selected: list[tuple[str, NetworkSelection]], nads: NadLookup) -> tuple[str, ...]:
    """A warning for each referenced NAD that does not exist or could not be looked up."""
    warnings = []
    for where, sel in selected:
        try:
            found = nads.get_nad(sel.namespace, sel.name)
        except CniError as err:
            warnings.append(
                f"{where}: could not check network-attachment-definition "
                f"{sel.namespace}/{sel.name}: {err.msg}"
            )
            continue
        if found is None:
            warnings.append(
                f"{where}: cannot find a network-attachment-definition ({sel.name}) in "
                f"namespace ({sel.namespace}): the pod will not start until it exists"
            )
    return tuple(warnings)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _annotations(meta: Mapping[str, Any]) -> dict[str, str]:
    raw = _mapping(meta.get("annotations"))
    return {k: v for k, v in raw.items() if isinstance(v, str)}
