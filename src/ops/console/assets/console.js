// Live progress on the dashboard: polls /api/files and redraws the files in flight and the
// files finished. Plain DOM, text only (never HTML from data); without it the page still works.
(function () {
  "use strict";
  var flight = document.querySelector("#in-flight tbody");
  var recent = document.querySelector("#recent tbody");
  if (!flight || !recent) { return; }
  var counter = document.getElementById("count-in-flight");
  var number = function (n) { return (n || 0).toLocaleString("en-GB"); };
  // 2026-03-01T09:30:12.345Z -> 2026-03-01 09:30:12 UTC, as the server writes it.
  var when = function (t) { return /Z$/.test(t) ? t.slice(0, 10) + " " + t.slice(11, 19) + " UTC" : t; };
  function cell(row, text) { var td = document.createElement("td"); td.textContent = text; row.appendChild(td); return td; }
  function empty(body, columns, text) {
    var tr = document.createElement("tr"); tr.className = "empty";
    var td = cell(tr, text); td.colSpan = columns; body.appendChild(tr);
  }
  function drawFlight(files) {
    flight.textContent = "";
    if (counter) { counter.textContent = number(files.length); }
    if (!files.length) { empty(flight, 6, "Nothing in flight."); return; }
    files.forEach(function (f) {
      var tr = document.createElement("tr");
      cell(tr, f.pipeline); cell(tr, f.file);
      var td = cell(tr, ""); var bar = document.createElement("progress");
      bar.max = 100; bar.value = f.percent; td.appendChild(bar); td.appendChild(document.createTextNode(" " + f.percent + "%"));
      cell(tr, number(f.rows_done) + " / ~" + number(f.rows_total));
      cell(tr, f.rows_per_second + "/s"); cell(tr, f.eta || "-");
      flight.appendChild(tr);
    });
  }
  function drawRecent(files) {
    recent.textContent = "";
    if (!files.length) { empty(recent, 8, "No file has finished yet."); return; }
    files.forEach(function (e) {
      var tr = document.createElement("tr"); tr.dataset.id = e.id;
      var at = cell(tr, when(e.finished_at)); at.className = "nowrap"; at.title = e.finished_at;
      cell(tr, e.pipeline);
      var a = document.createElement("a"); a.href = e.url; a.textContent = e.file; cell(tr, "").appendChild(a);
      var badge = document.createElement("span"); badge.className = "badge " + e.outcome; badge.textContent = e.outcome_label;
      cell(tr, "").appendChild(badge);
      var rows = e.rows || {};
      cell(tr, number(rows.read)); cell(tr, number(rows.accepted)); cell(tr, number(rows.failed)); cell(tr, number(rows.unprocessed));
      recent.appendChild(tr);
    });
  }
  function tick() {
    fetch("/api/files?limit=20", { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data) { drawFlight(data.in_flight); drawRecent(data.files); } })
      .catch(function () {})
      .then(function () { window.setTimeout(tick, 1000); });
  }
  window.setTimeout(tick, 1000);
})();
