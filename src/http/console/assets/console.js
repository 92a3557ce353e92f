// Lifeboat console: the pages work without this. With it, a page whose <main> names the
// events it follows (data-events) redraws <main> from the server when one arrives, and
// countdowns tick. Nothing is drawn here that the server did not render.
(function () {
  "use strict";

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-deadline]").forEach(function (el) {
      var left = Math.max(0, Math.ceil((Number(el.dataset.deadline) - now) / 1000));
      var secs = left % 60;
      var text = left < 60 ? left + "s" : Math.floor(left / 60) + "m" + (secs < 10 ? "0" : "") + secs + "s";
      el.textContent = left > 0 ? "in " + text : "now";
    });
  }

  // A person typing into a form keeps what they typed: redraw once they leave it.
  function busy(main) {
    var active = document.activeElement;
    return active && main.contains(active) && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName);
  }

  var waiting = false;
  function redraw() {
    var main = document.getElementById("main");
    if (!main) return;
    if (busy(main)) {
      if (!waiting) {
        waiting = true;
        main.addEventListener("focusout", function again() {
          main.removeEventListener("focusout", again);
          waiting = false;
          setTimeout(schedule, 50);
        });
      }
      return;
    }
    fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("main");
        var current = document.getElementById("main");
        if (fresh && current && !busy(current)) {
          current.innerHTML = fresh.innerHTML;
          tick();
        }
      })
      .catch(function () {});
  }

  // Events come in bursts (a wave of stages): one redraw per burst.
  var timer = null;
  function schedule() {
    if (timer) return;
    timer = setTimeout(function () { timer = null; redraw(); }, 150);
  }

  function follow() {
    var main = document.getElementById("main");
    if (!main || main.dataset.events === undefined || !window.EventSource) return;
    var source = new EventSource("/api/v1/events" + main.dataset.events);
    source.onmessage = schedule;
    source.addEventListener("reset", schedule);
    // The browser reconnects by itself, with Last-Event-ID; what it missed comes then.
    // Leaving the page closes the stream: over HTTP/1.1 a browser has six connections to
    // a host, and a stream left open by a page kept for "back" holds one of them.
    window.addEventListener("pagehide", function () { source.close(); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    tick();
    setInterval(tick, 1000);
    follow();
  });
})();
