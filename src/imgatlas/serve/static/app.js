// imgatlas web app: one small script for every page (the CSP allows no inline script).
// Data from the workspace only ever reaches the page as text (textContent), never as markup.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

async function api(path, options = {}) {
  const headers = Object.assign({ "X-CSRF-Token": csrf() }, options.headers || {});
  const response = await fetch(path, Object.assign({ credentials: "same-origin" }, options, { headers }));
  let body = null;
  try { body = await response.json(); } catch (e) { body = { detail: response.statusText }; }
  if (!response.ok) throw new Error(body.detail || response.statusText);
  return body;
}

function postJSON(path, data) {
  return api(path, { method: "POST", body: JSON.stringify(data), headers: { "Content-Type": "application/json" } });
}

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function thumbCard(hit) {
  const fig = el("figure", { class: "thumb" });
  const a = el("a", { href: `/images/${Number(hit.id)}` });
  const img = el("img", { src: `/api/images/${Number(hit.id)}/thumbnail`, alt: hit.path || "", title: hit.path || "" });
  a.appendChild(img);
  fig.appendChild(a);
  const cap = el("figcaption");
  if (hit.label !== null && hit.label !== undefined) cap.appendChild(el("span", { class: "label" }, hit.label + " "));
  if (hit.similarity !== undefined) cap.appendChild(el("span", { class: "score", title: "similarity, 0 to 1" }, Number(hit.similarity).toFixed(2)));
  fig.appendChild(cap);
  return fig;
}

function say(node, text) { if (node) node.textContent = text; }

// -- search by upload, drop, paste; and by drawing --------------------------------------
function setupSearch() {
  const form = document.getElementById("upload");
  const input = form.querySelector('input[type="file"]');
  const results = document.getElementById("results");
  const status = document.getElementById("search-status");
  const prediction = document.getElementById("prediction");
  const k = () => form.querySelector('input[name="k"]').value || "12";

  async function send(path, blob, name) {
    const data = new FormData();
    data.append("image", blob, name);
    data.append("k", k());
    say(status, "searching…");
    results.replaceChildren();
    prediction.hidden = true;
    try {
      const out = await api(path, { method: "POST", body: data });
      say(status, `${out.results.length} results (${out.index})`);
      for (const hit of out.results) results.appendChild(thumbCard(hit));
      if (out.prediction) {
        const p = out.prediction;
        prediction.hidden = false;
        prediction.textContent = p.abstained
          ? `The model says: unknown (${p.reason})`
          : `The model says: ${p.label} (${(100 * p.probability).toFixed(0)} %)`;
      }
    } catch (e) {
      say(status, `Not searched: ${e.message}`);
    }
  }

  const text = document.getElementById("text-search");
  text.addEventListener("submit", async (e) => {
    e.preventDefault();
    const q = text.querySelector('input[name="q"]').value.trim();
    if (!q) return;
    say(status, "searching…");
    results.replaceChildren();
    prediction.hidden = true;
    try {
      const out = await api(`/api/search/text?q=${encodeURIComponent(q)}&k=${encodeURIComponent(k())}`);
      say(status, `${out.results.length} results (${out.index})`);
      for (const hit of out.results) results.appendChild(thumbCard(hit));
    } catch (err) { say(status, err.message); }
  });
  input.addEventListener("change", () => { if (input.files[0]) send("/api/search", input.files[0], input.files[0].name); });
  form.addEventListener("submit", (e) => e.preventDefault());
  form.addEventListener("dragover", (e) => { e.preventDefault(); form.classList.add("over"); });
  form.addEventListener("dragleave", () => form.classList.remove("over"));
  form.addEventListener("drop", (e) => {
    e.preventDefault();
    form.classList.remove("over");
    const f = e.dataTransfer.files[0];
    if (f) send("/api/search", f, f.name);
  });
  document.addEventListener("paste", (e) => {
    const item = [...e.clipboardData.items].find((i) => i.type.startsWith("image/"));
    if (item) send("/api/search", item.getAsFile(), "pasted.png");
  });

  // the drawing canvas: pointer events (mouse, pen, touch), stroke width, undo, clear
  const canvas = document.getElementById("canvas");
  const ctx = canvas.getContext("2d");
  const strokes = [];
  let current = null;
  const width = document.getElementById("stroke");
  function redraw() {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.strokeStyle = "#000";
    for (const s of strokes.concat(current ? [current] : [])) {
      ctx.lineWidth = s.width;
      ctx.beginPath();
      s.points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      if (s.points.length === 1) ctx.lineTo(s.points[0][0] + 0.1, s.points[0][1]);
      ctx.stroke();
    }
  }
  function at(e) {
    const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height];
  }
  canvas.addEventListener("pointerdown", (e) => {
    canvas.setPointerCapture(e.pointerId);
    current = { width: Number(width.value), points: [at(e)] };
    redraw();
  });
  canvas.addEventListener("pointermove", (e) => { if (current) { current.points.push(at(e)); redraw(); } });
  const end = () => { if (current) { strokes.push(current); current = null; redraw(); } };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  document.getElementById("undo").addEventListener("click", () => { strokes.pop(); redraw(); });
  document.getElementById("clear").addEventListener("click", () => { strokes.length = 0; redraw(); });
  document.getElementById("draw-search").addEventListener("click", () => {
    if (!strokes.length) { say(status, "Draw something first."); return; }
    canvas.toBlob((blob) => send("/api/search/sketch", blob, "drawing.png"), "image/png");
  });
}

