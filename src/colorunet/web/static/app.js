// colorunet web page: upload photos, compare before/after, re-decode with other settings.
"use strict";
const $ = (sel, root = document) => root.querySelector(sel);
const state = { cards: [], selected: null, limits: null };

async function errorText(response) {
  try { return (await response.json()).error || response.statusText; } catch { return response.statusText; }
}

function settings() {
  return { temperature: $("#temperature").value, mode: $("#mode").value, confidence: $("#confidence").checked, refine: $("#refine").checked };
}

function hintsJSON(card) {
  const h = card.hints;
  return h.points.length || h.strokes.length ? JSON.stringify(h) : "";
}

function select(card) {
  state.cards.forEach(c => c.el.classList.toggle("selected", c === card));
  state.selected = card;
}

function show(card, blob) {
  if (card.url) URL.revokeObjectURL(card.url);
  card.url = URL.createObjectURL(blob);
  card.blob = blob;
  $(".after", card.el).src = card.url;
  $(".png", card.el).disabled = false;
  $(".jpeg", card.el).disabled = false;
}

function setStatus(card, text, isError = false) {
  const s = $(".status", card.el);
  s.textContent = text;
  s.classList.toggle("error", isError);
}

async function colorize(file) {
  const el = $("#card").content.firstElementChild.cloneNode(true);
  const card = { el, id: null, url: null, blob: null, name: file.name, busy: 0, hints: { points: [], strokes: [] }, history: [] };
  state.cards.push(card);
  $(".name", el).textContent = file.name;
  $(".before", el).src = URL.createObjectURL(file);
  $(".split", el).addEventListener("input", e => { $(".before-wrap", el).style.width = e.target.value + "%"; });
  $(".before", el).addEventListener("load", () => { $(".before", el).style.width = $(".compare", el).clientWidth + "px"; });
  el.addEventListener("click", () => select(card));
  el.addEventListener("focus", () => select(card));
  attachPainter(card);
  $(".png", el).addEventListener("click", e => { e.stopPropagation(); download(card, "png"); });
  $(".jpeg", el).addEventListener("click", e => { e.stopPropagation(); download(card, "jpeg"); });
  $("#results").prepend(el);
  select(card);
  if (state.limits && file.size > state.limits.max_upload_bytes) {
    setStatus(card, `Too large: ${(file.size / 2 ** 20).toFixed(1)} MB, the limit is ${(state.limits.max_upload_bytes / 2 ** 20).toFixed(0)} MB.`, true);
    return;
  }
  setStatus(card, "Colorizing…");
  const form = new FormData();
  const s = settings();
  form.append("image", file);
  form.append("temperature", s.temperature);
  form.append("mode", s.mode);
  form.append("confidence", s.confidence);
  form.append("refine", s.refine);
  form.append("format", "png");
  const response = await fetch("/api/colorize", { method: "POST", body: form });
  if (!response.ok) { setStatus(card, await errorText(response), true); return; }
  card.id = response.headers.get("X-Colorunet-Id");
  show(card, await response.blob());
  setStatus(card, "Done. Move the sliders above to change the colours.");
}

async function recolor(card, format = "png") {
  const form = new FormData();
  const s = settings();
  form.append("id", card.id);
  form.append("temperature", s.temperature);
  form.append("mode", s.mode);
  form.append("confidence", format === "png" ? s.confidence : false);
  form.append("refine", s.refine);
  const hints = hintsJSON(card);
  if (hints) form.append("hints", hints);
  form.append("format", format);
  const response = await fetch("/api/recolor", { method: "POST", body: form });
  if (!response.ok) { setStatus(card, await errorText(response), true); return null; }
  return response.blob();
}

