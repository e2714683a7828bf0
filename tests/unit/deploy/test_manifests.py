"""The Kubernetes files in ``deploy/`` and the ``Dockerfile``, checked offline.

Every document validates against the Kubernetes OpenAPI schemas of several releases (strict:
no unknown field), the CRD's own schema is structural and accepts a NAD, and the rules the
API server enforces beyond the schemas (references between objects, volume names, probe
handlers, quantities) hold, so a server-side dry run has nothing left to reject. The paths in
the daemon config, the mounts, the probe and the image agree with each other and with the
code's defaults, and every command the manifests run is one the package installs.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from pymultus.config.daemon import DEFAULT_CONFIG_PATH, parse_daemon_conf
from pymultus.config.multus import DEFAULT_BIN_DIR, DEFAULT_CNI_DIR, DEFAULT_CONF_DIR
from pymultus.k8s import resources
from pymultus.k8s.checkpoint import CHECKPOINT_FILE
from pymultus.k8s.devinfo_files import DEVINFO_ROOT
from pymultus.k8s.podresources import KUBELET_SOCKET

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SCRIPTS = set(PYPROJECT["project"]["scripts"])
VERSION = PYPROJECT["project"]["version"]
#: The oldest Kubernetes release still common, one in the middle, and the newest known.
K8S_VERSIONS = ["1.29", "1.33", latest_version()]
NAMESPACE = "kube-system"
#: The image's virtual environment (Dockerfile), whose python the readiness probe runs.
VENV = "/opt/pymultus"
CLUSTER_SCOPED = {
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingWebhookConfiguration",
    "ValidatingAdmissionPolicyBinding",
}
#: Kinds newer than the oldest release checked: validated from the release that has them.
SINCE = {"ValidatingAdmissionPolicy": "1.30", "ValidatingAdmissionPolicyBinding": "1.30"}
#: Host paths the thick daemon must see (issue: deployment files; behaviour §3.3, rows 28, 36).
THICK_HOST_PATHS = {
    "/etc/cni/net.d",
    "/opt/cni/bin",
    "/run/multus",
    "/var/lib/cni/multus",
    "/var/run/netns",
    "/var/lib/kubelet/pod-resources",
}


def load(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def all_documents() -> list[Any]:
    return [
        pytest.param(doc, id=f"{path.stem}:{doc['kind']}/{doc['metadata']['name']}")
        for path in sorted(DEPLOY.glob("*.yaml"))
        for doc in load(path.name)
    ]


def daemonset_docs() -> list[dict[str, Any]]:
    return [load(name)[0] for name in ("daemonset-thick.yaml", "daemonset-thin.yaml")]


def component(ds: dict[str, Any]) -> str:
    return str(ds["metadata"]["labels"]["app.kubernetes.io/component"])


def daemonsets() -> list[Any]:
    return [pytest.param(ds, id=component(ds)) for ds in daemonset_docs()]


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def thick() -> dict[str, Any]:
    (ds,) = load("daemonset-thick.yaml")
    return ds


def daemon_container(ds: dict[str, Any]) -> dict[str, Any]:
    return next(
        c for c in ds["spec"]["template"]["spec"]["containers"] if c["name"] == "kube-multus"
    )


# --- the Kubernetes schemas ----------------------------------------------------------------


def _strict(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


_STRING = {"type": "string"}
_ISSUER_REF = _strict({"name": _STRING, "kind": _STRING, "group": _STRING}, ("name",))
_META = {"type": "object"}
#: cert-manager.io/v1, which kubernetes-validate has no schema for: the fields of its CRDs that
#: deploy/webhook.yaml uses, strict (cert-manager's CRDs reject unknown fields too).
CERT_MANAGER_SCHEMAS = {
    "Issuer": _strict(
        {
            "apiVersion": {"const": "cert-manager.io/v1"},
            "kind": _STRING,
            "metadata": _META,
            "spec": _strict(
                {"selfSigned": _strict({}), "ca": _strict({"secretName": _STRING}, ("secretName",))}
            ),
        },
        ("spec",),
    ),
    "Certificate": _strict(
        {
            "apiVersion": {"const": "cert-manager.io/v1"},
            "kind": _STRING,
            "metadata": _META,
            "spec": _strict(
                {
                    "secretName": _STRING,
                    "commonName": _STRING,
                    "dnsNames": {"type": "array", "items": _STRING},
                    "isCA": {"type": "boolean"},
                    "duration": {"type": "string", "pattern": "^[0-9]+h$"},
                    "renewBefore": {"type": "string", "pattern": "^[0-9]+h$"},
                    "usages": {
                        "type": "array",
                        "items": {"enum": ["server auth", "digital signature", "cert sign"]},
                    },
                    "privateKey": _strict(
                        {
                            "algorithm": {"enum": ["RSA", "ECDSA", "Ed25519"]},
                            "size": {"type": "integer"},
                            "rotationPolicy": {"enum": ["Never", "Always"]},
                        }
                    ),
                    "issuerRef": _ISSUER_REF,
                },
                ("secretName", "issuerRef"),
            ),
        },
        ("spec",),
    ),
}


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("doc", all_documents())
def test_document_validates_against_kubernetes_schemas(doc: dict[str, Any], version: str) -> None:
    if doc["apiVersion"].startswith("cert-manager.io/"):
        jsonschema.validate(doc, CERT_MANAGER_SCHEMAS[doc["kind"]])
        return
    since = SINCE.get(doc["kind"], version)
    newer = max(version, since, key=lambda v: tuple(map(int, v.split("."))))
    kubernetes_validate.validate(doc, newer, strict=True)


def test_validation_is_strict() -> None:
    """An unknown field is an error, so the test above can fail."""
    ds = thick()
    ds["spec"]["template"]["spec"]["containers"][0]["mountPath"] = "/oops"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(ds, K8S_VERSIONS[0], strict=True)


@pytest.mark.parametrize("doc", all_documents())
def test_document_is_where_it_belongs(doc: dict[str, Any]) -> None:
    meta = doc["metadata"]
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", meta["name"]), meta["name"]
    if doc["kind"] in CLUSTER_SCOPED:
        assert "namespace" not in meta
    else:
        assert meta.get("namespace") == NAMESPACE


# --- the CRD -------------------------------------------------------------------------------

#: What an apiextensions.k8s.io/v1 schema node may hold (JSONSchemaProps).
SCHEMA_KEYS = {
    "description", "type", "format", "title", "default", "maximum", "exclusiveMaximum",
    "minimum", "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems",
    "minItems", "uniqueItems", "multipleOf", "enum", "maxProperties", "minProperties",
    "required", "items", "allOf", "oneOf", "anyOf", "not", "properties",
    "additionalProperties", "nullable", "example", "externalDocs",
}  # fmt: skip
#: Kinds of value nodes inside allOf/anyOf/oneOf/not must leave out (structural rule 3).
NO_TYPE_IN_JUNCTORS = {"type", "description", "default", "additionalProperties", "nullable"}


def structural_problems(node: Any, path: str = "", root: bool = True) -> list[str]:
    """Why a CRD version's ``openAPIV3Schema`` is not structural (empty list if it is).

    The Kubernetes rules: every node has a ``type`` unless it preserves unknown fields or is
    int-or-string; the root is an object; no ``$ref``/unknown keywords; ``properties`` and
    ``additionalProperties`` not together; the junctors carry no types; ``metadata`` at the
    root restricts nothing but ``name`` and ``generateName``; ``uniqueItems`` is never true.
    """
    if not isinstance(node, dict):
        return [f"{path or '/'}: not an object"]
    problems = [f"{path}/{k}: not allowed" for k in node if k not in SCHEMA_KEYS]
    problems = [p for p in problems if not p.split("/")[-1].startswith("x-kubernetes-")]
    free = node.get("x-kubernetes-preserve-unknown-fields") or node.get(
        "x-kubernetes-int-or-string"
    )
    if not node.get("type") and not free:
        problems.append(f"{path or '/'}: no type")
    if root and node.get("type") != "object":
        problems.append("/: the root must be of type object")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{path}: both properties and additionalProperties")
    if node.get("uniqueItems") is True:
        problems.append(f"{path}: uniqueItems must not be true")
    for key in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(node.get(key, [])):
            problems += [
                f"{path}/{key}/{i}: {k} in a junctor" for k in NO_TYPE_IN_JUNCTORS & set(sub)
            ]
    for name, sub in node.get("properties", {}).items():
        meta = set(sub) <= {"type", "properties"} and set(sub.get("properties", {})) <= {
            "name",
            "generateName",
        }
        if root and name == "metadata" and not meta:
            problems.append("/properties/metadata: may restrict name and generateName only")
        problems += structural_problems(sub, f"{path}/properties/{name}", root=False)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            problems += structural_problems(node[key], f"{path}/{key}", root=False)
    return problems


def crd() -> dict[str, Any]:
    (doc,) = load("crd.yaml")
    return doc


def nad_schema() -> dict[str, Any]:
    (version,) = crd()["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def test_crd_schema_is_structural() -> None:
    assert structural_problems(nad_schema()) == []


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        (
            {"type": "object", "properties": {"spec": {"properties": {}}}},
            "/properties/spec: no type",
        ),
        ({"type": "string"}, "/: the root must be of type object"),
        ({"type": "object", "properties": {"a": {"$ref": "#/x", "type": "string"}}}, "$ref"),
        ({"type": "object", "properties": {}, "additionalProperties": {"type": "string"}}, "both"),
        ({"type": "object", "anyOf": [{"type": "string"}]}, "type in a junctor"),
        ({"type": "object", "properties": {"metadata": {"type": "object", "x": 1}}}, "metadata"),
    ],
)
def test_structural_check_finds_each_rule(schema: dict[str, Any], problem: str) -> None:
    assert any(problem in p for p in structural_problems(schema)), structural_problems(schema)


def test_crd_names_are_those_the_code_uses() -> None:
    doc = crd()
    spec = doc["spec"]
    assert doc["metadata"]["name"] == f"{resources.NAD_PLURAL}.{resources.NAD_GROUP}"
    assert (spec["group"], spec["names"]["plural"], spec["names"]["kind"]) == (
        resources.NAD_GROUP,
        resources.NAD_PLURAL,
        resources.NAD_KIND,
    )
    assert spec["scope"] == "Namespaced"
    assert set(spec["names"]["shortNames"]) == {"nad", "net-attach-def"}  # Go Multus's
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == (
        resources.NAD_VERSION,
        True,
        True,
    )


NAD = {
    "apiVersion": "k8s.cni.cncf.io/v1",
    "kind": "NetworkAttachmentDefinition",
    "metadata": {"name": "macvlan-conf", "namespace": "default"},
    "spec": {"config": json.dumps({"cniVersion": "1.0.0", "type": "macvlan", "master": "eth0"})},
}


@pytest.mark.parametrize(
    ("nad", "valid"),
    [
        (NAD, True),
        ({**NAD, "spec": {}}, True),  # empty spec: the config file of that name in confDir
        ({k: v for k, v in NAD.items() if k != "spec"}, True),
        ({**NAD, "spec": {"config": {"type": "macvlan"}}}, False),  # config is a JSON *string*
        ({**NAD, "spec": "macvlan"}, False),
    ],
)
def test_crd_schema_accepts_nads_and_rejects_bad_ones(nad: dict[str, Any], valid: bool) -> None:
    errors = list(jsonschema.Draft202012Validator(nad_schema()).iter_errors(nad))
    assert (errors == []) is valid, errors


def docs_manifests() -> list[Any]:
    """The YAML examples in ``docs/kubernetes.md``: people apply them as they are."""
    text = (REPO / "docs" / "kubernetes.md").read_text()
    blocks = re.findall(r"^( *)```yaml\n(.*?)^\1```", text, re.M | re.S)
    docs = [d for indent, body in blocks for d in yaml.safe_load_all(_dedent(body, indent)) if d]
    return [pytest.param(d, id=f"{d['kind']}/{d['metadata']['name']}") for d in docs]


def _dedent(body: str, indent: str) -> str:
    return "\n".join(line.removeprefix(indent) for line in body.splitlines())


@pytest.mark.parametrize("doc", docs_manifests())
def test_docs_examples_are_valid(doc: dict[str, Any]) -> None:
    if doc["kind"] == resources.NAD_KIND:
        jsonschema.validate(doc, nad_schema())
        assert json.loads(doc["spec"]["config"])["type"]
        return
    kubernetes_validate.validate(doc, _oldest_version_for(doc), strict=True)
    if doc["kind"] in ("DaemonSet", "Pod"):
        pod = doc["spec"]["template"]["spec"] if doc["kind"] == "DaemonSet" else doc["spec"]
        assert pod_problems(pod) == []


#: DRA's ``resource.k8s.io/v1`` (and pods naming claims by template) is GA in Kubernetes 1.34.
DRA_VERSION = "1.34"


def _oldest_version_for(doc: dict[str, Any]) -> str:
    """The oldest Kubernetes an example is for: the DRA example needs ``resource.k8s.io/v1``."""
    dra = str(doc.get("apiVersion", "")).startswith("resource.k8s.io/")
    dra = dra or bool(doc["kind"] == "Pod" and doc["spec"].get("resourceClaims"))
    return DRA_VERSION if dra else K8S_VERSIONS[0]


# --- what the API server checks beyond the schemas -----------------------------------------

HOST_PATH_TYPES = {"", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket"}
HOST_PATH_TYPES |= {"CharDevice", "BlockDevice"}
PROPAGATION = {"None", "HostToContainer", "Bidirectional"}
_QUANTITY = re.compile(r"^([0-9.]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
_FACTOR = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
_FACTOR |= {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def quantity(text: str) -> float:
    m = _QUANTITY.match(str(text))
    assert m, f"not a quantity: {text!r}"
    return float(m.group(1)) * _FACTOR[m.group(2)]


def pod_problems(pod: dict[str, Any]) -> list[str]:
    """The pod-spec rules of the API server's validation that the JSON schemas leave out."""
    problems: list[str] = []
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    if len(volumes) != len(pod.get("volumes", [])):
        problems.append("volume names are not unique")
    names = [c["name"] for c in containers(pod)]
    if len(set(names)) != len(names):
        problems.append("container names are not unique")
    for v in volumes.values():
        if "hostPath" in v and v["hostPath"].get("type", "") not in HOST_PATH_TYPES:
            problems.append(f"volume {v['name']}: bad hostPath type")
    for c in containers(pod):
        problems += [f"{c['name']}: name is no DNS label"] * (not _DNS_LABEL.match(c["name"]))
        problems += container_problems(c, volumes)
    return problems


