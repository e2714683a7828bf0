"""Fixtures of the Multus core's integration tests (see ``tests.support.multus``).

``thin`` runs the thin plugin as a runtime does (a process in the host namespace, ``CNI_*``
env, config on stdin) but started through ``main(Deps(...))``, so a test can shorten the
readiness wait or point the kubelet and device-info paths at temporary ones::

    out = thin(cluster, "ADD", pod, conf, devinfo_root=str(root), readiness_timeout=0.5)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from tests.support.multus import Cluster, Outcome, PodId, cluster, run_plugin

__all__ = ["cluster", "thin"]

ThinRunner = Callable[..., Outcome]

_STARTER = (
    "import json, sys\n"
    "from pymultus.core.deps import Deps\n"
    "from pymultus.plugin.main import main\n"
    "main(Deps(**json.loads(sys.argv[1])))\n"
)


def run_thin(
    cluster: Cluster,
    command: str,
    pod: PodId,
    conf: Mapping[str, Any] | bytes,
    **deps: Any,
) -> Outcome:
    """One plugin run whose ``Deps`` start from ``deps`` (JSON-able field values)."""
    stdin = conf if isinstance(conf, bytes) else json.dumps(conf).encode()
    argv = [sys.executable, "-c", _STARTER, json.dumps(deps)]
    return run_plugin(cluster.pair, cluster.env(command, pod), stdin, argv=argv)


@pytest.fixture
def thin() -> ThinRunner:
    return run_thin
