// The admin tokens view: every token by name, id and age, the one this tab
// uses marked; create a token (shown once, to copy or to switch this tab
// to), and delete one. Rotation is create, switch, delete the old one. The
// console refuses to delete the last token, so its button is disabled with
// the reason; deleting the tab's own token signs the tab out.

import { call, setToken, clearToken } from "./api.js";
import { h, setText, setAttr, patchRows, replaceChildrenIfChanged } from "./dom.js";
import { ago, dateTime, plural } from "./format.js";
import { showBanner, clearBanner } from "./banner.js";
import { confirm } from "./confirm.js";

export function tokensView(root) {
  document.title = "Admin tokens · ringtap console";
  const summary = h("div.summary", { "aria-label": "Tokens summary" });

  const nameInput = h("input#tf-name", {
    name: "name", autocomplete: "off", spellcheck: "false", maxlength: "64",
    placeholder: "ci, alice, grafana", "aria-describedby": "tf-name-error",
  });
  const nameError = h("p#tf-name-error.field-error", { role: "alert" });
  const createBtn = h("button#tf-create.btn.primary", { type: "submit" }, "Create token");
  const form = h("form#token-form.token-form", { novalidate: true },
    h("div.field", null,
      h("label", { for: "tf-name" }, "New token ", h("span.hint", null, "a name for who or what will use it")),
      h("div.inline-form", null, nameInput, createBtn),
      nameError));

  const resultLabel = h("span#tr-label.label");
  const copyState = h("span#tr-copy-state.muted.small", { "aria-live": "polite" });
  const copyBtn = h("button#tr-copy.btn.small.primary", { type: "button", "aria-describedby": "tr-label" }, "Copy");
  const useBtn = h("button#tr-use.btn.small", { type: "button" }, "Use in this tab");
  const secret = h("pre#tr-token.command", { tabindex: "0", "aria-labelledby": "tr-label" });
  const resultNote = h("p#tr-note.muted");
  const result = h("div#token-result.token-result", { hidden: true },
    h("div.command-head", null, resultLabel, copyState, useBtn, copyBtn),
    secret, resultNote);

  const tbody = h("tbody");
  const table = h("table.grid.tokens", null,
    h("thead", null, h("tr", null,
      h("th", { scope: "col" }, "Name"),
      h("th.col-id", { scope: "col" }, "ID"),
      h("th.col-created", { scope: "col" }, "Created"),
      h("th.col-actions", { scope: "col" }, h("span.sr-only", null, "Actions")),
    )),
    tbody);
  const wrap = h("div.table-wrap", { hidden: true }, table);
  const loading = h("div.empty", null, h("p.muted", null, "Loading tokens…"));

  root.append(
    h("div.view-head", null, h("h1", null, "Admin tokens"), summary),
    h("p.muted.lede", null,
      "A token opens this page and the whole admin API. To rotate one, create its successor, ",
      "sign in with it here or give it to the script that used the old one, then delete the old one: ",
      "it is refused from its next request on. The console keeps at least one token."),
    h("div.panel", null, form, result),
    loading, wrap);

  let tokens = null;
  let created = null; // {id, name, token} of the token created on this page
  let busy = false;

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (busy) return;
    const name = nameInput.value.trim();
    if (!name) {
      fieldError("Give the token a name, such as who or what will use it.");
      nameInput.focus();
      return;
    }
    busy = true;
    createBtn.disabled = true;
    fieldError("");
    try {
      const res = await call("POST", "admin-tokens", { body: { name } });
      created = { id: res.id, name: res.name, token: res.token };
      nameInput.value = "";
      showResult();
      await refresh();
      copyBtn.focus();
    } catch (ex) {
      if (ex.status === 401) return;
      if (ex.status === 400) fieldError(ex.message);
      else showBanner(ex.message);
    } finally {
      busy = false;
      createBtn.disabled = false;
    }
  });
  nameInput.addEventListener("input", () => fieldError(""));

  copyBtn.addEventListener("click", async () => {
    let ok = false;
    try {
      await navigator.clipboard.writeText(created.token);
      ok = true;
    } catch {
      selectSecret();
    }
    setText(copyBtn, ok ? "Copied" : "Copy");
    setText(copyState, ok ? "The token is on the clipboard." : "The browser did not allow copying: the token is selected, press Ctrl+C.");
    if (ok) setTimeout(() => setText(copyBtn, "Copy"), 2500);
  });
  secret.addEventListener("focus", selectSecret);

  useBtn.addEventListener("click", async () => {
    if (!created) return;
    setToken(created.token);
    useBtn.disabled = true;
    setText(copyState, `This tab now signs in with “${created.name}”.`);
    await refresh().catch((ex) => showBanner(ex.message));
  });

  tbody.addEventListener("click", async (e) => {
    const btn = e.target.closest("button.delete");
    if (!btn || btn.disabled) return;
    const t = tokens.find((x) => x.id === btn.closest("tr").dataset.key);
    if (t) await remove(t);
  });

  function fieldError(msg) {
    setText(nameError, msg);
    setAttr(nameInput, "aria-invalid", msg ? "true" : "false");
    form.querySelector(".field").classList.toggle("invalid", !!msg);
  }

  function showResult() {
    setText(resultLabel, `Token “${created.name}” (${created.id}), shown only now`);
    setText(secret, created.token);
    setText(copyBtn, "Copy");
    setText(copyState, "");
    useBtn.disabled = false;
    setText(resultNote, "The console keeps only its hash: copy it now, or create another if you lose it. " +
      "Send it as Authorization: Bearer TOKEN.");
    result.hidden = false;
  }

  function selectSecret() {
    const range = document.createRange();
    range.selectNodeContents(secret);
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  async function remove(t) {
    const own = t.current;
    const ok = await confirm({
      title: `Delete token “${t.name}”?`,
      text: own
        ? "This tab signs in with this token: deleting it signs the tab out, and anything else using it gets 401 from its next request on. This cannot be undone."
        : "Anything using this token gets 401 from its next request on. This cannot be undone.",
      ok: "Delete token",
    });
    if (!ok) return;
    try {
      await call("DELETE", `admin-tokens/${encodeURIComponent(t.id)}`);
    } catch (ex) {
      if (ex.status === 401) return;
      if (ex.status === 404) {
        await refresh().catch(() => {});
        return showBanner("That token was deleted already.", { kind: "warn" });
      }
      return showBanner(ex.message);
    }
    clearBanner();
    if (created && created.id === t.id) {
      created = null;
      result.hidden = true;
    }
    if (own) {
      clearToken();
      window.dispatchEvent(new CustomEvent("ringtap:signedout", {
        detail: `You deleted the token “${t.name}” this tab signed in with. Sign in with another token.`,
      }));
      return;
    }
    await refresh();
  }

  function render() {
    loading.hidden = true;
    wrap.hidden = tokens.length === 0;
    const last = tokens.length === 1;
    patchRows(tbody, tokens, (t) => t.id, createRow, (tr, t) => updateRow(tr, t, last));
    replaceChildrenIfChanged(summary, h("span.chip", null, plural(tokens.length, "token")));
    if (created) useBtn.disabled = tokens.some((t) => t.current && t.id === created.id);
  }

  async function refresh() {
    const data = await call("GET", "admin-tokens");
    // The console marks as current the token this request carried: after
    // "Use in this tab", the new one.
    tokens = (data && data.admin_tokens) || [];
    render();
  }

  return { refresh, destroy() {} };
}

function createRow() {
  const name = h("span.strong");
  const mine = h("span.badge.online", { hidden: true }, "this tab");
  const id = h("code");
  const created = h("span");
  const del = h("button.btn.small.danger-outline.delete", { type: "button" }, "Delete…");
  const tr = h("tr", null,
    h("td", null, name, " ", mine),
    h("td.col-id", null, id),
    h("td.col-created", null, created),
    h("td.col-actions", null, del));
  tr.refs = { name, mine, id, created, del };
  return tr;
}

function updateRow(tr, t, last) {
  const r = tr.refs;
  setText(r.name, t.name);
  r.mine.hidden = !t.current;
  setText(r.id, t.id);
  setAttr(r.created, "data-ago", t.created_at);
  setText(r.created, ago(t.created_at));
  setAttr(r.created, "title", dateTime(t.created_at));
  r.del.disabled = last;
  setAttr(r.del, "title", last ? "The console keeps at least one token: create another first." : null);
  setAttr(r.del, "aria-label", `Delete token ${t.name}`);
}
