// Drives Parley's web page in headless Chromium (playwright-core, Debian's
// /usr/bin/chromium), against a real `parley serve` with Envoy started by
// tests/test_browser.py. One scenario per run:
//
//   node chat_page.mjs auth    register + verify (token from `parley outbox`),
//                              sign out, sign in, infinite scroll, token refresh
//   node chat_page.mjs chat    send and watch the answer grow, Stop, reload
//                              mid-answer and see it resume and complete
//   node chat_page.mjs reset   forgot password: request a reset on the page, open
//                              the emailed link (from `parley outbox`), set a
//                              new password, sign in with it; the link works once
//   node chat_page.mjs markdown  answers rendered as Markdown (stored and streamed),
//                              code highlighted with a copy button, the model's
//                              HTML shown as text, never as elements; thumbs
//                              up and down stored across a reload
//   node chat_page.mjs branches  Regenerate an answer, Edit a question, and
//                              the `‹ 2/3 ›` switchers between versions,
//                              kept by the server across a reload
//   node chat_page.mjs errors  a grpc-web call with a bad token, cross-origin:
//                              UNAUTHENTICATED is readable (CORS exposes the
//                              grpc-status headers), and the page says so in words
//   node chat_page.mjs docs    the REST reference page (/docs): Swagger UI lists
//                              every service from /openapi.json, and "Try it out"
//                              calls the REST API through Envoy (a failed login: 401)
//
// Inputs (environment): PARLEY_WEB_URL (also the PARLEY_PUBLIC_URL of the
// emailed links), PARLEY_WEB_URL_ALT (same server under
// another origin), PARLEY_BIN (the parley command, for `parley outbox`),
// SEED_EMAIL / SEED_PASSWORD (an active user with SEED_CONVERSATIONS
// conversations), MARKDOWN_EMAIL (a user whose conversation holds a Markdown
// answer; markdown scenario only), BRANCHES_EMAIL / BRANCHES_QUESTION (a user
// whose conversation holds that question and a Markdown answer; branches
// scenario only), ARTIFACTS (screenshot dir), CHROMIUM (binary path).
// Prints "ok: <step>" lines; exits non-zero with the reason on failure.

import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const require = createRequire(new URL("../../clients/web/package.json", import.meta.url));
const { chromium } = require("playwright-core");

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
const BASE = env("PARLEY_WEB_URL");
const ALT = env("PARLEY_WEB_URL_ALT");
const ARTIFACTS = env("ARTIFACTS");
const PASSWORD = "correct horse battery staple";
const scenario = process.argv[2];

