"""DEL, the lean way: ``core.delete.cmd_del`` when the delegate cache is there.

The cached delegates get their DEL in reverse, best effort; then every attachment libcni's
result cache still holds for the container (one the cache did not name, or a DEL that had
failed before) gets its DEL with what its ADD used; then the delegate cache and the hot-plug
record go (kept for the next try with ``retryDeleteOnError`` when something failed). No API
request. Without a delegate cache, or with one the lean path does not fully read, the full
path deletes (it looks at the pod).
"""

from __future__ import annotations

from pymultus.plugin.lean import chain, scratch, sweep
from pymultus.plugin.lean.errors import LeanError, Unhandled
from pymultus.plugin.lean.request import PLUGIN_TIMEOUT, search_path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pymultus.plugin.lean.model import Call
    from pymultus.plugin.lean.request import Conf


def cmd_del(call: Call, conf: Conf) -> None:
    cached = scratch.load(conf.cni_dir, call.container_id)
    if cached is None:
        raise Unhandled("no delegate cache: the full path rebuilds the delegates from the pod")
    bin_path = search_path(call, conf)
    planned = []
    for index in reversed(range(len(cached))):
        d = cached[index]
        chain.check(d)
        ifname = d.ifname_request or (call.ifname if index == 0 else f"net{index}")
        rt = chain.runtime_for(call, d, ifname, is_master=index == 0, conf=conf)
        planned.append((d, rt))
    tried = {(chain.network_name(d), rt.ifname) for d, rt in planned}
    sweep.check_leftovers(conf.cni_dir, call.container_id, tried)
    errors: list[LeanError] = []
    for d, rt in planned:
        try:
            chain.delete(d, rt, bin_path=bin_path, cache_dir=conf.cni_dir, timeout=PLUGIN_TIMEOUT)
        except LeanError as exc:
            errors.append(exc)
    errors += sweep.delete_leftovers(
        conf.cni_dir, call, tried, bin_path=bin_path, timeout=PLUGIN_TIMEOUT
    )
    if errors and conf.retry_delete:
        raise _aggregate(errors)
    scratch.remove(conf.cni_dir, call.container_id)
    scratch.record_remove(conf.cni_dir, call.container_id)
    if errors:
        raise _aggregate(errors)


def _aggregate(errors: list[LeanError]) -> LeanError:
    """``core.delete._aggregate``: the first error's code, every message."""
    if len(errors) == 1:
        return errors[0]
    first = errors[0]
    return LeanError(first.code, "errors: " + " / ".join(e.msg for e in errors), first.details)
