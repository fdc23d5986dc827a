// The new job view (#/jobs/new): pick devices (online first, each with the
// interfaces it reports), the interfaces (suggested from the devices
// picked), a filter and the stop conditions, and POST /api/v1/jobs. The
// console checks everything: its 400 message appears under the field it is
// about, or next to the Start button, and the form keeps what was typed.
//
// #/jobs/new?devices=ID,ID picks devices; #/jobs/new?from=42 fills the
// form with job 42's devices and settings.

import { call } from "./api.js";
import { h, setText, setAttr, patchKeyed } from "./dom.js";
import { plural } from "./format.js";

const stateOrder = { online: 0, stale: 1 };
const units = [["KiB", 1024], ["MiB", 1024 ** 2], ["GiB", 1024 ** 3]];

export function jobFormView(root, params) {
  document.title = "New job · ringtap console";
  const fieldError = (id) => h("p.field-error", { id: `${id}-error` });

  const picks = h("ul.device-picks", { role: "list" });
  const pickCount = h("span.muted.small", { "aria-live": "polite" });
  const pickOnline = h("button.btn.small.ghost", { type: "button" }, "Select all online");
  const hiddenNote = h("p.muted.small.picks-note", { hidden: true });
  const noDevices = h("p.muted.picks-empty", { hidden: true }, "No devices are enrolled: create an install key and enroll a sensor first.");
  const devicesField = h("fieldset.field.devices-field", { id: "jf-devices", "data-field": "devices", "aria-describedby": "jf-devices-error" },
    h("div.legend-row", null, h("legend", null, "Devices"), pickCount, h("span.spacer"), pickOnline),
    picks, noDevices, hiddenNote, fieldError("jf-devices"));

  const ifaces = h("input#jf-interfaces.mono", {
    "data-field": "interfaces", autocomplete: "off", spellcheck: "false", placeholder: "eth0",
    "aria-describedby": "jf-interfaces-error jf-interfaces-warn",
  });
  const suggest = h("div.suggest", { "aria-label": "Interfaces of the devices picked" });
  const ifaceWarn = h("p.warn-text.small#jf-interfaces-warn", { hidden: true });
  const filter = h("textarea#jf-filter", { "data-field": "filter", rows: 2, spellcheck: "false", placeholder: "host 198.18.4.7 and udp port 53", "aria-describedby": "jf-filter-error" });
  const duration = h("input#jf-duration.mono", { "data-field": "duration", list: "jf-durations", autocomplete: "off", spellcheck: "false", placeholder: "60s", "aria-describedby": "jf-duration-error" });
  const maxPackets = h("input#jf-max-packets", { "data-field": "max_packets", type: "number", min: 0, step: 1, inputmode: "numeric", placeholder: "no limit", "aria-describedby": "jf-max-packets-error" });
  const maxBytes = h("input#jf-max-bytes", { "data-field": "max_bytes", type: "number", min: 0, step: "any", inputmode: "decimal", placeholder: "console's maximum", "aria-describedby": "jf-max-bytes-error" });
  const maxBytesUnit = h("select#jf-max-bytes-unit", { "aria-label": "Unit of max size" }, units.map(([u]) => h("option", { value: u, selected: u === "MiB" }, u)));
  const snaplen = h("input#jf-snaplen", { "data-field": "snaplen", type: "number", min: 1, max: 262144, inputmode: "numeric", placeholder: "262144", "aria-describedby": "jf-snaplen-error" });
  const expires = h("select#jf-expires", { "data-field": "expires_in", "aria-describedby": "jf-expires-error" },
    [["5m", "5 minutes"], ["10m", "10 minutes"], ["30m", "30 minutes"], ["1h", "1 hour"], ["6h", "6 hours"], ["24h", "24 hours"]]
      .map(([v, t]) => h("option", { value: v, selected: v === "10m" }, t)));
  const dest = h("select#jf-destination", { "aria-describedby": "jf-destination-error" },
    h("option", { value: "console", selected: true }, "this console"),
    h("option", { value: "s3" }, "an S3 bucket"));
  const s3 = h("input#jf-s3.mono", { "data-field": "destination", autocomplete: "off", spellcheck: "false", placeholder: "s3://bucket/prefix/", "aria-describedby": "jf-s3-error" });
  const s3Field = h("div.field", { hidden: true },
    h("label", { for: "jf-s3" }, "S3 address", h("span.hint", null, "the agents upload with their export settings")),
    s3, fieldError("jf-s3"));
  const toS3 = () => dest.value === "s3";

  const alert = h("div.form-alert#jf-error", { role: "alert", hidden: true });
  const busy = h("span.muted", { "aria-live": "polite" });
  const submit = h("button.btn.primary#jf-submit", { type: "submit" }, "Start job");

  const field = (label, control, id, hint) => h("div.field", null,
    h("label", { for: control.id }, label, hint ? h("span.hint", null, hint) : null),
    control, fieldError(id));

  const form = h("form.panel.job-form", { novalidate: true },
    devicesField,
    h("div.field", null,
      h("label", { for: "jf-interfaces" }, "Interfaces", h("span.hint", null, "captured together into one file; separate several with spaces")),
      ifaces, suggest, ifaceWarn, fieldError("jf-interfaces")),
    field("Filter", filter, "jf-filter", "tcpdump syntax; empty captures everything"),
    h("div.group-label", null, "Stop after", h("span.hint", null, "whichever comes first; the console caps each at its policy")),
    h("div.grid3", null,
      field("Duration", duration, "jf-duration", "such as 30s, 5m"),
      field("Packets", maxPackets, "jf-max-packets"),
      h("div.field", null,
        h("label", { for: "jf-max-bytes" }, "File size"),
        h("div.unit-input", null, maxBytes, maxBytesUnit),
        fieldError("jf-max-bytes"))),
    h("div.grid3", null,
      field("Snaplen", snaplen, "jf-snaplen", "bytes per packet"),
      field("Expires in", expires, "jf-expires", "if no device picks it up"),
      field("Result goes to", dest, "jf-destination")),
    s3Field,
    h("datalist#jf-durations", null, ["10s", "30s", "1m", "5m", "15m", "1h"].map((v) => h("option", { value: v }))),
    h("div.form-foot", null,
      alert,
      h("div.form-foot-row", null, busy, h("span.spacer"), h("a.btn", { href: "#/jobs" }, "Cancel"), submit)));

  root.append(
    h("nav.crumbs", { "aria-label": "Breadcrumb" }, h("a", { href: "#/jobs" }, "Jobs"), h("span", { "aria-hidden": "true" }, " / "), h("span", null, "New job")),
    h("div.view-head", null, h("h1", null, "New capture job")),
    h("div.job-form-layout", null, form,
      h("aside.help", null,
        h("h2", null, "How a job runs"),
        h("ol", null,
          h("li", null, "Each device picks it up within seconds. One that does not before it expires ends ", h("b", null, "expired"), "."),
          h("li", null, "It captures next to the standing captures, sharing their programs and disturbing none."),
          h("li", null, "At the first limit it stops, uploads the pcap here, and ends ", h("b", null, "finished"), "."),
          h("li", null, "A cancel stops it within seconds and keeps what was captured.")),
        h("p.muted.small", null, "While it runs, the job's page has a curl command that streams it into Wireshark."))));

  let devices = null; // from the first load, in the order shown
  let loaded = false;
  let sending = false;

  const controls = () => [devicesField, ifaces, filter, duration, maxPackets, maxBytes, snaplen, expires, s3];

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    send();
  });
  picks.addEventListener("change", () => {
    clearFieldError(devicesField);
    renderPicks();
  });
  pickOnline.addEventListener("click", () => {
    for (const cb of picks.querySelectorAll("input[type=checkbox]")) {
      if (cb.dataset.state === "online") cb.checked = true;
    }
    clearFieldError(devicesField);
    renderPicks();
  });
  ifaces.addEventListener("input", renderSuggestions);
  suggest.addEventListener("click", (e) => {
    const b = e.target.closest("button[data-iface]");
    if (!b) return;
    const list = typed();
    const i = list.indexOf(b.dataset.iface);
    if (i >= 0) list.splice(i, 1);
    else list.push(b.dataset.iface);
    ifaces.value = list.join(" ");
    clearFieldError(ifaces);
    renderSuggestions();
  });
  dest.addEventListener("change", () => {
    s3Field.hidden = !toS3();
    clearFieldError(s3);
    if (toS3()) s3.focus();
  });
  for (const c of [ifaces, filter, duration, maxPackets, maxBytes, maxBytesUnit, snaplen, expires, s3]) {
    c.addEventListener("input", () => clearFieldError(c === maxBytesUnit ? maxBytes : c));
  }

  async function refresh() {
    const [data, from] = await Promise.all([
      call("GET", "devices"),
      !loaded && params.get("from") ? call("GET", `jobs/${encodeURIComponent(params.get("from"))}`).catch((ex) => {
        if (ex.status === 404) return null;
        throw ex;
      }) : null,
    ]);
    const all = (data && data.devices) || [];
    const usable = all.filter((d) => d.state !== "revoked");
    if (!devices) {
      devices = usable.slice().sort((a, b) =>
        (stateOrder[a.state] ?? 2) - (stateOrder[b.state] ?? 2) ||
        String(a.hostname || "").localeCompare(String(b.hostname || "")) || String(a.id).localeCompare(String(b.id)));
    } else {
      // Keep the order the list was shown in; update what changed, add new
      // devices at the end, drop revoked ones.
      const now = new Map(usable.map((d) => [d.id, d]));
      devices = devices.filter((d) => now.has(d.id)).map((d) => now.get(d.id));
      for (const d of usable) if (!devices.some((x) => x.id === d.id)) devices.push(d);
    }
    const revoked = all.length - usable.length;
    hiddenNote.hidden = revoked === 0;
    setText(hiddenNote, `${plural(revoked, "revoked device")} ${revoked === 1 ? "is" : "are"} not shown: ${revoked === 1 ? "it" : "they"} can no longer run jobs.`);
    noDevices.hidden = devices.length > 0;
    pickOnline.hidden = !devices.some((d) => d.state === "online");
    patchKeyed(picks, devices, (d) => d.id, createPick, updatePick);
    if (!loaded) {
      loaded = true;
      prefill(from);
    }
    renderPicks();
  }

  // prefill fills the form from ?devices= or from job ?from=.
  function prefill(from) {
    let pick = (params.get("devices") || "").split(",").filter(Boolean);
    if (from) {
      pick = (from.runs || []).map((r) => r.device);
      ifaces.value = (from.interfaces || []).join(" ");
      filter.value = from.filter || "";
      duration.value = from.duration && from.duration !== "0s" ? shortDuration(from.duration) : "";
      maxPackets.value = from.max_packets || "";
      if (from.max_bytes) {
        const [u, v] = [...units].reverse().find(([, v]) => from.max_bytes % v === 0) || ["KiB", 1024];
        maxBytesUnit.value = u;
        maxBytes.value = String(Math.round((from.max_bytes / v) * 1000) / 1000);
      }
      snaplen.value = from.snaplen && from.snaplen !== 262144 ? from.snaplen : "";
      if (from.destination && from.destination !== "console") {
        dest.value = "s3";
        s3Field.hidden = false;
        s3.value = from.destination;
      }
    } else if (params.get("from")) {
      showAlert(`There is no job ${params.get("from")} to copy: start from an empty form.`, "warn");
    }
    for (const cb of picks.querySelectorAll("input[type=checkbox]")) {
      if (pick.includes(cb.value)) cb.checked = true;
    }
    const first = picks.querySelector("input[type=checkbox]:checked") ? ifaces : picks.querySelector("input[type=checkbox]");
    if (first) first.focus();
  }

  function chosen() {
    const ids = new Set([...picks.querySelectorAll("input[type=checkbox]:checked")].map((cb) => cb.value));
    return (devices || []).filter((d) => ids.has(d.id));
  }

  function typed() {
    return ifaces.value.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean)
      .filter((s, i, all) => all.indexOf(s) === i);
  }

  function renderPicks() {
    const n = chosen().length;
    setText(pickCount, n ? `${n} of ${devices.length} picked` : "");
    for (const li of picks.children) li.classList.toggle("picked", li.querySelector("input").checked);
    renderSuggestions();
  }

  // renderSuggestions offers the interfaces of the devices picked, most
  // common first, and warns about a typed one that a picked device does
  // not report (the console would refuse the job).
  function renderSuggestions() {
    const ds = chosen();
    const list = typed();
    const seen = new Map();
    for (const d of ds) for (const i of d.interfaces || []) seen.set(i, (seen.get(i) || 0) + 1);
    const offer = [...seen].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    const key = JSON.stringify([offer, ds.length, list]);
    if (suggest.dataset.shown !== key) {
      suggest.dataset.shown = key;
      if (!ds.length) {
        suggest.replaceChildren(h("span.muted.small", null, "Pick devices to see the interfaces they report."));
      } else if (!offer.length) {
        suggest.replaceChildren(h("span.muted.small", null, "The devices picked report no interfaces yet: type the name."));
      } else {
        suggest.replaceChildren(...offer.map(([i, n]) => h("button.chip-btn", {
          type: "button", "data-iface": i, "aria-pressed": String(list.includes(i)),
          title: n === ds.length ? `Every device picked reports ${i}` : `${n} of ${ds.length} devices picked report ${i}`,
        }, h("span.mono", null, i), n < ds.length ? h("span.chip-count", null, `${n}/${ds.length}`) : null)));
      }
    }
    const missing = [];
    for (const i of list) {
      const lack = ds.filter((d) => (d.interfaces || []).length && !d.interfaces.includes(i));
      if (lack.length) missing.push(`${lack.map((d) => d.hostname || d.id).join(", ")} ${lack.length === 1 ? "does" : "do"} not report ${i}`);
    }
    ifaceWarn.hidden = missing.length === 0;
    setText(ifaceWarn, missing.length ? `${missing.join("; ")}: the console will refuse it.` : "");
  }

  function body() {
    const b = { devices: chosen().map((d) => d.id), interfaces: typed(), filter: filter.value.trim() };
    const num = (el) => (el.value.trim() === "" ? 0 : Number(el.value));
    b.snaplen = num(snaplen);
    if (duration.value.trim()) b.duration = duration.value.trim();
    b.max_packets = num(maxPackets);
    const mult = (units.find(([u]) => u === maxBytesUnit.value) || units[1])[1];
    b.max_bytes = Math.round(num(maxBytes) * mult);
    b.expires_in = expires.value;
    b.destination = toS3() ? s3.value.trim() : "console";
    return b;
  }

  // check finds what the form can tell without the console.
  function check(b) {
    if (!b.devices.length) return [devicesField, "Pick at least one device."];
    if (!b.interfaces.length) return [ifaces, "Name at least one interface to capture on."];
    for (const [el, v, what] of [[maxPackets, b.max_packets, "packets"], [maxBytes, b.max_bytes, "file size"], [snaplen, b.snaplen, "snaplen"]]) {
      if (!Number.isFinite(v) || v < 0 || (el !== maxBytes && !Number.isInteger(v))) return [el, `The ${what} is not a whole number: give one, or leave it empty.`];
    }
    if (toS3() && !/^s3:\/\/[^/\s]+/.test(b.destination)) return [s3, "Give the S3 address as s3://bucket/prefix/."];
    return null;
  }

  async function send() {
    if (sending || !devices) return;
    clearErrors();
    const b = body();
    const bad = check(b);
    if (bad) {
      setFieldError(bad[0], bad[1]);
      focusField(bad[0]);
      return;
    }
    sending = true;
    submit.disabled = true;
    setText(busy, "Starting…");
    try {
      const job = await call("POST", "jobs", { body: b });
      location.hash = `#/jobs/${job.id}`;
    } catch (ex) {
      if (ex.status === 401) return;
      if (ex.status === 400 || ex.status === 422) showRejection(ex);
      else showAlert(ex.message);
    } finally {
      sending = false;
      submit.disabled = false;
      setText(busy, "");
    }
  }

  // showRejection puts the console's sentence under the field it is about,
  // or next to the Start button when it names none.
  function showRejection(ex) {
    const msgs = [ex.message, ...(ex.errors || []).filter((e) => !ex.message.toLowerCase().includes(String(e).toLowerCase()))];
    const f = fieldOf(ex.message);
    if (f) {
      // Under the field, "filter: compile filter ..." needs no "filter:".
      msgs[0] = msgs[0].replace(/^(filter|snaplen|destination|devices|interfaces(\[\d+\])?):\s*(\S)/i, (_, _f, _i, c) => c.toUpperCase());
      setFieldError(f, msgs.join(" "));
      showAlert(`The console did not start this job: see ${labelOf(f)} above.`);
      focusField(f);
    } else {
      showAlert(msgs.join(" "));
      submit.focus();
    }
  }

  // fieldOf is the control a console message is about: the one whose words
  // come first in it.
  function fieldOf(msg) {
    const m = msg.toLowerCase();
    // "device X (host) does not report interface eth1": the interface is
    // what to change.
    if (/does not report interface|^interfaces?\b/.test(m)) return ifaces;
    const words = [
      [filter, ["filter"]],
      [ifaces, ["interface"]],
      [devicesField, ["device", "enrolled"]],
      [maxPackets, ["max_packets", "packets"]],
      [maxBytes, ["max_bytes", "bytes", "size"]],
      [snaplen, ["snaplen"]],
      [expires, ["expires_in", "expiry", "expire"]],
      [duration, ["duration"]],
      [s3, ["destination", "s3"]],
    ];
    let best = null, at = Infinity;
    for (const [el, ws] of words) {
      for (const w of ws) {
        const i = m.search(new RegExp(`\\b${w}`));
        if (i >= 0 && i < at) {
          at = i;
          best = el;
        }
      }
    }
    return best === s3 && !toS3() ? null : best;
  }

  function labelOf(f) {
    if (f === devicesField) return "Devices";
    const l = form.querySelector(`label[for="${f.id}"]`);
    return l ? l.firstChild.textContent.trim() : "the form";
  }

  function showAlert(text, kind = "bad") {
    alert.className = `form-alert ${kind}`;
    alert.replaceChildren(h("p", null, text));
    alert.hidden = false;
  }

  function setFieldError(f, msg) {
    f.setAttribute("aria-invalid", "true");
    const p = form.querySelector(`#${f.id}-error`);
    if (p) p.textContent = msg;
    (f.closest(".field") || f).classList.add("invalid");
  }

  function clearFieldError(f) {
    if (f.getAttribute("aria-invalid") !== "true") return;
    f.removeAttribute("aria-invalid");
    const p = form.querySelector(`#${f.id}-error`);
    if (p) p.textContent = "";
    (f.closest(".field") || f).classList.remove("invalid");
    if (!form.querySelector("[aria-invalid=true]")) hideAlert();
  }

  function clearErrors() {
    for (const c of controls()) clearFieldError(c);
    hideAlert();
  }

  function hideAlert() {
    alert.hidden = true;
    alert.replaceChildren();
  }

  function focusField(f) {
    const el = f === devicesField ? (picks.querySelector("input:checked") || picks.querySelector("input")) : f;
    if (el) {
      el.focus();
      (f === devicesField ? devicesField : el).scrollIntoView({ block: "nearest" });
    }
  }

  return { refresh, interval: () => 5000, destroy() {} };
}

