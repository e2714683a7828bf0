"""``pymultus validate``: every problem of a NAD manifest, a selection annotation, a Multus
config, a daemon config or a plain CNI config, each with a JSON-path-like location and a hint.

The runtime parsers stop at the first error, which is right for a CNI call and tiresome for a
person fixing a file. Here each parser is run again and again: after each error the offending
value is replaced by a neutral one (the key removed, or a placeholder) until the parser is
satisfied, so one run lists everything and nothing is checked by a second, drifting copy of
the rules. What no runtime parser checks up front is checked here: every plugin binary a config
names (``type`` and ``ipam.type``) must exist in the bin dirs.

Layering: ``config`` may not import ``k8s``, so the selection-annotation parser is passed in
(``check_selection``, e.g. ``k8s.selection`` wired by the CLI). Annotations are checked element
by element, then the elements that passed are checked together (gateways, interface names).
"""

from __future__ import annotations

import copy
import enum
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import yaml

from pymultus.cni import limits, netconf
from pymultus.cni.env import validate_network_name
from pymultus.cni.errors import CniError, DecodeError, InternalError, InvalidConfigError
from pymultus.cni.invoke import find_plugin
from pymultus.cni.version import ALL_VERSIONS, require_known
from pymultus.config.daemon import parse_daemon_conf
from pymultus.config.logging import parse_level
from pymultus.config.multus import parse_multus_conf

DEFAULT_BIN_DIRS: tuple[str, ...] = ("/opt/cni/bin", "/usr/lib/cni")
NAD_API_VERSION = "k8s.cni.cncf.io/v1"
NAD_KIND = "NetworkAttachmentDefinition"
_LIST_KINDS = ("List", "NetworkAttachmentDefinitionList")
_DAEMON_ONLY = "socketDir chrootDir multusConfigFile cniConfigDir multusAutoconfigDir \
multusMasterCNI metricsPort enablePprof connectionLimit perNodeCertificate forceCNIVersion \
overrideNetworkName"
_DAEMON_KEYS = frozenset(key.casefold() for key in _DAEMON_ONLY.split())
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_MAX_PEEL = 100  # problems reported per parser; a file with more has bigger troubles
_DROP = object()  # repair: remove the key
_REPAIRS: tuple[Any, ...] = (_DROP, "placeholder", {}, [], 0, False)
_ELEMENT = re.compile(r"(/networks)\[(\d+)\]")

#: Checks one ``k8s.v1.cni.cncf.io/networks`` value; raises ``CniError`` naming the field.
SelectionCheck = Callable[[str], object]


class Kind(enum.StrEnum):
    AUTO = "auto"
    NAD = "nad"
    ANNOTATION = "annotation"
    MULTUS = "multus-config"
    DAEMON = "daemon-config"
    CNI = "cni-config"


@dataclass(frozen=True)
class Problem:
    location: str  # JSON-path-like, "" for the input as a whole
    problem: str
    hint: str = ""


@dataclass(frozen=True)
class Report:
    kind: Kind
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def validate(
    data: str | bytes,
    *,
    kind: Kind = Kind.AUTO,
    bin_dirs: Sequence[str] = DEFAULT_BIN_DIRS,
    check_selection: SelectionCheck | None = None,
) -> Report:
    """Every problem of ``data``, read as ``kind`` (guessed with ``detect_kind`` for AUTO).
    Bytes must be UTF-8, as JSON and Kubernetes require."""
    try:
        text = data.decode() if isinstance(data, bytes) else data
    except UnicodeDecodeError as err:
        where = f"byte {err.start}"
        return Report(kind, (Problem(where, "is not UTF-8 text", "save the file as UTF-8"),))
    if check_selection is None and kind is Kind.ANNOTATION:
        raise InternalError("validate: annotations need a check_selection function")
    try:
        limits.check_json(text, field="input", max_bytes=limits.MAX_FILE_BYTES)
        return _validate(text, kind, tuple(bin_dirs), check_selection)
    except InvalidConfigError as err:  # the input is beyond pymultus.cni.limits
        return Report(kind, (Problem("", err.msg, "no real config is that large or deep"),))


