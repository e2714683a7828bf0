"""End-to-end tests: containerd 1.6's CRI drives pymultus in thick mode, as kubelet does.

One containerd (and one multus-daemon) serves every test of this directory: started in about
2 s, stopped after the directory's last test. They need the Debian packages ``containerd runc
busybox-static`` (``make deps`` installs them: ``deps/commands.tsv``) and the PyPI package
``container-runtime-interface-api`` (installed into this venv when missing). Like the
integration tests these are never skipped: without root they fail saying so.

Each test gets the ``node`` fixture; at its end every sandbox still there is stopped and
removed through the CRI (a test that failed half-way leaves none), and then the test fails if
anything is left: a link, a netns, an IP allocation, a cache or status file, a NAT rule, a
process. After the last test containerd, its shims and pause processes are stopped by
PID, its mounts unmounted and every directory removed, also when tests failed.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

APT_PACKAGES = ("containerd", "runc", "busybox-static")
CRI_PACKAGE = "container-runtime-interface-api"
CRI_VERSION = "2.0.1"


def _ensure_cri_package() -> None:
    """The CRI stubs must be importable before the test modules are (they import them)."""
    try:
        importlib.metadata.version(CRI_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        pin = f"{CRI_PACKAGE}=={CRI_VERSION}"
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", pin], check=True)


_ensure_cri_package()

from tests.e2e.clusters import Cluster, Standalone, api_server_cluster  # noqa: E402
from tests.e2e.containerd import cni_config_loaded  # noqa: E402
from tests.e2e.leaks import LIBCNI_RESULTS  # noqa: E402
from tests.e2e.node import Node  # noqa: E402
from tests.support.commands import missing, registry  # noqa: E402
from tests.support.cri import CriClient  # noqa: E402


def _ensure_apt_packages() -> None:
    if os.geteuid() != 0:
        pytest.fail(
            "e2e tests need root (containerd, network namespaces): run them as root, or run "
            "`make test-unit`.",
            pytrace=False,
        )
    absent = missing({cmd: pkg for cmd, pkg in registry().items() if pkg in APT_PACKAGES})
    if absent:
        needed = sorted(set(absent.values()))
        pytest.fail(f"e2e tests need {needed}: run `make deps`", pytrace=False)


def _wait_for_multus_config(cri: CriClient, timeout: float = 20.0) -> None:
    """containerd watches conf_dir; wait until it took the generated 00-multus.conf."""
    deadline = time.monotonic() + timeout
    while (loaded := cni_config_loaded(cri)) != "multus-shim":
        if time.monotonic() > deadline:
            pytest.fail(f"containerd loaded {loaded!r}, not multus-shim", pytrace=False)
        time.sleep(0.1)


@pytest.fixture(scope="package")
def e2e_node() -> Iterator[Node]:
    """The node of every e2e test: host netns, files, multus-daemon (standalone first, so
    00-multus.conf is there before containerd reads conf_dir) and containerd."""
    _ensure_apt_packages()
    created = _missing_parents(LIBCNI_RESULTS)  # containerd makes them; we remove them again
    node = Node()
    try:
        node.setup()
        node.start_daemon()
        containerd = node.start_containerd()
        with CriClient(containerd.socket) as cri:
            _wait_for_multus_config(cri)
        yield node
    finally:
        problems = node.destroy()
        for directory in created:  # deepest first; only if containerd left them empty
            with contextlib.suppress(OSError):
                directory.rmdir()
        if problems:
            print(f"e2e teardown left: {problems}; kept {node.work}", file=sys.stderr)


def _missing_parents(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    return missing


@pytest.fixture(scope="package")
def cri(e2e_node: Node) -> Iterator[CriClient]:
    assert e2e_node.containerd is not None
    with CriClient(e2e_node.containerd.socket) as client:
        yield client


def remove_all_sandboxes(cri: CriClient) -> list[str]:
    """Stop and remove every sandbox, as kubelet does for deleted pods; returns failures."""
    failures = []
    for sandbox in cri.list_pod_sandboxes():
        try:
            cri.teardown(sandbox)
        except Exception as exc:
            failures.append(f"{sandbox[:12]}: {exc}")
    return failures


@pytest.fixture
def node(e2e_node: Node, cri: CriClient) -> Iterator[Node]:
    """The node, checked clean after the test (sandboxes the test left are removed first)."""
    if e2e_node.daemon is None or e2e_node.daemon.poll() is not None:
        e2e_node.start_daemon(e2e_node.daemon_kubeconfig)
    yield e2e_node
    failures = remove_all_sandboxes(cri)
    left = e2e_node.leftovers()
    if failures or left:
        e2e_node.scrub()  # so the next test starts clean and only this one fails
        pytest.fail(
            f"sandbox removal failed: {failures}\nleft behind: {left}\n"
            f"daemon log:\n{e2e_node.tail('daemon.log')}\n"
            f"containerd log:\n{e2e_node.containerd.log_tail() if e2e_node.containerd else ''}",
            pytrace=False,
        )


@pytest.fixture(scope="module", params=["standalone", "apiserver"])
def cluster(request: pytest.FixtureRequest, e2e_node: Node) -> Iterator[Cluster]:
    """The daemon standalone (selection from containerd's pod annotations, NADs in files), or
    with the stand-in API server holding the pods and NADs (watch cache, status on the pod)."""
    if request.param == "standalone":
        if e2e_node.daemon_kubeconfig is not None:
            e2e_node.start_daemon(None)
        yield Standalone(e2e_node)
        return
    with api_server_cluster(e2e_node) as with_api:
        yield with_api
