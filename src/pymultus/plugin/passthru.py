#!/usr/bin/env python3
"""``passthru``: the CNI plugin that heads Multus's auxiliary chain (row 47). It does nothing.

The chain (``auxiliaryCNIChainName``) is a conflist whose first plugin is ``passthru`` and whose
other plugins (tuning, sysctl tweaks, a vendor's hook) must be chained: they expect a
``prevResult``. ``passthru`` provides it: ADD prints the ``prevResult`` it was given, or an empty
result; DEL, CHECK, STATUS and GC succeed without doing anything.

Go Multus ships a ``passthru`` binary; Debian has none, so this is ours. Standard library only
and Python >= 3.8, so the file can also be copied into a CNI bin dir and run by the host's
``python3`` (like the shim).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

SUPPORTED = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
ABOUT = "passthru (pymultus): CNI plugin that passes the previous result through"

# CNI error codes (spec section "Error"); the plugin needs only these.
INCOMPATIBLE_VERSION = 1
INVALID_ENVIRONMENT = 4
DECODE_FAILURE = 6


class PluginError(Exception):
    def __init__(self, code: int, msg: str, version: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.version = version


def load_config(stdin: bytes) -> dict[str, Any]:
    try:
        conf = json.loads(stdin.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PluginError(DECODE_FAILURE, f"passthru: cannot parse the config: {exc}") from exc
    if not isinstance(conf, dict):
        raise PluginError(DECODE_FAILURE, "passthru: the config must be a JSON object")
    return conf


def add(conf: dict[str, Any]) -> dict[str, Any]:
    """The previous result (in the config's version, as the spec passes it), else an empty
    result, as Go's passthru prints it."""
    version = conf.get("cniVersion") or ""
    if not isinstance(version, str) or version not in SUPPORTED:
        raise PluginError(
            INCOMPATIBLE_VERSION,
            f"passthru: unsupported CNI version {version!r}",
            version if isinstance(version, str) else "",
        )
    prev = conf.get("prevResult")
    if isinstance(prev, dict):
        return dict(prev, cniVersion=version)
    return {"cniVersion": version, "dns": {}}


def handle(command: str, stdin: bytes) -> dict[str, Any] | None:
    """What to print for one call (None: nothing)."""
    if command == "VERSION":
        return {"cniVersion": SUPPORTED[-1], "supportedVersions": SUPPORTED}
    if command == "ADD":
        return add(load_config(stdin))
    if command in ("DEL", "CHECK", "STATUS", "GC"):
        return None
    raise PluginError(INVALID_ENVIRONMENT, f"passthru: unknown CNI_COMMAND {command!r}")


def main() -> None:
    command = os.environ.get("CNI_COMMAND", "")
    if not command:
        print(f"{ABOUT}\nCNI protocol versions supported: {', '.join(SUPPORTED)}")
        return
    stdin = sys.stdin.buffer.read()
    try:
        out = handle(command, stdin)
    except PluginError as err:
        error: dict[str, Any] = {"code": err.code, "msg": err.msg}
        if err.version:
            error = {"cniVersion": err.version, **error}
        sys.stdout.write(json.dumps(error) + "\n")
        sys.exit(1)
    if out is not None:
        sys.stdout.write(json.dumps(out, indent=4) + "\n")


if __name__ == "__main__":
    main()
