// confirm asks a yes/no question in a modal dialog; it resolves true when
// the user picks the (dangerous) action, false on Cancel (or the label
// given as cancel) or Escape.

export function confirm({ title, text, ok, cancel = "Cancel" }) {
  const d = document.getElementById("confirm-dialog");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = ok;
  document.getElementById("confirm-cancel").textContent = cancel;
  return new Promise((resolve) => {
    const form = document.getElementById("confirm-form");
    const cancel = document.getElementById("confirm-cancel");
    const done = (v) => {
      form.removeEventListener("submit", onSubmit);
      cancel.removeEventListener("click", onCancel);
      d.removeEventListener("close", onClose);
      if (d.open) d.close();
      resolve(v);
    };
    const onSubmit = (e) => { e.preventDefault(); done(true); };
    const onCancel = () => done(false);
    const onClose = () => done(false);
    form.addEventListener("submit", onSubmit);
    cancel.addEventListener("click", onCancel);
    d.addEventListener("close", onClose);
    d.showModal();
    cancel.focus(); // the safe choice is the default one
  });
}
