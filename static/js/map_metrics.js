// The study page's map-metrics panel: the page renders a placeholder
// (section[data-map-metrics-src]) so it never waits for the statistics; this fetches the panel
// from /studies/{id}/map-metrics once the page has loaded and puts it in the placeholder's
// place. On any failure the placeholder's link stays, and opens the panel as a page.
(function () {
  "use strict";
  var holder = document.querySelector("[data-map-metrics-src]");
  if (!holder || !window.fetch || !window.DOMParser) return;
  fetch(holder.getAttribute("data-map-metrics-src"), { credentials: "same-origin" })
    .then(function (r) { if (!r.ok) throw new Error(String(r.status)); return r.text(); })
    .then(function (html) {
      var doc = new DOMParser().parseFromString(html, "text/html");
      var panel = doc.querySelector("[data-map-metrics-panel]");
      if (panel) holder.replaceWith(document.importNode(panel, true));
    })
    .catch(function () { /* the link in the placeholder still works */ });
})();
