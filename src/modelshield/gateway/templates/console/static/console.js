// The console's only script: refresh the overview's live part every 5 seconds (server-rendered, escaped HTML).
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) { return; }
  var url = live.getAttribute("data-live");
  var timer = window.setInterval(function () {
    if (document.hidden) { return; }
    fetch(url, { credentials: "same-origin", redirect: "manual", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.status === 401 || response.type === "opaqueredirect") {
          window.clearInterval(timer);
          window.location.assign(url.replace(/\/live$/, "/login"));
          return null;
        }
        var type = response.headers.get("content-type") || "";
        return response.ok && type.indexOf("text/html") === 0 ? response.text() : null;
      })
      .then(function (html) { if (html !== null && html !== undefined) { live.innerHTML = html; } })
      .catch(function () { /* the next tick tries again */ });
  }, 5000);
}());
