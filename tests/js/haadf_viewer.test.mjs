// HAADF viewer front end: footer text, scale bar, drag boxes, and the view driven
// through a fake model and DOM (colouring, tile outline, keyboard, region drag, cleanup).
import assert from "node:assert/strict";
import test from "node:test";

import viewer, {
  dragToSiBox, niceLength, readoutText,
} from "../../plasmonwidgets/widgets/static/haadf_viewer.js";
import { FakeElement, FakeModel, installBrowser } from "./fakes.mjs";

test("footer hides the probe when it is not shown", () => {
  const cursor = { rc: [1, 2], haadf: 5.5 };
  assert.equal(readoutText({ probe: null, pixelSize: 2, unit: "nm", cursor: null }), "");
  assert.equal(readoutText({ probe: null, pixelSize: 2, unit: "nm", cursor }), "cursor (1, 2) HAADF 5.5");
  assert.equal(readoutText({ probe: [3, 4], pixelSize: 2, unit: "nm", cursor: null }),
    "probe (3, 4) = (6, 8) nm");
});

test("footer: pixel units add no physical position; NaN overlay values are left out", () => {
  assert.equal(readoutText({ probe: [3, 4], pixelSize: 1, unit: "px", cursor: null }), "probe (3, 4)");
  const withOverlay = { rc: [0, 0], haadf: 1e-5, overlay: 123456 };
  assert.equal(readoutText({ probe: null, unit: "px", cursor: withOverlay, overlayLabel: "error" }),
    "cursor (0, 0) HAADF 1.00e-5 · error 1.23e+5");
  assert.equal(readoutText({ probe: null, unit: "px", cursor: { ...withOverlay, overlay: NaN } }),
    "cursor (0, 0) HAADF 1.00e-5");
});

test("scale bar length is 1, 2 or 5 x 10^n and never longer than asked", () => {
  assert.equal(niceLength(37.3), 20);
  assert.equal(niceLength(0.9), 0.5);
  assert.equal(niceLength(10), 10);
  assert.equal(niceLength(0), 0);
  assert.equal(niceLength(-3), 0);
  assert.equal(niceLength(Infinity), 0);
});

test("a drag covers the SI pixels under both ends, clamped to the scan", () => {
  assert.deepEqual(dragToSiBox([5, 3], [1, 9], 2, 10, 10), [0, 1, 3, 5]);
  assert.deepEqual(dragToSiBox([-4, -4], [99, 99], 2, 10, 10), [0, 0, 10, 10]);
});

// --- the view -----------------------------------------------------------------------
// A 12 x 15 scan, scale 2 (HAADF 24 x 30 px), shown at 60 px: 2 screen px per HAADF px.
const H = 12, W = 15, S = 2;

function greyLut() {
  const lut = new Uint8Array(1024);
  for (let i = 0; i < 256; i++) lut.set([i, i, i, 255], 4 * i);
  return new DataView(lut.buffer);
}

function viewerModel(overrides = {}) {
  const image = new Float32Array(H * S * W * S).map((_, i) => (i % 7) / 6);
  return new FakeModel({
    image: new DataView(image.buffer), image_shape: [H * S, W * S], scale: S, lut: greyLut(),
    vmin: 0, vmax: 1, pixel_size: 2.5, pixel_unit: "nm", position: [3, 4], window: 8,
    show_probe: true, highlight: [], overlay: new DataView(new ArrayBuffer(0)), overlay_shape: [0, 0],
    overlay_lut: greyLut(), overlay_opacity: 0.6, overlay_range: [0, 1], overlay_label: "",
    overlays: {}, drag_mode: "probe", region_tool: false, show_scalebar: true, show_colorbar: true,
    image_label: "", title: "", size: 60, message: "", render_ms: -1,
    ...overrides,
  });
}

function show(model) {
  const browser = installBrowser();
  const host = new FakeElement("div");
  const cleanup = viewer.render({ model, el: host });
  browser.flushFrames();
  const canvas = host.find("pw-haadf-canvas");
  return { host, canvas, cleanup, browser, root: host.find("pw-haadf") };
}

