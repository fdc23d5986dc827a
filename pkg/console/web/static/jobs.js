// The jobs view: every capture job, newest first, with the state of its
// runs and what they captured so far. It refreshes every 2 s while a job
// is active, every 5 s otherwise.

import { call } from "./api.js";
import { h, setText, setAttr, patchRows, replaceChildrenIfChanged } from "./dom.js";
import { ago, dateTime, exactCount, bytes, plural } from "./format.js";
import { jobStatus, stateCounts, terminal } from "./run_state.js";
import { limitsText, filterText } from "./job_text.js";

const page = 50;

export function jobsView(root) {
  document.title = "Jobs · ringtap console";
  const summary = h("div.summary", { "aria-label": "Jobs summary" });
  const tbody = h("tbody");
  const table = h("table.grid.jobs", null,
    h("thead", null, h("tr", null,
      h("th.col-id", { scope: "col" }, "Job"),
      h("th.col-state", { scope: "col" }, "State"),
      h("th", { scope: "col" }, "Devices"),
      h("th", { scope: "col" }, "Capture"),
      h("th.num", { scope: "col" }, "Packets"),
      h("th.num", { scope: "col" }, "Size"),
      h("th.col-created", { scope: "col" }, "Created"),
    )),
    tbody);
  const wrap = h("div.table-wrap", { hidden: true }, table);
  const loading = h("div.empty", null, h("p.muted", null, "Loading jobs…"));
  const empty = h("div.empty", { hidden: true },
    h("h2", null, "No capture jobs yet"),
    h("p.muted", null, "A job captures on one or more sensors for a while (a duration, a number of packets or bytes, whichever comes first) and brings the pcap back here to download."),
    h("a.btn.primary", { href: "#/jobs/new" }, "New job"));
  const more = h("button.btn", { type: "button", hidden: true }, "Show older jobs");
  const moreRow = h("div.more-row", null, more);

  root.append(
    h("div.view-head", null, h("h1", null, "Jobs"), summary, h("span.spacer"), h("a.btn.primary#new-job", { href: "#/jobs/new" }, "New job")),
    loading, wrap, empty, moreRow);

  let jobs = null;
  let limit = page;

  more.addEventListener("click", async () => {
    limit += page;
    more.disabled = true;
    try {
      await refresh();
    } finally {
      more.disabled = false;
    }
  });

  tbody.addEventListener("click", (e) => {
    const tr = e.target.closest("tr");
    if (!tr || e.target.closest("a, button") || window.getSelection().toString()) return;
    location.hash = `#/jobs/${tr.dataset.key}`;
  });

  function render() {
    loading.hidden = true;
    empty.hidden = jobs.length > 0;
    wrap.hidden = jobs.length === 0;
    more.hidden = jobs.length < limit;
    patchRows(tbody, jobs, (j) => j.id, createRow, updateRow);
    const active = jobs.filter((j) => j.state === "active").length;
    replaceChildrenIfChanged(summary,
      jobs.length ? h("span.chip", null, jobs.length < limit ? plural(jobs.length, "job") : `latest ${jobs.length} jobs`) : null,
      active ? h("span.chip.running", null, `${active} active`) : null);
  }

  async function refresh() {
    const data = await call("GET", `jobs?limit=${limit}`);
    jobs = ((data && data.jobs) || []).slice().sort((a, b) => b.id - a.id);
    render();
  }

  return {
    refresh,
    interval: () => (jobs && jobs.some((j) => j.state === "active") ? 2000 : 5000),
    destroy() {},
  };
}

function createRow(j) {
  const link = h("a.host", { href: `#/jobs/${j.id}` });
  const state = h("span");
  const counts = h("div.sub");
  const devices = h("span");
  const filter = h("code.filter");
  const limits = h("span.sub");
  const packets = h("span");
  const size = h("span");
  const created = h("span");
  const tr = h("tr", null,
    h("td.col-id", null, link),
    h("td.col-state", null, state, counts),
    h("td.devices-cell", null, devices),
    h("td.filter-cell", null, filter, limits),
    h("td.num", null, packets),
    h("td.num", null, size),
    h("td.col-created", null, created));
  tr.refs = { link, state, counts, devices, filter, limits, packets, size, created };
  return tr;
}

function updateRow(tr, j) {
  const r = tr.refs;
  const runs = j.runs || [];
  setText(r.link, `Job ${j.id}`);
  const st = jobStatus(j);
  setText(r.state, st.label);
  setAttr(r.state, "class", `badge state run ${st.cls}`);
  const counts = stateCounts(runs);
  setText(r.counts, runs.length > 1 && counts.length > 1 ? counts.map(([s, n]) => `${n} ${s}`).join(" · ") : "");

  const names = runs.map((x) => x.hostname || x.device);
  setText(r.devices, names.length <= 3 ? names.join(", ") : `${names.slice(0, 2).join(", ")} and ${names.length - 2} more`);
  setAttr(r.devices, "title", names.join(", "));

  setText(r.filter, filterText(j.filter));
  setAttr(r.filter, "class", j.filter ? "filter" : "filter muted");
  setAttr(r.filter, "title", j.filter || "No filter: every frame");
  setText(r.limits, `${(j.interfaces || []).join(", ")} · ${limitsText(j)}`);

  let p = 0, s = 0, anyCounted = false;
  for (const x of runs) {
    p += x.packets || 0;
    s += x.size || 0;
    if (x.state !== "queued" && x.state !== "expired") anyCounted = true;
  }
  setText(r.packets, anyCounted ? exactCount(p) : "–");
  setAttr(r.packets, "class", anyCounted ? null : "muted");
  setText(r.size, anyCounted ? bytes(s) : "–");
  setAttr(r.size, "class", anyCounted ? null : "muted");
  setAttr(r.size, "title", anyCounted ? `${exactCount(s)} bytes` : null);

  setAttr(r.created, "data-ago", j.created_at);
  setText(r.created, ago(j.created_at));
  setAttr(r.created, "title", dateTime(j.created_at));
  setAttr(tr, "class", runs.every((x) => terminal(x.state)) ? "ended" : null);
}
