// The capture dialog: add or edit one capture of a device. Saving PUTs the
// device's whole list with If-Match: the generation it was read at. The
// console's validation messages (422) appear under the field they name; a
// stale generation (409) offers to reload the list and keeps the edit.

import { call } from "./api.js";
import { h } from "./dom.js";
import { parseValidation, sentenceCase } from "./format.js";

const defaultDir = (name) => `/var/lib/ringtap/${name || "NAME"}`;

let state = null; // the open dialog's {deviceId, captures, generation, index, original, onSaved}

function $(id) {
  return document.getElementById(id);
}

const fields = () => [...$("capture-form").querySelectorAll("[data-field]")];

export function initCaptureDialog() {
  const form = $("capture-form");
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    save();
  });
  $("capture-cancel").addEventListener("click", () => $("capture-dialog").close());
  $("capture-dialog").addEventListener("close", () => { state = null; });
  // The output directory follows the name until someone edits it.
  $("cf-name").addEventListener("input", () => {
    const dir = $("cf-dir");
    if (dir.dataset.auto === "true") dir.value = defaultDir($("cf-name").value.trim());
  });
  $("cf-dir").addEventListener("input", () => { $("cf-dir").dataset.auto = "false"; });
  for (const f of fields()) f.addEventListener("input", () => clearFieldError(f));
}

// openCaptureDialog opens the dialog for captures[index], or a new capture
// when index is -1.
export function openCaptureDialog({ deviceId, hostname, captures, generation, index, interfaces, onSaved }) {
  const original = index >= 0 ? captures[index] : null;
  state = { deviceId, captures, generation, index, original, onSaved };
  $("capture-title").textContent = original ? `Edit capture ${original.name}` : "Add capture";
  $("capture-sub").textContent = `on ${hostname} · based on generation ${generation}`;
  $("cf-interfaces").replaceChildren(...interfaces.map((i) => h("option", { value: i })));
  const c = original || {};
  $("cf-name").value = c.name || "";
  $("cf-interface").value = c.interface || (interfaces.length === 1 ? interfaces[0] : "");
  $("cf-filter").value = c.filter || "";
  $("cf-snaplen").value = c.snaplen || "";
  $("cf-hook").value = c.hook || "auto";
  $("cf-direction").value = c.direction || "in";
  $("cf-dir").value = (c.output && c.output.dir) || "";
  $("cf-dir").dataset.auto = String(!original);
  if (!original) $("cf-dir").value = "";
  $("cf-dir").placeholder = defaultDir("web");
  clearErrors();
  setBusy(false);
  $("capture-dialog").showModal();
  (original ? $("cf-filter") : $("cf-name")).focus();
}

// build is the capture the form describes, on top of the original so that
// fields the form does not show (rotation, retention, export) are kept.
function build() {
  const orig = state.original || {};
  const c = structuredClone(orig);
  const put = (key, value, absent) => {
    if (value === absent && !(key in orig)) delete c[key];
    else c[key] = value;
  };
  c.name = $("cf-name").value.trim();
  c.interface = $("cf-interface").value.trim();
  const filter = $("cf-filter").value.trim();
  if (filter) c.filter = filter;
  else delete c.filter;
  const snap = $("cf-snaplen").value.trim();
  if (snap === "") delete c.snaplen;
  else c.snaplen = Number(snap);
  put("hook", $("cf-hook").value, "auto");
  put("direction", $("cf-direction").value, "in");
  c.output = { ...(orig.output || {}), dir: $("cf-dir").value.trim() || ($("cf-dir").dataset.auto === "true" && c.name ? defaultDir(c.name) : "") };
  return c;
}

async function save() {
  if (!state) return;
  const s = state;
  const c = build();
  const list = s.captures.slice();
  const at = s.index >= 0 ? s.index : list.length;
  list[at] = c;
  clearErrors();
  setBusy(true);
  try {
    const data = await call("PUT", `devices/${encodeURIComponent(s.deviceId)}/captures`, { body: { captures: list }, ifMatch: s.generation });
    if (state !== s) return;
    $("capture-dialog").close();
    s.onSaved(data || { generation: s.generation + 1, captures: list });
  } catch (ex) {
    if (state !== s || ex.status === 401) return;
    if (ex.status === 422) showValidation(ex, list, at);
    else if (ex.status === 409) showConflict(s);
    else general(ex.message);
  } finally {
    if (state === s) setBusy(false);
  }
}

// showValidation puts each message of a 422 under the field it names; a
// message about another capture, or a field the form does not show, goes
// at the top of the form.
function showValidation(ex, list, at) {
  const msgs = parseValidation(ex.errors);
  if (!msgs.length) return general(ex.message);
  const top = [];
  let first = null;
  for (const m of msgs) {
    const f = m.index === at ? fieldFor(m.field) : null;
    if (f) {
      setFieldError(f, sentenceCase(m.message));
      first = first || f;
    } else if (m.index >= 0 && m.index !== at) {
      top.push(`${list[m.index] ? `Capture ${list[m.index].name}` : `captures[${m.index}]`}: ${m.field ? m.field + ": " : ""}${m.message}`);
    } else {
      top.push(m.field ? `${m.field}: ${m.message}` : m.message);
    }
  }
  if (top.length) general(first ? "The console also says:" : "The console did not accept this capture:", top);
  (first || $("cf-name")).focus();
}

// fieldFor is the form control for a validation path such as "filter" or
// "output.dir".
function fieldFor(path) {
  return fields().find((f) => f.dataset.field === path) || null;
}

function showConflict(s) {
  const reload = h("button.btn.small", { type: "button", id: "capture-reload" }, "Reload");
  reload.addEventListener("click", async () => {
    reload.disabled = true;
    try {
      const data = await call("GET", `devices/${encodeURIComponent(s.deviceId)}/captures`);
      if (state !== s) return;
      s.captures = data.captures || [];
      s.generation = data.generation;
      // Edit the same capture in the new list, or add it if it is gone.
      s.index = s.original ? s.captures.findIndex((c) => c.name === s.original.name) : -1;
      if (s.index < 0) s.original = null;
      $("capture-sub").textContent = `${$("capture-sub").textContent.replace(/ · based on generation \d+$/, "")} · based on generation ${s.generation}`;
      general(`Reloaded generation ${s.generation}. Your edit is still in the form: save again to apply it on top.`, [], "info");
    } catch (ex) {
      if (ex.status !== 401) general(ex.message);
    }
  });
  general("Someone else changed this device's captures since you opened this form.", [], "warn", reload);
}

function general(text, items = [], kind = "bad", action = null) {
  const el = $("capture-general");
  el.className = `form-alert ${kind}`;
  const parts = [h("div.form-alert-row", null, h("p", null, text), action)];
  if (items.length) parts.push(h("ul", null, items.map((i) => h("li", null, i))));
  el.replaceChildren(...parts);
  el.hidden = false;
}

function setFieldError(f, msg) {
  f.setAttribute("aria-invalid", "true");
  const p = $(f.getAttribute("aria-describedby"));
  if (p) p.textContent = msg;
  f.closest(".field").classList.add("invalid");
}

function clearFieldError(f) {
  f.removeAttribute("aria-invalid");
  const p = $(f.getAttribute("aria-describedby"));
  if (p) p.textContent = "";
  f.closest(".field").classList.remove("invalid");
}

function clearErrors() {
  for (const f of fields()) clearFieldError(f);
  $("capture-general").hidden = true;
  $("capture-general").replaceChildren();
}

function setBusy(busy) {
  $("capture-save").disabled = busy;
  $("capture-busy").textContent = busy ? "Saving…" : "";
}
