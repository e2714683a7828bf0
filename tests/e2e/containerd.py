"""A private containerd 1.6 for the end-to-end tests: its own root, state, socket, CNI dirs.

Started inside the test's "host" network namespace with ``nsenter --net`` (not ``ip netns
exec``: that also gives the process a private mount namespace, and the pod netns containerd
bind-mounts at ``/var/run/netns/cni-<uuid>`` would then be invisible to multus-daemon and to
the tests). So every bridge, veth, iptables rule and qdisc the CNI plugins make lands in the
host namespace, never on the machine's own network.

Stopping is by PID and survives a test run that failed half-way: containerd gets SIGTERM (then
SIGKILL), every ``containerd-shim-runc-v2`` whose command line carries OUR socket address is
killed with its children (the pause processes), the mounts under our root and state dirs are
unmounted deepest first, the shims' sockets in ``/run/containerd/s`` are removed, and only
then the directories.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from pymultus.cli.demo_lab import stop_process
from tests.support.cri import CriClient, CriError
from tests.support.pause_image import DEFAULT_NAME, build_pause_archive

CNI_PLUGINS = "/usr/lib/cni"
NAMESPACE = "k8s.io"  # the containerd namespace of CRI
START_TIMEOUT = 30.0  # seconds for the socket to answer; containerd takes well under 1 s
STOP_TIMEOUT = 15.0  # seconds between SIGTERM and SIGKILL
CGROUP_ROOT = Path("/sys/fs/cgroup")


def config_toml(root: Path, *, bin_dir: Path, conf_dir: Path, sandbox_image: str) -> str:
    """containerd's config: what this machine needs (see shared reference ``runtimes.md``)."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{root}/root"
state = "{root}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{root}/containerd.sock"
[ttrpc]
  address = "{root}/containerd.sock.ttrpc"
[debug]
  level = "info"
