(function () {
  "use strict";
  // Global Privacy Control seen by the page itself (the server sees the Sec-GPC header).
  var gpc = document.getElementById("gpc");
  if (gpc && navigator.globalPrivacyControl === true) {
    gpc.hidden = false;
  }
  // After a refused submission, take the person straight to the list of what to fix.
  var problems = document.getElementById("problems");
  if (problems) {
    problems.focus();
  }
  // One submission per press: a second press while the first is on its way sends nothing.
  var form = document.getElementById("request-form");
  if (form) {
    form.addEventListener("submit", function (event) {
      var button = form.querySelector("button[type=submit]");
      if (form.dataset.sending === "1") {
        event.preventDefault();
        return;
      }
      form.dataset.sending = "1";
      if (button) {
        button.setAttribute("aria-disabled", "true");
      }
    });
  }
})();
