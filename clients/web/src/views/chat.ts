// One conversation: its messages, the composer, the live answer and Stop.
//
// An answer streams from SendMessage (or, after a reload or a dropped
// connection, from ResumeStream). Every delta carries its offset in code
// points; the page keeps the text and offset in sessionStorage, so a reload
// shows what it had at once and resumes from exactly there. Closing the
// stream is only a disconnect: the server keeps generating. Stop is
// CancelGeneration. Regenerate and Edit stream the same way; they store a
// new version beside the old one, and the `‹ 2/3 ›` switcher moves between
// versions (views/versions.ts).

import { Code, ConnectError } from "@connectrpc/connect";
import type { Conversation, Message } from "../gen/parley/conversation/v1/conversation_pb";
import { MessageRole, MessageState } from "../gen/parley/conversation/v1/conversation_pb";
import type {
  EditMessageResponse,
  RegenerateMessageResponse,
  ResumeStreamResponse,
  SendMessageResponse,
} from "../gen/parley/chat/v1/chat_pb";
import type { Api } from "../api";
import { h, replace, showError } from "../dom";
import { describeError, errorFacts } from "../errors";
import { stream, type StreamState } from "../session";
import { Rating } from "../gen/parley/feedback/v1/feedback_pb";
import { renderMarkdown } from "../markdown";
import { codePoints, mergeDelta, uuid } from "../text";
import { ratingControls } from "./rating";
import { actionButton, branchSwitcher, editForm } from "./versions";

const MESSAGE_PAGE = 200;
const MAX_MESSAGE_PAGES = 10;
// Re-attach attempts without progress: with their waits, about 10 s, which
// covers a PostgreSQL restart on the server's side.
const RESUME_ATTEMPTS = 5;

type ChatEvent =
  | SendMessageResponse["event"]
  | RegenerateMessageResponse["event"]
  | EditMessageResponse["event"]
  | ResumeStreamResponse["event"];

export interface ChatCallbacks {
  /** The conversation changed (new exchange, title): refresh the list entry. */
  changed(conversation: Conversation): void;
  agentName(agentId: string): string;
}

interface Bubble {
  root: HTMLLIElement;
  text: HTMLDivElement;
  status: HTMLParagraphElement;
  /** Versions, Regenerate or Edit, and the thumbs; filled once the message is stored. */
  actions: HTMLDivElement;
  role: "user" | "assistant";
  /** The stored message, once known. */
  message?: Message;
  rating?: HTMLElement; // the thumbs, kept across re-renders of the actions
}

/** A user's words as typed; an assistant's rendered as Markdown (see markdown.ts). */
function showText(bubble: Bubble, text: string): void {
  if (bubble.role === "assistant") renderMarkdown(bubble.text, text);
  else bubble.text.textContent = text;
}

/** A stream ended before its terminal event, or skipped text: resume it. */
class StreamBroken extends Error {}

export class ChatView {
  readonly root: HTMLElement;
  private readonly title = h("h2", { id: "conversation-title" });
  private readonly agentLabel = h("p", { class: "agent-label" });
  private readonly messages = h("ol", { class: "messages", id: "messages", "aria-live": "polite" });
  private readonly scroller = h("div", { class: "scroller" }, this.messages);
  private readonly error = h("p", { class: "error", role: "alert", hidden: true });
  private readonly input = h("textarea", {
    id: "composer-input",
    name: "content",
    rows: "2",
    placeholder: "Write a message…",
    "aria-label": "Message",
  });
  private readonly sendButton = h("button", { type: "submit", class: "primary", id: "send-button" }, "Send");
  private readonly stopButton = h("button", { type: "button", class: "danger", id: "stop-button", hidden: true }, "Stop");
  private readonly composer: HTMLFormElement;
  private readonly bubbles = new Map<string, Bubble>();
  // The open conversation's ratings, by message id (ListConversationFeedback).
  private ratings = new Map<string, Rating>();
  private conversation: Conversation | null = null;
  private active: StreamState | null = null;
  private abort: AbortController | null = null;

