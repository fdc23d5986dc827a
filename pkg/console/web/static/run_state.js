// The states of a job's runs (queued → accepted → running → uploading →
// finished | failed | canceled | expired) as the page shows them: a badge
// with a colour per state, and the job's state summed up from its runs.

import { h, setText, setAttr } from "./dom.js";

export const runStates = ["queued", "accepted", "running", "uploading", "finished", "failed", "canceled", "expired"];

const meaning = {
  queued: "Waiting for the device to pick the job up",
  accepted: "The device accepted the job and is starting the capture",
  running: "Capturing",
  uploading: "The capture has stopped; the device is uploading the file",
  finished: "Done: the capture is stored",
  failed: "The run failed: see the reason",
  canceled: "Canceled: what was captured until then is kept",
  expired: "No device picked the job up before it expired",
};

// terminal reports whether a run in state s has ended.
export function terminal(s) {
  return s === "finished" || s === "failed" || s === "canceled" || s === "expired";
}

// setRunBadge makes el the badge of state s.
export function setRunBadge(el, s) {
  setText(el, s || "unknown");
  setAttr(el, "class", `badge state run ${runStates.includes(s) ? s : ""}`);
  setAttr(el, "title", meaning[s] || null);
}

export function runBadge(s) {
  const el = h("span");
  setRunBadge(el, s);
  return el;
}

// stateCounts is [[state, n], ...] of runs, in the order of the states.
export function stateCounts(runs) {
  const n = new Map();
  for (const r of runs || []) n.set(r.state, (n.get(r.state) || 0) + 1);
  return runStates.filter((s) => n.has(s)).map((s) => [s, n.get(s)])
    .concat([...n].filter(([s]) => !runStates.includes(s)));
}

// jobStatus sums a job up: the state its runs share, "canceling" while a
// cancel waits for runs to stop, "active" while runs are in different live
// states, "done" when they ended in different ways.
export function jobStatus(job) {
  const runs = job.runs || [];
  const live = runs.filter((r) => !terminal(r.state));
  if (live.length && job.cancel_requested_at) return { label: "canceling", cls: "canceling" };
  const pool = live.length ? live : runs;
  const states = new Set(pool.map((r) => r.state));
  if (states.size === 1) {
    const s = [...states][0];
    return { label: s, cls: s };
  }
  if (live.length) {
    // The furthest a live run has come is what the job is doing.
    for (const s of ["running", "uploading", "accepted", "queued"]) if (states.has(s)) return { label: s, cls: s };
  }
  return { label: "done", cls: "done" };
}
