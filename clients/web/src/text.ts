// ChatService offsets count Unicode code points, while JavaScript strings
// count UTF-16 units; these helpers keep the page's arithmetic in code points.

export function codePoints(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

/**
 * Merge a delta that starts at code point `offset` into `text` (which holds
 * `length` code points). Replayed text (after a resume or a re-attach) is
 * skipped; a gap (text missing before the delta) returns null so the caller
 * can resume from what it has.
 */
export function mergeDelta(text: string, length: number, delta: string, offset: number): string | null {
  if (offset > length) return null;
  const chars = Array.from(delta);
  const skip = length - offset;
  return skip >= chars.length ? text : text + chars.slice(skip).join("");
}

/** A UUID v4, also where crypto.randomUUID is missing (plain http origins). */
export function uuid(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** "just now", "5 min ago", "yesterday", or a date. */
export function relativeTime(date: Date | undefined, now: Date = new Date()): string {
  if (!date) return "";
  const seconds = Math.round((now.getTime() - date.getTime()) / 1000);
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  if (seconds < 2 * 86400) return "yesterday";
  return date.toLocaleDateString();
}
