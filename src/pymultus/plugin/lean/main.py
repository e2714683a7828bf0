"""The lean path's boundary: one ADD or DEL, answered, or handed to the full path.

``run`` returns False when the call is not the lean path's (``Unhandled`` before any side
effect); ``plugin.main`` then runs the full path on the same stdin. Otherwise it has answered:
the result (ADD) or nothing (DEL) on stdout, or the CNI error JSON with exit status 1, the
same bytes the full path writes. The AddedInterface events go after the answer, from a child
the runtime does not wait for (``plugin.call.send_detached``'s way).
"""

from __future__ import annotations

import gc
import sys

from pymultus.plugin.lean import js
from pymultus.plugin.lean import oslite as os  # posix alone: see oslite
from pymultus.plugin.lean.errors import LeanError, Unhandled

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

    from pymultus.plugin.lean.kube import Api
    from pymultus.plugin.lean.prefetch import Prefetch

#: ``full`` skips the lean path (tests compare the two paths with it); ``lean`` refuses the
#: hand-over: a call the lean path does not take fails with ``UNHANDLED_STATUS`` and the reason
#: on stderr (tests pin which calls are lean; a user can ask "why is my call slow?").
SWITCH = "PYMULTUS_THIN_PATH"
UNHANDLED_STATUS = 70


def run(command: str, stdin: bytes) -> bool:
    """False when the call is the full path's; otherwise it is answered and the process ends
    here (``_exit``)."""
    if os.environ.get(SWITCH) == "full":
        return False
    gc.disable()  # a one-shot process: nothing lives long enough to need the cycle collector
    environ = dict(os.environ)
    api: Api | None = None
    pod_read: Prefetch | None = None
    try:
        from pymultus.plugin.lean.request import read_call  # noqa: PLC0415

        call, conf = read_call(environ, stdin)
        if command == "ADD":
            from pymultus.plugin.lean import kube, kubeconf  # noqa: PLC0415
            from pymultus.plugin.lean.prefetch import Prefetch  # noqa: PLC0415

            api = kube.Api(kubeconf.load_endpoint(conf.kubeconfig, conf.cni_dir))
            pod_read = Prefetch(api.get_pod, call.pod_namespace, call.pod_name)
            from pymultus.plugin.lean.add import cmd_add  # noqa: PLC0415 - meanwhile

            out = cmd_add(call, conf, api, pod_read)
        else:
            from pymultus.plugin.lean.delete import cmd_del  # noqa: PLC0415

            cmd_del(call, conf)
            out = b""
    except Unhandled as why:
        if pod_read is not None:
            pod_read.wait()  # the connection is not closed under the thread's feet
        if api is not None:
            api.close()
        if os.environ.get(SWITCH) == "lean":
            sys.stderr.write(f"multus: not on the lean path: {why}\n")
            sys.exit(UNHANDLED_STATUS)
        return False
    except LeanError as err:
        _answer(js.marshal_indent(err.wire(_version(stdin))), api)
        _exit(1)
    except Exception as exc:  # the one boundary: a bug must still answer in CNI's shape
        bug = LeanError(999, f"internal error: {type(exc).__name__}: {exc}")
        _answer(js.marshal_indent(bug.wire(_version(stdin))), api)
        _exit(1)
    _answer(out, api)
    _exit(0)


def _exit(status: int) -> NoReturn:
    """End the process now: everything it wrote is closed or flushed, and tearing the
    interpreter down (every module, every object) would only cost CPU."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _version(stdin: bytes) -> str:
    try:
        version = js.loads_object(stdin).get("cniVersion", "")
    except Unhandled:
        return ""
    return version if isinstance(version, str) else ""


def _answer(out: bytes, api: Api | None) -> None:
    """The answer, then the kept events from a child (``kube.send_detached``)."""
    sys.stdout.buffer.write(out)
    sys.stdout.flush()
    if api is None:
        return
    from pymultus.plugin.lean.kube import send_detached  # noqa: PLC0415

    send_detached(api)  # on the kept-alive connection: the child's copy of it
    api.close()  # this process's descriptor only: no TLS close_notify, the child's stays open
