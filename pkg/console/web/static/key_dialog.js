// The install key dialog: create a key (expiry, note), then show the exact
// enrollment command the console answered, with a copy button.

import { call } from "./api.js";
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
  $("kr-command").addEventListener("focus", () => $("kr-command").select());
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
  $("kr-command").value = "";
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
    const cmd = $("kr-command");
    cmd.value = res.enroll_command;
    $("kr-expiry").textContent = (note ? `Note: ${note}. ` : "") +
      `The key works once and expires ${until(res.expires_at)} (${dateTime(res.expires_at)}). ` +
      "It is not shown again: if you lose it, create another.";
    $("key-result").hidden = false;
    // Show the whole command, however long the console's address.
    cmd.style.height = "auto";
    cmd.style.height = `${cmd.scrollHeight + 2}px`;
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
  const input = $("kr-command");
  let ok = false;
  try {
    await navigator.clipboard.writeText(input.value);
    ok = true;
  } catch {
    input.focus();
    input.select();
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
