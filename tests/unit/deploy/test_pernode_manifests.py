"""The per-node identity files in ``deploy/`` (issue #16): the DaemonSet variant, the role of
the group ``system:multus``, the approver. Each role is exactly what its code calls."""

from __future__ import annotations

from typing import Any

from tests.unit.deploy.test_manifests import (
    DEPLOY,
    SCRIPTS,
    daemon_container,
    host_path,
    load,
    pod_problems,
)
from tests.unit.deploy.test_rbac_matches_code import (
    OTHER_ROLES,
    package_sources,
    restrict,
    role_triples,
    scan_sources,
)

from pymultus.config.daemon import DEFAULT_CONFIG_PATH, parse_daemon_conf
from pymultus.daemon.certapprover import APPROVER_API_ACCESS
from pymultus.k8s.csr import PER_NODE_API_ACCESS
from pymultus.k8s.resources import REQUIRED_API_ACCESS

DEPLOY_RBAC = "rbac-pernode.yaml"
APPROVER = "cert-approver-pernode.yaml"
SIGNER_RULE = {
    "apiGroups": ["certificates.k8s.io"],
    "resources": ["signers"],
    "resourceNames": ["kubernetes.io/kube-apiserver-client"],
    "verbs": ["approve"],
}


def docs(name: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in load(name)}


def pernode_daemonset() -> tuple[dict[str, Any], dict[str, Any]]:
    found = docs("daemonset-thick-pernode.yaml")
    return found[("DaemonSet", "kube-multus-ds")], found[
        ("ConfigMap", "multus-daemon-config-pernode")
    ]


def test_daemonset_has_no_token_and_passes_api_server_rules() -> None:
    ds, cm = pernode_daemonset()
    pod = ds["spec"]["template"]["spec"]
    assert pod_problems(pod) == []
    assert pod["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in pod
    [volume] = [v for v in pod["volumes"] if "configMap" in v]
    assert volume["configMap"]["name"] == cm["metadata"]["name"]


def test_per_node_certificate_paths_are_mounted_from_the_host() -> None:
    ds, cm = pernode_daemonset()
    pod, container = ds["spec"]["template"]["spec"], daemon_container(ds)
    assert DEFAULT_CONFIG_PATH in container["command"]
    conf = parse_daemon_conf(cm["data"]["daemon-config.json"].encode())
    pnc = conf.per_node_certificate
    assert pnc is not None and pnc.enabled and pnc.cert_duration_s == 600
    assert host_path(pod, container, pnc.bootstrap_kubeconfig) == "/etc/kubernetes/kubelet.conf"
    assert host_path(pod, container, pnc.cert_dir) == "/var/lib/pymultus/certs"
    # kubelet.conf names the kubelet's own client certificate: it must be there too.
    pki = "/var/lib/kubelet/pki/kubelet-client-current.pem"
    assert host_path(pod, container, pki) == pki
    env = {e["name"] for e in container["env"]}
    assert "MULTUS_NODE_NAME" in env


def test_group_role_is_the_daemons_calls_and_its_csrs() -> None:
    scan = scan_sources(package_sources())
    daemon = restrict(scan, OTHER_ROLES - {"pymultus.k8s.csr"}, inside=False)
    granted = role_triples(DEPLOY / DEPLOY_RBAC)
    assert granted == daemon.triples == REQUIRED_API_ACCESS | PER_NODE_API_ACCESS


def test_group_role_is_bound_to_the_group_system_multus() -> None:
    found = docs(DEPLOY_RBAC)
    binding = found[("ClusterRoleBinding", "multus-per-node")]
    assert binding["roleRef"]["name"] == "multus-per-node"
    assert binding["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:multus"}
    ]


def test_approver_role_is_exactly_its_calls_plus_the_signer() -> None:
    scan = restrict(
        scan_sources(package_sources()), frozenset({"pymultus.daemon.certapprover"}), inside=True
    )
    role = docs(APPROVER)[("ClusterRole", "multus-cert-approver")]
    rules = [r for r in role["rules"] if r != SIGNER_RULE]
    assert len(rules) == len(role["rules"]) - 1
    granted = {
        (g, res, v)
        for r in rules
        for g in r["apiGroups"]
        for res in r["resources"]
        for v in r["verbs"]
    }
    assert granted == scan.triples == APPROVER_API_ACCESS


def test_approver_deployment_runs_the_command_with_its_account() -> None:
    found = docs(APPROVER)
    deployment = found[("Deployment", "multus-cert-approver")]
    pod = deployment["spec"]["template"]["spec"]
    assert pod_problems(pod) == []
    [container] = pod["containers"]
    assert container["command"][0] in SCRIPTS
    assert container["command"][1:] == ["cert-approver"]
    assert ("ServiceAccount", pod["serviceAccountName"]) in found
    binding = found[("ClusterRoleBinding", "multus-cert-approver")]
    assert binding["subjects"][0]["name"] == pod["serviceAccountName"]
