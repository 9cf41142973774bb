// Structured output: the request fields (JSON Schema, json_object, or a result template with typed
// variables, as the platform's variables), and the answer as a parsed table coloured by confidence.
import { el, field, fmtNumber } from "./ui.js";

export const VARIABLE_TYPES = ["string", "integer", "float", "boolean", "array", "object"];

export const EXAMPLE_SCHEMA = JSON.stringify(
  {
    type: "object",
    properties: {
      color: { type: "string", enum: ["red", "green", "blue", "yellow"] },
      brightness: { type: "integer", minimum: 0, maximum: 9 },
    },
    required: ["color", "brightness"],
  },
  null,
  2,
);

/** One editable variable row (name, type, rules); read back with variableOf(row). */
export function variableRow(initial = {}, onRemove) {
  const v = { name: "", type: "string", ...initial };
  const typeSelect = el("select", { "data-role": "type", "aria-label": "type" },
    VARIABLE_TYPES.map((t) => el("option", { value: t, selected: t === v.type }, t)));
  const input = (role, label, attrs = {}) =>
    el("input", { "data-role": role, "aria-label": label, placeholder: label, value: v[role] ?? "", ...attrs });
  const row = el("div", { class: "variable-row", dataset: { testid: "variable-row" } },
    input("name", "variable name", { required: true, class: "var-name" }),
    typeSelect,
    input("choices", "choices (a,b,c)"),
    input("min_value", "min", { type: "number", step: "any", class: "num" }),
    input("max_value", "max", { type: "number", step: "any", class: "num" }),
    input("step_size", "step", { type: "number", step: "any", class: "num" }),
    input("min_length", "min len", { type: "number", class: "num" }),
    input("max_length", "max len", { type: "number", class: "num" }),
    el("label", { class: "inline" }, el("input", { type: "checkbox", "data-role": "required", checked: v.required !== false }), "required"),
    el("button", { type: "button", class: "small", "aria-label": "remove variable", onclick: () => { row.remove(); onRemove?.(); } }, "×"),
    el("small", { class: "field-error", "data-role": "error", role: "alert" }),
  );
  return row;
}

/** The variable definition of a row, as the chat extension and the platform API take it. */
export function variableOf(row) {
  const value = (role) => row.querySelector(`[data-role="${role}"]`).value.trim();
  const out = { name: value("name"), type: value("type"), required: row.querySelector('[data-role="required"]').checked };
  if (value("choices")) out.choices = value("choices");
  for (const key of ["min_value", "max_value", "step_size"]) if (value(key) !== "") out[key] = Number(value(key));
  for (const key of ["min_length", "max_length"]) if (value(key) !== "") out[key] = parseInt(value(key), 10);
  return out;
}

/** The "Structured output" settings block; fields() gives the request's extra fields (or throws). */
export function structuredEditor(onChange) {
  const mode = el("select", { id: "structured-mode", dataset: { testid: "structured-mode" } },
    el("option", { value: "off" }, "off (free text)"),
    el("option", { value: "json_schema" }, "JSON Schema"),
    el("option", { value: "json_object" }, "any JSON object"),
    el("option", { value: "template" }, "result template + variables"));
  const schema = el("textarea", { id: "json-schema", rows: 8, spellcheck: false, dataset: { testid: "schema-input" } });
  schema.value = EXAMPLE_SCHEMA;
  const template = el("textarea", { id: "result-template", rows: 3, spellcheck: false, dataset: { testid: "template-input" } });
  template.value = '{"color": "{{color}}"}';
  const variables = el("div", { class: "variables" });
  variables.append(variableRow({ name: "color", type: "string", choices: "red,green,blue,yellow" }, onChange));
  const addVariable = el("button", { type: "button", class: "small", onclick: () => { variables.append(variableRow({}, onChange)); onChange?.(); } }, "+ variable");
  const confidence = el("input", { type: "checkbox", id: "confidence", dataset: { testid: "confidence-toggle" } });
  const retries = el("input", { type: "number", id: "max-retries", min: 0, max: 5, placeholder: "0", class: "num" });
  const schemaBlock = el("div", { class: "mode-json_schema" }, field("JSON Schema", schema));
  const templateBlock = el("div", { class: "mode-template" },
    field("Result template ({{variable}} placeholders)", template),
    el("div", { class: "label" }, "Variables"), variables, addVariable);
  const extras = el("div", { class: "structured-extras" },
    el("label", { class: "inline" }, confidence, "confidence per field (not streamed)"),
    field("max_retries", retries));
  const root = el("fieldset", { class: "structured" }, el("legend", {}, "Structured output"),
    field("Mode", mode), schemaBlock, templateBlock, extras);
  const sync = () => {
    schemaBlock.hidden = mode.value !== "json_schema";
    templateBlock.hidden = mode.value !== "template";
    extras.hidden = mode.value === "off";
  };
  mode.addEventListener("change", sync);
  root.addEventListener("input", () => onChange?.());
  root.addEventListener("change", () => onChange?.());
  sync();

  return {
    root,
    mode: () => mode.value,
    templateText: () => template.value,
    /** Extra request fields, or throws {message, param} for what the editor itself can tell is wrong. */
    fields() {
      const out = {};
      if (mode.value === "json_schema") {
        let parsed;
        try {
          parsed = JSON.parse(schema.value);
        } catch (exc) {
          throw { message: `The JSON Schema is not JSON: ${exc.message}`, param: "response_format.json_schema.schema" };
        }
        out.response_format = { type: "json_schema", json_schema: { name: "answer", schema: parsed, strict: true } };
      } else if (mode.value === "json_object") {
        out.response_format = { type: "json_object" };
      } else if (mode.value === "template") {
        out.result_template = template.value;
        out.variables = [...variables.querySelectorAll(".variable-row")].map(variableOf);
      }
      if (mode.value !== "off") {
        if (confidence.checked) out.confidence = true;
        if (retries.value !== "" && Number(retries.value) > 0) out.max_retries = Number(retries.value);
      }
      return out;
    },
  };
}

