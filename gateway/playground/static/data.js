// Data & training: tasks, datasets, samples (thumbnails, pages), annotation, training and versions.
import { ApiError, call, get, objectUrl, patch, post } from "./api.js";
import { variableOf, variableRow } from "./structured.js";
import { $, clearError, el, field, fmtNumber, showError } from "./ui.js";

const V2 = "/vlm/v2";
const PAGE_SIZE = 12;

export class DataView {
  constructor(root, { onChatWith } = {}) {
    this.root = root;
    this.onChatWith = onChatWith;
    this.detail = $("#data-detail", root);
    this.dataset = null;
    this.page = 1;
    this.thumbs = [];
    this.polling = null;
    this.bindForms();
  }

  async load() {
    await Promise.all([this.loadTasks(), this.loadDatasets()]);
  }

  guard(context, fn) {
    return async (...args) => {
      try {
        clearError();
        return await fn(...args);
      } catch (error) {
        showError(error, context);
      }
    };
  }

  // ---- lists -------------------------------------------------------------------------------------------

  async loadTasks() {
    try {
      const page = await get(`${V2}/task/?page_size=100`);
      $("#task-list", this.root).replaceChildren(...page.results.map((t) =>
        el("li", {}, el("button", { type: "button", class: "link", dataset: { testid: "task-item", id: t.id }, onclick: () => this.showTask(t.id) },
          t.name, el("small", {}, ` · ${t.production_version ? `v${t.production_version} in production` : "no version in production"}`)))));
    } catch (error) {
      showError(error, "Listing tasks");
    }
  }

  async loadDatasets() {
    try {
      const page = await get(`${V2}/dataset/?page_size=100`);
      this.datasets = page.results;
      $("#dataset-list", this.root).replaceChildren(...page.results.map((d) =>
        el("li", {}, el("button", { type: "button", class: "link", dataset: { testid: "dataset-item", id: d.id }, onclick: () => this.showDataset(d.id) },
          d.name, el("small", {}, ` · ${d.samples_count} samples, ${d.variables_count} variables`)))));
      const pick = $("#new-task-datasets", this.root);
      pick.replaceChildren(...page.results.map((d) => el("option", { value: d.id }, d.name)));
    } catch (error) {
      showError(error, "Listing datasets");
    }
  }

  bindForms() {
    const variables = $("#new-dataset-variables", this.root);
    $("#new-dataset-add-variable", this.root).addEventListener("click", () => variables.append(variableRow()));
    $("#new-dataset-form", this.root).addEventListener("submit", this.guard("Creating the dataset", (e) => this.createDataset(e)));
    $("#new-task-form", this.root).addEventListener("submit", this.guard("Creating the task", (e) => this.createTask(e)));
  }

  async createDataset(event) {
    event.preventDefault();
    const form = event.target;
    const rows = [...form.querySelectorAll(".variable-row")];
    rows.forEach((r) => { r.querySelector('[data-role="error"]').textContent = ""; });
    const dataset = await post(`${V2}/dataset/`, {
      name: form.elements.name.value, system_prompt: form.elements.system_prompt.value, user_prompt: form.elements.user_prompt.value,
    });
    // Variables first, then the template that names them (the platform checks the template against them).
    for (const row of rows) {
      try {
        await post(`${V2}/variable/`, { dataset: dataset.id, ...variableOf(row) });
      } catch (error) {
        row.querySelector('[data-role="error"]').textContent = fieldProblems(error);
        throw error;
      }
    }
    const template = form.elements.result_template.value.trim();
    if (template) await patch(`${V2}/dataset/${dataset.id}/`, { result_template: template });
    form.reset();
    $("#new-dataset-variables", this.root).replaceChildren();
    await this.loadDatasets();
    await this.showDataset(dataset.id);
  }

