"""THE generator of the thick shim config ``00-multus.conf`` (behaviour row 62, §3.3).

Pure: the primary CNI config's bytes and the daemon config in, the exact bytes Go Multus's
``MultusConf.Generate`` writes out; reading, watching and writing files is the daemon's
config manager's job. The output is Go's ``json.Marshal`` of its ``MultusConf`` struct, so
the keys come in struct order and empty ones are left out::

    binDir, capabilities, cniVersion, logFile, logLevel, logToStderr, logOptions, name,
    clusterNetwork, namespaceIsolation, globalNamespaces, type, cniDir,
    auxiliaryCNIChainName, daemonSocketDir

``cniVersion``, ``name`` and ``type`` are always written. ``capabilities`` is the daemon
config's own map (false entries included) plus every capability the primary enables: in each
of its ``plugins`` for a conflist, else at the top level. Go's map encoding sorts its keys.

Where Go differs on purpose:

- Go's manager keeps adding capabilities across regenerations, so one the primary dropped
  stays in ``00-multus.conf`` until a restart; here each generation starts afresh.
- A primary Go would panic on (a non-bool capability, ``plugins`` that is not a list, a
  non-string ``name``) is a clear ``InvalidConfigError`` naming the field and the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

from pymultus.cni import gojson
from pymultus.cni.errors import IncompatibleVersionError, InvalidConfigError
from pymultus.cni.netconf import decode_object, go_field, remarshal
from pymultus.config.daemon import DaemonConf
from pymultus.config.logging import typed_field

#: The file the daemon writes in ``cniConfigDir``; always ``.conf``, even for CNI 1.x (§11.15).
MULTUS_CONFIG_FILE = "00-multus.conf"
#: Files whose names start so are ours and never taken for the primary config.
OWN_FILE_PREFIX = "00-multus"
#: The network name of the generated config unless ``overrideNetworkName`` is set.
DEFAULT_NETWORK_NAME = "multus-cni-network"
#: CHECK came with 0.4.0; Go refuses a primary older than that under a newer Multus.
_CHECK_VERSION = (0, 4, 0, 1)
#: blang/semver's grammar, which Go uses for the version check (stricter than libcni's).
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
#: Go's ``logging.LogOptions`` fields, in struct order (each a pointer: absent means unset).
_LOG_OPTION_KEYS = ("maxAge", "maxSize", "maxBackups", "compress")


def generate_shim_config(primary: bytes, conf: DaemonConf, *, primary_path: str) -> bytes:
    """The bytes of ``00-multus.conf`` for the primary config ``primary`` read from
    ``primary_path`` (which becomes ``clusterNetwork``), no trailing newline.

    With ``forceCNIVersion`` the primary is checked as if its ``cniVersion`` were already
    the daemon's (the manager rewrites the file to make that true, as Go does).
    Raises ``DecodeError`` when the primary is not a JSON object,
    ``IncompatibleVersionError`` when Go would refuse the versions, and
    ``InvalidConfigError`` for a primary whose capabilities or name cannot be used.
    """
    obj = primary_object(primary, primary_path)
    if conf.force_cni_version:
        obj["cniVersion"] = conf.cni_version
    check_version_compatibility(conf.cni_version, obj, primary_path)
    out: dict[str, Any] = {}
    if conf.bin_dir:
        out["binDir"] = conf.bin_dir
    capabilities = merged_capabilities(conf.capabilities, obj, primary_path)
    if capabilities:
        out["capabilities"] = capabilities
    out["cniVersion"] = conf.cni_version
    _log_keys(out, conf)
    out["name"] = _network_name(obj, conf, primary_path)
    out["clusterNetwork"] = primary_path
    if conf.namespace_isolation:
        out["namespaceIsolation"] = True
    if conf.global_namespaces:
        out["globalNamespaces"] = conf.global_namespaces
    out["type"] = conf.type
    for key, value in (
        ("cniDir", conf.cni_dir),
        ("auxiliaryCNIChainName", conf.auxiliary_cni_chain_name),
        ("daemonSocketDir", conf.daemon_socket_dir),
    ):
        if value:
            out[key] = value
    return gojson.marshal(out)


def primary_object(primary: bytes, path: str) -> dict[str, Any]:
    """The primary config as a JSON object; ``DecodeError`` naming the file otherwise."""
    return decode_object(bytes(primary), f"primary CNI config {path}")


def forced_primary(primary: bytes, cni_version: str, path: str) -> bytes:
    """The primary config with its ``cniVersion`` replaced (``forceCNIVersion``), re-encoded
    as Go's ``json.Marshal`` of a map does it: keys sorted, compact."""
    obj = primary_object(primary, path)
    obj["cniVersion"] = cni_version
    return remarshal(obj)


