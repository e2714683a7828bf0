"""Go Multus on this kind of machine, as issue #7 reports it: the bar pymultus is held to.

Medians in milliseconds at 0, 1, 2, 4 and 8 extra networks. "direct" is the same delegate
plugins run one after another by that harness (no Multus, no API calls).
"""

from __future__ import annotations

from collections.abc import Mapping

NETWORKS = (0, 1, 2, 4, 8)

GO_ADD = {
    "direct": (9.6, 18.4, 27.2, 45.5, 76.1),
    "Go thick": (33.1, 44.4, 54.6, 75.9, 116.9),
    "Go thin": (45.0, 54.3, 66.3, 90.2, 132.7),
}
GO_DEL = {
    "direct": (33.8, 61.3, 78.0, 121.4, 210.7),
    "Go thick": (41.1, 64.2, 84.9, 137.7, 237.7),
}
#: Go thick ADD / direct ADD, the ratio pymultus thick must not exceed at each count.
GO_THICK_RATIO = (3.45, 2.41, 2.01, 1.67, 1.54)

#: Go thin / direct, ADD and DEL (issue #15, one run on this kind of machine).
GO_THIN_ADD_RATIO = (4.42, 2.91, 2.40, 2.01, 1.71)
GO_THIN_DEL_RATIO = (1.19, 1.09, 1.17, 1.20, 1.06)
#: CPU per ADD at 0 extra networks: Go thin 34 ms, 3.3 x direct.
GO_THIN_CPU_RATIO_0 = 3.3
#: Concurrent thin ADDs (2 extra networks each): makespan / direct's, Go thin.
GO_THIN_LOAD_RATIO = {(20, 4): 2.65, (30, 4): 2.86}

#: 30 pods with 2 extra networks each, 4 at a time: pods per second.
GO_LOAD_30x4 = {"Go thick": 21.0, "Go thin": 28.0, "direct": 74.0}
GO_SHIM_START_MS = 7.0


def go_ratio(networks: int) -> float | None:
    return GO_THICK_RATIO[NETWORKS.index(networks)] if networks in NETWORKS else None


def go_thin_ratio(command: str, networks: int) -> float | None:
    table = GO_THIN_ADD_RATIO if command == "ADD" else GO_THIN_DEL_RATIO
    return table[NETWORKS.index(networks)] if networks in NETWORKS else None


def go_value(table: Mapping[str, tuple[float, ...]], name: str, networks: int) -> float | None:
    values = table.get(name)
    if values is None or networks not in NETWORKS:
        return None
    return values[NETWORKS.index(networks)]
