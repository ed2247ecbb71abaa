"""What the benchmarks in scripts/ compare Parley with, and the parts they share.

The comparison servers (bare grpc.aio, a FastAPI peer) run as processes of
their own, like `parley serve`, so every target pays for its own event loop
and none shares the benchmark client's CPU accounting.
"""
