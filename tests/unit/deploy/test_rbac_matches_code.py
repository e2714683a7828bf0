"""The ClusterRole in ``deploy/rbac.yaml`` grants exactly the API calls pymultus's code makes.

The code's calls are found by reading ``src/pymultus`` (no import of the daemon needed): every
lightkube client call (``get``, ``list``, ``watch``, ``create``, ``replace``, ``patch``, ...)
whose resource argument is a lightkube resource class, or an instance of one, becomes an
(apiGroup, resource, verb) triple. A resource passed through a function parameter or kept in
``self.<attr>`` is followed to where the class is named, so helpers such as
``KubeApi._get(RawPod, ...)`` count. The group and the (sub)resource come from the class's own
``_api_info``, never from a table here.

A call on something named ``*client`` whose resource cannot be traced fails the test: write
the class where the call is, or pass it down as an argument, so the role can be checked.
"""

from __future__ import annotations

import ast
import importlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
SRC = REPO / "src"
RBAC = REPO / "deploy" / "rbac.yaml"

#: lightkube ``Client``/``AsyncClient`` methods and the RBAC verb each one needs.
VERBS: dict[str, tuple[str, ...]] = {
    "get": ("get",),
    "list": ("list",),
    "watch": ("watch",),
    "wait": ("watch",),
    "create": ("create",),
    "replace": ("update",),
    "patch": ("patch",),
    "apply": ("patch",),
    "set": ("patch",),
    "delete": ("delete",),
    "deletecollection": ("deletecollection",),
}
#: The keyword under which each method takes its resource (the first positional otherwise).
RES_KEYWORDS = ("res", "obj")

Triple = tuple[str, str, str]  # (apiGroup, resource, verb)


@dataclass(frozen=True)
class Res:
    """A lightkube resource, as RBAC names it."""

    group: str
    resource: str


@dataclass(frozen=True)
class Param:
    """The value of parameter ``index`` of function ``func``: known once callers are seen."""

    func: str
    index: int


@dataclass
class Func:
    key: str
    module: str
    cls: str | None
    node: ast.FunctionDef | ast.AsyncFunctionDef

    @property
    def params(self) -> list[str]:
        a = self.node.args
        return [p.arg for p in [*a.posonlyargs, *a.args]]

    @property
    def is_method(self) -> bool:
        return self.cls is not None and bool(self.params) and self.params[0] in ("self", "cls")


@dataclass
class Scan:
    """What the code calls: triples with where they come from, and calls that can't be traced."""

    uses: dict[Triple, set[str]] = field(default_factory=lambda: defaultdict(set))
    untraced: list[str] = field(default_factory=list)

    @property
    def triples(self) -> set[Triple]:
        return set(self.uses)


def resource_of(obj: Any) -> Res | None:
    """The RBAC group and (sub)resource of a lightkube resource class, else None."""
    info = getattr(obj, "_api_info", None)
    if not isinstance(obj, type) or info is None or not hasattr(info, "plural"):
        return None
    resource = f"{info.plural}/{info.action}" if getattr(info, "action", None) else info.plural
    return Res(info.resource.group, resource)


class Module:
    """One source file: its imports, top-level names, classes and functions."""

    def __init__(self, name: str, tree: ast.Module) -> None:
        self.name = name
        self.imports: dict[str, str] = {}
        self.classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
        self.toplevel: set[str] = set()
        self.funcs: dict[str, Func] = {}
        for node in tree.body:
            self._note_toplevel(node)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                        self._add(Func(f"{name}.{node.name}.{item.name}", name, node.name, item))
            elif node in tree.body and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                self._add(Func(f"{name}.{node.name}", name, None, node))

    def _note_toplevel(self, node: ast.stmt) -> None:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                self.imports[alias.asname or alias.name] = f"{node.module}:{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                self.imports[alias.asname or alias.name.split(".")[0]] = alias.name
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            self.toplevel.add(node.name)
        else:
            self.toplevel |= {t.id for t in assigned_targets(node) if isinstance(t, ast.Name)}

    def defines(self, name: str) -> bool:
        """Whether ``name`` is imported or defined at the top of this module."""
        return name in self.imports or name in self.classes or name in self.toplevel

    def _add(self, func: Func) -> None:
        self.funcs[func.key] = func

    def lookup(self, dotted: str) -> Any:
        """The object a name or ``alias.attr`` chain stands for, importing as needed."""
        head, _, rest = dotted.partition(".")
        if head in self.imports:
            target = self.imports[head]
            mod, _, attr = target.partition(":")
            obj: Any = importlib.import_module(mod)
            parts = [attr] if attr else []
        else:
            try:
                obj = importlib.import_module(self.name)
            except ImportError:
                return None
            parts = [head]
        for part in [*parts, *filter(None, rest.split("."))]:
            obj = getattr(obj, part, None)
            if obj is None:
                return None
        return obj


