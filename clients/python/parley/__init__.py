"""Parley's Python client package: generated protobuf/gRPC stubs under
`parley.<area>.v1` and a small typed async client in `parley.client`."""
