// The model picker: /v1/models grouped as base models, adapters, and trained task models with versions.
import { get } from "./api.js";
import { el } from "./ui.js";

const TASK_MODEL = /^task-([0-9a-f-]{36})(?:-v(\d+))?$/;

/** {base: [...], adapters: [...], tasks: [...]} of model cards; task cards get a readable label. */
export async function loadModels() {
  const list = await get("/v1/models");
  let taskNames = {};
  try {
    const tasks = await get("/vlm/v2/task/?page_size=500");
    taskNames = Object.fromEntries(tasks.results.map((t) => [t.id, t.name]));
  } catch (_) {
    /* a key without platform access still chats */
  }
  const groups = { base: [], adapters: [], tasks: [] };
  for (const card of list.data) {
    const task = card.id.match(TASK_MODEL);
    if (task) {
      const name = taskNames[task[1]] || task[1].slice(0, 8);
      groups.tasks.push({ ...card, label: `${name} ${task[2] ? `v${task[2]}` : "(production)"} — ${card.id}` });
    } else if (card.parent) {
      groups.adapters.push({ ...card, label: `${card.id} (adapter of ${card.parent})` });
    } else {
      groups.base.push({ ...card, label: card.id });
    }
  }
  groups.tasks.sort((a, b) => a.id.localeCompare(b.id, undefined, { numeric: true }));
  return groups;
}

/** Fill a <select> with the groups, keeping the current choice when it still exists. */
export function fillSelect(select, groups, preferred) {
  const keep = select.value || preferred;
  const group = (label, cards) =>
    cards.length ? el("optgroup", { label }, cards.map((c) => el("option", { value: c.id }, c.label))) : null;
  select.replaceChildren(
    group("Base models", groups.base),
    group("Adapters", groups.adapters),
    group("Task models and versions", groups.tasks),
  );
  const ids = [...select.options].map((o) => o.value);
  if (keep && ids.includes(keep)) select.value = keep;
  return ids;
}
