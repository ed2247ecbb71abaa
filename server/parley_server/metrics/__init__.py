"""Prometheus metrics: what Parley counts (definitions), per-RPC and per-generation
bookkeeping, and the /metrics endpoint shared by `--workers` processes (endpoint)."""
