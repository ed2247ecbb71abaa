"""Portability between protobuf and the domain: chunks of bytes, and the import report."""

from __future__ import annotations

from collections.abc import AsyncIterator

from parley.portability.v1 import portability_pb2 as pb
from parley_server.portability.importer import LineResult, Outcome
from parley_server.portability.service import ImportReport

# Bytes per export chunk: well under the 4 MiB default gRPC message limit.
CHUNK_BYTES = 1024 * 1024

OUTCOME_TO_PROTO = {
    Outcome.CREATED: pb.IMPORT_OUTCOME_CREATED,
    Outcome.SKIPPED: pb.IMPORT_OUTCOME_SKIPPED,
    Outcome.FAILED: pb.IMPORT_OUTCOME_FAILED,
    Outcome.IGNORED: pb.IMPORT_OUTCOME_IGNORED,
}


async def export_chunks(lines: AsyncIterator[bytes]) -> AsyncIterator[pb.ExportChunk]:
    """The lines as chunks of at most CHUNK_BYTES: small lines share one, a large one is cut."""
    pending = bytearray()
    async for line in lines:
        pending += line
        while len(pending) >= CHUNK_BYTES:
            yield pb.ExportChunk(data=bytes(pending[:CHUNK_BYTES]))
            del pending[:CHUNK_BYTES]
    if pending:
        yield pb.ExportChunk(data=bytes(pending))


async def import_data(requests: AsyncIterator[pb.ImportConversationsRequest]) -> AsyncIterator[bytes]:
    async for request in requests:
        yield request.data


def result_to_proto(result: LineResult) -> pb.ImportResult:
    return pb.ImportResult(
        line=result.line,
        source_conversation_id=result.source_conversation_id,
        conversation_id=str(result.conversation_id or ""),
        outcome=OUTCOME_TO_PROTO[result.outcome],
        error=result.error,
    )


def report_to_proto(report: ImportReport) -> pb.ImportConversationsResponse:
    return pb.ImportConversationsResponse(
        results=[result_to_proto(result) for result in report.results],
        created_count=report.count(Outcome.CREATED),
        skipped_count=report.count(Outcome.SKIPPED),
        failed_count=report.count(Outcome.FAILED),
    )