mkdirSync(ARTIFACTS, { recursive: true });
const ok = (step) => console.log(`ok: ${step}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function check(condition, message) {
  if (!condition) throw new Error(message);
}

/** Poll fn until it returns a truthy value (returned) or time runs out. */
async function until(fn, what, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
}

const words = (n, tag) => Array.from({ length: n }, (_, i) => `${tag}${i + 1}`).join(" ");

async function signIn(page, email, password) {
  await page.goto(BASE);
  await page.waitForSelector("#signin-form");
  await page.fill("#signin-form input[name=email]", email);
  await page.fill("#signin-form input[name=password]", password);
  await page.click("#signin-form button[type=submit]");
  await page.waitForSelector("#conversation-list li .conversation, .list-status:has-text('No conversations')");
}

async function visibleError(page) {
  return page.evaluate(() =>
    Array.from(document.querySelectorAll(".error, .notice"))
      .filter((e) => !e.hidden && e.textContent)
      .map((e) => e.textContent)
      .join(" "),
  );
}

async function assertNoRawCodes(page) {
  const text = await page.evaluate(() => document.body.innerText);
  for (const raw of ["[unauthenticated]", "[unknown]", "missing trailer", "UNAUTHENTICATED", "TOKEN_", "ConnectError"]) {
    check(!text.includes(raw), `the page shows a raw error (${raw}): ${text}`);
  }
}

// --- scenarios ----------------------------------------------------------------

async function auth(page) {
  const email = `web-${Date.now()}@example.com`;
  await page.goto(BASE);
  await page.waitForSelector("#signin-form");
  await page.click("text=Create an account");
  await page.fill("#register-form input[name=email]", email);
  await page.fill("#register-form input[name=display_name]", "Web Tester");
  await page.fill("#register-form input[name=password]", "short");
  await page.click("#register-form button[type=submit]");
  // The browser's own minlength check stops a short password; the server's
  // policy is the other guard. Either way no account yet: use a good one.
  await page.fill("#register-form input[name=password]", PASSWORD);
  await page.click("#register-form button[type=submit]");
  await page.waitForSelector("#verify-form");
  const hint = await page.textContent("#verify-form .hint");
  check(hint.includes(`parley outbox --to ${email}`), `verify step lacks the outbox hint: ${hint}`);
  ok("register shows the verification step with the `parley outbox` hint");

  await page.fill("#verify-form input[name=token]", "not-a-real-token");
  await page.click("#verify-form button[type=submit]");
  await until(async () => (await visibleError(page)).length > 0, "an error for a wrong token");
  const wrong = await visibleError(page);
  check(/not valid|expired|used/i.test(wrong), `wrong token message: ${wrong}`);
  await assertNoRawCodes(page);
  ok(`a wrong token is explained: "${wrong}"`);

  const outbox = execFileSync(env("PARLEY_BIN"), ["outbox", "--to", email, "-n", "1"], { encoding: "utf8" });
  const token = outbox.match(/token=([\w-]+)/)?.[1];
  check(token, `no token in the outbox: ${outbox}`);
  await page.fill("#verify-form input[name=token]", token);
  await page.click("#verify-form button[type=submit]");
  await page.waitForSelector("#conversation-list");
  await page.waitForSelector(".list-status:has-text('No conversations')");
  check((await page.textContent("#current-user")) === "Web Tester", "the signed-in user is shown");
  ok("verifying with the emailed token signs the new user in");

  await page.click("#sign-out");
  await page.waitForSelector("#signin-form");
  ok("sign out");

  await page.fill("#signin-form input[name=email]", email);
  await page.fill("#signin-form input[name=password]", "wrong password 123");
  await page.click("#signin-form button[type=submit]");
  await until(async () => (await visibleError(page)).includes("don't match"), "a wrong-password sentence");
  await assertNoRawCodes(page);
  ok("a wrong password is a sentence");

  // The seeded user: more conversations than one page.
  const seeded = Number(env("SEED_CONVERSATIONS"));
  await signIn(page, env("SEED_EMAIL"), env("SEED_PASSWORD"));
  const count = () => page.locator("#conversation-list li .conversation").count();
  await until(async () => (await count()) >= 20, "the first page of conversations");
  const first = await count();
  check(first < seeded, `expected one page first, got ${first} of ${seeded}`);
  const newest = await page.textContent("#conversation-list li:first-child .title");
  check(newest === `Seeded conversation ${String(seeded).padStart(2, "0")}`, `newest first, got ${newest}`);
  await page.locator("#sidebar .scroller").evaluate((el) => (el.scrollTop = el.scrollHeight));
  await until(async () => (await count()) === seeded, `all ${seeded} conversations after scrolling`);
  ok(`infinite scroll: ${first} conversations, then ${seeded} after scrolling`);

  const before = await page.evaluate(() => JSON.parse(localStorage.getItem("parley.tokens")));
  await page.evaluate(() => {
    const t = JSON.parse(localStorage.getItem("parley.tokens"));
    localStorage.setItem("parley.tokens", JSON.stringify({ ...t, accessToken: "expired.or.garbage" }));
  });
  await page.reload();
  await until(async () => (await count()) >= 20, "the list after a token refresh");
  const after = await page.evaluate(() => JSON.parse(localStorage.getItem("parley.tokens")));
  check(after.refreshToken !== before.refreshToken && after.accessToken !== "expired.or.garbage", "tokens were rotated");
  ok("an UNAUTHENTICATED call refreshes the session once and carries on");
  await page.screenshot({ path: join(ARTIFACTS, "conversations.png") });
}

/** The newest email to `email` in the development outbox. */
function newestEmail(email) {
  return execFileSync(env("PARLEY_BIN"), ["outbox", "--to", email, "-n", "1"], { encoding: "utf8" });
}

async function reset(page) {
  // A fresh account, registered on the page and verified with the emailed link.
  const email = `reset-${Date.now()}@example.com`;
  const newPassword = "a brand new passphrase";
  await page.goto(BASE);
  await page.waitForSelector("#signin-form");
  await page.click("text=Create an account");
  await page.fill("#register-form input[name=email]", email);
  await page.fill("#register-form input[name=password]", PASSWORD);
  await page.click("#register-form button[type=submit]");
  await page.waitForSelector("#verify-form");
  const verifyLink = newestEmail(email).match(/(\S+\/verify\?token=[\w-]+)/)?.[1];
  check(verifyLink, `no verification link in the outbox for ${email}`);
  await page.goto(verifyLink);
  await page.waitForSelector("#signin-form .notice:has-text('verified')");
  ok("a new account, verified with the emailed link");

  // Forgot password: the page asks for the email and says what happens next.
  await page.fill("#signin-form input[name=email]", email);
  await page.click("text=Forgot your password?");
  await page.waitForSelector("#forgot-form");
  check((await page.inputValue("#forgot-form input[name=email]")) === email, "the typed email is carried over");
  await page.click("#forgot-form button[type=submit]");
  await page.waitForSelector("#reset-sent");
  const hint = await page.textContent("#reset-sent .hint");
  check(hint.includes(`parley outbox --to ${email}`), `the reset step lacks the outbox hint: ${hint}`);
  ok("a reset is requested on the page");

  const mail = newestEmail(email);
  const link = mail.match(/(\S+\/reset-password\?token=[\w-]+)/)?.[1];
  check(link, `no reset link in the outbox: ${mail}`);
  check(link.startsWith(`${BASE}/reset-password?token=`), `the link opens this page: ${link}`);
  await page.goto(link);
  await page.waitForSelector("#reset-form");
  check(!page.url().includes("token="), `the token leaves the address bar: ${page.url()}`);
  await page.fill("#reset-form input[name=new_password]", newPassword);
  await page.click("#reset-form button[type=submit]");
  await page.waitForSelector("#signin-form .notice");
  const notice = await page.textContent("#signin-form .notice");
  check(/password is changed/i.test(notice), `after the reset: ${notice}`);
  ok(`the emailed link opens the reset form, and the new password is set: "${notice}"`);

  await page.goto(link);
  await page.waitForSelector("#reset-form");
  await page.fill("#reset-form input[name=new_password]", "yet another passphrase");
  await page.click("#reset-form button[type=submit]");
  await until(async () => (await visibleError(page)).length > 0, "an error for a used link");
  const used = await visibleError(page);
  check(/already been used|not valid|expired/i.test(used), `a used link: ${used}`);
  await assertNoRawCodes(page);
  ok(`the link works once: "${used}"`);

  await page.goto(BASE);
  await page.waitForSelector("#signin-form");
  await page.fill("#signin-form input[name=email]", email);
  await page.fill("#signin-form input[name=password]", PASSWORD);
  await page.click("#signin-form button[type=submit]");
  await until(async () => (await visibleError(page)).includes("don't match"), "the old password refused");
  await signIn(page, email, newPassword);
  check((await page.textContent("#current-user")) === email, "signed in as the account that reset its password");
  ok("the old password no longer works; the new one signs in");
}

/** The newest assistant bubble's text and state. */
async function lastAnswer(page) {
  return page.evaluate(() => {
    const all = document.querySelectorAll("#messages li.message.assistant");
    const el = all[all.length - 1];
    if (!el) return null;
    return {
      text: el.querySelector(".text").textContent,
      state: el.dataset.state ?? "",
      streaming: el.classList.contains("streaming"),
      status: el.querySelector(".status").hidden ? "" : el.querySelector(".status").textContent,
    };
  });
}

async function send(page, content) {
  const answers = await page.locator("#messages li.message.assistant").count();
  await page.fill("#composer-input", content);
  await page.click("#send-button");
  await until(async () => (await page.locator("#messages li.message.assistant").count()) > answers, "a new answer bubble");
}

async function chat(page) {
  await signIn(page, env("SEED_EMAIL"), env("SEED_PASSWORD"));
  await until(() => page.evaluate(() => document.querySelectorAll("#agent-select option:not([disabled])").length > 0), "agents");
  await page.click("#new-conversation-button");
  await page.waitForSelector("#composer:not([hidden])");
  ok("new conversation");

  // 1. The answer grows in steps while it streams.
  const first = words(40, "grow");
  await send(page, first);
  const seen = [];
  const done = await until(async () => {
    const answer = await lastAnswer(page);
    if (answer && (seen.length === 0 || seen[seen.length - 1] !== answer.text.length)) seen.push(answer.text.length);
    return answer?.state === "complete" ? answer : null;
  }, "the first answer to complete", 30000);
  check(done.text === `Echo: ${first}`, `first answer text: ${done.text}`);
  const growing = seen.filter((n) => n > 0 && n < done.text.length);
  check(growing.length >= 3, `expected the answer to grow over several observations, saw lengths ${seen}`);
  check(growing.every((n, i) => i === 0 || n > growing[i - 1]), `lengths must only grow: ${seen}`);
  ok(`the answer streamed in: ${growing.length} partial lengths before ${done.text.length} characters`);

  // 2. Stop keeps the partial text and says so.
  const long = words(150, "stop");
  await send(page, long);
  await until(async () => ((await lastAnswer(page))?.text.length ?? 0) > 30, "some text before Stop");
  await page.click("#stop-button");
  const stopped = await until(async () => {
    const a = await lastAnswer(page);
    return a?.state === "cancelled" ? a : null;
  }, "the answer to be cancelled");
  check(stopped.status === "Stopped.", `status after Stop: ${stopped.status}`);
  check(stopped.text.length < `Echo: ${long}`.length, "Stop cut the answer short");
  await sleep(800);
  check((await lastAnswer(page)).text === stopped.text, "no text arrives after Stop");
  check(await page.isVisible("#send-button"), "Send is back after Stop");
  ok(`Stop cancelled the answer at ${stopped.text.length} characters`);

  // 3. A reload mid-answer resumes where it was and completes, without duplicates.
  const resumed = words(120, "reload");
  await send(page, resumed);
  const partial = await until(async () => {
    const a = await lastAnswer(page);
    return a && a.text.length > 40 && a.streaming ? a : null;
  }, "some text before the reload");
  const stored = await page.evaluate(() => JSON.parse(sessionStorage.getItem("parley.stream")));
  check(stored?.messageId && stored.offset > 0, `sessionStorage holds the stream: ${JSON.stringify(stored)}`);
  await page.reload();
  const afterReload = await until(async () => {
    const a = await lastAnswer(page);
    return a && a.text.length >= partial.text.length ? a : null;
  }, "the partial answer back after the reload");
  const final = await until(async () => {
    const a = await lastAnswer(page);
    return a?.state === "complete" ? a : null;
  }, "the resumed answer to complete", 30000);
  check(final.text === `Echo: ${resumed}`, `resumed answer text: ${final.text}`);
  check(await page.evaluate(() => sessionStorage.getItem("parley.stream") === null), "the stream state is cleared");
  const bubbles = await page.locator("#messages li.message").count();
  check(bubbles === 6, `three exchanges, six bubbles after the reload; got ${bubbles}`);
  ok(`reload at ${partial.text.length} chars: back at ${afterReload.text.length}, completed at ${final.text.length}`);
  await assertNoRawCodes(page);

  await page.screenshot({ path: join(ARTIFACTS, "chat-desktop.png") });
  await page.setViewportSize({ width: 390, height: 844 });
  await sleep(300);
  await page.screenshot({ path: join(ARTIFACTS, "chat-phone.png") });
  await page.click("#menu-button");
  await sleep(300);
  await page.screenshot({ path: join(ARTIFACTS, "chat-phone-list.png") });
  ok("screenshots saved");
}

async function markdown(page) {
  // Stored answer: a conversation seeded with Markdown, code and HTML in the answer.
  await page.context().grantPermissions(["clipboard-read", "clipboard-write"], { origin: BASE });
  await signIn(page, env("MARKDOWN_EMAIL"), env("SEED_PASSWORD"));
  await page.click("#conversation-list li:first-child .conversation");
  const answer = page.locator("#messages li.message.assistant").last();
  await answer.locator("pre code").waitFor();
  const shown = await answer.evaluate((el) => {
    const text = el.querySelector(".text");
    return {
      heading: text.querySelector("h2")?.textContent,
      bold: text.querySelector("strong")?.textContent,
      inline: text.querySelector("p code")?.textContent,
      items: Array.from(text.querySelectorAll("li"), (li) => li.textContent),
      language: text.querySelector("pre code")?.className,
      keywords: Array.from(text.querySelectorAll("pre .hljs-keyword"), (k) => k.textContent),
      link: text.querySelector("a[href^='https://docs.python.org']")?.outerHTML ?? "",
      anchors: Array.from(text.querySelectorAll("a"), (a) => a.getAttribute("href")),
      images: text.querySelectorAll("img").length,
      scripts: text.querySelectorAll("script").length,
      handlers: Array.from(text.querySelectorAll("*")).filter((e) => Array.from(e.attributes).some((a) => a.name.startsWith("on"))).length,
      words: text.textContent,
      injected: window.injected ?? null,
    };
  });
  check(shown.heading === "Sorting" && shown.bold === "sorted" && shown.inline === "key", `Markdown rendered: ${JSON.stringify(shown)}`);
  check(JSON.stringify(shown.items) === JSON.stringify(["one", "two"]), `list items: ${shown.items}`);
  check(shown.link.includes('target="_blank"') && shown.link.includes("noopener"), `links open apart: ${shown.link}`);
  ok("stored answer rendered: heading, bold, inline code, list, link");
  check(shown.language.includes("language-python") && shown.keywords.includes("def") && shown.keywords.includes("return"), `code block highlighted: ${JSON.stringify(shown)}`);
  const copyButton = answer.locator("pre .copy-code");
  await copyButton.click();
  await until(async () => (await copyButton.textContent()) === "Copied", "the copy button to confirm");
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  check(copied === "def by_length(words):\n    return sorted(words, key=len)\n", `clipboard holds the code: ${JSON.stringify(copied)}`);
  ok("code block highlighted, and its copy button copies the code");
  await page.screenshot({ path: join(ARTIFACTS, "chat-markdown-stored.png") });
  check(shown.images === 0 && shown.scripts === 0 && shown.handlers === 0, `model HTML became elements: ${JSON.stringify(shown)}`);
  check(shown.anchors.length === 1 && shown.injected === null, `a javascript: link or injected code: ${JSON.stringify(shown)}`);
  check(shown.words.includes('<img src="x" onerror=') && shown.words.includes("<script>"), "the model's HTML is shown as text");
  ok("no HTML from the model reaches the DOM: tags shown as text, no javascript: link");

  // Thumbs: a rating is stored, survives a reload, and pressing it again takes it back.
  const pressed = () =>
    answer.evaluate((el) => Array.from(el.querySelectorAll(".thumb[aria-pressed=true]"), (b) => b.getAttribute("aria-label")));
  const reopen = async () => {
    await page.reload();
    await page.click("#conversation-list li:first-child .conversation");
    await answer.locator(".rating").waitFor();
  };
  check(JSON.stringify(await pressed()) === "[]", "no rating at first");
  await answer.locator(".thumb.down").click();
  await until(async () => JSON.stringify(await pressed()) === '["Bad answer"]', "thumbs down to light up");
  await reopen();
  check(JSON.stringify(await pressed()) === '["Bad answer"]', `the rating survives a reload: ${await pressed()}`);
  await answer.locator(".thumb.up").click();
  await until(async () => JSON.stringify(await pressed()) === '["Good answer"]', "thumbs up to replace it");
  await answer.locator(".thumb.up").click();
  await until(async () => JSON.stringify(await pressed()) === "[]", "pressing it again to take it back");
  await reopen();
  check(JSON.stringify(await pressed()) === "[]", "the rating stays taken back after a reload");
  check((await page.locator("#messages li.message.user .rating").count()) === 0, "questions have no thumbs");
  ok("thumbs up and down: stored, shown after a reload, taken back");

  // A streamed answer is rendered while it grows (the echo agent repeats the message).
  await page.click("#new-conversation-button");
  await until(async () => (await page.textContent("#conversation-title")) === "New conversation", "the new conversation");
  await page.waitForSelector("#composer:not([hidden])");
  const prompt = `${words(30, "w")} **strong** and \`inline\` <b onclick="window.injected='b'">tag</b>`;
  await send(page, prompt);
  const rendered = await until(async () => {
    const a = await lastAnswer(page);
    if (a?.state !== "complete") return null;
    return page.evaluate(() => {
      const all = document.querySelectorAll("#messages li.message.assistant .text");
      const text = all[all.length - 1];
      return { strong: text.querySelector("strong")?.textContent, code: text.querySelector("code")?.textContent, b: text.querySelectorAll("b").length, words: text.textContent };
    });
  }, "the streamed answer to complete", 30000);
  check(rendered.strong === "strong" && rendered.code === "inline" && rendered.b === 0, `streamed Markdown: ${JSON.stringify(rendered)}`);
  check(rendered.words.includes('<b onclick="window.injected=\'b\'">tag</b>'), `tag shown as text: ${rendered.words}`);
  check((await page.evaluate(() => window.injected ?? null)) === null, "no injected code ran");
  ok("streamed Markdown rendered as it arrived, HTML kept as text");
  await page.screenshot({ path: join(ARTIFACTS, "chat-markdown-streamed.png") });
}

