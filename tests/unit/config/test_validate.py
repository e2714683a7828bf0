"""``pymultus validate``: every problem, each with the location of the offending field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from pymultus.cli.main import app
from pymultus.cli.validate import check_selection
from pymultus.cni.errors import InternalError, InvalidConfigError
from pymultus.config.multus import parse_multus_conf
from pymultus.config.validate import (
    Kind,
    Problem,
    collect_errors,
    detect_kind,
    validate,
)

NETS = "k8s.v1.cni.cncf.io/networks"
NAD_KIND = "NetworkAttachmentDefinition"
GOLDEN_DAEMON = Path("/work/shared/reference/golden/07-thick-daemon-responses/daemon-config.json")


@pytest.fixture
def bin_dir(tmp_path: Path) -> str:
    """A plugin directory holding bridge, macvlan and host-local (empty files suffice)."""
    directory = tmp_path / "bin"
    directory.mkdir()
    for name in ("bridge", "macvlan", "host-local"):
        (directory / name).write_bytes(b"")
    return str(directory)


def nad(name: str, config: Any, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, **meta},
        "spec": {"config": config if not isinstance(config, dict) else json.dumps(config)},
    }


def manifests(*docs: Any) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


def locations(problems: tuple[Problem, ...]) -> list[str]:
    return [p.location for p in problems]


def check(text: str, bin_dir: str, kind: Kind = Kind.AUTO) -> tuple[Problem, ...]:
    report = validate(text, kind=kind, bin_dirs=[bin_dir], check_selection=check_selection)
    return report.problems


BRIDGE = {"cniVersion": "1.0.0", "type": "bridge", "ipam": {"type": "host-local"}}


# --- NAD manifests -------------------------------------------------------------------------


def test_a_good_nad_has_no_problem(bin_dir: str) -> None:
    conflist = {"cniVersion": "1.0.0", "plugins": [BRIDGE]}  # no name: Multus injects it
    report = validate(manifests(nad("br", BRIDGE), nad("chain", conflist)), bin_dirs=[bin_dir])
    assert report.kind is Kind.NAD
    assert report.ok, report.problems


def test_acceptance_nad_problems_are_all_reported_with_their_path(bin_dir: str) -> None:
    text = manifests(
        nad("not-json", '{"cniVersion": "1.0.0", "type": '),
        nad("no-type", {"cniVersion": "1.0.0", "ipam": {"type": "host-local"}}),
        nad("no-binary", {"cniVersion": "1.0.0", "type": "ipvlan"}),
        nad("bad-ipam", {"plugins": [BRIDGE, {"type": "tuning", "ipam": {"type": "dhcp"}}]}),
    )
    problems = check(text, bin_dir)
    assert locations(problems) == [
        "[0].spec.config",
        "[1].spec.config",
        "[2].spec.config.type",
        "[3].spec.config.plugins[1].type",
        "[3].spec.config.plugins[1].ipam.type",
    ]
    assert "not a JSON object" in problems[0].problem
    assert problems[1].problem == 'has no "type" and no "plugins"'
    assert '"ipvlan"' in problems[2].problem and bin_dir in problems[2].problem
    assert all(p.hint for p in problems)


def test_one_nad_alone_has_no_document_index(bin_dir: str) -> None:
    problems = check(manifests(nad("x", {"cniVersion": "1.0.0"})), bin_dir)
    assert locations(problems) == ["spec.config"]


def test_nad_metadata_and_shape_problems(bin_dir: str) -> None:
    text = manifests(
        nad("Bad_Name", BRIDGE, namespace="Not OK"),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}},
        {**nad("yaml-config", {}), "spec": {"config": {"type": "bridge"}}},
        nad("dup", BRIDGE),
        nad("dup", BRIDGE),
    )
    problems = check(text, bin_dir)
    assert locations(problems) == [
        "[0].metadata.name",
        "[0].metadata.namespace",
        "[1].apiVersion",
        "[1].kind",
        "[2].spec.config",
        "[4].metadata.name",
    ]
    assert "config: |" in problems[4].hint
    assert "twice" in problems[5].problem and "[3]" in problems[5].hint


def test_list_items_are_opened(bin_dir: str) -> None:
    listed = {"apiVersion": "v1", "kind": "List", "items": [nad("a", BRIDGE), nad("b", {})]}
    problems = check(manifests(listed), bin_dir)
    assert locations(problems) == ["items[1].spec.config"]


def test_libcni_rules_are_checked_once_the_structure_is_right(bin_dir: str) -> None:
    config = {**BRIDGE, "capabilities": {"portMappings": "yes"}, "cniVersion": "9.9.9"}
    problems = check(manifests(nad("caps", config)), bin_dir)
    assert locations(problems) == ["spec.config.cniVersion"]
    problems = check(manifests(nad("caps", {**config, "cniVersion": "1.0.0"})), bin_dir)
    assert locations(problems) == ["spec.config.capabilities.portMappings"]


def test_yaml_syntax_error_names_the_line(bin_dir: str) -> None:
    text = "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata: [\n"
    problems = check(text, bin_dir, Kind.NAD)
    assert len(problems) == 1
    assert problems[0].location.startswith("line ")
    assert "YAML" in problems[0].problem


def test_empty_spec_is_fine(bin_dir: str) -> None:
    doc = {"apiVersion": "k8s.cni.cncf.io/v1", "kind": NAD_KIND, "metadata": {"name": "a"}}
    assert check(manifests(doc), bin_dir) == ()


def test_a_plain_cni_config_is_checked_like_a_nad_config(bin_dir: str) -> None:
    text = json.dumps({"cniVersion": "1.0.0", "name": "n", "plugins": [BRIDGE, {"type": "x"}]})
    report = validate(text, bin_dirs=[bin_dir])
    assert report.kind is Kind.CNI
    assert locations(report.problems) == ["plugins[1].type"]


# --- selection annotations -----------------------------------------------------------------


def test_acceptance_selection_problems_are_all_reported(bin_dir: str) -> None:
    value = json.dumps(
        [
            {"name": "a", "interface": "sixteen-chars-xx", "ips": ["10.1.2"], "mac": "zz:zz"},
            {"name": "b", "default-route": ["192.0.2.1"]},
            {"name": "c", "default-route": ["198.51.100.1"]},
            {"name": "d", "default-route": ["2001:db8::1"]},
        ]
    )
    problems = check(value, bin_dir)
    assert locations(problems) == [
        f"{NETS}[0].interface",
        f"{NETS}[0].ips[0]",
        f"{NETS}[0].mac",
        f"{NETS}[2].default-route",
    ]
    assert "too long" in problems[0].problem
    assert "ECMP" in problems[3].problem and f"{NETS}[1]" in problems[3].problem
    assert all(p.hint for p in problems)


def test_comma_form_reports_each_bad_item(bin_dir: str) -> None:
    problems = check("net-a, other/net-b@sixteen-chars-xx,,Bad@eth1\n", bin_dir)
    assert locations(problems) == [f"{NETS}[1].interface", f"{NETS}[2].name", f"{NETS}[3].name"]


def test_duplicate_interfaces_name_the_later_element(bin_dir: str) -> None:
    problems = check("a@net5, b, c@net5", bin_dir, Kind.ANNOTATION)
    assert locations(problems) == [f"{NETS}[2].interface"]
    assert f"{NETS}[0]" in problems[0].problem


@pytest.mark.parametrize(
    "value",
    [
        "net-a, net-b@data0",
        "ns/net-a@eth1",
        '[{"name": "a", "default-route": ["192.0.2.1"]}, {"name": "b", '
        '"default-route": ["2001:db8::1"], "mac": "02:00:00:00:00:01", "ips": ["192.0.2.9/24"]}]',
    ],
)
def test_good_selections(value: str, bin_dir: str) -> None:
    report = validate(value, bin_dirs=[bin_dir], check_selection=check_selection)
    assert report.kind is Kind.ANNOTATION
    assert report.ok, report.problems


def test_json_that_is_not_a_list_is_one_problem(bin_dir: str) -> None:
    problems = check('{"name": "a"}', bin_dir, Kind.ANNOTATION)
    assert locations(problems) == [NETS]


def test_annotations_need_a_parser() -> None:
    with pytest.raises(InternalError):
        validate("net-a", kind=Kind.ANNOTATION)


# --- Multus and daemon configs -------------------------------------------------------------


def test_acceptance_multus_config_without_delegates_or_cluster_network(bin_dir: str) -> None:
    text = json.dumps(
        {
            "name": "multus-cni-network",
            "type": "multus",
            "logOptions": {"maxSize": "big"},
            "namespaceIsolation": "yes",
        }
    )
    report = validate(text, bin_dirs=[bin_dir])
    assert report.kind is Kind.MULTUS
    assert locations(report.problems) == [
        "clusterNetwork",
        "logOptions.maxSize",
        "namespaceIsolation",
    ]
    assert "delegates" in report.problems[0].hint or "clusterNetwork" in report.problems[0].hint


def test_multus_config_delegates_are_checked(bin_dir: str, tmp_path: Path) -> None:
    own_bin = tmp_path / "own"
    own_bin.mkdir()
    (own_bin / "flannel").write_bytes(b"")
    text = json.dumps(
        {
            "name": "multus-cni-network",
            "type": "multus",
            "binDir": str(own_bin),
            "delegates": [{"type": "flannel"}, {"name": "x"}, 5, {"type": "weave"}],
        }
    )
    problems = check(text, bin_dir)
    assert locations(problems) == ["delegates[2]", "delegates[1]", "delegates[3].type"]


def test_a_good_multus_config(bin_dir: str) -> None:
    text = json.dumps({"name": "m", "type": "multus", "clusterNetwork": "k8s-pod-network"})
    assert check(text, bin_dir) == ()


def test_golden_daemon_config_is_valid(bin_dir: str) -> None:
    report = validate(GOLDEN_DAEMON.read_text(), bin_dirs=[bin_dir])
    assert report.kind is Kind.DAEMON
    assert report.ok, report.problems


def test_daemon_config_problems(bin_dir: str) -> None:
    text = json.dumps(
        {"socketDir": "/run/multus", "metricsPort": 99999, "logLevel": 1, "globalNamespaces": []}
    )
    problems = check(text, bin_dir)
    assert locations(problems) == [
        "logLevel",
        "metricsPort",
        "globalNamespaces",
        "multusAutoconfigDir",
        "cniVersion",
    ]


def test_daemon_config_not_in_auto_mode_needs_no_autoconfig_dir(bin_dir: str) -> None:
    text = json.dumps({"socketDir": "/run/multus", "multusConfigFile": "/etc/multus.conf"})
    assert check(text, bin_dir) == ()


def test_not_json_config_is_one_problem(bin_dir: str) -> None:
    problems = check('{"name": ', bin_dir, Kind.MULTUS)
    assert locations(problems) == [""]
    assert problems[0].hint


# --- kind detection and the peeling helper -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("net-a, net-b@data0", Kind.ANNOTATION),
        ('[{"name": "a"}]', Kind.ANNOTATION),
        ("apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\n", Kind.NAD),
        ("a: 1\n---\nb: 2\n", Kind.NAD),
        ('{"name": "m", "type": "multus-shim"}', Kind.MULTUS),
        ('{"name": "m", "clusterNetwork": "x"}', Kind.MULTUS),
        ('{"socketDir": "/run/multus/"}', Kind.DAEMON),
        ('{"MULTUSCONFIGFILE": "auto"}', Kind.DAEMON),
        ('{"name": "n", "type": "bridge"}', Kind.CNI),
        ('{"name": "n", "plugins": []}', Kind.CNI),
        ("{}", Kind.MULTUS),
        ("@@@: [", Kind.ANNOTATION),
    ],
)
def test_detect_kind(text: str, kind: Kind) -> None:
    assert detect_kind(text) is kind


def test_collect_errors_repairs_and_goes_on() -> None:
    obj = {
        "name": "bad name!",
        "delegates": [{"type": "a"}, 7],
        "capabilities": {"io.kubernetes.cri.pod-annotations": "yes"},
        "systemNamespaces": ["a", 3],
    }
    errors = collect_errors(parse_multus_conf, obj)
    assert all(isinstance(e, InvalidConfigError) for e in errors)
    assert [e.field for e in errors] == [
        "name",
        "delegates[1]",
        "capabilities.io.kubernetes.cri.pod-annotations",
        "systemNamespaces[1]",
    ]
    assert obj["systemNamespaces"] == ["a", 3]  # the caller's object is left alone


# --- the command ---------------------------------------------------------------------------

runner = CliRunner()


def test_cli_ok_and_problem_exit_codes(tmp_path: Path, bin_dir: str) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(manifests(nad("br", BRIDGE)))
    result = runner.invoke(app, ["validate", str(good), "--bin-dir", bin_dir])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output

    bad = tmp_path / "bad.yaml"
    bad.write_text(manifests(nad("br", {"cniVersion": "1.0.0", "type": "[ipvlan]"})))
    result = runner.invoke(
        app, ["validate", str(bad), "--bin-dir", bin_dir], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 1
    assert "spec.config.type" in result.output and "[ipvlan]" in result.output
    assert "Traceback" not in result.output


def test_cli_reads_stdin_with_a_forced_kind() -> None:
    result = runner.invoke(
        app,
        ["validate", "-", "--kind", "annotation"],
        input='[{"name": "a", "mac": "nope"}]',
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 1
    assert f"{NETS}[0].mac" in result.output


def test_cli_unreadable_file_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_cli_undecodable_input_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "junk"
    path.write_bytes(b"\xff\xfe{not: [valid")
    result = runner.invoke(app, ["validate", str(path), "--kind", "nad"], env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)


# --- never a traceback ---------------------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)
_keys = st.sampled_from(
    ["name", "type", "plugins", "ipam", "delegates", "clusterNetwork", "socketDir", "metadata",
     "spec", "config", "kind", "interface", "ips", "mac", "default-route", "capabilities"]
)  # fmt: skip
_objects = st.dictionaries(_keys, _json_values, max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    data=st.one_of(st.binary(max_size=60), st.text(max_size=60), _objects.map(json.dumps)),
    kind=st.sampled_from(list(Kind)),
)
def test_any_input_gives_a_report_never_an_exception(data: str | bytes, kind: Kind) -> None:
    report = validate(data, kind=kind, bin_dirs=["/nonexistent"], check_selection=check_selection)
    assert all(isinstance(p, Problem) for p in report.problems)


def test_an_unknown_log_level_is_reported() -> None:
    """Go keeps the old level for a level it does not know; validate says so."""
    conf = '{"name":"m","cniVersion":"1.0.0","type":"multus","clusterNetwork":"/x",'
    report = validate(conf + '"logLevel":"bogus"}', kind="multus-config", bin_dirs=[])
    assert [p.location for p in report.problems] == ["logLevel"]
    fine = validate(conf + '"logLevel":"VERBOSE"}', kind="multus-config", bin_dirs=[])
    assert fine.problems == ()
