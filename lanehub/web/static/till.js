// The cashier screen's barcode box (edge/web/till.py): a scan (typed, or from a
// keyboard-wedge scanner ending in Enter) is sent without leaving the page, so
// the box stays focused for the next one; the ticket above updates from its
// live stream. A refusal shows next to the box. Without script the form posts.
(function () {
  "use strict";
  function start() {
    var form = document.querySelector("form[data-till-scan]");
    if (!form) { return; }
    var code = form.querySelector("input[name=code]");
    var qty = form.querySelector("input[name=qty]");
    var error = document.getElementById("err-code");
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      if (!code.value.trim()) { error.textContent = "scan or type a barcode"; return; }
      var body = new FormData(form);
      code.value = "";
      qty.value = "1";
      error.textContent = "";
      fetch(form.action, {method: "POST", body: body, credentials: "same-origin",
                          headers: {"Accept": "application/json"}})
        .then(function (r) {
          if (r.redirected || (r.headers.get("Content-Type") || "").indexOf("json") < 0) {
            window.location.reload();  // logged out, or not our answer: show the page as it is
            return null;
          }
          return r.json();
        })
        .then(function (answer) {
          if (answer && answer.errors) {
            error.textContent = Object.values(answer.errors).join("; ");
          } else if (answer && answer.message) {
            error.textContent = answer.message;
          }
        })
        .catch(function () { error.textContent = "not sent: the store page cannot be reached"; });
      code.focus();
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
