"""One entry point per CNI verb for every mode."""

from __future__ import annotations

from pymultus.cni.convert import AnyResult
from pymultus.cni.errors import InvalidEnvironmentError
from pymultus.core.add import cmd_add
from pymultus.core.delete import cmd_del
from pymultus.core.deps import Deps
from pymultus.core.request import Request
from pymultus.core.verbs import cmd_check, cmd_gc, cmd_status


def run(req: Request, deps: Deps) -> AnyResult | None:
    """Run the request's verb; ADD returns the cluster network's result."""
    command = req.cmd.command
    if command == "ADD":
        return cmd_add(req, deps)
    if command == "DEL":
        cmd_del(req, deps)
    elif command == "CHECK":
        cmd_check(req, deps)
    elif command == "STATUS":
        cmd_status(req, deps)
    elif command == "GC":
        cmd_gc(req, deps)
    else:
        raise InvalidEnvironmentError(f"unknown CNI_COMMAND {command!r}", field="CNI_COMMAND")
    return None
