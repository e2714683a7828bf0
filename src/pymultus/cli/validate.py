"""``pymultus validate FILE|-``: list every problem of a NAD manifest, a selection annotation,
a Multus config, a daemon config or a CNI config, with its location and a hint.

Exit status: 0 when the input is fine, 1 when it has problems, 2 when it cannot be read.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pymultus.config.validate import DEFAULT_BIN_DIRS, Kind, Report
from pymultus.config.validate import validate as validate_text
from pymultus.k8s.selection import check_gateways, parse_networks_annotation

_NAMESPACE = "default"  # any valid namespace: the check does not depend on it


def check_selection(value: str) -> None:
    """The checks the core runs on ``k8s.v1.cni.cncf.io/networks`` before any delegate."""
    check_gateways(parse_networks_annotation(value, _NAMESPACE))


def _read(file: str) -> bytes:
    try:
        data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as exc:
        Console(stderr=True).print(Text(f"cannot read {file}: {exc.strerror}", style="red"))
        raise typer.Exit(2) from None
    return data


def _print(report: Report, file: str) -> None:
    console = Console()
    name = "stdin" if file == "-" else file
    if report.ok:
        console.print(Text(f"ok: {name} is a valid {report.kind.value}"))
        return
    count = len(report.problems)
    title = Text(f"{name} ({report.kind.value}): {count} problem{'s' * (count != 1)}")
    table = Table(title=title)
    for column in ("location", "problem", "hint"):
        table.add_column(column, overflow="fold")
    for p in report.problems:  # Text: user input is not rich markup
        table.add_row(Text(p.location or "(whole input)"), Text(p.problem), Text(p.hint))
    console.print(table)


def validate(
    file: Annotated[str, typer.Argument(metavar="FILE|-", help="File to check; - reads stdin.")],
    kind: Annotated[
        Kind, typer.Option("--kind", help="What the input is; auto guesses from its content.")
    ] = Kind.AUTO,
    bin_dir: Annotated[
        list[str] | None,
        typer.Option(
            "--bin-dir",
            help=f"Where plugin binaries must exist (repeatable; default: "
            f"{', '.join(DEFAULT_BIN_DIRS)}).",
        ),
    ] = None,
) -> None:
    """Check NAD manifests, a network-selection annotation, or a Multus, daemon or CNI config;
    print every problem with its location and a hint. Exit 1 when there is any."""
    report = validate_text(
        _read(file),
        kind=kind,
        bin_dirs=tuple(bin_dir) if bin_dir else DEFAULT_BIN_DIRS,
        check_selection=check_selection,
    )
    _print(report, file)
    if not report.ok:
        raise typer.Exit(1)
