"""One call run in a thread of its own while the process goes on: the pod's GET (TCP, TLS
handshake, request) overlaps the lean ADD's imports and file reads.

``_thread`` is the interpreter's C module (``threading`` costs imports). OpenSSL's handshake
and the socket waits release the GIL, so the two really overlap. The thread is started before
the main thread enters any network namespace, so it stays in the plugin's own.
"""

from __future__ import annotations

import _thread

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class Prefetch:
    """``fn(*args)`` started now; ``result()`` waits for it and returns or raises its outcome."""

    __slots__ = ("_done", "_error", "_value")

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self._value: Any = None
        self._error: BaseException | None = None
        self._done = _thread.allocate_lock()
        self._done.acquire()
        _thread.start_new_thread(self._run, (fn, args))

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            self._value = fn(*args)
        except BaseException as exc:  # handed to the thread that waits for the result
            self._error = exc
        finally:
            self._done.release()

    def wait(self) -> None:
        """Until the call has ended (its outcome stays for ``result``)."""
        self._done.acquire()
        self._done.release()

    def result(self) -> Any:
        self.wait()
        if self._error is not None:
            raise self._error
        return self._value
