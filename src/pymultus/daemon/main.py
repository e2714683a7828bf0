"""``multus-daemon``: the thick plugin's server (behaviour §7 "Daemon lifecycle").

Start-up, with Go's exit codes: flags → daemon config (1 if unusable) → logging →
readiness-indicator wait (45 s, else 1) → root check (1) → pod/NAD sources → config manager
finds the primary CNI config (``daemon.confmanager``; 2 if it cannot) → watch cache synced
(20 s at most) → socket directory → listen on ``<socketDir>/multus.sock`` and the metrics
port → ``00-multus.conf`` written and watched (3 if listening or writing fails) → serve.

Shutdown on SIGTERM/SIGINT: ``/readyz`` answers 500 at once (the shim then holds new ADDs),
requests in flight finish (new ones are still served: a DEL must not be lost), and when none
is left — or after ``drain_timeout`` — the listener closes, the config manager and the cache
stop (``00-multus.conf`` stays, unlike Go), exit 0. The socket file stays too: the shim reads
"no socket file" as "Multus is not installed" and lets a DEL succeed, so a DEL during a
restart would be lost; a dead socket answers code 11 and the runtime retries. If the
readiness indicator file disappears the same shutdown ends with exit 2, as in Go, and the
socket file goes with ``00-multus.conf``.

Differences from Go, on purpose: only the stale socket file is removed, never the whole socket
directory (Go deletes ``socketDir`` recursively, whatever else lives there); a socket that a
live daemon still answers on is not stolen; ``-version`` exits 0 (Go exits 4).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
import stat
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import prometheus_client

from pymultus import __version__
from pymultus.cni.errors import CniError, IOFailure
from pymultus.cni.invoke import Executor, SubprocessExecutor
from pymultus.config.daemon import DEFAULT_CONFIG_PATH, DaemonConf, overlay, parse_daemon_conf
from pymultus.config.generator import MULTUS_CONFIG_FILE
from pymultus.config.multus import DEFAULT_CNI_DIR
from pymultus.core.deps import Deps
from pymultus.core.record import hotplug_state_path
from pymultus.daemon import logs
from pymultus.daemon.cache import WatchCache
from pymultus.daemon.confmanager import ConfigManager, wait_for_file
from pymultus.daemon.credentials import NODE_NAME_ENV, follow_rotations, per_node_certificates
from pymultus.daemon.delegate_api import DelegateHandler
from pymultus.daemon.events import BackgroundEvents
from pymultus.daemon.executor import DEFAULT_DELEGATE_LIMIT, LimitedExecutor
from pymultus.daemon.handler import Backend, CniHandler
from pymultus.daemon.hotplug import HotPlug
from pymultus.daemon.hotplug_files import (
    POLL_SECONDS,
    FilePodLookup,
    file_status,
    standalone_deps_for,
)
from pymultus.daemon.hotplug_state import live_status
from pymultus.daemon.metrics import Metrics
from pymultus.daemon.server import Health, HttpServer, daemon_routes, metrics_routes
from pymultus.daemon.slices import CachedDra
from pymultus.daemon.watch import async_client_factory
from pymultus.k8s.certmanager import CertManager
from pymultus.k8s.client import KubeApi, load_client
from pymultus.k8s.dra_api import ApiDra
from pymultus.k8s.files import DEFAULT_NAD_DIR, DEFAULT_POD_DIR, DEFAULT_STATE_DIR
from pymultus.k8s.sources import ApiEvents, ApiNads, ApiPods, ApiStatus

log = logging.getLogger(__name__)

SOCKET_NAME = "multus.sock"
#: Seconds to wait for requests in flight after a signal: inside Kubernetes' default 30 s
#: termination grace, so we exit cleanly before the kubelet's SIGKILL.
DEFAULT_DRAIN_TIMEOUT = 25.0
#: Seconds a request that arrived while the listener was closing may still take.
CLOSE_GRACE = 2.0
#: Requests running in the core at once. Each waits mostly on delegate processes (capped
#: separately) or the API server; 64 covers a node's burst of sandboxes after a reboot.
DEFAULT_WORKERS = 64

#: Go's wait for the informers' first lists (row 58).
CACHE_SYNC_TIMEOUT = 20.0

# Go's exit codes: config or readiness wait; config manager; listener.
EXIT_CONFIG = 1
EXIT_MANAGER = 2
EXIT_LISTEN = 3

Hook = Callable[[], Awaitable[None]]


@dataclass
class Sources:
    """The core's dependencies, and the watch cache behind them when there is one (it
    runs on the daemon's loop: started before serving, stopped after)."""

    deps: Deps
    cache: WatchCache | None = None
    certs: CertManager | None = None  # perNodeCertificate: started with the daemon


