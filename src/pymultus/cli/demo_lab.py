"""The throw-away world of ``pymultus demo``: files, namespaces and the daemon process.

Everything lives under one temporary directory and in namespaces whose names carry one random
suffix, so the demo never touches the machine's own network and can prove it left nothing.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymultus.netns import manage
from pymultus.shim.install import install_shim

PLUGIN_DIR = "/usr/lib/cni"
NAMESPACE = "demo"
PODS = ("pod-a", "pod-b")
#: The network the demo hot-plugs into pod-a as net3, and its node-side gateway.
HOTPLUG_NAD = "bridge-c"
HOTPLUG_SUBNET = "198.18.43.0/24"
HOTPLUG_GATEWAY = "198.18.43.1"


def _nad(name: str, config: dict[str, Any]) -> str:
    return (
        "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\n"
        f"metadata:\n  name: {name}\n  namespace: {NAMESPACE}\n"
        f"spec:\n  config: '{json.dumps(config)}'\n"
    )


def _host_local(subnet: str, data_dir: Path) -> dict[str, Any]:
    return {"type": "host-local", "subnet": subnet, "dataDir": str(data_dir)}


def stop_process(proc: subprocess.Popen[bytes], grace: float = 30.0) -> None:
    """SIGTERM (a daemon drains its requests in flight), SIGKILL after ``grace`` s; reaped."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Lab:
    suffix: str = field(default_factory=lambda: secrets.token_hex(3))
    work: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pymultus-demo-")))
    daemon: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"pmdemo-host-{self.suffix}"

    def pod_netns(self, pod: str) -> str:
        return f"pmdemo-{pod}-{self.suffix}"

    def container_id(self, pod: str) -> str:
        return f"demo{self.suffix}{pod.replace('-', '')}".ljust(64, "0")

    def path(self, *parts: str) -> Path:
        return self.work.joinpath(*parts)

    # --- set-up ----------------------------------------------------------------------

    def write_files(self) -> None:
        ipam = self.path("ipam")
        for d in ("net.d", f"nads/{NAMESPACE}", f"pods/{NAMESPACE}", "cni", "run", "bin", "ipam"):
            self.path(d).mkdir(parents=True, exist_ok=True)
        cluster = {
            "cniVersion": "1.0.0",
            "name": "demo-cluster",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": f"pmbr0{self.suffix}",
                    "isGateway": True,
                    "ipMasq": False,
                    "ipam": {
                        **_host_local("198.18.40.0/24", ipam),
                        "routes": [{"dst": "0.0.0.0/0", "gw": "198.18.40.1"}],
                    },
                }
            ],
        }
        self.path("net.d", "10-demo-cluster.conflist").write_text(json.dumps(cluster, indent=2))
        macvlan = {
            "cniVersion": "1.0.0",
            "type": "macvlan",
            "master": f"pmmv{self.suffix}",
            "mode": "bridge",
            "ipam": _host_local("198.18.41.0/24", ipam),
        }
        bridge = {
            "cniVersion": "1.0.0",
            "type": "bridge",
            "bridge": f"pmbr2{self.suffix}",
            "ipMasq": False,
            "ipam": _host_local("198.18.42.0/24", ipam),
        }
        hotplugged = {
            "cniVersion": "1.0.0",
            "type": "bridge",
            "bridge": f"pmbr3{self.suffix}",
            "isGateway": True,  # the node end (198.18.43.1) answers the demo's ping
            "ipMasq": False,
            "ipam": _host_local(HOTPLUG_SUBNET, ipam),
        }
        nads = self.path("nads", NAMESPACE, "networks.yaml")
        nads.write_text(
            "---\n".join(
                _nad(name, conf)
                for name, conf in (
                    ("macvlan-a", macvlan),
                    ("bridge-b", bridge),
                    (HOTPLUG_NAD, hotplugged),
                )
            )
        )
        for pod in PODS:
            self.select(pod, "macvlan-a, bridge-b")
        self.path("daemon-config.json").write_text(json.dumps(self.daemon_config(), indent=2))
        install_shim(str(self.path("bin")))

    def select(self, pod: str, networks: str) -> None:
        """Write the pod file with this ``k8s.v1.cni.cncf.io/networks`` (the daemon
        hot-plugs a running pod's changes)."""
        path = self.path("pods", NAMESPACE, f"{pod}.yaml")
        text = (
            f"metadata:\n  name: {pod}\n  namespace: {NAMESPACE}\n  annotations:\n"
            f"    k8s.v1.cni.cncf.io/networks: {networks}\n"
        )
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)

    def daemon_config(self) -> dict[str, Any]:
        return {
            "cniVersion": "1.0.0",
            "socketDir": str(self.path("run")),
            "daemonSocketDir": str(self.path("run")),
            "multusConfigFile": "auto",
            "multusAutoconfigDir": str(self.path("net.d")),
            "cniConfigDir": str(self.path("net.d")),
            "binDir": PLUGIN_DIR,
            "cniDir": str(self.path("cni")),
            "nadDir": str(self.path("nads")),
            "podDir": str(self.path("pods")),
            "statusDir": str(self.path("status")),
            "logFile": str(self.path("daemon.log")),
            "logLevel": "verbose",
            "hotPlug": True,
        }

    def make_namespaces(self) -> None:
        manage.create(self.host)
        for pod in PODS:
            manage.create(self.pod_netns(pod))
        master = f"pmmv{self.suffix}"
        subprocess.run(
            [
                "ip",
                "-n",
                self.host,
                "link",
                "add",
                master,
                "type",
                "veth",
                "peer",
                "name",
                f"pmmp{self.suffix}",
            ],
            check=True,
        )
        for link in (master, f"pmmp{self.suffix}"):
            subprocess.run(["ip", "-n", self.host, "link", "set", link, "up"], check=True)

    def start_daemon(self, timeout: float = 20.0) -> str:
        """Start multus-daemon in the host namespace; returns the generated config's path."""
        daemon = str(Path(sys.executable).with_name("multus-daemon"))
        with self.path("daemon.stderr").open("wb") as log:  # the child keeps its own copy
            self.daemon = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    self.host,
                    daemon,
                    "-config",
                    str(self.path("daemon-config.json")),
                ],
                stdout=log,
                stderr=log,
            )
        generated = self.path("net.d", "00-multus.conf")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if generated.exists() and self.path("run", "multus.sock").exists():
                return str(generated)
            if self.daemon.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"multus-daemon did not become ready: {self.tail('daemon.stderr')}")

    def tail(self, name: str) -> str:
        with suppress(OSError):
            return self.path(name).read_text()[-2000:]
        return ""

    # --- what a runtime does -----------------------------------------------------------

    def shim(self, command: str, pod: str, config: bytes) -> subprocess.CompletedProcess[bytes]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": self.container_id(pod),
            "CNI_NETNS": os.path.join(manage.NETNS_DIR, self.pod_netns(pod)),
            "CNI_IFNAME": "eth0",
            "CNI_PATH": PLUGIN_DIR,
            "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE={NAMESPACE};K8S_POD_NAME={pod};"
            f"K8S_POD_INFRA_CONTAINER_ID={self.container_id(pod)};K8S_POD_UID={pod}-uid",
        }
        return subprocess.run(
            [str(self.path("bin", "multus-shim"))],
            input=config,
            env=env,
            capture_output=True,
            check=False,
            timeout=60,
        )

    # --- tear-down ---------------------------------------------------------------------

    def stop_daemon(self) -> None:
        if self.daemon is not None:
            stop_process(self.daemon)

    def leftovers(self) -> list[str]:
        left = [f"netns {n}" for n in (self.host, *map(self.pod_netns, PODS)) if manage.exists(n)]
        if self.daemon is not None and self.daemon.poll() is None:
            left.append(f"daemon process {self.daemon.pid}")
        for d in ("cni", "status"):
            left += [f"file {p}" for p in self.path(d).rglob("*") if p.is_file()]
        allocations = self.path("ipam").rglob("*")
        left += [f"IP allocation {p.name}" for p in allocations if p.name[:1].isdigit()]
        links = set(os.listdir("/sys/class/net"))
        left += [f"link {n}" for n in links if self.suffix in n]
        return left

    def destroy(self) -> list[str]:
        """Stop and delete everything; returns what was still there (should be nothing)."""
        self.stop_daemon()
        for pod in PODS:
            manage.delete(self.pod_netns(pod))
        manage.delete(self.host)
        left = self.leftovers()
        if not os.environ.get("PYMULTUS_DEMO_KEEP"):
            shutil.rmtree(self.work, ignore_errors=True)
        return left


@contextmanager
def lab() -> Iterator[Lab]:
    world = Lab()
    try:
        yield world
    finally:
        world.destroy()