def container_problems(c: dict[str, Any], volumes: dict[str, Any]) -> list[str]:
    problems = []
    mounts = c.get("volumeMounts", [])
    if len({m["mountPath"] for m in mounts}) != len(mounts):
        problems.append(f"{c['name']}: a mountPath is used twice")
    privileged = c.get("securityContext", {}).get("privileged", False)
    for m in mounts:
        if m["name"] not in volumes:
            problems.append(f"{c['name']}: mount of unknown volume {m['name']}")
        prop = m.get("mountPropagation", "None")
        if prop not in PROPAGATION or (prop == "Bidirectional" and not privileged):
            problems.append(f"{c['name']}: mountPropagation {prop} not allowed here")
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        handlers = {"exec", "httpGet", "tcpSocket", "grpc"} & set(c.get(probe, {}))
        if probe in c and len(handlers) != 1:
            problems.append(f"{c['name']}: {probe} needs exactly one handler")
    res = c.get("resources", {})
    for kind, request in res.get("requests", {}).items():
        limit = res.get("limits", {}).get(kind)
        if limit is not None and quantity(request) > quantity(limit):
            problems.append(f"{c['name']}: {kind} request above its limit")
    return problems


@pytest.mark.parametrize("ds", daemonsets())
def test_daemonset_passes_api_server_rules(ds: dict[str, Any]) -> None:
    spec = ds["spec"]
    pod = spec["template"]["spec"]
    assert pod_problems(pod) == []
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert (
        pod["priorityClassName"] == "system-node-critical"
        and ds["metadata"]["namespace"] == NAMESPACE
    )


