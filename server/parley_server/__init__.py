"""Parley's gRPC server: handlers (rpc/), domain services (domain/), database
models and migrations (db/) and interceptors (interceptors/)."""

__version__ = "0.1.0"
