// colorunet web page: upload photos, compare before/after, re-decode with other settings, paint colour hints.
"use strict";
const $ = (sel, root = document) => root.querySelector(sel);
const state = { cards: [], selected: null, limits: null, reference: null, referenceCount: 0 };
const UPLOADS_AT_ONCE = 2;      // the server runs two colorizations at once by default; more would only queue there
const DEBOUNCE_MS = 120;

// ---------- messages ----------

let toastTimer = null;
function notify(text, isError = false) {
  const box = $("#message");
  $(".text", box).textContent = text;
  box.classList.toggle("error", isError);
  box.hidden = false;
  clearTimeout(toastTimer);
  if (!isError) toastTimer = setTimeout(dismiss, 6000);  // errors stay until dismissed or replaced
}
function dismiss() { $("#message").hidden = true; }

function setStatus(card, text, isError = false) {
  const s = $(".status", card.el);
  s.textContent = text;
  s.classList.toggle("error", isError);
}

// ---------- settings: each photo has its own; the controls show the selected photo's ----------

// A reference ("Colour like…") is { file, name, url, n }: n tells two choices of the same file apart.
function readControls() {
  return { temperature: $("#temperature").value, mode: $("#mode").value, confidence: $("#confidence").checked, refine: $("#refine").checked,
           reference: state.reference, strength: $("#refstrength").value };
}

function writeControls(s) {
  $("#temperature").value = s.temperature;
  $("#mode").value = s.mode;
  $("#confidence").checked = s.confidence;
  $("#refine").checked = s.refine;
  $("#tval").textContent = Number(s.temperature).toFixed(2);
  state.reference = s.reference;
  $("#refstrength").value = s.strength;
  showReference();
}

// The "Colour like…" panel shows the reference of the selected photo (or the one for new photos).
function showReference() {
  const ref = state.reference;
  const thumb = $("#refthumb");
  thumb.hidden = !ref;
  if (ref) { thumb.src = ref.url; thumb.alt = `reference photo ${ref.name}`; } else thumb.removeAttribute("src");
  $("#refname").textContent = ref ? ref.name : "No reference";
  $("#clearref").disabled = !ref;
  $("#refstrength").disabled = !ref;
  $("#rsval").textContent = Number($("#refstrength").value).toFixed(1);
}

function setReference(file) {
  if (!file) return;
  if (file.type && !file.type.startsWith("image/")) { notify(`${file.name}: not a photo; choose a colour photo as the reference.`, true); return; }
  if (state.limits && file.size > state.limits.max_upload_bytes) {
    notify(`${file.name}: too large for a reference (the limit is ${(state.limits.max_upload_bytes / 2 ** 20).toFixed(0)} MB).`, true);
    return;
  }
  state.referenceCount += 1;
  state.reference = { file, name: file.name, url: URL.createObjectURL(file), n: state.referenceCount };
  showReference();
  settingsChanged();
}

function clearReference() {
  state.reference = null;
  showReference();
  settingsChanged();
  $("#chooseref").focus();
}

// The server refused a photo's reference (not a photo, greyscale…): say so, and go back to the reference last shown.
function referenceRefused(card, message) {
  const shown = card.shown ? card.shown.settings : null;
  card.settings = { ...card.settings, reference: shown ? shown.reference : null, strength: shown ? shown.strength : card.settings.strength };
  if (state.selected === card) writeControls(card.settings);
  notify(`Reference not used: ${message}`, true);
}
const aboutReference = (e, s) => !!s.reference && /^reference/.test(e.message || "");

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const emptyHints = () => ({ points: [], strokes: [] });
const hasHints = h => h.points.length + h.strokes.length > 0;
const hintsJSON = h => (hasHints(h) ? JSON.stringify(h) : "");
const baseName = card => card.name.replace(/\.[^.]+$/, "");

function select(card) {
  state.selected = card;
  for (const c of state.cards) {
    c.el.classList.toggle("selected", c === card);
    if (c === card) c.el.setAttribute("aria-current", "true"); else c.el.removeAttribute("aria-current");
  }
  if (card) writeControls(card.settings);
  updateControls();
}

