"""The lean path's two exceptions: a CNI error to answer with, or "not mine: full path"."""

from __future__ import annotations


class Unhandled(Exception):
    """The lean path does not do this input; nothing has been changed yet."""


class LeanError(Exception):
    """A CNI error the lean path answers itself (after a side effect, where the full path
    cannot take over): the same code, message and details the full path would give."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details

    def __str__(self) -> str:
        return f"{self.msg}; {self.details}" if self.details else self.msg

    def prefixed(self, prefix: str) -> LeanError:
        """``cni.errors.prefixed``: context in front of the message, code and details kept."""
        again = LeanError(self.code, prefix + self.msg, self.details)
        again.__cause__ = self
        return again

    def wire(self, cni_version: str = "") -> dict[str, object]:
        """``CniError.to_wire``: libcni's key order, empty fields omitted."""
        out: dict[str, object] = {}
        if cni_version:
            out["cniVersion"] = cni_version
        out["code"] = self.code
        out["msg"] = self.msg
        if self.details:
            out["details"] = self.details
        return out
