// The study page, live: polls GET /api/v1/studies/{id}/live every few seconds (while the tab
// is visible) and updates what the page rendered, so nobody has to reload to see it change:
//   [data-live="status"]         the status badge (text = status_label, class = status)
//   [data-live="maps"]           "done of total"
//   [data-live="ratings"]        "done of total"
//   [data-live-when="maps-ready"] / [data-live-when="job-active"] / [data-live-when="idle"]
//                                shown or hidden as the state changes (e.g. the Open button)
//   tr[data-rater="username"]    a rater's row: [data-live="done"], <progress>,
//                                [data-live="last"], [data-live="median"]
// The job bar itself is kept live by job_progress.js. Polling, not server-sent events: one
// small request every few seconds costs nothing and survives proxies that buffer streams.
(function () {
  "use strict";
  var root = document.querySelector("[data-study-live]");
  if (!root) return;
  var id = root.getAttribute("data-study-live");
  var POLL_MS = 3000;
  var failures = 0;

  function each(selector, fn) {
    Array.prototype.forEach.call(root.querySelectorAll(selector), fn);
  }

  function text(selector, value) {
    each(selector, function (el) { el.textContent = value; });
  }

  function render(s) {
    each('[data-live="status"]', function (el) {
      el.textContent = s.status_label;
      el.className = "badge " + s.status + (s.maps_ready && s.status === "generating" ? " ready" : "");
    });
    text('[data-live="maps"]', s.maps_done + " of " + s.maps_total);
    text('[data-live="ratings"]', s.ratings_done + " of " + s.ratings_total);
    var state = {
      "maps-ready": s.maps_ready && !s.job_active && (s.status === "draft" || s.status === "generating"),
      "maps-missing": !s.maps_ready && !s.job_active && (s.status === "draft" || s.status === "generating"),
      "job-active": s.job_active,
    };
    Object.keys(state).forEach(function (when) {
      each('[data-live-when="' + when + '"]', function (el) { el.hidden = !state[when]; });
    });
    s.raters.forEach(function (r) {
      var row = root.querySelector('tr[data-rater="' + CSS.escape(r.username) + '"]');
      if (!row) return;
      var bar = row.querySelector("progress");
      if (bar) { bar.max = Math.max(r.total, 1); bar.value = r.done; }
      var done = row.querySelector('[data-live="done"]');
      if (done) done.textContent = r.done + " / " + r.total;
      var last = row.querySelector('[data-live="last"]');
      if (last) last.textContent = r.last_activity ? r.last_activity.replace("T", " ").slice(0, 19) : "—";
      var median = row.querySelector('[data-live="median"]');
      if (median) median.textContent = r.median_seconds === null ? "—" : String(r.median_seconds);
    });
    root.setAttribute("data-live-updated", String(Date.now()));
  }

  function tick() {
    if (document.visibilityState === "hidden") { window.setTimeout(tick, POLL_MS); return; }
    fetch("/api/v1/studies/" + encodeURIComponent(id) + "/live", {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    }).then(function (res) {
      if (!res.ok) throw new Error("HTTP " + res.status);
      return res.json();
    }).then(function (s) {
      failures = 0;
      render(s);
      window.setTimeout(tick, POLL_MS);
    }).catch(function () {
      failures += 1;
      if (failures < 20) window.setTimeout(tick, POLL_MS * 2);
    });
  }
  window.setTimeout(tick, 500);
})();
