// Entry point: the API key (asked once, kept in this browser), the two views and switching between them.
import { apiKey, setApiKey } from "./api.js";
import { ChatView } from "./chat.js";
import { DataView } from "./data.js";
import { $, $$, clearError } from "./ui.js";

const chat = new ChatView($("#view-chat"));
const data = new DataView($("#view-data"), {
  onChatWith: async (model) => {
    show("chat");
    await chat.loadModels();
    chat.selectModel(model);
  },
});
let dataLoaded = false;

function show(view) {
  for (const tab of $$(".tabs [role=tab]")) tab.setAttribute("aria-selected", String(tab.dataset.view === view));
  $("#view-chat").hidden = view !== "chat";
  $("#view-data").hidden = view !== "data";
  if (view === "data" && !dataLoaded) {
    dataLoaded = true;
    data.load();
  }
  if (location.hash !== `#${view}`) history.replaceState(null, "", `#${view}`);
}

for (const tab of $$(".tabs [role=tab]")) tab.addEventListener("click", () => show(tab.dataset.view));

const keyInput = $("#api-key");
keyInput.value = apiKey();
$("#key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  setApiKey(keyInput.value.trim());
  clearError();
  dataLoaded = false;
  await chat.loadModels();
  if (!$("#view-data").hidden) show("data");
});

document.body.dataset.ready = "loading";
show(location.hash === "#data" ? "data" : "chat");
chat.loadModels().then(() => {
  document.body.dataset.ready = "ready";
});
