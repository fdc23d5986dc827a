// The install key dialog: create a key (expiry, note), then show the exact
// enrollment command the console answered, with a copy button. The command
// wraps only between its words, never inside a flag, the key or the
// fingerprint (browsers break after a hyphen), and each flag with its value
// starts a line when they do not fit on the one before.

import { call } from "./api.js";
import { h } from "./dom.js";
import { until, dateTime } from "./format.js";

function $(id) {
  return document.getElementById(id);
}

let busy = false;

export function initKeyDialog() {
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    create();
  });
  $("key-cancel").addEventListener("click", () => $("key-dialog").close());
  $("kr-copy").addEventListener("click", copy);
  $("kr-command").addEventListener("focus", () => selectCommand());
}

export function openKeyDialog() {
  $("key-general").hidden = true;
  $("key-inputs").hidden = false;
  $("key-result").hidden = true;
  $("key-create").hidden = false;
  $("key-create").disabled = false;
  $("key-cancel").textContent = "Cancel";
  $("kf-expires").value = "24h";
  $("kf-note").value = "";
  $("kr-command").textContent = "";
  $("kr-copy").textContent = "Copy";
  $("kr-copy-state").textContent = "";
  $("key-title").textContent = "New install key";
  $("key-dialog").showModal();
  $("kf-expires").focus();
}

async function create() {
  if (busy || !$("key-result").hidden) return;
  busy = true;
  $("key-create").disabled = true;
  $("key-general").hidden = true;
  try {
    const note = $("kf-note").value.trim();
    const res = await call("POST", "install-keys", { body: { expires_in: $("kf-expires").value, ...(note ? { note } : {}) } });
    $("key-title").textContent = "Install key created";
    $("key-inputs").hidden = true;
    $("key-create").hidden = true;
    $("key-cancel").textContent = "Done";
    showCommand(res.enroll_command);
    $("kr-expiry").textContent = (note ? `Note: ${note}. ` : "") +
      `The key works once and expires ${until(res.expires_at)} (${dateTime(res.expires_at)}). ` +
      "It is not shown again: if you lose it, create another.";
    $("key-result").hidden = false;
    $("kr-copy").focus();
  } catch (ex) {
    if (ex.status === 401) return;
    $("key-general").textContent = ex.message;
    $("key-general").className = "form-alert bad";
    $("key-general").hidden = false;
    $("key-create").disabled = false;
  } finally {
    busy = false;
  }
}

// copy puts the command on the clipboard; where the browser refuses, it
// selects the text for Ctrl+C.
async function copy() {
  let ok = false;
  try {
    await navigator.clipboard.writeText($("kr-command").textContent);
    ok = true;
  } catch {
    selectCommand();
    try {
      ok = document.execCommand("copy");
    } catch {
      ok = false;
    }
  }
  $("kr-copy").textContent = ok ? "Copied" : "Copy";
  $("kr-copy-state").textContent = ok ? "The command is on the clipboard." : "The browser did not allow copying: the command is selected, press Ctrl+C.";
  if (ok) setTimeout(() => { $("kr-copy").textContent = "Copy"; }, 2500);
}

// showCommand lays the command out: one group per flag and its value, an
// inline block that wraps as a whole, made of words that never break. Its
// text stays the console's, character for character.
function showCommand(cmd) {
  const words = String(cmd).split(" ");
  const groups = [];
  for (const w of words) {
    if (!groups.length || (w.startsWith("--") && groups[groups.length - 1].some((x) => !x.startsWith("--")))) groups.push([]);
    groups[groups.length - 1].push(w);
  }
  const parts = [];
  groups.forEach((g, i) => {
    if (i) parts.push(" ");
    const words = [];
    g.forEach((w, j) => {
      if (j) words.push(" ");
      words.push(h("span.word", null, w));
    });
    parts.push(h("span.arg", null, ...words));
  });
  $("kr-command").replaceChildren(...parts);
}

// selectCommand selects the whole command, for Ctrl+C.
function selectCommand() {
  const range = document.createRange();
  range.selectNodeContents($("kr-command"));
  const sel = window.getSelection();
  sel.removeAllRanges();
  sel.addRange(range);
}
