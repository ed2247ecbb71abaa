"""What the gRPC handlers of every area share."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

# The context grpc.aio passes to each servicer method. Handlers take it only
# because the generated servicer's signature has it (the interceptors read the
# metadata), so its request and response types are left open.
Ctx: TypeAlias = grpc.aio.ServicerContext[Any, Any]
