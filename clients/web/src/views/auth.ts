// Sign in, create an account, verify the email address, reset a forgotten
// password.
//
// Verification: Parley emails a link `<PARLEY_PUBLIC_URL>/verify?token=...`
// that opens this page; the token can also be pasted by hand. A password
// reset works the same way: "Forgot your password?" asks for the email, and
// the emailed link `<PARLEY_PUBLIC_URL>/reset-password?token=...` opens the
// form that sets the new one. With the development outbox backend no email
// leaves the machine: `parley outbox` prints it, and both steps say so.

import { UserState, type User } from "../gen/parley/auth/v1/auth_pb";
import type { Api } from "../api";
import { busy, field, h, replace, showError } from "../dom";
import { describeError } from "../errors";
import { tokens } from "../session";

export interface AuthCallbacks {
  /** Signed in with an active (verified) account. */
  signedIn(user: User): void;
}

export class AuthView {
  readonly root = h("main", { class: "auth", id: "auth" });
  private password = "";

  constructor(
    private readonly api: Api,
    private readonly callbacks: AuthCallbacks,
  ) {}

  showSignIn(notice = "", email = ""): void {
    const error = h("p", { class: "error", role: "alert", hidden: true });
    const form = h(
      "form",
      { class: "card", id: "signin-form", "aria-labelledby": "signin-title" },
      h("h1", { id: "signin-title" }, "Sign in to Parley"),
      notice ? h("p", { class: "notice", role: "status" }, notice) : null,
      label("Email", h("input", { name: "email", type: "email", autocomplete: "username", required: true, value: email })),
      label("Password", h("input", { name: "password", type: "password", autocomplete: "current-password", required: true })),
      error,
      h("button", { type: "submit", class: "primary" }, "Sign in"),
      h("p", { class: "switch" }, link("Forgot your password?", () => this.showForgot(field(form, "email")))),
      h("p", { class: "switch" }, "New here? ", link("Create an account", () => this.showRegister())),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void busy(form, () => this.signIn(field(form, "email"), field(form, "password"), error));
    });
    replace(this.root, form);
    focusFirst(form);
  }

  showRegister(): void {
    const error = h("p", { class: "error", role: "alert", hidden: true });
    const form = h(
      "form",
      { class: "card", id: "register-form", "aria-labelledby": "register-title" },
      h("h1", { id: "register-title" }, "Create your account"),
      label("Email", h("input", { name: "email", type: "email", autocomplete: "email", required: true })),
      label("Name (optional)", h("input", { name: "display_name", autocomplete: "name" })),
      label(
        "Password (at least 10 characters)",
        h("input", { name: "password", type: "password", autocomplete: "new-password", required: true, minlength: "10" }),
      ),
      error,
      h("button", { type: "submit", class: "primary" }, "Create account"),
      h("p", { class: "switch" }, "Already registered? ", link("Sign in", () => this.showSignIn())),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void busy(form, async () => {
        const email = field(form, "email");
        try {
          await this.api.auth.register({ email, password: field(form, "password"), displayName: field(form, "display_name") });
          this.password = field(form, "password");
          this.showVerify(email);
        } catch (err) {
          showError(error, describeError(err));
        }
      });
    });
    replace(this.root, form);
    focusFirst(form);
  }

  /** The verification step: paste the emailed token (or follow the link). */
  showVerify(email: string, notice = ""): void {
    const error = h("p", { class: "error", role: "alert", hidden: true });
    const form = h(
      "form",
      { class: "card", id: "verify-form", "aria-labelledby": "verify-title" },
      h("h1", { id: "verify-title" }, "Check your email"),
      notice ? h("p", { class: "notice", role: "status" }, notice) : null,
      h("p", {}, "We sent a verification link to ", h("strong", {}, email || "your address"), ". Open it, or paste its token here."),
      h(
        "p",
        { class: "hint" },
        "Running Parley on your machine? No email is sent: ",
        h("code", {}, `parley outbox --to ${email || "EMAIL"}`),
        " prints it.",
      ),
      label("Verification token", h("input", { name: "token", autocomplete: "one-time-code", required: true, spellcheck: "false" })),
      error,
      h("button", { type: "submit", class: "primary" }, "Verify email"),
      h("p", { class: "switch" }, link("Back to sign in", () => this.showSignIn("", email))),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void busy(form, () => this.verify(field(form, "token"), email, error));
    });
    replace(this.root, form);
    focusFirst(form);
  }

  /** Ask for a password reset link. The answer never says whether the account exists. */
  showForgot(email = ""): void {
    const error = h("p", { class: "error", role: "alert", hidden: true });
    const form = h(
      "form",
      { class: "card", id: "forgot-form", "aria-labelledby": "forgot-title" },
      h("h1", { id: "forgot-title" }, "Reset your password"),
      h("p", {}, "Enter your account's email address and we will send you a link to choose a new password."),
      label("Email", h("input", { name: "email", type: "email", autocomplete: "username", required: true, value: email })),
      error,
      h("button", { type: "submit", class: "primary" }, "Send the link"),
      h("p", { class: "switch" }, link("Back to sign in", () => this.showSignIn("", field(form, "email")))),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void busy(form, async () => {
        const address = field(form, "email");
        try {
          await this.api.auth.requestPasswordReset({ email: address });
          this.showResetSent(address);
        } catch (err) {
          showError(error, describeError(err));
        }
      });
    });
    replace(this.root, form);
    focusFirst(form);
  }

  private showResetSent(email: string): void {
    const card = h(
      "section",
      { class: "card", id: "reset-sent", "aria-labelledby": "reset-sent-title" },
      h("h1", { id: "reset-sent-title" }, "Check your email"),
      h(
        "p",
        { role: "status" },
        "If an account exists for ",
        h("strong", {}, email),
        ", we sent it a link to choose a new password. The link works once, within an hour.",
      ),
      h("p", { class: "hint" }, "Running Parley on your machine? No email is sent: ", h("code", {}, `parley outbox --to ${email}`), " prints it."),
      h("p", { class: "switch" }, link("Back to sign in", () => this.showSignIn("", email))),
    );
    replace(this.root, card);
  }

  /** The form the emailed /reset-password?token= link opens: choose the new password. */
  showReset(token: string): void {
    const error = h("p", { class: "error", role: "alert", hidden: true });
    const form = h(
      "form",
      { class: "card", id: "reset-form", "aria-labelledby": "reset-title" },
      h("h1", { id: "reset-title" }, "Choose a new password"),
      label(
        "New password (at least 10 characters)",
        h("input", { name: "new_password", type: "password", autocomplete: "new-password", required: true, minlength: "10" }),
      ),
      error,
      h("button", { type: "submit", class: "primary" }, "Set the new password"),
      h("p", { class: "switch" }, link("Ask for a new link", () => this.showForgot()), " · ", link("Back to sign in", () => this.showSignIn())),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void busy(form, async () => {
        try {
          await this.api.auth.resetPassword({ token, newPassword: field(form, "new_password") });
          // Every session of the account was revoked, this browser's too.
          tokens.clear();
          this.showSignIn("Your password is changed. Sign in with the new one.");
        } catch (err) {
          showError(error, describeError(err));
        }
      });
    });
    replace(this.root, form);
    focusFirst(form);
  }

  /** Verify a token (from the form or the /verify?token= link). */
  async verify(token: string, email: string, error?: HTMLElement): Promise<void> {
    try {
      const res = await this.api.auth.verifyEmail({ token });
      const verifiedEmail = res.user?.email ?? email;
      if (this.password && verifiedEmail) {
        await this.signIn(verifiedEmail, this.password, error ?? null);
      } else {
        this.showSignIn("Your email address is verified. You can sign in now.", verifiedEmail);
      }
    } catch (err) {
      if (error) showError(error, describeError(err));
      else this.showSignIn(describeError(err), email);
    }
  }

  private async signIn(email: string, password: string, error: HTMLElement | null): Promise<void> {
    try {
      const res = await this.api.auth.login({ email, password });
      if (!res.tokens || !res.user) throw new Error("incomplete login response");
      tokens.set({ accessToken: res.tokens.accessToken, refreshToken: res.tokens.refreshToken, email: res.user.email });
      this.password = "";
      if (res.user.state === UserState.PENDING_VERIFICATION) {
        this.showVerify(res.user.email, "Almost there: verify your email address to start chatting.");
        return;
      }
      this.callbacks.signedIn(res.user);
    } catch (err) {
      if (error) showError(error, describeError(err));
      else this.showSignIn(describeError(err), email);
    }
  }
}

function label(text: string, input: HTMLElement): HTMLLabelElement {
  return h("label", {}, h("span", {}, text), input);
}

function link(text: string, onClick: () => void): HTMLButtonElement {
  return h("button", { type: "button", class: "link", onclick: () => onClick() }, text);
}

function focusFirst(form: HTMLFormElement): void {
  const first = form.querySelector<HTMLInputElement>("input:not([value]), input[value='']") ?? form.querySelector("input");
  first?.focus();
}
