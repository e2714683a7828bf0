"""Running the thin ``multus`` plugin the way a container runtime does, for integration tests.

One ``Cluster`` per test: a host/pod namespace pair, a stand-in API server *listening inside the
host namespace* (the plugin runs there, so that is where it must reach the API), and per-test
directories (``cniDir``, ``confDir``, host-local ``dataDir``). ``Cluster.call`` runs
``.venv/bin/multus`` as a subprocess from the host namespace with ``CNI_*`` env and the Multus
config on stdin, exactly as containerd would::

    def test_x(cluster):
        cluster.put_nad("default", "br-a", cluster.bridge_nad("br-a", "pmbra", 1))
        pod = cluster.put_pod("default", "web", {NETWORKS: "br-a"})
        out = cluster.add(pod).check_ok()
        assert cluster.link_names() == {"lo", "eth0", "net1"}

Everything a test asserts is real state: ``ip -j`` inside the pod namespace, files on disk, the
annotation bytes stored by the stand-in.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.apiserver import StandInApiServer
from tests.support.netns import NetnsPair, addresses, ip_json, make_pair, routes, unique_name

MULTUS_BIN = str(Path(sys.executable).with_name("multus"))
CNI_BIN = "/usr/lib/cni"
MULTUS_NAMESPACE = "kube-system"
NETWORKS = "k8s.v1.cni.cncf.io/networks"
STATUS = "k8s.v1.cni.cncf.io/network-status"
DEFAULT_NETWORK = "v1.multus-cni.io/default-network"
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: host-local keeps these beside its allocations; they are not allocations.
_HOST_LOCAL_META = ("lock", "last_reserved_ip")


@dataclass(frozen=True)
class Outcome:
    """What one plugin run printed and returned."""

    command: str
    rc: int
    stdout: bytes
    stderr: bytes

    def json(self) -> Any:
        return json.loads(self.stdout)

    def check_ok(self) -> Outcome:
        """Self, or an AssertionError showing everything the plugin said."""
        if self.rc != 0:
            raise AssertionError(f"{self.command} failed rc={self.rc}: {self.describe()}")
        return self

    def error(self) -> dict[str, Any]:
        """The CNI error object; the run must have failed with exit status 1."""
        assert self.rc == 1, f"{self.command} should have failed: {self.describe()}"
        err: dict[str, Any] = self.json()
        assert set(err) <= {"cniVersion", "code", "msg", "details"}, err
        return err

    def describe(self) -> str:
        return f"stdout={self.stdout.decode(errors='replace')!r} stderr={self.stderr[-3000:]!r}"


@dataclass(frozen=True)
class PodId:
    """A pod as the runtime names it in CNI_ARGS, plus its sandbox's container id."""

    namespace: str
    name: str
    uid: str
    container_id: str

    @property
    def cni_args(self) -> str:
        return (
            f"IgnoreUnknown=1;K8S_POD_NAMESPACE={self.namespace};K8S_POD_NAME={self.name};"
            f"K8S_POD_INFRA_CONTAINER_ID={self.container_id};K8S_POD_UID={self.uid}"
        )


def run_plugin(
    pair: NetnsPair, env: Mapping[str, str], stdin: bytes, *, argv: list[str] | None = None
) -> Outcome:
    """Run the plugin (or ``argv``) with a clean environment from the host namespace."""
    environ = {"PATH": CLEAN_PATH, **env}
    with pair.in_host():
        proc = subprocess.run(
            argv or [MULTUS_BIN],
            input=stdin,
            env=environ,
            capture_output=True,
            timeout=120,
            check=False,
        )
    return Outcome(env.get("CNI_COMMAND", ""), proc.returncode, proc.stdout, proc.stderr)


