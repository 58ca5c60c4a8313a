// The study builder's image picker, all in the page (no reload, so nothing typed is lost):
//   filter buttons   [data-filter-label="x"], [data-filter-modality="CR"], [data-filter-all]
//   selection        [data-select="all"] (every image shown), [data-select="none"],
//                    [data-select-label="x"] (adds every image positive for x)
//   count            [data-picker-count]
//   warning          #image-warning: selected images that do not fit the chosen models
//                    (channels, modality mix, none of the models' classes among the labels)
// Images: <li data-labels="a b" data-modality="CR" data-channels="1"> around a checkbox.
// Models: the arm <select>s' options carry data-in-channels and data-classes ("a,b").
(function () {
  "use strict";
  var picker = document.getElementById("image-picker");
  if (!picker) return;
  var form = picker.closest("form");
  var items = Array.prototype.slice.call(picker.querySelectorAll("li[data-modality]"));

  function box(li) { return li.querySelector("input[type=checkbox]"); }
  function labels(li) { return (li.getAttribute("data-labels") || "").split(" ").filter(Boolean); }

  function show(predicate, button) {
    items.forEach(function (li) { li.hidden = !predicate(li); });
    document.querySelectorAll("[data-filter-label],[data-filter-modality],[data-filter-all]")
      .forEach(function (b) { b.setAttribute("aria-pressed", String(b === button)); });
    update();
  }

  function models() {
    var out = [];
    form.querySelectorAll("select[data-arm-checkpoint]").forEach(function (sel) {
      var opt = sel.options[sel.selectedIndex];
      if (!opt || !opt.value) return;
      out.push({
        name: opt.textContent.trim(),
        channels: parseInt(opt.getAttribute("data-in-channels") || "0", 10),
        classes: (opt.getAttribute("data-classes") || "").split(",").filter(Boolean),
      });
    });
    return out;
  }

  function warnings(selected) {
    var out = [];
    var chosen = models();
    if (selected.length === 0) return out;
    var modalities = {};
    selected.forEach(function (li) {
      var m = li.getAttribute("data-modality") || "?";
      modalities[m] = (modalities[m] || 0) + 1;
    });
    var kinds = Object.keys(modalities);
    if (kinds.length > 1) {
      out.push("The selected images mix modalities: " + kinds.map(function (k) {
        return modalities[k] + " " + k;
      }).join(", ") + ". Models are usually trained on one.");
    }
    chosen.forEach(function (m) {
      if (m.channels) {
        var wrong = selected.filter(function (li) {
          return parseInt(li.getAttribute("data-channels") || "0", 10) !== m.channels;
        }).length;
        if (wrong) out.push(wrong + " selected image(s) do not have the " + m.channels +
          " channel(s) " + m.name + " takes.");
      }
      if (m.classes.length) {
        var none = selected.filter(function (li) {
          var own = labels(li).concat((li.getAttribute("data-negative") || "").split(" "));
          return !m.classes.some(function (c) { return own.indexOf(c) >= 0; });
        }).length;
        if (none) out.push(none + " selected image(s) have none of the classes of " + m.name +
          " (" + m.classes.join(", ") + ") among their labels.");
      }
    });
    return out;
  }

  function update() {
    var selected = items.filter(function (li) { return box(li).checked; });
    var shown = items.filter(function (li) { return !li.hidden; }).length;
    document.querySelectorAll("[data-picker-count]").forEach(function (el) {
      el.textContent = selected.length + " selected · " + shown + " shown of " + items.length;
    });
    var warn = document.getElementById("image-warning");
    if (warn) {
      var list = warnings(selected);
      warn.hidden = list.length === 0;
      var ul = warn.querySelector("ul");
      ul.textContent = "";
      list.forEach(function (text) {
        var li = document.createElement("li");
        li.textContent = text;
        ul.appendChild(li);
      });
    }
  }

  document.addEventListener("click", function (event) {
    var b = event.target.closest && event.target.closest("button");
    if (!b) return;
    if (b.hasAttribute("data-filter-label")) {
      var label = b.getAttribute("data-filter-label");
      show(function (li) { return labels(li).indexOf(label) >= 0; }, b);
    } else if (b.hasAttribute("data-filter-modality")) {
      var modality = b.getAttribute("data-filter-modality");
      show(function (li) { return li.getAttribute("data-modality") === modality; }, b);
    } else if (b.hasAttribute("data-filter-all")) {
      show(function () { return true; }, b);
    } else if (b.getAttribute("data-select") === "all") {
      items.forEach(function (li) { if (!li.hidden) box(li).checked = true; });
      update();
    } else if (b.getAttribute("data-select") === "none") {
      items.forEach(function (li) { box(li).checked = false; });
      update();
    } else if (b.hasAttribute("data-select-label")) {
      var wanted = b.getAttribute("data-select-label");
      items.forEach(function (li) { if (labels(li).indexOf(wanted) >= 0) box(li).checked = true; });
      update();
    } else {
      return;
    }
    event.preventDefault();
  });
  form.addEventListener("change", update);
  update();
})();
