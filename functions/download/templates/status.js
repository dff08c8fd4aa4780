(function () {
  "use strict";
  // The link in our emails is /status#<reference>.<code>: the fragment never reaches a server.
  // Read it, take it out of the address bar (and so out of history and bookmarks), and ask.
  var fragment = window.location.hash.replace(/^#/, "");
  var dot = fragment.indexOf(".");
  if (dot < 1) { return; }
  var id = fragment.slice(0, dot);
  var token = fragment.slice(dot + 1);
  window.history.replaceState(null, "", window.location.pathname + window.location.search);

  var message = document.getElementById("message");
  function $(name) { return document.getElementById(name); }
  function word(key) {
    var item = document.querySelector('#words [data-k="' + key + '"]');
    return item ? item.textContent : key;
  }
  function say(what) {
    message.textContent = message.getAttribute("data-" + what);
    message.className = "status" + (what === "checking" ? "" : " warning");
  }
  var months = word("months").split(",");
  function day(iso) {
    var p = iso.split("-");
    return Number(p[2]) + " " + months[Number(p[1]) - 1] + " " + p[0];
  }
  // An amount as the page's reader writes it ("€ 25,00" in Dutch, "€25.00" in English).
  function money(cost) {
    try {
      return new Intl.NumberFormat(document.documentElement.lang || "en", { style: "currency", currency: cost.currency })
        .format(Number(cost.amount));
    } catch (e) {
      return cost.currency + " " + cost.amount;
    }
  }
  function show(selector, on) {
    Array.prototype.forEach.call(document.querySelectorAll(selector), function (e) { e.hidden = !on; });
  }
  function button(text, part) {
    var form = document.createElement("form");
    form.method = "post";
    form.action = "requests/" + encodeURIComponent(id) + "/download";
    var fields = part ? [["token", token], ["part", String(part)]] : [["token", token]];
    fields.forEach(function (f) {
      var input = document.createElement("input");
      input.type = "hidden"; input.name = f[0]; input.value = f[1];
      form.appendChild(input);
    });
    var submit = document.createElement("button");
    submit.type = "submit"; submit.textContent = text;
    form.appendChild(submit);
    return form;
  }

  function render(r) {
    $("r-kind").textContent = word("kind." + r.kind);
    $("r-reference").textContent = r.request_id;
    $("r-status").textContent = word("status." + r.status);
    $("r-received").textContent = day(r.received_on);
    $("r-due").textContent = day(r.due_on);
    $("r-expected").textContent = word("expected." + r.expected);
    $("r-agent").hidden = r.audience !== "agent";
    show(".r-extended", !!r.extended);
    show(".r-reason", !!(r.extended && r.extended.reason));
    if (r.extended) {
      $("r-extended").textContent = $("r-extended").getAttribute("data-text").replace("{until}", day(r.extended.until));
      $("r-reason").textContent = r.extended.reason || "";
    }
    show(".r-cost", !!r.cost_estimate);
    if (r.cost_estimate) { $("r-cost").textContent = money(r.cost_estimate); }
    var box = $("r-download");
    box.hidden = !r.download;
    var buttons = $("r-buttons");
    buttons.textContent = "";
    if (r.download) {
      var parts = r.download.parts;
      $("r-download-text").textContent = box.getAttribute("data-text").replace("{until}", day(r.download.available_until));
      $("r-parts-text").hidden = parts < 2;
      $("r-parts-text").textContent = box.getAttribute("data-parts").replace("{parts}", String(parts));
      for (var n = 1; n <= parts; n++) {
        buttons.appendChild(parts < 2 ? button(box.getAttribute("data-one"), 0)
          : button(box.getAttribute("data-part").replace("{n}", String(n)).replace("{of}", String(parts)), n));
      }
    }
    message.textContent = "";
    message.className = "status";
    $("result").hidden = false;
    $("lookup").hidden = true;
    $("result-heading").setAttribute("tabindex", "-1");
    $("result-heading").focus();
  }

  say("checking");
  fetch("requests/" + encodeURIComponent(id) + "/status", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token: token }),
    credentials: "omit",
    cache: "no-store",
    referrerPolicy: "no-referrer"
  }).then(function (response) {
    if (response.status === 200) { return response.json().then(render); }
    say(response.status >= 500 ? "failed" : "unavailable");
    message.focus();
  }).catch(function () {
    say("failed");
    message.focus();
  });
})();