/** Flatten parsed JSON into [path, value] rows: color, size.width, tags[0]; a scalar answer is "$". */
export function flatten(value, path = "", rows = []) {
  if (Array.isArray(value)) {
    if (!value.length) rows.push([path || "$", "[]"]);
    value.forEach((item, i) => flatten(item, `${path}[${i}]`, rows));
  } else if (value !== null && typeof value === "object") {
    const entries = Object.entries(value);
    if (!entries.length) rows.push([path || "$", "{}"]);
    for (const [key, item] of entries) flatten(item, path ? `${path}.${key}` : key, rows);
  } else {
    rows.push([path || "$", value]);
  }
  return rows;
}

/** Values of a non-JSON template's variables, read back with a regex made from the template. */
export function parseTemplate(template, text) {
  const names = [];
  const pattern = template
    .split(/(\{\{\s*[A-Za-z_][A-Za-z0-9_]*\s*\}\})/)
    .map((part) => {
      const m = part.match(/^\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$/);
      if (m) { names.push(m[1]); return "([\\s\\S]*?)"; }
      return part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    })
    .join("");
  const match = text.trim().match(new RegExp(`^${pattern.trim()}$`));
  if (!match) return null;
  return names.map((name, i) => [name, match[i + 1]]);
}

export function confidenceClass(c) {
  if (c === undefined || c === null) return "conf-none";
  return c >= 0.8 ? "conf-high" : c >= 0.5 ? "conf-mid" : "conf-low";
}

/** The parsed table of a structured answer; each value cell coloured by its confidence (number on hover). */
export function parsedTable(text, confidence, mode, template) {
  let rows = null;
  try {
    rows = flatten(JSON.parse(text));
  } catch (_) {
    if (mode === "template") rows = parseTemplate(template, text);
  }
  if (!rows) return el("p", { class: "muted" }, "The answer did not parse as JSON or as the template.");
  const conf = confidence || {};
  const body = rows.map(([path, value]) => {
    const c = conf[path];
    const title = c === undefined ? "no confidence for this field" : `confidence ${c.toFixed(3)}`;
    return el("tr", {},
      el("th", { scope: "row" }, path),
      el("td", { class: `value ${confidenceClass(c)}`, title, dataset: { testid: "structured-value", field: path, confidence: c === undefined ? "" : String(c) } },
        typeof value === "string" ? value : JSON.stringify(value)),
      el("td", { class: "num" }, c === undefined ? "" : fmtNumber(c, 3)));
  });
  const whole = conf.$ !== undefined ? el("caption", {}, `whole answer: confidence ${fmtNumber(conf.$, 3)}`) : null;
  return el("table", { class: "parsed", dataset: { testid: "structured-table" } }, whole,
    el("thead", {}, el("tr", {}, el("th", {}, "field"), el("th", {}, "value"), el("th", {}, "confidence"))),
    el("tbody", {}, body));
}