// Buttons that would do nothing are disabled; the panel headings name the photo they act on.
function updateControls() {
  const card = state.selected;
  const ready = !!(card && card.id);
  $("#target").textContent = card ? `for ${card.name}` : "for new photos";
  $("#hints-target").textContent = card ? `for ${card.name}` : "(add a photo first)";
  $("#reference-target").textContent = card ? `for ${card.name}` : "for new photos";
  $("#undo").disabled = !ready || !card.history.length;
  $("#clearhints").disabled = !ready || !hasHints(card.hints);
  $("#exporthints").disabled = !ready || !hasHints(card.hints);
  $("#importhints-button").disabled = !ready;
  $("#applyall").disabled = state.cards.filter(c => c.id).length < 2;
  $("#empty").hidden = state.cards.length > 0;
}

// ---------- requests ----------

// At most UPLOADS_AT_ONCE uploads in flight; the rest wait here instead of timing out in the server's queue.
const uploads = { active: 0, waiting: [] };
async function uploadSlot() {
  if (uploads.active < UPLOADS_AT_ONCE) { uploads.active += 1; return; }
  await new Promise(resolve => uploads.waiting.push(resolve));
}
function releaseUpload() {
  const next = uploads.waiting.shift();
  if (next) next(); else uploads.active -= 1;
}

const sleep = (ms, signal) => new Promise((resolve, reject) => {
  const t = setTimeout(resolve, ms);
  signal?.addEventListener("abort", () => { clearTimeout(t); reject(new DOMException("aborted", "AbortError")); });
});

class RequestError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}

// POST a form; a busy server (503) is asked again after its Retry-After, a few times.
async function post(url, form, signal) {
  for (let attempt = 0; ; attempt++) {
    const response = await fetch(url, { method: "POST", body: form, signal });
    if (response.ok) return response;
    if (response.status === 503 && attempt < 4) {
      await sleep(1000 * Math.min(10, Number(response.headers.get("Retry-After")) || 2), signal);
      continue;
    }
    let text = response.statusText;
    try { text = (await response.json()).error || text; } catch { /* not JSON */ }
    throw new RequestError(text, response.status);
  }
}

function fields(form, s, hints, format) {
  form.append("temperature", s.temperature);
  form.append("mode", s.mode);
  form.append("confidence", s.confidence);
  form.append("refine", s.refine);
  if (hints) form.append("hints", hints);
  if (s.reference) {
    form.append("reference", s.reference.file, s.reference.name);
    form.append("reference_strength", s.strength);
  }
  form.append("format", format);
  return form;
}

// Send the photo itself (first time, or again when the server no longer has it); sets card.id.
async function upload(card, s, hints, format, signal) {
  const form = new FormData();
  form.append("image", card.file);
  await uploadSlot();
  try {
    const response = await post("/api/colorize", fields(form, s, hints, format), signal);
    card.id = response.headers.get("X-Colorunet-Id");
    return await response.blob();
  } finally {
    releaseUpload();
  }
}

// One image of this photo with these settings. The server keeps only its most recent photos: when it has
// forgotten this one (404), the browser's copy of the file is sent again, so every photo on the page stays editable.
async function request(card, s, format, signal) {
  const hints = hintsJSON(card.hints);
  if (card.id) {
    const form = new FormData();
    form.append("id", card.id);
    try {
      return await post("/api/recolor", fields(form, s, hints, format), signal);
    } catch (e) {
      if (e.status !== 404) throw e;
    }
    setStatus(card, "Colorizing again (the server keeps only the most recent photos)…");
  }
  try {
    return await upload(card, s, hints, format, signal);
  } catch (e) {
    if (e.name === "AbortError" || e.status || !card.id) throw e;
    // the file was moved or deleted since it was chosen, or the server is gone
    throw new RequestError("No longer editable: the server keeps only its most recent photos, and this file " +
                           "could not be read again. Add it again to change it.");
  }
}

const blobOf = async r => (r instanceof Blob ? r : r.blob());

