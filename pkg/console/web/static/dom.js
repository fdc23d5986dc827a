// Small DOM helpers. Every text goes in through textContent, never as HTML,
// so nothing the console or an agent reports can become markup.

// h builds an element: h("a.link", {href: "#/"}, "text", child, ...).
// The tag may carry classes after dots and an id after "#"
// ("input#jf-filter.mono"). Attributes whose value is false, null or
// undefined are left out; "on*" keys add event listeners.
export function h(tag, attrs, ...children) {
  const name = /^[^.#]+/.exec(tag)[0];
  const classes = [];
  const el = document.createElement(name);
  for (const [, kind, v] of tag.slice(name.length).matchAll(/([.#])([^.#]+)/g)) {
    if (kind === "#") el.id = v;
    else classes.push(v);
  }
  if (classes.length) el.className = classes.join(" ");
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === false || v === null || v === undefined) continue;
      if (k.startsWith("on") && typeof v === "function") {
        el.addEventListener(k.slice(2), v);
      } else if (k === "class") {
        el.className = [el.className, v].filter(Boolean).join(" ");
      } else if (k === "dataset") {
        Object.assign(el.dataset, v);
      } else if (v === true) {
        el.setAttribute(k, "");
      } else {
        el.setAttribute(k, String(v));
      }
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

// setText changes an element's text only when it differs, so a refresh
// that brings the same numbers touches nothing (no flicker, selection kept).
export function setText(el, text) {
  text = String(text);
  if (el.textContent !== text) el.textContent = text;
}

// setAttr is setText for one attribute; null removes it.
export function setAttr(el, name, value) {
  if (value === null || value === undefined || value === false) {
    if (el.hasAttribute(name)) el.removeAttribute(name);
    return;
  }
  value = value === true ? "" : String(value);
  if (el.getAttribute(name) !== value) el.setAttribute(name, value);
}

// replaceChildrenIfChanged swaps el's children for the new ones only when
// the markup they would make differs.
export function replaceChildrenIfChanged(el, ...children) {
  const probe = document.createElement(el.tagName);
  append(probe, children);
  if (probe.innerHTML !== el.innerHTML) el.replaceChildren(...probe.childNodes);
}

// patchRows keeps tbody's rows in the order of items, one row per key:
// rows of keys that stay are updated in place (update(row, item)), new keys
// get create(item), gone keys are removed. Focus, hover and text selection
// in rows that stay are kept across refreshes.
export function patchRows(tbody, items, key, create, update) {
  const old = new Map();
  for (const tr of tbody.rows) old.set(tr.dataset.key, tr);
  let at = tbody.firstElementChild;
  for (const item of items) {
    const k = String(key(item));
    let tr = old.get(k);
    if (tr) {
      old.delete(k);
    } else {
      tr = create(item);
      tr.dataset.key = k;
    }
    update(tr, item);
    if (tr !== at) tbody.insertBefore(tr, at);
    else at = at.nextElementSibling;
  }
  for (const tr of old.values()) tr.remove();
}

// patchKeyed is patchRows for any parent whose keyed children
// (data-key) follow its other children, such as a table's tbodies after
// its thead: one child per key, kept in the order of items, updated in
// place.
export function patchKeyed(parent, items, key, create, update) {
  const old = new Map();
  for (const el of parent.querySelectorAll(":scope > [data-key]")) old.set(el.dataset.key, el);
  let at = parent.querySelector(":scope > [data-key]");
  for (const item of items) {
    const k = String(key(item));
    let el = old.get(k);
    if (el) {
      old.delete(k);
    } else {
      el = create(item);
      el.dataset.key = k;
    }
    update(el, item);
    if (el !== at) parent.insertBefore(el, at);
    else at = at.nextElementSibling;
  }
  for (const el of old.values()) el.remove();
}
