// Live agent states and campaign counts over server-sent events (SPEC D8, X3).
// Plain JS + EventSource; the server closes the stream now and then and the
// browser reconnects by itself (the server sends a `retry:` hint).
(function () {
  "use strict";
  var url = document.body.getAttribute("data-stream");
  if (!url || !window.EventSource) { return; }
  var dot = document.querySelector("[data-live-dot]");
  var text = document.querySelector("[data-live-text]");
  var LABELS = { wrapup: "wrap-up" };

  function setLive(on, msg) {
    if (dot) { dot.className = "dot " + (on ? "on" : "off"); }
    if (text) { text.textContent = msg; }
  }

  function fmtDuration(s) {
    if (s < 60) { return s + "s"; }
    if (s < 3600) { return Math.floor(s / 60) + "m\u00a0" + String(s % 60).padStart(2, "0") + "s"; }
    return Math.floor(s / 3600) + "h\u00a0" + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + "m";
  }

  function badge(state) {
    var span = document.createElement("span");
    span.className = "badge state-" + state;
    span.textContent = LABELS[state] || state;
    return span;
  }

  function fmtPct(x) { return x === null || x === undefined ? "\u2013" : (x * 100).toFixed(1) + "\u00a0%"; }

  function cell(tag, text, cls, field) {
    var el = document.createElement(tag);
    if (cls) { el.className = cls; }
    if (field) { el.setAttribute("data-field", field); }
    el.textContent = text === null || text === undefined ? "\u2013" : String(text);
    return el;
  }

  function fmtHeartbeat(iso) {
    return iso ? iso.replace("T", " ").replace(/\..*$/, "").replace("Z", "") : "\u2013";
  }

  // An agent added after the page was loaded gets a new row (agents page only).
  function addAgentRow(a) {
    var body = document.querySelector("#agents tbody");
    if (!body) { return null; }
    var row = document.createElement("tr");
    row.setAttribute("data-agent", a.id);
    var name = cell("th", a.name);
    name.setAttribute("scope", "row");
    row.appendChild(name);
    row.appendChild(cell("td", a.extension));
    row.appendChild(cell("td", a.skill_level, "num"));
    row.appendChild(cell("td", "", null, "state"));
    var secs = cell("td", "", "num", "seconds_in_state");
    secs.setAttribute("data-seconds", a.seconds_in_state);
    row.appendChild(secs);
    row.appendChild(cell("td", a.worker));
    row.appendChild(cell("td", a.campaign));
    row.appendChild(cell("td", fmtHeartbeat(a.last_heartbeat), null, "last_heartbeat"));
    body.appendChild(row);
    document.getElementById("agents").classList.remove("hidden");
    var empty = document.getElementById("no-agents");
    if (empty) { empty.remove(); }
    return row;
  }

  function updateAgents(agents) {
    agents.forEach(function (a) {
      var row = document.querySelector('tr[data-agent="' + a.id + '"]') || addAgentRow(a);
      if (!row) { return; }
      var hb = row.querySelector('[data-field="last_heartbeat"]');
      if (hb) { hb.textContent = fmtHeartbeat(a.last_heartbeat); }
      var cell = row.querySelector('[data-field="state"]');
      var old = row.getAttribute("data-state");
      if (cell && old !== a.state) {
        cell.textContent = "";
        cell.appendChild(badge(a.state));
        if (a.stale) {
          var note = document.createElement("span");
          note.className = "muted small";
          note.textContent = " (no heartbeat)";
          cell.appendChild(note);
        }
        row.setAttribute("data-state", a.state);
        if (old !== null) { row.classList.remove("flashrow"); void row.offsetWidth; row.classList.add("flashrow"); }
      }
      var t = row.querySelector('[data-field="seconds_in_state"]');
      if (t) { t.setAttribute("data-seconds", a.seconds_in_state); t.textContent = fmtDuration(a.seconds_in_state); }
    });
  }

  function updateCounts(counts) {
    Object.keys(counts).forEach(function (st) {
      var el = document.querySelector('[data-agent-count="' + st + '"]');
      if (el) { el.textContent = counts[st]; }
    });
  }

  function updateCampaigns(campaigns) {
    campaigns.forEach(function (c) {
      var row = document.querySelector('tr[data-campaign="' + c.id + '"]');
      if (!row) { return; }
      Object.keys(c.counts).forEach(function (st) {
        var el = row.querySelector('[data-count="' + st + '"]');
        if (el) { el.textContent = c.counts[st]; }
      });
      var total = row.querySelector('[data-field="total"]');
      if (total) { total.textContent = c.total; }
      var att = row.querySelector('[data-field="attempts"] a');
      if (att) { att.textContent = c.attempts; }
      var rate = row.querySelector('[data-field="abandonment_rate"] [data-rate]');
      if (rate) { rate.textContent = fmtPct(c.abandonment_rate); }
    });
  }

  // Seconds-in-state keeps ticking between server updates.
  setInterval(function () {
    document.querySelectorAll("[data-seconds]").forEach(function (el) {
      var s = parseInt(el.getAttribute("data-seconds"), 10) + 1;
      el.setAttribute("data-seconds", s);
      el.textContent = fmtDuration(s);
    });
  }, 1000);

  document.querySelectorAll("tr[data-agent]").forEach(function (row) {
    var badgeEl = row.querySelector('[data-field="state"] .badge');
    if (badgeEl) { row.setAttribute("data-state", badgeEl.className.replace(/.*state-/, "")); }
  });

  var source = new EventSource(url);
  source.addEventListener("open", function () { setLive(true, "live"); });
  source.addEventListener("error", function () {
    // CLOSED: the server refused the stream (e.g. the login expired); the
    // browser will not retry on its own.
    if (source.readyState === EventSource.CLOSED) { setLive(false, "disconnected \u2013 reload the page"); }
    else { setLive(false, "reconnecting\u2026"); }
  });
  source.addEventListener("snapshot", function (ev) {
    var data;
    try { data = JSON.parse(ev.data); } catch (e) { return; }
    setLive(true, "live \u00b7 " + new Date().toLocaleTimeString());
    updateAgents(data.agents || []);
    updateCounts(data.agent_counts || {});
    updateCampaigns(data.campaigns || []);
  });
})();
