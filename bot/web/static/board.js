// Draws the overview's charts from the page's JSON block (#chart-data). The same numbers are in the
// tables under each chart, so the page reads without JavaScript too. No inline script: the CSP allows
// only this file and the vendored Chart.js.
(function () {
  "use strict";
  var source = document.getElementById("chart-data");
  if (!source || typeof Chart === "undefined") { return; }
  var data = JSON.parse(source.textContent);
  var blue = "#2563eb", grey = "#cbd5e1", green = "#16a34a", orange = "#ea580c";
  Chart.defaults.font.family = '-apple-system, "PingFang SC", "Microsoft YaHei", "WenQuanYi Micro Hei", sans-serif';
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;

  function wan(value) {
    if (Math.abs(value) >= 10000) { return (Math.round(value / 1000) / 10) + "万"; }
    return value + "元";
  }
  function bar(horizontal, labels, datasets) {
    return { type: "bar", data: { labels: labels, datasets: datasets },
             options: { indexAxis: horizontal ? "y" : "x", plugins: { legend: { position: "bottom" } } } };
  }
  var builders = {
    goals: function (d) {
      var chart = bar(true, d.labels, [{ label: "赢单", data: d.won, backgroundColor: blue },
                                       { label: "应达", data: d.due, backgroundColor: orange },
                                       { label: "目标", data: d.target, backgroundColor: grey }]);
      // Amounts read the way managers say them: 100万, not 1,000,000.
      chart.options.scales = { x: { beginAtZero: true, ticks: { callback: wan } } };
      return chart;
    },
    funnel: function (d) {
      var chart = bar(true, d.labels, [{ label: "商机个数", data: d.count, backgroundColor: blue }]);
      chart.options.scales = { x: { beginAtZero: true, ticks: { precision: 0 } } };
      return chart;
    },
    trend: function (d) {
      return { type: "line", data: { labels: d.labels, datasets: [
        { label: "跟进", data: d.followups, borderColor: blue, backgroundColor: blue },
        { label: "新客户", data: d.new_customers, borderColor: green, backgroundColor: green },
        { label: "赢单", data: d.wins, borderColor: orange, backgroundColor: orange }] },
        options: { plugins: { legend: { position: "bottom" } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } } };
    },
    leaderboard: function (d) {
      return bar(true, d.labels, [{ label: "积分", data: d.points, backgroundColor: green }]);
    }
  };
  document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
    var name = canvas.getAttribute("data-chart");
    if (builders[name] && data[name]) {
      new Chart(canvas, builders[name](data[name]));
      canvas.setAttribute("data-drawn", "1");
    }
  });
}());
