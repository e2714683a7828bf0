"""The thin plugin's part of the report and issue #15's acceptance, from one run's numbers.

Every bar is a ratio to "direct" (the same delegate plugins run by the harness) or to a bare
interpreter start measured in the same run, so the machine's speed and load cancel out; Go
thin's ratios are issue #15's, measured on this kind of machine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from bench.acceptance import Check, Run, ratio
from bench.latency import Matrix
from bench.load import LoadResult
from bench.reference import GO_THIN_CPU_RATIO_0, GO_THIN_LOAD_RATIO, go_thin_ratio

#: thin ADD / direct may be this much above Go thin's at 0 and 1 extra networks, and no more
#: than Go thin's from 2 on; thin DEL / direct at most ``MAX_DEL_RATIO`` at every count.
ADD_SLACK = {0: 1.3, 1: 1.3}
MAX_DEL_RATIO = 1.5
MAX_VERSION_RATIO = 2.0  # thin VERSION / `python3 -I -S -c pass`
MAX_CPU_RATIO_0 = 4.5  # thin ADD CPU / direct ADD CPU at 0 extra networks
MAX_LOAD_RATIO = 3.0  # thin ADD makespan / direct's, 20 x 4 and 30 x 4
FLOOR = "python3 -IS -c pass"
THIN_VERSION = "thin multus VERSION"


def cpu_ratio(matrix: Matrix, command: str, n: int) -> float:
    base = matrix.cpu("direct", command, n).median
    return matrix.cpu("thin", command, n).median / base if base else math.nan


def load_ratio(results: Sequence[LoadResult], pods: int, parallel: int) -> tuple[float, int]:
    """(thin ADD makespan / direct's, thin errors) of one case; NaN when it did not run."""
    found = {r.mode: r for r in results if (r.pods, r.parallel) == (pods, parallel)}
    if "thin" not in found or "direct" not in found or not found["direct"].add_makespan_s:
        return math.nan, 0
    thin = found["thin"]
    return thin.add_makespan_s / found["direct"].add_makespan_s, thin.errors


def thin_checks(run: Run) -> list[Check]:
    m = run.matrix
    out = []
    for command in ("ADD", "DEL"):
        bars = []
        for n in m.counts:
            go = go_thin_ratio(command, n)
            if go is not None:
                bar = go * ADD_SLACK.get(n, 1.0) if command == "ADD" else MAX_DEL_RATIO
                bars.append((ratio(m, "thin", command, n), bar))
        out.append(
            Check(
                f"thin {command} / direct at {'/'.join(map(str, m.counts))} extra networks",
                "≤ " + " / ".join(f"{bar:.2f}" for _, bar in bars),
                " / ".join(f"{r:.2f}" for r, _ in bars),
                all(r <= bar for r, bar in bars),
            )
        )
    programs = run.startup.programs
    version, floor = programs[THIN_VERSION].median, programs[FLOOR].median
    out.append(
        Check(
            f"thin VERSION / `{FLOOR}`",
            f"≤ {MAX_VERSION_RATIO:g}",
            f"{version / floor:.2f} ({version:.1f} / {floor:.1f} ms)",
            version <= MAX_VERSION_RATIO * floor,
        )
    )
    if 0 in m.counts:
        r = cpu_ratio(m, "ADD", 0)
        cpu = m.cpu("thin", "ADD", 0).median
        out.append(
            Check(
                "thin ADD CPU / direct at 0 extra networks",
                f"≤ {MAX_CPU_RATIO_0:g} (Go thin {GO_THIN_CPU_RATIO_0:g})",
                f"{r:.2f} ({cpu:.0f} ms)",
                r <= MAX_CPU_RATIO_0,
            )
        )
    for pods, parallel in GO_THIN_LOAD_RATIO:
        r, errors = load_ratio(run.load, pods, parallel)
        if math.isnan(r):
            continue
        out.append(
            Check(
                f"thin ADD makespan / direct, {pods} pods x {parallel}",
                f"≤ {MAX_LOAD_RATIO:g}, no error (Go thin {GO_THIN_LOAD_RATIO[(pods, parallel)]})",
                f"{r:.2f}, {errors} errors",
                r <= MAX_LOAD_RATIO and not errors,
            )
        )
    return out


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def thin_section(run: Run) -> str:
    """Issue #15's acceptance, then the thin plugin's latency and CPU per call next to
    direct's, with Go thin's ratios."""
    found = thin_checks(run)
    accept = _table(
        ["criterion", "target", "measured", ""],
        [[c.what, c.target, c.measured, "pass" if c.ok else "**FAIL**"] for c in found],
    )
    m = run.matrix
    rows = []
    for n in m.counts:
        row = [str(n)]
        for command in ("ADD", "DEL"):
            go = go_thin_ratio(command, n)
            row += [
                f"{m.summary('direct', command, n).median:.1f}",
                f"{m.summary('thin', command, n).median:.1f}",
                f"{ratio(m, 'thin', command, n):.2f}",
                f"{go:.2f}" if go is not None else "-",
                f"{m.cpu('direct', command, n).median:.0f}",
                f"{m.cpu('thin', command, n).median:.0f}",
                f"{cpu_ratio(m, command, n):.2f}",
            ]
        rows.append(row)
    head = ["networks"]
    for command in ("ADD", "DEL"):
        head += [f"direct {command} ms", "thin", "thin/direct", "Go thin/direct"]
        head += ["direct CPU ms", "thin CPU ms", "CPU thin/direct"]
    passed = sum(c.ok for c in found)
    return (
        f"## The thin plugin (issue #15): {passed} of {len(found)} met\n\n{accept}\n\n"
        "Medians of the latency rounds; CPU is the kernel's accounting of the processes each "
        "call started (the thin plugin and the plugins it ran; not the child that sends its "
        "events after the answer).\n\n" + _table(head, rows) + "\n\n" + _bounds(run)
    )


def _bounds(run: Run) -> str:
    """What a thin call pays before its work, in this run's numbers."""
    s = run.startup
    floor, version = s.programs[FLOOR].median, s.programs[THIN_VERSION].median
    tops = ", ".join(f"`{m}` {ms:.0f}" for m, ms in s.thin_top_imports[:6])
    return (
        f"What bounds it: the interpreter starts in {floor:.1f} ms (`{FLOOR}`) and the thin "
        f"plugin answers VERSION in {version:.1f} ms (constants, nothing imported). ADD and DEL "
        "of the common pods take the lean path (`plugin.lean`: the interpreter's C modules "
        "only; the stand-in API server speaks HTTPS, as a kube-apiserver does, so an ADD pays "
        "for a TLS handshake), its modules run from the bundle installed beside the launcher "
        f"(`plugin.preload`): {s.thin_imports_ms:.0f} ms of imports left for one ADD, as "
        f"`-X importtime` counts them (largest, with what they pull in, ms: {tops}). A DEL at "
        "0 extra networks is mostly the kernel deleting the veth: the bridge plugin waits in "
        "`rcu_barrier`, 0 to 30 ms by what else the machine did just before, so its median "
        "moves between runs, direct's more than thin's.\n"
    )
