// Turn gRPC errors into sentences a person can act on. The server sends a
// status code plus google.rpc details (ErrorInfo.reason, BadRequest field
// violations, RetryInfo) in grpc-status-details-bin; connect-web hands those
// over as raw bytes, decoded here with the protobuf wire reader (the three
// messages are tiny, so no generated code is needed for them).

import { Code, ConnectError } from "@connectrpc/connect";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";

export interface ErrorFacts {
  code: Code;
  reason: string;
  violations: { field: string; description: string }[];
  retrySeconds: number | null;
}

function each(bytes: Uint8Array, visit: (field: number, reader: BinaryReader, wire: WireType) => boolean): void {
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [field, wire] = reader.tag();
    if (!visit(field, reader, wire)) reader.skip(wire);
  }
}

export function errorFacts(err: unknown): ErrorFacts {
  const cerr = ConnectError.from(err);
  const facts: ErrorFacts = { code: cerr.code, reason: "", violations: [], retrySeconds: null };
  for (const detail of cerr.details) {
    if (!("type" in detail) || !(detail.value instanceof Uint8Array)) continue;
    try {
      if (detail.type === "google.rpc.ErrorInfo") {
        each(detail.value, (f, r, w) => f === 1 && w === WireType.LengthDelimited && ((facts.reason = r.string()), true));
      } else if (detail.type === "google.rpc.BadRequest") {
        each(detail.value, (f, r, w) => {
          if (f !== 1 || w !== WireType.LengthDelimited) return false;
          const violation = { field: "", description: "" };
          each(r.bytes(), (vf, vr, vw) => {
            if (vw !== WireType.LengthDelimited || (vf !== 1 && vf !== 2)) return false;
            violation[vf === 1 ? "field" : "description"] = vr.string();
            return true;
          });
          facts.violations.push(violation);
          return true;
        });
      } else if (detail.type === "google.rpc.RetryInfo") {
        each(detail.value, (f, r, w) => {
          if (f !== 1 || w !== WireType.LengthDelimited) return false;
          each(r.bytes(), (df, dr, dw) => df === 1 && dw === WireType.Varint && ((facts.retrySeconds = Number(dr.int64())), true));
          return true;
        });
      }
    } catch {
      // A detail we cannot decode only costs us precision, not the message.
    }
  }
  return facts;
}

const SESSION_ENDED = "Your session has ended. Please sign in again.";

const REASONS: Record<string, string> = {
  INVALID_CREDENTIALS: "That email and password don't match an account.",
  WRONG_PASSWORD: "That password is not correct.",
  EMAIL_TAKEN: "An account with this email already exists. Try signing in instead.",
  EMAIL_NOT_VERIFIED: "Please verify your email address first.",
  ALREADY_VERIFIED: "This email address is already verified. You can sign in.",
  ACCOUNT_WAITLISTED: "Your account is on the waitlist. We will email you when it is approved.",
  ACCOUNT_DISABLED: "This account has been disabled.",
  TOKEN_MISSING: SESSION_ENDED,
  SESSION_REVOKED: SESSION_ENDED,
  SESSION_NOT_FOUND: SESSION_ENDED,
  REFRESH_TOKEN_INVALID: SESSION_ENDED,
  REFRESH_TOKEN_REUSED: "For your safety this session was signed out. Please sign in again.",
  TOKEN_USED: "This link has already been used.",
  ADMIN_REQUIRED: "Only administrators can do that.",
  CONVERSATION_NOT_FOUND: "This conversation no longer exists.",
  MESSAGE_NOT_FOUND: "This message no longer exists.",
  PREMIUM_REQUIRED: "This agent is available to premium accounts only.",
  NOT_GRANTED: "You don't have access to this agent.",
  AGENT_DISABLED: "This agent is currently switched off.",
  QUOTA_EXCEEDED: "You have reached today's message limit for this agent.",
};

const CODES: Partial<Record<Code, string>> = {
  [Code.Canceled]: "The request was cancelled.",
  [Code.InvalidArgument]: "Please check what you entered.",
  [Code.DeadlineExceeded]: "The server took too long to answer. Please try again.",
  [Code.NotFound]: "That item doesn't exist anymore.",
  [Code.AlreadyExists]: "That already exists.",
  [Code.PermissionDenied]: "You are not allowed to do that.",
  [Code.ResourceExhausted]: "Too many attempts. Please wait a moment and try again.",
  [Code.FailedPrecondition]: "That can't be done right now.",
  [Code.Aborted]: "Someone else changed this at the same time. Please try again.",
  [Code.OutOfRange]: "That is out of range.",
  [Code.Unimplemented]: "This server does not offer that feature yet.",
  [Code.Unavailable]: "Parley can't be reached right now. Check your connection and try again.",
  [Code.Unauthenticated]: SESSION_ENDED,
};

function waitText(seconds: number): string {
  if (seconds < 90) return `${Math.max(1, Math.round(seconds))} seconds`;
  return `${Math.round(seconds / 60)} minutes`;
}

function sentence(text: string): string {
  const t = text.trim();
  if (!t) return t;
  const capital = t[0].toUpperCase() + t.slice(1);
  return /[.!?]$/.test(capital) ? capital : capital + ".";
}

/** One or two sentences for any error: never a raw code or a stack trace. */
export function describeError(err: unknown): string {
  if (!(err instanceof ConnectError) && err instanceof Error && err.name === "AbortError") {
    return "The request was cancelled.";
  }
  const facts = errorFacts(err);
  if (facts.code === Code.ResourceExhausted && facts.retrySeconds !== null) {
    const limit = REASONS[facts.reason] ?? "Too many attempts.";
    return `${limit.replace(/ Please.*$/, "")} Please try again in ${waitText(facts.retrySeconds)}.`;
  }
  // The same reasons name access tokens (UNAUTHENTICATED) and emailed tokens.
  if (facts.reason === "TOKEN_INVALID" || facts.reason === "TOKEN_EXPIRED") {
    return facts.code === Code.Unauthenticated ? SESSION_ENDED : "This link or token is not valid, or it has expired.";
  }
  const known = REASONS[facts.reason];
  if (known) return known;
  if (facts.code === Code.InvalidArgument && facts.violations.length > 0) {
    return facts.violations.map((v) => sentence(v.description || `${v.field} is not valid`)).join(" ");
  }
  if (facts.code === Code.Unknown || facts.code === Code.Internal || facts.code === Code.DataLoss) {
    return "Something went wrong on our side. Please try again.";
  }
  return CODES[facts.code] ?? "Something went wrong. Please try again.";
}

export function isUnauthenticated(err: unknown): boolean {
  return err instanceof ConnectError && err.code === Code.Unauthenticated;
}
