// <button data-download-target="ID" data-download-name="file.csv"> saves the text of the
// element with that id as a file. Used for links shown once (bulk invites): the text is
// already on the page, so the download needs no second request and the server keeps nothing.
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-download-target]");
    if (!button) return;
    var source = document.getElementById(button.getAttribute("data-download-target"));
    if (!source) return;
    var text = "value" in source ? source.value : source.textContent;
    var blob = new Blob([text], { type: "text/csv;charset=utf-8" });
    var url = URL.createObjectURL(blob);
    var a = document.createElement("a");
    a.href = url;
    a.download = button.getAttribute("data-download-name") || "download.csv";
    document.body.appendChild(a);
    a.click();
    a.remove();
    window.setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
  });
})();
