"""``deploy/webhook.yaml``: the webhook cannot take the cluster down, its objects refer to each
other correctly, and its container runs a command the package has with options it knows."""

from __future__ import annotations

from typing import Any

import pytest
from tests.unit.deploy.test_manifests import SCRIPTS, load, pod_problems, pymultus_cli_command

from pymultus.webhook.server import DEFAULT_PORT

NAMESPACE = "kube-system"


def docs() -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in load("webhook.yaml")}


def webhooks() -> list[Any]:
    vwc = docs()[("ValidatingWebhookConfiguration", "pymultus-webhook")]
    return [pytest.param(w, id=w["name"]) for w in vwc["webhooks"]]


@pytest.mark.parametrize("hook", webhooks())
def test_webhook_never_takes_the_cluster_down(hook: dict[str, Any]) -> None:
    assert hook["failurePolicy"] == "Ignore"
    assert hook["timeoutSeconds"] == 5
    assert hook["sideEffects"] == "None"
    assert hook["admissionReviewVersions"] == ["v1"]
    (excluded,) = hook["namespaceSelector"]["matchExpressions"]
    assert excluded["key"] == "kubernetes.io/metadata.name"
    assert excluded["operator"] == "NotIn"
    assert {"kube-system", NAMESPACE} <= set(excluded["values"])
    service = hook["clientConfig"]["service"]
    svc = docs()[("Service", service["name"])]
    assert service["namespace"] == svc["metadata"]["namespace"]
    assert service["path"] == "/validate"
    assert service["port"] in {p["port"] for p in svc["spec"]["ports"]}


def test_only_pods_with_a_selection_annotation_are_sent() -> None:
    pods = next(w.values[0] for w in webhooks() if w.values[0]["name"].startswith("pods."))
    (condition,) = pods["matchConditions"]
    for annotation in ("k8s.v1.cni.cncf.io/networks", "v1.multus-cni.io/default-network"):
        assert f"'{annotation}' in object.metadata.annotations" in condition["expression"]
    assert {op for r in pods["rules"] for op in r["operations"]} == {"CREATE", "UPDATE"}


def test_deployment_is_highly_available_and_serves_the_service() -> None:
    d = docs()
    deployment = d[("Deployment", "pymultus-webhook")]
    pdb = d[("PodDisruptionBudget", "pymultus-webhook")]
    svc = d[("Service", "pymultus-webhook")]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["replicas"] == 2
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert svc["spec"]["selector"].items() <= labels.items()
    pod = deployment["spec"]["template"]["spec"]
    assert pod_problems(pod) == []
    (container,) = pod["containers"]
    assert container["ports"][0]["containerPort"] == DEFAULT_PORT
    assert pod["serviceAccountName"] == "pymultus-webhook"


def test_container_runs_the_webhook_command_with_known_options() -> None:
    (container,) = docs()[("Deployment", "pymultus-webhook")]["spec"]["template"]["spec"][
        "containers"
    ]
    argv = container["command"]
    assert argv[0] in SCRIPTS
    command, rest = pymultus_cli_command(argv[1:])
    known = {opt for p in command.params for opt in p.opts}
    assert {a.split("=", 1)[0] for a in rest} <= known
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    for option in ("--tls-cert-file", "--tls-private-key-file", "--config"):
        (value,) = [a.split("=", 1)[1] for a in rest if a.startswith(f"{option}=")]
        assert value.rsplit("/", 1)[0] in mounts, option


def test_certificate_objects_agree() -> None:
    d = docs()
    cert = d[("Certificate", "pymultus-webhook")]
    volumes = d[("Deployment", "pymultus-webhook")]["spec"]["template"]["spec"]["volumes"]
    (tls,) = [v for v in volumes if v["name"] == "tls"]
    assert tls["secret"]["secretName"] == cert["spec"]["secretName"]
    assert {i["key"] for i in tls["secret"]["items"]} == {"tls.crt", "tls.key"}  # no CA key
    assert f"pymultus-webhook.{NAMESPACE}.svc" in cert["spec"]["dnsNames"]
    vwc = d[("ValidatingWebhookConfiguration", "pymultus-webhook")]
    injected = vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    assert injected == f"{cert['metadata']['namespace']}/{cert['metadata']['name']}"
    issuer = d[("Issuer", cert["spec"]["issuerRef"]["name"])]
    ca = d[("Certificate", "pymultus-webhook-ca")]
    assert issuer["spec"]["ca"]["secretName"] == ca["spec"]["secretName"]
    assert ("Issuer", ca["spec"]["issuerRef"]["name"]) in d


def test_webhook_role_grants_only_get_on_nads() -> None:
    role = docs()[("ClusterRole", "pymultus-webhook")]
    assert role["rules"] == [
        {
            "apiGroups": ["k8s.cni.cncf.io"],
            "resources": ["network-attachment-definitions"],
            "verbs": ["get"],
        }
    ]
