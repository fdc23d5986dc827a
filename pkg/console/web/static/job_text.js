// Words for a job's spec: its stop conditions, filter and destination.

import { exactCount, bytes, parseDuration, span } from "./format.js";

// limitsText is "1 min, 1,000 packets or 10.0 MiB": the stop conditions,
// whichever comes first.
export function limitsText(j) {
  const parts = [];
  const d = parseDuration(j.duration);
  if (d) parts.push(span(d));
  if (j.max_packets) parts.push(`${exactCount(j.max_packets)} packets`);
  if (j.max_bytes) parts.push(roundBytes(j.max_bytes));
  if (!parts.length) return "no limit";
  if (parts.length === 1) return parts[0];
  return `${parts.slice(0, -1).join(", ")} or ${parts[parts.length - 1]}`;
}

export function filterText(f) {
  return f || "everything";
}

export function destinationText(d) {
  return !d || d === "console" ? "this console" : d;
}

// roundBytes is a limit as it was likely asked: "1 GiB", "10 MiB" when
// the unit divides it, else as bytes() writes sizes.
function roundBytes(n) {
  for (const [u, v] of [["TiB", 1024 ** 4], ["GiB", 1024 ** 3], ["MiB", 1024 ** 2], ["KiB", 1024]]) {
    if (n >= v && n % v === 0) return `${exactCount(n / v)} ${u}`;
  }
  return bytes(n);
}
