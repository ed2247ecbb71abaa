// Assistant answers rendered as Markdown, safely, while they stream.
//
// markdown-it never passes raw HTML through (html: false), and DOMPurify
// sanitises what it produces anyway, so nothing a model writes becomes markup
// of its own: a model's text is untrusted input. Code blocks are highlighted
// with highlight.js (a fixed set of common languages keeps the bundle small)
// and get a copy button.

import DOMPurify from "dompurify";
import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import c from "highlight.js/lib/languages/c";
import cpp from "highlight.js/lib/languages/cpp";
import css from "highlight.js/lib/languages/css";
import go from "highlight.js/lib/languages/go";
import java from "highlight.js/lib/languages/java";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import markdownLanguage from "highlight.js/lib/languages/markdown";
import python from "highlight.js/lib/languages/python";
import rust from "highlight.js/lib/languages/rust";
import sql from "highlight.js/lib/languages/sql";
import typescript from "highlight.js/lib/languages/typescript";
import xml from "highlight.js/lib/languages/xml";
import yaml from "highlight.js/lib/languages/yaml";
import MarkdownIt from "markdown-it";

const languages = { bash, c, cpp, css, go, java, javascript, json, markdown: markdownLanguage, python, rust, sql, typescript, xml, yaml };
for (const [name, language] of Object.entries(languages)) hljs.registerLanguage(name, language);

const markdown = new MarkdownIt({
  html: false,
  linkify: true,
  breaks: true,
  highlight(code: string, language: string): string {
    const known = language && hljs.getLanguage(language) ? language : "";
    // highlight.js escapes the code itself; an empty string makes markdown-it escape it.
    return known ? hljs.highlight(code, { language: known, ignoreIllegals: true }).value : "";
  },
});

// Links a model writes open in a new tab and learn nothing about the page.
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});

/** Render text as sanitised Markdown into element, with a copy button on each code block. */
export function renderMarkdown(element: HTMLElement, text: string): void {
  // trim: no stray newline text node after the last block, so textContent is the words shown.
  element.innerHTML = DOMPurify.sanitize(markdown.render(text).trim(), { ADD_ATTR: ["target"] });
  for (const pre of element.querySelectorAll("pre")) {
    const code = pre.querySelector("code");
    if (!code) continue;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "copy-code";
    button.textContent = "Copy";
    button.setAttribute("aria-label", "Copy code");
    button.addEventListener("click", () => void copy(code.textContent ?? "", button));
    pre.append(button);
  }
}

async function copy(text: string, button: HTMLButtonElement): Promise<void> {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Copy failed"; // no clipboard access (an insecure origin, or denied)
  }
  setTimeout(() => (button.textContent = "Copy"), 1500);
}