def build_deps(conf: DaemonConf, *, kubeconfig: str | None, executor: Executor) -> Sources:
    """The core's dependencies in thick mode.

    Without a kubeconfig and outside a cluster: standalone (static delegates and files only).
    Otherwise pods and NADs come from the watch cache of this node (``MULTUS_NODE_NAME``),
    which falls back to one live GET on a miss; status and events go to the API. Without a
    node name the API is asked directly on every request (correct, only slower). Delegates
    get only Multus's own K8S args, as from Go's daemon.
    """
    deps = Deps(
        executor=executor,
        append_runtime_args=False,
        plugin_timeout=conf.delegate_timeout_s,
        keep_records=conf.hot_plug,
    )
    certs = per_node_certificates(conf, kubeconfig)
    if certs is not None:
        kubeconfig = certs.kubeconfig_path
    client = load_client(kubeconfig)
    if client is None:
        return Sources(deps)
    api = KubeApi(client)
    if certs is not None:
        follow_rotations(certs, api)
    events = BackgroundEvents(ApiEvents(api))  # never on the ADD's critical path
    events.start()
    deps.status, deps.events = ApiStatus(api), events
    node = os.environ.get(NODE_NAME_ENV, "")
    factory = async_client_factory(kubeconfig, config=client.config) if node else None
    if factory is None:
        log.error("%s is not set: no watch cache, every lookup asks the API", NODE_NAME_ENV)
        deps.pods, deps.nads, deps.dra = ApiPods(api), ApiNads(api), ApiDra(api)
        return Sources(deps, certs=certs)
    cache = WatchCache(factory, node_name=node, live_api=api)
    deps.pods = deps.nads = cache
    deps.dra = CachedDra(api, cache=cache.slices)
    return Sources(deps, cache, certs)


@dataclass
class Daemon:
    """One daemon: the unix-socket server, the optional metrics server, the worker pool.

    Usable in-process (tests): ``await start()``, then ``await shutdown()``. ``on_ready``
    hooks run once the socket serves (the config manager writes ``00-multus.conf`` there);
    ``on_shutdown`` hooks run after the listener closed (they stop the config manager, which
    keeps the file: only an explicit uninstall removes it).
    """

    conf: DaemonConf
    deps: Deps
    metrics: Metrics = field(default_factory=Metrics)
    workers: int = DEFAULT_WORKERS
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT
    metrics_host: str | None = None  # None: every address, as Go's ":port"
    on_ready: list[Hook] = field(default_factory=list)
    on_shutdown: list[Hook] = field(default_factory=list)
    health: Health = field(default_factory=Health)
    metrics_port: int | None = None  # bound port once started
    _pool: ThreadPoolExecutor | None = None
    _server: HttpServer | None = None
    _metrics_server: HttpServer | None = None
    _owns_socket: bool = False  # the socket file is ours to remove
    backend: Backend | None = None

    @property
    def socket_path(self) -> str:
        return os.path.join(self.conf.socket_dir, SOCKET_NAME)

    async def start(self) -> None:
        prepare_socket_dir(self.conf.socket_dir, self.socket_path)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="multus-req")
        backend = self.backend = Backend(self.deps, self._pool)
        routes = daemon_routes(
            CniHandler(self.conf, backend), DelegateHandler(self.conf, backend), self.health
        )
        events = self.deps.events
        self._server = HttpServer(
            routes,
            metrics=self.metrics,
            connection_limit=self.conf.connection_limit,
            on_busy=events.set_busy if isinstance(events, BackgroundEvents) else None,
        )
        try:
            await self._server.start_unix(self.socket_path)
            self._owns_socket = True
            os.chmod(self.socket_path, 0o600)
            if self.conf.metrics_port is not None:
                self._metrics_server = HttpServer(metrics_routes(self.metrics))
                self.metrics_port = await self._metrics_server.start_tcp(
                    self.metrics_host, self.conf.metrics_port
                )
        except OSError as exc:
            raise IOFailure(f"cannot listen: {exc}", path=self.socket_path) from exc
        log.info("multus-daemon %s serving on %s", __version__, self.socket_path)
        for hook in self.on_ready:
            await hook()

    async def shutdown(self, *, remove_socket: bool = False) -> None:
        """Readiness off, let requests in flight finish, then stop everything. The socket
        file is kept unless ``remove_socket`` (see the module docstring: DELs in a restart)."""
        self.health.shutting_down = True
        if self._server is not None:
            log.info("shutting down: %d request(s) in flight", self._server.in_flight)
            if not await self._server.wait_idle(self.drain_timeout):
                log.error("requests still running after %.0f s; stopping", self.drain_timeout)
            await self._server.close(grace=CLOSE_GRACE)
        if self._metrics_server is not None:
            await self._metrics_server.close()
        for hook in self.on_shutdown:
            await hook()
        if self._owns_socket and remove_socket:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.socket_path)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