def assigned_targets(node: ast.AST) -> list[ast.expr]:
    """What an assignment statement assigns to (nothing for other nodes)."""
    if isinstance(node, ast.Assign):
        return node.targets
    if isinstance(node, ast.AnnAssign) and node.value is not None:
        return [node.target]
    return []


def dotted_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and (base := dotted_name(node.value)):
        return f"{base}.{node.attr}"
    return None


class Analyzer:
    """Resource values of expressions, and the flow of resources through parameters."""

    def __init__(self, modules: list[Module]) -> None:
        self.modules = {m.name: m for m in modules}
        self.funcs = {k: f for m in modules for k, f in m.funcs.items()}
        self.param_values: dict[Param, set[Res]] = defaultdict(set)
        self.verb_calls: list[tuple[Func, ast.Call, str]] = []
        self.edges: list[tuple[Func, ast.Call, list[Func]]] = []

    # --- values ---------------------------------------------------------------------------

    def values(self, expr: ast.expr, func: Func, depth: int = 0) -> set[Res | Param] | None:
        """What ``expr`` may be: resources and parameters; ``None`` when it can't be told,
        an empty set when it is surely no resource (a constant, a string, ...)."""
        if depth > 8:
            return None
        module = self.modules[func.module]
        if isinstance(expr, ast.Constant | ast.JoinedStr | ast.Dict | ast.BinOp):
            return set()
        if isinstance(expr, ast.Call):
            return self._call_values(expr, func, depth)
        if isinstance(expr, ast.Tuple | ast.List | ast.Set):
            return self._union(self.values(e, func, depth + 1) for e in expr.elts)
        if isinstance(expr, ast.Name):
            if expr.id in func.params:
                return {Param(func.key, func.params.index(expr.id))}
            local = self._local_values(expr.id, func, depth)
            if local is None and module.defines(expr.id):
                return self._object_values(module.lookup(expr.id))
            return local
        if isinstance(expr, ast.Attribute):
            base = expr.value
            if isinstance(base, ast.Name) and base.id == "self" and func.cls:
                return self._self_attr_values(expr.attr, func, depth)
            name = dotted_name(expr)
            if name and name.split(".")[0] in module.imports:
                return self._object_values(module.lookup(name))
            # An attribute of some object: whatever resources went into that object.
            return self.values(base, func, depth + 1)
        return None

    def _call_values(self, call: ast.Call, func: Func, depth: int) -> set[Res | Param] | None:
        """A resource class called makes an instance of it; another class called makes an
        object holding whatever its arguments hold (fields are not told apart)."""
        name = dotted_name(call.func)
        module = self.modules[func.module]
        if not name or not module.defines(name.split(".")[0]):
            return None  # a method, a callable held in a variable: what it returns is unknown
        cls = module.lookup(name)
        if res := resource_of(cls):
            return {res}
        if isinstance(cls, type):
            args = [*call.args, *(k.value for k in call.keywords)]
            return self._union(self.values(a, func, depth + 1) for a in args)
        return None

    def named_resource(self, expr: ast.expr | None, func: Func) -> set[Res | Param]:
        """The resource written at a call site (``Pod`` or ``RawEvent(...)``), if any."""
        if isinstance(expr, ast.Call):
            expr = expr.func
        name = dotted_name(expr) if expr is not None else None
        module = self.modules[func.module]
        if not name or not module.defines(name.split(".")[0]) or name in func.params:
            return set()
        res = resource_of(module.lookup(name))
        return {res} if res else set()

    def _object_values(self, obj: Any) -> set[Res | Param] | None:
        res = resource_of(obj)
        return {res} if res else set()

    @staticmethod
    def _union(parts: Iterator[set[Res | Param] | None]) -> set[Res | Param] | None:
        out: set[Res | Param] = set()
        for part in parts:
            if part is None:
                return None
            out |= part
        return out

    def _local_values(self, name: str, func: Func, depth: int) -> set[Res | Param] | None:
        """A local variable: whatever was assigned to it, or looped over into it."""
        sources: list[ast.expr] = []
        for node in ast.walk(func.node):
            if isinstance(node, ast.Assign | ast.AnnAssign) and node.value:
                if any(dotted_name(t) == name for t in assigned_targets(node)):
                    sources.append(node.value)
            elif isinstance(node, ast.For | ast.AsyncFor | ast.comprehension):
                sources += [node.iter] if dotted_name(node.target) == name else []
        if not sources:
            return None
        return self._union(self.values(s, func, depth + 1) for s in sources)

    def _self_attr_values(self, attr: str, func: Func, depth: int) -> set[Res | Param] | None:
        """``self.attr``: whatever any method of the class assigned to it."""
        sources: list[tuple[ast.expr, Func]] = []
        for other in self.funcs.values():
            if other.module != func.module or other.cls != func.cls:
                continue
            for node in ast.walk(other.node):
                targets = assigned_targets(node)
                if any(dotted_name(t) == f"self.{attr}" for t in targets):
                    sources.append((node.value, other))  # type: ignore[attr-defined]
        if not sources:
            return None
        return self._union(self.values(v, f, depth + 1) for v, f in sources)

    # --- calls ----------------------------------------------------------------------------

    def collect(self) -> None:
        for func in self.funcs.values():
            for node in ast.walk(func.node):
                if isinstance(node, ast.Call):
                    self._collect_call(func, node)

    def _collect_call(self, func: Func, call: ast.Call) -> None:
        target = call.func
        if isinstance(target, ast.Attribute) and target.attr in VERBS:
            self.verb_calls.append((func, call, target.attr))
        callees = self._callees(func, target)
        if callees:
            self.edges.append((func, call, callees))

    def _callees(self, func: Func, target: ast.expr) -> list[Func]:
        module = self.modules[func.module]
        if isinstance(target, ast.Name):
            if target.id in module.classes:
                key = f"{module.name}.{target.id}.__init__"
                return [self.funcs[key]] if key in self.funcs else []
            key = f"{module.name}.{target.id}"
            if key in self.funcs:
                return [self.funcs[key]]
            src = module.imports.get(target.id, "")
            mod, _, attr = src.partition(":")
            keys = (f"{mod}.{attr}", f"{mod}.{attr}.__init__")
            return [self.funcs[k] for k in keys if k in self.funcs]
        if isinstance(target, ast.Attribute):
            base = target.value
            if isinstance(base, ast.Name) and base.id == "self" and func.cls:
                key = f"{func.module}.{func.cls}.{target.attr}"
                return [self.funcs[key]] if key in self.funcs else []
            if target.attr in VERBS:  # a client's get/list/...: not one of ours
                return []
            return [f for f in self.funcs.values() if f.is_method and f.node.name == target.attr]
        return []

    @staticmethod
    def _argument(call: ast.Call, callee: Func, index: int, shift: int) -> ast.expr | None:
        pos = index - shift
        if 0 <= pos < len(call.args) and not isinstance(call.args[pos], ast.Starred):
            return call.args[pos]
        name = callee.params[index]
        return next((k.value for k in call.keywords if k.arg == name), None)

    def propagate(self) -> None:
        """Push resources from call sites into parameters until nothing changes."""
        changed = True
        while changed:
            changed = False
            for func, call, callees in self.edges:
                for callee in callees:
                    shift = 1 if callee.is_method else 0
                    for index in range(shift, len(callee.params)):
                        arg = self._argument(call, callee, index, shift)
                        if arg is None:
                            continue
                        found = self.resolve(self.values(arg, func) or set())
                        slot = self.param_values[Param(callee.key, index)]
                        if not found <= slot:
                            slot |= found
                            changed = True

    def resolve(self, vals: set[Res | Param]) -> set[Res]:
        out: set[Res] = set()
        for v in vals:
            out |= {v} if isinstance(v, Res) else self.param_values.get(v, set())
        return out

    def scan(self) -> Scan:
        self.collect()
        self.propagate()
        result = Scan()
        for func, call, method in self.verb_calls:
            expr = call.args[0] if call.args else None
            expr = expr or next((k.value for k in call.keywords if k.arg in RES_KEYWORDS), None)
            where = f"{func.module}:{call.lineno}"
            if is_client_call(call):
                vals = self.values(expr, func) if expr is not None else set()
            else:  # dict.get(key), store.delete(key): counted only when a resource is named
                vals = self.named_resource(expr, func)
            if vals is None:
                result.untraced.append(f"{where}: {ast.unparse(call)}")
                continue
            for res in self.resolve(vals):
                for verb in VERBS[method]:
                    result.uses[(res.group, res.resource, verb)].add(where)
        return result


