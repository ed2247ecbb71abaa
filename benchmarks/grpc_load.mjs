// A unary gRPC load client for calls whose bodies must differ, which h2load
// cannot send: a CreateMessage with a fresh request_id per call.
//
// Node's built-in http2 (nghttp2, as in h2load) and nothing else: per call it
// appends a new UUID as a string field to a pre-serialised request (protobuf
// keeps the last occurrence of a field) and reads the answer's trailers. A
// Python gRPC client needs about as much CPU per call as the bare grpc.aio
// server it drives, so on a shared 2-core machine it measures itself; this
// one leaves the servers most of the CPU, as h2load does (benchmarks/grpc_load.py).
//
//   node benchmarks/grpc_load.mjs '{"url": "http://127.0.0.1:50051",
//     "path": "/parley.conversation.v1.ConversationService/CreateMessage",
//     "token": "...", "bodies": ["<base64>", ...], "requestIdField": 4,
//     "connections": 16, "streams": 4, "count": 20000}'
//
// Stream k (of connections x streams) sends bodies[k % bodies.length] every
// time. "count" calls in all, or with "seconds" instead, as many as fit. A
// call succeeds with grpc-status 0 and a gRPC message in its DATA. Prints one
// JSON line: seconds, succeeded, failed, dataBytes, and each failure kind's
// count and first message.

import http2 from "node:http2";
import { randomUUID } from "node:crypto";

const config = JSON.parse(process.argv[2]);
const bodies = config.bodies.map((b) => Buffer.from(b, "base64"));
const headers = {
  ":method": "POST",
  ":path": config.path,
  "content-type": "application/grpc",
  te: "trailers",
  ...(config.token ? { authorization: `Bearer ${config.token}` } : {}),
};

function varint(value) {
  const bytes = [];
  while (value > 0x7f) {
    bytes.push((value & 0x7f) | 0x80);
    value >>>= 7;
  }
  bytes.push(value);
  return Buffer.from(bytes);
}

const requestIdTag = config.requestIdField ? varint((config.requestIdField << 3) | 2) : null;

// The request as a gRPC length-prefixed message: flag 0, 4-byte length, the bytes.
function frame(body) {
  const id = requestIdTag ? Buffer.from(randomUUID()) : null;
  const message = id ? Buffer.concat([body, requestIdTag, varint(id.length), id]) : body;
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

// One call: "0" and the DATA bytes on success, else what went wrong.
function call(session, body) {
  return new Promise((resolve) => {
    const stream = session.request(headers);
    let status = "no grpc-status";
    let message = "";
    let bytes = 0;
    const statusOf = (fields) => {
      if (fields["grpc-status"] !== undefined) {
        status = String(fields["grpc-status"]);
        message = decodeURIComponent(String(fields["grpc-message"] ?? ""));
      }
    };
    stream.on("response", (fields) => {
      if (fields[":status"] !== 200) status = `HTTP ${fields[":status"]}`;
      else statusOf(fields);
    });
    stream.on("trailers", statusOf);
    stream.on("data", (chunk) => {
      bytes += chunk.length;
    });
    stream.on("close", () => {
      if (status === "0" && bytes < 5) resolve({ status: "no message", message: "", bytes });
      else resolve({ status, message, bytes });
    });
    stream.on("error", (error) => {
      status = "stream error";
      message = error.message;
    });
    stream.end(frame(body));
  });
}

const outcome = { seconds: 0, succeeded: 0, failed: 0, dataBytes: 0, failures: {}, examples: {} };
const sessions = Array.from({ length: config.connections }, () => http2.connect(config.url));
const stopAt = config.seconds ? performance.now() + config.seconds * 1000 : Infinity;
let started = 0;

async function client(k) {
  const session = sessions[k % sessions.length];
  const body = bodies[k % bodies.length];
  while (config.count ? started < config.count : performance.now() < stopAt) {
    started += 1;
    const result = await call(session, body);
    outcome.dataBytes += result.bytes;
    if (result.status === "0") {
      outcome.succeeded += 1;
    } else {
      outcome.failed += 1;
      outcome.failures[result.status] = (outcome.failures[result.status] ?? 0) + 1;
      outcome.examples[result.status] ??= result.message;
    }
  }
}

const began = performance.now();
await Promise.all(Array.from({ length: config.connections * config.streams }, (_, k) => client(k)));
outcome.seconds = (performance.now() - began) / 1000;
for (const session of sessions) session.close();
console.log(JSON.stringify(outcome));
