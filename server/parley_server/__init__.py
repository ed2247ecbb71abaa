"""Parley's gRPC server, one package per area (accounts, agents, conversations,
chat, admin: each with its handlers, conversions and domain services), over
transport/ (server, interceptors), events/, common/ and db/; bridge/ serves
browsers through Envoy. pyproject.toml's import-linter contracts hold the layering."""

__version__ = "0.1.0"
