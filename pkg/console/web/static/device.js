// The device view: one sensor's facts, its agent's errors, and the captures
// the console wants it to run, with the counters its last heartbeat sent.
// After a change it refreshes every second until the agent reports the new
// generation and every capture (for a minute at most), so a new capture is
// seen starting; otherwise every 5 s.

import { call } from "./api.js";
import { h, setText, setAttr, patchRows, replaceChildrenIfChanged } from "./dom.js";
import { ago, until, dateTime, count, exactCount, parseTime, captureDrops, parseValidation, plural } from "./format.js";
import { showBanner, clearBanner } from "./banner.js";
import { confirm } from "./confirm.js";
import { openCaptureDialog } from "./capture_dialog.js";
import { openKeyDialog } from "./key_dialog.js";

const soon = 7 * 24 * 3600 * 1000;
const followFor = 60 * 1000; // how long after a change the page refreshes every second

export function deviceView(root, id) {
  const title = h("h1");
  const state = h("span.badge");
  const dup = h("span.badge.warn", { hidden: true }, "duplicate machine id");
  const revoke = h("button.btn.danger-outline", { type: "button" }, "Revoke…");
  const newJob = h("a.btn", { href: `#/jobs/new?devices=${encodeURIComponent(id)}`, title: "Capture on this device for a while and download the pcap" }, "New job…");
  const facts = h("dl.facts");
  const agentErrors = h("div.agent-errors", { role: "status", hidden: true });
  const add = h("button.btn.primary", { type: "button" }, "Add capture");
  const capsNote = h("span.muted");
  const tbody = h("tbody");
  const table = h("table.grid.captures", null,
    h("thead", null, h("tr", null,
      h("th", { scope: "col" }, "Name"),
      h("th", { scope: "col" }, "Interface"),
      h("th", { scope: "col" }, "Filter"),
      h("th.num", { scope: "col" }, "Snaplen"),
      h("th", { scope: "col" }, "Hook"),
      h("th", { scope: "col" }, "Direction"),
      h("th", { scope: "col" }, "State"),
      h("th.num", { scope: "col" }, "Seen"),
      h("th.num", { scope: "col" }, "Captured"),
      h("th.num", { scope: "col" }, "Drops"),
      h("th.actions", { scope: "col" }, h("span.sr-only", null, "Actions")),
    )),
    tbody);
  const wrap = h("div.table-wrap", { hidden: true }, table);
  const empty = h("div.empty.compact", { hidden: true },
    h("p", null, "No captures configured on this device."),
    h("p.muted", null, "Add one: pick an interface and, if you like, a filter. The agent starts it within seconds."));
  const loading = h("div.empty.compact", null, h("p.muted", null, "Loading…"));

  root.append(
    h("nav.crumbs", { "aria-label": "Breadcrumb" }, h("a", { href: "#/" }, "Devices"), h("span", { "aria-hidden": "true" }, " / "), h("span.crumb-here")),
    h("div.view-head", null, title, state, dup, h("span.spacer"), newJob, revoke),
    facts, agentErrors,
    h("section.section", null,
      h("div.section-head", null, h("h2", null, "Captures"), capsNote, h("span.spacer"), add),
      loading, wrap, empty));

  let device = null;
  let config = null; // {generation, captures}
  let status = null; // the last heartbeat, or null before the first
  let rowErrors = new Map(); // capture name -> messages of the last rejected save
  let followUntil = 0; // refresh every second until then, while the agent catches up

  add.addEventListener("click", () => edit(-1));
  revoke.addEventListener("click", doRevoke);
  agentErrors.addEventListener("click", (e) => {
    if (e.target.closest("button[data-act=reenroll]")) openKeyDialog();
  });
  tbody.addEventListener("click", (e) => {
    const b = e.target.closest("button[data-act]");
    if (!b) return;
    const i = config.captures.findIndex((c) => c.name === b.closest("tr").dataset.key);
    if (i < 0) return;
    if (b.dataset.act === "edit") edit(i);
    else remove(i);
  });

  async function load() {
    const [d, c, s] = await Promise.all([
      call("GET", `devices/${encodeURIComponent(id)}`),
      call("GET", `devices/${encodeURIComponent(id)}/captures`),
      call("GET", `devices/${encodeURIComponent(id)}/status`).catch((e) => {
        if (e.status === 404) return null; // no heartbeat yet
        throw e;
      }),
    ]);
    device = d;
    config = { generation: c.generation, captures: c.captures || [] };
    status = s;
  }

  async function refresh() {
    await load();
    render();
  }

  function render() {
    const name = device.hostname || device.id;
    document.title = `${name} · ringtap console`;
    setText(root.querySelector(".crumb-here"), name);
    setText(title, name);
    setText(state, device.state || "unknown");
    setAttr(state, "class", `badge state ${device.state || ""}`);
    dup.hidden = !device.duplicate_machine_id;
    revoke.hidden = device.state === "revoked";
    newJob.hidden = device.state === "revoked";
    add.disabled = device.state === "revoked";
    renderFacts();
    renderAgentErrors();
    renderCaptures();
  }

  function renderFacts() {
    const applied = status ? (status.applied_generation ?? status.generation) : undefined;
    const cert = status && status.certificate;
    const expires = parseTime(device.cert_not_after);
    const left = expires ? expires.getTime() - Date.now() : 0;
    const ifaces = (device.interfaces && device.interfaces.length ? device.interfaces : (status && status.interfaces)) || [];
    const hb = parseTime(device.last_heartbeat) ? device.last_heartbeat : "";
    const fact = (label, ...value) => h("div.fact", null, h("dt", null, label), h("dd", null, ...value));
    const wide = (label, ...value) => h("div.fact.wide", null, h("dt", null, label), h("dd", null, ...value));
    replaceChildrenIfChanged(facts,
      fact("Last heartbeat", h(`span${device.state === "stale" ? ".warn-text" : ""}`, { "data-ago": hb, title: dateTime(hb) || "No heartbeat yet" }, ago(hb))),
      fact("Agent version", h("span.mono", null, device.agent_version || "–")),
      fact("Certificate",
        expires ? h(`span${left < 0 ? ".bad-text" : left < soon ? ".warn-text" : ""}`, { title: dateTime(device.cert_not_after) },
          left < 0 ? `expired ${until(device.cert_not_after).replace(/^expired /, "")}` : `expires ${until(device.cert_not_after)}`,
          h("span.muted", null, ` · ${dateTime(device.cert_not_after).slice(0, 10)}`)) : h("span.muted", null, "–"),
        cert && cert.needs_reenroll ? h("span.badge.bad", null, "needs re-enrollment") : null),
      fact("Config",
        `generation ${config.generation}`,
        applied === undefined ? h("span.muted", null, " · not applied yet")
          : applied >= config.generation ? h("span.ok-text", null, " · applied")
          : h("span.warn-text", { title: "The agent has not reported this generation yet" }, ` · agent runs ${applied}`)),
      fact("Interfaces", ifaces.length ? h("span.chips", null, ifaces.map((i) => h("span.chip.mono", null, i))) : h("span.muted", null, "none reported")),
      wide("Machine id", h("span.mono", null, device.machine_id || "–"),
        device.duplicate_machine_id ? h("div.warn-text.small", null, "Another device reports it too: a cloned VM? Give each its own /etc/machine-id.") : null),
      fact("Device id", h("span.mono", null, device.id)),
    );
  }

  function renderAgentErrors() {
    const errs = (status && Array.isArray(status.errors) && status.errors) || [];
    const reenroll = !!(status && status.certificate && status.certificate.needs_reenroll) && device.state !== "revoked";
    agentErrors.hidden = errs.length === 0 && !reenroll;
    replaceChildrenIfChanged(agentErrors,
      errs.length ? h("strong", null, `The agent reports ${plural(errs.length, "error")}:`) : null,
      errs.length ? h("ul", null, errs.map((e) => h("li", null, e))) : null,
      reenroll ? h("div.reenroll", null,
        h("span", null, "Its certificate cannot be renewed any more: create an install key and run its enrollment command on the sensor."),
        h("button.btn.small", { type: "button", "data-act": "reenroll" }, "New install key")) : null);
  }

  // follow shows the config just saved and refreshes every second while
  // the agent picks it up.
  function follow() {
    followUntil = Date.now() + followFor;
    render();
    window.dispatchEvent(new Event("ringtap:refresh"));
  }

  // catchingUp reports whether the agent has yet to report the config the
  // console holds: an older generation, or a capture it does not list or
  // is still starting.
  function catchingUp() {
    if (!config || !status) return !!config;
    const applied = status.applied_generation ?? status.generation ?? -1;
    if (applied < config.generation) return true;
    const reported = new Map((status.captures || []).map((c) => [c.name, c.state]));
    return config.captures.some((c) => !reported.has(c.name) || reported.get(c.name) === "starting");
  }

  function renderCaptures() {
    loading.hidden = true;
    const caps = config.captures;
    wrap.hidden = caps.length === 0;
    empty.hidden = caps.length > 0;
    const reported = new Map(((status && status.captures) || []).map((c) => [c.name, c]));
    const applied = status ? (status.applied_generation ?? status.generation ?? -1) : -1;
    let running = 0;
    for (const c of caps) if ((reported.get(c.name) || {}).state === "running") running++;
    setText(capsNote, caps.length ? `${running} of ${plural(caps.length, "capture")} running` : "");
    patchRows(tbody, caps, (c) => c.name, createRow, (tr, c) => updateRow(tr, c, reported.get(c.name), applied < config.generation, rowErrors.get(c.name)));
  }

  function edit(index) {
    openCaptureDialog({
      deviceId: id,
      hostname: device.hostname || device.id,
      captures: config.captures,
      generation: config.generation,
      index,
      interfaces: (device.interfaces && device.interfaces.length ? device.interfaces : (status && status.interfaces)) || [],
      onSaved(data) {
        rowErrors = new Map();
        config = { generation: data.generation, captures: data.captures || [] };
        follow();
      },
    });
  }

  async function remove(index) {
    const c = config.captures[index];
    const ok = await confirm({
      title: `Delete capture ${c.name}?`,
      text: `The agent on ${device.hostname || device.id} stops capturing on ${c.interface}. The files it wrote stay on the sensor.`,
      ok: "Delete capture",
    });
    if (!ok) return;
    const list = config.captures.filter((_, i) => i !== index);
    try {
      const data = await call("PUT", `devices/${encodeURIComponent(id)}/captures`, { body: { captures: list }, ifMatch: config.generation });
      clearBanner();
      rowErrors = new Map();
      config = { generation: data.generation, captures: data.captures || list };
      follow();
    } catch (ex) {
      saveFailed(ex, list);
    }
  }

  // saveFailed explains a rejected change of the whole list on the page.
  function saveFailed(ex, list) {
    if (ex.status === 401) return;
    if (ex.status === 409) {
      showBanner("Someone else changed this device's captures since this page loaded them: reload to see their version, then make your change again.", {
        action: "Reload", onAction: () => refresh().catch((e) => showBanner(e.message)), kind: "warn",
      });
      return;
    }
    if (ex.status === 422 && ex.errors.length) {
      rowErrors = new Map();
      for (const v of parseValidation(ex.errors)) {
        const name = v.index >= 0 && list[v.index] ? list[v.index].name : "";
        if (!rowErrors.has(name)) rowErrors.set(name, []);
        rowErrors.get(name).push(v.field ? `${v.field}: ${v.message}` : v.message);
      }
      renderCaptures();
    }
    showBanner(ex.message);
  }

  async function doRevoke() {
    const name = device.hostname || device.id;
    const ok = await confirm({
      title: `Revoke ${name}?`,
      text: "The console refuses this device's certificate from now on: it gets no more config changes and its heartbeats are rejected. To bring it back, enroll it again with a new install key. This cannot be undone.",
      ok: "Revoke device",
    });
    if (!ok) return;
    try {
      await call("POST", `devices/${encodeURIComponent(id)}/revoke`);
      await refresh();
    } catch (ex) {
      if (ex.status !== 401) showBanner(ex.message);
    }
  }

  return {
    refresh,
    interval: () => (Date.now() < followUntil && catchingUp() ? 1000 : 5000),
    destroy() {},
  };
}