// Hints: a click adds a point, a drag a stroke, in pixels of the original photo.
function attachPainter(card) {
  const area = $(".compare", card.el);
  let stroke = null;
  const toPhoto = e => {
    const img = $(".after", card.el);
    const r = img.getBoundingClientRect();
    return [Math.round((e.clientX - r.left) / r.width * img.naturalWidth), Math.round((e.clientY - r.top) / r.height * img.naturalHeight)];
  };
  area.addEventListener("pointerdown", e => {
    if (e.target.classList.contains("split") || !card.id) return;
    select(card);
    stroke = [toPhoto(e)];
    area.setPointerCapture(e.pointerId);
  });
  area.addEventListener("pointermove", e => { if (stroke) stroke.push(toPhoto(e)); });
  area.addEventListener("pointerup", () => {
    if (!stroke) return;
    const color = $("#hintcolor").value;
    const img = $(".after", card.el);
    if (stroke.length < 3) {
      card.hints.points.push({ x: stroke[0][0], y: stroke[0][1], color });
      card.history.push("points");
    } else {
      card.hints.strokes.push({ points: stroke, color, width: Math.max(3, Math.round(img.naturalWidth / 150)) });
      card.history.push("strokes");
    }
    stroke = null;
    settingsChanged();
  });
}

function editHints(fn) {
  const card = state.selected;
  if (!card || !card.id) return;
  fn(card);
  settingsChanged();
}

let pending = null;
function settingsChanged() {
  $("#tval").textContent = Number($("#temperature").value).toFixed(2);
  const card = state.selected;
  if (!card || !card.id) return;
  clearTimeout(pending);
  pending = setTimeout(async () => {
    card.busy += 1;
    setStatus(card, "Updating…");
    const blob = await recolor(card);
    card.busy -= 1;
    if (blob) { show(card, blob); if (!card.busy) setStatus(card, "Updated."); }
  }, 120);
}

async function download(card, format) {
  const blob = format === "png" && !settings().confidence ? card.blob : await recolor(card, format);
  if (!blob) return;
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = card.name.replace(/\.[^.]+$/, "") + "_color." + (format === "jpeg" ? "jpg" : "png");
  document.body.appendChild(a);
  a.click();
  a.remove();
}

function addFiles(files) {
  for (const f of files) {
    if (!f.type.startsWith("image/")) { $("#message").textContent = `${f.name}: not a photo, skipped.`; continue; }
    colorize(f);
  }
}

async function init() {
  const drop = $("#drop");
  drop.addEventListener("dragover", e => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", e => { e.preventDefault(); drop.classList.remove("over"); addFiles(e.dataTransfer.files); });
  drop.addEventListener("keydown", e => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("#files").click(); } });
  $("#files").addEventListener("change", e => { addFiles(e.target.files); e.target.value = ""; });
  for (const id of ["temperature", "mode", "confidence", "refine"]) $("#" + id).addEventListener("input", settingsChanged);
  $("#undo").addEventListener("click", () => editHints(c => { const kind = c.history.pop(); if (kind) c.hints[kind].pop(); }));
  $("#clearhints").addEventListener("click", () => editHints(c => { c.hints = { points: [], strokes: [] }; c.history = []; }));
  $("#exporthints").addEventListener("click", () => {
    const card = state.selected;
    if (!card) return;
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([JSON.stringify(card.hints, null, 1)], { type: "application/json" }));
    a.download = card.name.replace(/\.[^.]+$/, "") + "_hints.json";
    document.body.appendChild(a);
    a.click();
    a.remove();
  });
  $("#importhints").addEventListener("change", async e => {
    const file = e.target.files[0];
    e.target.value = "";
    if (!file) return;
    try {
      const h = JSON.parse(await file.text());
      editHints(c => { c.hints = { points: h.points || [], strokes: h.strokes || [] }; c.history = []; });
    } catch { $("#message").textContent = `${file.name}: not a hints file (JSON).`; }
  });
  try {
    const info = await (await fetch("/api/model")).json();
    state.limits = info.limits;
    $("#temperature").value = info.temperature;
    $("#limits").textContent = `Model: ${info.name} (${info.parameters.toLocaleString()} parameters). ` +
      `Up to ${(info.limits.max_upload_bytes / 2 ** 20).toFixed(0)} MB and ${(info.limits.max_pixels / 1e6).toFixed(0)} megapixels per photo.`;
  } catch { $("#message").textContent = "Could not reach the colorunet server."; }
  $("#tval").textContent = Number($("#temperature").value).toFixed(2);
}
init();