def check_version_compatibility(multus_version: str, primary: Mapping[str, Any], path: str) -> None:
    """Go's ``CheckVersionCompatibility``: a Multus at 0.4.0 or newer refuses a primary older
    than 0.4.0 (CHECK would reach a plugin that does not know it). The Multus version must be
    a semantic version; the primary's only when Multus is 0.4.0 or newer."""
    multus = _semver(multus_version)
    if multus is None:
        raise IncompatibleVersionError(
            "couldn't get top level cni version: the daemon config's cniVersion "
            f"{multus_version!r} is not a version such as 1.0.0 (it is mandatory in auto mode)",
            field="cniVersion",
        )
    if multus < _CHECK_VERSION:
        return
    delegate = primary.get("cniVersion")
    if not isinstance(delegate, str):
        raise IncompatibleVersionError(
            f"couldn't get cni version of delegate: {path} has no string cniVersion",
            field="cniVersion",
            path=path,
        )
    version = _semver(delegate)
    if version is None:
        raise IncompatibleVersionError(
            f"invalid cniVersion {delegate!r} in {path}", field="cniVersion", path=path
        )
    if version < _CHECK_VERSION:
        raise IncompatibleVersionError(
            f"delegate cni version is {delegate} while top level cni version is {multus_version}",
            field="cniVersion",
            path=path,
        )


def merged_capabilities(
    own: Mapping[str, bool], primary: Mapping[str, Any], path: str
) -> dict[str, bool]:
    """The daemon config's ``capabilities`` plus those the primary enables, keys sorted."""
    merged = dict(own)
    for name in enabled_capabilities(primary, path):
        merged[name] = True
    return dict(sorted(merged.items()))


def enabled_capabilities(primary: Mapping[str, Any], path: str) -> list[str]:
    """Capabilities set to true in each plugin of a conflist, else at the top level."""
    plugins = primary.get("plugins")
    if plugins is not None and not isinstance(plugins, list):
        raise InvalidConfigError(
            f"plugins in {path} must be a list, got {plugins!r}", field="plugins", path=path
        )
    if not plugins:
        return _enabled(primary, "capabilities", path)
    found: list[str] = []
    for index, plugin in enumerate(plugins):
        if isinstance(plugin, Mapping):
            found += _enabled(plugin, f"plugins[{index}].capabilities", path)
    return found


def _enabled(conf: Mapping[str, Any], where: str, path: str) -> list[str]:
    capabilities = conf.get("capabilities")
    if not isinstance(capabilities, Mapping):
        return []
    for name, flag in capabilities.items():
        if not isinstance(flag, bool):
            raise InvalidConfigError(
                f"{where}.{name} in {path} must be true or false, got {flag!r}",
                field=f"{where}.{name}",
                path=path,
            )
    return [name for name, flag in capabilities.items() if flag]


def _network_name(primary: Mapping[str, Any], conf: DaemonConf, path: str) -> str:
    if not conf.override_network_name:
        return DEFAULT_NETWORK_NAME
    if "name" not in primary:
        raise InvalidConfigError(
            f"overrideNetworkName: failed to access delegate CNI plugin name in {path}",
            field="name",
            path=path,
        )
    name = primary["name"]
    if not isinstance(name, str) or not name:
        raise InvalidConfigError(
            f"overrideNetworkName: the primary CNI configuration {path} does not feature "
            f"the network name (got {name!r})",
            field="name",
            path=path,
        )
    return name


def _log_keys(out: dict[str, Any], conf: DaemonConf) -> None:
    """logFile, logLevel (as written, even a level Go cannot use), logToStderr, logOptions."""
    if conf.log.file:
        out["logFile"] = conf.log.file
    level = typed_field(conf.raw_map, "logLevel", str, "")
    if level:
        out["logLevel"] = level
    if conf.log.to_stderr:
        out["logToStderr"] = True
    found, options = go_field(conf.raw_map, "logOptions")
    if found and isinstance(options, Mapping):
        kept: dict[str, Any] = {}
        for key in _LOG_OPTION_KEYS:
            present, value = go_field(options, key)
            if present and value is not None:
                kept[key] = value
        out["logOptions"] = kept


