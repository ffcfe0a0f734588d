// Amtsplatz portal: enhancements only; every page works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // An error summary takes the focus, so screen readers announce it first.
  var summary = document.getElementById("error-summary");
  if (summary) { summary.focus(); }
  // Links to resume or follow an application are selected with one click, to copy them.
  document.querySelectorAll(".ap-link-box").forEach(function (box) {
    box.addEventListener("focus", function () { box.select(); });
  });
});
