// The conversation list (newest activity first, loaded page by page as it
// scrolls) and the "new conversation" form with its agent picker.

import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Agent } from "../gen/parley/agent/v1/agent_pb";
import type { Conversation } from "../gen/parley/conversation/v1/conversation_pb";
import type { Api } from "../api";
import { busy, h, replace, showError } from "../dom";
import { describeError } from "../errors";
import { relativeTime, uuid } from "../text";

const PAGE_SIZE = 20;

export interface SidebarCallbacks {
  select(conversation: Conversation): void;
}

export class Sidebar {
  readonly root: HTMLElement;
  private readonly list = h("ul", { class: "conversations", id: "conversation-list", "aria-label": "Conversations" });
  private readonly sentinel = h("li", { class: "sentinel", "aria-hidden": "true" });
  private readonly status = h("p", { class: "list-status", role: "status" });
  private readonly error = h("p", { class: "error", role: "alert", hidden: true });
  private readonly agentSelect = h("select", { name: "agent", id: "agent-select", "aria-label": "Agent", required: true });
  private readonly scroller: HTMLElement;
  private readonly items = new Map<string, HTMLLIElement>();
  private readonly conversations = new Map<string, Conversation>();
  private agents = new Map<string, Agent>();
  private nextPageToken = "";
  private exhausted = false;
  private loading = false;
  private selectedId = "";
  private observer: IntersectionObserver | null = null;

  constructor(
    private readonly api: Api,
    private readonly callbacks: SidebarCallbacks,
  ) {
    const form = h(
      "form",
      { class: "new-conversation", id: "new-conversation" },
      this.agentSelect,
      h("button", { type: "submit", class: "primary", id: "new-conversation-button" }, "New chat"),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void busy(form, () => this.create());
    });
    this.scroller = h("div", { class: "scroller" }, this.list, this.status);
    this.root = h("nav", { class: "sidebar", id: "sidebar", "aria-label": "Conversations" }, form, this.error, this.scroller);
  }

  /** Load agents and the first page; later pages load as the list scrolls. */
  async start(): Promise<void> {
    this.observer?.disconnect();
    this.items.clear();
    this.nextPageToken = "";
    this.exhausted = false;
    replace(this.list, this.sentinel);
    // An entry tells where the sentinel was when it was computed: the first
    // one (an empty list) can arrive after the first page is shown, so the
    // sentinel is asked again rather than loading a page nobody scrolled to.
    this.observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting) && this.sentinelVisible()) void this.loadMore();
    }, { root: this.scroller, rootMargin: "200px" });
    this.observer.observe(this.sentinel);
    await Promise.all([this.loadAgents(), this.loadMore()]);
  }

  stop(): void {
    this.observer?.disconnect();
    this.observer = null;
  }

  agentName(agentId: string): string {
    return this.agents.get(agentId)?.name ?? "Agent";
  }

  /** Mark a conversation as the open one (adding it on top if it is new). */
  highlight(conversation: Conversation): void {
    this.selectedId = conversation.id;
    this.upsert(conversation, "keep");
    for (const [id, item] of this.items) {
      item.classList.toggle("selected", id === conversation.id);
      const button = item.firstElementChild;
      if (id === conversation.id) button?.setAttribute("aria-current", "true");
      else button?.removeAttribute("aria-current");
    }
  }

  /** A conversation changed (new message, title): move it to the top. */
  touched(conversation: Conversation): void {
    this.upsert(conversation, "top");
  }

  private async loadAgents(): Promise<void> {
    try {
      const res = await this.api.call(() => this.api.agents.listAgents({ pageSize: 200 }));
      this.agents = new Map(res.agents.map((a) => [a.id, a]));
      const options = res.agents.map((agent) =>
        h(
          "option",
          { value: agent.id, disabled: !agent.accessible, title: agent.description },
          agent.accessible ? agent.name : `${agent.name} (not available to you)`,
        ),
      );
      replace(this.agentSelect, ...options);
      const firstUsable = res.agents.find((a) => a.accessible);
      if (firstUsable) this.agentSelect.value = firstUsable.id;
      for (const [id, item] of this.items) {
        const conversation = this.conversations.get(id);
        if (conversation) this.renderItem(item, conversation);
      }
    } catch (err) {
      showError(this.error, describeError(err));
    }
  }

  private async loadMore(): Promise<void> {
    if (this.loading || this.exhausted) return;
    this.loading = true;
    this.status.textContent = "Loading conversations…";
    try {
      const token = this.nextPageToken;
      const res = await this.api.call(() => this.api.conversations.listConversations({ pageSize: PAGE_SIZE, pageToken: token }));
      for (const conversation of res.conversations) this.upsert(conversation, "end");
      this.nextPageToken = res.nextPageToken;
      this.exhausted = res.nextPageToken === "";
      this.status.textContent = this.items.size === 0 ? "No conversations yet. Start one above." : "";
      showError(this.error, "");
    } catch (err) {
      this.status.textContent = "";
      showError(this.error, describeError(err));
      this.exhausted = true; // stop the observer from hammering a failing server
    } finally {
      this.loading = false;
    }
    // A tall screen may show the sentinel still: keep filling it.
    if (!this.exhausted && this.sentinelVisible()) void this.loadMore();
  }

  private sentinelVisible(): boolean {
    const box = this.sentinel.getBoundingClientRect();
    const view = this.scroller.getBoundingClientRect();
    return box.top < view.bottom + 200 && box.bottom > view.top && this.scroller.offsetParent !== null;
  }

  private async create(): Promise<void> {
    const agentId = this.agentSelect.value;
    if (!agentId) {
      showError(this.error, "Pick an agent first.");
      return;
    }
    try {
      const res = await this.api.call(() => this.api.conversations.createConversation({ agentId, requestId: uuid() }));
      if (!res.conversation) return;
      showError(this.error, "");
      this.status.textContent = "";
      this.callbacks.select(res.conversation);
    } catch (err) {
      showError(this.error, describeError(err));
    }
  }

  /**
   * Add or update a list entry. New entries go on top ("top", a conversation
   * just created) or at the end (a loaded page); "top" also moves an existing
   * entry up (it has the newest activity now), "keep" leaves it in place.
   */
  private upsert(conversation: Conversation, where: "top" | "keep" | "end"): void {
    this.conversations.set(conversation.id, conversation);
    let item = this.items.get(conversation.id);
    if (!item) {
      item = h("li", {});
      this.items.set(conversation.id, item);
      if (where === "end") this.list.insertBefore(item, this.sentinel);
      else this.list.prepend(item);
    } else if (where === "top" && this.list.firstChild !== item) {
      this.list.prepend(item);
    }
    this.renderItem(item, conversation);
  }

  private renderItem(item: HTMLLIElement, conversation: Conversation): void {
    const when = conversation.lastMessageTime ?? conversation.updateTime ?? conversation.createTime;
    const button = h(
      "button",
      {
        type: "button",
        class: "conversation",
        "data-id": conversation.id,
        "aria-current": conversation.id === this.selectedId ? "true" : undefined,
        onclick: () => this.callbacks.select(conversation),
      },
      h("span", { class: "title" }, conversation.title || "New conversation"),
      h(
        "span",
        { class: "meta" },
        `${this.agentName(conversation.agentId)} · ${relativeTime(when ? timestampDate(when) : undefined)}`,
      ),
    );
    replace(item, button);
    item.classList.toggle("selected", conversation.id === this.selectedId);
  }
}
