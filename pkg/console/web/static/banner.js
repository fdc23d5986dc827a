// The banner: one sentence about what went wrong, with at most one action
// (such as "Reload"). A banner raised by the background refresh clears
// itself when a refresh succeeds again; others stay until dismissed or
// until the view changes.

const el = () => document.getElementById("banner");
let source = "";
let action = null;

export function initBanner() {
  document.getElementById("banner-close").addEventListener("click", () => clearBanner());
  document.getElementById("banner-action").addEventListener("click", () => {
    const fn = action;
    clearBanner();
    if (fn) fn();
  });
}

// showBanner shows message; opts.action is a button label and opts.onAction
// its handler; opts.source names who raised it, for clearBanner(source).
export function showBanner(message, opts = {}) {
  const b = el();
  source = opts.source || "";
  action = opts.onAction || null;
  document.getElementById("banner-text").textContent = message;
  const btn = document.getElementById("banner-action");
  btn.hidden = !opts.action;
  btn.textContent = opts.action || "";
  b.classList.toggle("warn", opts.kind === "warn");
  b.hidden = false;
}

// clearBanner hides the banner; with a source, only if that source raised it.
export function clearBanner(from) {
  if (from !== undefined && from !== source) return;
  el().hidden = true;
  source = "";
  action = null;
}
