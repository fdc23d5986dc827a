// The devices view: every enrolled sensor with its health at a glance.

import { call } from "./api.js";
import { h, setText, setAttr, patchRows, replaceChildrenIfChanged } from "./dom.js";
import { ago, until, dateTime, count, exactCount, parseTime, plural } from "./format.js";
import { openKeyDialog } from "./key_dialog.js";

const soon = 7 * 24 * 3600 * 1000; // a certificate expiring within this is flagged

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
    h("div.view-head", null, h("h1", null, "Devices"), summary, h("span.spacer"), search),
    loading, wrap, empty, noMatch);

  let devices = null;
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
    patchRows(tbody, shown, (d) => d.id, createRow, updateRow);
    renderSummary();
  }

  function renderSummary() {
    const by = { online: 0, stale: 0, revoked: 0 };
    let dup = 0, dropping = 0, running = 0, total = 0;
    for (const d of devices) {
      by[d.state] = (by[d.state] || 0) + 1;
      if (d.duplicate_machine_id) dup++;
      if (d.state !== "revoked") {
        if (d.drops > 0) dropping++;
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
      dup ? h("span.chip.stale", null, `${dup} share a machine id`) : null);
  }

  async function refresh() {
    const data = await call("GET", "devices");
    devices = ((data && data.devices) || []).slice().sort((a, b) =>
      String(a.hostname || "").localeCompare(String(b.hostname || "")) || String(a.id).localeCompare(String(b.id)));
    render();
  }

  return { refresh, destroy() {} };
}

function createRow(d) {
  const link = h("a.host", { href: `#/devices/${encodeURIComponent(d.id)}` });
  const dup = h("span.badge.warn", { title: "Another device reports the same machine id, as a cloned VM would. Give each its own /etc/machine-id, then re-enroll it." }, "duplicate machine id");
  const id = h("span.sub.mono");
  const state = h("span.badge");
  const caps = h("span");
  const drops = h("span");
  const hb = h("span");
  const ver = h("span.mono.small");
  const cert = h("span");
  const tr = h("tr", null,
    h("td", null, h("div.cell-main", null, link, dup), id),
    h("td", null, state),
    h("td.num", null, caps),
    h("td.num", null, drops),
    h("td", null, hb),
    h("td", null, ver),
    h("td.opt", null, cert));
  tr.refs = { link, dup, id, state, caps, drops, hb, ver, cert };
  return tr;
}

function updateRow(tr, d) {
  const r = tr.refs;
  setText(r.link, d.hostname || "(no hostname)");
  r.dup.hidden = !d.duplicate_machine_id;
  setText(r.id, d.id);
  setText(r.state, d.state || "unknown");
  setAttr(r.state, "class", `badge state ${d.state || ""}`);
  setAttr(tr, "class", d.state === "revoked" ? "revoked" : null);

  const running = d.captures_running || 0, total = d.captures_total || 0;
  if (!total) {
    setText(r.caps, "none");
    setAttr(r.caps, "class", "muted");
    setAttr(r.caps, "title", "No captures configured for this device");
  } else {
    setText(r.caps, `${running} / ${total}`);
    setAttr(r.caps, "class", d.state === "revoked" ? "muted" : running < total ? "warn-text" : "ok-text");
    setAttr(r.caps, "title", `${running} of ${total} configured captures running`);
  }

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
    setAttr(r.cert, "class", left < 0 ? "bad-text" : left < soon ? "warn-text" : "muted");
    setAttr(r.cert, "title", dateTime(d.cert_not_after));
  }
}