/** Each bubble on screen: role, text, id and its version switcher ("" when it has none). */
async function bubbles(page) {
  return page.evaluate(() =>
    Array.from(document.querySelectorAll("#messages li.message"), (el) => ({
      role: el.dataset.role,
      id: el.dataset.id ?? "",
      state: el.dataset.state ?? "",
      text: el.querySelector(".text").textContent,
      versions: el.querySelector(".branch-position")?.textContent ?? "",
    })),
  );
}

async function branches(page) {
  // A stored question and Markdown answer (with code), opened from the list.
  await signIn(page, env("BRANCHES_EMAIL"), env("SEED_PASSWORD"));
  await page.click("#conversation-list li:first-child .conversation");
  const question = env("BRANCHES_QUESTION");
  const settled = (want) =>
    until(async () => {
      const all = await bubbles(page);
      const stored = all.every((b) => b.id && (b.role === "user" || ["complete", "cancelled", "failed"].includes(b.state)));
      return all.length === want && stored && !(await page.locator("#chat[data-streaming]").count()) ? all : null;
    }, `${want} finished bubbles`, 30000);
  const [, first] = await settled(2);
  check(first.text.includes("print('hello')") && first.versions === "", `the stored answer: ${JSON.stringify(first)}`);

  // Regenerate: a second version of the answer streams in its place.
  const answer = page.locator("#messages li.message.assistant").last();
  await answer.locator("button.regenerate").click();
  await until(async () => (await bubbles(page)).some((b) => b.role === "assistant" && b.id !== first.id), "the regenerated answer");
  await until(async () => (await bubbles(page))[1]?.versions === "2/2", "the answer's switcher at 2/2", 30000);
  const [, second] = await settled(2);
  check(second.id !== first.id && second.text === `Echo: ${question}`, `a new answer replaced the first: ${JSON.stringify(second)}`);
  ok("Regenerate streamed a second version: the answer shows 2/2");

  // The switcher moves between versions, through the server.
  await answer.locator("button.branch-prev").click();
  await until(async () => (await bubbles(page))[1]?.id === first.id, "the first version back");
  check((await bubbles(page))[1].versions === "1/2", "the switcher says 1/2");
  check(await answer.locator("button.branch-prev").isDisabled(), "no older version than the first");
  await answer.locator("pre code .hljs-built_in").waitFor();
  await page.screenshot({ path: join(ARTIFACTS, "chat-branches.png") });
  ok("screenshot of a Markdown answer with a code block and the branch switcher");
  await answer.locator("button.branch-next").click();
  await until(async () => (await bubbles(page))[1]?.id === second.id, "the second version again");
  ok("‹ and › switch between the answer's versions");

  // Edit: a new version of the question, answered; the old branch stays.
  const user = page.locator("#messages li.message.user").first();
  await user.locator("button.edit").click();
  const editor = user.locator(".edit-form textarea");
  check((await editor.inputValue()) === question, `the editor starts from the question: ${await editor.inputValue()}`);
  await editor.fill("Say goodbye instead");
  await user.locator("button.edit-save").click();
  await until(async () => (await bubbles(page))[0]?.versions === "2/2", "the question's switcher at 2/2", 30000);
  const edited = await settled(2);
  check(edited[0].text === "Say goodbye instead" && edited[1].text === "Echo: Say goodbye instead", `edited branch: ${JSON.stringify(edited)}`);
  check(edited[1].versions === "", "the new answer has no other version");
  ok("Edit stored a second version of the question and streamed its answer");

  await user.locator("button.branch-prev").click();
  const back = await until(async () => {
    const all = await bubbles(page);
    return all[0]?.versions === "1/2" ? all : null;
  }, "the original question back");
  check(back[0].text === question && back[1].id === second.id && back[1].versions === "2/2", `the old branch, as left: ${JSON.stringify(back)}`);
  await page.reload();
  await page.click("#conversation-list li:first-child .conversation");
  const reloaded = await settled(2);
  check(reloaded[0].versions === "1/2" && reloaded[1].id === second.id, `the branch survives a reload: ${JSON.stringify(reloaded)}`);
  ok("switching back to the original question shows its answers; the server keeps the choice across a reload");
  await assertNoRawCodes(page);
}

