"""Thick mode end to end, for integration tests: the real ``multus-shim`` executable, the real
``multus-daemon`` process, real plugins from ``/usr/lib/cni`` and the stand-in API server.

``ThickCluster`` is the thin plugin's ``Cluster`` (``tests.support.multus``: host/pod
namespaces, the stand-in API server listening inside the host namespace, ``cniDir``, host-local
``dataDir``, ``put_nad``, ``snapshot()``, ...) plus what thick mode adds:

- pods carry ``spec.nodeName``, so the daemon's watch cache (``MULTUS_NODE_NAME``) holds them;
- a daemon config in tmp (``socketDir``, ``cniDir``, ``binDir``, auto mode over
  ``<tmp>/net.d`` where ``Cluster`` wrote the bridge+host-local cluster conflist);
- ``multus-daemon`` started as a subprocess inside the host namespace (``ip netns exec``)
  with ``--kubeconfig`` of the stand-in and ``MULTUS_NODE_NAME``; ``kill_daemon``,
  ``restart_daemon``;
- ``multus-shim`` installed into ``<tmp>/bin`` and run as a runtime runs it: ``CNI_*`` env and
  the generated ``00-multus.conf`` as stdin::

    def test_x(thick):
        thick.put_nad("default", "br-a", thick.bridge_nad("br-a", "pmbra", 1))
        pod = thick.put_pod("default", "web", {NETWORKS: "br-a"})
        thick.start_daemon()
        thick.shim("ADD", pod).check_ok()
        assert thick.link_names() == {"lo", "eth0", "net1"}

Everything is removed at teardown, also when the test failed: the daemon and any recording
plugin still running, by pid; the API server; every namespace made here (deleting the host
namespace takes the bridges, veths and every other link made by the plugins with it).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pymultus.protocol import wire
from pymultus.shim.install import install_shim
from tests.support.apiserver import StandInApiServer
from tests.support.multus import CLEAN_PATH, CNI_BIN, Cluster, Outcome, PodId
from tests.support.netns import NETNS_DIR, ip, ip_json, make_pair, unique_name
from tests.support.plugins import install_recorder, read_records

DAEMON_EXE = str(Path(sys.executable).with_name("multus-daemon"))
NODE = "pm-node-a"
#: Seconds the daemon may take to serve: Python start-up, first lists, 00-multus.conf.
START_TIMEOUT = 30.0
#: Ends of the list/watch paths of every namespace's NADs and pods.
NAD_COLLECTION = "/network-attachment-definitions"
POD_COLLECTION = "/api/v1/pods"


@dataclass
class ThickCluster(Cluster):
    """One test's thick world; see the module docstring."""

    node: str = NODE
    daemon: subprocess.Popen[bytes] | None = field(default=None, init=False)
    extra_netns: list[str] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        for d in (self.bin_dir, self.socket_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.shim_path = Path(install_shim(str(self.bin_dir)))
        self.daemon_config_path = self.tmp / "daemon-config.json"
        self.daemon_config_path.write_text(json.dumps(self.daemon_config(), indent=2))

    # --- files ---------------------------------------------------------------------------

    @property
    def bin_dir(self) -> Path:
        """The shim, and test plugins (the recorder); on the runtime's CNI_PATH."""
        return self.tmp / "bin"

    @property
    def socket_dir(self) -> Path:
        return self.tmp / "run"

    @property
    def socket_path(self) -> str:
        return str(self.socket_dir / "multus.sock")

    @property
    def generated_path(self) -> Path:
        return self.cluster_file.parent / "00-multus.conf"

    @property
    def daemon_log_path(self) -> Path:
        return self.tmp / "daemon.log"

    def daemon_config(self) -> dict[str, Any]:
        net_d = str(self.cluster_file.parent)
        return {
            "cniVersion": self.cni_version,
            "socketDir": str(self.socket_dir),
            "daemonSocketDir": str(self.socket_dir),
            "cniDir": str(self.cni_dir),
            "binDir": CNI_BIN,
            "multusConfigFile": "auto",
            "multusAutoconfigDir": net_d,
            "cniConfigDir": net_d,
            "logToStderr": True,
            "logLevel": "verbose",
        }

    def generated_conf(self) -> bytes:
        """``00-multus.conf`` as the daemon wrote it: what the runtime gives the shim."""
        return self.generated_path.read_bytes()

    def daemon_log(self) -> str:
        with contextlib.suppress(OSError):
            return self.daemon_log_path.read_text(errors="replace")
        return ""

    # --- API objects ---------------------------------------------------------------------

    def put_pod(
        self, namespace: str, name: str, annotations: Mapping[str, str] | None = None
    ) -> PodId:
        """A pod scheduled on this node (``spec.nodeName``), so the daemon's cache has it."""
        uid = f"0000{unique_name('')}-aaaa-bbbb-cccc-000000000000"
        meta: dict[str, Any] = {"namespace": namespace, "name": name, "uid": uid}
        if annotations:
            meta["annotations"] = dict(annotations)
        spec = {"nodeName": self.node, "containers": [{"name": "pause", "image": "pause"}]}
        self.api.put_object({"kind": "Pod", "metadata": meta, "spec": spec})
        return PodId(namespace, name, uid, container_id=unique_name("c0ffee") * 2)

    def recorder_nad(self, name: str, type_name: str = "pm-rec", **conf: Any) -> dict[str, Any]:
        """A NAD config for the recording plugin, installed into ``bin_dir`` as ``type_name``;
        its calls go to ``<tmp>/<name>.jsonl``."""
        install_recorder(self.bin_dir, type_name)
        base = {"cniVersion": self.cni_version, "name": name, "type": type_name}
        return {**base, "recordFile": str(self.record_file(name)), **conf}

    def record_file(self, name: str) -> Path:
        """Where the recorder NAD ``name`` logs its calls (``read_records`` reads it)."""
        return self.tmp / f"{name}.jsonl"

    # --- the daemon ----------------------------------------------------------------------

    def start_daemon(self, timeout: float = START_TIMEOUT) -> subprocess.Popen[bytes]:
        """Start ``multus-daemon`` in the host namespace; returns once ``/readyz`` answers 200
        and ``00-multus.conf`` exists."""
        assert self.daemon is None or self.daemon.poll() is not None, "daemon already running"
        env = {"PATH": CLEAN_PATH, "MULTUS_NODE_NAME": self.node}
        argv = ["ip", "netns", "exec", self.pair.host, DAEMON_EXE]
        argv += ["-config", str(self.daemon_config_path), "--kubeconfig", str(self.kubeconfig)]
        with self.daemon_log_path.open("ab") as log:
            self.daemon = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        proc = self.daemon
        deadline = time.monotonic() + timeout
        while not (self.generated_path.exists() and self.daemon_answers("/readyz")):
            if proc.poll() is not None:
                raise AssertionError(f"multus-daemon exited {proc.returncode}: {self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"multus-daemon not ready in {timeout} s: {self.tail()}")
            time.sleep(0.05)
        return proc

    def kill_daemon(self, sig: int = signal.SIGKILL, *, timeout: float = 30.0) -> int:
        """Send ``sig`` to the daemon (``ip netns exec`` execs it: the Popen's pid is the
        daemon's) and wait for it to exit; its exit status. The delegates it runs live in
        their own sessions and survive it: ``kill_recorded_plugins`` ends the test plugins
        among them, as a dying container takes its children along."""
        proc = self.daemon
        assert proc is not None, "no daemon was started"
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
        return proc.wait(timeout)

    def stop_daemon(self) -> int:
        """SIGTERM, as the kubelet stops it (requests in flight finish); its exit status."""
        return self.kill_daemon(signal.SIGTERM)

    def restart_daemon(self, sig: int = signal.SIGTERM) -> subprocess.Popen[bytes]:
        """Stop the daemon with ``sig`` and start it again; returns once the new one is
        ready."""
        self.kill_daemon(sig)
        return self.start_daemon()

    def kill_recorded_plugins(self, timeout: float = 10.0) -> list[int]:
        """SIGKILL every recording plugin of this test still running (pids from its record
        files, each checked to be our plugin before the signal); the pids killed."""
        killed = []
        for record_file in self.tmp.glob("*.jsonl"):
            for pid in {r["pid"] for r in read_records(record_file)}:
                if self._is_our_plugin(pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
        wait_for(lambda: not any(map(self._is_our_plugin, killed)), timeout)
        return killed

    def _is_our_plugin(self, pid: int) -> bool:
        """``pid`` runs a program from this test's ``bin_dir`` (and is not a zombie)."""
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state != "Z" and f"{self.bin_dir}/".encode() in cmdline

    def daemon_answers(self, path: str = "/healthz") -> bool:
        with contextlib.suppress(OSError, http.client.HTTPException):
            return unix_request(self.socket_path, "GET", path, timeout=1.0)[0] == 200
        return False

    def start_api(self) -> None:
        """(Re)start the stand-in on its port, listening inside the host namespace again."""
        with self.pair.in_host():
            self.api.start()

    def tail(self, size: int = 4000) -> str:
        return self.daemon_log()[-size:]

    def cleanup(self) -> None:
        """Everything this object started or made, by id; safe to call twice."""
        proc = self.daemon
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(30)
        with contextlib.suppress(AssertionError):
            self.kill_recorded_plugins()
        for name in self.extra_netns:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)
        self.extra_netns.clear()

    # --- what a runtime does -------------------------------------------------------------

    def new_netns(self) -> str:
        """One more pod namespace (loopback up); its path. Deleted at teardown."""
        name = unique_name("pmp-")
        ip(None, "netns", "add", name)
        self.extra_netns.append(name)
        ip(name, "link", "set", "lo", "up")
        return f"{NETNS_DIR}/{name}"

    def env(
        self, command: str, pod: PodId, *, ifname: str = "eth0", netns: str | None = None
    ) -> dict[str, str]:
        """A runtime's CNI env; CNI_PATH also holds ``bin_dir`` (test plugins)."""
        env = super().env(command, pod, ifname=ifname, netns=netns)
        env["CNI_PATH"] = f"{CNI_BIN}:{self.bin_dir}"
        return env

    def shim(
        self,
        command: str,
        pod: PodId,
        *,
        netns: str | None = None,
        conf: bytes | None = None,
        timeout: float = 120.0,
    ) -> Outcome:
        """Run ``multus-shim`` as containerd does: CNI env, ``00-multus.conf`` on stdin.
        The shim needs no namespace of its own: it only talks to the unix socket."""
        env = {"PATH": CLEAN_PATH, **self.env(command, pod, netns=netns)}
        proc = subprocess.run(
            [str(self.shim_path)],
            input=self.generated_conf() if conf is None else conf,
            env=env,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        return Outcome(command, proc.returncode, proc.stdout, proc.stderr)

    def delegate(
        self,
        command: str,
        pod: PodId,
        conf: Mapping[str, Any],
        *,
        ifname: str,
        netns: str | None = None,
        attributes: wire.InterfaceAttributes | None = None,
    ) -> tuple[int, bytes]:
        """``POST /delegate`` as multus-dynamic-networks-controller sends it (no CNI_PATH:
        the daemon's binDir is used); (HTTP status, body)."""
        env = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": pod.container_id,
            "CNI_NETNS": self.pair.pod_path if netns is None else netns,
            "CNI_IFNAME": ifname,
            "CNI_ARGS": f"K8S_POD_NAMESPACE={pod.namespace};K8S_POD_NAME={pod.name};"
            f"K8S_POD_UID={pod.uid}",
        }
        body = wire.encode_delegate_request(env, json.dumps(conf).encode(), attributes)
        return unix_request(self.socket_path, "POST", "/delegate", body)

    # --- state ---------------------------------------------------------------------------

    def pod_links(self, netns: str) -> set[str]:
        """Link names in a pod namespace given by path."""
        return {link["ifname"] for link in ip_json(os.path.basename(netns), "link", "show")}

    def link(self, dev: str, netns: str | None = None) -> dict[str, Any]:
        """``ip -j link show dev DEV`` in a pod namespace (default: the pair's)."""
        name = os.path.basename(netns or self.pair.pod_path)
        found: list[dict[str, Any]] = ip_json(name, "link", "show", "dev", dev)
        assert len(found) == 1, found
        return found[0]

    def host_veths(self) -> list[str]:
        """veth links in the host namespace (a pod interface's host end)."""
        found = ip_json(self.pair.host, "-d", "link", "show")
        return sorted(
            link["ifname"] for link in found if link.get("linkinfo", {}).get("info_kind") == "veth"
        )

    def wait_relisted(self, since: int, *paths: str, timeout: float = 20.0) -> None:
        """Wait until, for each collection path in ``paths`` (``NAD_COLLECTION``,
        ``POD_COLLECTION``), a list and then a new watch were requested after
        request number ``since`` (``len(api.requests())`` before the disruption): the
        reflector replaced its store by the list before it started that watch."""

        def relisted(path: str) -> bool:
            log = self.api.requests()[since:]
            after = [r for r in log if r.method == "GET" and r.path.endswith(path)]
            watching = [r.query.get("watch") in ("1", "true") for r in after]
            return False in watching and True in watching[watching.index(False) + 1 :]

        wait_for(lambda: all(relisted(p) for p in paths), timeout, self.tail)


def wait_for(
    condition: Callable[[], object], timeout: float = 10.0, why: Callable[[], str] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time" + (f": {why()}" if why else ""))
        time.sleep(0.02)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def unix_request(
    sock: str, method: str, path: str, body: bytes = b"", timeout: float = 60.0
) -> tuple[int, bytes]:
    """One HTTP request to the daemon's unix socket; (status, body)."""
    conn = _UnixConnection(sock, timeout)
    try:
        headers = {"Content-Type": "application/json"}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture
def thick(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ThickCluster]:
    """A ``ThickCluster`` (daemon not started yet: put pods and NADs, then
    ``start_daemon()``). Parametrize ``thick`` indirectly with a CNI version to change it."""
    cni_version = getattr(request, "param", "1.0.0")
    with make_pair() as pair:
        api = StandInApiServer()
        with pair.in_host():
            api.start()  # listening inside the host netns, where the daemon runs
        world: ThickCluster | None = None
        try:
            world = ThickCluster(pair, tmp_path, api, cni_version=cni_version)
            yield world
        finally:
            if world is not None:
                world.cleanup()
            api.stop()