// -- corrections: each makes a new run (undo takes it back); the page then shows it ---------
function selectedIds() {
  return [...document.querySelectorAll('input[name="pick"]:checked')].map((i) => Number(i.value));
}

async function act(button, path, body, after) {
  const status = button.closest("form, p")?.querySelector(".status");
  say(status, "working…");
  try {
    const out = await postJSON(path, body);
    say(status, "done");
    after(out);
  } catch (err) { say(status, err.message); }
}

function setupActions() {
  const reload = () => window.location.reload();
  const home = () => { window.location.href = "/"; };
  for (const button of document.querySelectorAll("button[data-action]")) {
    const c = Number(button.dataset.cluster);
    const run = {
      accept: () => act(button, `/api/clusters/${c}/accept`, {}, reload),
      undo: () => act(button, "/api/edits/undo", {}, reload),
      regroup: () => act(button, "/api/edits/regroup", { k: Number(button.dataset.k) }, reload),
      "set-aside": () => {
        const ids = selectedIds();
        if (!ids.length) { say(button.parentNode.querySelector(".status"), "select images first"); return; }
        act(button, "/api/edits/set-aside", { ids }, reload);
      },
      merge: () => {
        const into = Number(button.form.querySelector('select[name="into"]').value);
        act(button, "/api/edits/merge", { clusters: [into, c] }, () => { window.location.href = `/clusters/${into}`; });
      },
      split: () => {
        const k = Number(button.form.querySelector('input[name="k"]').value || "2");
        act(button, "/api/edits/split", { cluster: c, k }, home);
      },
    }[button.dataset.action];
    if (run) button.addEventListener("click", run);
  }
  const move = document.getElementById("move-selection");
  if (move) {
    move.addEventListener("submit", (e) => {
      e.preventDefault();
      const ids = selectedIds();
      const status = move.querySelector(".status");
      if (!ids.length) { say(status, "select images first"); return; }
      const to = move.querySelector('select[name="to"]').value;
      act(move.querySelector('button[type="submit"]'), "/api/edits/move",
          { ids, to: to === "new" ? "new" : Number(to) }, reload);
    });
  }
}

// -- edits: rename a cluster, label a selection or one image ------------------------------
function setupCluster() {
  const section = document.getElementById("cluster");
  const c = section.dataset.cluster;
  const rename = document.getElementById("rename");
  if (rename) {
    rename.addEventListener("submit", async (e) => {
      e.preventDefault();
      const status = rename.querySelector(".status");
      const name = rename.querySelector('input[name="name"]').value;
      try {
        const out = await postJSON(`/api/clusters/${encodeURIComponent(c)}/name`, { name });
        say(status, "saved");
        document.querySelectorAll(".cluster-name").forEach((q) => { q.textContent = out.name || ""; });
      } catch (err) { say(status, err.message); }
    });
  }
  const labelling = document.getElementById("label-selection");
  if (labelling) {
    labelling.addEventListener("submit", async (e) => {
      e.preventDefault();
      const status = labelling.querySelector(".status");
      const ids = [...document.querySelectorAll('input[name="pick"]:checked')].map((i) => Number(i.value));
      if (!ids.length) { say(status, "select images first"); return; }
      const label = labelling.querySelector('input[name="label"]').value.trim() || null;
      try {
        const out = await postJSON("/api/labels", { ids, label });
        say(status, `${out.labelled} labelled`);
      } catch (err) { say(status, err.message); }
    });
  }
}

