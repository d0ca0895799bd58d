"""The Lambda handlers, one module per function. In Lambda, loading this package pauses the garbage collector until
the container's first invocation has ended (``_tracing``, docs/architecture.md §6): before any handler module loads
boto3, Powertools or our models."""

from macie_chatops.handlers._tracing import pause_collector_for_cold_start

pause_collector_for_cold_start()