test("the image is coloured once: NaN transparent, values clamped to [vmin, vmax]", () => {
  const values = new Float32Array(H * S * W * S).fill(0.5);
  values.set([NaN, -3, 7, 0.25]);
  const model = viewerModel({ image: new DataView(values.buffer) });
  const { browser, root, cleanup } = show(model);
  // the offscreen canvas the image is coloured into (never attached to the page)
  const offscreen = browser.created.filter(
    (n) => n.tagName === "CANVAS" && n.width === W * S && n.height === H * S);
  assert.equal(offscreen.length, 1);
  const puts = offscreen[0].context.calls.filter(([name]) => name === "putImageData");
  assert.equal(puts.length, 1);
  const rgba = Array.from(puts[0][1][0].data.subarray(0, 16));
  assert.deepEqual(rgba, [/* NaN */ 0, 0, 0, 0, /* -3 */ 0, 0, 0, 255, /* 7 */ 255, 255, 255, 255,
    /* 0.25 -> entry 64 */ 64, 64, 64, 255]);
  // the render time goes to the kernel once, and onto the page for browser tests
  assert.equal(model.saves, 1);
  assert.ok(model.get("render_ms") >= 0);
  assert.equal(root.dataset.renderMs, String(model.get("render_ms")));
  cleanup();
});

test("scale bar: a round length near a fifth of the visible width, in the data's unit", () => {
  // one HAADF px is 2.5 / 2 = 1.25 nm; a fifth of 30 px is 7.5 nm -> 5 nm
  const { root, cleanup } = show(viewerModel());
  assert.equal(root.dataset.scalebar, "5 nm");
  cleanup();
  const { root: hidden, cleanup: done } = show(viewerModel({ show_scalebar: false }));
  assert.equal(hidden.dataset.scalebar, undefined);
  done();
});

test("the tile outline sits where tiles.make_tiles cuts the tile", () => {
  // probe (3, 4), window 8: rows from 3*2 + 2//2 - 8//2 = 3, cols from 4*2 + 1 - 4 = 5, in HAADF px;
  // on screen x2: x 10, y 6, 16 x 16
  const { canvas, cleanup } = show(viewerModel());
  const rects = canvas.context.calls.filter(([name]) => name === "rect").map(([, args]) => args);
  assert.deepEqual(rects.at(-1), [10, 6, 16, 16]);
  cleanup();
});

test("outline groups are drawn and counted for browser tests", () => {
  const overlays = {
    tiles: [{ x0: 0, y0: 0, x1: 8, y1: 8, color: "#ff0000", label: "A" }, { x0: 8, y0: 8, x1: 16, y1: 16 }],
    pins: [{ x0: 4, y0: 4, x1: 6, y1: 6, style: "marker" }],
  };
  const { root, canvas, cleanup } = show(viewerModel({ overlays, show_probe: false }));
  assert.deepEqual(JSON.parse(root.dataset.boxes), { tiles: 2, pins: 1 });
  const rects = canvas.context.calls.filter(([name]) => name === "rect").map(([, args]) => args);
  assert.deepEqual(rects.slice(-2), [[0, 0, 16, 16], [16, 16, 16, 16]]);
  assert.ok(canvas.context.calls.some(([name, args]) => name === "fillText" && args[0] === "A"));
  cleanup();
});

// the fake context measures 6 px per character; the canvas is 60 px wide (2 px per HAADF px)
function labelsDrawn(overlays) {
  const { canvas, cleanup } = show(viewerModel({ overlays, show_probe: false, show_scalebar: false }));
  const labels = canvas.context.calls.filter(([name]) => name === "fillText").map(([, args]) => args);
  cleanup();
  return labels;
}