async function errors(page) {
  // A page on the other origin (localhost vs 127.0.0.1) calls the API
  // cross-origin: only exposed headers are readable, and gRPC errors are
  // usually trailers-only (status in the HTTP headers).
  await page.goto(ALT);
  await page.waitForSelector("#signin-form");
  const result = await page.evaluate(async (api) => {
    const res = await fetch(`${api}/parley.auth.v1.AuthService/GetCurrentUser`, {
      method: "POST",
      headers: {
        "content-type": "application/grpc-web+proto",
        "x-grpc-web": "1",
        authorization: "Bearer not-a-token",
      },
      body: new Uint8Array([0, 0, 0, 0, 0]),
    });
    const details = res.headers.get("grpc-status-details-bin");
    return {
      http: res.status,
      status: res.headers.get("grpc-status"),
      message: res.headers.get("grpc-message"),
      details: details ? atob(details.replace(/-/g, "+").replace(/_/g, "/")) : null,
    };
  }, BASE);
  check(result.http === 200, `HTTP status ${result.http}`);
  check(result.status === "16", `grpc-status readable cross-origin, got ${JSON.stringify(result)}`);
  check(result.details?.includes("TOKEN_INVALID"), `grpc-status-details-bin readable with ErrorInfo: ${JSON.stringify(result)}`);
  ok(`cross-origin grpc-web call with a bad token: grpc-status ${result.status}, "${result.message}", ErrorInfo TOKEN_INVALID`);

  // The page itself, holding tokens that no longer work: a sentence, not a code.
  await page.goto(BASE);
  await page.waitForSelector("#signin-form");
  await page.evaluate(() =>
    localStorage.setItem(
      "parley.tokens",
      JSON.stringify({ accessToken: "bad", refreshToken: "also-bad", email: "ghost@example.com" }),
    ),
  );
  await page.reload();
  await page.waitForSelector("#signin-form .notice");
  const notice = await page.textContent("#signin-form .notice");
  check(/sign in again/i.test(notice), `expected a session-ended sentence, got: ${notice}`);
  await assertNoRawCodes(page);
  ok(`stale tokens: the page says "${notice}"`);
}