  constructor(
    private readonly api: Api,
    private readonly callbacks: ChatCallbacks,
  ) {
    this.composer = h("form", { class: "composer", id: "composer" }, this.input, this.sendButton, this.stopButton);
    this.composer.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.send();
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        void this.send();
      }
    });
    this.stopButton.addEventListener("click", () => void this.stop());
    this.root = h(
      "section",
      { class: "chat", id: "chat", "aria-labelledby": "conversation-title" },
      h("header", { class: "chat-header" }, this.title, this.agentLabel),
      this.scroller,
      this.error,
      this.composer,
    );
    this.showEmpty();
  }

  showEmpty(): void {
    this.detach();
    this.conversation = null;
    this.title.textContent = "No conversation open";
    this.agentLabel.textContent = "Pick one from the list, or start a new chat.";
    replace(this.messages);
    this.composer.hidden = true;
  }

  /** Open a conversation; with `resume`, continue the answer this tab was streaming. */
  async open(conversation: Conversation, resume: StreamState | null = null): Promise<void> {
    this.detach();
    if (!resume) stream.clear();
    this.conversation = conversation;
    this.renderHeader(conversation);
    // No sending until the history is on screen: rendering it replaces the list.
    this.composer.hidden = true;
    showError(this.error, "");
    replace(this.messages, h("li", { class: "loading" }, "Loading messages…"));
    let listed: Message[];
    try {
      listed = await this.loadPath(conversation.id);
    } catch (err) {
      replace(this.messages);
      showError(this.error, describeError(err));
      return;
    }
    if (this.conversation?.id !== conversation.id) return; // another one was opened meanwhile
    this.composer.hidden = false;
    this.renderPath(listed, resume);
    this.scrollToEnd(true);
    if (resume) {
      const finished = listed.find((m) => m.id === resume.messageId && m.state !== MessageState.STREAMING);
      if (finished) stream.clear();
      else void this.follow(resume);
      return;
    }
    // Opened while an answer is still being written (another tab, a crash of
    // this one): follow it from what the server has stored.
    const last = listed[listed.length - 1];
    if (last && last.role === MessageRole.ASSISTANT && last.state === MessageState.STREAMING) {
      this.bubbles.get(last.id)?.root.remove();
      const state: StreamState = {
        conversationId: conversation.id,
        requestId: "",
        content: "",
        messageId: last.id,
        offset: codePoints(last.content),
        text: last.content,
      };
      void this.follow(state);
    } else {
      this.input.focus();
    }
  }

  /** Stop listening (switching conversation, signing out); generation goes on. */
  detach(): void {
    this.abort?.abort();
    this.abort = null;
    this.active = null;
    this.setStreaming(false);
  }

  /** The active path's messages, and the conversation's ratings (into this.ratings). */
  private async loadPath(conversationId: string): Promise<Message[]> {
    const [messages, rated] = await Promise.all([
      this.listMessages(conversationId, false),
      this.api.call(() => this.api.feedback.listConversationFeedback({ conversationId })),
    ]);
    this.ratings = new Map(rated.feedback.map((f) => [f.messageId, f.rating]));
    return messages;
  }

  /** Show these messages in place of what is on screen. */
  private renderPath(listed: Message[], resume: StreamState | null = null): void {
    replace(this.messages);
    this.bubbles.clear();
    for (const message of listed) {
      if (resume && message.id === resume.messageId && message.state === MessageState.STREAMING) continue;
      this.renderMessage(message);
    }
  }

  /** Reload the active path (after a new version or a switch), keeping the scroll position. */
  private async reloadPath(): Promise<void> {
    const current = this.conversation;
    if (!current) return;
    const listed = await this.loadPath(current.id);
    if (this.conversation?.id !== current.id || this.active) return;
    const top = this.scroller.scrollTop;
    this.renderPath(listed);
    this.scroller.scrollTop = top;
  }

  private async listMessages(conversationId: string, allBranches: boolean): Promise<Message[]> {
    const all: Message[] = [];
    let pageToken = "";
    for (let page = 0; page < MAX_MESSAGE_PAGES; page++) {
      const token = pageToken;
      const res = await this.api.call(() =>
        this.api.conversations.listMessages({ conversationId, pageSize: MESSAGE_PAGE, pageToken: token, allBranches }),
      );
      all.push(...res.messages);
      pageToken = res.nextPageToken;
      if (!pageToken) break;
    }
    return all;
  }

  private async send(): Promise<void> {
    const content = this.input.value.trim();
    if (!content || !this.conversation || this.active) return;
    this.input.value = "";
    await this.start({ kind: "send", content });
  }

  /** A new answer to the question `answer` answers, beside `answer`. */
  private async regenerate(answer: Message): Promise<void> {
    if (this.active) return;
    await this.start({ kind: "regenerate", target: answer.id, content: "" });
  }

  /** A new version of the question `question`, and its answer. */
  private async edit(question: Message, content: string): Promise<void> {
    if (this.active) return;
    await this.start({ kind: "edit", target: question.id, content });
  }

  private async start(exchange: Pick<StreamState, "kind" | "target" | "content">): Promise<void> {
    if (!this.conversation) return;
    const state: StreamState = {
      conversationId: this.conversation.id,
      ...exchange,
      requestId: uuid(),
      messageId: "",
      offset: 0,
      text: "",
    };
    stream.set(state);
    showError(this.error, "");
    await this.follow(state);
  }

  /** Show another version of `message` (step -1: older, 1: newer), as the server's active branch. */
  private async switchVersion(message: Message, step: -1 | 1): Promise<void> {
    const conversation = this.conversation;
    if (!conversation || this.active) return;
    try {
      const tree = await this.listMessages(conversation.id, true);
      const versions = tree.filter((m) => m.parentId === message.parentId);
      const target = versions[message.siblingIndex + step];
      if (!target) return;
      await this.api.call(() => this.api.conversations.switchBranch({ messageId: target.id }));
      await this.reloadPath();
      showError(this.error, "");
    } catch (err) {
      showError(this.error, describeError(err));
    }
  }

  /**
   * Stream an exchange to its end: SendMessage until accepted (re-sent with
   * the same request_id after a reload or an UNAVAILABLE, which re-attaches),
   * then ResumeStream from the offset whenever the connection drops.
   */
  private async follow(state: StreamState): Promise<void> {
    this.active = state;
    const abort = new AbortController();
    this.abort = abort;
    this.setStreaming(true);
    if (state.target && !state.messageId) this.dropFrom(state.target);
    if (!state.messageId) this.pendingBubbles(state);
    else this.assistantBubble(state.messageId, state.text, true);
    this.scrollToEnd(true);
    let failures = 0;
    try {
      while (!abort.signal.aborted) {
        try {
          for await (const res of this.exchange(state, abort.signal)) {
            failures = 0;
            if (this.apply(state, res.event)) return;
          }
          throw new StreamBroken("the stream ended before the answer did");
        } catch (err) {
          if (abort.signal.aborted) return;
          failures++;
          // Before `accepted` SendMessage is sent again with the same request_id,
          // which re-attaches to the exchange if the first attempt got through.
          if (!retriable(err) || failures > RESUME_ATTEMPTS) throw err;
          // RetryInfo (the server's database is restarting) says how long to wait at least.
          await sleep(Math.max(500 * failures, 1000 * (errorFacts(err).retrySeconds ?? 0)));
        }
      }
    } catch (err) {
      if (!state.messageId) this.dropPending(state);
      if (state.target) void this.reloadPath().catch(() => {}); // what was cut off for the new version
      else this.markBubble(state.messageId, "The connection was lost. Reload the page to see the rest of this answer.");
      showError(this.error, describeError(err));
      stream.clear();
    } finally {
      if (this.abort === abort) {
        this.abort = null;
        this.active = null;
        this.setStreaming(false);
      }
    }
  }

  /**
   * The exchange's events: ResumeStream once the answer exists, else the call
   * that starts it (sent again after a reload or an UNAVAILABLE: its
   * request_id re-attaches to the first attempt if that got through).
   */
  private exchange(state: StreamState, signal: AbortSignal): AsyncIterable<{ event: ChatEvent }> {
    const chat = this.api.chat;
    const { requestId, content } = state;
    if (state.messageId) {
      return this.api.stream(() => chat.resumeStream({ messageId: state.messageId, offset: BigInt(state.offset) }, { signal }));
    }
    const messageId = state.target ?? "";
    switch (state.kind) {
      case "regenerate":
        return this.api.stream(() => chat.regenerateMessage({ messageId, requestId }, { signal }));
      case "edit":
        return this.api.stream(() => chat.editMessage({ messageId, content, requestId }, { signal }));
      default:
        return this.api.stream(() => chat.sendMessage({ conversationId: state.conversationId, content, requestId }, { signal }));
    }
  }

  /** Apply one event; true when it was the terminal one. */
  private apply(state: StreamState, event: ChatEvent): boolean {
    switch (event.case) {
      case "accepted": {
        const user = event.value.userMessage;
        const pendingUser = this.bubbles.get("pending-user");
        this.bubbles.delete("pending-user");
        if (user && this.bubbles.has(user.id)) pendingUser?.root.remove();
        else if (user && pendingUser) this.rekey(pendingUser, user.id);
        if (user) this.setMessage(user);
        state.messageId = event.value.assistantMessageId;
        const pending = this.bubbles.get("pending-assistant");
        this.bubbles.delete("pending-assistant");
        if (pending) this.rekey(pending, state.messageId);
        stream.set(state);
        this.stopButton.disabled = false;
        return false;
      }
      case "delta": {
        const merged = mergeDelta(state.text, state.offset, event.value.text, Number(event.value.offset));
        if (merged === null) throw new StreamBroken("a piece of the answer was skipped");
        if (merged !== state.text) {
          state.offset += codePoints(merged) - codePoints(state.text);
          state.text = merged;
          stream.set(state);
          this.updateBubble(state.messageId, merged);
        }
        return false;
      }
      case "usage":
        return false;
      case "completed":
      case "cancelled":
      case "failed": {
        const message = event.value.message;
        stream.clear();
        if (message) this.finish(message);
        this.refreshConversation();
        // A new version: show the switchers with the new counts.
        if (state.target) void this.reloadPath().catch(() => {});
        return true;
      }
      default:
        return false;
    }
  }

  private async stop(): Promise<void> {
    const state = this.active;
    if (!state?.messageId) return;
    this.stopButton.disabled = true;
    try {
      const res = await this.api.call(() => this.api.chat.cancelGeneration({ messageId: state.messageId }));
      // The stream delivers `cancelled` too; this covers a stream that already dropped.
      if (res.message && this.active !== state) this.finish(res.message);
    } catch (err) {
      this.stopButton.disabled = false;
      showError(this.error, describeError(err));
    }
  }

  private refreshConversation(): void {
    const current = this.conversation;
    if (!current) return;
    void this.api
      .call(() => this.api.conversations.getConversation({ conversationId: current.id }))
      .then((res) => {
        if (!res.conversation || this.conversation?.id !== current.id) return;
        this.conversation = res.conversation;
        this.renderHeader(res.conversation);
        this.callbacks.changed(res.conversation);
      })
      .catch(() => {}); // only the title is at stake
  }

  private renderHeader(conversation: Conversation): void {
    this.title.textContent = conversation.title || "New conversation";
    this.agentLabel.textContent = `with ${this.callbacks.agentName(conversation.agentId)}`;
  }

  private setStreaming(on: boolean): void {
    this.sendButton.hidden = on;
    this.stopButton.hidden = !on;
    this.stopButton.disabled = !this.active?.messageId;
    this.root.toggleAttribute("data-streaming", on);
  }

  // --- bubbles ---------------------------------------------------------------

  private renderMessage(message: Message): void {
    const bubble = this.bubble(message.id, message.role === MessageRole.USER ? "user" : "assistant", message.content);
    this.messages.append(bubble.root);
    this.describeState(bubble, message);
  }

  /** Remember a stored message on its bubble and offer what can be done with it. */
  private setMessage(message: Message): void {
    const bubble = this.bubbles.get(message.id);
    if (!bubble) return;
    // Responses other than ListMessages carry no sibling counts: keep the listed ones.
    const known = bubble.message;
    bubble.message =
      known && message.siblingCount === 0
        ? { ...message, siblingCount: known.siblingCount, siblingIndex: known.siblingIndex }
        : message;
    this.renderActions(bubble);
  }

  private renderActions(bubble: Bubble): void {
    const message = bubble.message;
    if (!message || message.state === MessageState.STREAMING) {
      replace(bubble.actions);
      return;
    }
    const versions = branchSwitcher(message, (step) => void this.switchVersion(message, step));
    if (bubble.role === "user") {
      replace(bubble.actions, versions, actionButton("edit", "Edit", () => this.startEditing(bubble, message)));
      return;
    }
    bubble.rating ??= ratingControls(this.api, message.id, this.ratings.get(message.id) ?? Rating.UNSPECIFIED, (text) =>
      showError(this.error, text),
    );
    replace(bubble.actions, versions, actionButton("regenerate", "Regenerate", () => void this.regenerate(message)), bubble.rating);
  }

  /** Put an editor in place of a question's text. */
  private startEditing(bubble: Bubble, message: Message): void {
    if (this.active || bubble.root.querySelector(".edit-form")) return;
    const close = (): void => {
      form.remove();
      bubble.text.hidden = false;
      bubble.actions.hidden = false;
    };
    const form = editForm(
      message.content,
      (text) => {
        close();
        void this.edit(message, text);
      },
      close,
    );
    bubble.text.hidden = true;
    bubble.actions.hidden = true;
    bubble.text.after(form);
  }

  /** Take a message and everything after it off the screen: a new version replaces them. */
  private dropFrom(messageId: string): void {
    const from = this.bubbles.get(messageId)?.root;
    if (!from) return;
    const gone: Element[] = [];
    for (let el: Element | null = from; el; el = el.nextElementSibling) gone.push(el);
    for (const [key, bubble] of this.bubbles) if (gone.includes(bubble.root)) this.bubbles.delete(key);
    gone.forEach((el) => el.remove());
  }

  private bubble(key: string, role: "user" | "assistant", text: string): Bubble {
    const body = h("div", { class: "text" });
    const status = h("p", { class: "status", hidden: true });
    const actions = h("div", { class: "message-actions" });
    const root = h(
      "li",
      { class: `message ${role}`, "data-role": role, "data-id": key.startsWith("pending") ? undefined : key },
      h("span", { class: "who" }, role === "user" ? "You" : this.callbacks.agentName(this.conversation?.agentId ?? "")),
      body,
      status,
      actions,
    );
    const bubble: Bubble = { root, text: body, status, actions, role };
    showText(bubble, text);
    this.bubbles.set(key, bubble);
    return bubble;
  }

  private pendingBubbles(state: StreamState): void {
    if (state.kind !== "regenerate") {
      const user = this.bubble("pending-user", "user", state.content);
      user.root.classList.add("pending");
      this.messages.append(user.root);
    }
    const assistant = this.bubble("pending-assistant", "assistant", "");
    assistant.root.classList.add("streaming");
    this.messages.append(assistant.root);
  }

  private assistantBubble(messageId: string, text: string, streaming: boolean): void {
    let bubble = this.bubbles.get(messageId);
    if (!bubble) {
      bubble = this.bubble(messageId, "assistant", text);
      this.messages.append(bubble.root);
    }
    showText(bubble, text);
    bubble.root.classList.toggle("streaming", streaming);
  }

  private rekey(bubble: Bubble, id: string): void {
    bubble.root.dataset.id = id;
    bubble.root.classList.remove("pending");
    this.bubbles.set(id, bubble);
  }

  private updateBubble(messageId: string, text: string): void {
    const bubble = this.bubbles.get(messageId);
    if (!bubble) return;
    const atEnd = this.nearEnd();
    showText(bubble, text);
    if (atEnd) this.scrollToEnd(false);
  }

  private finish(message: Message): void {
    this.assistantBubble(message.id, message.content, false);
    const bubble = this.bubbles.get(message.id);
    if (bubble) this.describeState(bubble, message);
  }

  private describeState(bubble: Bubble, message: Message): void {
    const notes: Partial<Record<MessageState, string>> = {
      [MessageState.CANCELLED]: "Stopped.",
      [MessageState.FAILED]: "The agent could not finish this answer.",
      [MessageState.STREAMING]: "Still being written…",
    };
    bubble.root.dataset.state = MessageState[message.state]?.toLowerCase() ?? "";
    bubble.root.classList.toggle("streaming", message.state === MessageState.STREAMING);
    const note = notes[message.state] ?? "";
    bubble.status.textContent = note;
    bubble.status.hidden = note === "";
    this.setMessage(message);
  }

  private markBubble(messageId: string, note: string): void {
    const bubble = this.bubbles.get(messageId);
    if (!bubble) return;
    bubble.root.classList.remove("streaming");
    bubble.status.textContent = note;
    bubble.status.hidden = false;
  }

  private dropPending(state: StreamState): void {
    this.bubbles.get("pending-user")?.root.remove();
    this.bubbles.get("pending-assistant")?.root.remove();
    this.bubbles.delete("pending-user");
    this.bubbles.delete("pending-assistant");
    // Nothing was sent: keep the text.
    if (state.kind !== "regenerate" && !this.input.value) this.input.value = state.content;
  }

  private nearEnd(): boolean {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  }

  private scrollToEnd(force: boolean): void {
    if (force || this.nearEnd()) this.scroller.scrollTop = this.scroller.scrollHeight;
  }
}

/** Worth resuming: the connection, not the request, was the problem. */
function retriable(err: unknown): boolean {
  if (err instanceof StreamBroken) return true;
  if (!(err instanceof ConnectError)) return err instanceof TypeError; // fetch: network error
  return [Code.Unavailable, Code.Unknown, Code.DeadlineExceeded, Code.Internal, Code.Aborted].includes(err.code);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