test("outline labels stay whole on the canvas: moved left at the edge, inside at the top", () => {
  // a box at the right edge (screen x 48..60): "AB" (12 px) from x 49 would run past 58
  const [[text, x]] = labelsDrawn({ g: [{ x0: 24, y0: 10, x1: 30, y1: 16, label: "AB" }] });
  assert.deepEqual([text, x], ["AB", 60 - 2 - 12]);
  // a box at the top: no room above, so just inside its top edge
  const [[, , y]] = labelsDrawn({ g: [{ x0: 4, y0: 0, x1: 16, y1: 16, label: "A" }] });
  assert.ok(y > 11 && y < 32, `label baseline at ${y}`);
});

test("a label longer than the whole canvas is cut with an ellipsis, and only then", () => {
  const [[text, x]] = labelsDrawn({ g: [{ x0: 0, y0: 10, x1: 30, y1: 24, label: "training half" }] });
  assert.equal(text, "training…"); // 9 characters: 54 px of the 56 available
  assert.ok(x >= 0 && x + 6 * text.length <= 58, `label from ${x}`);
  const [[whole]] = labelsDrawn({ g: [{ x0: 0, y0: 10, x1: 30, y1: 24, label: "train" }] });
  assert.equal(whole, "train");
});

test("arrow keys move the probe inside the scan; the kernel hears at most every 40 ms", () => {
  const model = viewerModel();
  const { canvas, host, cleanup } = show(model);
  const readout = host.find("pw-haadf-readout");
  assert.ok(canvas.dispatch("keydown", { key: "ArrowDown" }).defaultPrevented);
  assert.deepEqual(model.get("position"), [4, 4]); // the first move is sent at once
  for (let i = 0; i < 3; i++) canvas.dispatch("keydown", { key: "ArrowRight", shiftKey: true });
  assert.match(readout.textContent, /^probe \(4, 14\) = /); // 4 + 15 clamped to the last column
  assert.deepEqual(model.get("position"), [4, 4]); // the rest waits for the throttle
  assert.equal(canvas.dispatch("keydown", { key: "x" }).defaultPrevented, false);
  canvas.dispatch("keydown", { key: "p" });
  assert.deepEqual(model.sent.at(-1).content, { event: "pin", position: [4, 14] });
  cleanup();
});

test("region mode: a drag sends the SI box under it; ctrl+click pins without moving the probe", () => {
  const model = viewerModel({ drag_mode: "region", region_tool: true });
  const { canvas, cleanup } = show(model);
  // 2 screen px per image px: client (x 4, y 2) is image (row 1, col 2), (20, 30) is (15, 10)
  canvas.dispatch("pointerdown", { button: 0, pointerId: 1, clientX: 4, clientY: 2 });
  canvas.dispatch("pointermove", { pointerId: 1, clientX: 20, clientY: 30 });
  canvas.dispatch("pointerup", { pointerId: 1, clientX: 20, clientY: 30 });
  assert.deepEqual(model.sent.map((m) => m.content), [{ event: "region", box: [0, 1, 8, 6] }]);
  assert.deepEqual(model.get("position"), [3, 4]);
  canvas.dispatch("pointerdown", { button: 0, ctrlKey: true, pointerId: 2, clientX: 9, clientY: 13 });
  assert.deepEqual(model.sent.at(-1).content, { event: "pin", position: [3, 2] });
  assert.deepEqual(model.get("position"), [3, 4]);
  cleanup();
});

test("zoom shows the reset button; r resets; cleanup detaches every model handler", () => {
  const model = viewerModel();
  const { canvas, host, cleanup } = show(model);
  const reset = host.find("pw-haadf-reset");
  assert.equal(reset.style.visibility, "hidden");
  canvas.dispatch("wheel", { deltaY: -500, clientX: 30, clientY: 24 });
  assert.equal(reset.style.visibility, "visible");
  canvas.dispatch("keydown", { key: "r" });
  assert.equal(reset.style.visibility, "hidden");
  assert.ok(model.listenerCount() > 0);
  cleanup();
  assert.equal(model.listenerCount(), 0);
});
