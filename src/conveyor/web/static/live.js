/* Conveyor dashboard: live parts over server-sent events (no build step, no dependencies).
   <div data-live="/deployments/ID/events?...">
     <section data-live-part="panel">...</section>
   </div>
   Each SSE event named like a part carries that part's new HTML; "end" closes the stream. */
(function () {
  "use strict";

  function scrollLogs(element) {
    element.querySelectorAll("pre.log").forEach(function (pre) {
      pre.scrollTop = pre.scrollHeight;
    });
  }

  function connect(root) {
    var source = new EventSource(root.getAttribute("data-live"));
    root.setAttribute("data-live-state", "connecting");
    source.addEventListener("open", function () {
      root.setAttribute("data-live-state", "open");
    });
    root.querySelectorAll("[data-live-part]").forEach(function (part) {
      source.addEventListener(part.getAttribute("data-live-part"), function (event) {
        part.innerHTML = event.data;
        if (window.htmx) {
          window.htmx.process(part);
        }
        scrollLogs(part);
      });
    });
    source.addEventListener("end", function () {
      source.close();
      root.setAttribute("data-live-state", "ended");
    });
    source.addEventListener("error", function () {
      // EventSource reconnects by itself; a closed one (e.g. signed out) stays closed
      if (source.readyState === EventSource.CLOSED) {
        root.setAttribute("data-live-state", "closed");
      }
    });
    scrollLogs(root);
  }

  function start() {
    document.querySelectorAll("[data-live]").forEach(connect);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

/* Forms marked data-once disable their buttons once submitted: no double deploys on a double click. */
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (form instanceof HTMLFormElement && form.hasAttribute("data-once")) {
    window.setTimeout(function () {
      form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
    }, 0);
  }
});
