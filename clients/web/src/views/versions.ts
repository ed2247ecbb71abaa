// Versions of a message: the `‹ 2/3 ›` switcher, Regenerate and Edit.
//
// A regenerated answer or an edited question is stored as a sibling of the
// original (Message.parent_id), so a conversation is a tree; ListMessages
// shows one path through it and says, for each message, how many versions
// it has and which one this is. These are only the controls: ChatView runs
// the streams and asks the server to switch (SwitchBranch), so every tab,
// device and the model see the same branch.

import type { Message } from "../gen/parley/conversation/v1/conversation_pb";
import { h } from "../dom";

/** `‹ 2/3 ›` for a message with other versions; null when it has none. */
export function branchSwitcher(message: Message, go: (step: -1 | 1) => void): HTMLElement | null {
  if (message.siblingCount < 2) return null;
  const position = message.siblingIndex + 1;
  const prev = h(
    "button",
    { type: "button", class: "branch-prev", "aria-label": "Previous version", title: "Previous version", disabled: position <= 1 },
    "‹",
  );
  const next = h(
    "button",
    {
      type: "button",
      class: "branch-next",
      "aria-label": "Next version",
      title: "Next version",
      disabled: position >= message.siblingCount,
    },
    "›",
  );
  prev.addEventListener("click", () => go(-1));
  next.addEventListener("click", () => go(1));
  return h(
    "nav",
    { class: "branches", "aria-label": "Versions" },
    prev,
    h("span", { class: "branch-position", "aria-live": "polite" }, `${position}/${message.siblingCount}`),
    next,
  );
}

/** A small text button under a message (Regenerate, Edit). */
export function actionButton(kind: "regenerate" | "edit", label: string, act: () => void): HTMLButtonElement {
  const button = h("button", { type: "button", class: `action ${kind}`, title: label }, label);
  button.addEventListener("click", act);
  return button;
}

/**
 * The editor that takes a question's place: Save sends the new version
 * (Enter does too, Shift+Enter is a new line), Cancel or Escape puts the
 * question back unchanged.
 */
export function editForm(current: string, save: (text: string) => void, cancel: () => void): HTMLFormElement {
  const input = h("textarea", { class: "edit-input", name: "content", rows: "3", "aria-label": "Edited message" });
  input.value = current;
  const form = h(
    "form",
    { class: "edit-form" },
    input,
    h(
      "div",
      { class: "edit-buttons" },
      h("button", { type: "button", class: "edit-cancel" }, "Cancel"),
      h("button", { type: "submit", class: "primary edit-save" }, "Save & send"),
    ),
  );
  const submit = (): void => {
    const text = input.value.trim();
    if (text && text !== current.trim()) save(text);
    else cancel();
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Escape") cancel();
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    }
  });
  form.querySelector(".edit-cancel")?.addEventListener("click", cancel);
  queueMicrotask(() => input.focus());
  return form;
}
