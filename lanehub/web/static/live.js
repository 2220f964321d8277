// Live parts of a page (lanehub/web/live.py): every element with data-live="URL"
// shows the fragment the URL's Server-Sent Events stream sends, replaced on each
// event. The browser reconnects by itself when the stream ends or drops; the
// element gets class "live-stale" while it is disconnected.
(function () {
  "use strict";
  function follow(element) {
    var source = new EventSource(element.getAttribute("data-live"));
    source.onmessage = function (e) {
      element.innerHTML = e.data;
      element.classList.remove("live-stale");
      element.dispatchEvent(new CustomEvent("live-update", {bubbles: true}));
    };
    source.onerror = function () { element.classList.add("live-stale"); };
  }
  function start() {
    document.querySelectorAll("[data-live]").forEach(follow);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
