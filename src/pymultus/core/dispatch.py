"""One entry point per CNI verb for every mode.

Each verb's module is imported when that verb runs: the thin plugin is one process per call,
and a DEL has no use for the ADD path's modules (nor ADD for DEL's)."""

from __future__ import annotations

from pymultus.cni.convert import AnyResult
from pymultus.cni.errors import InvalidEnvironmentError
from pymultus.core.deps import Deps
from pymultus.core.request import Request


def run(req: Request, deps: Deps) -> AnyResult | None:
    """Run the request's verb; ADD returns the cluster network's result."""
    # Each verb imports only its own module (see the module docstring).
    command = req.cmd.command
    if command == "ADD":
        from pymultus.core.add import cmd_add  # noqa: PLC0415

        return cmd_add(req, deps)
    if command == "DEL":
        from pymultus.core.delete import cmd_del  # noqa: PLC0415

        cmd_del(req, deps)
    elif command in ("CHECK", "STATUS", "GC"):
        from pymultus.core import verbs  # noqa: PLC0415

        {"CHECK": verbs.cmd_check, "STATUS": verbs.cmd_status, "GC": verbs.cmd_gc}[command](
            req, deps
        )
    else:
        raise InvalidEnvironmentError(f"unknown CNI_COMMAND {command!r}", field="CNI_COMMAND")
    return None
