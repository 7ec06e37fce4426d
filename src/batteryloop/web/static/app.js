// Draws every figure a page carries: <div class="plot" data-figure="ID"> with its plotly JSON in
// <script type="application/json" id="ID">. plotly.js itself comes from /static/plotly.min.js,
// served from the installed plotly package: no CDN, the pages work offline.
(function () {
  function draw() {
    if (typeof Plotly === "undefined") { return; }
    document.querySelectorAll(".plot[data-figure]").forEach(function (el) {
      var source = document.getElementById(el.dataset.figure);
      if (!source) { return; }
      var fig = JSON.parse(source.textContent);
      Plotly.newPlot(el, fig.data, fig.layout || {}, {responsive: true, displaylogo: false})
        .then(function () { el.dataset.drawn = "true"; });
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