def _validate(
    text: str, kind: Kind, bin_dirs: tuple[str, ...], check_selection: SelectionCheck | None
) -> Report:
    if kind is Kind.AUTO:
        kind = detect_kind(text)
    if kind is Kind.ANNOTATION:
        if check_selection is None:
            raise InternalError("validate: annotations need a check_selection function")
        return Report(kind, tuple(check_annotation(text.strip(), check_selection)))
    checks = {Kind.NAD: _check_nads, Kind.MULTUS: _check_multus, Kind.DAEMON: _check_daemon}
    problems = checks.get(kind, check_cni_config)(text, bin_dirs)
    return Report(kind, tuple(dict.fromkeys(problems)))


# ---------------------------------------------------------------- input kinds


def load_documents(text: str) -> list[Any]:
    """JSON (one value), else YAML (any number of documents). Raises ``yaml.YAMLError``."""
    try:
        return [msgspec.json.decode(text.encode())]
    except (msgspec.DecodeError, UnicodeDecodeError):
        return limits.load_yaml(text, field="input")


def detect_kind(text: str) -> Kind:
    """Manifests have ``kind``/``apiVersion``/``metadata`` or several documents; a daemon config
    has daemon-only keys; a Multus config has ``type: multus*``, ``delegates`` or
    ``clusterNetwork``; a CNI config ``plugins`` or ``type``; anything else is an annotation."""
    try:
        docs = load_documents(text)
    except yaml.YAMLError:
        return Kind.ANNOTATION
    objects = [d for d in docs if isinstance(d, Mapping)]
    if not objects:
        return Kind.ANNOTATION
    first = objects[0]
    if len(docs) > 1 or {"kind", "apiVersion", "metadata"} & set(first):
        return Kind.NAD
    keys = {str(k).casefold() for k in first}
    if keys & _DAEMON_KEYS:
        return Kind.DAEMON
    if str(first.get("type", "")).startswith("multus") or keys & {"delegates", "clusternetwork"}:
        return Kind.MULTUS
    return Kind.CNI if keys & {"plugins", "type"} else Kind.MULTUS


# ---------------------------------------------------------------- first-error parsers, peeled


def collect_errors(
    parse: Callable[[bytes], object],
    obj: Mapping[str, Any],
    relative: Callable[[str], str] = str,
) -> list[CniError]:
    """Every error ``parse`` reports on ``obj``, one at a time: after each, the value at the
    error's ``field`` (made relative to ``obj`` by ``relative``) is repaired and the parser
    runs again."""
    work = copy.deepcopy(dict(obj))
    errors: list[CniError] = []
    while len(errors) < _MAX_PEEL:
        err = _first_error(parse, work)
        if err is None:
            break
        errors.append(err)
        repaired = _repair(parse, work, err, relative(err.field or ""))
        if repaired is None:
            break
        work = repaired
    return errors


def _first_error(parse: Callable[[bytes], object], obj: Mapping[str, Any]) -> CniError | None:
    try:
        parse(msgspec.json.encode(obj))
    except CniError as err:
        return err
    return None


def _repair(
    parse: Callable[[bytes], object], work: dict[str, Any], err: CniError, path: str
) -> dict[str, Any] | None:
    """The first repair (of the path, else of a parent) that moves the parser past the
    error's field, or None."""
    while path:
        for candidate in _REPAIRS:
            trial = copy.deepcopy(work)
            if _set_path(trial, path, candidate):
                after = _first_error(parse, trial)
                if after is None or after.field != err.field:
                    return trial
        path = re.sub(r"(\.[^.\[]*|\[\d+\])$", "", path) if re.search(r"[.\[]", path) else ""
    return None