  async createTask(event) {
    event.preventDefault();
    const form = event.target;
    const task = await post(`${V2}/task/`, {
      name: form.elements.name.value, system_prompt: form.elements.system_prompt.value, user_prompt: form.elements.user_prompt.value,
      datasets: [...form.elements.datasets.selectedOptions].map((o) => o.value),
    });
    form.reset();
    await this.loadTasks();
    await this.showTask(task.id);
  }

  // ---- dataset: variables, samples, annotation --------------------------------------------------------

  async showDataset(id, page = 1) {
    this.stopPolling();
    try {
      clearError();
      const [dataset, variables] = await Promise.all([get(`${V2}/dataset/${id}/`), get(`${V2}/variable/?dataset=${id}&page_size=500`)]);
      this.dataset = dataset;
      this.variables = variables.results;
      this.page = page;
      const upload = el("input", { type: "file", id: "sample-upload", accept: "image/*", multiple: true, dataset: { testid: "sample-upload" },
        onchange: this.guard("Adding samples", (e) => this.upload([...e.target.files])) });
      this.detail.replaceChildren(
        el("h2", {}, `Dataset: ${dataset.name}`),
        el("p", { class: "muted" }, `${dataset.samples_count} samples · template: `, el("code", {}, dataset.result_template || "(none)")),
        el("table", { class: "grid" }, el("thead", {}, el("tr", {}, ["variable", "type", "rules"].map((h) => el("th", {}, h)))),
          el("tbody", {}, this.variables.map((v) => el("tr", {}, el("td", {}, v.name), el("td", {}, v.type), el("td", {}, rules(v)))))),
        field("Add samples from images (one sample per image)", upload),
        el("div", { id: "samples", class: "samples", dataset: { testid: "samples" } }),
        el("div", { class: "pager" },
          el("button", { type: "button", id: "prev-page", onclick: () => this.showSamples(this.page - 1) }, "‹ previous"),
          el("span", { id: "page-info", dataset: { testid: "page-info" } }),
          el("button", { type: "button", id: "next-page", onclick: () => this.showSamples(this.page + 1) }, "next ›")),
        el("div", { id: "annotation" }));
      await this.showSamples(page);
    } catch (error) {
      showError(error, "Opening the dataset");
    }
  }

  async showSamples(page) {
    const id = this.dataset.id;
    const data = await get(`${V2}/sample/?dataset=${id}&page=${page}&page_size=${PAGE_SIZE}`);
    this.page = page;
    this.thumbs.forEach((url) => URL.revokeObjectURL(url));
    this.thumbs = [];
    const pages = Math.max(1, Math.ceil(data.count / PAGE_SIZE));
    $("#page-info", this.detail).textContent = `page ${page} of ${pages} (${data.count} samples)`;
    $("#prev-page", this.detail).disabled = !data.previous;
    $("#next-page", this.detail).disabled = !data.next;
    const cards = data.results.map((s) => {
      const img = el("img", { alt: s.name || "sample image" });
      const first = s.images[0];
      if (first) objectUrl(`${V2}/image/${first.id}/file/`).then((url) => { this.thumbs.push(url); img.src = url; }).catch(() => {});
      const values = s.variable_values.map((v) => `${v.name}=${JSON.stringify(v.value?.value ?? v.value)}`).join(", ");
      return el("button", { type: "button", class: "sample-card", dataset: { testid: "sample-card", id: s.id }, onclick: () => this.annotate(s.id) },
        img, el("span", {}, s.name || s.id.slice(0, 8)), el("small", {}, s.test ? "test · " : "train · ", values || "no values"));
    });
    $("#samples", this.detail).replaceChildren(...(cards.length ? cards : [el("p", { class: "muted" }, "No samples yet: add images above.")]));
  }

  async upload(files) {
    for (const file of files) {
      const form = new FormData();
      form.append("file", file, file.name);
      const answer = await call("POST", `${V2}/image/`, { form });
      const image = answer.records ? answer.records[0] : answer;
      await post(`${V2}/sample/`, { dataset: this.dataset.id, image_ids: [image.id], name: file.name });
    }
    await this.showDataset(this.dataset.id, this.page);
    await this.loadDatasets();
  }