def is_client_call(call: ast.Call) -> bool:
    """A call on something named ``client`` (``client``, ``self._client``, ``conn.client``)."""
    receiver = dotted_name(call.func.value) if isinstance(call.func, ast.Attribute) else None
    return bool(receiver) and receiver.split(".")[-1].lower().endswith("client")  # type: ignore[union-attr]


def scan_sources(sources: dict[str, str]) -> Scan:
    modules = [Module(name, ast.parse(text)) for name, text in sources.items()]
    return Analyzer(modules).scan()


#: Modules whose calls run with someone else's credentials than the daemon's role:
#: ``pymultus webhook-certs`` is run by whoever installs the webhook (see
#: tests/unit/webhook/test_certs.py for its calls).
OTHER_CREDENTIALS = frozenset({"pymultus.webhook.certs"})


def package_sources(exclude: frozenset[str] = OTHER_CREDENTIALS) -> dict[str, str]:
    out = {}
    for path in sorted((SRC / "pymultus").rglob("*.py")):
        rel = path.relative_to(SRC).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        if name not in exclude:
            out[name] = path.read_text()
    return out


def role_triples(path: Path = RBAC) -> set[Triple]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    roles = [d for d in docs if d["kind"] == "ClusterRole"]
    assert len(roles) == 1, "rbac.yaml holds exactly one ClusterRole"
    out: set[Triple] = set()
    for rule in roles[0]["rules"]:
        assert "nonResourceURLs" not in rule and "resourceNames" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert "*" not in (group, resource, verb), f"wildcard in {rule}"
                    out.add((group, resource, verb))
    return out