def prepare_socket_dir(directory: str, socket_path: str) -> None:
    """``socketDir`` as a root-only directory (0700) without a stale socket in it.

    Only our socket file is removed, and only if no daemon answers on it: Go deletes the
    whole directory, which wipes anything else an operator put there.
    """
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        info = os.lstat(directory)
        if not stat.S_ISDIR(info.st_mode):
            raise IOFailure(f"socketDir {directory} is not a directory", path=directory)
        os.chmod(directory, 0o700)
        if os.geteuid() == 0 and (info.st_uid, info.st_gid) != (0, 0):
            os.chown(directory, 0, 0)
        if os.path.lexists(socket_path):
            if _answers(socket_path):
                raise IOFailure(
                    f"another daemon is serving on {socket_path}; not taking it over",
                    path=socket_path,
                )
            os.unlink(socket_path)
    except OSError as exc:
        raise IOFailure(f"cannot prepare socketDir {directory}: {exc}", path=directory) from exc


def _answers(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Go's single-dash flags, and the double-dash spellings."""
    parser = argparse.ArgumentParser(prog="multus-daemon", description=__doc__.splitlines()[0])
    parser.add_argument("-config", "--config", default=DEFAULT_CONFIG_PATH, metavar="PATH")
    parser.add_argument("-kubeconfig", "--kubeconfig", default="", metavar="PATH")
    parser.add_argument("-version", "--version", action="store_true")
    return parser.parse_args(argv)


def load_daemon_conf(path: str) -> DaemonConf:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise IOFailure(f"cannot read daemon config {path}: {exc.strerror}", path=path) from exc
    return parse_daemon_conf(data)


def build_daemon(conf: DaemonConf, kubeconfig: str | None) -> tuple[Daemon, WatchCache | None]:
    """The daemon with its executor (capped, measured) and pod/NAD sources."""
    metrics = Metrics()
    limit = conf.max_delegate_processes or DEFAULT_DELEGATE_LIMIT
    executor = LimitedExecutor(
        SubprocessExecutor(root=conf.chroot_dir), limit=limit, metrics=metrics
    )
    if conf.enable_pprof:
        log.info("enablePprof has no meaning for pymultus; ignored")
    sources = build_deps(conf, kubeconfig=kubeconfig, executor=executor)
    daemon = Daemon(conf, sources.deps, metrics)
    if sources.certs is not None:
        sources.certs.start()
        daemon.on_shutdown.append(functools.partial(asyncio.to_thread, sources.certs.stop))
    return daemon, sources.cache


async def run(conf: DaemonConf, kubeconfig: str | None) -> int:
    """The daemon's life from the readiness wait to the exit code."""
    if conf.readiness_indicator_file and not await wait_for_file(conf.readiness_indicator_file):
        return fatal(conf, EXIT_CONFIG, f"{conf.readiness_indicator_file} never appeared")
    if os.geteuid() != 0:
        return fatal(conf, EXIT_CONFIG, "must run as root (the socket is root-only)")
    stop, exit_code = asyncio.Event(), [0]

    def readiness_lost() -> None:  # Go exits 2 there; the kubelet restarts us
        exit_code[0] = EXIT_MANAGER
        stop.set()

    try:
        daemon, cache = build_daemon(conf, kubeconfig)
    except CniError as exc:
        return fatal(conf, EXIT_CONFIG, str(exc))
    try:
        manager = ConfigManager(conf, on_readiness_lost=readiness_lost)
        await manager.prepare()
    except CniError as exc:
        return fatal(conf, EXIT_MANAGER, str(exc))
    daemon.on_ready.append(manager.start)
    daemon.on_shutdown.append(manager.stop)
    if isinstance(daemon.deps.events, BackgroundEvents):
        daemon.on_shutdown.append(functools.partial(asyncio.to_thread, daemon.deps.events.stop))
    if cache is not None:
        await cache.start()
        daemon.on_shutdown.append(cache.stop)
        if not await cache.wait_synced_async(CACHE_SYNC_TIMEOUT):
            log.error("pod/NAD cache not synced after %.0f s; serving anyway", CACHE_SYNC_TIMEOUT)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await daemon.start()
    except CniError as exc:
        await daemon.shutdown()
        return fatal(conf, EXIT_LISTEN, str(exc))
    if conf.hot_plug:
        await start_hotplug(daemon, cache)
    await stop.wait()
    log.info("stopping: readyz now fails, draining requests in flight")
    await daemon.shutdown(remove_socket=exit_code[0] == EXIT_MANAGER)
    return exit_code[0]


async def start_hotplug(daemon: Daemon, cache: WatchCache | None) -> None:
    """Hot-plug from the watch cache (Kubernetes and ``MULTUS_NODE_NAME``), or from the pod
    files in standalone mode."""
    conf, backend = daemon.conf, daemon.backend
    if backend is None:
        return
    common: dict[str, Any] = {
        "metrics": daemon.metrics,
        "multus_conf": functools.partial(shim_config, conf),
        "state_path": hotplug_state_path(conf.socket_dir),
    }
    cni_dir = conf.cni_dir or DEFAULT_CNI_DIR
    status = daemon.deps.status
    if cache is not None and isinstance(status, ApiStatus):
        read = functools.partial(live_status, status.api)
        hotplug = HotPlug(backend, cache.pods, cni_dir, read_status=read, **common)
        await hotplug.start(cache.pods, nads=cache.nads)
    elif not daemon.deps.has_kubernetes:
        state_dir = conf.status_dir or DEFAULT_STATE_DIR
        deps_for = standalone_deps_for(
            daemon.deps, nad_dir=conf.nad_dir or DEFAULT_NAD_DIR, state_dir=state_dir
        )
        pods = FilePodLookup(conf.pod_dir or DEFAULT_POD_DIR)
        hotplug = HotPlug(
            backend,
            pods,
            cni_dir,
            deps_for=deps_for,
            read_status=file_status(state_dir),
            **common,
        )
        await hotplug.start(poll=POLL_SECONDS)
    else:
        log.error(
            "hotPlug is on but there is no pod watch cache (%s): hot-plug is off", NODE_NAME_ENV
        )
        return
    daemon.on_shutdown.insert(0, hotplug.stop)
    log.info("hot-plug is on")


def shim_config(conf: DaemonConf) -> bytes | None:
    """The Multus config a shim call brings (``00-multus.conf`` or ``multusConfigFile``),
    overlaid with the daemon config as ``/cni`` does; None when it cannot be read."""
    path = conf.multus_config_file
    if conf.auto:
        path = os.path.join(conf.cni_config_dir, MULTUS_CONFIG_FILE)
    try:
        with open(path, "rb") as fh:
            return overlay(fh.read(), conf.raw_map, auto=conf.auto)
    except (OSError, CniError):
        return None


def fatal(conf: DaemonConf, code: int, message: str) -> int:
    """Log why the daemon stops, and say it on stderr even when logging is off there (a
    daemon must not die silently); returns the exit code."""
    log.critical("%s", message)
    if not conf.log.to_stderr:
        print(f"multus-daemon: {message}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # Go's counters have no _created series.
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    if args.version:
        print(f"multus-daemon: version:pymultus {__version__}")
        return
    try:
        conf = load_daemon_conf(args.config)
    except CniError as exc:
        print(f"multus-daemon: {exc}", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    logs.apply(conf.log)
    sys.exit(asyncio.run(run(conf, args.kubeconfig or None)))