function setupImage() {
  const form = document.getElementById("label-one");
  if (!form) return;
  const id = Number(document.getElementById("image").dataset.id);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const status = form.querySelector(".status");
    const label = form.querySelector('input[name="label"]').value.trim() || null;
    try {
      await postJSON("/api/labels", { ids: [id], label });
      say(status, "saved");
      document.querySelector("td.label").textContent = label === null ? "–" : label;
    } catch (err) { say(status, err.message); }
  });
}

function showEstimate() {
  const node = document.getElementById("label-estimate");
  api("/api/labels/estimate").then((out) => {
    const e = out.estimate;
    node.textContent = e
      ? `With your ${out.labels} labels, about ${(100 * e.accuracy).toFixed(0)} % (± ${(100 * e.standard_error).toFixed(0)}) of the collection would be labelled right once they are spread by ${e.method}, the best of ${Object.keys(e.estimates).length} ways on your labels (each fold of them held out in turn).`
      : `${out.labels} labels so far: give two of each of two classes for an estimate of how right the collection would be.`;
  }).catch((err) => say(node, err.message));
}

function setupLabel() {
  const box = document.getElementById("suggestions");
  const status = document.getElementById("label-status");
  showEstimate();
  api("/api/suggestions?n=12").then((out) => {
    for (const s of out.results) {
      const card = el("article", { class: "card" });
      card.appendChild(thumbCard({ id: s.id, path: s.path, label: null }));
      card.appendChild(el("p", {}, s.reason));
      const input = el("input", { maxlength: "200", value: s.suggested_label || "" });
      const button = el("button", { type: "button" }, "label");
      const done = el("span", { class: "status" });
      button.addEventListener("click", async () => {
        const label = input.value.trim();
        if (!label) { say(done, "type a label"); return; }
        try {
          await postJSON("/api/labels", { ids: [s.id], label, source: s.suggested_label === label ? "suggested" : "web" });
          say(done, "saved");
          showEstimate();
        } catch (err) { say(done, err.message); }
      });
      card.append(input, button, done);
      box.appendChild(card);
    }
    say(status, out.results.length ? "" : "Nothing to suggest: every image is labelled.");
  }).catch((err) => say(status, err.message));
}

// -- the map ------------------------------------------------------------------------------
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
  "#7f7f7f", "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5"];

function setupMap() {
  const canvas = document.getElementById("map");
  const ctx = canvas.getContext("2d");
  const tip = document.getElementById("tip");
  const status = document.getElementById("map-status");
  let data = null;
  const pad = 12;
  const px = (i) => pad + data.x[i] * (canvas.width - 2 * pad);
  const py = (i) => pad + (1 - data.y[i]) * (canvas.height - 2 * pad);
  function nearest(e) {
    const r = canvas.getBoundingClientRect();
    const x = (e.clientX - r.left) * canvas.width / r.width;
    const y = (e.clientY - r.top) * canvas.height / r.height;
    let best = -1, bestD = 64;
    for (let i = 0; i < data.id.length; i++) {
      const d = (px(i) - x) ** 2 + (py(i) - y) ** 2;
      if (d < bestD) { bestD = d; best = i; }
    }
    return best;
  }
  api("/api/map").then((out) => {
    data = out;
    say(status, `${out.id.length} images, ${out.method} layout of run ${out.run}`);
    for (let i = 0; i < out.id.length; i++) {
      ctx.fillStyle = out.cluster[i] < 0 ? "#bbb" : PALETTE[out.cluster[i] % PALETTE.length];
      ctx.beginPath();
      ctx.arc(px(i), py(i), 3, 0, 2 * Math.PI);
      ctx.fill();
    }
  }).catch((err) => say(status, err.message));
  canvas.addEventListener("mousemove", (e) => {
    if (!data) return;
    const i = nearest(e);
    if (i < 0) { tip.hidden = true; return; }
    tip.hidden = false;
    tip.style.left = `${px(i) + 8}px`;
    tip.style.top = `${py(i) + 8}px`;
    tip.querySelector("img").src = `/api/images/${Number(data.id[i])}/thumbnail`;
    tip.querySelector("span").textContent = data.name[i];
  });
  canvas.addEventListener("mouseleave", () => { tip.hidden = true; });
  canvas.addEventListener("click", (e) => {
    if (!data) return;
    const i = nearest(e);
    if (i >= 0) window.location.href = `/images/${Number(data.id[i])}`;
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  if (document.body.dataset.edits === "on") setupActions();
  ({ search: setupSearch, cluster: setupCluster, image: setupImage, label: setupLabel,
     map: setupMap })[page]?.();
});
