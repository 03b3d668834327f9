// HAADFViewer front end (anywidget ES module).
//
// The kernel sends the image and the overlay once as float32 buffers plus
// 256-entry RGBA lookup tables. Colouring happens here, in one loop per layer,
// into ImageData on offscreen canvases; every redraw (pan, zoom, probe move)
// only scales those canvases with drawImage. Pan and zoom never reach the
// kernel; the probe position does (throttled), and so does the render time.

const SEND_INTERVAL_MS = 40; // at most ~25 probe updates per second to the kernel
const MAX_ZOOM = 64;
const LABEL_PX = 11; // outline labels' font size, CSS px ...
const LABEL_MIN_PX = 8; // ... and the smallest it shrinks to on a canvas narrower than the label

function bytesOf(value) {
  // Binary traits arrive as DataView (ipywidgets); accept any buffer-like value.
  if (!value) return new Uint8Array(0);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
}

function floatsOf(value) {
  const b = bytesOf(value);
  const n = b.byteLength >> 2;
  // Float32Array needs 4-byte alignment; copy only in the rare unaligned case.
  if (b.byteOffset % 4 === 0) return new Float32Array(b.buffer, b.byteOffset, n);
  return new Float32Array(b.slice(0, n * 4).buffer);
}

function packedLut(value) {
  // 256 RGBA entries as Uint32 in platform byte order, matching ImageData's buffer.
  const lut = new Uint32Array(256);
  const src = bytesOf(value);
  if (src.byteLength >= 1024) new Uint8Array(lut.buffer).set(src.subarray(0, 1024));
  return lut;
}

// Map values to packed RGBA: NaN -> transparent, clamp outside [lo, hi].
function colorize(values, lut, lo, hi, out) {
  const k = hi > lo ? 255 / (hi - lo) : 0;
  const n = values.length;
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (v !== v) {
      out[i] = 0;
      continue;
    }
    const x = (v - lo) * k;
    out[i] = x <= 0 ? lut[0] : x >= 255 ? lut[255] : lut[(x + 0.5) | 0];
  }
}

function layerCanvas(values, rows, cols, lut, lo, hi) {
  const canvas = document.createElement("canvas");
  canvas.width = cols;
  canvas.height = rows;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(cols, rows);
  colorize(values, lut, lo, hi, new Uint32Array(img.data.buffer));
  ctx.putImageData(img, 0, 0);
  return canvas;
}

