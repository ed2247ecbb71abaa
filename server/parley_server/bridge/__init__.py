"""What serves browsers and processes around the gRPC server: Envoy's grpc-web bridge,
the page server, worker processes."""
