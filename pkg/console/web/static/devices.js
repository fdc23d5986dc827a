// The devices view: every enrolled sensor with its health at a glance:
// state, the errors its agent reports, a certificate that needs
// re-enrollment, captures running (and which are not), drops.
//
// The console's list carries what the page shows of each device's last
// heartbeat (error_texts, needs_reenroll, capture_states). From a console
// whose list lacks any of them, that comes from the device's last
// heartbeat, GET /api/v1/devices/ID/status, fetched again only when the
// device's last_heartbeat changes, a few at a time, and only for devices
// that are not revoked.

import { call } from "./api.js";
import { h, setText, setAttr, patchRows, replaceChildrenIfChanged } from "./dom.js";
import { ago, until, dateTime, count, exactCount, parseTime, plural } from "./format.js";
import { openKeyDialog } from "./key_dialog.js";

const soon = 7 * 24 * 3600 * 1000; // a certificate expiring within this is flagged
const statusFetches = 4; // heartbeats fetched at once

export function devicesView(root) {
  const summary = h("div.summary", { "aria-label": "Fleet summary" });
  const search = h("input.search", {
    type: "search", placeholder: "Filter by host, id or version", "aria-label": "Filter devices",
    autocomplete: "off", spellcheck: "false",
  });
  const tbody = h("tbody");
  const table = h("table.grid.devices", null,
    h("thead", null, h("tr", null,
      h("th", { scope: "col" }, "Device"),
      h("th", { scope: "col" }, "State"),
      h("th.num", { scope: "col" }, "Captures"),
      h("th.num", { scope: "col" }, "Drops"),
      h("th", { scope: "col" }, "Last heartbeat"),
      h("th", { scope: "col" }, "Agent"),
      h("th.opt", { scope: "col" }, "Certificate"),
    )),
    tbody);
  const wrap = h("div.table-wrap", { hidden: true }, table);
  const loading = h("div.empty", null, h("p.muted", null, "Loading devices…"));
  const empty = h("div.empty", { hidden: true },
    h("h2", null, "No devices yet"),
    h("p.muted", null, "Create an install key, then run its enrollment command on a sensor. It shows up here within seconds."),
    h("button.btn.primary", { type: "button", onclick: () => openKeyDialog() }, "Create an install key"));
  const noMatch = h("div.empty.compact", { hidden: true }, h("p.muted", null, "No device matches this filter."));

  root.append(
    h("div.view-head.one-line", null, h("h1", null, "Devices"), summary, h("span.spacer"), search),
    loading, wrap, empty, noMatch);

  let devices = null;
  const beats = new Map(); // device id -> {at: its last_heartbeat, status: that heartbeat, or null}
  search.addEventListener("input", render);

  tbody.addEventListener("click", (e) => {
    // The whole row opens the device for the mouse; the name is the link
    // for the keyboard.
    const tr = e.target.closest("tr");
    if (!tr || e.target.closest("a, button") || window.getSelection().toString()) return;
    location.hash = `#/devices/${encodeURIComponent(tr.dataset.key)}`;
  });

  function render() {
    if (!devices) return;
    loading.hidden = true;
    const q = search.value.trim().toLowerCase();
    const shown = devices.filter((d) => !q ||
      [d.hostname, d.id, d.machine_id, d.agent_version, d.state].some((s) => String(s || "").toLowerCase().includes(q)));
    empty.hidden = devices.length > 0;
    search.hidden = devices.length === 0;
    wrap.hidden = shown.length === 0;
    noMatch.hidden = devices.length === 0 || shown.length > 0;
    patchRows(tbody, shown, (d) => d.id, createRow, (tr, d) => updateRow(tr, d, health(d, beats.get(d.id))));
    renderSummary();
  }

  function renderSummary() {
    const by = { online: 0, stale: 0, revoked: 0 };
    let dup = 0, dropping = 0, running = 0, total = 0, erring = 0, reenroll = 0;
    for (const d of devices) {
      by[d.state] = (by[d.state] || 0) + 1;
      if (d.duplicate_machine_id) dup++;
      if (d.state !== "revoked") {
        const hl = health(d, beats.get(d.id));
        if (d.drops > 0) dropping++;
        if (hl.errors > 0) erring++;
        if (hl.reenroll) reenroll++;
        running += d.captures_running || 0;
        total += d.captures_total || 0;
      }
    }
    if (!devices.length) return replaceChildrenIfChanged(summary);
    replaceChildrenIfChanged(summary,
      h("span.chip", null, plural(devices.length, "device")),
      by.online ? h("span.chip.online", null, `${by.online} online`) : null,
      by.stale ? h("span.chip.stale", null, `${by.stale} stale`) : null,
      by.revoked ? h("span.chip.revoked", null, `${by.revoked} revoked`) : null,
      total ? h(`span.chip${running < total ? ".stale" : ""}`, null, `${running}/${total} captures running`) : null,
      dropping ? h("span.chip.bad", null, `${plural(dropping, "device")} dropping`) : null,
      erring ? h("span.chip.bad", null, `${erring} with errors`) : null,
      reenroll ? h("span.chip.bad", null, `${reenroll} to re-enroll`) : null,
      dup ? h("span.chip.stale", null, `${dup} share a machine id`) : null);
  }

  async function refresh() {
    const data = await call("GET", "devices");
    devices = ((data && data.devices) || []).slice().sort((a, b) =>
      String(a.hostname || "").localeCompare(String(b.hostname || "")) || String(a.id).localeCompare(String(b.id)));
    render();
    if (await fetchHeartbeats()) render();
  }

  // fetchHeartbeats fetches the last heartbeat of the devices whose list
  // entry lacks something the page shows and whose heartbeat is new since
  // the last fetch. It reports whether anything changed. A failed fetch
  // leaves the device as the list shows it.
  async function fetchHeartbeats() {
    const ids = new Set(devices.map((d) => d.id));
    for (const id of beats.keys()) if (!ids.has(id)) beats.delete(id);
    const todo = devices.filter((d) => needsHeartbeat(d) && (!beats.has(d.id) || beats.get(d.id).at !== d.last_heartbeat));
    if (!todo.length) return false;
    let changed = false;
    const worker = async () => {
      for (let d = todo.shift(); d; d = todo.shift()) {
        try {
          const st = await call("GET", `devices/${encodeURIComponent(d.id)}/status`);
          beats.set(d.id, { at: d.last_heartbeat, status: st });
          changed = true;
        } catch (ex) {
          if (ex.status === 404) beats.set(d.id, { at: d.last_heartbeat, status: null });
          if (ex.status === 401) return;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(statusFetches, todo.length) }, worker));
    return changed;
  }

  return { refresh, destroy() {} };
}

