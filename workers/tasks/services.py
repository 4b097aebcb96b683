"""SDK v1 service operations: each waits for the Weir operations it started, then gives its
versions their traffic (controlplane.v1.webservices.advance)."""

from __future__ import annotations

import logging

from controlplane.v1 import webservices
from workers.decorators import provisioning_task

log = logging.getLogger(__name__)


@provisioning_task("weir.advance_service_operation")
def advance_service_operation(self, *, operation_id: str) -> None:
    """One step; sends itself again while there is more to do. A run that is lost leaves
    the operation to the reconciler (reconcile_service_operations)."""
    delay = webservices.advance(operation_id)
    if delay is not None:
        webservices.advance_later(operation_id, delay)