// Show the newest state of a card. Every request supersedes (and cancels) the card's earlier one, and an
// answer is shown only if it belongs to the latest request, so a slow old answer never overwrites a newer one.
async function refresh(card, hintsBefore = null) {
  card.seq += 1;
  const seq = card.seq;
  card.controller?.abort();
  const controller = card.controller = new AbortController();
  const s = { ...card.settings };
  const hints = hintsJSON(card.hints);
  card.el.classList.add("busy");
  setStatus(card, "Updating…");
  try {
    const blob = await blobOf(await request(card, s, "png", controller.signal));
    if (seq !== card.seq) return;
    show(card, blob, s, hints);
    setStatus(card, "Updated.");
  } catch (e) {
    if (seq !== card.seq || e.name === "AbortError") return;
    if (e.status === 422 && hintsBefore && /^hints/.test(e.message)) {
      // the server refused the hints just added: go back to the last ones it took, so later changes keep working
      card.hints = card.shown && card.shown.hints ? JSON.parse(card.shown.hints) : emptyHints();
      card.history.pop();
      drawMarks(card);
      updateControls();
      setStatus(card, `Hint not used: ${e.message}`, true);
      return;
    }
    if (aboutReference(e, s)) {
      referenceRefused(card, e.message);
      setStatus(card, `Reference not used: ${e.message}`, true);
      if (card.shown && !same(card.settings, card.shown.settings)) schedule(card);
      return;
    }
    setStatus(card, e.message, true);
  } finally {
    if (seq === card.seq) card.el.classList.remove("busy");
  }
}

function schedule(card, hintsBefore = null) {
  if (!card.id) return;  // still colorizing: colorize() checks for changes when it is done
  clearTimeout(card.timer);
  card.timer = setTimeout(() => refresh(card, hintsBefore), DEBOUNCE_MS);
}

function show(card, blob, s, hints) {
  if (card.url) URL.revokeObjectURL(card.url);
  card.url = URL.createObjectURL(blob);
  card.blob = blob;
  card.shown = { settings: s, hints };
  const after = $(".after", card.el);
  after.src = card.url;
  after.hidden = false;
  useFallback(card);
  const compare = $(".compare", card.el);
  compare.classList.add("has-result");
  $(".split", card.el).hidden = false;
  $(".divider", card.el).hidden = false;
  $(".legend", card.el).hidden = !s.confidence;
  $(".confpng", card.el).hidden = !s.confidence;
  $(".png", card.el).disabled = false;
  $(".jpeg", card.el).disabled = false;
  updateControls();
}

// The browser cannot show some formats the server reads (TIFF, say): the colour result in grey stands in for the original.
function useFallback(card) {
  if (!card.beforeBroken || card.fallbackUrl || !card.shown || card.shown.settings.confidence) return;
  const before = $(".before", card.el);
  card.fallbackUrl = URL.createObjectURL(card.blob);
  before.src = card.fallbackUrl;
  before.classList.add("grey");
  before.hidden = false;
}

function setAspect(card, img) {
  if (!img.naturalWidth) return;
  card.size = [img.naturalWidth, img.naturalHeight];
  $(".compare", card.el).style.setProperty("--ar", (img.naturalWidth / img.naturalHeight).toFixed(5));
  $(".marks", card.el).setAttribute("viewBox", `0 0 ${img.naturalWidth} ${img.naturalHeight}`);
  drawMarks(card);
  revealCard(card);
}

// ---------- cards ----------

function newCard(file) {
  const el = $("#card").content.firstElementChild.cloneNode(true);
  const card = {
    el, file, name: file.name, id: null, url: null, blob: null, shown: null, size: null, settings: readControls(),
    hints: emptyHints(), history: [], seq: 0, controller: null, timer: null, beforeBroken: false, fallbackUrl: null,
  };
  $(".name", el).textContent = file.name;
  el.setAttribute("aria-label", file.name);
  const before = $(".before", el), after = $(".after", el), compare = $(".compare", el);
  card.beforeUrl = URL.createObjectURL(file);
  before.addEventListener("load", () => { if (!card.size) setAspect(card, before); });
  before.addEventListener("error", () => {
    if (before.classList.contains("grey")) return;
    card.beforeBroken = true;
    before.hidden = true;
    compare.classList.add("no-preview");
    useFallback(card);
    revealCard(card);
  }, { once: true });
  before.src = card.beforeUrl;
  after.addEventListener("load", () => { compare.classList.remove("no-preview"); setAspect(card, after); });
  $(".split", el).addEventListener("input", e => compare.style.setProperty("--split", e.target.value + "%"));
  el.addEventListener("click", () => { if (state.selected !== card) select(card); });
  el.addEventListener("focusin", () => { if (state.selected !== card) select(card); });
  attachPainter(card);
  $(".png", el).addEventListener("click", e => { e.stopPropagation(); download(card, "png"); });
  $(".jpeg", el).addEventListener("click", e => { e.stopPropagation(); download(card, "jpeg"); });
  $(".confpng", el).addEventListener("click", e => { e.stopPropagation(); download(card, "confidence"); });
  $(".retry", el).addEventListener("click", e => { e.stopPropagation(); colorize(card); });
  $(".remove", el).addEventListener("click", e => { e.stopPropagation(); removeCard(card); });
  state.cards.push(card);
  return card;
}

