"""ResourceClaims and ResourceSlices straight from the API server: the thin plugin's
``DraApi`` (``k8s.dra``), and the daemon's for claims.

Requests per map build, as Go Multus's ``draclient``: one GET per distinct claim, one LIST
per distinct driver with the field selector ``spec.nodeName=<node>,spec.driver=<driver>``
(only ``spec.driver`` when the pod has no node). A device found in none of the node's slices
costs one more LIST, of the driver's slices tied to no node (``spec.nodeName=``:
``nodeSelector``/``allNodes`` pools); Go never looks there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pymultus.k8s.client import API_ERRORS, KubeApi, http_status, map_api_error
from pymultus.k8s.dra import ERROR_PREFIX, IndexedSlice, SliceQueries
from pymultus.k8s.resources import RawResourceClaim, RawResourceSlice


@dataclass
class ApiClaims:
    """One GET of a ResourceClaim per call."""

    api: KubeApi

    def get_claim(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        try:
            return dict(self.api.client.get(RawResourceClaim, name, namespace=namespace))
        except API_ERRORS as e:
            if http_status(e) == 404:
                return None
            action = f"{ERROR_PREFIX}: get resourceclaim {namespace}/{name}"
            raise map_api_error(e, server=self.api.server, action=action) from e


@dataclass
class ApiDra(ApiClaims, SliceQueries):
    """Claims and slices, each read from the API when asked."""

    def list_slices(self, driver: str, fields: dict[str, Any]) -> list[IndexedSlice]:
        """One LIST of ResourceSlices with the field selector ``fields``."""
        try:
            found = self.api.client.list(RawResourceSlice, fields=fields)
            return [IndexedSlice.from_dict(obj) for obj in found]
        except API_ERRORS as e:
            action = f"{ERROR_PREFIX}: list resourceslices of driver {driver}"
            raise map_api_error(e, server=self.api.server, action=action) from e