def _set_path(node: Any, path: str, value: Any) -> bool:
    """Set (or with ``_DROP`` remove) the value at ``path`` (``a.b[2].c``; keys may hold dots
    and match ignoring case, as Go matches them). False when the path cannot be followed;
    list elements are replaced, never removed, so later indexes keep their meaning."""
    if isinstance(node, list):
        match = re.match(r"\[(\d+)\]\.?", path)
        if match is None or int(match.group(1)) >= len(node):
            return False
        index, rest = int(match.group(1)), path[match.end() :]
        if rest:
            return _set_path(node[index], rest, value)
        if value is _DROP:
            return False
        node[index] = value
        return True
    if not isinstance(node, dict):
        return False
    key, rest = _key_of(node, path)
    if rest:
        return key is not None and _set_path(node[key], rest.lstrip("."), value)
    if value is _DROP:
        if key is None:
            return False
        del node[key]
        return True
    node[key if key is not None else path] = value
    return True


def _key_of(node: Mapping[str, Any], path: str) -> tuple[str | None, str]:
    """The key of ``node`` that ``path`` starts with (longest; exact before case-folded) and
    the rest of the path; for a missing key, (None, "") when ``path`` is a plain key."""
    for folded in (False, True):
        for key in sorted(node, key=len, reverse=True):
            head = path[: len(key)]
            if (head.casefold() == key.casefold() if folded else head == key) and path[
                len(key) : len(key) + 1
            ] in ("", ".", "["):
                return key, path[len(key) :]
    return None, "" if not re.search(r"[.\[]", path) else path


def problem_of(err: CniError, prefix: str = "") -> Problem:
    """A parser's error as a problem: location from ``field``, message without a repeated
    location, details appended."""
    location = _join(prefix, err.field or "")
    msg = err.msg
    if err.field and msg.startswith(f"{err.field}: "):
        msg = msg[len(err.field) + 2 :]
    if err.details and err.details not in msg:
        msg = f"{msg} ({err.details})"
    return Problem(location, msg, hint_for(err))


def _join(prefix: str, field: str) -> str:
    if not prefix or not field:
        return prefix or field
    return f"{prefix}{field}" if field.startswith("[") else f"{prefix}.{field}"


_HINTS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), hint)
    for pattern, hint in (
        ("failed to find plugin", "install the plugin there, pass --bin-dir, or fix the type"),
        ("ECMP", "at most one IPv4 and one IPv6 gateway per pod: Multus has no ECMP"),
        ("already requested", "give each network of the pod its own interface name"),
        ("empty list item", "remove the extra comma"),
        ("interface name", "1 to 15 bytes, no '/', ':' or whitespace, not '.' or '..'"),
        ("IP address or CIDR", "write an address or CIDR such as 198.51.100.7/24"),
        ("IP address", "write an address such as 198.51.100.1 or 2001:db8::1"),
        ("MAC address", "write 6 hex pairs such as 02:00:00:00:00:01"),
        ("at least one delegate", "set clusterNetwork (NAD name, CNI network name or file path)"),
        (
            "in network name|missing network name",
            "letters, digits, '_', '.' and '-', starting with a letter or digit",
        ),
        ("valid namespace", "a DNS-1123 label: lower-case letters, digits and '-'"),
        ("valid object name", "a DNS-1123 subdomain: lower-case letters, digits, '-' and '.'"),
        ("version", f"use one of {', '.join(ALL_VERSIONS)}"),
        (r"must be (a|an|true|the)\b", "change the value to the JSON type the message names"),
        ("must be between|must be >=|out of range", "pick a value inside the range"),
    )
)


def hint_for(err: CniError) -> str:
    """A short way out for a parser's error; "" when there is nothing to add."""
    if isinstance(err, DecodeError):
        return "fix the JSON syntax at the position the message gives"
    return next((hint for pattern, hint in _HINTS if pattern.search(err.msg)), "")


# ---------------------------------------------------------------- CNI configs and NADs


def check_cni_config(
    text: str, bin_dirs: Sequence[str], where: str = "", default_name: str = ""
) -> list[Problem]:
    """A delegate config (a NAD's ``spec.config``, a ``.conf``/``.conflist``). A NAD's config
    may leave ``name`` out (Multus injects the NAD's name): pass it as ``default_name``."""
    try:
        obj = netconf.decode_object(text.encode(), "CNI config")
    except DecodeError as err:
        return [Problem(where, f"is not a JSON object: {err.msg}", hint_for(err))]
    if default_name and not obj.get("name"):
        obj["name"] = default_name
    return check_cni_object(obj, where, bin_dirs)


