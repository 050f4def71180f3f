// The interactive map of an imgatlas report. Plain JavaScript, no library, no network.
// Every string from the data is set with textContent, never parsed as HTML.
(function () {
  "use strict";
  var el = document.getElementById("map-data");
  var canvas = document.getElementById("mapcanvas");
  if (!el || !canvas) return;
  var d = JSON.parse(el.textContent);
  var n = d.x.length;
  var ctx = canvas.getContext("2d");
  var tip = document.getElementById("maptip");
  var sel = document.getElementById("mapsel");
  var legend = document.getElementById("legend");
  var colorBy = "cluster";
  var hidden = {};
  var selected = -1;
  var PAD = 12;
  var dpr = window.devicePixelRatio || 1;
  var W = canvas.width, H = canvas.height;
  canvas.width = W * dpr; canvas.height = H * dpr;
  ctx.scale(dpr, dpr);
  var radius = n > 20000 ? 1.2 : n > 3000 ? 2 : 3.5;

  function px(i) { return PAD + d.x[i] * (W - 2 * PAD); }
  function py(i) { return PAD + (1 - d.y[i]) * (H - 2 * PAD); }
  function groupOf(i) { return colorBy === "cluster" ? d.cluster[i] : d.label[i]; }
  function colorOf(g) { return g < 0 ? d.noise : d.palette[g % d.palette.length]; }
  function groupName(g) {
    if (colorBy === "label") return g < 0 ? "no label" : d.labels[g];
    if (g < 0) return "noise";
    var nm = d.clusterNames[String(g)];
    return "cluster " + g + (nm ? " · " + nm : "");
  }

  function draw() {
    ctx.clearRect(0, 0, W, H);
    for (var i = 0; i < n; i++) {
      var g = groupOf(i);
      if (hidden[g]) continue;
      ctx.fillStyle = colorOf(g);
      ctx.globalAlpha = 0.8;
      ctx.beginPath();
      ctx.arc(px(i), py(i), radius, 0, 6.2832);
      ctx.fill();
    }
    ctx.globalAlpha = 1;
    if (selected >= 0) {
      ctx.strokeStyle = "#000"; ctx.lineWidth = 2;
      ctx.beginPath(); ctx.arc(px(selected), py(selected), radius + 4, 0, 6.2832); ctx.stroke();
    }
  }

  function buildLegend() {
    legend.textContent = "";
    var groups = {};
    for (var i = 0; i < n; i++) groups[groupOf(i)] = (groups[groupOf(i)] || 0) + 1;
    Object.keys(groups).map(Number).sort(function (a, b) { return a - b; }).forEach(function (g) {
      var s = document.createElement("span");
      var sw = document.createElement("i");
      sw.className = "swatch"; sw.style.background = colorOf(g);
      s.appendChild(sw);
      s.appendChild(document.createTextNode(groupName(g) + " (" + groups[g] + ")"));
      s.title = "click to hide or show";
      if (hidden[g]) s.className = "off";
      s.addEventListener("click", function () { hidden[g] = !hidden[g]; buildLegend(); draw(); });
      legend.appendChild(s);
    });
  }

  function nearest(ev) {
    var r = canvas.getBoundingClientRect();
    var mx = (ev.clientX - r.left) * (W / r.width), my = (ev.clientY - r.top) * (H / r.height);
    var best = -1, bd = 100; // within 10 px
    for (var i = 0; i < n; i++) {
      if (hidden[groupOf(i)]) continue;
      var dx = px(i) - mx, dy = py(i) - my, dd = dx * dx + dy * dy;
      if (dd < bd) { bd = dd; best = i; }
    }
    return best;
  }

  function describe(i) {
    var t = d.name[i] + " · cluster " + d.cluster[i];
    if (d.label[i] >= 0) t += " · label " + d.labels[d.label[i]];
    return t;
  }

  canvas.addEventListener("mousemove", function (ev) {
    var i = nearest(ev);
    if (i < 0) { tip.hidden = true; return; }
    var img = tip.querySelector("img");
    if (d.thumb[i]) { img.src = "assets/" + d.thumb[i]; img.hidden = false; } else { img.hidden = true; }
    tip.querySelector("span").textContent = describe(i);
    var wrap = canvas.parentNode.getBoundingClientRect();
    tip.style.left = (ev.clientX - wrap.left + 14) + "px";
    tip.style.top = (ev.clientY - wrap.top + 14) + "px";
    tip.hidden = false;
  });
  canvas.addEventListener("mouseleave", function () { tip.hidden = true; });
  canvas.addEventListener("click", function (ev) {
    selected = nearest(ev);
    draw();
    sel.textContent = "";
    if (selected < 0) return;
    var i = selected;
    if (d.thumb[i]) {
      var img = document.createElement("img");
      img.src = "assets/" + d.thumb[i]; img.alt = d.name[i];
      sel.appendChild(img);
    }
    var p = document.createElement("p");
    p.textContent = describe(i) + " · image id " + d.id[i];
    sel.appendChild(p);
    var page = d.page[String(d.cluster[i])];
    if (page) {
      var a = document.createElement("a");
      a.href = page; a.textContent = "all members of cluster " + d.cluster[i];
      sel.appendChild(a);
    }
    sel.setAttribute("data-selected", String(d.id[i]));
  });
  document.querySelectorAll("input[name=colorby]").forEach(function (r) {
    r.addEventListener("change", function () { colorBy = r.value; hidden = {}; buildLegend(); draw(); });
  });
  buildLegend();
  draw();
  canvas.setAttribute("data-points", String(n));
})();