  async annotate(sampleId) {
    try {
      clearError();
      const sample = await get(`${V2}/sample/${sampleId}/`);
      const current = Object.fromEntries(sample.variable_values.map((v) => [v.dataset_variable, v.value?.value]));
      const controls = this.variables.map((v) => valueControl(v, current[v.id]));
      const testBox = el("input", { type: "checkbox", id: "sample-test", checked: sample.test, dataset: { testid: "sample-test" } });
      testBox.addEventListener("change", this.guard("Marking the sample", async () => {
        await post(`${V2}/sample/${sampleId}/${testBox.checked ? "set-test" : "set-untest"}/`, {});
        await this.showSamples(this.page);
      }));
      const form = el("form", { class: "annotation", novalidate: true, dataset: { testid: "annotation-form", sample: sampleId } },
        el("h3", {}, `Sample ${sample.name || sample.id}`),
        el("label", { class: "inline" }, testBox, "test sample (held out of training)"),
        controls.map((c) => c.root),
        el("button", { type: "submit", dataset: { testid: "save-values" } }, "Save values"),
        el("span", { class: "muted", role: "status", dataset: { testid: "save-status" } }));
      form.addEventListener("submit", this.guard("Saving values", (e) => this.saveValues(e, sampleId, controls, current)));
      $("#annotation", this.detail).replaceChildren(form);
    } catch (error) {
      showError(error, "Opening the sample");
    }
  }

  async saveValues(event, sampleId, controls, current) {
    event.preventDefault();
    const status = event.target.querySelector('[data-testid="save-status"]');
    status.textContent = "";
    let failed = 0;
    for (const control of controls) {
      control.error.textContent = "";
      const value = control.read();
      const id = control.variable.id;
      try {
        if (value === undefined) {
          if (current[id] !== undefined) await post(`${V2}/sample/${sampleId}/remove-variable-value/`, { dataset_variable: id });
          delete current[id];
        } else {
          await post(`${V2}/sample/${sampleId}/add-variable-value/`, { dataset_variable: id, value: { value } });
          current[id] = value;
        }
      } catch (error) {
        if (!(error instanceof ApiError) || error.status !== 400) throw error;
        control.error.textContent = fieldProblems(error);
        failed += 1;
      }
    }
    status.textContent = failed ? `${failed} value(s) refused: see the fields` : "saved";
    await this.showSamples(this.page);
  }

  // ---- task: datasets, training, versions -------------------------------------------------------------