def check_cni_object(obj: Mapping[str, Any], where: str, dirs: Sequence[str]) -> list[Problem]:
    """Structure and plugin binaries first; when those are fine, libcni's parser for the rest
    (capabilities, list flags, ...)."""
    problems = []
    if obj.get("name") is not None:
        problems += _caught(lambda: validate_network_name(str(obj["name"])), where)
    if "cniVersion" in obj:
        problems += _caught(lambda: require_known(str(obj["cniVersion"])), where)
    if "plugins" in obj:
        plugins = obj["plugins"]
        if not isinstance(plugins, list) or not plugins:
            problems.append(Problem(_join(where, "plugins"), "must be a non-empty list"))
        for i, plugin in enumerate(plugins if isinstance(plugins, list) else []):
            problems += _check_plugin(plugin, _join(where, f"plugins[{i}]"), dirs)
    elif "type" in obj:
        problems += _check_plugin(obj, where, dirs)
    else:
        hint = 'one plugin needs "type", a chain needs "plugins"'
        problems.append(Problem(where, 'has no "type" and no "plugins"', hint))
    if not problems:
        parse = netconf.conflist_from_bytes if "plugins" in obj else netconf.conf_from_bytes
        problems += _caught(lambda: parse(msgspec.json.encode(obj)), where)
    return problems


def _caught(check: Callable[[], object], where: str) -> list[Problem]:
    """Run one first-error check; its error as a problem under ``where``."""
    try:
        check()
    except CniError as err:
        return [problem_of(err, where)]
    return []


def _check_plugin(plugin: Any, where: str, dirs: Sequence[str]) -> list[Problem]:
    """``type`` and ``ipam.type`` must name binaries in ``dirs``."""
    if not isinstance(plugin, Mapping):
        return [Problem(where, "must be a plugin config object")]
    problems = _binary(plugin.get("type"), where, dirs)
    ipam = plugin.get("ipam")
    if isinstance(ipam, Mapping) and ipam.get("type") is not None:
        problems += _binary(ipam["type"], _join(where, "ipam"), dirs)
    return problems


def _binary(plugin_type: Any, where: str, dirs: Sequence[str]) -> list[Problem]:
    if not isinstance(plugin_type, str) or not plugin_type:
        hint = 'e.g. "bridge" or "macvlan"'
        return [Problem(_join(where, "type"), "must name the plugin binary", hint)]
    return _caught(lambda: find_plugin(plugin_type, dirs), where)


def _check_nads(text: str, dirs: Sequence[str]) -> list[Problem]:
    try:
        docs = load_documents(text)
    except yaml.YAMLError as err:
        return [_yaml_problem(err)]
    objects = list(_objects(docs))
    if not objects:
        return [Problem("", "holds no NetworkAttachmentDefinition", "is this the right file?")]
    problems: list[Problem] = []
    seen: dict[tuple[str, str], str] = {}
    for where, obj in objects:
        problems += check_nad(obj, where, dirs)
        key = _nad_key(obj)
        if key is not None and key in seen:
            problems.append(
                Problem(_join(where, "metadata.name"), f"{key[1]!r} is defined twice", seen[key])
            )
        elif key is not None:
            seen[key] = f"the first one ({where or 'document 0'}) wins"
    return problems


def _objects(docs: Sequence[Any]) -> Iterator[tuple[str, Any]]:
    """Each manifest object with its location; ``List`` kinds opened up."""
    for i, doc in enumerate(docs):
        where = f"[{i}]" if len(docs) > 1 else ""
        items = doc.get("items") if isinstance(doc, Mapping) else None
        if isinstance(doc, Mapping) and doc.get("kind") in _LIST_KINDS and isinstance(items, list):
            yield from ((_join(where, f"items[{j}]"), item) for j, item in enumerate(items))
        else:
            yield where, doc


def _nad_key(obj: Any) -> tuple[str, str] | None:
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    if not isinstance(meta, Mapping) or not isinstance(meta.get("name"), str):
        return None
    return str(meta.get("namespace") or ""), meta["name"]


