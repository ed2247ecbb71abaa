// Thumbs up and down under a finished answer (FeedbackService). Pressing the
// lit thumb again takes the rating back; the buttons show what the server
// stored, so a failed call leaves them as they were.

import type { Api } from "../api";
import { h } from "../dom";
import { describeError } from "../errors";
import { Rating } from "../gen/parley/feedback/v1/feedback_pb";

export function ratingControls(api: Api, messageId: string, current: Rating, onError: (text: string) => void): HTMLElement {
  const up = thumb("up", "Good answer");
  const down = thumb("down", "Bad answer");
  let rating = current;
  const show = (): void => {
    up.setAttribute("aria-pressed", String(rating === Rating.THUMBS_UP));
    down.setAttribute("aria-pressed", String(rating === Rating.THUMBS_DOWN));
  };
  const press = async (chosen: Rating): Promise<void> => {
    const next = rating === chosen ? Rating.UNSPECIFIED : chosen;
    try {
      if (next === Rating.UNSPECIFIED) await api.call(() => api.feedback.deleteMessageFeedback({ messageId }));
      else await api.call(() => api.feedback.setMessageFeedback({ feedback: { messageId, rating: next } }));
      rating = next;
      show();
      onError("");
    } catch (err) {
      onError(describeError(err));
    }
  };
  up.addEventListener("click", () => void press(Rating.THUMBS_UP));
  down.addEventListener("click", () => void press(Rating.THUMBS_DOWN));
  show();
  return h("div", { class: "rating", role: "group", "aria-label": "Rate this answer" }, up, down);
}

// Material Design's "thumb_up" icon (Apache 2.0); thumbs down is it turned over.
const THUMB_PATH =
  "M1 21h4V9H1v12zm22-11c0-1.1-.9-2-2-2h-6.31l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06L14.17 1 7.59 7.59C7.22 " +
  "7.95 7 8.45 7 9v10c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05c.09-.23.14-.47.14-.73v-2z";

/** An icon button: drawn, not an emoji, so it shows wherever no emoji font is installed. */
function thumb(kind: "up" | "down", label: string): HTMLButtonElement {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  if (kind === "down") svg.setAttribute("transform", "rotate(180)");
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("d", THUMB_PATH);
  svg.append(path);
  return h("button", { type: "button", class: `thumb ${kind}`, "aria-label": label, title: label }, svg);
}
