"""The zygote and the per-container supervisor (moor-shim)."""