def check_nad(obj: Any, where: str, dirs: Sequence[str]) -> list[Problem]:
    """One NetworkAttachmentDefinition object."""
    if not isinstance(obj, Mapping):
        return [Problem(where, f"must be an object, got {type(obj).__name__}")]
    problems = []
    api, kind = obj.get("apiVersion"), obj.get("kind")
    if api is not None and api != NAD_API_VERSION:
        problems.append(Problem(_join(where, "apiVersion"), f"is {api!r}", NAD_API_VERSION))
    if kind is not None and kind != NAD_KIND:
        hint = "pymultus reads only NetworkAttachmentDefinitions from NAD files"
        problems.append(Problem(_join(where, "kind"), f"is {kind!r}, not {NAD_KIND}", hint))
    problems += _check_metadata(obj.get("metadata"), _join(where, "metadata"))
    spec = obj.get("spec")
    if spec is not None and not isinstance(spec, Mapping):
        return [*problems, Problem(_join(where, "spec"), "must be an object with config")]
    config = spec.get("config") if spec is not None else None
    at = _join(where, "spec.config")
    if isinstance(config, str) and config.strip():
        name = _nad_key(obj)
        problems += check_cni_config(config, dirs, at, name[1] if name else "placeholder")
    elif config is not None and not isinstance(config, str):
        hint = "write `config: |` and the JSON, indented, on the lines below"
        problems.append(Problem(at, "must be a string holding the CNI config JSON", hint))
    return problems


def _check_metadata(meta: Any, where: str) -> list[Problem]:
    if not isinstance(meta, Mapping):
        return [Problem(where, "is required: an object with at least a name")]
    problems = []
    name, namespace = meta.get("name"), meta.get("namespace")
    if not isinstance(name, str) or not name:
        problems.append(Problem(_join(where, "name"), "is required", "the NAD's name"))
    elif len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
        hint = "a DNS-1123 subdomain: lower-case letters, digits, '-' and '.'"
        problems.append(Problem(_join(where, "name"), f"{name!r} is not a valid name", hint))
    if namespace is not None and (
        not isinstance(namespace, str) or len(namespace) > 63 or not _DNS_LABEL.fullmatch(namespace)
    ):
        hint = "a DNS-1123 label: lower-case letters, digits and '-'"
        problems.append(Problem(_join(where, "namespace"), f"{namespace!r} is not valid", hint))
    annotations = meta.get("annotations")
    if annotations is not None and not (
        isinstance(annotations, Mapping) and all(isinstance(v, str) for v in annotations.values())
    ):
        hint = "quote values such as true or 1 so that YAML keeps them strings"
        problems.append(Problem(_join(where, "annotations"), "must map names to strings", hint))
    return problems


def _yaml_problem(err: yaml.YAMLError) -> Problem:
    if isinstance(err, yaml.MarkedYAMLError) and err.problem_mark is not None:
        mark = err.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}"
        return Problem(where, f"is not valid YAML: {err.problem}", "fix the YAML syntax there")
    return Problem("", f"is not valid YAML: {err}", "fix the YAML syntax")


# ---------------------------------------------------------------- Multus and daemon configs


def _json_object(text: str, what: str) -> tuple[dict[str, Any], list[Problem]]:
    try:
        return netconf.decode_object(text.encode(), what), []
    except DecodeError as err:
        return {}, [Problem("", err.msg, hint_for(err))]


def _check_multus(text: str, dirs: Sequence[str]) -> list[Problem]:
    obj, problems = _json_object(text, "multus config")
    if problems:
        return problems
    problems = [problem_of(err) for err in collect_errors(parse_multus_conf, obj)]
    problems += _log_level(obj)
    _, bin_dir = netconf.go_field(obj, "binDir")
    search = [bin_dir, *dirs] if isinstance(bin_dir, str) and bin_dir else list(dirs)
    _, delegates = netconf.go_field(obj, "delegates")
    for i, delegate in enumerate(delegates if isinstance(delegates, list) else []):
        if isinstance(delegate, Mapping):
            problems += check_cni_object(delegate, f"delegates[{i}]", search)
    return problems


