// The gRPC-web clients of every service the page uses, on one transport.
//
// The page is served by Envoy from the same origin as the API, so the base
// URL is the page's own origin. Binary gRPC-web is the only format that
// streams through connect-web and that the Python server accepts.
//
// Auth: every call but the public ones carries the access token. Which calls
// are public is the `(parley.api.v1.access)` option of each RPC in the protos,
// read here from the generated descriptors.
// A call that fails UNAUTHENTICATED triggers one RefreshToken (shared by all
// calls failing at the same moment: refresh tokens are single-use, and a
// reused one revokes the whole session) and is retried once.

import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { getOption } from "@bufbuild/protobuf";
import { AgentAccessService } from "./gen/parley/agent_access/v1/agent_access_pb";
import { AgentService } from "./gen/parley/agent/v1/agent_pb";
import { Access, access as accessOption } from "./gen/parley/api/v1/access_pb";
import { AuthService } from "./gen/parley/auth/v1/auth_pb";
import { ChatService } from "./gen/parley/chat/v1/chat_pb";
import { ConversationService } from "./gen/parley/conversation/v1/conversation_pb";
import { FeedbackService } from "./gen/parley/feedback/v1/feedback_pb";
import { describeError, isUnauthenticated } from "./errors";
import { tokens } from "./session";

export class Api {
  readonly auth: Client<typeof AuthService>;
  readonly conversations: Client<typeof ConversationService>;
  readonly agents: Client<typeof AgentService>;
  readonly access: Client<typeof AgentAccessService>;
  readonly chat: Client<typeof ChatService>;
  readonly feedback: Client<typeof FeedbackService>;
  /** Called when the session cannot be renewed: the page shows sign-in. */
  onSignedOut: (reason: string) => void = () => {};
  private refreshing: Promise<boolean> | null = null;

  constructor(baseUrl: string = window.location.origin) {
    const bearer: Interceptor = (next) => async (req) => {
      const isPublic = getOption(req.method, accessOption) === Access.PUBLIC;
      const access = tokens.get()?.accessToken;
      if (!isPublic && access && !req.header.has("authorization")) {
        req.header.set("authorization", `Bearer ${access}`);
      }
      return next(req);
    };
    const transport = createGrpcWebTransport({ baseUrl, useBinaryFormat: true, interceptors: [bearer] });
    this.auth = createClient(AuthService, transport);
    this.conversations = createClient(ConversationService, transport);
    this.agents = createClient(AgentService, transport);
    this.access = createClient(AgentAccessService, transport);
    this.chat = createClient(ChatService, transport);
    this.feedback = createClient(FeedbackService, transport);
  }

  /** Run a unary call; on UNAUTHENTICATED refresh the session once and retry. */
  async call<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      if (isUnauthenticated(err) && (await this.refresh())) return await run();
      throw err;
    }
  }

  /** Like call() for server streams: retried only if nothing had arrived yet. */
  async *stream<T>(open: () => AsyncIterable<T>): AsyncGenerator<T> {
    let received = false;
    try {
      for await (const item of open()) {
        received = true;
        yield item;
      }
    } catch (err) {
      if (received || !isUnauthenticated(err) || !(await this.refresh())) throw err;
      yield* open();
    }
  }

  /** Rotate the refresh token; false (and signed out) when it no longer works. */
  refresh(): Promise<boolean> {
    this.refreshing ??= this.doRefresh().finally(() => (this.refreshing = null));
    return this.refreshing;
  }

  private async doRefresh(): Promise<boolean> {
    const current = tokens.get();
    if (!current?.refreshToken) {
      this.signOut("Please sign in.");
      return false;
    }
    try {
      const res = await this.auth.refreshToken({ refreshToken: current.refreshToken });
      if (!res.tokens) throw new Error("no tokens");
      tokens.set({ ...current, accessToken: res.tokens.accessToken, refreshToken: res.tokens.refreshToken });
      return true;
    } catch (err) {
      // Only a network failure leaves the refresh token worth keeping.
      if (err instanceof ConnectError && (err.code === Code.Unavailable || err.code === Code.DeadlineExceeded)) throw err;
      this.signOut(describeError(err));
      return false;
    }
  }

  signOut(reason: string): void {
    tokens.clear();
    this.onSignedOut(reason);
  }
}
