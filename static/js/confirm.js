// Asks before a destructive or irreversible form is sent.
//
// Any <form data-confirm="Question?"> is held back on submit and a modal dialog asks the
// question; only its confirm button sends the form. Optional attributes:
//   data-confirm-button="Close study"  the confirm button's label (default "Confirm")
//   data-confirm-detail="…"            a second line explaining what happens (and any undo)
//   data-confirm-dismiss="Keep it"     the label of the button that backs out (default "Cancel")
// Without JavaScript the form is sent as before; the server still refuses what is unsafe.
(function () {
  "use strict";

  function build(form) {
    var dialog = document.createElement("dialog");
    dialog.className = "confirm-dialog";
    dialog.setAttribute("aria-labelledby", "confirm-dialog-question");
    var question = document.createElement("p");
    question.id = "confirm-dialog-question";
    question.className = "confirm-question";
    question.textContent = form.getAttribute("data-confirm");
    dialog.appendChild(question);
    var detailText = form.getAttribute("data-confirm-detail");
    if (detailText) {
      var detail = document.createElement("p");
      detail.className = "muted confirm-detail";
      detail.textContent = detailText;
      dialog.appendChild(detail);
    }
    var actions = document.createElement("div");
    actions.className = "actions";
    var cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "secondary confirm-cancel";
    cancel.textContent = form.getAttribute("data-confirm-dismiss") || "Cancel";
    var ok = document.createElement("button");
    ok.type = "button";
    ok.className = "danger confirm-ok";
    ok.textContent = form.getAttribute("data-confirm-button") || "Confirm";
    actions.appendChild(cancel);
    actions.appendChild(ok);
    dialog.appendChild(actions);
    cancel.addEventListener("click", function () { dialog.close(); dialog.remove(); });
    ok.addEventListener("click", function () {
      dialog.close();
      form.setAttribute("data-confirmed", "1");
      if (typeof form.requestSubmit === "function") form.requestSubmit();
      else form.submit();
    });
    dialog.addEventListener("close", function () { dialog.remove(); });
    document.body.appendChild(dialog);
    return dialog;
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-confirm")) return;
    if (form.getAttribute("data-confirmed") === "1") {
      form.removeAttribute("data-confirmed");
      return;
    }
    event.preventDefault();
    var dialog = build(form);
    dialog.showModal();
    dialog.querySelector(".confirm-cancel").focus();
  }, true);
})();