// needsHeartbeat reports whether the page needs d's last heartbeat for
// what the list does not say.
function needsHeartbeat(d) {
  if (d.state === "revoked" || !parseTime(d.last_heartbeat)) return false;
  const errorsKnown = Array.isArray(d.error_texts) || Array.isArray(d.errors) || !(d.errors > 0);
  const statesKnown = Array.isArray(d.capture_states) || (d.captures_running || 0) >= (d.captures_total || 0);
  return typeof d.needs_reenroll !== "boolean" || !errorsKnown || !statesKnown;
}

// health is what the page shows of d beyond its list entry: how many
// errors its agent reports and their text, whether its certificate needs
// re-enrollment, and its captures' states, from the list where it has
// them, else from its heartbeat (or nothing).
function health(d, beat) {
  // A heartbeat fetched for an older last_heartbeat is not this one.
  const st = beat && beat.at === d.last_heartbeat ? beat.status : null;
  const revoked = d.state === "revoked";
  const texts = Array.isArray(d.error_texts) ? d.error_texts : Array.isArray(d.errors) ? d.errors : st && Array.isArray(st.errors) ? st.errors : [];
  const errors = Array.isArray(d.errors) ? d.errors.length : typeof d.errors === "number" ? d.errors : texts.length;
  const reenroll = typeof d.needs_reenroll === "boolean" ? d.needs_reenroll : !!(st && st.certificate && st.certificate.needs_reenroll);
  return {
    errors: revoked ? 0 : errors,
    texts: revoked ? [] : texts.map(String),
    reenroll: !revoked && reenroll,
    captures: Array.isArray(d.capture_states) ? d.capture_states : st && Array.isArray(st.captures) ? st.captures : null,
  };
}

