"""The daemon's config manager: writes ``00-multus.conf`` and keeps it current (rows 62, 63, 35).

Auto mode (``multusConfigFile: auto``):

1. **Discover** the primary CNI config: ``multusMasterCNI`` if set, else the first regular
   file by name in ``multusAutoconfigDir`` ending in ``.conf`` or ``.conflist`` whose name
   does not start with ``00-multus``, waiting for one up to 120 s (Go: 120 tries 1 s apart).
2. ``forceCNIVersion``: rewrite the primary's ``cniVersion`` once, as Go does.
3. **Generate** with ``config.generator`` (``clusterNetwork`` = the primary's path, the union
   of capabilities, the version check) and **write** ``<cniConfigDir>/00-multus.conf``
   atomically (temporary file, fsync, rename) with mode 0600; an identical file is left
   alone so the runtime sees no change.
4. **Watch** the primary's directory (inotify through ctypes; a 1 s poll where inotify is
   unavailable) and regenerate when the primary's bytes change. A primary that turns
   invalid leaves the last good ``00-multus.conf`` in place (Go writes an empty file). A
   primary that disappears is replaced by the next one discovered, unless pinned by
   ``multusMasterCNI``.
5. ``readinessindicatorfile``: when it disappears, ``00-multus.conf`` is removed (the node
   then reports its network as not ready) and ``on_readiness_lost`` is called; Go exits with
   code 2 there, which is the daemon's decision to make.

**Stopping keeps the file** (Go deletes it on every shutdown, issue #1527, so a daemon
restart makes the node lose its network config for a while); only ``uninstall()`` removes
it. Otherwise (row 63) ``multusConfigFile`` is copied into ``cniConfigDir`` under its own name.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from pymultus.cni.atomic import write_atomic
from pymultus.cni.errors import CniError, InvalidConfigError, IOFailure
from pymultus.config.daemon import DaemonConf
from pymultus.config.generator import (
    MULTUS_CONFIG_FILE,
    OWN_FILE_PREFIX,
    forced_primary,
    generate_shim_config,
    primary_object,
)

log = logging.getLogger(__name__)

#: Mode of the generated file (Go's ``UserRWPermission``): it may name a kubeconfig.
OUTPUT_MODE = 0o600
#: Mode of a copied user config (Go's ``os.Create``: 0666 less the usual umask).
COPY_MODE = 0o644
PRIMARY_EXTENSIONS = (".conf", ".conflist")

# inotify(7): what a directory watch reports (modify, close-write, moved from/to, create,
# delete), the watched directory going away (delete-self, move-self, ignored), only-dir.
_DIR_MASK = 0x2 | 0x8 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800 | 0x1000000
_WATCH_GONE = 0x400 | 0x800 | 0x8000
_EVENT = struct.Struct("iIII")


@dataclass(frozen=True)
class ManagerTiming:
    """Waits of the config manager; each default says why."""

    #: How long to wait for a primary config to appear (Go: 120 tries, 1 s apart).
    discover_timeout: float = 120.0
    discover_interval: float = 1.0
    #: Events within this time are one change (an editor's write, rename and chmod).
    settle: float = 0.05
    #: Poll period where inotify is unavailable (fs.inotify.max_user_instances reached).
    poll_interval: float = 1.0


def find_primary(directory: str) -> str | None:
    """The primary config's file name in ``directory`` (first by name), or None."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return None
    for name in names:
        if name.startswith(OWN_FILE_PREFIX) or not name.endswith(PRIMARY_EXTENSIONS):
            continue
        if os.path.isfile(os.path.join(directory, name)):  # Go would take a directory too
            return name
    return None


def write_if_changed(path: str, data: bytes, mode: int) -> bool:
    """Replace ``path`` by ``data`` atomically and durably; False (nothing written) when it
    already held exactly that with that mode. Raises ``IOFailure``."""
    with contextlib.suppress(OSError):
        st = os.stat(path)
        if st.st_mode & 0o777 == mode and st.st_size == len(data):
            with open(path, "rb") as current:
                if current.read() == data:
                    return False
    write_atomic(path, data, mode=mode, durable=True)
    return True


