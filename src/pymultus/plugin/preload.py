"""The lean path's modules for one verb, loaded from one file instead of imported one by one.

A lean DEL runs about twenty modules of ``plugin.lean``; importing them through ``importlib``
(a finder and a loader per module: path lookups, a ``stat`` of the source, a read and a check
of its ``.pyc``, the module's attributes set one by one) cost more than running their code:
~2 ms of a DEL whose own work is ~1 ms, on every call. So installing the thin plugin writes,
beside the launcher, one *bundle* per verb (``bundle_path``): the code of every module the
verb's lean path imports, compiled by the plugin's interpreter, in the order their imports
finished (each after what it imports), with each source file's size and modification time.
``preload`` runs them into ``sys.modules`` before the lean path starts; its imports then find
every module there.

A bundle is an optimisation only, never a second source of truth: when it is missing, of
another interpreter, not trusted (not the caller's or root's, or writable by others), or any
of its sources changed since it was written (an upgrade, an edit), ``preload`` loads nothing
and the ordinary imports run from the sources. Reinstalling writes it anew; ``pymultus
uninstall`` removes it with the launcher's other caches (``shim.install.cache_files``).

Imports: ``sys``, ``marshal`` and ``posix`` only, like the lean path; ``build`` (install
time) imports what it needs.
"""

from __future__ import annotations

import marshal
import posix
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec, PathFinder
    from types import CodeType, ModuleType

    Entry = tuple[str, str, bool, int, int, CodeType]

#: What the lean path of each verb imports first (``plugin.lean.main`` and what it imports
#: inside functions); everything they import follows. A test pins that a lean call through
#: the installed launcher imports no module of the lean path by ``importlib``.
ROOTS = {
    "ADD": (
        "pymultus.plugin.lean.main",
        "pymultus.plugin.lean.request",
        "pymultus.plugin.lean.kube",
        "pymultus.plugin.lean.kubeconf",
        "pymultus.plugin.lean.prefetch",
        "pymultus.plugin.lean.add",
        "pymultus.plugin.lean.output",
    ),
    "DEL": (
        "pymultus.plugin.lean.main",
        "pymultus.plugin.lean.request",
        "pymultus.plugin.lean.delete",
    ),
}
FORMAT = b"pymultus preload 1\n"  # after the interpreter's bytecode magic number
PREFIX = "pymultus."  # only the package's own modules are bundled


def bundle_path(launcher: str, verb: str) -> str:
    """``.<launcher name>.<cache tag>.<verb>.bin`` beside the launcher."""
    where, slash, name = launcher.rpartition("/")
    tag = sys.implementation.cache_tag
    return f"{where}{slash}.{name}.{tag}.{verb.lower()}.bin"


def _head() -> bytes:
    magic: bytes = sys.modules["_frozen_importlib_external"].MAGIC_NUMBER
    return magic + FORMAT


# --- run time --------------------------------------------------------------------------------


def preload(launcher: str, verb: str) -> bool:
    """Run the bundle of ``verb`` beside ``launcher`` into ``sys.modules``; False when it
    loaded nothing (no usable bundle, or a source changed) or stopped at a module whose code
    raised (the ordinary import then runs it again, and raises where the caller expects)."""
    try:
        entries = _entries(bundle_path(launcher, verb))
        if entries is None or not all(_fresh(entry) for entry in entries):
            return False
        for name, path, is_package, _, _, code in entries:
            if name not in sys.modules and not _run(name, path, is_package, code):
                return False
    except (ValueError, TypeError):  # entries of another shape: the ordinary imports
        return False
    return True


def _entries(bundle: str) -> list[Entry] | None:
    head = _head()
    try:
        with open(bundle, "rb") as f:
            info = posix.fstat(f.fileno())
            data = f.read()
    except OSError:
        return None
    trusted = info.st_uid in (0, posix.geteuid()) and not info.st_mode & 0o22
    if not trusted or data[: len(head)] != head:
        return None
    try:
        entries: list[Entry] = marshal.loads(memoryview(data)[len(head) :])
    except (EOFError, ValueError, TypeError):
        return None
    return entries if isinstance(entries, list) else None


def _fresh(entry: Entry) -> bool:
    _, path, _, mtime_ns, size, _ = entry
    try:
        info = posix.stat(path)
    except OSError:
        return False
    return info.st_mtime_ns == mtime_ns and info.st_size == size


def _run(name: str, path: str, is_package: bool, code: CodeType) -> bool:
    """One module, set up as an import would leave it for the lean path's purposes (name,
    file, package, a package's search path, the attribute on its parent)."""
    module: ModuleType = type(sys)(name)
    module.__file__ = path
    parent, _, child = name.rpartition(".")
    if is_package:
        module.__path__ = [path.rpartition("/")[0]]
        module.__package__ = name
    else:
        module.__package__ = parent
    sys.modules[name] = module
    try:
        exec(code, module.__dict__)  # our own code, compiled from our own files
    except Exception:
        sys.modules.pop(name, None)
        return False
    if parent in sys.modules:
        setattr(sys.modules[parent], child, module)
    return True


# --- install time ----------------------------------------------------------------------------


def build(launcher: str, verb: str) -> str:
    """Import ``ROOTS[verb]`` as the call would (run this in a fresh interpreter: the one the
    launcher names, with its ``sys.path``) and write the bundle beside ``launcher``,
    atomically. Returns its path."""
    import importlib  # noqa: PLC0415 - install time only
    from importlib.machinery import PathFinder  # noqa: PLC0415

    order: list[str] = []
    recorder = _Recorder(order, PathFinder)
    sys.meta_path.insert(0, recorder)
    try:
        for root in ROOTS[verb]:
            importlib.import_module(root)
    finally:
        sys.meta_path.remove(recorder)
    from pymultus.cni.atomic import write_atomic  # noqa: PLC0415 - after the recording

    target = bundle_path(launcher, verb)
    write_atomic(target, _head() + marshal.dumps([_entry(name) for name in order]), mode=0o644)
    return target


def _entry(name: str) -> Entry:
    module = sys.modules[name]
    path = module.__file__ or ""
    with open(path, "rb") as f:
        info = posix.fstat(f.fileno())
        source = f.read()
    code = compile(source, path, "exec", dont_inherit=True)
    return (name, path, hasattr(module, "__path__"), info.st_mtime_ns, info.st_size, code)


class _Recorder:
    """A finder in front of the others: for the package's modules, the spec the path finder
    gives, whose loader notes the module's name once its code has run."""

    def __init__(self, order: list[str], finder: type[PathFinder]) -> None:
        self.order = order
        self.finder = finder

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        spec = self.finder.find_spec(name, path, target)
        if spec is None or spec.loader is None or not name.startswith(PREFIX):
            return spec
        run = spec.loader.exec_module
        order = self.order

        def exec_module(module: ModuleType) -> None:
            run(module)
            order.append(name)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec
