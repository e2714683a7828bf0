"""Where the thin plugin's API server is and how to authenticate: a kubeconfig (or the in-cluster
service account) reduced to an :class:`Endpoint`, for the standard-library client ``k8s.lite``.

Kubeconfig rules are client-go's (and lightkube's): ``current-context`` names a context, which
names a cluster (``server``, ``certificate-authority[-data]``, ``insecure-skip-tls-verify``,
``tls-server-name``) and a user (``token``, ``tokenFile``, ``client-certificate[-data]``,
``client-key[-data]``, ``username``/``password``); relative file names are relative to the
kubeconfig's directory. A user that needs ``exec`` or ``auth-provider`` is not handled here:
:func:`load_endpoint` answers ``None`` and the caller uses the lightkube client instead.

Parsing YAML costs more than the rest of a thin call's start-up (PyYAML's import alone is
~25 ms), so a kubeconfig that is not JSON is parsed once per content: the ``Endpoint`` is kept
in ``<cache_dir>/.kubeconfig-<hash of the path>.json`` (0600, written atomically; hidden, so
no scan of the delegate cache takes it for a container) with the file's identity (device,
inode, size, mtime); any change to the file parses it again. Files the
endpoint names (token file, CA, client certificate) are read on every call, never cached, so a
rotated token is used at once (row 19).
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from typing import Any

import msgspec

from pymultus.cni import limits
from pymultus.cni.errors import InvalidConfigError

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


class Endpoint(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An API server and the credentials for it; file fields are absolute paths."""

    server: str
    ca_file: str = ""
    ca_data: str = ""  # PEM
    insecure: bool = False
    tls_server_name: str = ""
    cert_file: str = ""
    key_file: str = ""
    cert_data: str = ""  # PEM
    key_data: str = ""  # PEM
    token: str = ""
    token_file: str = ""
    username: str = ""
    password: str = ""

    def files(self) -> list[str]:
        return [f for f in (self.ca_file, self.cert_file, self.key_file, self.token_file) if f]


class _Cached(msgspec.Struct, frozen=True):
    key: list[int]
    endpoint: Endpoint | None


class _Unsupported(Exception):
    """The kubeconfig needs what only the full client does (exec, auth-provider)."""


def load_endpoint(kubeconfig: str | None, *, cache_dir: str = "") -> Endpoint | None:
    """The endpoint of ``kubeconfig``; without one, the in-cluster service account when
    ``KUBERNETES_SERVICE_HOST`` and ``KUBERNETES_SERVICE_PORT`` are set.

    Raises ``InvalidConfigError`` (field ``kubeconfig``) for a kubeconfig or service account
    that cannot be used, and ``LookupError`` when there is neither (no Kubernetes). ``None``:
    usable, but only by the full client (exec or auth-provider credentials).
    """
    if kubeconfig:
        try:
            endpoint = _from_file(os.path.expanduser(kubeconfig), cache_dir)
            if endpoint is not None:
                _check_files(endpoint)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InvalidConfigError(
                f"error getting k8s client: kubeconfig {kubeconfig!r} is not usable: {_brief(e)}",
                field="kubeconfig",
                path=kubeconfig,
            ) from e
        return endpoint
    host, port = (
        os.environ.get("KUBERNETES_SERVICE_HOST"),
        os.environ.get("KUBERNETES_SERVICE_PORT"),
    )
    if not (host and port):
        raise LookupError("no kubeconfig and not in a cluster")
    endpoint = Endpoint(
        server=f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}",
        ca_file=f"{SERVICE_ACCOUNT_DIR}/ca.crt",
        token_file=f"{SERVICE_ACCOUNT_DIR}/token",
    )
    try:
        _check_files(endpoint)
    except OSError as e:
        raise InvalidConfigError(
            "error getting k8s client: no kubeconfig set and the in-cluster service "
            f"account is not usable: {_brief(e)}",
            field="kubeconfig",
        ) from e
    return endpoint


def _brief(e: BaseException) -> str:
    if isinstance(e, KeyError):
        return f"missing or unknown entry {e}"
    return str(e) or type(e).__name__


def _check_files(endpoint: Endpoint) -> None:
    for path in endpoint.files():
        if not os.path.isfile(path):
            raise FileNotFoundError(2, "No such file", path)