  async showTask(id) {
    this.stopPolling();
    try {
      clearError();
      const [task, versions, jobs] = await Promise.all([
        get(`${V2}/task/${id}/`), get(`${V2}/task/${id}/models/?page_size=100`), get(`${V2}/task/${id}/training-jobs/?page_size=1`),
      ]);
      this.task = task;
      const names = Object.fromEntries((this.datasets || []).map((d) => [d.id, d.name]));
      const attach = el("select", { id: "attach-dataset", "aria-label": "dataset to attach" },
        (this.datasets || []).filter((d) => !task.datasets.includes(d.id)).map((d) => el("option", { value: d.id }, d.name)));
      const steps = el("input", { type: "number", id: "train-steps", min: 1, class: "num", placeholder: "default" });
      this.detail.replaceChildren(
        el("h2", {}, `Task: ${task.name}`),
        el("p", { class: "muted" }, `model name: task-${task.id} · production version: ${task.production_version || "none"}`),
        el("p", {}, "Datasets: ", task.datasets.map((d) => names[d] || d).join(", ") || "none"),
        el("div", { class: "row" }, field("Attach a dataset", attach),
          el("button", { type: "button", onclick: this.guard("Attaching the dataset", async () => {
            await post(`${V2}/task/${id}/add-dataset/`, { dataset_id: attach.value });
            await this.showTask(id);
          }) }, "Attach")),
        el("h3", {}, "Training"),
        el("div", { class: "row" }, field("Steps (max_steps)", steps),
          el("button", { type: "button", dataset: { testid: "train-button" }, onclick: this.guard("Starting training", async () => {
            const body = steps.value ? { hyperparameters: { max_steps: parseInt(steps.value, 10) } } : {};
            const job = await post(`${V2}/task/${id}/train/`, body);
            this.watchJob(job.id);
          }) }, "Start training")),
        el("div", { id: "job", dataset: { testid: "training-job" } }),
        el("h3", {}, "Versions"),
        versionsTable(versions.results, task, {
          setProduction: this.guard("Setting the production version", async (v) => {
            await patch(`${V2}/task/${id}/`, { production_version: v });
            await this.showTask(id);
            await this.loadTasks();
          }),
          chat: (name) => this.onChatWith?.(name),
        }),
        el("div", { id: "loss-curve" }));
      if (jobs.results[0]) this.watchJob(jobs.results[0].id);
      const latest = versions.results.reduce((a, b) => (a && a.version > b.version ? a : b), null);
      if (latest) this.showLossCurve(latest);
    } catch (error) {
      showError(error, "Opening the task");
    }
  }

  async showLossCurve(version) {
    const box = $("#loss-curve", this.detail);
    if (!box) return;
    try {
      const url = await objectUrl(`${V2}/model/${version.id}/loss-curve/`);
      box.replaceChildren(el("h4", {}, `Loss curve, v${version.version}`), el("img", { src: url, alt: `training loss curve of version ${version.version}`, class: "loss" }));
    } catch (error) {
      box.replaceChildren(el("p", { class: "muted" }, `No loss curve: ${error.message}`));
    }
  }

  watchJob(jobId) {
    this.stopPolling();
    const tick = async () => {
      const box = $("#job", this.detail);
      if (!box) return this.stopPolling();
      try {
        const [job, events] = await Promise.all([get(`${V2}/training-job/${jobId}/`), get(`${V2}/training-job/${jobId}/events/?page_size=500`)]);
        box.replaceChildren(jobView(job, events.results || events.data || []));
        if (["succeeded", "failed", "cancelled"].includes(job.status)) {
          this.stopPolling();
          if (job.status === "succeeded" && box.dataset.seenRunning) {
            await this.showTask(this.task.id);
            await this.loadTasks(); // the list shows the new production version
          }
        } else {
          box.dataset.seenRunning = "1";
        }
      } catch (error) {
        this.stopPolling();
        showError(error, "Watching training");
      }
    };
    tick();
    this.polling = setInterval(tick, 1000);
  }

  stopPolling() {
    if (this.polling) clearInterval(this.polling);
    this.polling = null;
  }
}

function rules(v) {
  const out = [];
  if (v.choices) out.push(`choices: ${v.choices}`);
  if (v.min_value != null) out.push(`min ${v.min_value}`);
  if (v.max_value != null) out.push(`max ${v.max_value}`);
  if (v.step_size != null) out.push(`step ${v.step_size}`);
  if (v.min_length != null) out.push(`min length ${v.min_length}`);
  if (v.max_length != null) out.push(`max length ${v.max_length}`);
  if (v.required) out.push("required");
  return out.join(", ");
}

/** The gateway's field problems as one line ("value: ... ; name: ..."), else its message. */
function fieldProblems(error) {
  const fields = Object.entries(error.fields || {});
  return fields.length ? fields.map(([k, v]) => `${k}: ${v}`).join("; ") : error.message;
}