function fmt(v) {
  if (!isFinite(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(2) : String(+v.toPrecision(4));
}

// Footer text: the probe (omitted when it is hidden), then the pixel under the cursor.
// probe: [row, col] or null; cursor: {rc: [row, col], haadf, overlay?} or null.
export function readoutText({ probe, pixelSize, unit, cursor, overlayLabel }) {
  const parts = [];
  if (probe) {
    const [r, c] = probe;
    let text = `probe (${r}, ${c})`;
    if (unit !== "px") text += ` = (${fmt(r * pixelSize)}, ${fmt(c * pixelSize)}) ${unit}`;
    parts.push(text);
  }
  if (cursor) {
    const [r, c] = cursor.rc;
    parts.push(`cursor (${r}, ${c}) HAADF ${fmt(cursor.haadf)}`);
    const ov = cursor.overlay;
    if (ov !== undefined && ov === ov) parts.push(`${overlayLabel || "overlay"} ${fmt(ov)}`);
  }
  return parts.join(" · ");
}

// A round scale-bar length (1, 2 or 5 x 10^n) no longer than `target`, in the same unit.
export function niceLength(target) {
  if (!(target > 0) || !isFinite(target)) return 0;
  const p = Math.pow(10, Math.floor(Math.log10(target)));
  for (const m of [5, 2, 1]) if (m * p <= target * (1 + 1e-9)) return m * p;
  return p;
}

// The SI pixel box [r0, c0, r1, c1) (end exclusive) covered by a drag between two image points.
export function dragToSiBox(a, b, s, h, w) {
  const clamp = (v, n) => Math.min(n - 1, Math.max(0, v));
  const r0 = clamp(Math.floor(Math.min(a[0], b[0]) / s), h);
  const r1 = clamp(Math.floor(Math.max(a[0], b[0]) / s), h) + 1;
  const c0 = clamp(Math.floor(Math.min(a[1], b[1]) / s), w);
  const c1 = clamp(Math.floor(Math.max(a[1], b[1]) / s), w) + 1;
  return [r0, c0, r1, c1];
}

function el(tag, cls, parent) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (parent) parent.appendChild(node);
  return node;
}

function render({ model, el: host }) {
  const root = el("div", "pw-haadf", host);
  const title = el("div", "pw-haadf-title", root);
  const stage = el("div", "pw-haadf-stage", root);
  const canvas = el("canvas", "pw-haadf-canvas", stage);
  canvas.tabIndex = 0; // focusable, so arrow keys reach it
  // JupyterLab: Lumino resolves shortcuts from the focused element at document level,
  // so arrows/r would drive the notebook; these attributes opt the canvas out, and keep
  // the right-button pan from opening JupyterLab's context menu.
  canvas.setAttribute("data-lm-suppress-shortcuts", "true");
  canvas.setAttribute("data-jp-suppress-context-menu", "");
  canvas.setAttribute("role", "img");
  // the image's own intensity scale (separate from the overlay's colour bar)
  const ibar = el("div", "pw-haadf-intensity", root);
  const ibarLabel = el("span", "pw-haadf-intensity-label", ibar);
  const ibarMin = el("span", "pw-haadf-intensity-min", ibar);
  const ibarCanvas = el("canvas", "pw-haadf-intensity-ramp", ibar);
  const ibarMax = el("span", "pw-haadf-intensity-max", ibar);
  ibar.title = "Colour scale of the image; values outside it are drawn at its ends";
  ibarCanvas.width = 256;
  ibarCanvas.height = 1;
  const bar = el("div", "pw-haadf-colorbar", root);
  const barLabel = el("span", "pw-haadf-colorbar-label", bar);
  const barMin = el("span", "pw-haadf-colorbar-min", bar);
  const barCanvas = el("canvas", "pw-haadf-colorbar-ramp", bar);
  const barMax = el("span", "pw-haadf-colorbar-max", bar);
  barCanvas.width = 256;
  barCanvas.height = 1;
  const footer = el("div", "pw-haadf-footer", root);
  const readout = el("span", "pw-haadf-readout", footer);
  const buttons = el("span", "pw-haadf-footer-buttons", footer);
  const modeButton = el("button", "pw-haadf-mode", buttons);
  modeButton.textContent = "draw box";
  modeButton.title = "Left drag draws a region box (its spectrum is overlaid) instead of moving the probe";
  const reset = el("button", "pw-haadf-reset", buttons);
  reset.textContent = "reset view";
  reset.title = "Reset pan and zoom (key r)";
  const message = el("div", "pw-haadf-message", root);
  message.setAttribute("role", "alert");

  const ctx = canvas.getContext("2d");
  let base = null; // offscreen canvas, W x H, coloured HAADF
  let over = null; // offscreen canvas, w x h, coloured overlay
  let values = new Float32Array(0);
  let overlayValues = new Float32Array(0);
  let H = 0, W = 0, s = 1;
  let zoom = 1, ox = 0, oy = 0; // zoom >= 1 relative to fit; (ox, oy) = top-left in image px
  let cssW = 0, cssH = 0, fit = 1;
  let pos = model.get("position").slice();
  let hover = null; // [y, x] in image px
  let dirtyBase = true, dirtyOverlay = true, frame = 0;
  let drag = null; // {mode: "probe" | "pan" | "region", x, y, start?, end?}

  // --- geometry ------------------------------------------------------------
  function layout() {
    const size = model.get("size");
    [H, W] = model.get("image_shape");
    s = Math.max(1, model.get("scale"));
    if (!H || !W) {
      cssW = cssH = 0;
      canvas.width = canvas.height = 0;
      return;
    }
    fit = Math.min(size / W, size / H);
    cssW = Math.max(1, Math.round(W * fit));
    cssH = Math.max(1, Math.round(H * fit));
    const dpr = window.devicePixelRatio || 1;
    canvas.style.width = cssW + "px";
    canvas.style.height = cssH + "px";
    root.style.maxWidth = cssW + 10 + "px"; // captions wrap under the image, never widen it
    canvas.width = Math.round(cssW * dpr);
    canvas.height = Math.round(cssH * dpr);
    clampView();
  }

  function clampView() {
    zoom = Math.min(MAX_ZOOM, Math.max(1, zoom));
    ox = Math.min(Math.max(0, ox), W - W / zoom);
    oy = Math.min(Math.max(0, oy), H - H / zoom);
  }

  // device pixels per image pixel
  const pxScale = () => fit * zoom * (window.devicePixelRatio || 1);

  function eventToImage(ev) {
    const rect = canvas.getBoundingClientRect();
    const k = fit * zoom;
    return [oy + (ev.clientY - rect.top) / k, ox + (ev.clientX - rect.left) / k];
  }

  function imageToProbe([y, x]) {
    const h = Math.floor(H / s), w = Math.floor(W / s);
    const r = Math.min(h - 1, Math.max(0, Math.floor(y / s)));
    const c = Math.min(w - 1, Math.max(0, Math.floor(x / s)));
    return [r, c];
  }

  // --- drawing ---------------------------------------------------------------
  function rebuildBase() {
    const t0 = performance.now();
    values = floatsOf(model.get("image"));
    if (!H || !W || values.length < H * W) {
      base = null;
      return;
    }
    const lut = packedLut(model.get("lut"));
    base = layerCanvas(values, H, W, lut, model.get("vmin"), model.get("vmax"));
    rampInto(ibarCanvas, lut);
    ibarMin.textContent = fmt(model.get("vmin"));
    ibarMax.textContent = fmt(model.get("vmax"));
    draw();
    const ms = Math.round((performance.now() - t0) * 100) / 100;
    root.dataset.renderMs = String(ms); // readable by browser tests without a kernel
    model.set("render_ms", ms);
    model.save_changes();
  }

  function rebuildOverlay() {
    const [h, w] = model.get("overlay_shape");
    overlayValues = floatsOf(model.get("overlay"));
    const lut = packedLut(model.get("overlay_lut"));
    if (!h || !w || overlayValues.length < h * w) {
      over = null;
      bar.style.display = "none";
      return;
    }
    const [lo, hi] = model.get("overlay_range");
    over = layerCanvas(overlayValues, h, w, lut, lo, hi);
    rampInto(barCanvas, lut);
    barMin.textContent = fmt(lo);
    barMax.textContent = fmt(hi);
    barLabel.textContent = model.get("overlay_label");
    bar.style.display = "";
  }

  // colour bar: the LUT itself, stretched by CSS
  function rampInto(target, lut) {
    const bctx = target.getContext("2d");
    const ramp = bctx.createImageData(256, 1);
    const ramp32 = new Uint32Array(ramp.data.buffer);
    for (let i = 0; i < 256; i++) ramp32[i] = lut[i];
    bctx.putImageData(ramp, 0, 0);
  }

  function strokeColor(width, color) {
    ctx.lineWidth = width + 2;
    ctx.strokeStyle = "rgba(0,0,0,0.75)";
    ctx.stroke();
    ctx.lineWidth = width;
    ctx.strokeStyle = color;
    ctx.stroke();
  }

  // A box's label, bottom-left at (x, y); at `inside` (a y below the box's top edge) when
  // there is no room above. A label that would run off the right of the canvas moves left
  // to stay whole; only a canvas narrower than the label makes it smaller, then cut with "…".
  function labelAt(text, x, y, color, dpr, inside = y) {
    const pad = 2 * dpr, room = canvas.width - 2 * pad;
    let px = LABEL_PX, width;
    for (;; px--) {
      ctx.font = `${Math.round(px * dpr)}px sans-serif`;
      width = ctx.measureText(text).width;
      if (width <= room || px <= LABEL_MIN_PX) break;
    }
    if (width > room) {
      let cut = text;
      while (cut.length > 1 && ctx.measureText(`${cut}…`).width > room) cut = cut.slice(0, -1);
      text = `${cut}…`;
      width = ctx.measureText(text).width;
    }
    // only labels that start on the canvas are moved (a box scrolled off by the zoom stays off)
    if (x >= 0 && x < canvas.width && x + width > canvas.width - pad) {
      x = Math.max(pad, canvas.width - pad - width);
    }
    if (y - Math.round(px * dpr) < 0) y = inside;
    ctx.textBaseline = "bottom";
    ctx.lineWidth = 3 * dpr;
    ctx.strokeStyle = "rgba(0,0,0,0.8)";
    ctx.strokeText(text, x, y);
    ctx.fillStyle = color;
    ctx.fillText(text, x, y);
  }

  // outlines from the `overlays` trait, group by group, plus the box being dragged
  function drawBoxes(k, sx, sy, dpr) {
    const groups = model.get("overlays") || {};
    const counts = {};
    for (const [name, boxes] of Object.entries(groups)) {
      counts[name] = boxes.length;
      for (const b of boxes) {
        const color = b.color || "#ffffff";
        const x0 = sx(b.x0), y0 = sy(b.y0), x1 = sx(b.x1), y1 = sy(b.y1);
        if (b.style === "marker") {
          const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
          const rad = Math.max(5 * dpr, (x1 - x0) / 2);
          ctx.setLineDash([]);
          ctx.beginPath();
          ctx.arc(cx, cy, rad, 0, 2 * Math.PI);
          strokeColor(2 * dpr, color);
          ctx.beginPath();
          ctx.arc(cx, cy, 1.5 * dpr, 0, 2 * Math.PI);
          ctx.fillStyle = color;
          ctx.fill();
          if (b.label) labelAt(b.label, cx + rad + 2 * dpr, cy - 2 * dpr, color, dpr,
                               cy + (LABEL_PX - 2) * dpr);
          continue;
        }
        ctx.setLineDash(b.style === "dashed" ? [4 * dpr, 3 * dpr] : []);
        ctx.beginPath();
        ctx.rect(x0, y0, x1 - x0, y1 - y0);
        strokeColor(1.5 * dpr, color);
        ctx.setLineDash([]);
        // above the box, or just inside its top edge when the box starts at the canvas top
        if (b.label) labelAt(b.label, x0 + 1 * dpr, y0 - 1 * dpr, color, dpr,
                             y0 + (LABEL_PX + 2) * dpr);
      }
    }
    root.dataset.boxes = JSON.stringify(counts); // readable by browser tests
    if (drag && drag.mode === "region" && drag.end) {
      const [r0, c0, r1, c1] = dragToSiBox(drag.start, drag.end, s, Math.floor(H / s), Math.floor(W / s));
      ctx.setLineDash([4 * dpr, 3 * dpr]);
      ctx.beginPath();
      ctx.rect(sx(c0 * s), sy(r0 * s), (c1 - c0) * s * k, (r1 - r0) * s * k);
      strokeColor(1.5 * dpr, "#ffffff");
      ctx.setLineDash([]);
    }
  }

  // a round length in the data's unit, bottom left, about a fifth of the visible width
  function drawScaleBar(k, dpr) {
    if (!model.get("show_scalebar")) return;
    const unit = model.get("pixel_unit");
    const perPx = model.get("pixel_size") / s; // size of one HAADF pixel
    if (!(perPx > 0)) return;
    const length = niceLength(0.2 * (W / zoom) * perPx);
    if (!length) return;
    const barPx = (length / perPx) * k;
    const pad = 6 * dpr, x = pad, y = canvas.height - pad;
    const text = `${fmt(length)} ${unit}`;
    ctx.font = `${Math.round(11 * dpr)}px sans-serif`;
    const tw = ctx.measureText(text).width;
    ctx.fillStyle = "rgba(0,0,0,0.55)";
    ctx.fillRect(x - 3 * dpr, y - 20 * dpr, Math.max(barPx, tw) + 6 * dpr, 23 * dpr);
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(x, y - 4 * dpr, barPx, 3 * dpr);
    ctx.textBaseline = "bottom";
    ctx.fillText(text, x, y - 6 * dpr);
    root.dataset.scalebar = text;
  }

  function strokeTwice(width) {
    // dark under light so the mark reads on any colour
    ctx.lineWidth = width + 2;
    ctx.strokeStyle = "rgba(0,0,0,0.75)";
    ctx.stroke();
    ctx.lineWidth = width;
    ctx.strokeStyle = "rgba(255,255,255,0.95)";
    ctx.stroke();
  }

  function draw() {
    const dpr = window.devicePixelRatio || 1;
    showReset();
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!base) return;
    const k = pxScale();
    ctx.imageSmoothingEnabled = false;
    ctx.setTransform(k, 0, 0, k, -ox * k, -oy * k);
    ctx.drawImage(base, 0, 0);
    if (over) {
      ctx.globalAlpha = model.get("overlay_opacity");
      ctx.drawImage(over, 0, 0, W, H);
      ctx.globalAlpha = 1;
    }
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    const sx = (x) => (x - ox) * k;
    const sy = (y) => (y - oy) * k;

    for (const [r, c] of model.get("highlight")) {
      ctx.beginPath();
      ctx.arc(sx((c + 0.5) * s), sy((r + 0.5) * s), Math.max(3 * dpr, 0.35 * s * k), 0, 2 * Math.PI);
      strokeTwice(1.5 * dpr);
    }
    drawBoxes(k, sx, sy, dpr);
    drawScaleBar(k, dpr);

    if (!model.get("show_probe")) return;
    const [r, c] = pos;
    const cy = sy((r + 0.5) * s), cx = sx((c + 0.5) * s);
    const win = model.get("window");
    if (win > 0) {
      // tile rows/cols [centre - win//2, centre - win//2 + win) in HAADF px,
      // centre = HAADF pixel at the SI pixel's middle (as in tiles.make_tiles)
      const top = r * s + Math.floor(s / 2) - Math.floor(win / 2);
      const left = c * s + Math.floor(s / 2) - Math.floor(win / 2);
      ctx.beginPath();
      ctx.rect(sx(left), sy(top), win * k, win * k);
      strokeTwice(1 * dpr);
    }
    // crosshair with a gap around the probed pixel
    const gap = Math.max(4 * dpr, 0.5 * s * k + 2 * dpr);
    ctx.beginPath();
    ctx.moveTo(0, cy); ctx.lineTo(cx - gap, cy);
    ctx.moveTo(cx + gap, cy); ctx.lineTo(canvas.width, cy);
    ctx.moveTo(cx, 0); ctx.lineTo(cx, cy - gap);
    ctx.moveTo(cx, cy + gap); ctx.lineTo(cx, canvas.height);
    strokeTwice(1 * dpr);
    if (s * k >= 6) {
      ctx.beginPath();
      ctx.rect(sx(c * s), sy(r * s), s * k, s * k);
      strokeTwice(1 * dpr);
    }
  }

  function schedule() {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      if (dirtyBase) {
        dirtyBase = false;
        rebuildBase();
      }
      if (dirtyOverlay) {
        dirtyOverlay = false;
        rebuildOverlay();
      }
      draw();
      updateText();
    });
  }

  function updateText() {
    title.textContent = model.get("title");
    title.style.display = model.get("title") ? "" : "none";
    ibar.style.display = model.get("show_colorbar") && base ? "" : "none";
    ibarLabel.textContent = model.get("image_label") || "image";
    const region = model.get("drag_mode") === "region";
    modeButton.setAttribute("aria-pressed", String(region));
    modeButton.style.display = model.get("region_tool") ? "" : "none";
    modeButton.classList.toggle("pw-haadf-mode-on", region);
    canvas.classList.toggle("pw-haadf-region-mode", region);
    const msg = model.get("message");
    message.textContent = msg;
    message.style.display = msg ? "" : "none";
    let cursor = null;
    if (hover) {
      const y = Math.floor(hover[0]), x = Math.floor(hover[1]);
      if (y >= 0 && y < H && x >= 0 && x < W) {
        cursor = { rc: [Math.floor(y / s), Math.floor(x / s)], haadf: values[y * W + x] };
        if (overlayValues.length && over) {
          const ow = model.get("overlay_shape")[1];
          cursor.overlay = overlayValues[Math.floor(y / s) * ow + Math.floor(x / s)];
        }
      }
    }
    readout.textContent = readoutText({
      probe: model.get("show_probe") ? pos : null,
      pixelSize: model.get("pixel_size"),
      unit: model.get("pixel_unit"),
      cursor,
      overlayLabel: model.get("overlay_label"),
    });
  }

  // --- probe position: local at once, kernel throttled ---------------------
  let lastSent = 0, sendTimer = 0;
  function flushPosition() {
    sendTimer = 0;
    lastSent = performance.now();
    const cur = model.get("position");
    if (cur[0] === pos[0] && cur[1] === pos[1]) return;
    model.set("position", pos.slice());
    model.save_changes();
  }
  function setProbe(rc) {
    if (rc[0] === pos[0] && rc[1] === pos[1]) return;
    pos = rc;
    draw();
    updateText();
    const wait = SEND_INTERVAL_MS - (performance.now() - lastSent);
    if (wait <= 0) flushPosition();
    else if (!sendTimer) sendTimer = setTimeout(flushPosition, wait);
  }

  // --- input -----------------------------------------------------------------
  function onPointerDown(ev) {
    if (!base) return;
    canvas.focus();
    ev.preventDefault();
    if (ev.button === 0 && (ev.ctrlKey || ev.altKey || ev.metaKey)) {
      // pin the spectrum under the cursor; the probe stays where it is
      model.send({ event: "pin", position: imageToProbe(eventToImage(ev)) });
      return;
    }
    const pan = ev.button === 1 || ev.button === 2 || (ev.button === 0 && ev.shiftKey);
    const region = !pan && model.get("drag_mode") === "region";
    drag = { mode: pan ? "pan" : region ? "region" : "probe", x: ev.clientX, y: ev.clientY };
    canvas.setPointerCapture(ev.pointerId);
    if (region) {
      drag.start = eventToImage(ev);
      drag.end = drag.start;
      draw();
    } else if (!pan) setProbe(imageToProbe(eventToImage(ev)));
  }
  function onPointerMove(ev) {
    if (!base) return;
    hover = eventToImage(ev);
    if (drag && drag.mode === "pan") {
      const k = fit * zoom;
      ox -= (ev.clientX - drag.x) / k;
      oy -= (ev.clientY - drag.y) / k;
      drag.x = ev.clientX;
      drag.y = ev.clientY;
      clampView();
      draw();
    } else if (drag && drag.mode === "region") {
      drag.end = hover;
      draw();
    } else if (drag) {
      setProbe(imageToProbe(hover));
    }
    updateText();
  }
  function onPointerUp(ev) {
    if (drag && drag.mode === "probe" && sendTimer) {
      clearTimeout(sendTimer);
      flushPosition();
    }
    if (drag && drag.mode === "region" && ev.type === "pointerup") {
      if (Math.hypot(ev.clientX - drag.x, ev.clientY - drag.y) < 4) {
        setProbe(imageToProbe(drag.start)); // a click, not a drag: it still moves the probe
      } else {
        const box = dragToSiBox(drag.start, drag.end, s, Math.floor(H / s), Math.floor(W / s));
        model.send({ event: "region", box });
      }
    }
    const wasRegion = drag && drag.mode === "region";
    drag = null;
    if (wasRegion) draw();
    if (canvas.hasPointerCapture(ev.pointerId)) canvas.releasePointerCapture(ev.pointerId);
  }
  function onLeave() {
    hover = null;
    updateText();
  }
  function zoomAt(factor, clientX, clientY) {
    const rect = canvas.getBoundingClientRect();
    const px = clientX - rect.left, py = clientY - rect.top;
    const before = [oy + py / (fit * zoom), ox + px / (fit * zoom)];
    zoom = Math.min(MAX_ZOOM, Math.max(1, zoom * factor));
    // keep the image point under the cursor fixed
    ox = before[1] - px / (fit * zoom);
    oy = before[0] - py / (fit * zoom);
    clampView();
    draw();
  }
  function onWheel(ev) {
    if (!base) return;
    ev.preventDefault();
    zoomAt(Math.exp(-ev.deltaY * 0.0015), ev.clientX, ev.clientY);
  }
  function resetView() {
    zoom = 1;
    ox = oy = 0;
    draw();
  }
  // the reset button only appears once the view is zoomed or panned
  function showReset() {
    reset.style.visibility = zoom > 1 ? "visible" : "hidden";
  }
  const STEPS = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
  function onKey(ev) {
    if (!base) return;
    const step = STEPS[ev.key];
    if (step) {
      const n = ev.shiftKey ? 5 : 1;
      const h = Math.floor(H / s), w = Math.floor(W / s);
      const r = Math.min(h - 1, Math.max(0, pos[0] + step[0] * n));
      const c = Math.min(w - 1, Math.max(0, pos[1] + step[1] * n));
      setProbe([r, c]);
    } else if (ev.key === "p") {
      model.send({ event: "pin", position: pos.slice() }); // pin the probe's spectrum
    } else if (ev.key === "r" || ev.key === "0") {
      resetView();
    } else if (ev.key === "+" || ev.key === "=" || ev.key === "-") {
      const rect = canvas.getBoundingClientRect();
      zoomAt(ev.key === "-" ? 1 / 1.5 : 1.5, rect.left + rect.width / 2, rect.top + rect.height / 2);
    } else {
      return;
    }
    ev.preventDefault(); // no page scrolling on arrows
  }
  const noMenu = (ev) => ev.preventDefault();

  canvas.addEventListener("pointerdown", onPointerDown);
  canvas.addEventListener("pointermove", onPointerMove);
  canvas.addEventListener("pointerup", onPointerUp);
  canvas.addEventListener("pointercancel", onPointerUp);
  canvas.addEventListener("pointerleave", onLeave);
  canvas.addEventListener("wheel", onWheel, { passive: false });
  canvas.addEventListener("keydown", onKey);
  canvas.addEventListener("contextmenu", noMenu);
  reset.addEventListener("click", resetView);
  modeButton.addEventListener("click", () => {
    model.set("drag_mode", model.get("drag_mode") === "region" ? "probe" : "region");
    model.save_changes();
    updateText();
  });

  // --- model changes -----------------------------------------------------------
  const handlers = {
    "change:image": () => { dirtyBase = true; schedule(); },
    "change:lut": () => { dirtyBase = true; schedule(); },
    "change:vmin": () => { dirtyBase = true; schedule(); },
    "change:vmax": () => { dirtyBase = true; schedule(); },
    "change:image_shape": () => { layout(); dirtyBase = dirtyOverlay = true; schedule(); },
    "change:scale": () => { layout(); dirtyBase = true; schedule(); },
    "change:size": () => { layout(); schedule(); },
    "change:overlay": () => { dirtyOverlay = true; schedule(); },
    "change:overlay_shape": () => { dirtyOverlay = true; schedule(); },
    "change:overlay_lut": () => { dirtyOverlay = true; schedule(); },
    "change:overlay_range": () => { dirtyOverlay = true; schedule(); },
    "change:overlay_label": () => { dirtyOverlay = true; schedule(); },
    "change:overlay_opacity": schedule,
    "change:position": () => { pos = model.get("position").slice(); schedule(); },
    "change:window": schedule,
    "change:show_probe": schedule,
    "change:highlight": schedule,
    "change:overlays": schedule,
    "change:drag_mode": schedule,
    "change:region_tool": schedule,
    "change:show_scalebar": schedule,
    "change:show_colorbar": schedule,
    "change:image_label": schedule,
    "change:title": schedule,
    "change:message": schedule,
    "change:pixel_size": schedule,
    "change:pixel_unit": schedule,
  };
  for (const [name, fn] of Object.entries(handlers)) model.on(name, fn);

  layout();
  schedule();

  return () => {
    for (const [name, fn] of Object.entries(handlers)) model.off(name, fn);
    if (frame) cancelAnimationFrame(frame);
    if (sendTimer) clearTimeout(sendTimer);
  };
}

export default { render };
