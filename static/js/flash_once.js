// A message from the last action (`?done=…` in the address) is shown once: the address is
// cleaned right away, so a reload or a bookmark does not bring back a stale "queued" banner.
(function () {
  "use strict";
  var url = new URL(window.location.href);
  if (!url.searchParams.has("done")) return;
  ["done", "user"].forEach(function (key) { url.searchParams.delete(key); });
  window.history.replaceState(window.history.state, "", url.pathname + url.search + url.hash);
})();
