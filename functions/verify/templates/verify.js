(function () {
  "use strict";
  // Opening this page changes nothing: mail scanners and link previews open links and run their
  // scripts. The page asks what the link would confirm (without using it), shows that, and
  // confirms only when the person presses the button.
  var form = document.getElementById("verify-form");
  var status = document.getElementById("status");
  var summary = document.getElementById("summary");
  var button = document.getElementById("confirm");
  var confirmForm = document.getElementById("confirm-form");
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

  // Each preview supersedes the one before (a second link opened in this tab): a late answer
  // for an earlier one is dropped.
  var asked = 0;

  // `confirms` are what the code may confirm, tried in turn: a link says which it is; a typed
  // code may be either (the recipient email also tells the person to type its code here). At
  // most one of them applies to a request at any time, so a wrong code counts only once.
  function preview(requestId, token, confirms) {
    var ask = ++asked;
    pending = null;
    summary.hidden = true;
    button.disabled = false;
    show("checking");
    var confirm = confirms[0];
    post(requestId, "preview", { token: token, confirm: confirm }).then(function (answer) {
      if (ask !== asked) { return; }
      if (answer.status !== 200) {
        var failed = answer.body && answer.body.error && answer.body.error.code === "verification_failed";
        if (failed && confirms.length > 1) { return preview(requestId, token, confirms.slice(1)); }
        form.hidden = false;
        return refused(answer);
      }
      var p = answer.body;
      // Shown in the request's own language: reload in it, keeping the link in memory only.
      // Only once: a page already asked for that language does not ask again.
      var wanted = new URLSearchParams(window.location.search).get("lang");
      if (p.language && p.language !== document.documentElement.lang && wanted !== p.language) {
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
    }, function () { if (ask === asked) { show("unavailable"); } });
  }

  confirmForm.addEventListener("submit", function (event) {
    // The answer may arrive after another link was opened here: it belongs to this one.
    var confirming = pending;
    // A summary the server rendered (the form path) carries what it checked: that form posts.
    if (!confirming) { return; }
    event.preventDefault();
    button.disabled = true;
    show("pending");
    var action = confirming.confirm === "recipient" ? "recipient" : "verify";
    post(confirming.requestId, action, { token: confirming.token }).then(function (answer) {
      if (pending !== confirming) { return; }
      if (answer.status === 200) {
        summary.hidden = true;
        show(confirming.confirm === "recipient" ? "recipient-confirmed" : "verified");
        status.focus();
        pending = null;
      } else {
        button.disabled = false;
        refused(answer);
      }
    }, function () {
      if (pending !== confirming) { return; }
      button.disabled = false;
      show("unavailable");
    });
  });

  // The link carries the secret in the fragment, which browsers never send to a server.
  // Read it, then take it out of the address bar and the history. A second link opened in this
  // tab changes only the fragment: the page stays, so it reads that one too.
  function openLink() {
    if (!window.location.hash) { return; }
    var params = new URLSearchParams(window.location.hash.slice(1));
    history.replaceState(null, "", window.location.pathname + window.location.search);
    var requestId = params.get("request_id");
    var token = params.get("token");
    if (requestId && token) {
      form.elements.request_id.value = requestId;
      form.elements.token.value = "";
      preview(requestId, token, [params.get("confirm") === "recipient" ? "recipient" : "request"]);
    }
  }
  window.addEventListener("hashchange", openLink);
  openLink();
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    preview(form.elements.request_id.value.trim(), form.elements.token.value.trim(), ["request", "recipient"]);
  });
})();
