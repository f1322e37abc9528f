// The supervisor dashboard: fetches each panel's JSON with the page's filters and draws it with
// Chart.js (window.Chart, served by this app from node_modules). Customer text (topic quotes) is
// inserted with textContent only. window.dashboardCharts maps canvas ids to Chart instances.
(function () {
  "use strict";
  var root = document.getElementById("dashboard");
  if (!root || !window.Chart) return;
  var cfg = root.dataset;
  var charts = (window.dashboardCharts = {});
  var COLORS = ["#2563eb", "#16a34a", "#dc2626", "#f59e0b", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#9ca3af", "#ea580c"];
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.font.size = 11;

  function query(extra) {
    var q = new URLSearchParams({ start: cfg.start, end: cfg.end });
    if (cfg.channel) q.set("channel", cfg.channel);
    Object.keys(extra || {}).forEach(function (k) { q.set(k, extra[k]); });
    return q.toString();
  }
  function url(report) { return cfg.api.replace("REPORT", encodeURIComponent(report)) + "?" + query(); }
  function draw(id, config) {
    var canvas = document.getElementById("chart-" + id);
    if (!canvas) return;
    if (charts[id]) charts[id].destroy();
    charts[id] = new Chart(canvas, config);
  }
  function line(label, data, i, extra) {
    return Object.assign({ label: label, data: data, borderColor: COLORS[i], backgroundColor: COLORS[i], spanGaps: true, pointRadius: 1.5, tension: 0.2 }, extra || {});
  }
  function pct(v) { return v === null || v === undefined ? null : Math.round(v * 1000) / 10; }
  var percentAxis = { y: { beginAtZero: true, ticks: { callback: function (v) { return v + "%"; } } } };

  var renderers = {
    conversations: function (d) {
      var keys = ["resolved", "escalated", "fallback", "abandoned", "open"];
      draw("conv-per-day", { type: "bar", data: { labels: d.days, datasets: keys.map(function (k, i) {
        return { label: k, data: d.per_day[k] || [], backgroundColor: COLORS[i], stack: "c" };
      }) }, options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } } });
      draw("containment", { type: "bar", data: { labels: ["Bot resolution", "Containment", "Handoff"], datasets: [{
        label: "% of conversations", data: [pct(d.bot_resolution_rate), pct(d.containment_rate), pct(d.handoff_rate)],
        backgroundColor: [COLORS[1], COLORS[0], COLORS[2]] }] }, options: { scales: percentAxis, plugins: { legend: { display: false } } } });
    },
    agents: function (d) {
      var reasons = d.reasons.length ? d.reasons : d.ticket_categories;
      draw("handoff-reasons", { type: "doughnut", data: { labels: reasons.map(function (r) { return r[0]; }), datasets: [{
        data: reasons.map(function (r) { return r[1]; }), backgroundColor: COLORS }] }, options: { plugins: { legend: { position: "right" } } } });
      function mins(a) { return a.map(function (s) { return s === null ? null : Math.round(s / 6) / 10; }); }
      draw("agent-times", { type: "line", data: { labels: d.days, datasets: [
        line("first response (min)", mins(d.first_response_per_day), 0),
        line("resolution (min)", mins(d.resolution_per_day), 3)] }, options: { scales: { y: { beginAtZero: true } } } });
    },
    csat: function (d) {
      draw("csat-trend", { type: "line", data: { labels: d.days, datasets: [line("average rating", d.average_per_day, 1)] },
        options: { scales: { y: { min: 1, max: 5 } } } });
      var ratings = ["1", "2", "3", "4", "5"];
      draw("csat-dist", { type: "bar", data: { labels: ratings.map(function (r) { return r + " ★"; }), datasets: [{
        label: "ratings", data: ratings.map(function (r) { return d.distribution[r] || 0; }),
        backgroundColor: [COLORS[2], COLORS[9], COLORS[3], COLORS[7], COLORS[1]] }] }, options: { plugins: { legend: { display: false } } } });
    },
    messages: function (d) {
      var s = d.sentiment_per_day;
      draw("sentiment", { type: "bar", data: { labels: d.days, datasets: [
        { label: "negative", data: s.negative, backgroundColor: COLORS[2], stack: "s" },
        { label: "neutral", data: s.neutral, backgroundColor: COLORS[8], stack: "s" },
        { label: "positive", data: s.positive, backgroundColor: COLORS[1], stack: "s" },
        Object.assign(line("% negative", d.negative_share_per_day.map(pct), 4), { type: "line", yAxisID: "y1" })] },
        options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true },
          y1: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false }, ticks: { callback: function (v) { return v + "%"; } } } } } });
      draw("intents", { type: "bar", data: { labels: d.top_intents.map(function (r) { return r[0]; }), datasets: [{
        label: "customer messages", data: d.top_intents.map(function (r) { return r[1]; }), backgroundColor: COLORS[0] }] },
        options: { indexAxis: "y", plugins: { legend: { display: false } } } });
      draw("fallback", { type: "line", data: { labels: d.days, datasets: [line("fallback rate %", d.fallback_rate_per_day.map(pct), 2)] },
        options: { scales: percentAxis } });
    },
    segments: function (d) {
      var names = d.segments.map(function (s) { return s.name; });
      draw("segments", { type: "bar", data: { labels: names, datasets: [
        { label: "customers", data: d.segments.map(function (s) { return s.customers; }), backgroundColor: COLORS[0], yAxisID: "y" },
        { label: "mean 12-month value", data: d.segments.map(function (s) { return Math.round(s.mean_expected_value_12m * 100) / 100; }), backgroundColor: COLORS[1], yAxisID: "y1" }] },
        options: { scales: { y: { beginAtZero: true }, y1: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false } } } } });
      draw("projection", { type: "scatter", data: { datasets: names.map(function (n, i) {
        return { label: n, data: d.points.filter(function (p) { return p.segment === n; }), backgroundColor: COLORS[i % COLORS.length], pointRadius: 2 };
      }) }, options: { scales: { x: { title: { display: true, text: "PC1" } }, y: { title: { display: true, text: "PC2" } } } } });
    },
    churn: function (d) {
      draw("churn", { type: "bar", data: { labels: d.bins, datasets: [{ label: "customers", data: d.customers,
        backgroundColor: d.bins.map(function (_, i) { return i >= d.bins.length / 2 ? COLORS[2] : COLORS[0]; }) }] },
        options: { plugins: { legend: { display: false } }, scales: { x: { title: { display: true, text: "churn risk" } } } } });
    },
    lifecycle: function (d) {
      draw("lifecycle", { type: "line", data: { labels: d.dates, datasets: Object.keys(d.stages).map(function (s, i) {
        return line(s.replace("_", " "), d.stages[s], i, { fill: false });
      }) }, options: { scales: { y: { beginAtZero: true } } } });
    },
    topics: function (d) {
      draw("topics", { type: "bar", data: { labels: d.map(function (t) { return t.topic; }), datasets: [
        { label: "mentions", data: d.map(function (t) { return t.mentions; }), backgroundColor: COLORS[4] },
        { label: "previous period", data: d.map(function (t) { return t.previous; }), backgroundColor: COLORS[8] }] },
        options: { indexAxis: "y" } });
      var list = document.getElementById("topic-list");
      if (!list) return;
      list.replaceChildren();
      d.forEach(function (t) {
        var item = document.createElement("div");
        item.className = "topic";
        var a = document.createElement("a");
        a.href = cfg.topic.replace("TOPIC", encodeURIComponent(t.topic)) + "?" + query();
        a.textContent = t.topic;
        a.setAttribute("data-testid", "topic-link");
        var meta = document.createElement("span");
        meta.className = "trend";
        meta.textContent = " " + t.mentions + " mentions" + (t.trend_pct === null ? "" : " (" + (t.trend_pct > 0 ? "+" : "") + t.trend_pct + "% vs previous period)") + " · weekly " + t.weekly.join(" ");
        item.append(a, meta);
        t.examples.forEach(function (q) {
          var quote = document.createElement("blockquote");
          quote.textContent = "“" + q.quote + "”";
          if (q.conversation_id) {
            var link = document.createElement("a");
            link.href = cfg.conversation.replace(/0$/, String(q.conversation_id));
            link.textContent = " conversation";
            quote.append(link);
          }
          item.append(quote);
        });
        list.append(item);
      });
    },
  };

  var pending = Object.keys(renderers).map(function (report) {
    return fetch(url(report), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(report + ": HTTP " + r.status); return r.json(); })
      .then(function (body) { renderers[report](body.data); })
      .catch(function (err) {
        var panel = root.querySelector('[data-report="' + report + '"] .chart');
        if (panel) { var p = document.createElement("p"); p.className = "error"; p.textContent = "Could not load: " + err.message; panel.append(p); }
      });
  });
  Promise.all(pending).then(function () { root.setAttribute("data-loaded", "1"); });
})();