#: Modules whose calls other roles grant: the per-node identity's CSRs (deploy/rbac-pernode.yaml)
#: and the cert-approver (deploy/cert-approver-pernode.yaml); test_rbac_pernode.py checks them.
OTHER_ROLES = frozenset({"pymultus.k8s.csr", "pymultus.daemon.certapprover"})


def restrict(scan: Scan, modules: frozenset[str], *, inside: bool) -> Scan:
    """The calls made in ``modules`` (``inside``) or everywhere else."""
    out = Scan(untraced=list(scan.untraced))
    for triple, where in scan.uses.items():
        kept = {w for w in where if (w.split(":")[0] in modules) == inside}
        if kept:
            out.uses[triple] = kept
    return out


@pytest.fixture(scope="module")
def code_scan() -> Scan:
    return restrict(scan_sources(package_sources()), OTHER_ROLES, inside=False)


# --- the check itself ----------------------------------------------------------------------


def test_every_client_call_is_traced(code_scan: Scan) -> None:
    assert not code_scan.untraced, (
        "API calls whose resource the RBAC check cannot trace (name the lightkube resource "
        "class at the call, or pass it in as an argument):\n  " + "\n  ".join(code_scan.untraced)
    )


def disagreements(granted: set[Triple], scan: Scan) -> list[str]:
    lines = [f"  granted, never called: {t}" for t in sorted(granted - scan.triples)]
    for t in sorted(scan.triples - granted):
        lines.append(f"  called, not granted:   {t} at {sorted(scan.uses[t])}")
    return lines