def _from_file(path: str, cache_dir: str) -> Endpoint | None:
    with open(path, "rb") as f:
        info = os.fstat(f.fileno())
        raw = f.read()
    if raw.lstrip()[:1] == b"{":  # JSON: as fast to parse as any cache
        limits.check_json(raw, field="kubeconfig", max_bytes=limits.MAX_FILE_BYTES)
        return _endpoint_or_none(msgspec.json.decode(raw), path)
    key = [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns]
    cache = _cache_path(cache_dir, path) if cache_dir else ""
    cached = _read_cache(cache, key) if cache else None
    if cached is not None:
        return cached.endpoint
    import yaml  # noqa: PLC0415 - only when the cache cannot answer

    try:
        docs = limits.load_yaml(raw, field="kubeconfig")
    except yaml.YAMLError as e:
        raise ValueError(f"not YAML: {e}") from e
    if len(docs) > 1:
        raise ValueError("not YAML: expected a single document")
    doc = docs[0] if docs else None
    endpoint = _endpoint_or_none(doc, path)
    if cache:
        _write_cache(cache, _Cached(key, endpoint))
    return endpoint


def _cache_path(cache_dir: str, path: str) -> str:
    import hashlib  # noqa: PLC0415 - YAML kubeconfigs only

    digest = hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:16]
    return os.path.join(cache_dir, f".kubeconfig-{digest}.json")


def _read_cache(cache: str, key: list[int]) -> _Cached | None:
    """The cached form when it is ours (owner, mode 0600) and of this very file."""
    try:
        with open(cache, "rb") as f:
            info = os.fstat(f.fileno())
            data = f.read()
        if info.st_uid != os.geteuid() or info.st_mode & 0o077:
            return None
        cached = msgspec.json.decode(data, type=_Cached)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None
    return cached if cached.key == key else None


def _write_cache(cache: str, cached: _Cached) -> None:
    """Best effort: a directory that cannot be written only means parsing again next time."""
    from pymultus.cni.atomic import write_atomic  # noqa: PLC0415
    from pymultus.cni.errors import CniError  # noqa: PLC0415

    try:
        os.makedirs(os.path.dirname(cache), mode=0o700, exist_ok=True)
        write_atomic(cache, msgspec.json.encode(cached), mode=0o600)
    except (OSError, CniError):
        pass


def _endpoint_or_none(doc: Any, path: str) -> Endpoint | None:
    try:
        return endpoint_of(doc, os.path.dirname(os.path.abspath(path)))
    except _Unsupported:
        return None


def endpoint_of(doc: Any, base: str) -> Endpoint:
    """The endpoint a parsed kubeconfig's current context names; file names are resolved
    against ``base``. Raises ``ValueError``/``KeyError`` for what cannot be used."""
    if not isinstance(doc, Mapping):
        raise ValueError("not a kubeconfig (expected a YAML mapping)")
    current = doc.get("current-context")
    if not current:
        raise ValueError("no current-context set")
    context = _named(doc, "contexts", current, "context")
    cluster = _named(doc, "clusters", context.get("cluster"), "cluster")
    user = _named(doc, "users", context["user"], "user") if context.get("user") else {}
    if user.get("exec") or user.get("auth-provider"):
        raise _Unsupported
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith(("https://", "http://")):
        raise ValueError(f"cluster server {server!r} is not an http(s) URL")

    def file(obj: Mapping[str, Any], key: str) -> str:
        value = obj.get(key) or ""
        return os.path.join(base, os.path.expanduser(str(value))) if value else ""

    return Endpoint(
        server=server.rstrip("/"),
        ca_file=file(cluster, "certificate-authority"),
        ca_data=_pem(cluster.get("certificate-authority-data")),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        tls_server_name=str(cluster.get("tls-server-name") or ""),
        cert_file=file(user, "client-certificate"),
        key_file=file(user, "client-key"),
        cert_data=_pem(user.get("client-certificate-data")),
        key_data=_pem(user.get("client-key-data")),
        token=str(user.get("token") or ""),
        token_file=file(user, "tokenFile"),
        username=str(user.get("username") or ""),
        password=str(user.get("password") or ""),
    )


def _named(doc: Mapping[str, Any], section: str, name: object, field: str) -> Mapping[str, Any]:
    for entry in doc.get(section) or []:
        if isinstance(entry, Mapping) and entry.get("name") == name:
            value = entry.get(field) or {}
            if not isinstance(value, Mapping):
                raise ValueError(f"{section} entry {name!r} has no {field} mapping")
            return value
    raise KeyError(f"{section}: {name!r}")


def _pem(data: object) -> str:
    if not data:
        return ""
    try:
        return base64.b64decode(str(data), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as e:
        raise ValueError(f"base64 data that does not decode: {e}") from e
