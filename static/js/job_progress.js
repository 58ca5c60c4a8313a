// Live job progress: every element with data-job-id polls GET /api/v1/jobs/{id} (cookie auth)
// and updates its <progress>, counts, rate, ETA, status and error until the job finishes.
(function () {
  "use strict";
  const TERMINAL = ["done", "failed", "cancelled"];
  const POLL_MS = 1000;

  function setText(root, field, text) {
    const el = root.querySelector('[data-field="' + field + '"]');
    if (el) el.textContent = text;
    return el;
  }

  function render(root, job) {
    const bar = root.querySelector("progress");
    if (bar) {
      bar.max = Math.max(job.total, 1);
      bar.value = job.done;
    }
    const status = setText(root, "status", job.status);
    if (status) status.className = "badge " + job.status;
    setText(root, "counts", job.done + " / " + job.total);
    setText(root, "rate", job.rate ? job.rate.toFixed(2) + " maps/s" : "");
    setText(root, "eta", job.eta_seconds ? "· about " + Math.round(job.eta_seconds) + " s left" : "");
    const err = setText(root, "error", job.error || "");
    if (err) err.hidden = !job.error;
    if (TERMINAL.indexOf(job.status) >= 0) {
      const cancel = root.querySelector('[data-field="cancel"]');
      if (cancel) cancel.hidden = true;
    }
  }

  function watch(root) {
    const id = root.getAttribute("data-job-id");
    const initial = root.getAttribute("data-job-status");
    if (TERMINAL.indexOf(initial) >= 0) return;
    let failures = 0;
    async function tick() {
      try {
        const res = await fetch("/api/v1/jobs/" + encodeURIComponent(id), {
          credentials: "same-origin",
          headers: { Accept: "application/json" },
        });
        if (!res.ok) throw new Error("HTTP " + res.status);
        const job = await res.json();
        failures = 0;
        render(root, job);
        if (TERMINAL.indexOf(job.status) >= 0) {
          if (root.hasAttribute("data-reload-on-done")) window.location.reload();
          return;
        }
      } catch (e) {
        failures += 1;
        if (failures > 30) return; // give up quietly after ~30 s of errors
      }
      window.setTimeout(tick, POLL_MS);
    }
    window.setTimeout(tick, POLL_MS);
  }

  document.querySelectorAll("[data-job-id]").forEach(watch);
})();