[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/opt"

[{cri}]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
[{cri}.cni]
  bin_dir = "{bin_dir}"
  conf_dir = "{conf_dir}"
  max_conf_num = 1
"""


def link_plugins(bin_dir: Path) -> None:
    """containerd 1.6 takes ONE bin dir: link every Debian plugin into it (``loopback`` too:
    containerd always adds a loopback network, and without it no DEL reaches our plugin)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for plugin in sorted(Path(CNI_PLUGINS).iterdir()):
        target = bin_dir / plugin.name
        if not target.exists():
            target.symlink_to(plugin)


@dataclass
class Containerd:
    """One containerd process and everything it leaves behind."""

    root: Path  # holds root/, state/, the socket, the config and the log
    host_netns: str  # the "host" namespace (by ``ip netns`` name) it runs in
    bin_dir: Path
    conf_dir: Path
    sandbox_image: str = DEFAULT_NAME
    proc: subprocess.Popen[bytes] | None = None
    shim_sockets: set[str] = field(default_factory=set)
    task_ids: set[str] = field(default_factory=set)
    cgroups_before: frozenset[Path] = frozenset()

    @property
    def socket(self) -> str:
        return str(self.root / "containerd.sock")

    @property
    def log_path(self) -> Path:
        return self.root / "containerd.log"

    def log_tail(self, size: int = 4000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-size:]
        return ""

    def start(self) -> None:
        self.cgroups_before = frozenset(CGROUP_ROOT.glob(f"*/{NAMESPACE}"))
        config = self.root / "config.toml"
        config.write_text(
            config_toml(
                self.root,
                bin_dir=self.bin_dir,
                conf_dir=self.conf_dir,
                sandbox_image=self.sandbox_image,
            )
        )
        log = self.log_path.open("ab")
        netns = f"/var/run/netns/{self.host_netns}"
        self.proc = subprocess.Popen(
            ["nsenter", f"--net={netns}", "containerd", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # a Ctrl-C of pytest does not reach it; we stop it
        )
        log.close()
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        with CriClient(self.socket) as cri:
            while True:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"containerd exited at start:\n{self.log_tail()}")
                try:
                    cri.version(timeout=2.0)
                    return
                except CriError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            f"containerd did not answer:\n{self.log_tail()}"
                        ) from None
                    time.sleep(0.1)

    def ctr(self, *args: str) -> str:
        argv = ["ctr", "--address", self.socket, "--namespace", NAMESPACE, *args]
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
        return done.stdout

    def load_pause_image(self) -> None:
        """Import the locally built pause image and wait until the CRI sees it."""
        archive = build_pause_archive(self.root / "pause.oci.tar", name=self.sandbox_image)
        self.ctr("images", "import", str(archive))
        with CriClient(self.socket) as cri:
            deadline = time.monotonic() + 10
            while not cri.image_present(self.sandbox_image):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"CRI never saw {self.sandbox_image}")
                time.sleep(0.05)

    # --- stopping ---------------------------------------------------------------------

    def our_processes(self) -> list[int]:
        """PIDs of the shims started for OUR containerd (their command line names our
        socket) and of every process below them (the sandboxes' pause processes)."""
        shims = [pid for pid, argv in _processes() if self.socket in argv]
        return shims + [child for pid in shims for child in _descendants(pid)]

    def stop(self) -> list[str]:
        """Stop containerd and everything it started; returns what could not be removed."""
        self._remember_tasks()
        if self.proc is not None:
            stop_process(self.proc, STOP_TIMEOUT)
        killed = self.our_processes()
        for pid in killed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _wait_gone(killed)
        problems = unmount_below([self.root])
        for sock in self.shim_sockets:
            with contextlib.suppress(OSError):
                os.unlink(sock)
        return problems + self._remove_cgroups()

    def _remember_tasks(self) -> None:
        """The tasks still running: their ids (runc's cgroups are ``/k8s.io/<id>``) and
        their shims' sockets in ``/run/containerd/s`` (each task's ``address`` file)."""
        tasks = self.root / "state" / "io.containerd.runtime.v2.task" / NAMESPACE
        for bundle in tasks.glob("*"):
            self.task_ids.add(bundle.name)
            with contextlib.suppress(OSError):
                address = (bundle / "address").read_text().strip()
                self.shim_sockets.add(address.removeprefix("unix://"))

    def _remove_cgroups(self) -> list[str]:
        """The cgroups of killed tasks, and ``k8s.io`` itself where it was ours (unless
        another containerd uses it meanwhile)."""
        left = []
        for parent in CGROUP_ROOT.glob(f"*/{NAMESPACE}"):
            for cgroup in (parent / t for t in self.task_ids):
                with contextlib.suppress(FileNotFoundError):
                    try:
                        cgroup.rmdir()
                    except OSError as exc:
                        left.append(f"cgroup {cgroup}: {exc.strerror}")
            if parent not in self.cgroups_before:
                with contextlib.suppress(OSError):
                    parent.rmdir()
        return left


def _wait_gone(pids: list[int], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)


def _processes() -> list[tuple[int, str]]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
                found.append((int(entry), argv.decode(errors="replace")))
    return found


def _parent(pid: int) -> int:
    with contextlib.suppress(OSError, IndexError, ValueError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[1])
    return 0


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for other, _ in _processes():
        children.setdefault(_parent(other), []).append(other)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def mounts_below(dirs: list[Path]) -> list[str]:
    """Mount points at or below any of ``dirs``, deepest first."""
    prefixes = [str(d).rstrip("/") + "/" for d in dirs]
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any((point + "/").startswith(p) for p in prefixes):
            points.append(point)
    return sorted(set(points), key=len, reverse=True)


def unmount_below(dirs: list[Path]) -> list[str]:
    """Unmount (lazily, if busy) everything under ``dirs``; returns what stayed mounted."""
    for point in mounts_below(dirs):
        subprocess.run(["umount", point], capture_output=True, check=False)
        if point in mounts_below(dirs):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    return [f"mount {p}" for p in mounts_below(dirs)]


def cni_config_loaded(cri: CriClient) -> str:
    """The plugin type of the first network containerd's CRI loaded from conf_dir ("" if
    none): containerd watches conf_dir, so a new file takes effect a moment later."""
    config = cri.status_info().get("cniconfig") or {}
    for network in config.get("Networks") or []:
        plugins = (network.get("Config") or {}).get("Plugins") or [{}]
        kind = str((plugins[0].get("Network") or {}).get("type", ""))
        if kind != "loopback":
            return kind
    return ""
