// The console's live parts, small on purpose: every page reads without this script.
// - Pages marked data-live refresh their data-live-region parts in place every few seconds
//   (never while the tab is hidden, and never a region that holds the focus or a form
//   control the operator has changed: a chosen signal or a typed reason stays put).
// - Focusing or hovering a timeline bar shows its detail in #bar-detail, for the keyboard.
// - A "select all" box for the workflow list.
(function () {
  "use strict";
  function regions(doc) { return doc.querySelectorAll("[data-live-region][id]"); }

  function refresh() {
    if (document.hidden) { return Promise.resolve(); }
    return fetch(location.href, { headers: { "X-Console-Refresh": "1" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html");
        regions(document).forEach(function (old) {
          var now = fresh.getElementById(old.id);
          if (!now || old.contains(document.activeElement)) { return; }
          if (old.querySelector("input:checked, details[open]") || edited(old)) { return; }
          if (old.innerHTML !== now.innerHTML) { old.innerHTML = now.innerHTML; }
        });
        if (!fresh.body.hasAttribute("data-live")) { stop(); }
      })
      .catch(function () { /* the next tick tries again */ });
  }

  function edited(region) {
    return Array.prototype.some.call(region.querySelectorAll("input, select, textarea"), function (c) {
      if (c.type === "hidden") { return false; }
      if (c.tagName === "SELECT") {
        return Array.prototype.some.call(c.options, function (o) { return o.selected !== o.defaultSelected; });
      }
      if (c.type === "checkbox" || c.type === "radio") { return c.checked !== c.defaultChecked; }
      return c.value !== c.defaultValue;
    });
  }

  var timer = null;
  function stop() { if (timer) { clearInterval(timer); timer = null; } }

  function showDetail(event) {
    var bar = event.target.closest && event.target.closest("[data-kind]");
    var out = document.getElementById("bar-detail");
    if (!bar || !out) { return; }
    var title = bar.querySelector("title");
    out.textContent = title ? title.textContent : "";
  }

  document.addEventListener("DOMContentLoaded", function () {
    var every = parseInt(document.body.getAttribute("data-live") || "0", 10);
    if (every > 0) { timer = setInterval(refresh, every); }
    document.addEventListener("focusin", showDetail);
    document.addEventListener("mouseover", showDetail);
    var all = document.getElementById("select-all");
    if (all) {
      all.hidden = false;
      all.addEventListener("change", function () {
        document.querySelectorAll("input[name=id]").forEach(function (box) { box.checked = all.checked; });
      });
    }
  });
}());
