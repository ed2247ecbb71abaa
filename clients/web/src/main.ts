// Parley's web page: sign in, pick or start a conversation, chat.
//
// Plain TypeScript and DOM; every server call is gRPC-web through Envoy on
// this page's own origin (see api.ts).

import "./styles.css";
import { Api } from "./api";
import { h, replace } from "./dom";
import { describeError } from "./errors";
import { UserState, type User } from "./gen/parley/auth/v1/auth_pb";
import type { Conversation } from "./gen/parley/conversation/v1/conversation_pb";
import { stream, tokens } from "./session";
import { AuthView } from "./views/auth";
import { ChatView } from "./views/chat";
import { Sidebar } from "./views/sidebar";

class App {
  private readonly api = new Api();
  private readonly auth: AuthView;
  private sidebar: Sidebar | null = null;
  private chat: ChatView | null = null;

  constructor(private readonly root: HTMLElement) {
    this.auth = new AuthView(this.api, { signedIn: (user) => this.showApp(user) });
    this.api.onSignedOut = (reason) => this.showSignIn(reason);
  }

  async start(): Promise<void> {
    const url = new URL(window.location.href);
    const token = url.searchParams.get("token");
    if (url.pathname === "/verify" && token) {
      history.replaceState(null, "", "/");
      replace(this.root, this.auth.root);
      await this.auth.verify(token, "");
      return;
    }
    if (url.pathname === "/reset-password" && token) {
      history.replaceState(null, "", "/");
      replace(this.root, this.auth.root);
      this.auth.showReset(token);
      return;
    }
    if (!tokens.get()) {
      this.showSignIn();
      return;
    }
    try {
      const res = await this.api.call(() => this.api.auth.getCurrentUser({}));
      if (!res.user) throw new Error("no user");
      if (res.user.state === UserState.PENDING_VERIFICATION) {
        replace(this.root, this.auth.root);
        this.auth.showVerify(res.user.email);
      } else {
        this.showApp(res.user);
      }
    } catch (err) {
      // Signed out already if the session is gone; otherwise say why we stopped.
      if (tokens.get()) this.showSignIn(describeError(err));
    }
  }

  private showSignIn(notice = ""): void {
    this.sidebar?.stop();
    this.chat?.detach();
    this.sidebar = this.chat = null;
    replace(this.root, this.auth.root);
    this.auth.showSignIn(notice, tokens.get()?.email ?? "");
  }

  private showApp(user: User): void {
    const sidebar = new Sidebar(this.api, { select: (c) => void this.select(c) });
    const chat = new ChatView(this.api, {
      changed: (c) => sidebar.touched(c),
      agentName: (id) => sidebar.agentName(id),
    });
    this.sidebar = sidebar;
    this.chat = chat;
    const menu = h(
      "button",
      { type: "button", class: "menu", id: "menu-button", "aria-controls": "sidebar", "aria-expanded": "false" },
      "Chats",
    );
    menu.addEventListener("click", () => this.toggleSidebar());
    const signOut = h("button", { type: "button", class: "link", id: "sign-out" }, "Sign out");
    signOut.addEventListener("click", () => void this.signOut());
    const header = h(
      "header",
      { class: "topbar" },
      menu,
      h("span", { class: "brand" }, "Parley"),
      h("span", { class: "who", id: "current-user" }, user.displayName || user.email),
      signOut,
    );
    replace(this.root, header, h("div", { class: "layout" }, sidebar.root, chat.root));
    void sidebar.start().then(() => this.resumeFromReload());
  }

  /** After a reload mid-answer: reopen that conversation and resume the stream. */
  private async resumeFromReload(): Promise<void> {
    const state = stream.get();
    if (!state || !this.chat || !this.sidebar) return;
    try {
      const res = await this.api.call(() => this.api.conversations.getConversation({ conversationId: state.conversationId }));
      if (!res.conversation) return;
      this.sidebar.highlight(res.conversation);
      await this.chat.open(res.conversation, state);
    } catch {
      stream.clear(); // the conversation is gone; nothing to resume
    }
  }

  private async select(conversation: Conversation): Promise<void> {
    this.sidebar?.highlight(conversation);
    this.toggleSidebar(false);
    await this.chat?.open(conversation);
  }

  private toggleSidebar(open?: boolean): void {
    const show = open ?? !this.root.classList.contains("sidebar-open");
    this.root.classList.toggle("sidebar-open", show);
    this.root.querySelector("#menu-button")?.setAttribute("aria-expanded", String(show));
  }

  private async signOut(): Promise<void> {
    const current = tokens.get();
    this.chat?.detach();
    stream.clear();
    try {
      if (current) await this.api.auth.logout({ refreshToken: current.refreshToken });
    } catch {
      // Signing out locally is what matters; the session expires on its own.
    }
    tokens.clear();
    this.showSignIn("You are signed out.");
  }
}

const root = document.getElementById("app");
if (root) void new App(root).start();
