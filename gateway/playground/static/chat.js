// The chat view: conversation, attachments (images, videos), streaming, stop, compare, request as code.
import { apiKey, call, stream } from "./api.js";
import { fillSelect, loadModels } from "./models.js";
import { curlSnippet, pythonSnippet, shortened } from "./snippets.js";
import { parsedTable, structuredEditor } from "./structured.js";
import { $, clearError, dataUri, el, field, fmtNumber, showError } from "./ui.js";

const CHAT_PATH = "/v1/chat/completions";

export class ChatView {
  constructor(root) {
    this.root = root;
    this.turns = []; // {parts, answers: {A, B}}
    this.attachments = []; // {kind: "image"|"video", url, name}
    this.abort = null;
    this.structured = structuredEditor(() => this.refreshCode());
    $("#structured-slot", root).replaceWith(this.structured.root);
    this.modelA = $("#model-select", root);
    this.modelB = $("#model-select-b", root);
    this.compare = $("#compare-toggle", root);
    this.input = $("#message-input", root);
    this.conversation = $("#conversation", root);
    this.bind();
  }

  bind() {
    const root = this.root;
    $("#composer", root).addEventListener("submit", (e) => { e.preventDefault(); this.send(); });
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); this.send(); }
    });
    this.input.addEventListener("paste", (e) => {
      const files = [...(e.clipboardData?.files || [])];
      if (files.length) { e.preventDefault(); this.addFiles(files); }
    });
    $("#stop-button", root).addEventListener("click", () => this.abort?.abort());
    $("#clear-button", root).addEventListener("click", () => { this.turns = []; this.conversation.replaceChildren(); this.refreshCode(); });
    $("#image-input", root).addEventListener("change", (e) => { this.addFiles([...e.target.files]); e.target.value = ""; });
    $("#video-input", root).addEventListener("change", (e) => { this.addFiles([...e.target.files]); e.target.value = ""; });
    $("#add-image-url", root).addEventListener("click", () => this.addUrl("image", $("#image-url", root)));
    $("#add-video-url", root).addEventListener("click", () => this.addUrl("video", $("#video-url", root)));
    const drop = $("#composer", root);
    for (const target of [drop, this.conversation]) {
      target.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("dragging"); });
      target.addEventListener("dragleave", () => drop.classList.remove("dragging"));
      target.addEventListener("drop", (e) => {
        e.preventDefault();
        drop.classList.remove("dragging");
        this.addFiles([...(e.dataTransfer?.files || [])]);
      });
    }
    this.compare.addEventListener("change", () => this.syncCompare());
    $("#refresh-models", root).addEventListener("click", () => this.loadModels());
    $(".settings", root).addEventListener("input", () => this.refreshCode());
    $(".settings", root).addEventListener("change", () => this.refreshCode());
    this.input.addEventListener("input", () => this.refreshCode());
    for (const button of root.querySelectorAll("[data-copy]")) {
      button.addEventListener("click", () => this.copy(button.dataset.copy, button));
    }
    this.syncCompare();
  }

  async loadModels() {
    try {
      const groups = await loadModels();
      const ids = fillSelect(this.modelA, groups);
      fillSelect(this.modelB, groups, groups.adapters[0]?.id || groups.tasks[0]?.id || ids[1]);
      this.refreshCode();
      return ids;
    } catch (error) {
      showError(error, "Listing models");
      return [];
    }
  }

  selectModel(id) {
    if ([...this.modelA.options].some((o) => o.value === id)) this.modelA.value = id;
    this.refreshCode();
  }

  syncCompare() {
    const on = this.compare.checked;
    $("#model-b-field", this.root).hidden = !on;
    this.root.classList.toggle("comparing", on);
    this.refreshCode();
  }

  async addFiles(files) {
    for (const file of files) {
      const kind = file.type.startsWith("video/") ? "video" : file.type.startsWith("image/") ? "image" : null;
      if (!kind) { showError({ message: `${file.name}: not an image or a video (${file.type || "unknown type"})` }); continue; }
      this.attachments.push({ kind, url: await dataUri(file), name: file.name });
    }
    this.renderAttachments();
  }

  addUrl(kind, input) {
    const url = input.value.trim();
    if (!url) return;
    this.attachments.push({ kind, url, name: url });
    input.value = "";
    this.renderAttachments();
  }

  renderAttachments() {
    const box = $("#attachments", this.root);
    box.replaceChildren(...this.attachments.map((a, i) =>
      el("span", { class: "chip", dataset: { testid: "attachment" } },
        a.kind === "image" && a.url.startsWith("data:") ? el("img", { src: a.url, alt: a.name }) : el("span", {}, a.kind === "video" ? "🎞 " : "🖼 "),
        el("span", { class: "chip-name" }, a.name.length > 40 ? a.name.slice(0, 37) + "…" : a.name),
        el("button", { type: "button", "aria-label": `remove ${a.name}`, onclick: () => { this.attachments.splice(i, 1); this.renderAttachments(); } }, "×"))));
    this.refreshCode();
  }

  videoOptions() {
    const out = {};
    const number = (id) => $(id, this.root).value.trim();
    if (number("#num-frames")) out.num_frames = parseInt(number("#num-frames"), 10);
    if (number("#fps")) out.fps = Number(number("#fps"));
    if (number("#video-start")) out.start = Number(number("#video-start"));
    if (number("#video-end")) out.end = Number(number("#video-end"));
    if ($("#video-mode", this.root).value) out.mode = $("#video-mode", this.root).value;
    return out;
  }

  draftParts() {
    const text = this.input.value;
    const parts = this.attachments.map((a) =>
      a.kind === "image"
        ? { type: "image_url", image_url: { url: a.url } }
        : { type: "video_url", video_url: { url: a.url, ...this.videoOptions() } });
    if (text.trim()) parts.push({ type: "text", text });
    return parts;
  }

  /** The request body for one side ("A" or "B"), the draft message last when given. */
  body(side, draft) {
    const messages = [];
    const system = $("#system-prompt", this.root).value.trim();
    if (system) messages.push({ role: "system", content: system });
    const userContent = (parts) => (parts.length === 1 && parts[0].type === "text" ? parts[0].text : parts);
    for (const turn of this.turns) {
      const answer = turn.answers[side];
      if (answer && answer.state === "error") continue; // a refused exchange is not part of the conversation
      messages.push({ role: "user", content: userContent(turn.parts) });
      if (answer && answer.text && answer.state === "done") messages.push({ role: "assistant", content: answer.text });
    }
    if (draft && draft.length) messages.push({ role: "user", content: userContent(draft) });
    const body = { model: (side === "B" ? this.modelB : this.modelA).value, messages };
    const number = (id, parse) => { const v = $(id, this.root).value.trim(); return v === "" ? undefined : parse(v); };
    const settings = {
      temperature: number("#temperature", Number), top_p: number("#top-p", Number),
      max_tokens: number("#max-tokens", (v) => parseInt(v, 10)), seed: number("#seed", (v) => parseInt(v, 10)),
    };
    for (const [k, v] of Object.entries(settings)) if (v !== undefined) body[k] = v;
    Object.assign(body, this.structured.fields());
    if (!body.confidence && !body.max_retries) {
      body.stream = true;
      body.stream_options = { include_usage: true };
    }
    return body;
  }

  refreshCode() {
    clearTimeout(this.codeTimer);
    this.codeTimer = setTimeout(() => {
      let body;
      try {
        body = this.body("A", this.draftParts());
      } catch (problem) {
        return;
      }
      this.showCode(body);
    }, 150);
  }

  showCode(body) {
    const origin = window.location.origin;
    this.code = { python: pythonSnippet(body, origin, apiKey()), curl: curlSnippet(body, origin, apiKey()) };
    $("#python-code", this.root).textContent = shortened(this.code.python);
    $("#curl-code", this.root).textContent = shortened(this.code.curl);
  }

  async copy(which, button) {
    const text = this.code?.[which] || "";
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
    } catch (_) {
      button.textContent = "Select and copy by hand";
    }
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  }

  async send() {
    if (this.abort) return; // one exchange at a time; Stop ends it
    const parts = this.draftParts();
    if (!parts.length) { this.input.focus(); return; }
    const sides = this.compare.checked ? ["A", "B"] : ["A"];
    let bodies;
    try {
      bodies = Object.fromEntries(sides.map((s) => [s, this.body(s, parts)]));
    } catch (problem) {
      showError(problem, "Structured output");
      return;
    }
    clearError();
    this.showCode(bodies.A);
    const turn = { parts, answers: {} };
    this.turns.push(turn);
    this.input.value = "";
    this.attachments = [];
    this.renderAttachments();
    const answersBox = el("div", { class: "answers" });
    this.conversation.append(el("div", { class: "turn" }, this.userBubble(parts), answersBox));
    for (const side of sides) {
      turn.answers[side] = { side, model: bodies[side].model, text: "", state: "streaming" };
      answersBox.append(this.answerBox(turn.answers[side]));
    }
    this.abort = new AbortController();
    this.setBusy(true);
    try {
      await Promise.all(sides.map((s) => this.run(turn.answers[s], bodies[s], this.abort.signal)));
    } finally {
      this.abort = null;
      this.setBusy(false);
      this.refreshCode();
    }
  }

  setBusy(busy) {
    $("#send-button", this.root).disabled = busy;
    $("#stop-button", this.root).disabled = !busy;
  }

  userBubble(parts) {
    return el("div", { class: "message user", dataset: { testid: "user-message" } },
      parts.map((p) => {
        if (p.type === "text") return el("p", {}, p.text);
        if (p.type === "image_url") return p.image_url.url.startsWith("data:") ? el("img", { src: p.image_url.url, alt: "attached image" }) : el("p", { class: "muted" }, `image: ${p.image_url.url}`);
        const { url, ...options } = p.video_url;
        const opts = Object.entries(options).map(([k, v]) => `${k}=${v}`).join(", ");
        return el("p", { class: "muted" }, `video${url.startsWith("data:") ? "" : `: ${url}`}${opts ? ` (${opts})` : ""}`);
      }));
  }

  answerBox(answer) {
    answer.textEl = el("div", { class: "text" });
    answer.metaEl = el("div", { class: "meta", dataset: { testid: "answer-meta" } }, "waiting…");
    answer.extraEl = el("div", { class: "extra" });
    answer.el = el("div", { class: "message assistant", dataset: { testid: "assistant-message", model: answer.model, side: answer.side, state: "streaming" } },
      el("div", { class: "who" }, answer.model), answer.textEl, answer.extraEl, answer.metaEl);
    return answer.el;
  }

  async run(answer, body, signal) {
    const started = performance.now();
    let firstToken = null;
    let usage = null;
    let confidence = null;
    try {
      if (body.stream) {
        for await (const chunk of stream(CHAT_PATH, body, signal)) {
          if (chunk.usage) usage = chunk.usage;
          const delta = chunk.choices?.[0]?.delta?.content;
          if (delta) {
            if (firstToken === null) firstToken = performance.now() - started;
            answer.el.dataset.chunks = String(Number(answer.el.dataset.chunks || 0) + 1);
            answer.text += delta;
            answer.textEl.textContent = answer.text;
          }
        }
      } else {
        const result = await call("POST", CHAT_PATH, { json: body, signal });
        answer.text = result.choices[0].message.content || "";
        answer.textEl.textContent = answer.text;
        usage = result.usage;
        confidence = result.choices[0].confidence || null;
      }
      answer.state = "done";
    } catch (error) {
      if (error.name === "AbortError") {
        answer.state = "stopped";
        answer.extraEl.append(el("p", { class: "muted" }, "(stopped)"));
      } else {
        answer.state = "error";
        answer.extraEl.append(el("p", { class: "error-inline" }, error.message, error.param ? ` (param: ${error.param})` : ""));
        showError(error, answer.model);
      }
    }
    const seconds = (performance.now() - started) / 1000;
    answer.el.dataset.state = answer.state;
    const tokens = usage ? `${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion tokens` : "tokens: —";
    const first = firstToken !== null ? ` · first token ${(firstToken / 1000).toFixed(2)} s` : "";
    answer.metaEl.textContent = `${fmtNumber(seconds, 2)} s${first} · ${tokens}`;
    answer.el.dataset.latency = seconds.toFixed(3);
    if (usage) answer.el.dataset.completionTokens = String(usage.completion_tokens);
    const mode = this.structured.mode();
    if (answer.state === "done" && mode !== "off") {
      answer.extraEl.append(el("details", { open: true }, el("summary", {}, "Parsed"),
        parsedTable(answer.text, confidence, mode, this.structured.templateText())));
    }
  }
}