function removeCard(card) {
  card.seq += 1;
  card.controller?.abort();
  clearTimeout(card.timer);
  for (const u of [card.url, card.beforeUrl, card.fallbackUrl]) if (u) URL.revokeObjectURL(u);
  const i = state.cards.indexOf(card);
  state.cards.splice(i, 1);
  card.el.remove();
  if (state.selected === card) {
    const next = state.cards[Math.min(i, state.cards.length - 1)] || null;
    select(next);
  } else updateControls();
}

function fail(card, text, canRetry) {
  card.el.classList.add("failed");
  setStatus(card, text, true);
  $(".retry", card.el).hidden = !canRetry;
}

async function colorize(card) {
  card.el.classList.remove("failed");
  $(".retry", card.el).hidden = true;
  if (state.limits && card.file.size > state.limits.max_upload_bytes) {
    const mb = n => (n / 2 ** 20).toFixed(1);
    fail(card, `Too large: ${mb(card.file.size)} MB, the limit is ${mb(state.limits.max_upload_bytes)} MB.`, false);
    return;
  }
  const ref = card.settings.reference;
  if (ref && state.limits && card.file.size + ref.file.size > state.limits.max_upload_bytes) {
    referenceRefused(card, `${ref.name} and ${card.name} together are over the upload limit; choose a smaller reference.`);
  }
  card.seq += 1;
  const seq = card.seq;
  card.controller = new AbortController();
  const s = { ...card.settings };
  card.el.classList.add("busy");
  setStatus(card, uploads.active >= UPLOADS_AT_ONCE ? "Waiting for the photos before it…" : "Colorizing…");
  try {
    const blob = await upload(card, s, "", "png", card.controller.signal);
    if (seq !== card.seq) return;
    show(card, blob, s, "");
    setStatus(card, "Done. Click or drag on the photo to add colour hints.");
    // settings or hints changed while it was colorizing: show those
    if (!same(s, card.settings) || hasHints(card.hints)) schedule(card);
  } catch (e) {
    if (seq !== card.seq || e.name === "AbortError") return;
    card.id = null;
    if (aboutReference(e, s)) {  // the photo is fine: colorize it without the reference
      referenceRefused(card, e.message);
      colorize(card);
      return;
    }
    fail(card, e.message || "Could not reach the colorunet server.", !e.status || e.status === 503 || e.status >= 500);
  } finally {
    if (seq === card.seq) card.el.classList.remove("busy");
    updateControls();
  }
}

function addFiles(files) {
  const added = [];
  const skipped = [];
  for (const f of files) {
    if (f.type && !f.type.startsWith("image/")) { skipped.push(f.name); continue; }
    added.push(newCard(f));
  }
  if (skipped.length) notify(`Not a photo, skipped: ${skipped.join(", ")}.`, true);
  if (!added.length) return;
  const results = $("#results");
  const first = $(".card", results);
  for (const card of added) results.insertBefore(card.el, first);  // newest batch on top, in the order chosen
  select(added[0]);
  for (const card of added) colorize(card);
  // once its preview has its size (or could not be shown), or after a moment at the latest
  added[0].reveal = true;
  setTimeout(() => revealCard(added[0]), 400);
}

// On a phone the results start below the controls: bring the new photo into view, whole if it fits.
function revealCard(card) {
  if (!card.reveal) return;
  card.reveal = false;
  const r = card.el.getBoundingClientRect();
  if (r.top >= 0 && r.bottom <= window.innerHeight) return;
  const smooth = !window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  card.el.scrollIntoView({ block: r.height <= window.innerHeight ? "end" : "start", behavior: smooth ? "smooth" : "auto" });
}

// ---------- downloads ----------