async function docs(page) {
  await page.goto(`${BASE}/docs`);
  await page.waitForSelector(".opblock-tag", { timeout: 30000 });
  const tags = await page.$$eval(".opblock-tag", (els) => els.map((el) => el.getAttribute("data-tag")));
  for (const service of ["AuthService", "ConversationService", "ChatService", "AdminService"]) {
    check(tags.includes(service), `the page lists ${service}: ${JSON.stringify(tags)}`);
  }
  ok(`/docs lists ${tags.length} services from /openapi.json`);

  // Try it out, same origin: a login with a wrong password answers 401 with ErrorInfo.
  await page.click('.opblock-tag[data-tag="AuthService"]');
  const login = page.locator(".opblock", { hasText: "/v1/auth:login" });
  await login.locator(".opblock-summary").click();
  await login.locator(".try-out__btn").click();
  await login.locator("textarea.body-param__text").fill(
    JSON.stringify({ email: "nobody@example.com", password: "wrong password here" }),
  );
  await login.locator(".execute").click();
  const status = await until(
    () => login.locator(".live-responses-table tbody .response-col_status").first().textContent().catch(() => null),
    "the live response",
    30000,
  );
  const body = await login.locator(".live-responses-table tbody .response-col_description").first().textContent();
  check(status.trim() === "401", `Try it out: HTTP ${status}`);
  check(body.includes("INVALID_CREDENTIALS"), `Try it out: the google.rpc.Status body, got ${body.slice(0, 300)}`);
  ok("Try it out: POST /v1/auth:login with a wrong password answers 401 INVALID_CREDENTIALS");
}

// --- run -------------------------------------------------------------------------

const scenarios = { auth, chat, markdown, branches, reset, errors, docs };
if (!scenarios[scenario]) {
  console.error(`usage: node chat_page.mjs ${Object.keys(scenarios).join("|")}`);
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: env("CHROMIUM", "/usr/bin/chromium"),
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
  ],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
const page = await context.newPage();
const consoleErrors = [];
page.on("pageerror", (err) => consoleErrors.push(String(err)));
try {
  await scenarios[scenario](page);
  check(consoleErrors.length === 0, `uncaught errors in the page: ${consoleErrors.join("; ")}`);
  console.log(`scenario ${scenario}: passed`);
} catch (err) {
  await page.screenshot({ path: join(ARTIFACTS, `failed-${scenario}.png`) }).catch(() => {});
  console.error(`scenario ${scenario} FAILED: ${err.message}`);
  console.error(`page text: ${(await page.evaluate(() => document.body.innerText).catch(() => "?")).slice(0, 2000)}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
