"""``multus-daemon`` with wall-clock spans around the phases of a request, for
``bench/profile_daemon.py --spans``.

cProfile slows pure Python several times over and hides what waits; here only a few
functions are wrapped, each span costs a microsecond, and the medians show where a request's
milliseconds go beside the delegate plugins' own run time (``plugin``: the child's wall time,
from start to reap). The spans are written as JSON to ``$PYMULTUS_SPANS`` at exit.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

_spans: list[tuple[str, float]] = []
_lock = threading.Lock()


def _wrap(owner: Any, name: str, label: str) -> None:
    original: Callable[..., Any] = getattr(owner, name)

    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            ms = (time.perf_counter() - began) * 1000
            with _lock:
                _spans.append((label, ms))

    setattr(owner, name, timed)


def _instrument() -> None:
    from pymultus.cni import cache, chain, invoke  # noqa: PLC0415 - patched before main runs
    from pymultus.core import add, resolve, scratch  # noqa: PLC0415
    from pymultus.daemon import handler  # noqa: PLC0415
    from pymultus.k8s import sources  # noqa: PLC0415

    for owner, name, label in [
        (handler.CniHandler, "run", "request (worker thread)"),
        (handler.CniHandler, "parse", "parse env + config"),
        (resolve, "plan", "resolve delegates"),
        (add, "_ifnames", "check interface names"),
        (scratch, "save", "save delegate cache"),
        (add, "_attach_one", "one delegate ADD"),
        (invoke.SubprocessExecutor, "run", "plugin"),
        (invoke.SubprocessExecutor, "_start", "start plugin (Popen)"),
        (chain, "parse_result", "parse result"),
        (cache, "write", "write libcni cache"),
        (sources.ApiStatus, "write_network_status", "network-status write"),
    ]:
        _wrap(owner, name, label)


def main() -> None:
    _instrument()
    from pymultus.daemon.main import main as daemon_main  # noqa: PLC0415 - after the patch

    try:
        daemon_main(sys.argv[1:])
    finally:
        with _lock, open(os.environ["PYMULTUS_SPANS"], "w", encoding="utf-8") as fh:
            json.dump(_spans, fh)


if __name__ == "__main__":
    main()