async def wait_for_file(path: str, *, timeout: float = 45.0, interval: float = 1.0) -> bool:
    """Wait for the readiness indicator file before the daemon starts (row 35: Go polls
    every second for 45 s and exits with code 1 when it never came)."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)
    return True


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise IOFailure(f"cannot read {path}: {e.strerror or e}", path=path) from e


class ConfigManager:
    """Writes and maintains the daemon's CNI config file; see the module doc."""

    def __init__(
        self,
        conf: DaemonConf,
        *,
        on_readiness_lost: Callable[[], None] | None = None,
        timing: ManagerTiming | None = None,
        use_inotify: bool = True,
    ) -> None:
        self._conf = conf
        self._on_readiness_lost = on_readiness_lost
        self._timing = timing or ManagerTiming()
        self._use_inotify = use_inotify
        if conf.auto:
            if not conf.multus_autoconfig_dir:
                raise InvalidConfigError(
                    "multusAutoconfigDir must name the directory of the primary CNI config "
                    "when multusConfigFile is auto",
                    field="multusAutoconfigDir",
                )
            self.output_path = os.path.join(conf.cni_config_dir, MULTUS_CONFIG_FILE)
        else:
            self.output_path = os.path.join(
                conf.cni_config_dir, os.path.basename(conf.multus_config_file)
            )
        self.primary_path: str | None = None
        self._seen: bytes | None = None  # the primary's bytes last acted on
        self._task: asyncio.Task[None] | None = None
        #: How many times the file was (re)written since start; for tests and metrics.
        self.writes = 0
        #: How changes are noticed once started: "inotify" or "polling" (1 s).
        self.watch_mode = ""

    # --- lifecycle ------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Auto mode: find the primary (waiting for it), force its version if asked, and
        check that a config can be generated from it (Go's ``NewManager``; the daemon exits
        with code 2 when this fails). Raises ``CniError``."""
        if not self._conf.auto or self.primary_path is not None:
            return
        name = self._conf.multus_master_cni or await self._discover()
        path = os.path.normpath(os.path.join(self._conf.multus_autoconfig_dir, name))
        if path == os.path.normpath(self.output_path):
            raise InvalidConfigError(
                f"cannot use {path} as the primary CNI config: it is the file generated here",
                field="multusMasterCNI",
                path=path,
            )
        if self._conf.force_cni_version:
            self._force_version(path)
        generate_shim_config(_read(path), self._conf, primary_path=path)
        self.primary_path = path

    async def start(self) -> None:
        """Write the config file, then (auto mode) keep it current until ``stop()``."""
        if not self._conf.auto:
            self._copy_user_config()
            return
        if self._task is not None:
            return
        await self.prepare()
        assert self.primary_path is not None
        # Watch before reading: a change between the read and the watch is not missed.
        watcher = self._open_watcher()
        try:
            self._regenerate(_read(self.primary_path), strict=True)
        except BaseException:
            if watcher is not None:
                watcher.close()
            raise
        self.watch_mode = "inotify" if watcher is not None else "polling"
        self._task = asyncio.create_task(self._watch(watcher), name="config-manager")

    async def stop(self) -> None:
        """Stop watching. The file stays: a restarting daemon must not take the node's
        network config away (Go Multus issue #1527)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def uninstall(self) -> bool:
        """Remove the file this manager writes (explicit uninstall only); True if removed."""
        try:
            os.unlink(self.output_path)
        except FileNotFoundError:
            return False
        except OSError as e:
            raise IOFailure(
                f"cannot remove {self.output_path}: {e.strerror}", path=self.output_path
            ) from e
        log.info("removed %s", self.output_path)
        return True

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # --- steps ------------------------------------------------------------------------------

    async def _discover(self) -> str:
        directory = self._conf.multus_autoconfig_dir
        deadline = time.monotonic() + self._timing.discover_timeout
        while (name := find_primary(directory)) is None:
            if time.monotonic() >= deadline:
                raise IOFailure(
                    f"failed to find the cluster master CNI plugin: could not find a plugin "
                    f"configuration in {directory}",
                    path=directory,
                )
            await asyncio.sleep(self._timing.discover_interval)
        log.info("primary CNI config: %s", os.path.join(directory, name))
        return name

    def _force_version(self, path: str) -> None:
        data = _read(path)
        if primary_object(data, path).get("cniVersion") == self._conf.cni_version:
            return
        try:
            mode = os.stat(path).st_mode & 0o777  # keep the primary's own mode, as Go does
        except OSError as e:
            raise IOFailure(f"cannot stat {path}: {e.strerror}", path=path) from e
        forced = forced_primary(data, self._conf.cni_version, path)
        write_atomic(path, forced, mode=mode, durable=True)
        log.info("forceCNIVersion: set cniVersion %s in %s", self._conf.cni_version, path)

    def _regenerate(self, primary: bytes, *, strict: bool) -> None:
        """Generate from ``primary`` and write when the result differs. When not ``strict``
        (a change seen while running) a failure keeps the current file and is logged."""
        assert self.primary_path is not None
        self._seen = primary
        try:
            data = generate_shim_config(primary, self._conf, primary_path=self.primary_path)
            changed = write_if_changed(self.output_path, data, OUTPUT_MODE)
        except CniError as e:
            if strict:
                raise
            log.error("keeping the current %s: %s", self.output_path, e)
            return
        if changed:
            self.writes += 1
            log.info("wrote %s", self.output_path)

    def _copy_user_config(self) -> None:
        source = os.path.abspath(self._conf.multus_config_file)
        if os.path.normpath(source) == os.path.normpath(self.output_path):
            return
        write_if_changed(self.output_path, _read(source), COPY_MODE)
        log.info("copied %s to %s", source, self.output_path)

    def _reconcile(self) -> bool:
        """Bring the file in line with what is on disk now; False when the readiness
        indicator file is gone (the file is removed then, and watching ends)."""
        ready_file = self._conf.readiness_indicator_file
        if ready_file and not os.path.exists(ready_file):
            log.warning(
                "readiness indicator file %s is gone: removing %s", ready_file, self.output_path
            )
            try:
                self.uninstall()
            except IOFailure as e:
                log.error("%s", e)
            return False
        assert self.primary_path is not None
        if not os.path.isfile(self.primary_path) and not self._conf.multus_master_cni:
            name = find_primary(self._conf.multus_autoconfig_dir)
            if name is not None:
                self.primary_path = os.path.join(self._conf.multus_autoconfig_dir, name)
                self._seen = None
                log.info("primary CNI config is now %s", self.primary_path)
        try:
            with open(self.primary_path, "rb") as f:
                primary = f.read()
        except OSError:
            return True  # gone or unreadable for now: keep what we have
        if primary != self._seen:
            self._regenerate(primary, strict=False)
        return True

    # --- watching -------------------------------------------------------------------------

    def _open_watcher(self) -> _Inotify | None:
        """inotify on the primary's directory and the readiness file's; None: poll."""
        if not self._use_inotify:
            return None
        dirs = {self._conf.multus_autoconfig_dir}
        if self._conf.readiness_indicator_file:
            dirs.add(os.path.dirname(os.path.abspath(self._conf.readiness_indicator_file)))
        return _Inotify.open(dirs)

    async def _watch(self, watcher: _Inotify | None) -> None:
        try:
            while True:
                if watcher is None:
                    await asyncio.sleep(self._timing.poll_interval)
                elif not await watcher.wait():
                    log.warning("a watched directory went away: polling from now on")
                    watcher.close()
                    watcher, self.watch_mode = None, "polling"
                await asyncio.sleep(self._timing.settle)
                if watcher is not None:
                    watcher.drain()
                # On the loop, not in a thread: a stop() can then never land in the middle
                # of a write (an uninstall right after must not see the file come back).
                if not self._reconcile():
                    if self._on_readiness_lost is not None:
                        try:
                            self._on_readiness_lost()
                        except Exception:
                            log.exception("on_readiness_lost failed")
                    return
        finally:
            if watcher is not None:
                watcher.close()


class _Inotify:
    """Directory watches through libc's inotify, woken from the event loop's reader."""

    _libc: ctypes.CDLL | None = None

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._wake = asyncio.Event()
        self._lost = False
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(fd, self._readable)

    @classmethod
    def open(cls, dirs: set[str]) -> _Inotify | None:
        """Watches on ``dirs``, or None (the caller polls) when inotify cannot be had."""
        try:
            libc = cls._load()
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            if fd < 0:
                raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
        except (OSError, AttributeError) as e:
            log.warning("inotify unavailable (%s): polling for config changes", e)
            return None
        for directory in sorted(dirs):
            if libc.inotify_add_watch(fd, os.fsencode(directory), _DIR_MASK) < 0:
                err = ctypes.get_errno()
                os.close(fd)
                raise IOFailure(f"cannot watch {directory}: {os.strerror(err)}", path=directory)
        return cls(fd)

    @classmethod
    def _load(cls) -> ctypes.CDLL:
        if cls._libc is None:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.inotify_init1.argtypes = [ctypes.c_int]
            libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
            cls._libc = libc
        return cls._libc

    def _readable(self) -> None:
        for mask in self._masks():
            if mask & _WATCH_GONE:
                self._lost = True
        self._wake.set()

    def _masks(self) -> list[int]:
        masks: list[int] = []
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return masks
            offset = 0
            while offset + _EVENT.size <= len(data):
                _wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                masks.append(mask)
                offset += _EVENT.size + length

    async def wait(self) -> bool:
        """Until something changed; False when a watched directory itself went away."""
        if not self._lost:
            await self._wake.wait()
        return not self._lost

    def drain(self) -> None:
        """Forget the events of the change about to be handled."""
        self._readable()
        self._wake.clear()

    def close(self) -> None:
        self._loop.remove_reader(self._fd)
        os.close(self._fd)
