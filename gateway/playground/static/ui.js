// Small DOM helpers shared by the views, and the one error banner.

/** el("div", {class: "x", dataset: {testid: "y"}, onclick: f}, child, "text", ...) */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "text") node.textContent = value;
    else if (name in node && typeof value !== "string") node[name] = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

/** A labelled control: <label>text <control></label> keeps label and input together for screen readers. */
export function field(label, control, hint) {
  return el("label", { class: "field" }, el("span", { class: "label" }, label), control, hint ? el("small", {}, hint) : null);
}

/** Show an error as the gateway words it: message, param, code (and the HTTP status). */
export function showError(error, context = "") {
  const banner = $("#error-banner");
  const parts = [
    el("strong", {}, context ? `${context}: ` : "", error.status ? `HTTP ${error.status} ` : ""),
    el("span", { class: "error-message", dataset: { testid: "error-message" } }, error.message || String(error)),
    error.param ? el("span", { class: "error-param" }, " param: ", el("code", { dataset: { testid: "error-param" } }, error.param)) : null,
    error.code ? el("span", { class: "error-code" }, " code: ", el("code", {}, error.code)) : null,
    el("button", { type: "button", class: "dismiss", "aria-label": "Dismiss the error", onclick: clearError }, "×"),
    error.status === 401 ? keyPrompt() : null,
  ];
  banner.replaceChildren(...parts.filter(Boolean));
  banner.hidden = false;
  if (error.status === 401) {
    const input = $("#api-key");
    input?.setAttribute("aria-invalid", "true");
    input?.focus();
  }
}

/** What a 401 asks of someone in a browser: the gateway's words speak of headers, the page has a key box. */
function keyPrompt() {
  const hasKey = Boolean($("#api-key")?.value);
  return el("p", { class: "key-prompt", dataset: { testid: "key-prompt" } },
    hasKey ? "This key was not accepted. " : "This gateway needs an API key. ",
    "Enter one in the ", el("label", { for: "api-key" }, "API key"), " box at the top and press Save ",
    "(the key the gateway was started with, or one made with ", el("code", {}, "vlmgw keys create"), ").");
}

export function clearError() {
  const banner = $("#error-banner");
  banner.hidden = true;
  banner.replaceChildren();
  $("#api-key")?.removeAttribute("aria-invalid");
}

/** Read a File as a data: URI. */
export function dataUri(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

export function fmtNumber(value, digits = 4) {
  if (value === null || value === undefined || value === "") return "—";
  if (typeof value !== "number") return String(value);
  return Number.isInteger(value) ? String(value) : value.toFixed(digits).replace(/0+$/, "").replace(/\.$/, "");
}
