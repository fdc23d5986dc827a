// The console's page: sign-in, the shell (top bar, banner, routing by the
// URL's fragment) and the refresh loop that keeps the current view live.

import { call, token, setToken, clearToken, onUnauthorized } from "./api.js";
import { initBanner, showBanner, clearBanner } from "./banner.js";
import { devicesView } from "./devices.js";
import { deviceView } from "./device.js";
import { jobsView } from "./jobs.js";
import { jobView } from "./job.js";
import { jobFormView } from "./job_form.js";
import { tokensView } from "./tokens.js";
import { initKeyDialog, openKeyDialog } from "./key_dialog.js";
import { initCaptureDialog } from "./capture_dialog.js";
import { ago } from "./format.js";
import { setText } from "./dom.js";

const refreshEvery = 5000;

let view = null; // the mounted view: {refresh(): Promise, destroy(), interval?(): ms}
let timer = 0;
let lastOK = 0;
let failing = false;
let refreshing = false; // a refresh is in flight
let again = false; // and another was asked for meanwhile

function $(id) {
  return document.getElementById(id);
}

function showSignin(message = "") {
  stopRefresh();
  if (view) view.destroy();
  view = null;
  for (const d of document.querySelectorAll("dialog[open]")) d.close();
  clearBanner();
  $("view").replaceChildren();
  $("shell").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message;
  $("signin-token").value = "";
  $("signin-token").setAttribute("aria-invalid", message ? "true" : "false");
  $("signin-token").focus();
}

function showShell() {
  $("signin").hidden = true;
  $("shell").hidden = false;
  route();
}

async function signin(e) {
  e.preventDefault();
  const t = $("signin-token").value.trim();
  const err = $("signin-error");
  if (!t) {
    err.textContent = "Paste the admin token first.";
    $("signin-token").focus();
    return;
  }
  const btn = $("signin-submit");
  btn.disabled = true;
  err.textContent = "";
  try {
    await call("GET", "devices", { tokenOverride: t });
    setToken(t);
    showShell();
  } catch (ex) {
    err.textContent = ex.status === 401
      ? "The console did not accept this token: check that you pasted all of it."
      : ex.message;
    $("signin-token").setAttribute("aria-invalid", "true");
    $("signin-token").select();
  } finally {
    btn.disabled = false;
  }
}

function signout() {
  clearToken();
  showSignin("");
  $("signin-error").textContent = "Signed out. The token is gone from this tab.";
  $("signin-error").classList.add("ok");
}

// routes are the views by fragment: #/ for the devices, #/devices/ID for
// one device, #/jobs, #/jobs/new[?devices=ID,ID|?from=JOB], #/jobs/ID and
// #/tokens.
const routes = [
  [/^#\/devices\/([^/?]+)$/, "devices", (root, m) => deviceView(root, decodeURIComponent(m[1]))],
  [/^#\/jobs\/new(?:\?(.*))?$/, "jobs", (root, m) => jobFormView(root, new URLSearchParams(m[1] || ""))],
  [/^#\/jobs\/(\d+)$/, "jobs", (root, m) => jobView(root, Number(m[1]))],
  [/^#\/jobs\/?$/, "jobs", (root) => jobsView(root)],
  [/^#\/tokens\/?$/, "tokens", (root) => tokensView(root)],
];

// route mounts the view the fragment names.
function route() {
  if (!token()) return showSignin();
  stopRefresh();
  if (view) view.destroy();
  clearBanner();
  const root = $("view");
  root.replaceChildren();
  window.scrollTo(0, 0);
  let section = "devices";
  view = null;
  for (const [re, nav, mount] of routes) {
    const m = re.exec(location.hash);
    if (m) {
      section = nav;
      view = mount(root, m);
      break;
    }
  }
  if (!view) {
    view = devicesView(root);
    document.title = "Devices · ringtap console";
  }
  $("nav-devices").toggleAttribute("aria-current", section === "devices");
  $("nav-jobs").toggleAttribute("aria-current", section === "jobs");
  $("nav-tokens").toggleAttribute("aria-current", section === "tokens");
  refreshNow();
}

// every is how often the current view refreshes: a job that runs, every
// second; anything else, every 5 s.
function every(v) {
  return (v && v.interval && v.interval()) || refreshEvery;
}

// refreshNow refreshes the view and schedules the next refresh; one runs
// at a time (one asked for meanwhile runs right after), and none while the
// tab is hidden.
async function refreshNow() {
  stopRefresh();
  const v = view;
  if (!v) return;
  if (refreshing) {
    again = true;
    return;
  }
  if (!document.hidden) {
    refreshing = true;
    try {
      await v.refresh();
      lastOK = Date.now();
      if (failing) clearBanner("refresh");
      failing = false;
    } catch (ex) {
      if (v === view && ex.status !== 401) {
        failing = true;
        showBanner(`${ex.message} Retrying every ${refreshEvery / 1000} s.`, { source: "refresh" });
      }
    } finally {
      refreshing = false;
    }
    if (again) {
      again = false;
      return refreshNow();
    }
    if (v !== view || !token()) return;
    tick();
  }
  if (v === view) timer = setTimeout(refreshNow, failing ? refreshEvery : every(v));
}

function stopRefresh() {
  clearTimeout(timer);
  timer = 0;
}

// tick updates every "12 s ago" on the page.
function tick() {
  for (const el of document.querySelectorAll("[data-ago]")) setText(el, ago(el.dataset.ago));
  const s = $("refresh-state");
  if (!view || !lastOK) setText(s, "");
  else if (failing) setText(s, "Console unreachable");
  else setText(s, `Live · updated ${ago(new Date(lastOK).toISOString())}`);
  s.classList.toggle("bad", failing);
}

function start() {
  initBanner();
  initKeyDialog();
  initCaptureDialog();
  $("signin-form").addEventListener("submit", signin);
  $("signin-token").addEventListener("input", () => {
    $("signin-error").textContent = "";
    $("signin-error").classList.remove("ok");
  });
  $("signout").addEventListener("click", signout);
  $("new-key").addEventListener("click", () => openKeyDialog());
  onUnauthorized((msg) => showSignin(msg));
  // A view that ended this tab's session (it deleted the tab's own token).
  window.addEventListener("ringtap:signedout", (e) => {
    clearToken();
    showSignin("");
    $("signin-error").textContent = e.detail;
    $("signin-error").classList.add("ok");
  });
  window.addEventListener("hashchange", route);
  // A view that changed something asks for a refresh now with this event.
  window.addEventListener("ringtap:refresh", () => {
    if (view) refreshNow();
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && view) refreshNow();
  });
  setInterval(tick, 1000);
  if (token()) showShell();
  else showSignin();
}

start();
