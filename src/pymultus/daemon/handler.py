"""``POST /cni``: one CNI call from the shim, run by the same core as the thin plugin.

Per request: decode the body (on the loop: cheap, and the container id is needed for the
lock), then, holding the container's lock, in a worker thread: parse the env with the thin
plugin's parser (CNI_PATH from the request), overlay the daemon config and parse the Multus
config (both cached by config bytes: the generated ``00-multus.conf`` is the same for every
pod, so an ADD pays for neither), and run the core. The loop thread never waits on a netns,
a file or a process.

Load rules:

- Requests for one container id never interleave (an asyncio lock per id, dropped when
  unused). Go Multus relies on the runtime for this; a DEL racing its own ADD then deletes a
  half-made attachment.
- The worker pool bounds requests running in the core; ``daemon.executor`` bounds delegate
  processes.

Wire rules (Go's ``pkg/server``): ADD answers ``{"Result": <result in 1.1.0>}`` (the newest
version; the shim converts back to its config's), every other verb an empty 200, and any error
400 with the CNI error object, the delegate's own code kept. Unlike Go, an error is always that
JSON (Go sends a plain-text message for non-CNI errors, which its shim reports as code 999).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import Executor as ThreadPool
from dataclasses import dataclass, field, replace
from typing import TypeVar

from pymultus.cni.convert import AnyResult, convert, encode_result
from pymultus.cni.env import CmdArgs, parse_plugin_env
from pymultus.cni.errors import CniError, DecodeError, InternalError, InvalidEnvironmentError
from pymultus.cni.version import CURRENT
from pymultus.config.daemon import DaemonConf, overlay
from pymultus.config.multus import DEFAULT_BIN_DIR, MultusConf, parse_multus_conf
from pymultus.core import dispatch
from pymultus.core.deps import Deps
from pymultus.core.request import Request
from pymultus.core.standalone import run_standalone
from pymultus.daemon import logs
from pymultus.daemon.server import TEXT, HttpRequest, HttpResponse
from pymultus.k8s.files import DEFAULT_NAD_DIR, DEFAULT_POD_DIR, DEFAULT_STATE_DIR
from pymultus.protocol import wire

log = logging.getLogger(__name__)

#: Distinct request configs whose overlay and parse are kept. ADD/DEL/STATUS/GC send the
#: node's one generated config; CHECK carries a per-pod prevResult, so a few more.
PREPARED_CACHE_SIZE = 64
#: Verbs whose request must name the pod (Go's daemon refuses them without K8S_POD_*).
POD_VERBS = frozenset({"ADD", "DEL", "CHECK"})


@dataclass
class _Slot:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # holders and waiters


class ContainerLocks:
    """One asyncio lock per container id, alive only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._slots: dict[str, _Slot] = {}

    @contextlib.asynccontextmanager
    async def hold(self, container_id: str) -> AsyncIterator[None]:
        """Serialise the body with every other holder of ``container_id`` ("" = no lock)."""
        if not container_id:
            yield
            return
        slot = self._slots.setdefault(container_id, _Slot())
        slot.users += 1
        try:
            async with slot.lock:
                yield
        finally:
            slot.users -= 1
            if slot.users == 0:
                del self._slots[container_id]


#: A decoded ``/cni`` or ``/delegate`` body.
Body = TypeVar("Body", wire.CniRequest, wire.DelegateRequest)


@dataclass
class Backend:
    """What ``/cni`` and ``/delegate`` share: the core's dependencies, the worker pool, the
    per-container locks, and the CNI_PATH used when a request carries none."""

    deps: Deps
    pool: ThreadPool
    locks: ContainerLocks = field(default_factory=ContainerLocks)
    #: Go's daemon ignores the request's CNI_PATH and uses its own environment; we take the
    #: request's and fall back to ours (a /delegate request never carries one).
    default_cni_path: str = field(default_factory=lambda: os.environ.get("CNI_PATH", ""))
    #: Called (from the worker thread) with the pod's (namespace, name) after a successful
    #: ``/cni`` ADD: hot-plug passes over the pod at once, in case its selection changed
    #: while the ADD ran.
    on_attached: Callable[[tuple[str, str]], None] | None = None

    async def call(
        self, verb: str, env: Mapping[str, str], work: Callable[[], HttpResponse]
    ) -> HttpResponse:
        """Run ``work`` in the pool under the container's lock, with log fields set."""
        container_id = env.get("CNI_CONTAINERID", "")
        with logs.fields(command=verb, containerID=container_id, pod=_pod_of(env)):
            async with self.locks.hold(container_id):
                ctx = contextvars.copy_context()
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(self.pool, ctx.run, _boundary, verb, work)

    async def serve(
        self,
        request: HttpRequest,
        path: str,
        decode: Callable[[bytes], Body],
        run: Callable[[Body], HttpResponse],
    ) -> HttpResponse:
        """Decode a ``/cni`` or ``/delegate`` body (400 naming the field when it is wrong),
        then ``run`` it through ``call``."""
        try:
            body = decode(request.body)
        except wire.WireError as exc:
            log.error("bad %s request: %s", path, exc.msg)
            return decode_error(exc)
        verb = body.env.get("CNI_COMMAND", "")
        return await self.call(verb, body.env, functools.partial(run, body))

    def complete_env(self, env: Mapping[str, str]) -> dict[str, str]:
        """The request's env with CNI_PATH filled in when it has none."""
        full = dict(env)
        if not full.get("CNI_PATH"):
            full["CNI_PATH"] = self.default_cni_path or DEFAULT_BIN_DIR
        return full