function createPick(d) {
  const cb = h("input", { type: "checkbox", name: "device", value: d.id, id: `jf-dev-${d.id}` });
  const host = h("span.host");
  const state = h("span.badge");
  const ifaces = h("span.chips");
  const li = h("li", null,
    h("label.pick", { for: cb.id }, cb, h("span.pick-name", null, host, state), ifaces));
  li.refs = { cb, host, state, ifaces };
  return li;
}

function updatePick(li, d) {
  const r = li.refs;
  setText(r.host, d.hostname || d.id);
  setText(r.state, d.state || "unknown");
  setAttr(r.state, "class", `badge state ${d.state || ""}`);
  r.cb.dataset.state = d.state || "";
  setAttr(li, "title", d.state === "stale"
    ? "No recent heartbeat: its run waits until the job expires."
    : null);
  const list = d.interfaces || [];
  const key = JSON.stringify(list);
  if (r.ifaces.dataset.shown !== key) {
    r.ifaces.dataset.shown = key;
    r.ifaces.replaceChildren(...(list.length ? list.map((i) => h("span.chip.mono", null, i)) : [h("span.muted.small", null, "no interfaces reported")]));
  }
}

// shortDuration drops the zero parts of a Go duration: "1m0s" is "1m".
function shortDuration(s) {
  const t = String(s).replace(/(\D)0s$/, "$1").replace(/(\D)0m$/, "$1");
  return t || s;
}