def _semver(text: str) -> tuple[int, int, int, int] | None:
    """(major, minor, patch, release) of a semantic version, ordered as semver orders them:
    a pre-release (``0.4.0-rc1``, release 0) sorts below its release (release 1)."""
    match = _SEMVER.match(text)
    if match is None:
        return None
    return (int(match[1]), int(match[2]), int(match[3]), 0 if match[4] else 1)


# ---------------------------------------------------------------- the thin plugin's config


def generate_thin_config(
    primary: bytes,
    *,
    primary_path: str,
    kubeconfig: str,
    cni_version: str = "",
    log_level: str = "",
    log_file: str = "",
    log_to_stderr: bool = True,
    namespace_isolation: bool = False,
    global_namespaces: str = "",
    readiness_indicator_file: str = "",
    bin_dir: str = "",
) -> tuple[str, bytes]:
    """The thin plugin's config and its file name, as Go's thin entrypoint writes them
    (behaviour §3.4): ``00-multus.conf`` below CNI 1.0.0, else ``00-multus.conflist`` whose
    single plugin is ``type: multus``; the primary config goes into ``delegates``.

    Keys in Go's order: cniVersion, name, type, then only when set capabilities (copied as
    they are, false ones included), namespaceIsolation, globalNamespaces, logToStderr (only
    when false), logLevel, logFile, binDir, readinessindicatorfile, then kubeconfig and
    delegates. 2-space indentation.
    """
    obj = primary_object(primary, primary_path)
    version = cni_version or str(obj.get("cniVersion", "")) or "1.0.0"
    check_version_compatibility(version, obj, primary_path)
    plugin: dict[str, Any] = {"type": "multus"}
    caps = _primary_capabilities(obj)
    optional: tuple[tuple[str, Any], ...] = (
        ("capabilities", caps),
        ("namespaceIsolation", namespace_isolation or None),
        ("globalNamespaces", global_namespaces),
        ("logToStderr", False if not log_to_stderr else None),
        ("logLevel", log_level),
        ("logFile", log_file),
        ("binDir", bin_dir),
        ("readinessindicatorfile", readiness_indicator_file),
    )
    plugin.update((k, v) for k, v in optional if v not in (None, "", {}))
    plugin["kubeconfig"] = kubeconfig
    plugin["delegates"] = [obj]
    head = {"cniVersion": version, "name": DEFAULT_NETWORK_NAME}
    if (_semver(version) or (0, 0, 0, 0)) >= (1, 0, 0, 0):
        body: dict[str, Any] = {**head, "plugins": [plugin]}
        name = "00-multus.conflist"
    else:
        body = {**head, **plugin}
        name = MULTUS_CONFIG_FILE
    text = msgspec.json.format(msgspec.json.encode(body), indent=2)
    return name, gojson.html_escape(text) + b"\n"


def _primary_capabilities(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Capabilities of the primary as they are (the thin generator keeps false ones)."""
    caps: dict[str, Any] = {}
    plugins = obj.get("plugins")
    sources = plugins if isinstance(plugins, list) else [obj]
    for conf in sources:
        if isinstance(conf, dict) and isinstance(conf.get("capabilities"), dict):
            caps.update(conf["capabilities"])
    return caps


def service_account_kubeconfig(server: str, token: str, ca_data: bytes) -> bytes:
    """The kubeconfig the thin plugin reads (Go's thin entrypoint writes the same shape: user
    ``multus``, context ``multus-context``), from the pod's service account."""
    import base64  # noqa: PLC0415 - only the thin entrypoint needs it

    ca = base64.b64encode(ca_data).decode()
    return (
        "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n"
        f"    server: {server}\n    certificate-authority-data: {ca}\n"
        "users:\n- name: multus\n  user:\n"
        f"    token: {token}\n"
        "contexts:\n- name: multus-context\n  context:\n    cluster: local\n    user: multus\n"
        "current-context: multus-context\n"
    ).encode()