async function download(card, kind) {
  const color = { ...card.settings, confidence: false };
  const shown = card.shown;
  const hints = hintsJSON(card.hints);
  const current = shown && shown.hints === hints;
  let blob;
  try {
    if (kind === "png" && current && same(shown.settings, color)) blob = card.blob;
    else if (kind === "confidence" && current && shown.settings.confidence && same(shown.settings, card.settings)) blob = card.blob;
    else {
      setStatus(card, "Preparing the download…");
      const s = kind === "confidence" ? { ...card.settings, confidence: true } : color;
      blob = await blobOf(await request(card, s, kind === "jpeg" ? "jpeg" : "png"));
      setStatus(card, "Downloaded.");
    }
  } catch (e) {
    setStatus(card, e.message, true);
    return;
  }
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = baseName(card) + { png: "_color.png", jpeg: "_color.jpg", confidence: "_confidence.png" }[kind];
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

// ---------- hints: a click adds a point, a drag a stroke, in pixels of the original photo ----------

const SVG = "http://www.w3.org/2000/svg";
function drawMarks(card, live = null) {
  const svg = $(".marks", card.el);
  if (!card.size) return;
  const scale = Math.max(card.size[0], card.size[1]) / 400;  // about the same on-screen size for any photo
  svg.replaceChildren();
  const line = (pts, color, width) => {
    for (const [stroke, w] of [["#fff", width + 2 * scale], [color, width]]) {
      const p = document.createElementNS(SVG, "polyline");
      p.setAttribute("points", pts.map(q => q.join(",")).join(" "));
      p.setAttribute("fill", "none");
      p.setAttribute("stroke", stroke);
      p.setAttribute("stroke-width", w);
      p.setAttribute("stroke-linecap", "round");
      p.setAttribute("stroke-linejoin", "round");
      svg.appendChild(p);
    }
  };
  for (const s of card.hints.strokes) line(s.points, s.color, Math.max(s.width, 1.5 * scale));
  for (const p of card.hints.points) {
    const c = document.createElementNS(SVG, "circle");
    c.setAttribute("cx", p.x);
    c.setAttribute("cy", p.y);
    c.setAttribute("r", 4 * scale);
    c.setAttribute("fill", p.color);
    c.setAttribute("stroke", "#fff");
    c.setAttribute("stroke-width", 1.5 * scale);
    svg.appendChild(c);
  }
  if (live) line(live.points, live.color, Math.max(live.width, 1.5 * scale));
}

function attachPainter(card) {
  const area = $(".compare", card.el);
  let stroke = null;
  const toPhoto = e => {
    const r = area.getBoundingClientRect();
    const [w, h] = card.size;
    const clamp = (v, hi) => Math.min(hi - 1, Math.max(0, Math.round(v)));
    return [clamp((e.clientX - r.left) / r.width * w, w), clamp((e.clientY - r.top) / r.height * h, h)];
  };
  // The photos are images: without this, a mouse drag starts the browser's own image drag (then pointercancel).
  area.addEventListener("dragstart", e => e.preventDefault());
  area.addEventListener("pointerdown", e => {
    if (e.target.classList.contains("split") || !card.id || !card.size || e.button !== 0) return;
    e.preventDefault();
    select(card);
    card.el.focus({ preventScroll: true });
    stroke = { points: [toPhoto(e)], start: [e.clientX, e.clientY], moved: 0, color: $("#hintcolor").value,
               width: Math.max(3, Math.round(card.size[0] / 150)) };
    try { area.setPointerCapture(e.pointerId); } catch { /* a pointer the browser no longer tracks */ }
  });
  area.addEventListener("pointermove", e => {
    if (!stroke) return;
    stroke.moved = Math.max(stroke.moved, Math.hypot(e.clientX - stroke.start[0], e.clientY - stroke.start[1]));
    const p = toPhoto(e), last = stroke.points[stroke.points.length - 1];
    if (p[0] !== last[0] || p[1] !== last[1]) stroke.points.push(p);
    if (stroke.moved > 4) drawMarks(card, stroke);
  });
  const finish = () => {
    if (!stroke) return;
    const s = stroke;
    stroke = null;
    const before = structuredClone(card.hints);
    card.history.push(before);
    if (s.moved <= 4 || s.points.length < 2) card.hints.points.push({ x: s.points[0][0], y: s.points[0][1], color: s.color });
    else card.hints.strokes.push({ points: s.points, color: s.color, width: s.width });
    drawMarks(card);
    updateControls();
    schedule(card, before);
  };
  area.addEventListener("pointerup", finish);
  area.addEventListener("pointercancel", finish);  // keep what was drawn if the browser takes the pointer away
}

// Change the selected photo's hints; undo restores the hints as they were before.
function editHints(fn) {
  const card = state.selected;
  if (!card || !card.id) return;
  const before = structuredClone(card.hints);
  if (fn(card) === false) return;
  card.history.push(before);
  drawMarks(card);
  updateControls();
  schedule(card, before);
}

function undo() {
  const card = state.selected;
  if (!card || !card.id || !card.history.length) return;
  card.hints = card.history.pop();
  drawMarks(card);
  updateControls();
  schedule(card);
}

// Check a hints file as the server will, and against the photo's size, with a message that says what is wrong.
function checkHints(data, size) {
  if (Array.isArray(data)) data = { points: data };
  if (!data || typeof data !== "object") throw new Error("expected an object with \"points\" and/or \"strokes\"");
  const unknown = Object.keys(data).filter(k => k !== "points" && k !== "strokes");
  if (unknown.length) throw new Error(`unknown key(s) ${unknown.join(", ")}; expected "points" and "strokes"`);
  const [w, h] = size;
  const num = (v, where) => {
    if (typeof v !== "number" || !Number.isFinite(v)) throw new Error(`${where}: ${JSON.stringify(v)} is not a number`);
    return v;
  };
  const xy = (x, y, where) => {
    num(x, where); num(y, where);
    if (x < 0 || y < 0 || x > w || y > h) throw new Error(`${where}: (${x}, ${y}) is outside this photo (${w}×${h}); are these hints for another photo?`);
    return [x, y];
  };
  const color = (c, where) => {
    const t = String(c ?? "").trim();
    if (!/^#?([0-9a-f]{3}|[0-9a-f]{6})$/i.test(t)) throw new Error(`${where}: colour ${JSON.stringify(c)} is not #rrggbb`);
    let hex = t.replace("#", "");
    if (hex.length === 3) hex = [...hex].map(ch => ch + ch).join("");
    return "#" + hex.toLowerCase();
  };
  const list = (v, where) => {
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw new Error(`${where} must be a list`);
    return v;
  };
  const points = list(data.points, "points").map((p, i) => {
    if (!p || typeof p !== "object") throw new Error(`points[${i}]: expected {"x", "y", "color"}`);
    const [x, y] = xy(p.x, p.y, `points[${i}]`);
    return { x, y, color: color(p.color, `points[${i}]`) };
  });
  const strokes = list(data.strokes, "strokes").map((s, i) => {
    if (!s || typeof s !== "object") throw new Error(`strokes[${i}]: expected {"points", "color", "width"}`);
    const pts = list(s.points, `strokes[${i}].points`);
    if (!pts.length) throw new Error(`strokes[${i}] has no points`);
    const out = pts.map((q, j) => {
      if (!Array.isArray(q) || q.length !== 2) throw new Error(`strokes[${i}].points[${j}]: expected [x, y]`);
      return xy(q[0], q[1], `strokes[${i}].points[${j}]`);
    });
    const width = s.width === undefined ? 3 : num(s.width, `strokes[${i}].width`);
    if (!(width > 0)) throw new Error(`strokes[${i}]: width must be > 0`);
    return { points: out, color: color(s.color, `strokes[${i}]`), width };
  });
  if (!points.length && !strokes.length) throw new Error("no hints in it");
  return { points, strokes };
}

async function importHints(file) {
  const card = state.selected;
  if (!card || !card.id || !card.size) return;
  let hints;
  try {
    let data;
    try { data = JSON.parse(await file.text()); } catch { throw new Error("not a hints file (JSON)"); }
    hints = checkHints(data, card.size);
  } catch (e) {
    notify(`${file.name}: ${e.message}. Nothing was imported.`, true);
    return;
  }
  editHints(c => { c.hints = hints; });
  notify(`Imported ${hints.points.length} point(s) and ${hints.strokes.length} stroke(s) into ${card.name}; Undo takes them back.`);
}

function exportHints() {
  const card = state.selected;
  if (!card || !hasHints(card.hints)) return;
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([JSON.stringify(card.hints, null, 1)], { type: "application/json" }));
  a.download = baseName(card) + "_hints.json";
  document.body.appendChild(a);
  a.click();
  a.remove();
}

// ---------- page ----------

function settingsChanged() {
  const s = readControls();
  $("#tval").textContent = Number(s.temperature).toFixed(2);
  $("#rsval").textContent = Number(s.strength).toFixed(1);
  const card = state.selected;
  if (!card) return;
  card.settings = s;
  schedule(card);
}

function applyToAll() {
  const s = readControls();
  let n = 0;
  for (const card of state.cards) {
    if (card.el.classList.contains("failed")) continue;
    n += 1;
    if (same(card.settings, s)) continue;
    card.settings = { ...s };
    schedule(card);  // a photo still colorizing picks them up when it is done
  }
  notify(`These settings now apply to all ${n} photos.`);
}

async function init() {
  // A photo dropped anywhere is added (the browser would otherwise open it instead of this page).
  let depth = 0;
  const hasFiles = e => [...(e.dataTransfer?.types || [])].includes("Files");
  window.addEventListener("dragenter", e => { if (hasFiles(e)) { depth += 1; document.body.classList.add("dragging"); } });
  window.addEventListener("dragleave", e => { if (hasFiles(e) && --depth <= 0) { depth = 0; document.body.classList.remove("dragging"); } });
  window.addEventListener("dragover", e => { if (hasFiles(e)) { e.preventDefault(); e.dataTransfer.dropEffect = "copy"; } });
  window.addEventListener("drop", e => {
    depth = 0;
    document.body.classList.remove("dragging");
    if (!hasFiles(e)) return;
    e.preventDefault();
    $("#reference").classList.remove("over");
    // onto the "Colour like…" panel: the reference; anywhere else: photos to colorize
    if (e.target.closest && e.target.closest("#reference")) {
      if (!$("#chooseref").disabled) setReference(e.dataTransfer.files[0]);
    } else addFiles(e.dataTransfer.files);
  });
  const refPanel = $("#reference");
  refPanel.addEventListener("dragover", e => { if (hasFiles(e)) refPanel.classList.add("over"); });
  refPanel.addEventListener("dragleave", e => { if (!refPanel.contains(e.relatedTarget)) refPanel.classList.remove("over"); });
  $("#choose").addEventListener("click", () => $("#files").click());
  $("#files").addEventListener("change", e => { addFiles(e.target.files); e.target.value = ""; });
  for (const id of ["temperature", "mode", "confidence", "refine", "refstrength"]) $("#" + id).addEventListener("input", settingsChanged);
  $("#chooseref").addEventListener("click", () => $("#reffile").click());
  $("#reffile").addEventListener("change", e => { setReference(e.target.files[0]); e.target.value = ""; });
  $("#clearref").addEventListener("click", clearReference);
  $("#applyall").addEventListener("click", applyToAll);
  $("#undo").addEventListener("click", undo);
  $("#clearhints").addEventListener("click", () => editHints(c => { if (!hasHints(c.hints)) return false; c.hints = emptyHints(); }));
  $("#exporthints").addEventListener("click", exportHints);
  $("#importhints-button").addEventListener("click", () => $("#importhints").click());
  $("#importhints").addEventListener("change", e => {
    const file = e.target.files[0];
    e.target.value = "";
    if (file) importHints(file);
  });
  $(".dismiss", $("#message")).addEventListener("click", dismiss);
  document.addEventListener("keydown", e => {
    if (e.key === "Escape") dismiss();
    const typing = e.target.matches?.("input[type=text], input[type=number], textarea, select");
    if ((e.ctrlKey || e.metaKey) && !e.shiftKey && e.key.toLowerCase() === "z" && !typing) { e.preventDefault(); undo(); }
  });
  updateControls();
  $("#tval").textContent = Number($("#temperature").value).toFixed(2);
  try {
    const info = await (await fetch("/api/model")).json();
    state.limits = info.limits;
    $("#temperature").value = info.temperature;
    if (state.selected) writeControls(state.selected.settings);
    if (info.reference && !info.reference.available) {
      $("#chooseref").disabled = true;
      $("#refhelp").textContent = "This model predicts one colour per pixel, so it has no palette to re-weight: a reference needs a classification model.";
    }
    $("#limits").textContent = `Model: ${info.name} (${info.parameters.toLocaleString()} parameters). ` +
      `Up to ${(info.limits.max_upload_bytes / 2 ** 20).toFixed(0)} MB and ${(info.limits.max_pixels / 1e6).toFixed(0)} megapixels per photo.`;
  } catch { notify("Could not reach the colorunet server.", true); }
  $("#tval").textContent = Number($("#temperature").value).toFixed(2);
}
init();
