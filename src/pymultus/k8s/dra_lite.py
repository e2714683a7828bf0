"""ResourceClaims and ResourceSlices for the thin plugin, over its standard-library client
(``k8s.lite``): the same requests as ``k8s.dra_api`` (one GET per claim, one LIST per driver),
without importing lightkube. Only a pod with claims and a NAD with a resourceName asks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pymultus.k8s.dra import ERROR_PREFIX, IndexedSlice, SliceQueries
from pymultus.k8s.lite import LiteApi, LiteError, quote

_GROUP = "/apis/resource.k8s.io/v1"


@dataclass
class LiteDra(SliceQueries):
    api: LiteApi

    def get_claim(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        path = f"{_GROUP}/namespaces/{quote(namespace)}/resourceclaims/{quote(name)}"
        try:
            return self.api.get(path)
        except LiteError as e:
            if e.status == 404:
                return None
            action = f"{ERROR_PREFIX}: get resourceclaim {namespace}/{name}"
            raise self.api.mapped(e, action) from e

    def list_slices(self, driver: str, fields: dict[str, Any]) -> list[IndexedSlice]:
        selector = ",".join(f"{key}={value}" for key, value in fields.items())
        try:
            found = self.api.get(f"{_GROUP}/resourceslices?fieldSelector={quote(selector)}")
        except LiteError as e:
            action = f"{ERROR_PREFIX}: list resourceslices of driver {driver}"
            raise self.api.mapped(e, action) from e
        return [IndexedSlice.from_dict(obj) for obj in found.get("items") or []]