def _log_level(obj: Mapping[str, Any]) -> list[Problem]:
    """A level Go Multus does not know is ignored at run time (the old level stays), which is
    rarely what the writer meant: say so."""
    _, level = netconf.go_field(obj, "logLevel")
    if isinstance(level, str) and level and parse_level(level) is None:
        return [Problem("logLevel", f"{level!r} is not a level", "debug, verbose, error or panic")]
    return []


def _check_daemon(text: str, dirs: Sequence[str]) -> list[Problem]:
    """The daemon's own keys, the Multus keys it overlays on every request, auto mode."""
    obj, problems = _json_object(text, "daemon config")
    if problems:
        return problems
    problems = [problem_of(err) for err in collect_errors(parse_daemon_conf, obj)]
    as_request = dict(obj)
    for key, placeholder in (("name", "multus-cni-network"), ("clusterNetwork", "placeholder")):
        if not netconf.go_field(obj, key)[0]:
            as_request[key] = placeholder
    problems += [problem_of(err) for err in collect_errors(parse_multus_conf, as_request)]
    mode = netconf.go_field(obj, "multusConfigFile")[1]
    if mode in (None, "", "auto"):
        for key, why in (
            ("multusAutoconfigDir", "the directory holding the primary CNI config"),
            ("cniVersion", "the version written into the generated 00-multus.conf"),
        ):
            if netconf.go_field(obj, key)[1] in (None, ""):
                problems.append(Problem(key, 'is required when multusConfigFile is "auto"', why))
    return problems


# ---------------------------------------------------------------- selection annotations


def check_annotation(value: str, check: SelectionCheck) -> list[Problem]:
    """Each element alone, then the good ones together (gateways, duplicate interfaces)."""
    split = _elements(value)
    if split is None:
        return _caught(lambda: check(value), "")
    elements, combine = split
    problems: list[Problem] = []
    good: list[tuple[int, str]] = []
    for i, element in enumerate(elements):
        found = [_reindexed(problem_of(e), {0: i}) for e in _errors_of(element, combine, check)]
        problems += found
        if not found:
            good.append((i, element))
    while good:
        try:
            check(combine([e for _, e in good]))
            break
        except CniError as err:
            problems.append(_reindexed(problem_of(err), dict(enumerate(i for i, _ in good))))
            match = _ELEMENT.search(err.field or "")
            if match is None or int(match.group(2)) >= len(good):
                break
            del good[int(match.group(2))]
    return problems


def _errors_of(
    element: str, combine: Callable[[Sequence[str]], str], check: SelectionCheck
) -> list[CniError]:
    """One element checked alone: every error of a JSON object, the first one otherwise."""

    def parse(raw: bytes) -> object:
        return check(combine([raw.decode()]) or " ")

    if element.startswith("{"):
        return collect_errors(parse, msgspec.json.decode(element), _in_element)
    err = _first_error(lambda _: parse(element.encode()), {})
    return [err] if err is not None else []


def _in_element(field: str) -> str:
    match = _ELEMENT.search(field)
    return field[match.end() :].lstrip(".") if match else field


def _elements(value: str) -> tuple[list[str], Callable[[Sequence[str]], str]] | None:
    """The value split into elements and how to join some back; None when it is meant as
    JSON (as the parser decides) but is not a JSON list."""
    if not any(ch in value for ch in '[{"'):
        return value.split(","), ",".join
    try:
        items = msgspec.json.decode(value.encode())
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    if not isinstance(items, list):
        return None
    encoded = [msgspec.json.encode(item).decode() for item in items]
    return encoded, lambda some: "[" + ",".join(some) + "]"


def _reindexed(problem: Problem, mapping: Mapping[int, int]) -> Problem:
    """Element indexes of a partial check renamed to those of the whole annotation."""

    def sub(text: str) -> str:
        return _ELEMENT.sub(
            lambda m: f"{m.group(1)}[{mapping.get(int(m.group(2)), int(m.group(2)))}]", text
        )

    return Problem(sub(problem.location), sub(problem.problem), problem.hint)
