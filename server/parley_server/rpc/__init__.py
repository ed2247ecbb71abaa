"""gRPC handlers: translate protobuf to domain calls and back, nothing more."""
