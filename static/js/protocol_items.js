/* radsal protocol items on the trial page (issue 15): confidence (1–5), the blinding-check
   guess, the localisation region (drawn by localise.js) and "flag this case". Own module;
   the viewer (viewer.js) asks it for its part of the answer and of what is still missing
   through window.radsalProtocol, so the viewer needs to know nothing about these items.

   Keys (none of them used by the viewer): K then 1–5 sets confidence; E then 1 (Map A),
   2 (don't know) or 3 (Map B) sets the guess; R marks the region (localise.js); Y flags the
   case (a dialog asks why; Enter sends, Esc cancels). No dependencies, no inline code (CSP). */
(() => {
  "use strict";

  // This page's trial parts; bound again when the trial page swaps in the next trial.
  let root = null;
  let form = null;
  let practice = false;
  let confidence = null;
  let blinding = null;
  let dialog = null;

  function checked(fs) {
    const input = fs && fs.querySelector("input:checked");
    return input ? input.value : null;
  }

  function answers() {
    const out = {};
    for (const fs of form.querySelectorAll("fieldset.confidence")) {
      const v = checked(fs);
      if (v !== null) out[fs.dataset.key] = Number(v);
    }
    for (const fs of form.querySelectorAll("fieldset.blinding")) {
      const v = checked(fs);
      if (v !== null) out[fs.dataset.key] = v;
    }
    for (const input of form.querySelectorAll('input[type="hidden"][name^="region:"]')) {
      if (input.value) out[input.name.slice("region:".length)] = JSON.parse(input.value);
    }
    return out;
  }

  function missing() {
    const out = [];
    for (const fs of form.querySelectorAll("fieldset.protocol-item")) {
      if (fs.dataset.required !== "1") continue;
      const key = fs.dataset.key;
      const have = Object.prototype.hasOwnProperty.call(answers(), key);
      if (!have) out.push(fs.dataset.missing || key);
    }
    return out;
  }

  window.radsalProtocol = {
    answer() {
      const a = answers();
      const body = { practice };
      if (Object.keys(a).length) body.answers = a;
      return body;
    },
    missing,
  };

  function pick(fs, value) {
    const input = fs.querySelector(`input[value="${CSS.escape(value)}"]`);
    if (!input) return false;
    input.checked = true;
    input.dispatchEvent(new Event("change", { bubbles: true }));
    return true;
  }

  /* A group takes digits while it has focus, so the viewer's score keys are not triggered. */
  function digitsFor(fs, map) {
    fs.addEventListener("keydown", (e) => {
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      const value = map(e.key);
      if (value === null) return;
      e.preventDefault();
      e.stopPropagation();
      if (pick(fs, value)) document.activeElement.blur();
    });
  }
  async function sendFlag(e) {
    e.preventDefault();
    const fd = new FormData(dialog.querySelector("form"));
    const reason = fd.get("reason");
    const note = String(fd.get("note") || "").trim();
    const status = dialog.querySelector(".flag-status");
    if (!reason) { status.textContent = "Choose a reason."; return; }
    if (reason === "other" && !note) { status.textContent = "Say what is wrong with the case."; return; }
    status.textContent = "Flagging…";
    const t = window.radsalTrial ? window.radsalTrial.time() : { active: 0, total: 0 };
    const res = await fetch(root.dataset.ratingUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": root.dataset.csrf },
      body: JSON.stringify({ active_ms: t.active, total_ms: t.total, flag: { reason, note: note || null }, practice }),
    });
    let data = null;
    try { data = await res.json(); } catch (_) { data = null; }
    if (res.ok && data && data.saved) {
      dialog.close();
      if (window.radsalTrial && !data.done) window.radsalTrial.go(data.next_url);
      else window.location.assign(data.next_url);
      return;
    }
    status.textContent = "Not flagged: " + ((data && data.detail) || "the server refused it.");
  }

  /* ------------------------------------------------------------------ binding */
  function init() {
    root = document.getElementById("trial");
    form = document.getElementById("rating-form");
    if (!root || !form) return false;
    practice = root.dataset.practice === "1";
    confidence = form.querySelector("fieldset.confidence");
    if (confidence) digitsFor(confidence, (k) => (/^[1-5]$/.test(k) ? k : null));
    blinding = form.querySelector("fieldset.blinding");
    if (blinding) digitsFor(blinding, (k) => ({ 1: "left", 2: "none", 3: "right" })[k] || null);
    dialog = document.getElementById("flag-dialog");
    const flagButton = document.getElementById("flag-button");
    if (dialog && flagButton) {
      flagButton.addEventListener("click", () => dialog.showModal());
      dialog.querySelector("form").addEventListener("submit", sendFlag);
      dialog.querySelector("[data-action=cancel]").addEventListener("click", () => dialog.close());
    }
    // The viewer asked what is missing before these items were known: let it ask again.
    form.dispatchEvent(new Event("input", { bubbles: true }));
    return true;
  }
  if (!init()) return;
  document.addEventListener("radsal:trial", init);

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target;
    if (t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement) return;
    if (t instanceof HTMLInputElement && t.type === "text") return;
    if (t instanceof HTMLCanvasElement) return;
    if (dialog && dialog.open) return;
    const k = e.key.toLowerCase();
    let group = null;
    if (k === "k") group = confidence;
    else if (k === "e") group = blinding;
    else if (k === "y" && dialog) { e.preventDefault(); dialog.showModal(); return; }
    if (!group) return;
    e.preventDefault();
    (group.querySelector("input:checked") || group.querySelector("input")).focus();
  });
})();