function createRow(c) {
  const name = h("span.strong");
  const err = h("div.row-error", { hidden: true });
  const lastError = h("div.row-error.small", { hidden: true });
  const cells = {
    iface: h("span.mono"), filter: h("code.filter"), snap: h("span"), hook: h("span"),
    dir: h("span"), state: h("span.badge"), seen: h("span"), captured: h("span"), drops: h("span"),
  };
  const tr = h("tr", null,
    h("td", null, name, err, lastError),
    h("td", null, cells.iface),
    h("td.filter-cell", null, cells.filter),
    h("td.num", null, cells.snap),
    h("td", null, cells.hook),
    h("td", null, cells.dir),
    h("td", null, cells.state),
    h("td.num", null, cells.seen),
    h("td.num", null, cells.captured),
    h("td.num", null, cells.drops),
    h("td.actions", null,
      h("button.btn.small.ghost", { type: "button", "data-act": "edit", "aria-label": `Edit capture ${c.name}` }, "Edit"),
      h("button.btn.small.ghost.danger-text", { type: "button", "data-act": "delete", "aria-label": `Delete capture ${c.name}` }, "Delete")));
  tr.refs = { name, err, lastError, ...cells };
  return tr;
}

function updateRow(tr, c, st, pending, errors) {
  const r = tr.refs;
  setText(r.name, c.name);
  setText(r.iface, c.interface || "");
  setText(r.filter, c.filter || "everything");
  setAttr(r.filter, "class", c.filter ? "filter" : "filter muted");
  setAttr(r.filter, "title", c.filter || "No filter: every frame");
  setText(r.snap, c.snaplen || 262144);
  setAttr(r.snap, "class", c.snaplen ? null : "muted");
  const hook = c.hook || "auto";
  replaceChildrenIfChanged(r.hook, hook, hook === "auto" && st && st.hook ? h("span.muted", null, ` → ${st.hook}`) : null);
  setText(r.dir, { in: "in", out: "out", inout: "in + out" }[c.direction || "in"] || c.direction);

  let stateText, stateClass, stateTitle = null;
  if (st) {
    stateText = (st.state || "unknown").replaceAll("_", " ");
    stateClass = { running: "online", starting: "info", stopping: "info", waiting_for_interface: "stale", failed: "bad" }[st.state] || "";
    if (st.hook && (c.hook || "auto") === "auto") stateTitle = `Running at ${st.hook}`;
  } else {
    stateText = pending ? "pending" : "not reported";
    stateClass = "info";
    stateTitle = pending ? "The agent has not applied this configuration yet" : "The last heartbeat does not list this capture";
  }
  setText(r.state, stateText);
  setAttr(r.state, "class", `badge state ${stateClass}`);
  setAttr(r.state, "title", stateTitle);
  r.lastError.hidden = !(st && st.last_error);
  setText(r.lastError, (st && st.last_error) || "");

  for (const [k, v] of [["seen", st && st.seen], ["captured", st && st.captured]]) {
    setText(r[k], st ? count(v || 0) : "–");
    setAttr(r[k], "title", st ? exactCount(v || 0) : null);
    setAttr(r[k], "class", st ? null : "muted");
  }
  const d = st ? captureDrops(st) : null;
  setText(r.drops, st ? count(d) : "–");
  setAttr(r.drops, "class", !st ? "muted" : d > 0 ? "bad-text" : "muted");
  setAttr(r.drops, "title", st ? `ring full: ${exactCount(st.ring_drops || 0)}, not copied: ${exactCount(st.copy_failures || 0)}, not written: ${exactCount(st.write_drops || 0)}` : null);

  r.err.hidden = !errors;
  replaceChildrenIfChanged(r.err, ...(errors || []).map((e) => h("div", null, e)));
  setAttr(tr, "class", errors ? "invalid" : null);
  setAttr(tr, "aria-invalid", errors ? "true" : null);
}
