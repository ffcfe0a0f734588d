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

  // Live status: the server's event stream says when the state changes; the page is then
  // loaded again (it is rendered on the server, with the new timeline and messages).
  var status = document.getElementById("status");
  if (status && status.dataset.events && window.EventSource) {
    var source = new EventSource(status.dataset.events);
    source.addEventListener("status", function (event) {
      var next = JSON.parse(event.data);
      if (next && next.state && next.state !== status.dataset.state) {
        source.close();
        window.location.reload();
      }
    });
    source.addEventListener("end", function () { source.close(); });
  }
});
