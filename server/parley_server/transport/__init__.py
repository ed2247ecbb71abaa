"""The gRPC server and its interceptor chain: decoding, errors, logging and access, before any handler runs."""
