// The endpoint page's charts (uPlot), drawn from the JSON each chart's figure carries, and
// drawn again whenever htmx swaps fresh figures in; and the log panels' follow switch.
(function () {
  "use strict";

  var PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"];

  function draw(root) {
    root.querySelectorAll("figure.chart").forEach(function (figure) {
      if (figure.dataset.drawn) return;
      var data = JSON.parse(document.getElementById(figure.dataset.chart).textContent);
      // Points drawn where each is wide enough to see: a lone minute between gaps shows.
      var points = { show: data.x.length <= 120, size: 4 };
      var series = [{}].concat(
        data.series.map(function (s, i) {
          return { label: s.label, stroke: PALETTE[i % PALETTE.length], width: 1.5, points: points };
        })
      );
      var columns = [data.x].concat(data.series.map(function (s) { return s.values; }));
      new uPlot(
        {
          width: Math.max(figure.clientWidth - 8, 280),
          height: 160,
          series: series,
          axes: [{}, { size: 56, label: data.unit || "" }],
          legend: { live: false },
        },
        columns,
        figure
      );
      figure.dataset.drawn = "1";
    });
  }

  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:afterSettle", function (event) { draw(event.target); });

  // A followed log panel asks for its tail every 5 s while it is open.
  setInterval(function () {
    document.querySelectorAll("details.logs[open]").forEach(function (panel) {
      var follow = panel.querySelector("input.follow");
      if (follow && follow.checked) htmx.trigger(panel.querySelector(".log"), "refresh");
    });
  }, 5000);
})();
