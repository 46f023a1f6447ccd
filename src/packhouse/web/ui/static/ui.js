// Packhouse web UI: copy buttons and filter-as-you-type. The pages work without it.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll(".copy-button").forEach(function (button) {
    if (!navigator.clipboard) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      var code = button.parentElement.querySelector("code");
      navigator.clipboard.writeText(code.textContent).then(function () {
        button.textContent = "Copied";
        setTimeout(function () { button.textContent = "Copy"; }, 1500);
      });
    });
  });
  document.querySelectorAll("input[data-live]").forEach(function (input) {
    var target = document.querySelector(input.dataset.live);
    var form = input.form;
    var timer = null;
    var asked = 0;
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var url = new URL(form.action || window.location.href, window.location.href);
        url.search = new URLSearchParams({ q: input.value }).toString();
        var mine = ++asked;
        fetch(url, { headers: { Accept: "text/html" }, credentials: "same-origin" })
          .then(function (r) { return r.text(); })
          .then(function (text) {
            if (mine !== asked) { return; }
            var fresh = new DOMParser().parseFromString(text, "text/html").querySelector(input.dataset.live);
            if (fresh) { target.replaceChildren.apply(target, Array.from(fresh.childNodes)); }
            history.replaceState(null, "", url);
          });
      }, 150);
    });
  });
});
