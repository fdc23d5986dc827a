// Formatting of times, counts and the console's validation messages.

// parseTime is a Date, or null for a missing time or Go's zero time.
export function parseTime(s) {
  if (!s) return null;
  const d = new Date(s);
  if (Number.isNaN(d.getTime()) || d.getUTCFullYear() < 2000) return null;
  return d;
}

// ago is "12 s ago", "4 min ago", "3 h ago", "2 d ago", or "never".
export function ago(s, now = Date.now()) {
  const d = parseTime(s);
  if (!d) return "never";
  const sec = Math.max(0, Math.round((now - d.getTime()) / 1000));
  if (sec < 90) return `${sec} s ago`;
  const min = Math.round(sec / 60);
  if (min < 90) return `${min} min ago`;
  const hr = Math.round(min / 60);
  if (hr < 36) return `${hr} h ago`;
  return `${Math.round(hr / 24)} d ago`;
}

// until is "in 41 d", "in 5 h", or "expired 2 d ago".
export function until(s, now = Date.now()) {
  const d = parseTime(s);
  if (!d) return "unknown";
  const sec = Math.round((d.getTime() - now) / 1000);
  const span = (x) => {
    if (x < 90) return `${x} s`;
    if (x < 90 * 60) return `${Math.round(x / 60)} min`;
    if (x < 36 * 3600) return `${Math.round(x / 3600)} h`;
    return `${Math.round(x / 86400)} d`;
  };
  return sec >= 0 ? `in ${span(sec)}` : `expired ${span(-sec)} ago`;
}

// dateTime is a local, unambiguous "2025-06-01 14:03:07" for titles.
export function dateTime(s) {
  const d = parseTime(s);
  if (!d) return "";
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

const exact = new Intl.NumberFormat("en-US");

// count is a counter as people read it at a glance: 987, 12.3k, 4.56M.
export function count(n) {
  if (n === null || n === undefined || Number.isNaN(Number(n))) return "–";
  n = Number(n);
  if (n < 10000) return exact.format(n);
  const units = [["T", 1e12], ["G", 1e9], ["M", 1e6], ["k", 1e3]];
  for (const [u, v] of units) {
    if (n >= v) {
      const x = n / v;
      return (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)) + u;
    }
  }
  return exact.format(n);
}

// exactCount is the full number with separators, for titles.
export function exactCount(n) {
  if (n === null || n === undefined) return "";
  return exact.format(Number(n));
}

// captureDrops sums what one capture's status lost, as the console's
// "dropped" does: matched frames the ring had no room for or that could not
// be copied into it, and packets not written to files. A status that has
// "dropped" is taken as it is.
export function captureDrops(c) {
  if (!c) return null;
  if (typeof c.dropped === "number") return c.dropped;
  return (c.ring_drops || 0) + (c.copy_failures || 0) + (c.write_drops || 0);
}

// sentenceCase is s with its first letter capitalized.
export function sentenceCase(s) {
  s = String(s ?? "");
  return s ? s[0].toUpperCase() + s.slice(1) : s;
}

// parseValidation splits the console's validation messages,
// "captures[0].filter: compile filter ...", into {index, field, message};
// a message that names no capture has index -1. A "file:line:col: " prefix
// is dropped: the line numbers are of the console's own rendering.
export function parseValidation(messages) {
  const out = [];
  for (const m of messages || []) {
    const s = String(m);
    const match = /captures\[(\d+)\]\.?([A-Za-z0-9_.]*):\s*([\s\S]*)$/.exec(s);
    if (match) {
      out.push({ index: Number(match[1]), field: match[2], message: match[3] });
    } else {
      out.push({ index: -1, field: "", message: s.replace(/^[^\s:]+:\d+:\d+:\s*/, "") });
    }
  }
  return out;
}

// plural is "1 capture", "3 captures".
export function plural(n, one, many = one + "s") {
  return `${n} ${n === 1 ? one : many}`;
}

// bytes is a size in binary units: 512 B, 1.5 KiB, 12.3 MiB, 123 MiB, 1.02 GiB.
export function bytes(n) {
  if (n === null || n === undefined || Number.isNaN(Number(n))) return "–";
  n = Number(n);
  if (n < 1024) return `${exact.format(n)} B`;
  const units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
  let x = n, u = -1;
  while (x >= 1024 && u < units.length - 1) {
    x /= 1024;
    u++;
  }
  return `${x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)} ${units[u]}`;
}

// parseDuration reads a Go duration ("1m0s", "90s", "1h30m", "500ms") into
// milliseconds, or null when it is not one.
export function parseDuration(s) {
  s = String(s ?? "").trim();
  if (s === "0") return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/gy;
  const unit = { ns: 1e-6, us: 1e-3, "µs": 1e-3, "μs": 1e-3, ms: 1, s: 1000, m: 60000, h: 3600000 };
  let ms = 0, m, at = 0;
  if (!s) return null;
  while ((m = re.exec(s)) !== null) {
    ms += Number(m[1]) * unit[m[2]];
    at = re.lastIndex;
  }
  return at === s.length ? ms : null;
}

// span is a length of time as people say it: 450 ms, 45 s, 1 min 30 s,
// 2 h 5 min, 3 d 4 h. Two units at most.
export function span(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "–";
  ms = Math.max(0, Math.round(ms));
  if (ms < 1000) return ms === 0 ? "0 s" : `${ms} ms`;
  let sec = Math.round(ms / 1000);
  const parts = [];
  for (const [u, v] of [["d", 86400], ["h", 3600], ["min", 60], ["s", 1]]) {
    if (sec >= v || (u === "s" && !parts.length)) {
      parts.push(`${Math.floor(sec / v)} ${u}`);
      sec %= v;
    }
  }
  return parts.slice(0, 2).join(" ");
}

// clock is the local time of day, "14:03:07", with the date in front when
// it is not today.
export function clock(s, now = new Date()) {
  const d = parseTime(s);
  if (!d) return "";
  const full = dateTime(s);
  const sameDay = d.getFullYear() === now.getFullYear() && d.getMonth() === now.getMonth() && d.getDate() === now.getDate();
  return sameDay ? full.slice(11) : full;
}
