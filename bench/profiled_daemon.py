"""``multus-daemon`` with every request profiled (cProfile), for ``bench/profile_daemon.py``.

The daemon runs each request's core work in a ``ThreadPoolExecutor`` worker; cProfile sees
only the thread that enabled it, so each work item is profiled on its own thread and the
profiles are added up. cProfile's times are wall times: waiting for a delegate plugin or the
API server shows up in the cumulative time of the call that waited. With
``PYMULTUS_PROFILE_CLOCK=cpu`` they are the thread's CPU time instead, and the event loop's
thread (HTTP, watch events) is profiled too, into ``$PYMULTUS_PROFILE.loop``. The sums are
written to ``$PYMULTUS_PROFILE`` when the daemon exits (SIGTERM).
"""

from __future__ import annotations

import cProfile
import os
import pstats
import sys
import threading
import time
from concurrent.futures import thread as pool_thread
from typing import Any

_lock = threading.Lock()
_profiles: list[cProfile.Profile] = []
_original_run = pool_thread._WorkItem.run


CPU_CLOCK = os.environ.get("PYMULTUS_PROFILE_CLOCK") == "cpu"


def _new_profile() -> cProfile.Profile:
    return cProfile.Profile(time.thread_time) if CPU_CLOCK else cProfile.Profile()


def _profiled_run(self: Any) -> None:
    profile = _new_profile()
    profile.enable()
    try:
        _original_run(self)
    finally:
        profile.disable()
        with _lock:
            _profiles.append(profile)


def main() -> None:
    pool_thread._WorkItem.run = _profiled_run  # type: ignore[method-assign]
    from pymultus.daemon.main import main as daemon_main  # noqa: PLC0415 - after the patch

    loop = _new_profile() if CPU_CLOCK else None
    if loop is not None:
        loop.enable()
    try:
        daemon_main(sys.argv[1:])
    finally:
        if loop is not None:
            loop.disable()
            loop.dump_stats(os.environ["PYMULTUS_PROFILE"] + ".loop")
        with _lock:
            profiles = list(_profiles)
        if profiles:
            stats = pstats.Stats(profiles[0])
            for profile in profiles[1:]:
                stats.add(profile)
            stats.dump_stats(os.environ["PYMULTUS_PROFILE"])


if __name__ == "__main__":
    main()