def test_cluster_role_grants_exactly_what_the_code_calls(code_scan: Scan) -> None:
    lines = disagreements(role_triples(), code_scan)
    assert not lines, "deploy/rbac.yaml and the code disagree:\n" + "\n".join(lines)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("drop", "called, not granted:   ('', 'events', 'create')"),
        ("add", "granted, never called: ('', 'pods', 'delete')"),
    ],
)
def test_a_role_off_by_one_verb_is_caught(code_scan: Scan, change: str, expected: str) -> None:
    granted = set(code_scan.triples)
    if change == "drop":
        granted.discard(("", "events", "create"))
    else:
        granted.add(("", "pods", "delete"))
    (line,) = disagreements(granted, code_scan)
    assert line.strip().startswith(expected)


#: Calls the scan must find, or it is blind: the thin plugin's GETs and status write
#: (``k8s/client.py``, through its ``_get`` helpers) and the daemon's list+watch caches.
KNOWN_CALLS = [
    ("", "pods", "get"),
    ("", "pods/status", "patch"),
    ("", "pods/status", "update"),
    ("", "events", "create"),
    ("k8s.cni.cncf.io", "network-attachment-definitions", "get"),
    ("", "pods", "list"),
    ("", "pods", "watch"),
    ("k8s.cni.cncf.io", "network-attachment-definitions", "list"),
    ("k8s.cni.cncf.io", "network-attachment-definitions", "watch"),
]


@pytest.mark.parametrize("triple", KNOWN_CALLS, ids="-".join)
def test_the_scan_sees_the_known_calls(code_scan: Scan, triple: Triple) -> None:
    assert triple in code_scan.triples


def test_declared_access_matches_the_code(code_scan: Scan) -> None:
    """The code's declared ``REQUIRED_API_ACCESS`` is what the code calls."""
    resources = importlib.import_module("pymultus.k8s.resources")
    declared = resources.REQUIRED_API_ACCESS
    assert {tuple(t) for t in declared} == code_scan.triples


# --- the scanner, on code written for it ---------------------------------------------------

SAMPLE = """
from lightkube.resources.core_v1 import ConfigMap, Pod
from pymultus.k8s.resources import NetworkAttachmentDefinition, RawEvent, RawPodStatus

class Cache:
    def __init__(self, client, res, fields):
        self._client = client
        self._res = res

    def run(self):
        self._client.list(self._res, namespace="*")
        for event in self._client.watch(res=self._res):
            pass

def build(client):
    return Cache(client, NetworkAttachmentDefinition, None)

class Api:
    def _get(self, res, name):
        return self._client.get(res, name)

    def pod(self, name):
        return self._get(Pod, name)

    def status(self, obj):
        self._client.replace(RawPodStatus(**obj))
        self._client.create(RawEvent(**obj))

def unrelated(conf, mapping, store, kube):
    conf.get("key")
    mapping.get(ConfigMap.__name__)
    holder = Cache(None, ConfigMap, None)
    store.delete(holder.name)
    kube.delete(RawEvent, "x")
"""


def test_scanner_follows_parameters_attributes_and_instances() -> None:
    found = scan_sources({"sample_mod": SAMPLE})
    assert found.triples == {
        ("k8s.cni.cncf.io", "network-attachment-definitions", "list"),
        ("k8s.cni.cncf.io", "network-attachment-definitions", "watch"),
        ("", "pods", "get"),
        ("", "pods/status", "update"),
        ("", "events", "create"),
        ("", "events", "delete"),
        ("", "configmaps", "list"),
        ("", "configmaps", "watch"),
    }
    assert found.untraced == []


def test_scanner_reports_a_client_call_it_cannot_trace() -> None:
    sample = "def f(client, kinds):\n    client.delete(kinds[0], 'x')\n"
    found = scan_sources({"sample_mod": sample})
    assert found.triples == set()
    assert found.untraced == ["sample_mod:2: client.delete(kinds[0], 'x')"]


def test_role_reader_rejects_wildcards(tmp_path: Path) -> None:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "multus"},
        "rules": [{"apiGroups": ["k8s.cni.cncf.io"], "resources": ["*"], "verbs": ["*"]}],
    }
    path = tmp_path / "rbac.yaml"
    path.write_text(yaml.safe_dump(role))
    with pytest.raises(AssertionError, match="wildcard"):
        role_triples(path)
