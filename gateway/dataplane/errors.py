"""An exception in the gateway's own code, caught where it happened: counted in gateway_internal_errors_total
{where} and logged with its traceback (call from inside the `except` block)."""

from __future__ import annotations

import logging

from gateway.shared import metrics


def count_internal_error(logger: logging.Logger, event: str, where: str, **fields: object) -> None:
    metrics.INTERNAL_ERRORS.labels(where).inc()
    logger.exception(event, extra={"fields": {"where": where, **fields}})
