/* radsal localisation answer: the rater marks "the region that supports the finding" on the
   plain image as a box, an ellipse or a freehand polygon. Own module (issue 15), independent
   of the viewer: it draws into its own canvas and keeps the answer, as JSON in normalised
   image coordinates (x right, y down, 0..1), in a hidden input
   `<input type="hidden" name="region:KEY">` of the rating form, firing `input` so the form
   re-checks what is still missing. The server validates the same rules again
   (app/services/reading/geometry.py): on the image, an area, no self-crossing, ≤ max points.

   Keyboard first. R focuses the drawing area from anywhere on the page (when not typing).
   In the drawing area: arrows move the cursor (Shift: larger steps), Space places a point
   (box: two corners; ellipse: centre then edge; polygon: each vertex), Enter closes a polygon,
   Backspace drops the last vertex, Q cycles box → ellipse → polygon, H selects the next handle
   of the finished shape (arrows then move it), U or Ctrl+Z undoes, Delete clears, Escape
   cancels the point in progress or leaves the drawing area. Mouse: drag for a box or an
   ellipse, draw a freehand outline for a polygon, drag a handle to edit.
   No dependencies, no inline code (CSP). */
(() => {
  "use strict";

  const SHAPES = ["box", "ellipse", "polygon"];
  const MIN_EXTENT = 0.002;
  const clamp = (v) => Math.min(1, Math.max(0, v));
  const round = (v) => Math.round(v * 10000) / 10000;

  function orient(a, b, c) { return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]); }
  function crosses(p1, p2, q1, q2) {
    const d1 = orient(q1, q2, p1), d2 = orient(q1, q2, p2), d3 = orient(p1, p2, q1), d4 = orient(p1, p2, q2);
    return ((d1 > 0 && d2 < 0) || (d1 < 0 && d2 > 0)) && ((d3 > 0 && d4 < 0) || (d3 < 0 && d4 > 0));
  }
  function selfCrossing(points) {
    const n = points.length;
    for (let i = 0; i < n; i += 1) {
      for (let j = i + 1; j < n; j += 1) {
        if (j === i + 1 || (i === 0 && j === n - 1)) continue;
        if (crosses(points[i], points[(i + 1) % n], points[j], points[(j + 1) % n])) return true;
      }
    }
    return false;
  }
  /* Thin a freehand outline to at most `max` points, keeping its shape (every k-th point). */
  function thin(points, max) {
    if (points.length <= max) return points;
    const step = points.length / max;
    const out = [];
    for (let i = 0; i < max; i += 1) out.push(points[Math.floor(i * step)]);
    return out;
  }

  function handlesOf(region) {
    if (!region) return [];
    if (region.shape === "box") {
      return [[region.x0, region.y0], [region.x1, region.y0], [region.x1, region.y1], [region.x0, region.y1]];
    }
    if (region.shape === "ellipse") {
      return [[region.cx, region.cy], [region.cx + region.rx, region.cy], [region.cx, region.cy + region.ry]];
    }
    return region.points.map((p) => p.slice());
  }

  /* The region with handle `i` moved to point p (normalised), or null when that is invalid. */
  function moveHandle(region, i, p) {
    const r = JSON.parse(JSON.stringify(region));
    if (r.shape === "box") {
      const xs = [r.x0, r.x1], ys = [r.y0, r.y1];
      const [xi, yi] = [[0, 0], [1, 0], [1, 1], [0, 1]][i];
      xs[xi] = p[0]; ys[yi] = p[1];
      return makeBox([xs[0], ys[0]], [xs[1], ys[1]]);
    }
    if (r.shape === "ellipse") {
      if (i === 0) return makeEllipse(p, [p[0] + r.rx, p[1] + r.ry]);
      return i === 1
        ? makeEllipse([r.cx, r.cy], [p[0], r.cy + r.ry])
        : makeEllipse([r.cx, r.cy], [r.cx + r.rx, p[1]]);
    }
    r.points[i] = [round(p[0]), round(p[1])];
    return r;
  }

  function makeBox(a, b) {
    const box = {
      shape: "box",
      x0: round(Math.min(a[0], b[0])), y0: round(Math.min(a[1], b[1])),
      x1: round(Math.max(a[0], b[0])), y1: round(Math.max(a[1], b[1])),
    };
    return box.x1 - box.x0 < MIN_EXTENT || box.y1 - box.y0 < MIN_EXTENT ? null : box;
  }
  function makeEllipse(c, edge) {
    let rx = Math.abs(edge[0] - c[0]), ry = Math.abs(edge[1] - c[1]);
    // keep it on the image: shrink the radii rather than refuse the rater's centre
    rx = Math.min(rx, c[0], 1 - c[0]);
    ry = Math.min(ry, c[1], 1 - c[1]);
    if (rx < MIN_EXTENT || ry < MIN_EXTENT) return null;
    return { shape: "ellipse", cx: round(c[0]), cy: round(c[1]), rx: round(rx), ry: round(ry) };
  }

  function setup(box) {
    const canvas = box.querySelector("canvas");
    const input = box.querySelector('input[type="hidden"]');
    const status = box.querySelector(".localise-status");
    const toolButtons = Array.from(box.querySelectorAll("[data-shape]"));
    const maxPoints = Number(box.dataset.maxPoints || 200);
    const ctx = canvas.getContext("2d");
    const img = new Image();
    const st = {
      shape: "box", region: null, draft: [], cursor: [0.5, 0.5], handle: -1,
      history: [], drag: null, freehand: null,
    };
    try { st.region = input.value ? JSON.parse(input.value) : null; } catch (_) { st.region = null; }
    if (st.region && SHAPES.includes(st.region.shape)) st.shape = st.region.shape;

    function say(text) { if (status) status.textContent = text; }
    function setShape(shape) {
      st.shape = shape;
      st.draft = [];
      for (const b of toolButtons) b.setAttribute("aria-pressed", String(b.dataset.shape === shape));
      say(shape === "polygon"
        ? "Polygon: Space adds a vertex, Enter closes it (or draw the outline with the mouse)."
        : shape === "box" ? "Box: Space at one corner, then at the opposite corner (or drag)."
        : "Ellipse: Space at the centre, then at the edge (or drag from the centre).");
      draw();
    }
    function commit(region, why) {
      if (!region) { say("That region has no area; try again."); return false; }
      if (region.shape === "polygon") {
        if (region.points.length < 3) { say("A polygon needs at least three points."); return false; }
        if (region.points.length > maxPoints) region.points = thin(region.points, maxPoints);
        if (selfCrossing(region.points)) { say("The outline crosses itself; draw it without crossings."); return false; }
      }
      st.history.push(st.region);
      st.region = region;
      st.draft = [];
      publish();
      say(why || "Region marked. H selects a handle to adjust it; U undoes.");
      return true;
    }
    function undo() {
      if (st.draft.length) { st.draft.pop(); draw(); say("Point removed."); return; }
      if (!st.history.length) { say("Nothing to undo."); return; }
      st.region = st.history.pop();
      st.handle = -1;
      publish();
      say(st.region ? "Undone." : "Undone: no region marked.");
    }
    function clear() {
      if (!st.region && !st.draft.length) return;
      if (st.region) st.history.push(st.region);
      st.region = null; st.draft = []; st.handle = -1;
      publish();
      say("Region cleared.");
    }
    function publish() {
      input.value = st.region ? JSON.stringify(st.region) : "";
      input.dispatchEvent(new Event("input", { bubbles: true }));
      box.dataset.hasRegion = st.region ? "1" : "0";
      draw();
    }
    function place(p) {
      if (st.shape === "polygon") {
        if (st.draft.length >= maxPoints) { say(`At most ${maxPoints} points.`); return; }
        st.draft.push([round(p[0]), round(p[1])]);
        say(`Vertex ${st.draft.length} placed. Enter closes the polygon.`);
        draw();
        return;
      }
      if (!st.draft.length) {
        st.draft = [p.slice()];
        say(st.shape === "box" ? "First corner placed; now the opposite corner." : "Centre placed; now the edge.");
        draw();
        return;
      }
      const first = st.draft[0];
      commit(st.shape === "box" ? makeBox(first, p) : makeEllipse(first, p));
    }

    /* ---------------------------------------------------------------- drawing */
    function toPx(p) { return [p[0] * canvas.width, p[1] * canvas.height]; }
    function fromEvent(e) {
      const r = canvas.getBoundingClientRect();
      return [clamp((e.clientX - r.left) / r.width), clamp((e.clientY - r.top) / r.height)];
    }
    function path(region) {
      ctx.beginPath();
      if (region.shape === "box") {
        const [x0, y0] = toPx([region.x0, region.y0]), [x1, y1] = toPx([region.x1, region.y1]);
        ctx.rect(x0, y0, x1 - x0, y1 - y0);
      } else if (region.shape === "ellipse") {
        const [cx, cy] = toPx([region.cx, region.cy]);
        ctx.ellipse(cx, cy, region.rx * canvas.width, region.ry * canvas.height, 0, 0, 2 * Math.PI);
      } else {
        region.points.forEach((p, i) => { const [x, y] = toPx(p); if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y); });
        ctx.closePath();
      }
    }
    function draw() {
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      if (img.complete && img.naturalWidth) ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
      ctx.lineWidth = 2;
      if (st.region) {
        ctx.strokeStyle = "#ffd400";
        ctx.fillStyle = "rgba(255, 212, 0, 0.12)";
        path(st.region); ctx.fill(); ctx.stroke();
        handlesOf(st.region).forEach((h, i) => {
          const [x, y] = toPx(h);
          ctx.fillStyle = i === st.handle ? "#ff4d4d" : "#ffd400";
          ctx.fillRect(x - 4, y - 4, 8, 8);
        });
      }
      const pts = st.freehand || st.draft;
      if (pts.length) {
        ctx.strokeStyle = "#5ad1ff";
        ctx.setLineDash([5, 4]);
        ctx.beginPath();
        if (st.shape === "polygon" || st.freehand) {
          [...pts, st.freehand ? pts[pts.length - 1] : st.cursor].forEach((p, i) => {
            const [x, y] = toPx(p); if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
          });
        } else {
          const preview = st.shape === "box" ? makeBox(pts[0], st.cursor) : makeEllipse(pts[0], st.cursor);
          if (preview) path(preview);
        }
        ctx.stroke();
        ctx.setLineDash([]);
      }
      if (document.activeElement === canvas) {
        const [x, y] = toPx(st.cursor);
        ctx.strokeStyle = "#ffffff";
        ctx.beginPath();
        ctx.moveTo(x - 8, y); ctx.lineTo(x + 8, y); ctx.moveTo(x, y - 8); ctx.lineTo(x, y + 8);
        ctx.stroke();
      }
    }
    function resize() {
      const width = Math.max(160, Math.round(box.clientWidth || 320));
      const ratio = img.naturalWidth ? img.naturalHeight / img.naturalWidth : 1;
      canvas.width = width;
      canvas.height = Math.round(width * ratio);
      draw();
    }
    img.addEventListener("load", resize);
    img.src = box.dataset.imageUrl;
    // The trial page swaps its answer form when the rater moves on: a replaced canvas lets go.
    const onResize = () => (canvas.isConnected ? resize() : window.removeEventListener("resize", onResize));
    window.addEventListener("resize", onResize);

    /* ---------------------------------------------------------------- mouse */
    function nearestHandle(p) {
      const hs = handlesOf(st.region);
      let best = -1, bestD = 12;
      hs.forEach((h, i) => {
        const d = Math.hypot((h[0] - p[0]) * canvas.width, (h[1] - p[1]) * canvas.height);
        if (d < bestD) { best = i; bestD = d; }
      });
      return best;
    }
    canvas.addEventListener("pointerdown", (e) => {
      canvas.focus();
      canvas.setPointerCapture(e.pointerId);
      const p = fromEvent(e);
      st.cursor = p;
      const h = st.region ? nearestHandle(p) : -1;
      if (h >= 0) { st.drag = { handle: h, start: st.region }; st.handle = h; return; }
      if (st.shape === "polygon") { st.freehand = [p]; return; }
      st.drag = { from: p };
    });
    canvas.addEventListener("pointermove", (e) => {
      const p = fromEvent(e);
      st.cursor = p;
      if (st.freehand) {
        const last = st.freehand[st.freehand.length - 1];
        if (Math.hypot(p[0] - last[0], p[1] - last[1]) > 0.01) st.freehand.push([round(p[0]), round(p[1])]);
      } else if (st.drag && st.drag.handle !== undefined) {
        const moved = moveHandle(st.drag.start, st.drag.handle, p);
        if (moved) st.region = moved;
      } else if (st.drag) {
        st.draft = [st.drag.from];
      }
      draw();
    });
    canvas.addEventListener("pointerup", (e) => {
      const p = fromEvent(e);
      if (st.freehand) {
        const pts = st.freehand;
        st.freehand = null;
        if (pts.length >= 3) commit({ shape: "polygon", points: thin(pts, maxPoints) });
        else draw();
      } else if (st.drag && st.drag.handle !== undefined) {
        const start = st.drag.start;
        const end = st.region;
        st.region = start;
        st.drag = null;
        if (end !== start) commit(end, "Region adjusted.");
      } else if (st.drag) {
        const from = st.drag.from;
        st.drag = null;
        st.draft = [];
        commit(st.shape === "box" ? makeBox(from, p) : makeEllipse(from, p));
      }
    });

    /* ---------------------------------------------------------------- keyboard */
    canvas.addEventListener("focus", draw);
    canvas.addEventListener("blur", draw);
    canvas.addEventListener("keydown", (e) => {
      const k = e.key;
      const step = e.shiftKey ? 0.05 : 0.01;
      const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
      let handled = true;
      if (moves[k]) {
        const [dx, dy] = moves[k];
        if (st.handle >= 0 && st.region) {
          const h = handlesOf(st.region)[st.handle];
          const moved = moveHandle(st.region, st.handle, [clamp(h[0] + dx), clamp(h[1] + dy)]);
          if (moved) commit(moved, "Handle moved.");
        } else {
          st.cursor = [clamp(st.cursor[0] + dx), clamp(st.cursor[1] + dy)];
          draw();
        }
      } else if (k === " ") {
        st.handle = -1;
        place(st.cursor);
      } else if (k === "Enter" && st.shape === "polygon" && st.draft.length) {
        commit({ shape: "polygon", points: st.draft.slice() });
      } else if (k === "Backspace") {
        if (st.draft.length) { st.draft.pop(); draw(); say("Point removed."); } else undo();
      } else if (k === "q" || k === "Q") {
        setShape(SHAPES[(SHAPES.indexOf(st.shape) + 1) % SHAPES.length]);
      } else if (k === "h" || k === "H") {
        const n = handlesOf(st.region).length;
        st.handle = n ? (st.handle + 1) % n : -1;
        say(n ? `Handle ${st.handle + 1} of ${n} selected: arrows move it, Escape ends.` : "Mark a region first.");
        draw();
      } else if (k === "u" || k === "U" || ((e.ctrlKey || e.metaKey) && (k === "z" || k === "Z"))) {
        undo();
      } else if (k === "Delete") {
        clear();
      } else if (k === "Escape") {
        if (st.draft.length || st.handle >= 0) { st.draft = []; st.handle = -1; draw(); say("Cancelled."); }
        else canvas.blur();
      } else if (k === "Enter" || k === "Tab") {
        handled = false; // Enter saves the answer (viewer), Tab moves on
      } else if (e.ctrlKey || e.metaKey || e.altKey) {
        handled = false;
      }
      if (handled) {
        e.preventDefault();
        e.stopPropagation(); // the viewer's hotkeys must not also act on these keys
      }
    });

    for (const b of toolButtons) b.addEventListener("click", () => { setShape(b.dataset.shape); canvas.focus(); });
    const undoButton = box.querySelector('[data-action="undo"]');
    if (undoButton) undoButton.addEventListener("click", undo);
    const clearButton = box.querySelector('[data-action="clear"]');
    if (clearButton) clearButton.addEventListener("click", clear);
    setShape(st.shape);
    publish();
    return canvas;
  }

  // Set up on load, and again each time the trial page swaps in the next trial's form.
  let canvases = [];
  function init() {
    canvases = Array.from(document.querySelectorAll(".localise")).map(setup);
  }
  init();
  document.addEventListener("radsal:trial", init);
  document.addEventListener("keydown", (e) => {
    if (!canvases.length) return;
    if (e.ctrlKey || e.metaKey || e.altKey || (e.key !== "r" && e.key !== "R")) return;
    const t = e.target;
    if (t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement) return;
    if (t instanceof HTMLInputElement && t.type === "text") return;
    if (canvases.includes(t)) return;
    e.preventDefault();
    canvases[0].focus();
  });
})();