/** A form control made from a variable's definition; read() gives the typed value or undefined. */
function valueControl(v, current) {
  const id = `value-${v.name}`;
  let input;
  let read;
  if (v.choices && v.type !== "array") {
    const choices = v.choices.split(",").map((c) => c.trim()).filter(Boolean);
    input = el("select", { id }, el("option", { value: "" }, "(no value)"), choices.map((c) => el("option", { value: c, selected: String(current) === c }, c)));
    read = () => (input.value === "" ? undefined : v.type === "integer" ? parseInt(input.value, 10) : v.type === "float" ? Number(input.value) : input.value);
  } else if (v.type === "boolean") {
    input = el("input", { id, type: "checkbox", checked: current === true });
    read = () => input.checked;
  } else if (v.type === "integer" || v.type === "float") {
    input = el("input", { id, type: "number", min: v.min_value ?? undefined, max: v.max_value ?? undefined,
      step: v.step_size ?? (v.type === "integer" ? 1 : "any"), value: current ?? "" });
    read = () => (input.value === "" ? undefined : Number(input.value));
  } else if (v.type === "string") {
    input = el("input", { id, type: "text", minlength: v.min_length ?? undefined, maxlength: v.max_length ?? undefined, value: current ?? "" });
    read = () => (input.value === "" ? undefined : input.value);
  } else {
    input = el("textarea", { id, rows: 2 });
    input.value = current === undefined ? "" : JSON.stringify(current);
    read = () => {
      if (input.value.trim() === "") return undefined;
      try { return JSON.parse(input.value); } catch (_) { return input.value; }
    };
  }
  input.dataset.testid = id;
  const error = el("small", { class: "field-error", role: "alert", dataset: { testid: `field-error-${v.name}` } });
  const root = el("div", { class: "field-wrap" }, field(`${v.name} (${v.type})${v.required ? " *" : ""}`, input, v.description || rules(v)), error);
  return { root, read, error, variable: v };
}

function jobView(job, events) {
  const pct = Math.round((job.progress || 0) * 100);
  const bar = el("progress", { max: 100, value: pct, "aria-label": "training progress" });
  const eta = job.eta_s === null || job.eta_s === undefined ? "—" : `${Math.round(job.eta_s)} s`;
  return el("div", { class: "job", dataset: { status: job.status } },
    el("p", {}, el("strong", { dataset: { testid: "job-status" } }, job.status), ` · step ${job.step}/${job.total_steps ?? "?"} · loss ${fmtNumber(job.loss)} · ETA ${eta}`),
    bar, job.error ? el("p", { class: "error-inline" }, job.error) : null,
    el("details", {}, el("summary", {}, `events (${events.length})`),
      el("ol", { class: "events" }, events.slice(-30).map((e) => el("li", {}, `[${e.level}] ${e.message}`)))));
}

function versionsTable(versions, task, actions) {
  if (!versions.length) return el("p", { class: "muted" }, "No trained versions yet.");
  const pct = (x) => (x === null || x === undefined ? "—" : `${Math.round(x * 1000) / 10} %`);
  const score = (m, which) => (m?.note && which === "new" ? m.note : pct(m?.[which]?.score));
  return el("table", { class: "grid", dataset: { testid: "versions" } },
    el("thead", {}, el("tr", {}, ["version", "score new", "base", "previous", "valid", "train/test", "", ""].map((h) => el("th", {}, h)))),
    el("tbody", {}, versions.map((v) => el("tr", { dataset: { version: v.version } },
      el("td", {}, `v${v.version}`, v.version === task.production_version ? el("strong", {}, " (production)") : ""),
      el("td", {}, score(v.metrics, "new")), el("td", {}, score(v.metrics, "base")), el("td", {}, score(v.metrics, "previous")),
      el("td", {}, pct(v.metrics?.new?.valid_rate)), el("td", {}, `${v.train_samples}/${v.test_samples}`),
      el("td", {}, v.version === task.production_version ? "" : el("button", { type: "button", class: "small", onclick: () => actions.setProduction(v.version) }, "set production")),
      el("td", {}, el("button", { type: "button", class: "small", onclick: () => actions.chat(v.model) }, "chat"))))));
}