def test_pod_rules_catch_broken_specs() -> None:
    pod = {
        "volumes": [{"name": "a", "hostPath": {"path": "/a", "type": "Dir"}}],
        "containers": [
            {
                "name": "Bad_Name",
                "volumeMounts": [
                    {"name": "b", "mountPath": "/b", "mountPropagation": "Bidirectional"}
                ],
                "readinessProbe": {"exec": {"command": ["x"]}, "tcpSocket": {"port": 1}},
                "resources": {"requests": {"memory": "1Gi"}, "limits": {"memory": "512Mi"}},
            }
        ],
    }
    assert len(pod_problems(pod)) == 6, pod_problems(pod)


def test_references_between_documents_resolve() -> None:
    rbac = {(d["kind"], d["metadata"]["name"]): d for d in load("rbac.yaml")}
    (cm,) = load("daemon-config.yaml")
    account = rbac[("ServiceAccount", "multus")]
    binding = rbac[("ClusterRoleBinding", "multus")]
    assert ("ClusterRole", binding["roleRef"]["name"]) in rbac
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "multus", "namespace": account["metadata"]["namespace"]}
    ]
    for ds in daemonset_docs():
        pod = ds["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == account["metadata"]["name"]
        for v in pod["volumes"]:
            if "configMap" in v:
                assert v["configMap"]["name"] == cm["metadata"]["name"]
                assert {i["key"] for i in v["configMap"]["items"]} <= set(cm["data"])


def test_thick_and_thin_are_one_object_go_multus_can_be_upgraded_in_place() -> None:
    """Same name and (immutable) selector as Go Multus's DaemonSet: apply upgrades it."""
    for ds in daemonset_docs():
        assert (ds["metadata"]["name"], ds["metadata"]["namespace"]) == (
            "kube-multus-ds",
            NAMESPACE,
        )
        assert ds["spec"]["selector"] == {"matchLabels": {"name": "multus"}}


# --- paths: config, mounts, probe and code agree -------------------------------------------


def host_path(pod: dict[str, Any], container: dict[str, Any], path: str) -> str | None:
    """The host path a container path lands on, through the container's hostPath mounts."""
    volumes = {v["name"]: v for v in pod["volumes"]}
    target = PurePosixPath(path)
    mounts = [
        (PurePosixPath(m["mountPath"]), volumes[m["name"]]["hostPath"]["path"])
        for m in container.get("volumeMounts", [])
        if "hostPath" in volumes[m["name"]]
    ]
    found = [(mount, host) for mount, host in mounts if mount == target or mount in target.parents]
    if not found:
        return None
    mount, host = max(found, key=lambda pair: len(pair[0].parts))
    return str(PurePosixPath(host) / target.relative_to(mount))


def test_thick_daemonset_mounts_the_host_paths_the_daemon_needs() -> None:
    pod = thick()["spec"]["template"]["spec"]
    host_paths = {v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    assert host_paths >= THICK_HOST_PATHS
    netns = next(m for m in daemon_container(thick())["volumeMounts"] if m["name"] == "netns")
    assert netns["mountPropagation"] == "HostToContainer"  # namespaces made after the start


def test_daemon_config_paths_land_where_the_host_expects_them() -> None:
    (cm,) = load("daemon-config.yaml")
    conf = parse_daemon_conf(cm["data"]["daemon-config.json"].encode())
    pod, daemon = thick()["spec"]["template"]["spec"], daemon_container(thick())
    on_host = lambda p: host_path(pod, daemon, p)  # noqa: E731
    shim_socket_dir = _shim_default_socket_dir()
    assert on_host(conf.socket_dir.rstrip("/")) == shim_socket_dir.rstrip("/")
    assert on_host(conf.cni_config_dir) == "/etc/cni/net.d"
    assert on_host(conf.multus_autoconfig_dir) == "/etc/cni/net.d"
    assert conf.auto and on_host(conf.chroot_dir) == "/"
    # The delegate cache and plugins at the same path inside and outside (Go's layout).
    assert on_host(conf.cni_dir or DEFAULT_CNI_DIR) == "/var/lib/cni/multus"
    assert on_host(conf.bin_dir or DEFAULT_BIN_DIR) == DEFAULT_BIN_DIR
    assert daemon["command"] == ["multus-daemon", "-config", DEFAULT_CONFIG_PATH]


@pytest.mark.parametrize("path", [DEFAULT_CONF_DIR, KUBELET_SOCKET, CHECKPOINT_FILE, DEVINFO_ROOT])
def test_code_default_paths_are_the_host_paths(path: str) -> None:
    """Where the code looks by default (confDir, the kubelet's socket and checkpoint, the
    device-info files) is that same path on the host (``/var/run`` is ``/run`` there)."""
    pod, daemon = thick()["spec"]["template"]["spec"], daemon_container(thick())
    same = path.replace("/var/run/", "/run/")
    assert host_path(pod, daemon, same) == same


def _shim_default_socket_dir() -> str:
    text = (REPO / "src/pymultus/shim/multus_shim.py").read_text()
    m = re.search(r'^DEFAULT_SOCKET_DIR = "([^"]+)"', text, re.M)
    assert m, "the shim names its default socket dir"
    return m.group(1)


def test_config_map_is_mounted_where_the_daemon_reads_by_default() -> None:
    pod, daemon = thick()["spec"]["template"]["spec"], daemon_container(thick())
    config = PurePosixPath(DEFAULT_CONFIG_PATH)
    (mount,) = [m for m in daemon["volumeMounts"] if PurePosixPath(m["mountPath"]) == config.parent]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert [i["path"] for i in volume["configMap"]["items"]] == [config.name]


def test_readiness_probe_asks_the_daemon_socket() -> None:
    (cm,) = load("daemon-config.yaml")
    conf = parse_daemon_conf(cm["data"]["daemon-config.json"].encode())
    command = daemon_container(thick())["readinessProbe"]["exec"]["command"]
    assert command[0] == f"{VENV}/bin/python"
    script = command[-1]
    compile(script, "probe", "exec")
    assert f'"{PurePosixPath(conf.socket_dir) / "multus.sock"}"' in script
    assert "/readyz" in script


# --- commands and image --------------------------------------------------------------------


def pymultus_cli_command(argv: list[str]) -> tuple[Any, list[str]]:
    """The click command ``pymultus argv...`` runs, and the arguments left for it."""
    import typer

    from pymultus.cli.main import app

    command: Any = typer.main.get_command(app)
    rest = list(argv)
    while rest and hasattr(command, "commands") and rest[0] in command.commands:
        command = command.commands[rest.pop(0)]
    return command, rest


def commands() -> list[Any]:
    return [
        pytest.param([*c["command"], *c.get("args", [])], id=f"{component(ds)}:{c['name']}")
        for ds in daemonset_docs()
        for c in containers(ds["spec"]["template"]["spec"])
    ]


@pytest.mark.parametrize("argv", commands())
def test_containers_run_installed_commands_with_known_options(argv: list[str]) -> None:
    assert argv[0] in SCRIPTS, f"{argv[0]} is not a console script of the package"
    if argv[0] == "multus-daemon":
        from pymultus.daemon.main import parse_args

        parse_args(argv[1:])  # exits on an unknown flag
        return
    command, rest = pymultus_cli_command(argv[1:])
    assert not hasattr(command, "commands"), f"no such subcommand: {shlex.join(argv)}"
    known = {opt for p in command.params for opt in [*p.opts, *p.secondary_opts]}
    used = {a.split("=", 1)[0] for a in rest if a.startswith("-")}
    assert used <= known, f"{shlex.join(argv)}: unknown {sorted(used - known)}"


@pytest.mark.parametrize("ds", daemonsets())
def test_images_are_this_version(ds: dict[str, Any]) -> None:
    images = {c["image"] for c in containers(ds["spec"]["template"]["spec"])}
    assert images == {f"pymultus:{VERSION}"}


# --- the Dockerfile ------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines = [ln for ln in (REPO / "Dockerfile").read_text().splitlines() if not ln.startswith("#")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in filter(None, (ln.strip() for ln in text.splitlines())):
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def dockerignore_includes(path: str) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parents decides."""
    patterns = [p.strip() for p in (REPO / ".dockerignore").read_text().splitlines()]
    included = True
    candidates = [path, *(str(p) for p in PurePosixPath(path).parents if str(p) != ".")]
    for pattern in filter(lambda p: p and not p.startswith("#"), patterns):
        negate, pat = pattern.startswith("!"), pattern.lstrip("!").rstrip("/")
        regex = re.escape(pat).replace(r"\*\*/", "(.*/)?").replace(r"\*", "[^/]*")
        if any(re.fullmatch(regex, c) or fnmatchcase(c, pat) for c in candidates):
            included = negate
    return included


def test_dockerfile_copies_only_what_exists_and_is_sent() -> None:
    copies = [rest for word, rest in dockerfile() if word == "COPY" and "--from" not in rest]
    assert copies
    for rest in copies:
        *sources, _dest = rest.split()
        for src in sources:
            assert (REPO / src).exists(), src
            files = [REPO / src] if (REPO / src).is_file() else (REPO / src).rglob("*.py")
            for f in files:
                rel = str(f.relative_to(REPO))
                assert dockerignore_includes(rel), f"{rel} is excluded by .dockerignore"
    readme, license_ = PYPROJECT["project"]["readme"], "LICENSE"
    assert any(readme in r and license_ in r for r in copies), "the build needs both"


def test_dockerignore_leaves_out_the_rest() -> None:
    assert not dockerignore_includes(".venv/bin/python")
    assert not dockerignore_includes("src/pymultus/__pycache__/x.cpython-311.pyc")
    assert not dockerignore_includes("tests/unit/deploy/test_manifests.py")
    assert dockerignore_includes("src/pymultus/shim/multus_shim.py")


def test_dockerfile_builds_wheels_and_runs_unprivileged() -> None:
    steps = dockerfile()
    stages = [rest for word, rest in steps if word == "FROM"]
    assert len(stages) >= 2 and stages[0].endswith(" AS build")
    base = next(rest for word, rest in steps if word == "ARG" and rest.startswith("PYTHON_IMAGE="))
    minimum = re.search(r">=\s*3\.(\d+)", PYPROJECT["project"]["requires-python"])
    tag = re.search(r"python:3\.(\d+)-slim", base)
    assert minimum and tag and int(tag.group(1)) >= int(minimum.group(1)), base
    final = steps[max(i for i, (w, _) in enumerate(steps) if w == "FROM") :]
    runs = " ".join(rest for word, rest in final if word == "RUN")
    assert "--mount=type=bind,from=build" in runs and "--no-index" in runs
    assert f"python -m venv {VENV}" in runs
    user = [rest for word, rest in final if word == "USER"][-1]
    assert user.split(":")[0] not in ("0", "root")
    env = " ".join(rest for word, rest in final if word == "ENV")
    assert f"PATH={VENV}/bin:" in env
    (cmd,) = [json.loads(rest) for word, rest in final if word == "CMD"]
    assert cmd[0] in SCRIPTS
    assert f'org.opencontainers.image.version="{VERSION}"' in " ".join(
        rest for word, rest in final if word == "LABEL"
    )
