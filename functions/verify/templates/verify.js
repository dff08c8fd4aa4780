(function () {
  "use strict";
  // Opening this page changes nothing: mail scanners and link previews open links and run their
  // scripts. The page asks what the link would confirm (without using it), shows that, and
  // confirms only when the person presses the button.
  var form = document.getElementById("verify-form");
  var status = document.getElementById("status");
  var summary = document.getElementById("summary");
  var button = document.getElementById("confirm");
  var pending = null;

  function show(outcome) {
    status.textContent = outcome ? status.getAttribute("data-" + outcome) : "";
    status.className = "status " + (outcome || "");
  }

  function post(requestId, action, body) {
    return fetch("requests/" + encodeURIComponent(requestId) + "/" + action, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
      referrerPolicy: "no-referrer"
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (json) {
        return { status: response.status, body: json };
      });
    });
  }

  function refused(answer) {
    if (answer.body && answer.body.error && answer.body.error.code === "verification_locked") {
      show("locked");
    } else if (answer.status >= 500) {
      show("unavailable");
    } else {
      show("failed");
    }
    status.focus();
  }

  function kindText(kind) {
    var item = document.querySelector('#kinds li[data-kind="' + kind + '"]');
    return item ? item.textContent : kind;
  }

  function preview(requestId, token, confirm) {
    show("checking");
    post(requestId, "preview", { token: token, confirm: confirm }).then(function (answer) {
      if (answer.status !== 200) { return refused(answer); }
      var p = answer.body;
      // Shown in the request's own language: reload in it, keeping the link in memory only.
      if (p.language && p.language !== document.documentElement.lang) {
        var fragment = "request_id=" + encodeURIComponent(requestId) + "&token=" + encodeURIComponent(token) +
          (confirm === "recipient" ? "&confirm=recipient" : "");
        window.location.replace(window.location.pathname + "?lang=" + p.language + "#" + fragment);
        return;
      }
      pending = { requestId: requestId, token: token, confirm: confirm };
      document.getElementById("summary-kind").textContent = kindText(p.kind);
      document.getElementById("summary-recipient").hidden = !p.recipient;
      document.getElementById("recipient").textContent = p.recipient || "";
      document.getElementById("summary-warning").hidden = !p.irreversible;
      button.textContent = button.getAttribute(confirm === "recipient" ? "data-recipient" : "data-request");
      form.hidden = true;
      summary.hidden = false;
      show(null);
      document.getElementById("summary-heading").focus();
    }, function () { show("unavailable"); });
  }

  button.addEventListener("click", function () {
    if (!pending) { return; }
    button.disabled = true;
    show("pending");
    var action = pending.confirm === "recipient" ? "recipient" : "verify";
    post(pending.requestId, action, { token: pending.token }).then(function (answer) {
      if (answer.status === 200) {
        summary.hidden = true;
        show(pending.confirm === "recipient" ? "recipient-confirmed" : "verified");
        status.focus();
        pending = null;
      } else {
        button.disabled = false;
        refused(answer);
      }
    }, function () { button.disabled = false; show("unavailable"); });
  });

  // The link carries the secret in the fragment, which browsers never send to a server.
  // Read it once, then take it out of the address bar and the history.
  var params = new URLSearchParams(window.location.hash.slice(1));
  if (window.location.hash) {
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }
  var requestId = params.get("request_id");
  var token = params.get("token");
  var confirm = params.get("confirm") === "recipient" ? "recipient" : "request";
  if (requestId && token) {
    form.elements.request_id.value = requestId;
    preview(requestId, token, confirm);
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    preview(form.elements.request_id.value.trim(), form.elements.token.value.trim(), "request");
  });
})();
