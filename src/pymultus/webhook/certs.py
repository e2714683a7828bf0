"""``pymultus webhook-certs``: the webhook's certificates without cert-manager.

One Secret (type ``kubernetes.io/tls``) holds the serving pair (``tls.crt``, ``tls.key``) and
the CA that signed it (``ca.crt``, ``ca.key``); the ValidatingWebhookConfiguration's
``caBundle`` of every webhook pointing at the service is the CA. Run it again at any time:

- nothing changes while the serving certificate has more than ``RENEW_DAYS`` left, names the
  service, and was signed by the CA in the Secret;
- otherwise a new serving certificate is signed (by the same CA while the CA itself has more
  than ``RENEW_DAYS`` left, else by a new one) and the Secret replaced; the webhook re-reads
  the files when the kubelet updates the volume;
- the ``caBundle`` is written when it lacks the CA; when the CA was replaced it holds the new
  and the old CA for a while, so the replicas still serving the old certificate stay trusted.

API calls (with the caller's credentials, not the daemon's role): secrets get, create,
update in the namespace; validatingwebhookconfigurations get, update.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import lightkube
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from lightkube.core import resource as res
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import GenericGlobalResource, GenericNamespacedResource

from pymultus.cni.errors import InvalidConfigError
from pymultus.k8s.client import map_api_error
from pymultus.webhook.pki import KeyPair, days_left, dns_names, make_ca, make_serving

#: Days left under which a certificate is replaced (cert-manager's renewBefore in deploy/).
RENEW_DAYS = 30
TLS_TYPE = "kubernetes.io/tls"


class RawSecret(GenericNamespacedResource):
    _api_info = res.ApiInfo(
        resource=res.ResourceDef("", "v1", "Secret"), plural="secrets", verbs=["get", "post", "put"]
    )


class RawValidatingWebhookConfiguration(GenericGlobalResource):
    _api_info = res.ApiInfo(
        resource=res.ResourceDef(
            "admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration"
        ),
        plural="validatingwebhookconfigurations",
        verbs=["get", "put"],
    )


@dataclass(frozen=True)
class Target:
    namespace: str
    service: str
    secret: str
    webhook_config: str

    @property
    def names(self) -> list[str]:
        """The names the API server may dial: ``<service>.<namespace>.svc`` (and the FQDN)."""
        base = f"{self.service}.{self.namespace}.svc"
        return [base, f"{base}.cluster.local"]


@dataclass(frozen=True)
class Outcome:
    """What one run did (each False when it was already right)."""

    new_ca: bool
    new_serving: bool
    ca_bundle_patched: bool


@dataclass(frozen=True)
class _Pki:
    ca: KeyPair
    serving: KeyPair
    new_ca: bool
    new_serving: bool
    old_ca_pem: bytes = b""


def ensure(client: lightkube.Client, target: Target, now: datetime.datetime) -> Outcome:
    """Bring the Secret and the ``caBundle`` to a valid state; idempotent."""
    secret = _get(client, RawSecret, target.secret, target.namespace)
    pki = _plan(_decoded(secret), target, now)
    if pki.new_ca or pki.new_serving:
        _write_secret(client, target, secret, pki)
    bundle = pki.ca.cert_pem
    if pki.old_ca_pem and days_left(pki.old_ca_pem, now) > 0:
        bundle += pki.old_ca_pem
    patched = _patch_ca_bundle(client, target, bundle)
    return Outcome(pki.new_ca, pki.new_serving, patched)


def _plan(data: Mapping[str, bytes], target: Target, now: datetime.datetime) -> _Pki:
    ca_pem, ca_key = data.get("ca.crt", b""), data.get("ca.key", b"")
    keep_ca = bool(ca_pem and ca_key) and _usable(ca_pem, now)
    ca = KeyPair(ca_pem, ca_key) if keep_ca else make_ca(f"{target.service}-ca")
    cert, key = data.get("tls.crt", b""), data.get("tls.key", b"")
    keep_serving = (
        keep_ca
        and bool(cert and key)
        and _usable(cert, now)
        and sorted(dns_names(cert)) == sorted(target.names)
        and _signed_by(cert, ca)
    )
    serving = KeyPair(cert, key) if keep_serving else make_serving(ca, target.names)
    old = ca_pem if ca_pem and not keep_ca else b""
    return _Pki(ca, serving, not keep_ca, not keep_serving, old)


def _usable(cert_pem: bytes, now: datetime.datetime) -> bool:
    try:
        return days_left(cert_pem, now) > RENEW_DAYS
    except ValueError:  # not a PEM certificate: replace it
        return False


def _signed_by(cert_pem: bytes, ca: KeyPair) -> bool:
    try:
        x509.load_pem_x509_certificate(cert_pem).verify_directly_issued_by(ca.cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _decoded(secret: dict[str, Any] | None) -> dict[str, bytes]:
    data = (secret or {}).get("data") or {}
    out = {}
    for key, value in data.items():
        try:
            out[key] = base64.b64decode(value, validate=True)
        except ValueError:
            continue
    return out


def _write_secret(
    client: lightkube.Client, target: Target, current: dict[str, Any] | None, pki: _Pki
) -> None:
    data = {
        "tls.crt": pki.serving.cert_pem,
        "tls.key": pki.serving.key_pem,
        "ca.crt": pki.ca.cert_pem,
        "ca.key": pki.ca.key_pem,
    }
    meta: dict[str, Any] = {"name": target.secret, "namespace": target.namespace}
    if current is not None:
        meta = {**current.get("metadata", {}), **meta}
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": TLS_TYPE,
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }
    action = f"write secret {target.namespace}/{target.secret}"
    try:
        if current is None:
            client.create(RawSecret(**body))
        else:
            client.replace(RawSecret(**body))
    except ApiError as err:
        raise map_api_error(err, server="", action=action) from err


def _patch_ca_bundle(client: lightkube.Client, target: Target, bundle: bytes) -> bool:
    config = _get(client, RawValidatingWebhookConfiguration, target.webhook_config, None)
    if config is None:
        raise InvalidConfigError(
            f"validatingwebhookconfiguration {target.webhook_config!r} does not exist: apply "
            "deploy/webhook.yaml first",
            field="webhook-config",
        )
    encoded = base64.b64encode(bundle).decode()
    changed = False
    for hook in config.get("webhooks") or []:
        client_config = hook.setdefault("clientConfig", {})
        service = client_config.get("service") or {}
        ours = (service.get("namespace"), service.get("name")) == (
            target.namespace,
            target.service,
        )
        if ours and client_config.get("caBundle") != encoded:
            client_config["caBundle"] = encoded
            changed = True
    if changed:
        try:
            client.replace(RawValidatingWebhookConfiguration(**config))
        except ApiError as err:
            action = f"update validatingwebhookconfiguration {target.webhook_config}"
            raise map_api_error(err, server="", action=action) from err
    return changed


def _get(
    client: lightkube.Client,
    resource: type[RawSecret | RawValidatingWebhookConfiguration],
    name: str,
    namespace: str | None,
) -> dict[str, Any] | None:
    try:
        if resource is RawValidatingWebhookConfiguration:
            return dict(client.get(RawValidatingWebhookConfiguration, name))
        return dict(client.get(RawSecret, name, namespace=namespace))
    except ApiError as err:
        if err.status.code == 404:
            return None
        action = f"get {resource._api_info.plural} {name}"
        raise map_api_error(err, server="", action=action) from err
