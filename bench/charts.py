"""The report's PNG charts (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.latency import Matrix
from bench.load import LoadResult
from bench.reference import GO_ADD, GO_DEL, NETWORKS, GO_LOAD_30x4

COLORS = {"direct": "#555555", "thick": "#1f77b4", "thin": "#ff7f0e"}
LABELS = {
    "direct": "direct (floor)",
    "thick": "pymultus thick (shim → daemon)",
    "thin": "pymultus thin",
}
GO_COLORS = {"direct": "#555555", "Go thick": "#1f77b4", "Go thin": "#ff7f0e"}


def _pyplot() -> Any:
    import matplotlib  # noqa: PLC0415 - only the report needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def latency_chart(matrix: Matrix, path: Path) -> None:
    """Median and p10-p90 band against extra networks, ADD and DEL side by side, with the
    Go Multus medians of issue #7 as dashed lines."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=False)
    for ax, command, go in zip(axes, ("ADD", "DEL"), (GO_ADD, GO_DEL), strict=True):
        xs = list(matrix.counts)
        for mode in ("direct", "thick", "thin"):
            cells = [matrix.summary(mode, command, n) for n in xs]
            ax.plot(xs, [c.median for c in cells], "o-", color=COLORS[mode], label=LABELS[mode])
            ax.fill_between(
                xs, [c.p10 for c in cells], [c.p90 for c in cells], color=COLORS[mode], alpha=0.15
            )
        for name, values in go.items():
            label = f"{name} (issue #7)" if name != "direct" else "direct (issue #7)"
            ax.plot(NETWORKS, values, "--", color=GO_COLORS[name], alpha=0.6, label=label)
        ax.set_title(f"{command}: one pod, median and p10-p90 (log scale)")
        ax.set_xlabel("extra networks")
        ax.set_ylabel("ms (wall time seen by the runtime)")
        ax.set_xticks(xs)
        _log_ms(ax)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def throughput_chart(results: Sequence[LoadResult], path: Path) -> None:
    """Pods per second (ADD) for every case and mode; Go's 30x4 figures as markers."""
    plt = _pyplot()
    cases = sorted({(r.parallel, r.pods) for r in results})
    modes = [m for m in ("direct", "thick", "thin") if any(r.mode == m for r in results)]
    width = 0.8 / max(len(modes), 1)
    fig, (ax, ax99) = plt.subplots(1, 2, figsize=(12, 4.8))
    for i, mode in enumerate(modes):
        by_case = {(r.parallel, r.pods): r for r in results if r.mode == mode}
        xs = [j + (i - (len(modes) - 1) / 2) * width for j in range(len(cases))]
        rates = [by_case[c].pods_per_s if c in by_case else 0 for c in cases]
        p99 = [by_case[c].add.p99 if c in by_case else 0 for c in cases]
        ax.bar(xs, rates, width, color=COLORS[mode], label=LABELS[mode])
        ax99.bar(xs, p99, width, color=COLORS[mode], label=LABELS[mode])
    if (4, 30) in cases:
        j = cases.index((4, 30))
        for name, rate in GO_LOAD_30x4.items():
            ax.plot([j - 0.45, j + 0.45], [rate, rate], "--", color=GO_COLORS[name], alpha=0.7)
            ax.annotate(f"{name} {rate:g}", (j + 0.46, rate), fontsize=7, va="center")
    for j, case in enumerate(cases):
        for i, mode in enumerate(modes):
            if not any((r.mode, r.parallel, r.pods) == (mode, *case) for r in results):
                x = j + (i - (len(modes) - 1) / 2) * width
                ax.text(x, 0.5, "not run", rotation=90, ha="center", va="bottom", fontsize=7)
    _log_ms(ax99)
    names = [f"{n} pods\n{p} at a time" for p, n in cases]
    for a, title, ylabel in (
        (ax, "Throughput: ADD, 2 extra networks per pod", "pods/s (ADD makespan)"),
        (ax99, "Per-pod ADD latency under load, p99 (log scale)", "ms"),
    ):
        a.set_xticks(range(len(cases)), names, fontsize=8)
        a.set_title(title)
        a.set_ylabel(ylabel)
        a.grid(axis="y", alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _log_ms(ax: Any) -> None:
    """A log axis labelled in plain milliseconds: ratios read as distances."""
    from matplotlib.ticker import FuncFormatter  # noqa: PLC0415

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if str(v)[0] in "25" else ""))