@dataclass
class Cluster:
    """One test's namespaces, API server and directories; see the module docstring."""

    pair: NetnsPair
    tmp: Path
    api: StandInApiServer
    cni_version: str = "1.0.0"
    cluster_file: Path = field(init=False)

    def __post_init__(self) -> None:
        for d in (self.cni_dir, self.conf_dir, self.data_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.kubeconfig = self.api.write_kubeconfig(self.tmp / "multus.kubeconfig")
        # Plain HTTP: without this lightkube loads the whole CA bundle on every plugin run.
        kubeconfig = json.loads(self.kubeconfig.read_text())
        kubeconfig["clusters"][0]["cluster"]["insecure-skip-tls-verify"] = True
        self.kubeconfig.write_text(json.dumps(kubeconfig))
        self.cluster_file = self.write_cluster_network(self.bridge_conflist())

    # --- directories ---------------------------------------------------------------------

    @property
    def cni_dir(self) -> Path:
        return self.tmp / "cni"

    @property
    def conf_dir(self) -> Path:
        return self.tmp / "multus.d"

    @property
    def data_dir(self) -> Path:
        return self.tmp / "ipam"

    # --- configs -------------------------------------------------------------------------

    def host_local(self, *subnets: str, routes: list[Any] | None = None, **extra: Any) -> Any:
        """host-local IPAM over ``subnets`` (each its own range set), in this test's dataDir."""
        ipam: dict[str, Any] = {
            "type": "host-local",
            "ranges": [[{"subnet": s}] for s in subnets],
            "dataDir": str(self.data_dir),
        }
        if routes is not None:
            ipam["routes"] = routes
        ipam.update(extra)
        return ipam

    def bridge_conf(self, name: str, bridge: str, ipam: Any, **extra: Any) -> dict[str, Any]:
        conf = {"cniVersion": self.cni_version, "name": name, "type": "bridge", "bridge": bridge}
        return {**conf, "ipam": ipam, **extra}

    def bridge_nad(self, name: str, bridge: str, third_octet: int, **extra: Any) -> dict[str, Any]:
        """A bridge NAD with host-local ``198.18.<third_octet>.0/24``."""
        return self.bridge_conf(
            name, bridge, self.host_local(f"198.18.{third_octet}.0/24"), **extra
        )

    def bridge_conflist(self, *, v6: bool = False, v4: bool = True) -> dict[str, Any]:
        """Golden-like cluster network: bridge ``pmbr0``, host-local 198.18.0.0/24 (and/or
        2001:db8:0::/64) with default routes without ``gw``."""
        subnets, dflt = [], []
        if v4:
            subnets.append("198.18.0.0/24")
            dflt.append({"dst": "0.0.0.0/0"})
        if v6:
            subnets.append("2001:db8::/64")
            dflt.append({"dst": "::/0"})
        plugin = {
            "type": "bridge",
            "bridge": "pmbr0",
            "isGateway": False,
            "ipam": self.host_local(*subnets, routes=dflt),
        }
        return {"cniVersion": self.cni_version, "name": "pm-cluster", "plugins": [plugin]}

    def write_cluster_network(
        self, conflist: Mapping[str, Any], name: str = "10-cluster.conflist"
    ) -> Path:
        path = self.tmp / "net.d" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(conflist, indent=2))
        self.cluster_file = path
        return path

    def multus_conf(self, **overrides: Any) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "cniVersion": self.cni_version,
            "name": "multus-cni-network",
            "type": "multus",
            "kubeconfig": str(self.kubeconfig),
            "clusterNetwork": str(self.cluster_file),
            "cniDir": str(self.cni_dir),
            "confDir": str(self.conf_dir),
            "binDir": CNI_BIN,
        }
        conf.update(overrides)
        return {k: v for k, v in conf.items() if v is not None}

    # --- API objects ---------------------------------------------------------------------

    def put_nad(self, namespace: str, name: str, config: Mapping[str, Any] | str | None) -> None:
        spec = {} if config is None else {"config": _text(config)}
        meta = {"namespace": namespace, "name": name}
        self.api.put_object({"kind": "NetworkAttachmentDefinition", "metadata": meta, "spec": spec})

    def put_pod(
        self, namespace: str, name: str, annotations: Mapping[str, str] | None = None
    ) -> PodId:
        uid = f"0000{unique_name('')}-aaaa-bbbb-cccc-000000000000"
        meta: dict[str, Any] = {"namespace": namespace, "name": name, "uid": uid}
        if annotations:
            meta["annotations"] = dict(annotations)
        spec = {"containers": [{"name": "pause", "image": "pause"}]}
        self.api.put_object({"kind": "Pod", "metadata": meta, "spec": spec})
        return PodId(namespace, name, uid, container_id=unique_name("c0ffee") * 2)

    def status_annotation(self, pod: PodId) -> str | None:
        obj = self.api.get_object("pods", pod.namespace, pod.name)
        assert obj is not None, f"pod {pod.name} is gone"
        annotations: dict[str, str] = obj["metadata"].get("annotations") or {}
        return annotations.get(STATUS)

    # --- running the plugin --------------------------------------------------------------

    def env(
        self, command: str, pod: PodId, *, ifname: str = "eth0", netns: str | None = None
    ) -> dict[str, str]:
        return {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": pod.container_id,
            "CNI_NETNS": self.pair.pod_path if netns is None else netns,
            "CNI_IFNAME": ifname,
            "CNI_PATH": CNI_BIN,
            "CNI_ARGS": pod.cni_args,
        }

    def call(
        self,
        command: str,
        pod: PodId,
        conf: Mapping[str, Any] | bytes | None = None,
        **env_kw: Any,
    ) -> Outcome:
        stdin = conf if isinstance(conf, bytes) else _text(conf or self.multus_conf()).encode()
        return run_plugin(self.pair, self.env(command, pod, **env_kw), stdin)

    def add(self, pod: PodId, conf: Mapping[str, Any] | bytes | None = None, **kw: Any) -> Outcome:
        return self.call("ADD", pod, conf, **kw)

    def delete(
        self, pod: PodId, conf: Mapping[str, Any] | bytes | None = None, **kw: Any
    ) -> Outcome:
        return self.call("DEL", pod, conf, **kw)

    # --- state ---------------------------------------------------------------------------

    def link_names(self) -> set[str]:
        return {link["ifname"] for link in ip_json(self.pair.pod, "link", "show")}

    def addrs(self, dev: str, family: str = "inet") -> list[str]:
        return addresses(self.pair.pod, dev, family)

    def default_routes(self, family: str = "-4") -> list[tuple[str, str]]:
        """(dev, gateway) of every default route in the pod namespace's main table."""
        found = ip_json(self.pair.pod, family, "route", "show", "default")
        return sorted((r["dev"], r.get("gateway", "")) for r in found)

    def routes(self, *args: str) -> list[dict[str, Any]]:
        return routes(self.pair.pod, *args)

    def allocations(self) -> list[str]:
        """host-local's reserved addresses (``<dataDir>/<net>/<ip>``), as ``net/ip``."""
        return sorted(
            f"{p.parent.name}/{p.name}"
            for p in self.data_dir.glob("*/*")
            if not p.name.startswith(_HOST_LOCAL_META)
        )

    def cache_files(self) -> list[str]:
        """Every file under cniDir (the delegate cache and libcni's results), relative."""
        return sorted(
            str(p.relative_to(self.cni_dir)) for p in self.cni_dir.rglob("*") if p.is_file()
        )

    def snapshot(self) -> dict[str, Any]:
        """Everything a failed ADD must leave as it found it."""
        names = self.link_names()
        return {
            "links": names,
            "addresses": {n: self.addrs(n) + self.addrs(n, "inet6") for n in sorted(names)},
            "routes": self.routes(),
            "allocations": self.allocations(),
            "cache": self.cache_files(),
        }


def _text(conf: Mapping[str, Any] | str) -> str:
    return conf if isinstance(conf, str) else json.dumps(conf)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A fresh namespace pair, a stand-in API server inside its host namespace, and dirs."""
    with make_pair() as pair:
        api = StandInApiServer()
        with pair.in_host():
            api.start()  # the listening socket lives in the host netns, where multus runs
        try:
            yield Cluster(pair, tmp_path, api)
        finally:
            api.stop()
