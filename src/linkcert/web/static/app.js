// Link tracking pages: a little progressive enhancement, nothing the pages need to work.
// - while a domain is typed: the DNS records to add at once, then what DNS says now;
// - saving and "check again" without a reload;
// - the HTTPS status followed live (every 2 s, 10 s once settled), changes announced politely;
// - copy buttons, and relative times that keep up;
// - the user-name menu (a disclosure button) and the page's tabs, with their keyboard keys.
// Text from the server is only ever set with textContent; the one HTML it sends is the status
// panel, rendered (and escaped) by the server's templates.
(function () {
  "use strict";

  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";

  function request(method, url, body) {
    var headers = { "X-Requested-With": "fetch", "X-CSRF-Token": csrf };
    var options = { method: method, headers: headers, credentials: "same-origin" };
    if (body instanceof FormData) {
      options.body = body;
    } else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(url, options).then(function (response) {
      if (response.status === 401) {
        window.location.assign("/login");
        throw new Error("logged out");
      }
      return response.json().then(function (data) {
        return { ok: response.ok, status: response.status, data: data };
      });
    });
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // --- relative times ------------------------------------------------------------------

  function relative(iso) {
    var seconds = (Date.parse(iso) - Date.now()) / 1000;
    var future = seconds >= 0;
    seconds = Math.abs(seconds);
    if (seconds < 5) return "now";
    var units = [[86400, "day"], [3600, "hour"], [60, "minute"], [1, "second"]];
    for (var i = 0; i < units.length; i++) {
      if (seconds >= units[i][0]) {
        var count = Math.floor(seconds / units[i][0]);
        var words = count + " " + units[i][1] + (count === 1 ? "" : "s");
        return future ? "in " + words : words + " ago";
      }
    }
    return "now";
  }

  function tick() {
    var nodes = document.querySelectorAll("[data-relative]");
    for (var i = 0; i < nodes.length; i++) {
      nodes[i].textContent = "(" + relative(nodes[i].getAttribute("data-relative")) + ")";
    }
  }
  window.setInterval(tick, 5000);

  // --- the user-name menu --------------------------------------------------------------
  // A disclosure button: Enter, Space or a click opens and closes it; Escape closes it and
  // gives the focus back to the button; so do a click elsewhere and Tab past its last item.
  // Arrow keys move between its items. Without scripts the page shows plain links instead.

  var menuBox = document.querySelector("[data-menu]");
  var menuButton = document.getElementById("user-menu-button");
  var menu = document.getElementById("user-menu");

  function menuItems() {
    return Array.prototype.slice.call(menu.querySelectorAll("a, button"));
  }

  function setMenu(open, focusButton) {
    menuButton.setAttribute("aria-expanded", open ? "true" : "false");
    menu.hidden = !open;
    if (!open && focusButton) menuButton.focus();
  }

  function menuOpen() {
    return menuButton.getAttribute("aria-expanded") === "true";
  }

  if (menuBox && menuButton && menu) {
    menuButton.addEventListener("click", function () {
      setMenu(!menuOpen(), false);
    });
    menuBox.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && menuOpen()) {
        event.preventDefault();
        setMenu(false, true);
        return;
      }
      if (event.key !== "ArrowDown" && event.key !== "ArrowUp" && event.key !== "Home" && event.key !== "End") return;
      var items = menuItems();
      var at = items.indexOf(document.activeElement);
      if (event.target === menuButton) {
        if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
        at = event.key === "ArrowDown" ? 0 : items.length - 1;
        setMenu(true, false);
      } else if (at < 0) {
        return;
      } else if (event.key === "Home") {
        at = 0;
      } else if (event.key === "End") {
        at = items.length - 1;
      } else {
        at = (at + (event.key === "ArrowDown" ? 1 : items.length - 1)) % items.length;
      }
      event.preventDefault();
      items[at].focus();
    });
    document.addEventListener("click", function (event) {
      if (menuOpen() && !menuBox.contains(event.target)) setMenu(false, false);
    });
    menuBox.addEventListener("focusout", function (event) {
      if (menuOpen() && event.relatedTarget && !menuBox.contains(event.relatedTarget)) {
        setMenu(false, false);
      }
    });
  }

  // --- tabs ----------------------------------------------------------------------------
  // Each tab is a link, so that it works without scripts; with them, a tab whose panel is on
  // this page selects it in place. Arrow keys, Home and End move between tabs.

  function selectTab(tab, focus) {
    var list = tab.closest('[role="tablist"]');
    list.querySelectorAll('[role="tab"]').forEach(function (other) {
      var selected = other === tab;
      other.setAttribute("aria-selected", selected ? "true" : "false");
      other.tabIndex = selected ? 0 : -1;
      var panel = document.getElementById(other.getAttribute("aria-controls"));
      if (panel) panel.hidden = !selected;
    });
    if (focus) tab.focus();
  }

  document.querySelectorAll('[role="tablist"]').forEach(function (list) {
    var tabs = Array.prototype.slice.call(list.querySelectorAll('[role="tab"]'));
    tabs.forEach(function (tab) {
      tab.tabIndex = tab.getAttribute("aria-selected") === "true" ? 0 : -1;
      tab.addEventListener("click", function (event) {
        if (!document.getElementById(tab.getAttribute("aria-controls"))) return;
        event.preventDefault();
        selectTab(tab, true);
      });
    });
    list.addEventListener("keydown", function (event) {
      var at = tabs.indexOf(document.activeElement);
      if (at < 0) return;
      var next = {
        ArrowRight: (at + 1) % tabs.length,
        ArrowLeft: (at + tabs.length - 1) % tabs.length,
        Home: 0,
        End: tabs.length - 1,
      }[event.key];
      if (event.key === " ") {
        event.preventDefault();
        tabs[at].click();
      } else if (next !== undefined) {
        event.preventDefault();
        selectTab(tabs[next], true);
      }
    });
  });

  // --- copy buttons --------------------------------------------------------------------

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button[data-copy]") : null;
    if (!button) return;
    var text = button.getAttribute("data-copy");
    var done = function () {
      button.textContent = "Copied";
      window.setTimeout(function () { button.textContent = "Copy"; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () {});
    }
  });

  // --- notices -------------------------------------------------------------------------

  var notice = document.getElementById("notice");
  function showNotice(text) {
    if (!notice || !text) return;
    notice.textContent = text;
    notice.hidden = false;
  }

  // --- the live status panel -----------------------------------------------------------

  var panel = document.getElementById("status-panel");
  var card = document.getElementById("status-card");
  var live = document.getElementById("status-live");
  var statusError = document.getElementById("status-error");
  var pollMs = panel ? parseInt(panel.getAttribute("data-poll-ms"), 10) || 2000 : 0;
  var lastSummary = panel ? panel.getAttribute("data-summary") || "" : "";
  var pollTimer = null;

  function applyStatus(payload) {
    if (!panel || !payload || !payload.html) return;
    if (card) card.hidden = false;
    pollMs = payload.poll_ms || 2000;
    if (payload.digest === panel.getAttribute("data-digest")) return;
    // Keep what the person opened and where their focus was.
    var open = [];
    panel.querySelectorAll("details[open]").forEach(function (d) { open.push(d.id); });
    var focusedInside = panel.contains(document.activeElement);
    panel.innerHTML = payload.html;
    panel.setAttribute("data-digest", payload.digest);
    open.forEach(function (id) {
      var d = document.getElementById(id);
      if (d) d.open = true;
    });
    if (focusedInside) {
      var first = panel.querySelector("button, summary, a");
      if (first) first.focus();
    }
    if (live && payload.summary !== lastSummary) {
      live.textContent = payload.summary;
      lastSummary = payload.summary;
    }
  }

  function schedulePoll(delay) {
    if (!panel) return;
    if (pollTimer) window.clearTimeout(pollTimer);
    pollTimer = window.setTimeout(poll, delay);
  }

  function poll() {
    if (document.hidden) {
      schedulePoll(pollMs);
      return;
    }
    request("GET", panel.getAttribute("data-status-url")).then(function (result) {
      if (result.ok) applyStatus(result.data);
      schedulePoll(pollMs);
    }, function () {
      schedulePoll(Math.max(pollMs, 5000));
    });
  }

  if (panel) {
    // Nothing to follow until a domain is saved; saving starts the polling.
    if (!(card && card.hidden)) schedulePoll(pollMs);
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) schedulePoll(0);
    });
    // "Check again now", without leaving the page.
    panel.addEventListener("submit", function (event) {
      var form = event.target;
      if (!form.matches('form[data-enhance="retry"]')) return;
      event.preventDefault();
      var button = form.querySelector("button");
      if (button) button.disabled = true;
      request("POST", form.action, new FormData(form)).then(function (result) {
        if (result.ok) {
          if (statusError) {
            statusError.hidden = true;
            statusError.textContent = "";
          }
          showNotice(result.data.notice);
          applyStatus(result.data.status);
          schedulePoll(1000);
        } else if (statusError) {
          statusError.textContent = (result.data.error || "Not done.") + (result.data.fix ? " " + result.data.fix : "");
          statusError.hidden = false;
        }
        if (button) button.disabled = false;
      }, function () {
        if (button) button.disabled = false;
      });
    });
  }

  // --- the link tracking domain field --------------------------------------------------

  var form = document.getElementById("domain-form");
  var input = document.getElementById("domain");
  var help = document.getElementById("dns-help");
  var recordsBox = document.getElementById("dns-records");
  var checkLine = document.getElementById("dns-check");
  var problemsList = document.getElementById("dns-problems");
  var fieldError = document.getElementById("domain-error");
  var checkTimer = null;
  var checkSeq = 0;

  // The records block is always rendered by the server (the page, the save, the DNS check),
  // so it reads the same with and without reloading.
  function showRecords(html) {
    recordsBox.innerHTML = html;
  }

  function escapeHtml(text) {
    return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
  }

  function guessName(typed) {
    return typed.trim().toLowerCase().replace(/^https?:\/\//, "").replace(/\/.*$/, "").replace(/\.$/, "");
  }

  // Before the check answers: the page's own records, for the typed name.
  function showGuess(typed) {
    var guess = document.getElementById("dns-guess");
    var name = guessName(typed);
    if (!name || !guess) return;
    var placeholder = guess.getAttribute("data-typed-name");
    showRecords(guess.innerHTML.split(placeholder).join(escapeHtml(name)));
  }

  function showCheck(result) {
    showRecords(result.records_html);
    checkLine.textContent = result.state_text + (result.found ? " Now: " + result.found + "." : "");
    problemsList.textContent = "";
    result.problems.forEach(function (problem) {
      var item = el("li", "problem");
      item.setAttribute("data-code", problem.code);
      item.appendChild(el("p", "problem-message", problem.message));
      if (problem.fix) {
        var fix = el("p", "fix");
        fix.appendChild(el("strong", "", "Fix: "));
        fix.appendChild(document.createTextNode(problem.fix));
        item.appendChild(fix);
      }
      problemsList.appendChild(item);
    });
  }

  function checkDns() {
    var typed = input.value;
    if (!guessName(typed)) return;
    var seq = ++checkSeq;
    checkLine.textContent = "Checking your DNS…";
    request("POST", "/account/dns-check", { domain: typed }).then(function (result) {
      if (seq !== checkSeq || !result.ok) return;
      showCheck(result.data);
    }, function () {});
  }

  // "Your DNS records" for the saved name, "DNS records to add" for a new one.
  function describeRecords(typed) {
    var kept = guessName(typed) === guessName(input.getAttribute("data-saved") || "");
    var which = kept ? "kept" : "create";
    document.getElementById("dns-help-heading").textContent = help.getAttribute("data-" + which + "-heading");
    document.getElementById("dns-help-hint").textContent = help.getAttribute("data-" + which + "-hint");
  }

  if (form && input && help) {
    input.addEventListener("input", function () {
      var typed = input.value;
      if (!guessName(typed)) {
        help.hidden = true;
        checkSeq++;
        return;
      }
      help.hidden = false;
      describeRecords(typed);
      showGuess(typed);
      checkLine.textContent = "";
      problemsList.textContent = "";
      if (checkTimer) window.clearTimeout(checkTimer);
      checkTimer = window.setTimeout(checkDns, 600);
    });

    // Saving never waits for the DNS check.
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var button = document.getElementById("save");
      button.disabled = true;
      request("POST", form.action, new FormData(form)).then(function (result) {
        button.disabled = false;
        if (result.ok) {
          input.removeAttribute("aria-invalid");
          fieldError.hidden = true;
          fieldError.textContent = "";
          // From now on the status below tells what DNS says; the check typed-ahead is stale.
          checkSeq++;
          input.setAttribute("data-saved", input.value);
          describeRecords(input.value);
          showRecords(result.data.records_html);
          checkLine.textContent = "";
          problemsList.textContent = "";
          showNotice(result.data.notice);
          applyStatus(result.data.status);
          schedulePoll(1000);
        } else {
          input.setAttribute("aria-invalid", "true");
          fieldError.textContent = (result.data.error || "Not saved.") + (result.data.fix ? " " + result.data.fix : "");
          fieldError.hidden = false;
          input.focus();
        }
      }, function () {
        button.disabled = false;
      });
    });
  }
})();
