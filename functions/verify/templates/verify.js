(function () {
  "use strict";
  var form = document.getElementById("verify-form");
  var status = document.getElementById("status");

  function show(outcome) {
    status.textContent = status.getAttribute("data-" + outcome);
    status.className = "status " + outcome;
  }

  // The first confirmation proves the address; a second one (from the link that names a
  // third-party recipient) confirms where an export may go.
  var action = "verify";

  function confirm(requestId, token) {
    show("pending");
    fetch("requests/" + encodeURIComponent(requestId) + "/" + action, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token: token }),
      credentials: "omit",
      cache: "no-store",
      referrerPolicy: "no-referrer"
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (response.status === 200) {
          show("verified");
          form.hidden = true;
        } else if (body && body.error && body.error.code === "verification_locked") {
          show("locked");
        } else if (response.status >= 500) {
          show("unavailable");
        } else {
          show("failed");
        }
      });
    }, function () { show("unavailable"); });
  }

  // The link carries the secret in the fragment, which browsers never send to a server.
  // Read it once, then take it out of the address bar and the history.
  var params = new URLSearchParams(window.location.hash.slice(1));
  if (window.location.hash) {
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }
  var requestId = params.get("request_id");
  var token = params.get("token");
  if (params.get("confirm") === "recipient") {
    action = "recipient";
  }
  if (requestId && token) {
    form.elements.request_id.value = requestId;
    confirm(requestId, token);
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    confirm(form.elements.request_id.value.trim(), form.elements.token.value.trim());
  });
})();
