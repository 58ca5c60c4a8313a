// "Copy" buttons: <button type="button" data-copy-target="ID"> copies the value (or text) of
// the element with that id to the clipboard and says so on the button for a moment.
(function () {
  "use strict";
  function flash(button, text) {
    var label = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", label);
    button.textContent = text;
    window.setTimeout(function () { button.textContent = label; }, 1500);
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-copy-target]");
    if (!button) return;
    var target = document.getElementById(button.getAttribute("data-copy-target"));
    if (!target) return;
    var value = "value" in target ? target.value : target.textContent;
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(value).then(
        function () { flash(button, "Copied"); },
        function () { flash(button, "Select and copy"); }
      );
    } else if (typeof target.select === "function") {
      // Plain-HTTP sites have no clipboard API: select the text so Ctrl+C copies it.
      target.select();
      flash(button, document.execCommand("copy") ? "Copied" : "Press Ctrl+C");
    }
  });
})();
