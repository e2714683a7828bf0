"""Where the API server is and how to log in: ``k8s.lite_conf.load_endpoint`` for the
kubeconfigs the lean client takes (a JSON file, the cached parsed form of a YAML one, or the
in-cluster service account); anything else is ``Unhandled`` (exec and auth-provider plugins,
proxies, a YAML file not parsed yet: the full path's client).
"""

from __future__ import annotations

import binascii

from pymultus.plugin.lean import js
from pymultus.plugin.lean import oslite as os  # posix alone: see oslite
from pymultus.plugin.lean.errors import Unhandled

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
#: ``cni.limits.MAX_FILE_BYTES``: a larger kubeconfig is refused by the full path.
MAX_FILE_BYTES = 4 * 1024 * 1024
#: ``lite_conf.Endpoint``'s fields, in its order.
_FIELDS = (
    "server",
    "ca_file",
    "ca_data",
    "insecure",
    "tls_server_name",
    "cert_file",
    "key_file",
    "cert_data",
    "key_data",
    "token",
    "token_file",
    "username",
    "password",
)


class Endpoint:
    """``lite_conf.Endpoint``: an API server and its credentials; file fields absolute."""

    __slots__ = _FIELDS

    def __init__(self, server: str, **fields: Any) -> None:
        self.server = server
        self.ca_file = self.ca_data = self.tls_server_name = ""
        self.cert_file = self.key_file = self.cert_data = self.key_data = ""
        self.token = self.token_file = self.username = self.password = ""
        self.insecure = False
        for name, value in fields.items():
            setattr(self, name, value)

    def fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _FIELDS}

    def files(self) -> list[str]:
        return [f for f in (self.ca_file, self.cert_file, self.key_file, self.token_file) if f]


def load_endpoint(kubeconfig: str, cache_dir: str) -> Endpoint:
    """``lite_conf.load_endpoint(kubeconfig or None, cache_dir=cache_dir)`` when that gives an
    endpoint; ``Unhandled`` when it raises or answers ``None`` (exec/auth-provider), for a YAML
    kubeconfig whose parsed form ``lite_conf`` has not cached yet, and for ``proxy-url``.

    A JSON kubeconfig is read here; a YAML one only through the cache ``lite_conf`` writes
    (``<cache_dir>/.kubeconfig-<sha256 of the path>.json``, 0600, keyed by the file's
    device, inode, size and mtime): the full path parses the YAML once and the next call is
    lean. Without a kubeconfig: the in-cluster service account."""
    endpoint = (
        _from_file(os.path.expanduser(kubeconfig), cache_dir) if kubeconfig else _in_cluster()
    )
    for path in endpoint.files():
        if not os.path.isfile(path):
            raise Unhandled(f"kubeconfig: no file {path}")
    return endpoint


def _in_cluster() -> Endpoint:
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT")
    if not (host and port):
        raise Unhandled("no kubeconfig and not in a cluster")
    return Endpoint(
        f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}",
        ca_file=f"{SERVICE_ACCOUNT_DIR}/ca.crt",
        token_file=f"{SERVICE_ACCOUNT_DIR}/token",
    )


def _from_file(path: str, cache_dir: str) -> Endpoint:
    try:
        with open(path, "rb") as f:
            info = os.fstat(f.fileno())
            raw = f.read()
    except OSError as exc:
        raise Unhandled(f"kubeconfig: {exc}") from None
    if raw.lstrip()[:1] == b"{":
        if len(raw) > MAX_FILE_BYTES:
            raise Unhandled("kubeconfig: too large")
        return _endpoint_of(js.loads(raw), os.path.dirname(os.path.abspath(path)))
    if not cache_dir:
        raise Unhandled("YAML kubeconfig and no cache directory")
    key = [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns]
    return _cached(_cache_path(cache_dir, path), key)


def _cache_path(cache_dir: str, path: str) -> str:
    """``lite_conf._cache_path``."""
    try:
        import _sha256 as sha  # type: ignore[import-not-found]  # noqa: PLC0415 - C; YAML only
    except ImportError:  # Python 3.12+
        import _sha2 as sha  # type: ignore[import-not-found]  # noqa: PLC0415
    digest = sha.sha256(os.path.abspath(path).encode()).hexdigest()[:16]
    return os.path.join(cache_dir, f".kubeconfig-{digest}.json")


def _cached(cache: str, key: list[int]) -> Endpoint:
    """The endpoint ``lite_conf._read_cache`` would take from ``cache``: ours (owner, 0600),
    of this very file, and of the exact shape msgspec decodes into ``_Cached``."""
    try:
        with open(cache, "rb") as f:
            info = os.fstat(f.fileno())
            data = f.read()
    except OSError:
        raise Unhandled("no parsed form of the YAML kubeconfig cached yet") from None
    if info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise Unhandled("kubeconfig cache not ours")
    doc = js.loads_object(data)
    got = doc.get("key")
    if not isinstance(got, list) or any(type(k) is not int for k in got) or got != key:
        raise Unhandled("kubeconfig cache of another file or version")
    fields = doc.get("endpoint", 0)
    if not isinstance(fields, dict):
        raise Unhandled("kubeconfig needs the full client (exec or auth-provider)")
    if not isinstance(fields.get("server"), str) or any(
        name not in _FIELDS or type(value) is not (bool if name == "insecure" else str)
        for name, value in fields.items()
    ):
        raise Unhandled("kubeconfig cache of an unknown shape")
    return Endpoint(**fields)


def _endpoint_of(doc: Any, base: str) -> Endpoint:
    """``lite_conf.endpoint_of``, the same resolution of current-context, cluster and user
    (first entry of that name; duck-typed values as it reads them)."""
    if not isinstance(doc, dict):
        raise Unhandled("kubeconfig: not a mapping")
    current = doc.get("current-context")
    if not current:
        raise Unhandled("kubeconfig: no current-context")
    context = _named(doc, "contexts", current, "context")
    cluster = _named(doc, "clusters", context.get("cluster"), "cluster")
    user = _named(doc, "users", context["user"], "user") if context.get("user") else {}
    if user.get("exec") or user.get("auth-provider") or cluster.get("proxy-url"):
        raise Unhandled("kubeconfig needs the full client (exec, auth-provider, proxy)")
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith(("https://", "http://")):
        raise Unhandled("kubeconfig: server is not an http(s) URL")

    def file(obj: dict[str, Any], key: str) -> str:
        value = obj.get(key) or ""
        return os.path.join(base, os.path.expanduser(str(value))) if value else ""

    return Endpoint(
        server.rstrip("/"),
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


def _named(doc: dict[str, Any], section: str, name: object, field: str) -> dict[str, Any]:
    """``lite_conf._named``: anything but a list there ends in its KeyError or TypeError."""
    entries = doc.get(section)
    if isinstance(entries, list):
        for entry in entries:
            if isinstance(entry, dict) and entry.get("name") == name:
                value = entry.get(field) or {}
                if not isinstance(value, dict):
                    break
                return value
    raise Unhandled(f"kubeconfig: no usable {section} entry {name!r}")


def _pem(data: object) -> str:
    """``base64.b64decode(str(data), validate=True).decode()``."""
    if not data:
        return ""
    text = str(data)
    try:
        return binascii.a2b_base64(text.encode("ascii"), strict_mode=True).decode()
    except (ValueError, binascii.Error):  # UnicodeError is a ValueError
        raise Unhandled("kubeconfig: base64 data that does not decode") from None
