"""One "node" for the end-to-end tests: a host network namespace, containerd, multus-daemon.

Layout under one temporary directory (``Node.work``)::

    net.d/      containerd's conf_dir and the daemon's cniConfigDir: the primary conflist
                10-e2e-cluster.conflist and the daemon's generated 00-multus.conf
    bin/        containerd's ONE bin_dir: links to /usr/lib/cni/*, the failing test plugin, and
                ``multus-shim``, a two-line wrapper that logs each call (verb, sandbox,
                CNI_NETNS) to calls.log and execs the real shim in shim/
    run/        the daemon's socket          cni/    pymultus's delegate cache (cniDir)
    nads/<ns>/  NAD manifests (standalone)   status/ network-status files (standalone)
    ipam/       host-local's dataDir         containerd/  containerd's root, state, socket

Networks (addresses only in 198.18.0.0/15, no masquerading): the cluster network is a
bridge with portmap and bandwidth chained; NAD ``a`` a second bridge, NAD ``b`` a macvlan on a
veth made in the host namespace, NAD ``bad`` a plugin whose ADD always fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymultus.cli.demo_lab import stop_process
from pymultus.k8s.files import read_record
from pymultus.shim.install import install_shim
from tests.e2e import leaks
from tests.e2e.containerd import Containerd, link_plugins
from tests.e2e.leaks import delete_netns_file, libcni_cache_files, our_netns
from tests.support.netns import ip, ip_json, links
from tests.support.plugins import install_recorder

SUBNETS = {"cluster": "198.19.10.0/24", "a": "198.19.11.0/24", "b": "198.19.12.0/24"}
FAILING_PLUGIN = "e2e-fail"
FAILING_MESSAGE = "e2e-fail refuses this pod"
DAEMON_READY_TIMEOUT = 30.0
NETNS_DIR = Path("/var/run/netns")


@dataclass
class Node:
    """The node's names, files and processes; ``destroy()`` undoes everything."""

    suffix: str = field(default_factory=lambda: secrets.token_hex(3))
    work: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pm-e2e-")))
    containerd: Containerd | None = None
    daemon: subprocess.Popen[bytes] | None = None
    daemon_kubeconfig: str | None = None

    # --- names ------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return f"pme2e-host-{self.suffix}"

    @property
    def namespace(self) -> str:
        """The pods' Kubernetes namespace, unique so cache files can be told apart."""
        return f"e2e-{self.suffix}"

    @property
    def node_name(self) -> str:
        return f"e2e-node-{self.suffix}"

    @property
    def bridges(self) -> dict[str, str]:
        return {"cluster": f"pme2c{self.suffix}", "a": f"pme2a{self.suffix}"}

    @property
    def cluster_gateway(self) -> str:
        """The cluster bridge's address (bridge ``isGateway``): it stays between pods."""
        net = SUBNETS["cluster"]
        return net.replace(".0/", ".1/")

    @property
    def master(self) -> str:
        return f"pme2m{self.suffix}"

    @property
    def kept_links(self) -> set[str]:
        """Host links that outlive pods: loopback, the macvlan master pair, the bridges."""
        return {"lo", self.master, f"pme2p{self.suffix}", *self.bridges.values()}

    def path(self, *parts: str) -> Path:
        return self.work.joinpath(*parts)

    @property
    def conf_dir(self) -> Path:
        return self.path("net.d")

    @property
    def generated(self) -> Path:
        return self.conf_dir / "00-multus.conf"

    # --- set-up -------------------------------------------------------------------------

    def setup(self) -> None:
        """Files, directories and the host namespace (the daemon and containerd start after)."""
        for d in ("net.d", "bin", "shim", "run", "cni", "ipam", "status", "pods", "containerd"):
            self.path(d).mkdir(parents=True, exist_ok=True)
        self.make_host_netns()
        self.write_primary()
        self.write_nads()
        self.install_plugins()
        self.path("daemon-config.json").write_text(json.dumps(self.daemon_config(), indent=2))

    def make_host_netns(self) -> None:
        ip(None, "netns", "add", self.host)
        ip(self.host, "link", "set", "lo", "up")
        peer = f"pme2p{self.suffix}"
        ip(self.host, "link", "add", self.master, "type", "veth", "peer", "name", peer)
        for link in (self.master, peer):
            ip(self.host, "link", "set", link, "up")

    def _ipam(self, network: str, **extra: Any) -> dict[str, Any]:
        return {
            "type": "host-local",
            "subnet": SUBNETS[network],
            "dataDir": str(self.path("ipam")),
            **extra,
        }

    def write_primary(self) -> None:
        """The cluster network: bridge + portmap + bandwidth, the capabilities declared where
        each plugin needs them (the generator copies them into 00-multus.conf)."""
        primary = {
            "cniVersion": "1.0.0",
            "name": "e2e-cluster",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridges["cluster"],
                    "isGateway": True,
                    "ipMasq": False,
                    "ipam": self._ipam("cluster", routes=[{"dst": "0.0.0.0/0"}]),
                },
                {"type": "portmap", "capabilities": {"portMappings": True}, "snat": False},
                {"type": "bandwidth", "capabilities": {"bandwidth": True}},
            ],
        }
        self.path("net.d", "10-e2e-cluster.conflist").write_text(json.dumps(primary, indent=2))

    def nad_configs(self) -> dict[str, dict[str, Any]]:
        return {
            "a": {
                "cniVersion": "1.0.0",
                "type": "bridge",
                "bridge": self.bridges["a"],
                "ipMasq": False,
                "ipam": self._ipam("a"),
            },
            "b": {
                "cniVersion": "1.0.0",
                "type": "macvlan",
                "master": self.master,
                "mode": "bridge",
                "ipam": self._ipam("b"),
            },
            "bad": {
                "cniVersion": "1.0.0",
                "type": FAILING_PLUGIN,
                "recordFile": str(self.path("bad-calls.jsonl")),
                "behaviour": {"ADD": {"action": "error", "code": 7, "msg": FAILING_MESSAGE}},
            },
        }

    def nad_objects(self) -> list[dict[str, Any]]:
        return [
            {
                "apiVersion": "k8s.cni.cncf.io/v1",
                "kind": "NetworkAttachmentDefinition",
                "metadata": {"name": name, "namespace": self.namespace},
                "spec": {"config": json.dumps(config)},
            }
            for name, config in self.nad_configs().items()
        ]

    def write_nads(self) -> None:
        """Standalone mode's NAD manifests (JSON documents are YAML too)."""
        directory = self.path("nads", self.namespace)
        directory.mkdir(parents=True)
        text = "---\n".join(json.dumps(obj) + "\n" for obj in self.nad_objects())
        (directory / "networks.yaml").write_text(text)

    def install_plugins(self) -> None:
        bin_dir = self.path("bin")
        link_plugins(bin_dir)
        install_recorder(bin_dir, FAILING_PLUGIN)
        real = install_shim(str(self.path("shim")))
        wrapper = bin_dir / "multus-shim"
        wrapper.write_text(
            "#!/bin/sh\n"
            f'printf \'%s %s netns=%s\\n\' "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_NETNS"'
            f" >> {self.path('calls.log')}\n"
            f'exec {real} "$@"\n'
        )
        wrapper.chmod(0o755)

    def daemon_config(self) -> dict[str, Any]:
        return {
            "cniVersion": "1.0.0",
            "socketDir": str(self.path("run")),
            "daemonSocketDir": str(self.path("run")),
            "multusConfigFile": "auto",
            "multusAutoconfigDir": str(self.conf_dir),
            "cniConfigDir": str(self.conf_dir),
            "cniDir": str(self.path("cni")),
            "capabilities": {"io.kubernetes.cri.pod-annotations": True},
            "nadDir": str(self.path("nads")),
            "podDir": str(self.path("pods")),
            "statusDir": str(self.path("status")),
            "logFile": str(self.path("daemon.log")),
            "logLevel": "verbose",
            "hotPlug": True,  # as deploy/ sets it; test_hotplug.py edits running pods
        }

    def start_containerd(self) -> Containerd:
        self.containerd = Containerd(
            root=self.path("containerd"),
            host_netns=self.host,
            bin_dir=self.path("bin"),
            conf_dir=self.conf_dir,
        )
        self.containerd.start()
        self.containerd.load_pause_image()
        return self.containerd

    # --- the daemon ---------------------------------------------------------------------

    def start_daemon(self, kubeconfig: str | None = None) -> None:
        """multus-daemon in the host namespace: standalone, or with the API server."""
        self.stop_daemon()
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
        argv = [str(Path(sys.executable).with_name("multus-daemon"))]
        argv += ["-config", str(self.path("daemon-config.json"))]
        if kubeconfig:
            argv += ["--kubeconfig", kubeconfig]
            env["MULTUS_NODE_NAME"] = self.node_name
        log = self.path("daemon.stderr").open("ab")
        self.daemon = subprocess.Popen(
            ["nsenter", f"--net={NETNS_DIR / self.host}", *argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            start_new_session=True,
        )
        log.close()
        self.daemon_kubeconfig = kubeconfig
        self._wait_daemon()

    def _wait_daemon(self) -> None:
        sock = self.path("run", "multus.sock")
        deadline = time.monotonic() + DAEMON_READY_TIMEOUT
        while not (self.generated.exists() and _answers(sock)):
            assert self.daemon is not None
            if self.daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"multus-daemon did not start:\n{self.tail('daemon.stderr')}")
            time.sleep(0.05)

    def stop_daemon(self) -> None:
        """SIGTERM (the daemon drains requests in flight), SIGKILL after 30 s."""
        proc, self.daemon = self.daemon, None
        if proc is not None:
            stop_process(proc)

    def tail(self, name: str, size: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.path(name).read_text(errors="replace")[-size:]
        return ""

    # --- looking -------------------------------------------------------------------------

    def shim_calls(self, sandbox_id: str | None = None) -> list[tuple[str, str]]:
        """(verb, CNI_NETNS) of every shim call containerd made (for ``sandbox_id``)."""
        calls = []
        for line in self.tail("calls.log", size=10**8).splitlines():
            verb, cid, netns = line.split(" ", 2)
            if sandbox_id is None or cid == sandbox_id:
                calls.append((verb, netns.removeprefix("netns=")))
        return calls

    def network_status(self, name: str) -> list[dict[str, Any]]:
        """The pod's network-status from the standalone state directory."""
        record = read_record(str(self.path("status")), self.namespace, name)
        assert record is not None, f"no network-status file for {name}"
        status: list[dict[str, Any]] = json.loads(record.network_status)
        return status

    def host_links(self) -> dict[str, dict[str, Any]]:
        return links(self.host)

    def nat_rules(self) -> list[str]:
        """The host namespace's nat table rules (portmap's DNAT chains)."""
        done = subprocess.run(
            ["nsenter", f"--net={NETNS_DIR / self.host}", "iptables-save", "-t", "nat"],
            capture_output=True,
            text=True,
            check=True,
        )
        return [line for line in done.stdout.splitlines() if line.startswith("-A")]

    def qdiscs(self, dev: str) -> list[dict[str, Any]]:
        done = subprocess.run(
            ["ip", "netns", "exec", self.host, "tc", "-j", "qdisc", "show", "dev", dev],
            capture_output=True,
            text=True,
            check=True,
        )
        found: list[dict[str, Any]] = json.loads(done.stdout or "[]")
        return found

    def leftovers(self) -> list[str]:
        """What pods left behind (see ``leaks``): [] between tests."""
        return leaks.leftovers(self)

    def scrub(self) -> None:
        leaks.scrub(self)

    def addresses_in(self, netns_path: str) -> dict[str, list[str]]:
        """IPv4 ``address/prefix`` of every link but lo inside a sandbox's namespace."""
        name = Path(netns_path).name
        shown = ip_json(name, "addr", "show")
        return {
            link["ifname"]: [
                f"{a['local']}/{a['prefixlen']}"
                for a in link.get("addr_info", [])
                if a.get("family") == "inet"
            ]
            for link in shown
            if link["ifname"] != "lo"
        }

    # --- tear-down -------------------------------------------------------------------------

    def destroy(self) -> list[str]:
        """Stop everything by PID and remove every trace; returns what could not be."""
        problems: list[str] = []
        self.stop_daemon()
        if self.containerd is not None:
            problems += self.containerd.stop()
        for path in our_netns(self):
            delete_netns_file(path)
        subprocess.run(["ip", "netns", "delete", self.host], capture_output=True, check=False)
        for path in libcni_cache_files(self.namespace):
            path.unlink(missing_ok=True)
        if not problems:
            shutil.rmtree(self.work, ignore_errors=True)
        return problems


def _answers(sock: Path) -> bool:
    """The daemon listens (its socket file outlives a stopped daemon, so existing is not
    enough)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(sock))
    except OSError:
        return False
    finally:
        probe.close()
    return True
