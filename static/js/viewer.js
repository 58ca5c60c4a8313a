/* radsal trial page: linked canvas viewer, keyboard-first answers, active-time clock, a submit
   that survives double clicks and flaky networks, and instant switching between trials.

   Two lifetimes live here. The viewer (toolbar, viewports, renderers, view state) is created
   once per page and kept. Everything that belongs to one trial (the bar, notes, answer form,
   key list, flag dialog, the clock) is swapped in place when the rater moves on: the next
   trial's page is fetched, its per-trial parts replace ours, and its image and maps, prefetched
   and decoded while the rater read the previous trial, are drawn at once. The server's page
   stays the one source of the trial's markup; any surprise (a redirect, a study change, an
   error) falls back to an ordinary page load. Every viewport draws from one shared view state,
   so zoom, pan, window/level and opacity are linked by construction. No dependencies, no inline
   code (the CSP forbids it). */
(() => {
  "use strict";

  const root = document.getElementById("trial");
  if (!root) return;

  const IDLE_MS = 60000; // a gap without input longer than this is not active time
  const RETRY_DELAYS = [400, 1200, 3000]; // automatic retries before asking the rater
  const ZOOM_MIN = 0.5;
  const ZOOM_MAX = 40;
  const LOUPE_ZOOM = 3; // the magnifier shows the image at this many times the viewport's scale
  const cfg = root.dataset; // live: a swap rewrites the attributes
  let storeKey = "radsal:trial:" + cfg.token;

  const $ = (sel, el = root) => el.querySelector(sel);
  const $$ = (sel, el = root) => Array.from(el.querySelectorAll(sel));

  function readStore() {
    try {
      return JSON.parse(sessionStorage.getItem(storeKey) || "{}");
    } catch (_) {
      return {};
    }
  }
  function writeStore(extra) {
    try {
      sessionStorage.setItem(storeKey, JSON.stringify({ ...readStore(), ...extra }));
    } catch (_) { /* private mode: timing simply restarts on reload */ }
  }

  /* ------------------------------------------------------------------ active-time clock */
  /* One clock per trial; `restart` begins the next trial's (or resumes a reloaded one's). */
  const clock = (() => {
    let saved = { active: 0, total: 0 };
    let start = performance.now();
    let active = 0;
    let last = start;
    let visible = !document.hidden;

    function pending(now) {
      const gap = now - last;
      return visible && gap <= IDLE_MS ? gap : 0;
    }
    function touch() {
      const now = performance.now();
      active += pending(now);
      last = now;
    }
    for (const ev of ["pointermove", "pointerdown", "wheel", "keydown", "input", "touchstart"]) {
      window.addEventListener(ev, touch, { passive: true, capture: true });
    }
    document.addEventListener("visibilitychange", () => {
      if (document.hidden) {
        touch();
        visible = false;
      } else {
        visible = true;
        last = performance.now();
      }
    });
    return {
      restart(from) {
        saved = from || { active: 0, total: 0 };
        start = performance.now();
        last = start;
        active = saved.active;
      },
      read() {
        const now = performance.now();
        const total = Math.round(saved.total + (now - start));
        return { active: Math.min(Math.round(active + pending(now)), total), total };
      },
    };
  })();

  let finished = false; // set once the answer is saved: nothing to carry over any more
  window.addEventListener("pagehide", () => {
    if (!finished) writeStore({ clock: clock.read() });
  });

  /* ------------------------------------------------------------------ viewer */
  /* Pixels come from RadViewer (static/js/radviewer.js): the image at full depth, windowed in
     real units (HU for CT), and each map's field coloured with the study's colormap table,
     by one code path for both slots. Settings persist across the trials of a study. */
  const settingsKey = "radsal:viewer:" + cfg.studyId;
  const view = {
    zoom: 1, cx: 0, cy: 0, wc: 128, ww: 256, invert: false, threshold: 0, topk: 100,
    opacity: Number(cfg.opacity || 0.5), overlay: true, plain: false, tool: "pan", full: false,
    flicker: null, // null: side by side; "a" / "b": one viewport showing that map
    magnify: false,
  };
  const vpBox = $("#viewports");
  const ports = $$(".vp").map((el) => ({ el, slot: el.dataset.slot, canvas: $("canvas", el), r: null }));
  const loupe = { canvas: $("#loupe"), r: null, port: null, x: 0, y: 0 };
  const fields = { a: null, b: null };
  let spec = null;
  let image = null; // {data, width, height} in real units
  let presets = [];
  let frame = 0;

  function saveSettings() {
    if (!image) return;
    const keep = {
      zoom: view.zoom, rx: view.cx / image.width, ry: view.cy / image.height, units: spec.image.units,
      modality: spec.image.modality, wc: view.wc, ww: view.ww, invert: view.invert,
      opacity: view.opacity, overlay: view.overlay, topk: view.topk, plain: view.plain,
      magnify: view.magnify,
    };
    try { localStorage.setItem(settingsKey, JSON.stringify(keep)); } catch (err) { /* private mode */ }
  }

  function loadSettings() {
    try { return JSON.parse(localStorage.getItem(settingsKey) || "null"); } catch (err) { return null; }
  }

  function visiblePorts() {
    return ports.filter((p) => !p.el.hidden);
  }

  function fitScale(p) {
    const dpr = window.devicePixelRatio || 1;
    const w = p.canvas.clientWidth * dpr;
    const h = p.canvas.clientHeight * dpr;
    return Math.min(w / image.width, h / image.height);
  }

  function scaleOf(p) {
    return fitScale(p) * view.zoom;
  }

  function slotShown(p) {
    if (p.slot === "image") return null;
    return view.flicker && p.slot === "a" ? view.flicker : p.slot;
  }

  function thresholdLevel(field) {
    return field && view.topk < 100 ? RadViewer.topKLevel(field, view.topk) : 0;
  }

  /* One draw of renderer `r` into a w×h canvas: the slot's map (if shown) over the image,
     centred on image point (x, y) at `s` device pixels per image pixel. */
  function paint(r, slot, w, h, x, y, s) {
    const field = slot && view.overlay && view.opacity > 0 ? fields[slot] : null;
    r.setImage(image);
    r.setField(field);
    r.setColormap(spec.colormap);
    r.draw({
      image, field, center: view.wc, width: view.ww, invert: view.invert,
      opacity: view.opacity, threshold: thresholdLevel(field),
      view: [x - w / 2 / s, y - h / 2 / s, x + w / 2 / s, y + h / 2 / s],
    });
    return field;
  }

  function draw() {
    frame = 0;
    if (!image) return;
    const dpr = window.devicePixelRatio || 1;
    for (const p of visiblePorts()) {
      const c = p.canvas;
      // A renderer (a WebGL context) is made when its viewport is first shown, not before.
      if (!p.r) p.r = RadViewer.createRenderer(c, rendererChoice());
      const w = Math.max(1, Math.round(c.clientWidth * dpr));
      const h = Math.max(1, Math.round(c.clientHeight * dpr));
      if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
      const shown = slotShown(p);
      const field = paint(p.r, shown, w, h, view.cx, view.cy, scaleOf(p));
      // The drawn state, readable by tests and assistive tools (no arm information here).
      Object.assign(c.dataset, {
        zoom: view.zoom.toFixed(4), cx: view.cx.toFixed(2), cy: view.cy.toFixed(2),
        wc: String(Math.round(view.wc * 100) / 100), ww: String(Math.round(view.ww * 100) / 100),
        opacity: field ? view.opacity.toFixed(2) : "0", renderer: p.r.kind, shown: shown || "image",
      });
      if (p.slot !== "image") $("figcaption", p.el).textContent = "Map " + (shown || p.slot).toUpperCase();
    }
    drawLoupe();
    const unit = spec.image.units ? " " + spec.image.units : "";
    $("#zoom-out").textContent = Math.round(view.zoom * 100) + "%";
    $("#wl-out").textContent = "C " + Math.round(view.wc) + " · W " + Math.round(view.ww) + unit;
    $("#opacity-out").textContent = Math.round(view.opacity * 100) + "%";
    $("#topk-out").textContent = view.topk >= 100 ? "all" : "top " + view.topk + "%";
    saveSettings();
  }

  function redraw() {
    if (!frame) frame = requestAnimationFrame(draw);
  }

  function defaultWindow() {
    return [spec.image.window.center, spec.image.window.width];
  }

  function resetView() {
    view.zoom = 1;
    view.full = false;
    if (image) { view.cx = image.width / 2; view.cy = image.height / 2; }
    [view.wc, view.ww] = defaultWindow();
    view.invert = spec.image.invert;
    $("#wl-preset").selectedIndex = 0;
    $("#invert-toggle").checked = view.invert;
    redraw();
  }

  function zoomAt(factor, p, mx, my) {
    if (!image) return;
    const next = Math.min(ZOOM_MAX, Math.max(ZOOM_MIN, view.zoom * factor));
    if (p && mx !== undefined) {
      const dpr = window.devicePixelRatio || 1;
      const ox = mx * dpr - p.canvas.width / 2;
      const oy = my * dpr - p.canvas.height / 2;
      const s0 = scaleOf(p);
      const s1 = fitScale(p) * next;
      view.cx += ox / s0 - ox / s1;
      view.cy += oy / s0 - oy / s1;
    }
    view.zoom = next;
    view.full = false;
    redraw();
  }

  function fullResolution() {
    const p = visiblePorts()[0];
    if (!p || !image) return;
    view.zoom = 1 / fitScale(p);
    view.full = true;
    redraw();
  }

  function setOpacity(value) {
    view.opacity = Math.min(1, Math.max(0, Math.round(value * 20) / 20));
    $("#opacity").value = String(Math.round(view.opacity * 100));
    if (!view.overlay && view.opacity > 0) setOverlay(true);
    redraw();
  }

  function setOverlay(on) {
    view.overlay = on;
    $("#overlay-toggle").checked = on;
    redraw();
  }

  function setPlain(on) {
    view.plain = on;
    $("#plain-toggle").checked = on;
    ports.find((p) => p.slot === "image").el.hidden = !on;
    vpBox.classList.toggle("with-plain", on);
    redraw();
  }

  function setTool(tool) {
    view.tool = tool;
    $('[data-action="wl-tool"]').setAttribute("aria-pressed", String(tool === "wl"));
    vpBox.classList.toggle("wl-mode", tool === "wl");
  }

  function setPreset(index) {
    const sel = $("#wl-preset");
    const i = ((index % presets.length) + presets.length) % presets.length;
    sel.selectedIndex = i;
    const p = presets[i];
    if (p.auto) {
      const w = RadViewer.autoWindow(image.data);
      [view.wc, view.ww] = [w.center, w.width];
    } else {
      [view.wc, view.ww] = [p.center, p.width];
    }
    redraw();
  }

  function setTopk(value) {
    view.topk = Math.min(100, Math.max(1, Math.round(value)));
    $("#topk").value = String(view.topk);
    redraw();
  }

  function flicker() {
    view.flicker = view.flicker === "a" ? "b" : "a";
    ports.find((p) => p.slot === "b").el.hidden = true;
    vpBox.classList.add("flicker");
    $('[data-action="flicker"]').setAttribute("aria-pressed", "true");
    redraw();
  }

  function sideBySide() {
    view.flicker = null;
    ports.find((p) => p.slot === "b").el.hidden = false;
    vpBox.classList.remove("flicker");
    $('[data-action="flicker"]').setAttribute("aria-pressed", "false");
    redraw();
  }

  function toggleFullscreen() {
    if (document.fullscreenElement) document.exitFullscreen();
    else if (vpBox.requestFullscreen) vpBox.requestFullscreen().catch(() => {});
  }

  /* Linked crosshair: one image point, marked in every viewport. */
  const cross = { x: null, y: null };
  function placeCrosshair(p, e) {
    if (!image) return;
    const dpr = window.devicePixelRatio || 1;
    const s = scaleOf(p);
    cross.x = view.cx + (e.offsetX * dpr - p.canvas.width / 2) / s;
    cross.y = view.cy + (e.offsetY * dpr - p.canvas.height / 2) / s;
    for (const q of visiblePorts()) {
      const mark = $(".crosshair", q.el);
      const sq = scaleOf(q) / dpr;
      const x = q.canvas.clientWidth / 2 + (cross.x - view.cx) * sq;
      const y = q.canvas.clientHeight / 2 + (cross.y - view.cy) * sq;
      mark.style.transform = `translate(${x}px, ${y}px)`;
      mark.hidden = false;
    }
    loupe.port = p;
    loupe.x = e.offsetX;
    loupe.y = e.offsetY;
    drawLoupe();
  }

  /* Magnifier: a loupe under the pointer showing the viewport's own content (the same slot,
     window and map settings) at LOUPE_ZOOM times its scale, drawn by its own renderer from
     the full-resolution image rather than by enlarging screen pixels. */
  function setMagnify(on) {
    view.magnify = on;
    $('[data-action="magnify"]').setAttribute("aria-pressed", String(on));
    if (!on) loupe.canvas.hidden = true;
    drawLoupe();
    saveSettings();
  }

  function drawLoupe() {
    const p = loupe.port;
    if (!view.magnify || !p || p.el.hidden || !image || cross.x === null) {
      loupe.canvas.hidden = true;
      return;
    }
    if (!loupe.r) loupe.r = RadViewer.createRenderer(loupe.canvas, rendererChoice());
    const c = loupe.canvas;
    c.hidden = false;
    const dpr = window.devicePixelRatio || 1;
    const side = Math.round(c.clientWidth * dpr) || 240;
    if (c.width !== side) { c.width = side; c.height = side; }
    const box = vpBox.getBoundingClientRect();
    const at = p.canvas.getBoundingClientRect();
    const half = c.clientWidth / 2;
    c.style.transform = `translate(${at.left - box.left + loupe.x - half}px, ${at.top - box.top + loupe.y - half}px)`;
    const field = paint(loupe.r, slotShown(p), c.width, c.height, cross.x, cross.y, scaleOf(p) * LOUPE_ZOOM);
    Object.assign(c.dataset, {
      x: cross.x.toFixed(2), y: cross.y.toFixed(2), scale: (scaleOf(p) * LOUPE_ZOOM).toFixed(4),
      shown: slotShown(p) || "image", opacity: field ? view.opacity.toFixed(2) : "0",
    });
  }

  for (const p of ports) {
    const c = p.canvas;
    const mark = document.createElement("span");
    mark.className = "crosshair";
    mark.hidden = true;
    mark.setAttribute("aria-hidden", "true");
    p.el.appendChild(mark);
    let drag = null;
    c.addEventListener("wheel", (e) => {
      e.preventDefault();
      zoomAt(Math.exp(-e.deltaY * 0.0015), p, e.offsetX, e.offsetY);
    }, { passive: false });
    c.addEventListener("contextmenu", (e) => e.preventDefault());
    c.addEventListener("dblclick", (e) => { e.preventDefault(); resetView(); });
    c.addEventListener("pointerleave", () => {
      for (const q of ports) $(".crosshair", q.el).hidden = true;
      loupe.port = null;
      loupe.canvas.hidden = true;
    });
    c.addEventListener("pointerdown", (e) => {
      const mode = e.button === 2 || (e.button === 0 && view.tool === "wl") ? "wl" : "pan";
      drag = { mode, x: e.clientX, y: e.clientY };
      c.setPointerCapture(e.pointerId);
      c.classList.add("dragging");
    });
    c.addEventListener("pointermove", (e) => {
      if (!drag || !image) { placeCrosshair(p, e); return; }
      const dx = e.clientX - drag.x;
      const dy = e.clientY - drag.y;
      drag.x = e.clientX;
      drag.y = e.clientY;
      if (drag.mode === "pan") {
        const s = scaleOf(p) / (window.devicePixelRatio || 1);
        view.cx -= dx / s;
        view.cy -= dy / s;
      } else {
        const step = Math.max(view.ww, 1) / 256; // sensitivity in the image's own units
        view.ww = Math.max(1, view.ww + dx * step * 2);
        view.wc = view.wc + dy * step;
      }
      redraw();
    });
    const end = (e) => {
      drag = null;
      c.classList.remove("dragging");
      if (c.hasPointerCapture(e.pointerId)) c.releasePointerCapture(e.pointerId);
    };
    c.addEventListener("pointerup", end);
    c.addEventListener("pointercancel", end);
  }
  window.addEventListener("resize", redraw);

  const actions = {
    "zoom-in": () => zoomAt(1.25),
    "zoom-out": () => zoomAt(0.8),
    reset: resetView,
    full: fullResolution,
    "wl-tool": () => setTool(view.tool === "wl" ? "pan" : "wl"),
    flicker: () => (view.flicker ? sideBySide() : flicker()),
    magnify: () => setMagnify(!view.magnify),
    fullscreen: toggleFullscreen,
  };
  for (const btn of $$("[data-action]", $(".toolbar"))) {
    btn.addEventListener("click", () => {
      actions[btn.dataset.action]();
      btn.blur(); // keep Enter and the digits for the answer, not the last clicked button
    });
  }
  $("#opacity").addEventListener("input", (e) => setOpacity(Number(e.target.value) / 100));
  $("#topk").addEventListener("input", (e) => setTopk(Number(e.target.value)));
  $("#overlay-toggle").addEventListener("change", (e) => setOverlay(e.target.checked));
  $("#plain-toggle").addEventListener("change", (e) => setPlain(e.target.checked));
  $("#invert-toggle").addEventListener("change", (e) => { view.invert = e.target.checked; redraw(); });
  $("#wl-preset").addEventListener("change", (e) => { setPreset(e.target.selectedIndex); e.target.blur(); });

  function colourBar() {
    const bar = $("#colour-bar");
    const rgb = window.RADSAL_COLORMAPS[spec.colormap];
    const ctx = bar.getContext("2d");
    const px = ctx.createImageData(256, 1);
    for (let i = 0; i < 256; i++) {
      px.data.set([rgb[i * 3], rgb[i * 3 + 1], rgb[i * 3 + 2], 255], i * 4);
    }
    ctx.putImageData(px, 0, 0);
  }

  // "?renderer=canvas2d" (or webgl2, no-software-gl) on the page the rater opened; read once,
  // since swapped trials replace the address without it.
  const RENDERER = new URLSearchParams(location.search).get("renderer") || "auto";
  function rendererChoice() {
    return RENDERER;
  }

  /* ------------------------------------------------------------------ trial data */
  /* A trial's description and its decoded image and maps, by the description's URL: loaded
     once, kept for the current and the next trial only. The next trial's entry is filled
     while the rater reads, so moving on draws from memory. (A page load needs no stored
     copy: every trial page carries its own description.) */
  const trialCache = new Map();

  function fetchJson(url) {
    return fetch(url, { credentials: "same-origin" }).then((r) => {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    });
  }

  /* The description the server put in a trial page (script#viewer-spec), if any. */
  function embeddedSpec(doc) {
    const el = doc.getElementById("viewer-spec");
    try { return el ? JSON.parse(el.textContent) : null; } catch (err) { return null; }
  }

  function trialData(specUrl, embedded) {
    let hit = trialCache.get(specUrl);
    if (!hit) {
      const specP = embedded ? Promise.resolve(embedded) : fetchJson(specUrl);
      const dataP = specP.then((s) => Promise.all([
        RadViewer.loadImage(s.image), RadViewer.loadField(s.maps.a), RadViewer.loadField(s.maps.b),
      ]));
      hit = { spec: specP, data: dataP };
      trialCache.set(specUrl, hit);
      dataP.catch(() => trialCache.delete(specUrl));
    }
    return hit;
  }

  function prefetch(url) {
    for (const key of trialCache.keys()) if (key !== cfg.viewerUrl) trialCache.delete(key);
    if (!url) return;
    trialData(url).data.catch(() => {}); // a failure here is retried when the trial is shown
    // The localise item draws on a rater trial's display PNG: warm the HTTP cache for it too.
    const rater = /^\/api\/v1\/trials\/([\w-]+)\/viewer$/.exec(url);
    if (rater && $(".localise")) fetch(`/t/${rater[1]}/image.png`, { credentials: "same-origin" }).catch(() => {});
  }

  /* Show a trial's data in the kept viewports: the window, zoom and map settings the rater
     left (when the units match), else the image's own defaults. */
  function showTrialData(s, [img, a, b]) {
    spec = s;
    image = img;
    fields.a = a;
    fields.b = b;
    presets = spec.image.presets.slice();
    presets.unshift({ name: "Default", center: spec.image.window.center, width: spec.image.window.width });
    const sel = $("#wl-preset");
    sel.replaceChildren(...presets.map((p) => new Option(p.name)));
    $("#finding").textContent = spec.finding;
    colourBar();
    view.zoom = 1;
    view.cx = image.width / 2;
    view.cy = image.height / 2;
    [view.wc, view.ww] = defaultWindow();
    view.invert = spec.image.invert;
    view.opacity = spec.opacity;
    const kept = loadSettings();
    if (kept) {
      view.zoom = kept.zoom || 1;
      view.cx = (kept.rx ?? 0.5) * image.width;
      view.cy = (kept.ry ?? 0.5) * image.height;
      if (kept.units === spec.image.units && kept.modality === spec.image.modality) {
        [view.wc, view.ww, view.invert] = [kept.wc, kept.ww, kept.invert];
      }
      view.opacity = kept.opacity ?? view.opacity;
      view.overlay = kept.overlay ?? true;
      view.topk = kept.topk ?? 100;
      if (kept.plain !== view.plain) setPlain(Boolean(kept.plain));
      if (Boolean(kept.magnify) !== view.magnify) setMagnify(Boolean(kept.magnify));
    }
    $("#opacity").value = String(Math.round(view.opacity * 100));
    $("#overlay-toggle").checked = view.overlay;
    $("#invert-toggle").checked = view.invert;
    $("#topk").value = String(view.topk);
    loading.classList.add("gone");
    draw();
    root.dataset.ready = "1";
    root.dataset.readyAt = String(Math.round(performance.now()));
    prefetch(spec.next_spec_url);
  }

  const loading = $("#vp-loading");
  function loadFailed() {
    loading.textContent = "The images could not be loaded. Reload the page to try again.";
    loading.classList.remove("gone");
    loading.classList.add("failed");
  }

  /* ------------------------------------------------------------------ answer form */
  // Per-trial elements, bound again after every swap (startTrial).
  let form, submitBtn, status, missing, comment, help;
  let rows = [];
  let cursor = 0;
  let busy = false;
  let requestId = null;
  let requestFor = "";

  function setCursor(i) {
    if (!rows.length) return;
    cursor = Math.max(0, Math.min(rows.length - 1, i));
    rows.forEach((r, k) => r.classList.toggle("active", k === cursor));
    const side = rows[cursor].dataset.side;
    for (const p of ports) p.el.classList.toggle("scoring", p.slot === (side === "left" ? "a" : "b"));
  }

  function rowValue(row) {
    const checked = $("input:checked", row);
    return checked ? Number(checked.value) : null;
  }

  function firstEmptyRow(from) {
    for (let k = 0; k < rows.length; k += 1) {
      const i = (from + k) % rows.length;
      if (rowValue(rows[i]) === null) return i;
    }
    return -1;
  }

  function answer() {
    const scores = {};
    for (const row of rows) {
      const [key, side] = row.dataset.field.split(":");
      scores[key] = scores[key] || { left: null, right: null };
      scores[key][side] = rowValue(row);
    }
    const pref = $('input[name="preference"]:checked');
    const first = rows.length ? rows[0].dataset.field.split(":")[0] : null;
    return {
      left_score: first ? scores[first].left : null,
      right_score: first ? scores[first].right : null,
      scores,
      preference: pref ? pref.value : null,
      comment: comment ? comment.value : null,
      // issue 15 hook (protocol_items.js): confidence, blinding guess, region, practice flag
      ...(window.radsalProtocol ? window.radsalProtocol.answer() : {}),
    };
  }

  function missingParts() {
    const out = [];
    for (const fs of $$("fieldset.likert")) {
      if (fs.dataset.required !== "1") continue;
      for (const row of $$(".score-row", fs)) {
        if (rowValue(row) === null) out.push("Map " + (row.dataset.side === "left" ? "A" : "B") + " score");
      }
    }
    const pref = $("fieldset.preference");
    if (pref && pref.dataset.required === "1" && !$("input:checked", pref)) out.push("preference");
    const com = $("fieldset.comment");
    if (com && com.dataset.required === "1" && !comment.value.trim()) out.push("comment");
    if (window.radsalProtocol) out.push(...window.radsalProtocol.missing()); // issue 15 hook
    return out;
  }

  function refresh() {
    const need = missingParts();
    submitBtn.disabled = need.length > 0 || busy;
    missing.textContent = need.length ? "Still needed: " + need.join(", ") : "";
    writeStore({ draft: answer() });
  }

  function restoreDraft() {
    if (Number(cfg.revision) > 0) return; // a saved answer is already filled in by the server
    const draft = readStore().draft;
    if (!draft) return;
    for (const [key, pair] of Object.entries(draft.scores || {})) {
      for (const side of ["left", "right"]) {
        const input = form.querySelector(`input[name="${CSS.escape(key + ":" + side)}"][value="${pair[side]}"]`);
        if (input) input.checked = true;
      }
    }
    if (draft.preference) {
      const p = form.querySelector(`input[name="preference"][value="${CSS.escape(draft.preference)}"]`);
      if (p) p.checked = true;
    }
    if (comment && draft.comment) comment.value = draft.comment;
  }

  function score(n) {
    if (!rows.length) return;
    const row = rows[cursor];
    const input = $(`input[value="${n}"]`, row);
    if (!input) return;
    input.checked = true;
    const next = firstEmptyRow(cursor + 1);
    if (next >= 0) setCursor(next);
    refresh();
  }

  function chooseSide(side) {
    if (!rows.length) return;
    const key = rows[cursor].dataset.field.split(":")[0];
    const i = rows.findIndex((r) => r.dataset.field === key + ":" + side);
    if (i >= 0) setCursor(i);
  }

  function prefer(value) {
    const input = $(`input[name="preference"][value="${value}"]`);
    if (input) { input.checked = true; refresh(); }
  }

  /* Bind this page's per-trial parts: on load, and again after each swap. */
  function startTrial() {
    storeKey = "radsal:trial:" + cfg.token;
    finished = false;
    busy = false;
    requestId = null;
    requestFor = "";
    clock.restart(readStore().clock);
    form = $("#rating-form");
    submitBtn = $("#submit-button");
    status = $("#save-status");
    missing = $("#missing");
    comment = $("#comment");
    help = $("#help");
    rows = $$(".score-row");
    rows.forEach((row, i) => {
      row.addEventListener("click", () => setCursor(i));
      row.addEventListener("change", () => {
        const next = firstEmptyRow(i + 1);
        if (next >= 0 && rowValue(row) !== null) setCursor(next);
      });
    });
    form.addEventListener("change", refresh);
    form.addEventListener("input", refresh);
    form.addEventListener("submit", (e) => { e.preventDefault(); submit(); });
    $("#help-button").addEventListener("click", () => help.showModal());
    for (const link of $$(".trial-nav a[href]")) {
      link.addEventListener("click", (e) => {
        if (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        go(link.getAttribute("href"));
      });
    }
    restoreDraft();
    setCursor(Math.max(0, firstEmptyRow(0)));
    refresh();
  }

  /* ------------------------------------------------------------------ moving on */
  let moving = false;

  /* Replace our per-trial parts (every child of #trial without data-keep) with the fresh
     page's, in the fresh page's order around the kept toolbar and viewports. */
  function replaceParts(fresh) {
    const kept = new Map($$(":scope > [data-keep]").map((el) => [el.dataset.keep, el]));
    for (const el of Array.from(root.children)) if (!el.dataset.keep) el.remove();
    let anchor = null;
    for (const el of Array.from(fresh.children)) {
      if (el.dataset.keep) { anchor = kept.get(el.dataset.keep) || anchor; continue; }
      const node = document.importNode(el, true);
      if (anchor) anchor.after(node); else root.prepend(node);
      anchor = node;
    }
    for (const name of Object.keys(root.dataset)) if (!(name in fresh.dataset)) delete root.dataset[name];
    Object.assign(root.dataset, fresh.dataset);
  }

  /* Go to another trial page of this study: swapped in place when its page and data are at
     hand, else an ordinary page load (which also handles every refusal and error). */
  async function go(url) {
    if (!url || moving) return;
    moving = true;
    if (!finished) writeStore({ clock: clock.read() });
    try {
      const res = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
      const landed = new URL(res.url || url, location.href);
      if (!res.ok || !landed.pathname.startsWith("/t/")) throw new Error("not a trial page");
      const doc = new DOMParser().parseFromString(await res.text(), "text/html");
      const fresh = doc.getElementById("trial");
      if (!fresh || fresh.dataset.studyId !== cfg.studyId || !fresh.dataset.token) throw new Error("other page");
      const hit = trialData(fresh.dataset.viewerUrl, embeddedSpec(doc));
      const data = await Promise.all([hit.spec, hit.data]);
      // From here on everything happens in one task: the rater never sees a half-swapped page.
      for (const d of $$("dialog[open]")) d.close();
      root.dataset.ready = "0";
      replaceParts(fresh);
      document.title = doc.title;
      history.pushState({ radsal: "trial" }, "", landed.pathname + landed.search);
      if (document.activeElement instanceof HTMLElement) document.activeElement.blur();
      // The protocol items and the region tool bind to the new form first, so the viewer's
      // first "what is still missing" already counts them.
      document.dispatchEvent(new CustomEvent("radsal:trial", { detail: { token: cfg.token } }));
      startTrial();
      showTrialData(data[0], data[1]);
      // Screen readers hear that the page moved on (no page load tells them).
      $("#trial-announce").textContent = $("#trial-counter").textContent.trim() + ": ready.";
      moving = false;
    } catch (err) {
      window.location.assign(url);
    }
  }
  // Back and forward between swapped trials: load the page the address bar now shows.
  window.addEventListener("popstate", () => window.location.reload());
  // For protocol_items.js: moving on after a flag, and the trial's clock for the flag's timing.
  window.radsalTrial = { go, time: () => clock.read() };

  /* ------------------------------------------------------------------ saving */
  function uuid4() {
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  function say(text, kind) {
    status.textContent = text;
    status.className = "save-status" + (kind ? " " + kind : "");
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  async function post(body) {
    const res = await fetch(cfg.ratingUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": cfg.csrf },
      body: JSON.stringify(body),
    });
    let data = null;
    try { data = await res.json(); } catch (_) { data = null; }
    return { res, data };
  }

  async function submit() {
    if (busy || moving || missingParts().length) return;
    const ans = answer();
    const fingerprint = JSON.stringify(ans);
    // One id per distinct answer: a retry or double submit of the same answer replays.
    if (fingerprint !== requestFor) { requestId = uuid4(); requestFor = fingerprint; }
    busy = true;
    submitBtn.disabled = true;
    say("Saving…", "");
    for (let attempt = 0; attempt <= RETRY_DELAYS.length; attempt += 1) {
      const t = clock.read();
      try {
        const { res, data } = await post({ ...ans, active_ms: t.active, total_ms: t.total, request_id: requestId });
        if (res.ok && data && data.saved) {
          say("Saved ✓", "ok");
          finished = true;
          try { sessionStorage.removeItem(storeKey); } catch (_) { /* ignore */ }
          root.dataset.saved = String(data.revision);
          if (data.done) window.location.assign(data.next_url);
          else go(data.next_url);
          return;
        }
        if (res.status === 401) {
          fail("Not saved: your session has ended. Log in again in another tab, then press Enter to retry. Your answer is kept here.");
          return;
        }
        if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
          const why = data && data.errors ? data.errors.map((e) => e.msg).join(" ") : "";
          fail("Not saved: " + ((data && data.detail) || "the server refused the answer.") + (why ? " " + why : ""));
          return;
        }
      } catch (_) { /* network error: retry below */ }
      if (attempt < RETRY_DELAYS.length) {
        say("Saving… the server did not answer, retrying (" + (attempt + 1) + ")", "");
        await sleep(RETRY_DELAYS[attempt]);
      }
    }
    fail("Not saved: the server could not be reached. Your answer is kept on this page — press Enter or the button to try again.");
  }

  function fail(text) {
    busy = false;
    say(text, "error");
    submitBtn.textContent = "Retry saving";
    refresh();
  }

  /* ------------------------------------------------------------------ hotkeys */
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || moving) return;
    if (help.open) { // the dialog handles its own keys (Esc closes); ? closes it too
      if (e.key === "?") { help.close(); e.preventDefault(); }
      return;
    }
    const t = e.target;
    const typing = t instanceof HTMLTextAreaElement || (t instanceof HTMLInputElement && t.type === "text");
    if (typing) {
      if (e.key === "Escape") { t.blur(); e.preventDefault(); }
      else if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); submit(); }
      return;
    }
    if (t instanceof HTMLSelectElement) return;
    const pressable = t instanceof HTMLAnchorElement || t instanceof HTMLButtonElement;
    if (pressable && (e.key === "Enter" || e.key === " ")) return; // let links and buttons work
    const k = e.key;
    let handled = true;
    if (/^[1-9]$/.test(k)) score(Number(k));
    else if (k === "a" || k === "A") chooseSide("left");
    else if (k === "b" || k === "B") chooseSide("right");
    else if (k === "z" || k === "Z" || k === "ArrowLeft") prefer("left");
    else if (k === "x" || k === "X" || k === "ArrowDown") prefer("none");
    else if (k === "c" || k === "C" || k === "ArrowRight") prefer("right");
    else if (k === "Enter") submit();
    else if (k === "m" || k === "M") { if (comment) comment.focus(); }
    else if (k === "p" || k === "P") go(cfg.previousUrl);
    else if (k === "n" || k === "N") go(cfg.nextUrl);
    else if (k === "+" || k === "=") zoomAt(1.25);
    else if (k === "-" || k === "_") zoomAt(0.8);
    else if (k === "0") resetView();
    else if (k === "f" || k === "F") fullResolution();
    else if (k === "o" || k === "O") setOverlay(!view.overlay);
    else if (k === "i" || k === "I") setPlain(!view.plain);
    else if (k === "w" || k === "W") setTool(view.tool === "wl" ? "pan" : "wl");
    else if (k === "l" || k === "L") setPreset($("#wl-preset").selectedIndex + 1);
    else if (k === "[") setOpacity(view.opacity - 0.1);
    else if (k === "]") setOpacity(view.opacity + 0.1);
    else if (k === "?") help.showModal();
    else if (k === "v" || k === "V") flicker();
    else if (k === "s" || k === "S") sideBySide();
    else if (k === "d" || k === "D") setMagnify(!view.magnify);
    else if (k === "g" || k === "G") toggleFullscreen();
    else if (k === "t" || k === "T") setTopk(view.topk >= 100 ? 10 : 100);
    else handled = false;
    if (handled) e.preventDefault();
  });

  /* ------------------------------------------------------------------ first trial */
  startTrial();
  const first = trialData(cfg.viewerUrl, embeddedSpec(document));
  Promise.all([first.spec, first.data]).then(([s, data]) => showTrialData(s, data)).catch(loadFailed);
})();
