// The job view (#/jobs/ID): what the job captures, and each device's run
// with its state, counters, the times of its transitions, a download of its
// result and, while it captures, the command that streams it into
// Wireshark. It refreshes every second while a run is live; the numbers
// change in place and the columns have fixed widths, so nothing moves.

import { call, download } from "./api.js";
import { h, setText, setAttr, patchKeyed, replaceChildrenIfChanged } from "./dom.js";
import { ago, until, dateTime, clock, exactCount, bytes, parseTime, parseDuration, span, plural, sentenceCase } from "./format.js";
import { showBanner } from "./banner.js";
import { confirm } from "./confirm.js";
import { setRunBadge, runBadge, jobStatus, stateCounts, terminal } from "./run_state.js";
import { limitsText, filterText, destinationText } from "./job_text.js";

const columns = 8;

export function jobView(root, id) {
  document.title = `Job ${id} · ringtap console`;
  const title = h("h1", null, `Job ${id}`);
  const state = h("span.badge");
  const summary = h("div.summary");
  const again = h("a.btn", { href: `#/jobs/new?from=${id}`, title: "A new job with the same devices and settings" }, "Run again…");
  const cancel = h("button.btn.danger-outline", { type: "button", hidden: true }, "Cancel job…");
  const cancelNote = h("div.form-alert.info.cancel-note", { role: "status", hidden: true });
  const facts = h("dl.facts");
  const runsNote = h("span.muted");
  const table = h("table.grid.runs", null,
    h("colgroup", null,
      h("col.c-device"), h("col.c-state"), h("col.c-num"), h("col.c-num"), h("col.c-drops"), h("col.c-num"), h("col.c-updated"), h("col.c-actions")),
    h("thead", null, h("tr", null,
      h("th", { scope: "col" }, "Device"),
      h("th", { scope: "col" }, "State"),
      h("th.num", { scope: "col", title: "Packets written to the file" }, "Packets"),
      h("th.num", { scope: "col", title: "Bytes of packet data written to the file" }, "Data"),
      h("th.num", { scope: "col", title: "Frames lost: ring full, or not written" }, "Drops"),
      h("th.num", { scope: "col", title: "The pcapng file's size" }, "File"),
      h("th", { scope: "col" }, "Last report"),
      h("th.actions", { scope: "col" }, h("span.sr-only", null, "Result")),
    )));
  const wrap = h("div.table-wrap", { hidden: true }, table);
  const loading = h("div.empty.compact", null, h("p.muted", null, "Loading…"));

  root.append(
    h("nav.crumbs", { "aria-label": "Breadcrumb" }, h("a", { href: "#/jobs" }, "Jobs"), h("span", { "aria-hidden": "true" }, " / "), h("span", null, `Job ${id}`)),
    h("div.view-head", null, title, state, summary, h("span.spacer"), again, cancel),
    cancelNote, facts,
    h("section.section", null,
      h("div.section-head", null, h("h2", null, "Runs"), runsNote),
      loading, wrap));

  let job = null;
  const downloads = new Map(); // device -> {text, busy} while its pcap downloads, and just after

  cancel.addEventListener("click", doCancel);
  table.addEventListener("click", (e) => {
    const b = e.target.closest("button[data-act]");
    if (!b) return;
    const run = job && job.runs.find((r) => r.device === b.closest("tbody").dataset.key);
    if (!run) return;
    if (b.dataset.act === "download") doDownload(run, b);
    else if (b.dataset.act === "copy") copyLive(b);
  });

  async function refresh() {
    try {
      job = await call("GET", `jobs/${id}`);
    } catch (ex) {
      if (ex.status !== 404) throw ex;
      // No such job: say so in the page, not in a banner that retries.
      job = null;
      root.replaceChildren(root.firstElementChild, h("div.empty",
        null, h("h2", null, `There is no job ${id}`),
        h("p.muted", null, ex.message),
        h("a.btn", { href: "#/jobs" }, "All jobs")));
      return;
    }
    render();
  }

  function render() {
    const runs = job.runs || [];
    const st = jobStatus(job);
    setText(state, st.label);
    setAttr(state, "class", `badge state run ${st.cls}`);
    const counts = stateCounts(runs);
    replaceChildrenIfChanged(summary,
      h("span.chip", null, plural(runs.length, "device")),
      counts.length > 1 ? counts.map(([s, n]) => h(`span.chip.run.${s}`, null, `${n} ${s}`)) : null);
    const live = runs.some((r) => !terminal(r.state));
    cancel.hidden = !live || !!job.cancel_requested_at;
    cancelNote.hidden = !(live && job.cancel_requested_at);
    if (!cancelNote.hidden) {
      replaceChildrenIfChanged(cancelNote, h("p", null,
        `Cancel requested ${ago(job.cancel_requested_at)}. Runs that are capturing stop within seconds, upload what they have, and end canceled.`));
    }
    renderFacts();
    loading.hidden = true;
    wrap.hidden = runs.length === 0;
    const done = runs.filter((r) => terminal(r.state)).length;
    setText(runsNote, runs.length > 1 ? `${done} of ${runs.length} ended` : "");
    patchKeyed(table, runs, (r) => r.device, createRun, (tb, r) => updateRun(tb, r, job, downloads.get(r.device)));
  }

  function renderFacts() {
    const fact = (label, ...value) => h("div.fact", null, h("dt", null, label), h("dd", null, ...value));
    const queued = (job.runs || []).some((r) => r.state === "queued");
    const exp = parseTime(job.expires_at);
    replaceChildrenIfChanged(facts,
      h("div.fact.wide", null, h("dt", null, "Filter"),
        h("dd", null, h(job.filter ? "code.filter-full" : "span.muted", null, filterText(job.filter)))),
      fact("Interfaces", h("span.chips", null, (job.interfaces || []).map((i) => h("span.chip.mono", null, i)))),
      fact("Stops after", limitsText(job), h("span.muted", null, ", whichever comes first")),
      fact("Snaplen", job.snaplen ? `${exactCount(job.snaplen)} bytes` : h("span.muted", null, "default")),
      fact("Result goes to", h(job.destination && job.destination !== "console" ? "span.mono" : "span", null, destinationText(job.destination))),
      fact("Created", h("span", { "data-ago": job.created_at, title: dateTime(job.created_at) }, ago(job.created_at)),
        h("span.muted", null, ` · ${clock(job.created_at)}`)),
      fact(queued ? "Queued runs expire" : "Expiry",
        exp ? h(queued ? "span" : "span.muted", { title: dateTime(job.expires_at) }, queued ? until(job.expires_at) : dateTime(job.expires_at)) : h("span.muted", null, "–")),
    );
  }

  async function doCancel() {
    const ok = await confirm({
      title: `Cancel job ${id}?`,
      text: "Runs no device has picked up yet end now. Runs that are capturing stop within seconds, upload what they captured so far, and end canceled: nothing captured is thrown away.",
      ok: "Cancel job",
      cancel: "Keep it running",
    });
    if (!ok) return;
    cancel.disabled = true;
    try {
      job = await call("POST", `jobs/${id}/cancel`);
      render();
    } catch (ex) {
      if (ex.status === 401) return;
      showBanner(ex.message);
      refresh().catch(() => {});
    } finally {
      cancel.disabled = false;
    }
  }

  async function doDownload(run, button) {
    if (downloads.has(run.device) && downloads.get(run.device).busy) return;
    const name = `job-${id}-${run.hostname || run.device}.pcapng`;
    const path = run.result && run.result.download
      ? run.result.download.replace(/^\/api\/v1\//, "")
      : `jobs/${id}/runs/${encodeURIComponent(run.device)}/pcap`;
    const show = (text, busy = true) => {
      if (text === null) downloads.delete(run.device);
      else downloads.set(run.device, { text, busy });
      const tb = table.querySelector(`tbody[data-key="${CSS.escape(run.device)}"]`);
      if (tb && job) updateRun(tb, job.runs.find((r) => r.device === run.device) || run, job, downloads.get(run.device));
    };
    show("Starting…");
    try {
      await download(path, name, (got, total) => {
        show(total ? `${Math.floor((got / total) * 100)} %` : bytes(got));
      });
      show("Saved ✓", false);
      setTimeout(() => show(null), 2500);
    } catch (ex) {
      show(null);
      if (ex.status !== 401) showBanner(ex.message);
    }
    button.blur();
  }

  return {
    refresh,
    interval: () => (job && (job.runs || []).some((r) => !terminal(r.state)) ? 1000 : 5000),
    destroy() {},
  };
}

function createRun(r) {
  const host = h("a.host", { href: `#/devices/${encodeURIComponent(r.device)}` });
  const devId = h("span.sub.mono");
  const badge = runBadge(r.state);
  const note = h("span.sub.run-note");
  const num = () => h("span");
  const cells = { packets: num(), data: num(), drops: num(), size: num() };
  const updated = h("span");
  const action = h("div.run-action");
  const timeline = h("ol.timeline", { "aria-label": "State changes" });
  const error = h("div.run-error", { role: "status", hidden: true });
  const gone = h("div.run-gone.muted", { hidden: true });
  const liveCmd = h("code.cmd");
  const live = h("div.live", { hidden: true },
    h("div.live-head", null,
      h("span.strong", null, "Watch it live"),
      h("span.muted.small", null, "Set TOKEN to the admin token; ca.pem is the console's CA, from its data directory.")),
    h("div.copy-row", null, liveCmd, h("button.btn.small", { type: "button", "data-act": "copy" }, "Copy")));
  const main = h("tr.run-main", null,
    h("td", null, host, devId),
    h("td", null, badge, note),
    h("td.num", null, cells.packets),
    h("td.num", null, cells.data),
    h("td.num", null, cells.drops),
    h("td.num", null, cells.size),
    h("td", null, updated),
    h("td.actions", null, action));
  const detail = h("tr.run-detail", null, h("td", { colspan: columns }, timeline, error, gone, live));
  const tb = h("tbody.run", null, main, detail);
  tb.refs = { host, devId, badge, note, ...cells, updated, action, timeline, error, gone, live, liveCmd };
  return tb;
}

function updateRun(tb, r, job, downloading) {
  const x = tb.refs;
  setText(x.host, r.hostname || r.device);
  setText(x.devId, r.device);
  setRunBadge(x.badge, r.state);
  setText(x.note, runNote(r, job));

  const counted = r.state !== "queued" && r.state !== "expired";
  const put = (el, text, title, cls = null) => {
    setText(el, counted ? text : "–");
    setAttr(el, "title", counted ? title : null);
    setAttr(el, "class", counted ? cls : "muted");
  };
  put(x.packets, exactCount(r.packets || 0), `${exactCount(r.packets || 0)} packets`);
  put(x.data, bytes(r.bytes || 0), `${exactCount(r.bytes || 0)} bytes of packet data`);
  put(x.drops, exactCount(r.drops || 0), `${exactCount(r.drops || 0)} frames lost`, r.drops > 0 ? "bad-text" : "muted");
  put(x.size, bytes(r.size || 0), `${exactCount(r.size || 0)} bytes`);

  const when = parseTime(r.updated_at) ? r.updated_at : "";
  setAttr(x.updated, "data-ago", when);
  setText(x.updated, ago(when));
  setAttr(x.updated, "title", dateTime(when) || null);
  setAttr(x.updated, "class", terminal(r.state) ? "muted" : null);

  renderAction(x.action, r, job, downloading);
  renderTimeline(x.timeline, r);
  // The reason of a run that ended badly: the run's error, or the reason
  // of its last transition (a cancel before any device accepted it).
  const last = (r.transitions || [])[(r.transitions || []).length - 1];
  const why = r.error || (terminal(r.state) && r.state !== "finished" && last && last.state === r.state ? last.reason || "" : "");
  x.error.hidden = !why;
  setText(x.error, why);
  // A result the console held and deleted since says why.
  const deleted = r.result && r.result.deleted ? sentenceCase(r.result.deleted) + "." : "";
  x.gone.hidden = !deleted;
  setText(x.gone, deleted);

  const showLive = !!r.live && (r.state === "accepted" || r.state === "running");
  x.live.hidden = !showLive;
  if (showLive) setText(x.liveCmd, liveCommand(r.live));
  setAttr(tb, "class", `run ${r.state}`);
}

// renderAction is the run's result: a Download button for a pcap on this
// console, "deleted" (the reason as its title) for one the console no
// longer holds, the object's address for one in S3, or nothing yet.
function renderAction(el, r, job, downloading) {
  const res = r.result;
  let want;
  if (res && res.location && res.location !== "console") {
    want = ["s3", res.location];
  } else if (res && res.deleted) {
    want = ["deleted", res.deleted];
  } else if (res) {
    want = ["download", downloading ? downloading.text : "", downloading ? downloading.busy : false, res.size];
  } else {
    want = ["none"];
  }
  const key = JSON.stringify(want);
  if (el.dataset.shown === key) return;
  el.dataset.shown = key;
  if (want[0] === "s3") {
    el.replaceChildren(h("span.mono.small.s3", { title: res.location }, "in S3"));
  } else if (want[0] === "deleted") {
    const why = sentenceCase(res.deleted);
    el.replaceChildren(h("span.muted.small.deleted", { title: why, "aria-label": `Pcap deleted: ${why}` }, "deleted"));
  } else if (want[0] === "download") {
    let b = el.querySelector("button[data-act=download]");
    if (!b) {
      b = h("button.btn.small.primary", { type: "button", "data-act": "download" });
      el.replaceChildren(b);
    }
    const busy = !!(downloading && downloading.busy);
    b.disabled = busy;
    setText(b, downloading ? downloading.text : "Download");
    setAttr(b, "title", `job-${job.id}-${r.hostname || r.device}.pcapng · ${bytes(res.size)}`);
    setAttr(b, "aria-label", busy ? `Downloading the pcap of ${r.hostname || r.device}: ${downloading.text}` : `Download the pcap of ${r.hostname || r.device} (${bytes(res.size)})`);
  } else {
    el.replaceChildren();
  }
}

function renderTimeline(ol, r) {
  const ts = r.transitions || [];
  const items = ts.map((t, i) => {
    const prev = i > 0 ? parseTime(ts[i - 1].at) : null;
    const at = parseTime(t.at);
    const gap = prev && at ? at - prev : null;
    return h(`li.step.${t.state}`, { title: [dateTime(t.at), t.reason].filter(Boolean).join(" · ") },
      h("span.dot", { "aria-hidden": "true" }),
      h("span.step-state", null, t.state),
      h("span.step-time", null, clock(t.at)),
      gap !== null && gap >= 1000 ? h("span.step-gap", null, `+${span(gap)}`) : null);
  });
  replaceChildrenIfChanged(ol, ...items);
}

// runNote is the line under a run's state: how far it is, or how long it
// took.
function runNote(r, job) {
  const at = (s) => {
    const t = (r.transitions || []).find((x) => x.state === s);
    return t ? parseTime(t.at) : null;
  };
  const started = at("running") || at("accepted");
  switch (r.state) {
    case "queued":
      return `expires ${until(job.expires_at)}`;
    case "accepted":
      return "starting the capture";
    case "running": {
      const d = parseDuration(job.duration);
      const took = started ? Math.floor(Math.max(0, Date.now() - started.getTime()) / 1000) * 1000 : 0;
      return d ? `${span(Math.min(took, d))} of ${span(d)}` : span(took);
    }
    case "uploading":
      return r.size ? `${bytes(r.size)} to upload` : "uploading the file";
    default: {
      const ran = at("running");
      const stopped = at("uploading") || at(r.state);
      if (!ran || !stopped) return "";
      return `captured for ${span(stopped - ran)}`;
    }
  }
}

// liveCommand streams the run into Wireshark from a shell, with the admin
// token in $TOKEN and the console's CA in ca.pem, as the README's curl
// examples do.
function liveCommand(path) {
  return `curl -sN --cacert ca.pem -H "Authorization: Bearer $TOKEN" ${location.origin}${path} | wireshark -k -i -`;
}

async function copyLive(button) {
  const code = button.closest(".live").querySelector("code.cmd");
  let ok = false;
  try {
    await navigator.clipboard.writeText(code.textContent);
    ok = true;
  } catch {
    const range = document.createRange();
    range.selectNodeContents(code);
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    try {
      ok = document.execCommand("copy");
    } catch {
      ok = false;
    }
  }
  button.textContent = ok ? "Copied" : "Press Ctrl+C";
  setTimeout(() => { button.textContent = "Copy"; }, 2500);
}