def _boundary(verb: str, work: Callable[[], HttpResponse]) -> HttpResponse:
    """The request's one error boundary: any ``CniError`` becomes a 400 with its JSON; a bug
    becomes code 999 in the same shape (and a traceback in the log)."""
    started = time.monotonic()
    try:
        response = work()
    except CniError as exc:
        log.error("%s failed: %s", verb or "request", exc)
        return HttpResponse.cni_error(exc)
    except Exception as exc:
        log.exception("%s failed with an internal error", verb or "request")
        return HttpResponse.cni_error(InternalError(f"internal error: {type(exc).__name__}: {exc}"))
    log.info("%s succeeded in %.3f s", verb, time.monotonic() - started)
    return response


def _pod_of(env: Mapping[str, str]) -> str:
    """``namespace/name`` from CNI_ARGS for log lines (never raises)."""
    found: dict[str, str] = {}
    for pair in env.get("CNI_ARGS", "").split(";"):
        key, _, value = pair.partition("=")
        found[key.strip()] = value.strip()
    ns, name = found.get("K8S_POD_NAMESPACE", ""), found.get("K8S_POD_NAME", "")
    return f"{ns}/{name}" if name else ""


def require_pod(req: Request) -> None:
    """ADD, DEL and CHECK must name the pod in CNI_ARGS (Go's daemon: 400 without it)."""
    if req.cmd.command in POD_VERBS and req.k8s.pod_ref is None:
        raise InvalidEnvironmentError(
            "CNI_ARGS must carry K8S_POD_NAMESPACE and K8S_POD_NAME for "
            f"{req.cmd.command} (the daemon needs the pod)",
            field="CNI_ARGS",
        )


def add_response(result: AnyResult, content_type: str = "") -> HttpResponse:
    """``{"Result": ...}`` in the newest spec version, as Go's daemon answers ADD."""
    body = wire.encode_add_response(encode_result(convert(result, CURRENT)))
    if content_type:
        return HttpResponse(200, body, headers=(("Content-Type", content_type),))
    return HttpResponse(200, body, sniffed_type=TEXT)


def decode_error(exc: wire.WireError) -> HttpResponse:
    return HttpResponse.cni_error(DecodeError(exc.msg, field=exc.field))


class CniHandler:
    """``POST /cni``."""

    def __init__(self, daemon: DaemonConf, backend: Backend) -> None:
        self.daemon = daemon
        self.backend = backend
        self._prepared = functools.lru_cache(maxsize=PREPARED_CACHE_SIZE)(self._prepare)

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        return await self.backend.serve(request, "/cni", wire.decode_cni_request, self.run)

    def run(self, body: wire.CniRequest) -> HttpResponse:
        """The whole call, in a worker thread."""
        req = Request.build(*self.parse(body.env, body.config))
        require_pod(req)
        result = self.dispatch(req)
        hook, ref = self.backend.on_attached, req.k8s.pod_ref
        if hook is not None and ref is not None and req.cmd.command == "ADD":
            hook((ref.namespace, ref.name))
        return add_response(result) if result is not None else HttpResponse(200)

    def dispatch(self, req: Request) -> AnyResult | None:
        """The core, with standalone sources (files, the runtime's pod annotations) when the
        daemon has no Kubernetes."""
        deps = self.backend.deps
        if deps.has_kubernetes:
            return dispatch.run(req, deps)
        return run_standalone(
            req,
            nad_dir=self.daemon.nad_dir or DEFAULT_NAD_DIR,
            pod_dir=self.daemon.pod_dir or DEFAULT_POD_DIR,
            state_dir=self.daemon.status_dir or DEFAULT_STATE_DIR,
            base=deps,
        )

    def parse(self, env: Mapping[str, str], config: bytes) -> tuple[CmdArgs, MultusConf]:
        """The env checked as skel does, then the overlaid config (cached by its bytes)."""
        cmd = parse_plugin_env(self.backend.complete_env(env), config)
        if cmd.command == "VERSION":
            raise InvalidEnvironmentError(
                "VERSION is answered by the shim, not the daemon", field="CNI_COMMAND"
            )
        overlaid, conf = self._prepared(bytes(config))
        return replace(cmd, stdin=overlaid), conf

    def _prepare(self, config: bytes) -> tuple[bytes, MultusConf]:
        overlaid = overlay(config, self.daemon.raw_map, auto=self.daemon.auto)
        return overlaid, parse_multus_conf(overlaid)
