"""The throw-away world the benchmark runs in: one "host" network namespace, the stand-in API
server listening inside it (a process of its own, ``bench/apiproc.py``), bridge+host-local
networks, a thick daemon, files in a temp dir.

Everything carries one random suffix and lives under one temporary directory. The calling
thread enters the host namespace for the whole run (``World.open``), so every plugin, shim and
daemon process the benchmark starts is born there (threads started later inherit it), and
deleting that namespace at the end removes every bridge and veth the plugins made. Pods are
fresh namespaces per run (``ip netns add``), deleted after their DEL.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.apiproc import ApiProcess, RequestTime
from pymultus.cli.demo_lab import stop_process
from pymultus.netns.enter import in_netns
from pymultus.plugin.install import install_thin
from pymultus.shim.install import install_shim

CNI_BIN = "/usr/lib/cni"
NAMESPACE = "bench"
NODE = "bench-node"
NETWORKS = "k8s.v1.cni.cncf.io/networks"
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
VENV_BIN = Path(sys.executable).parent
DAEMON = str(VENV_BIN / "multus-daemon")
MAX_NETWORKS = 8
CNI_VERSION = "1.0.0"


def ip(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


@dataclass(frozen=True)
class PodId:
    """A pod as the runtime names it: API object, sandbox container id, network namespace."""

    name: str
    uid: str
    container_id: str
    netns: str
    networks: int

    @property
    def netns_path(self) -> str:
        return f"/var/run/netns/{self.netns}"

    def env(self, command: str) -> dict[str, str]:
        """The environment a container runtime gives a CNI plugin."""
        args = (
            f"IgnoreUnknown=1;K8S_POD_NAMESPACE={NAMESPACE};K8S_POD_NAME={self.name};"
            f"K8S_POD_INFRA_CONTAINER_ID={self.container_id};K8S_POD_UID={self.uid}"
        )
        return {
            "PATH": CLEAN_PATH,
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": self.container_id,
            "CNI_NETNS": self.netns_path,
            "CNI_IFNAME": "eth0",
            "CNI_PATH": CNI_BIN,
            "CNI_ARGS": args,
        }


@dataclass
class World:
    """Namespaces, API server, configs and the thick daemon; see the module docstring."""

    suffix: str = field(default_factory=lambda: secrets.token_hex(3))
    work: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pymultus-bench-")))
    api: ApiProcess = field(default_factory=ApiProcess)
    daemon: subprocess.Popen[bytes] | None = None
    shim_conf: bytes = b""
    _pods: int = 0
    _pod_names: list[str] = field(default_factory=list)
    _netns: set[str] = field(default_factory=set)

    @property
    def request_times(self) -> list[RequestTime]:
        """Every request the API server got: (arrival, method, path, is a watch)."""
        return self.api.request_times()

    @property
    def host(self) -> str:
        return f"pmbh-{self.suffix}"

    def path(self, *parts: str) -> Path:
        return self.work.joinpath(*parts)

    # --- life cycle --------------------------------------------------------------------

    @classmethod
    @contextlib.contextmanager
    def open(cls) -> Iterator[World]:
        """A world, entered (this thread in the host namespace), always torn down."""
        world = cls()
        try:
            ip("netns", "add", world.host)
            ip("-n", world.host, "link", "set", "lo", "up")
            with in_netns(world.host):
                world.setup()
                yield world
        finally:
            world.destroy()

    def setup(self) -> None:
        for d in ("net.d", "out.d", "run", "bin", "ipam", "cni-thick", "cni-thin", "conf.d"):
            self.path(d).mkdir(parents=True, exist_ok=True)
        # In the host namespace, like every plugin; HTTPS with its own CA, which the
        # kubeconfig names (a thin call pays for TLS as against a real kube-apiserver).
        self.api.start(self.path("kubeconfig"))
        self.path("net.d", "10-bench.conflist").write_text(json.dumps(self.cluster_conflist()))
        for k in range(1, MAX_NETWORKS + 1):
            self.put_nad(f"net{k}", self.nad_conf(k))
        install_shim(str(self.path("bin")))
        install_thin(str(self.path("bin")))

    def destroy(self) -> None:
        self.stop_daemon()
        self.api.stop()
        for name in list(self._netns):
            self.delete_netns(name)
        ip("netns", "delete", self.host, check=False)
        shutil.rmtree(self.work, ignore_errors=True)

    # --- network configs (all bridge + host-local in 198.18.0.0/15, no masquerading) -------

    def host_local(self, subnet: str, **extra: Any) -> dict[str, Any]:
        return {"type": "host-local", "subnet": subnet, "dataDir": str(self.path("ipam")), **extra}

    def cluster_plugin(self) -> dict[str, Any]:
        ipam = self.host_local("198.18.0.0/20", routes=[{"dst": "0.0.0.0/0"}])
        return {
            "type": "bridge",
            "bridge": f"pb0{self.suffix}",
            "isGateway": False,
            "ipMasq": False,
            "ipam": ipam,
        }

    def cluster_conflist(self) -> dict[str, Any]:
        return {
            "cniVersion": CNI_VERSION,
            "name": "bench-cluster",
            "plugins": [self.cluster_plugin()],
        }

    def nad_conf(self, k: int) -> dict[str, Any]:
        return {
            "cniVersion": CNI_VERSION,
            "name": f"net{k}",
            "type": "bridge",
            "bridge": f"pb{k}{self.suffix}",
            "ipMasq": False,
            "ipam": self.host_local(f"198.18.{16 * k}.0/20"),
        }

    def put_nad(self, name: str, config: dict[str, Any], namespace: str = NAMESPACE) -> None:
        meta = {"namespace": namespace, "name": name}
        spec = {"config": json.dumps(config)}
        self.api.put_object({"kind": "NetworkAttachmentDefinition", "metadata": meta, "spec": spec})

    def thin_conf(self) -> bytes:
        conf = {
            "cniVersion": CNI_VERSION,
            "name": "multus-cni-network",
            "type": "multus",
            "kubeconfig": str(self.path("kubeconfig")),
            "clusterNetwork": str(self.path("net.d", "10-bench.conflist")),
            "cniDir": str(self.path("cni-thin")),
            "confDir": str(self.path("conf.d")),
            "binDir": CNI_BIN,
        }
        return json.dumps(conf).encode()

    def daemon_config(self) -> dict[str, Any]:
        return {
            "cniVersion": CNI_VERSION,
            "socketDir": str(self.path("run")),
            "daemonSocketDir": str(self.path("run")),
            "multusConfigFile": "auto",
            "multusAutoconfigDir": str(self.path("net.d")),
            "cniConfigDir": str(self.path("out.d")),
            "binDir": CNI_BIN,
            "cniDir": str(self.path("cni-thick")),
        }

    # --- pods ----------------------------------------------------------------------------

    def new_pod(self, networks: int, tag: str) -> PodId:
        """A Pod object on this node asking for ``net1..net<networks>``; no namespace yet."""
        self._pods += 1
        name = f"{tag}-{self._pods:05d}"
        uid = str(uuid.uuid4())
        meta: dict[str, Any] = {"namespace": NAMESPACE, "name": name, "uid": uid}
        if networks:
            meta["annotations"] = {NETWORKS: ", ".join(f"net{k}" for k in range(1, networks + 1))}
        spec = {"nodeName": NODE, "containers": [{"name": "pause", "image": "pause:3.9"}]}
        self.api.put_object({"kind": "Pod", "metadata": meta, "spec": spec})
        self._pod_names.append(name)
        cid = uuid.uuid4().hex + uuid.uuid4().hex
        return PodId(name, uid, cid, f"pmbp-{self.suffix}-{self._pods}", networks)

    def forget_pods(self) -> None:
        """Delete every Pod object this world made from the API (their runs are over)."""
        self.api.delete_pods([(NAMESPACE, name) for name in self._pod_names])
        self._pod_names.clear()

    def make_netns(self, pod: PodId) -> None:
        ip("netns", "add", pod.netns)
        self._netns.add(pod.netns)
        ip("-n", pod.netns, "link", "set", "lo", "up")

    def delete_netns(self, name: str) -> None:
        ip("netns", "delete", name, check=False)
        self._netns.discard(name)

    # --- the thick daemon ------------------------------------------------------------------

    def start_daemon(self, timeout: float = 30.0, *, launcher: list[str] | None = None) -> None:
        """``multus-daemon`` with the stand-in API and a watch cache of this node;
        ``launcher`` replaces the executable (a profiling wrapper)."""
        self.path("daemon-config.json").write_text(json.dumps(self.daemon_config()))
        log = self.path("daemon.stderr").open("wb")
        env = {**os.environ, "MULTUS_NODE_NAME": NODE}
        argv = [*(launcher or [DAEMON]), "-config", str(self.path("daemon-config.json"))]
        argv += ["--kubeconfig", str(self.path("kubeconfig"))]
        self.daemon = subprocess.Popen(argv, stdout=log, stderr=log, env=env)
        log.close()
        generated = self.path("out.d", "00-multus.conf")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if generated.exists() and self.socket.exists():
                self.shim_conf = generated.read_bytes()
                return
            if self.daemon.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(f"multus-daemon did not start: {self.daemon_log()}")

    @property
    def socket(self) -> Path:
        return self.path("run", "multus.sock")

    @property
    def shim(self) -> str:
        return str(self.path("bin", "multus-shim"))

    @property
    def thin(self) -> str:
        """The thin plugin as ``pymultus install --type thin`` installs it."""
        return str(self.path("bin", "multus"))

    @property
    def thin_python(self) -> str:
        """The interpreter the installed thin plugin's ``#!`` line names."""
        with open(self.thin, encoding="utf-8") as fh:
            return fh.readline()[2:].split()[0]

    def daemon_log(self) -> str:
        with contextlib.suppress(OSError):
            return self.path("daemon.stderr").read_text()[-3000:]
        return ""

    def stop_daemon(self) -> None:
        proc, self.daemon = self.daemon, None
        if proc is not None:
            stop_process(proc)

    def leftover_allocations(self) -> list[str]:
        """host-local reservations still on disk: each one a DEL that did not clean up."""
        return sorted(
            f"{p.parent.name}/{p.name}"
            for p in self.path("ipam").glob("*/*")
            if not p.name.startswith(("lock", "last_reserved_ip"))
        )