function createRow(d) {
  const link = h("a.host", { href: `#/devices/${encodeURIComponent(d.id)}` });
  const dup = h("span.badge.warn", { title: "Another device reports the same machine id, as a cloned VM would. Give each its own /etc/machine-id, then re-enroll it." }, "duplicate machine id");
  const id = h("span.sub.mono");
  const state = h("span.badge");
  const errs = h("span.badge.bad.count", { hidden: true });
  const reenroll = h("span.badge.bad", { hidden: true, title: "The agent cannot renew its certificate any more: create an install key and run its enrollment command on the sensor." }, "needs re-enrollment");
  const caps = h("span");
  const notRunning = h("span.sub.not-running", { hidden: true });
  const drops = h("span");
  const hb = h("span");
  const ver = h("span.mono.small");
  const cert = h("span");
  const tr = h("tr", null,
    h("td", null, h("div.cell-main", null, link, dup), id),
    h("td", null, h("div.health", null, state, errs, reenroll)),
    h("td.num", null, caps, notRunning),
    h("td.num", null, drops),
    h("td", null, hb),
    h("td", null, ver),
    h("td.opt", null, cert));
  tr.refs = { link, dup, id, state, errs, reenroll, caps, notRunning, drops, hb, ver, cert };
  return tr;
}

function updateRow(tr, d, hl) {
  const r = tr.refs;
  setText(r.link, d.hostname || "(no hostname)");
  r.dup.hidden = !d.duplicate_machine_id;
  setText(r.id, d.id);
  setText(r.state, d.state || "unknown");
  setAttr(r.state, "class", `badge state ${d.state || ""}`);
  setAttr(tr, "class", d.state === "revoked" ? "revoked" : null);

  r.errs.hidden = hl.errors === 0;
  setText(r.errs, plural(hl.errors, "error"));
  setAttr(r.errs, "title", hl.texts.length
    ? hl.texts[0] + (hl.texts.length > 1 ? ` (and ${plural(hl.texts.length - 1, "more error")}: open the device)` : "")
    : "Errors the agent reported in its last heartbeat: open the device to read them");
  r.reenroll.hidden = !hl.reenroll;

  const running = d.captures_running || 0, total = d.captures_total || 0;
  if (!total) {
    setText(r.caps, "none");
    setAttr(r.caps, "class", "muted");
    setAttr(r.caps, "title", "No captures configured for this device");
  } else {
    setText(r.caps, `${running} / ${total}`);
    setAttr(r.caps, "class", d.state === "revoked" ? "muted" : running < total ? "warn-text" : "ok-text");
    setAttr(r.caps, "title", hl.captures && hl.captures.length
      ? hl.captures.map((c) => `${c.name}: ${String(c.state || "unknown").replaceAll("_", " ")}`).join("\n")
      : `${running} of ${total} configured captures running`);
  }
  // Which captures do not run, by name, when the heartbeat says.
  const down = d.state === "revoked" || !hl.captures ? [] : hl.captures.filter((c) => c.state !== "running");
  r.notRunning.hidden = down.length === 0;
  setText(r.notRunning, down.length <= 2
    ? down.map((c) => `${c.name} ${String(c.state || "unknown").replaceAll("_", " ")}`).join(", ")
    : `${down.length} not running`);

  if (d.drops === undefined || d.drops === null) {
    setText(r.drops, "–");
    setAttr(r.drops, "class", "muted");
    setAttr(r.drops, "title", "No heartbeat yet");
  } else {
    setText(r.drops, count(d.drops));
    setAttr(r.drops, "class", d.drops > 0 ? "bad-text" : "muted");
    setAttr(r.drops, "title", `${exactCount(d.drops)} frames lost (ring full or not written) in the last heartbeat`);
  }

  const when = parseTime(d.last_heartbeat) ? d.last_heartbeat : "";
  setAttr(r.hb, "data-ago", when);
  setText(r.hb, ago(when));
  setAttr(r.hb, "title", dateTime(when) || "No heartbeat yet");
  setAttr(r.hb, "class", d.state === "stale" ? "warn-text" : null);

  setText(r.ver, d.agent_version || "–");

  const exp = parseTime(d.cert_not_after);
  if (!exp) {
    setText(r.cert, "–");
    setAttr(r.cert, "class", "muted");
  } else {
    const left = exp.getTime() - Date.now();
    setText(r.cert, left < 0 ? "expired" : `expires ${until(d.cert_not_after)}`);
    setAttr(r.cert, "class", left < 0 || hl.reenroll ? "bad-text" : left < soon ? "warn-text" : "muted");
    setAttr(r.cert, "title", dateTime(d.cert_not_after));
  }
}
