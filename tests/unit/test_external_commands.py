"""Every external command a test, the demo or a benchmark runs is installed by ``make deps``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tests.support.commands import UnlistedCommand, missing, programs, registry, unlisted

MAKEFILE = Path(__file__).resolve().parents[2] / "Makefile"


def test_every_listed_command_is_installed() -> None:
    absent = missing(registry())
    assert not absent, "missing commands (Debian package in brackets), run `make deps`: " + (
        ", ".join(f"{cmd} ({pkg})" for cmd, pkg in sorted(absent.items()))
    )


def test_make_deps_installs_every_listed_package() -> None:
    dry = subprocess.run(
        ["make", "-n", "-s", "-C", str(MAKEFILE.parent), "deps"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    install = next(line for line in dry.splitlines() if "apt-get install" in line)
    for package in set(registry().values()) | {"containernetworking-plugins", "python3-venv"}:
        assert f" {package}" in install, package


def test_a_missing_tool_is_reported_with_its_package(tmp_path: Path) -> None:
    listed = tmp_path / "commands.tsv"
    listed.write_text("# command\tpackage\nsh\tdash\nno-such-tool-here\tsome-package\n")
    assert missing(registry(listed)) == {"no-such-tool-here": "some-package"}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["nft", "list", "ruleset"], ["nft"]),
        (["ip", "netns", "exec", "ns1", "iptables", "-S"], ["ip", "iptables"]),
        (["ip", "-n", "ns1", "link"], ["ip"]),
        (["nsenter", "--net=/x", "iptables-save", "-t", "nat"], ["nsenter", "iptables-save"]),
        (["unshare", "--mount", "--propagation", "private", "sh", "-c", "x"], ["unshare", "sh"]),
        (["/usr/lib/cni/bridge"], ["/usr/lib/cni/bridge"]),
    ],
)
def test_programs_sees_through_wrappers(argv: list[str], expected: list[str]) -> None:
    assert programs(argv) == expected


def test_a_command_run_by_path_needs_no_entry() -> None:
    assert unlisted(["/usr/lib/cni/bridge"], {}) == []
    assert unlisted(["ip", "netns", "exec", "n", "tcpdump"], {"ip": "iproute2"}) == ["tcpdump"]


def test_the_guard_refuses_an_unlisted_command() -> None:
    with pytest.raises(UnlistedCommand, match=r"'no-such-tool-here'.*deps/commands\.tsv"):
        subprocess.run(["no-such-tool-here", "--version"], check=False)
