"""DEL's leftover sweep (``core.delete._del_leftovers``): every attachment libcni's result
cache still holds for the container, but those the delegate cache named, gets its DEL with
what its ADD used. DEL only: an ADD never imports this module.

``check_leftovers`` runs before anything is deleted (``Unhandled`` for a leftover the lean
path would not run as the full path does); ``delete_leftovers`` after the delegates' DELs.
"""

from __future__ import annotations

from pymultus.plugin.lean import js
from pymultus.plugin.lean import oslite as os  # posix alone: see oslite
from pymultus.plugin.lean.chain import Runtime, check_runtime, del_net, net_of
from pymultus.plugin.lean.cnicache import Entry, decode_entry, names_ok
from pymultus.plugin.lean.errors import LeanError, Unhandled
from pymultus.plugin.lean.results import parse_object

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from pymultus.plugin.lean.chain import Net
    from pymultus.plugin.lean.model import Call


def leftovers(cache_dir: str, container_id: str, *, lean_only: bool = True) -> list[Entry]:
    """``cache.list_attachments(cache_dir, container_id=...)``: every readable entry of the
    container, in file-name order. ``lean_only``: ``Unhandled`` for a file the lean path
    cannot judge (before anything is deleted); otherwise the full path reads it."""
    directory = os.path.join(cache_dir, "results")
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    except OSError as exc:
        if lean_only:
            raise Unhandled("the results directory cannot be listed") from None
        raise LeanError(5, f"cannot list {directory}: {exc.strerror}") from None
    found = []
    for name in names:
        if name.startswith(".tmp-") or f"-{container_id}-" not in name:
            continue
        entry = _read_entry(os.path.join(directory, name), lean_only=lean_only)
        if entry is None or not entry.ifname or not entry.network_name:
            continue
        if entry.container_id == container_id:
            found.append(entry)
    return found


def _read_entry(path: str, *, lean_only: bool) -> Entry | None:
    """``cache._try_read``: None for a file that cannot be read or decoded."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    entry = decode_entry(data, path)
    if entry is not None:
        return entry
    if lean_only:
        raise Unhandled(f"a cache file the lean path does not read: {path}")
    return _full_read(data, path)


def leftover_net(entry: Entry) -> Net:
    """``netconf.load_any(entry.config)``: a list, or a single config run as a list;
    ``Unhandled`` for one the lean path does not run."""
    obj = js.loads_object(entry.config)
    return net_of(entry.config, obj, is_list="plugins" in obj, wrapped=True)


def check_leftover(entry: Entry) -> None:
    """``Unhandled`` unless ``delete_leftover`` runs the entry as the full path would (a
    device-info file to remove is the full path's)."""
    net = leftover_net(entry)
    path = entry.capability_args.get("CNIDeviceInfoFile", "")
    if isinstance(path, str) and path:
        raise Unhandled("a leftover with a device-info file")
    if not names_ok(net.name, entry.container_id, entry.ifname):
        raise Unhandled("a leftover whose names make no cache path")
    check_runtime(
        Runtime(entry.container_id, "", entry.ifname, entry.cni_args, entry.capability_args)
    )
    if entry.result is not None and net.version not in ("0.3.0", "0.3.1"):
        try:
            parse_object(entry.result, None)
        except LeanError:
            raise Unhandled("a cached result the full path refuses") from None


def check_leftovers(
    cache_dir: str, container_id: str, skip: Iterable[tuple[str, str]] = ()
) -> list[Entry]:
    """Every leftover of the container checked up front (``check_leftover``), but those
    whose (network, ifname) is in ``skip`` (the delegates' own: ``tried``)."""
    skipped = set(skip)
    found = leftovers(cache_dir, container_id)
    for entry in found:
        if (entry.network_name, entry.ifname) not in skipped:
            check_leftover(entry)
    return found


def delete_leftover(
    entry: Entry, netns: str, *, bin_path: Sequence[str], cache_dir: str, timeout: float
) -> None:
    """DEL of one leftover with what its ADD used (``core.delete._del_leftovers``): its
    config as a list, CNI_ARGS and capability args; the call's own netns."""
    rt = Runtime(entry.container_id, netns, entry.ifname, entry.cni_args, entry.capability_args)
    del_net(leftover_net(entry), rt, bin_path, cache_dir, timeout)


def delete_leftovers(
    cache_dir: str,
    call: Call,
    tried: set[tuple[str, str]],
    *,
    bin_path: Sequence[str],
    timeout: float,
) -> list[LeanError]:
    """``core.delete._del_leftovers``: the container's entries still cached after the
    delegates' DELs, but those already tried; their errors, in order. Listed again here
    (a DEL that succeeded removed its entry), after ``check_leftovers`` checked them."""
    errors: list[LeanError] = []
    for entry in leftovers(cache_dir, call.container_id, lean_only=False):
        if (entry.network_name, entry.ifname) in tried:
            continue
        try:
            delete_leftover(
                entry, call.netns, bin_path=bin_path, cache_dir=cache_dir, timeout=timeout
            )
        except LeanError as exc:
            errors.append(exc)
        except Unhandled:  # changed since check_leftovers: the full path's reading decides
            errors.append(_full_load_error(entry))
    return errors


# ================================================================ the full path's answers


def _full_read(data: bytes, path: str) -> Entry | None:
    """``cache._try_read`` by the full path, for a file the lean reading is not sure of."""
    from pymultus.cni import cache  # noqa: PLC0415 - an odd file only
    from pymultus.cni.errors import DecodeError  # noqa: PLC0415

    try:
        full = cache.decode(data, path=path)
    except DecodeError:
        return None
    obj = {
        "containerId": full.container_id,
        "ifName": full.ifname,
        "networkName": full.network_name,
        "netns": full.netns,
        "cniArgs": [list(p) for p in full.cni_args],
        "capabilityArgs": dict(full.capability_args),
        "result": js.loads(full.result) if full.result else None,
    }
    return Entry(obj, full.config, path)


def _full_load_error(entry: Entry) -> LeanError:
    """The error ``netconf.load_any`` gives for a leftover's config (which the lean path
    does not run); an internal error if the full path would have run it."""
    from pymultus.cni import netconf  # noqa: PLC0415 - the slow path
    from pymultus.cni.errors import CniError  # noqa: PLC0415

    try:
        netconf.load_any(entry.config)
    except CniError as exc:
        return LeanError(exc.error_code, exc.msg, exc.details)
    return LeanError(999, f"internal error: a leftover the lean path cannot run: {entry.path}")
