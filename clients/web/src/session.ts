// What the page remembers between loads.
//
// Tokens live in localStorage so a reload (or a new tab) stays signed in; the
// access token is short-lived and the refresh token rotates on every use.
// The answer being streamed lives in sessionStorage: it belongs to this tab,
// and after a reload the tab resumes it from the stored offset.

const TOKENS_KEY = "parley.tokens";
const STREAM_KEY = "parley.stream";

export interface Tokens {
  accessToken: string;
  refreshToken: string;
  email: string;
}

/** An exchange in flight: enough to re-attach after a reload. */
export interface StreamState {
  conversationId: string;
  /**
   * What started it: a new message (SendMessage, the default), a new version
   * of the answer `target` (RegenerateMessage) or of the question `target`
   * (EditMessage).
   */
  kind?: "send" | "regenerate" | "edit";
  target?: string;
  /** The idempotency key: re-sending it re-attaches, never duplicates. */
  requestId: string;
  /** The user's message, to re-send when the reload came before `accepted`. */
  content: string;
  /** The assistant message id, once accepted; "" before. */
  messageId: string;
  /** Code points of the answer this tab has (= ResumeStream offset). */
  offset: number;
  /** The answer text so far, shown at once after a reload. */
  text: string;
}

function read<T>(storage: Storage, key: string): T | null {
  try {
    const raw = storage.getItem(key);
    return raw ? (JSON.parse(raw) as T) : null;
  } catch {
    return null;
  }
}

export const tokens = {
  get: (): Tokens | null => read<Tokens>(localStorage, TOKENS_KEY),
  set: (value: Tokens): void => localStorage.setItem(TOKENS_KEY, JSON.stringify(value)),
  clear: (): void => localStorage.removeItem(TOKENS_KEY),
};

export const stream = {
  get: (): StreamState | null => read<StreamState>(sessionStorage, STREAM_KEY),
  set: (value: StreamState): void => sessionStorage.setItem(STREAM_KEY, JSON.stringify(value)),
  clear: (): void => sessionStorage.removeItem(STREAM_KEY),
};
