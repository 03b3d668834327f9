// The page's decoder: each step of the program on small hand-checked cases, and the
// widget half driven with fake widget models (sliders in, the mark's values out).
// Agreement with the real models' decode() is checked by browser_decoder_parity.test.mjs,
// which tests/widgets/test_browser_decoder.py feeds with programs exported in Python.
import assert from "node:assert/strict";
import test from "node:test";

import decoder, { runProgram } from "../../plasmonwidgets/widgets/static/browser_decoder.js";
import { FakeModel } from "./fakes.mjs";

/** A weight buffer from named arrays, and the [offset, length] reference of each. */
function pack(named) {
  const refs = {}, all = [];
  for (const [name, values] of Object.entries(named)) {
    refs[name] = [all.length, values.length];
    all.push(...values);
  }
  return { refs, weights: Float32Array.from(all) };
}

function run(ops, weights, z) {
  const [y, shape] = runProgram(ops, weights, z);
  return { y: Array.from(y), shape };
}

test("linear: W z + b, W stored row-major (out, in)", () => {
  const { refs, weights } = pack({ w: [1, 2, 3, 4, 5, 6], b: [0.5, 0, -1] });
  const ops = [{ op: "linear", in: 2, out: 3, w: refs.w, b: refs.b }];
  assert.deepEqual(run(ops, weights, [1, -1]), { y: [-0.5, -1, -2], shape: [3] });
});

test("conv1d: zero padding and dilation as in torch's Conv1d", () => {
  const { refs, weights } = pack({ w: [1, 2, 3], b: [0] });
  const x = [1, 2, 3, 4, 5];
  const conv = (pad, dilation) =>
    [{ op: "reshape", shape: [1, 5] },
      { op: "conv", ndim: 1, cout: 1, k: 3, pad, dilation, w: refs.w, b: refs.b }];
  assert.deepEqual(run(conv(1, 1), weights, x), { y: [8, 14, 20, 26, 14], shape: [1, 5] });
  assert.deepEqual(run(conv(2, 2), weights, x), { y: [11, 16, 22, 10, 13], shape: [1, 5] });
});

test("conv2d: two input channels summed, bias per output channel", () => {
  // channel 0 is 1..9, channel 1 all ones; kernel all ones on channel 0, zero on channel 1
  const { refs, weights } = pack({ w: [...Array(9).fill(1), ...Array(9).fill(0)], b: [0.5] });
  const x = [1, 2, 3, 4, 5, 6, 7, 8, 9, ...Array(9).fill(1)];
  const ops = [{ op: "reshape", shape: [2, 3, 3] },
    { op: "conv", ndim: 2, cout: 1, k: 3, pad: 1, dilation: 1, w: refs.w, b: refs.b }];
  // each output is the 3 x 3 box sum around it (zeros outside) plus the bias
  assert.deepEqual(run(ops, weights, x),
    { y: [12.5, 21.5, 16.5, 27.5, 45.5, 33.5, 24.5, 39.5, 28.5], shape: [1, 3, 3] });
});

test("leaky, per-channel affine (batch norm), squeeze and denormalize", () => {
  const { refs, weights } = pack({ scale: [10, 100], shift: [1, 2], offset: [100, 200, 300, 400] });
  assert.deepEqual(run([{ op: "leaky", slope: 0.25 }], weights, [-2, 3]).y, [-0.5, 3]);
  const ops = [{ op: "reshape", shape: [2, 2] }, { op: "affine", scale: refs.scale, shift: refs.shift }];
  assert.deepEqual(run(ops, weights, [1, 2, 3, 4]), { y: [11, 21, 302, 402], shape: [2, 2] });
  const out = [{ op: "reshape", shape: [1, 4] }, { op: "squeeze" },
    { op: "denormalize", scale: 2, offset: refs.offset }];
  assert.deepEqual(run(out, weights, [1, 2, 3, 4]), { y: [102, 204, 306, 408], shape: [4] });
});

test("upsample2 repeats each pixel into a 2 x 2 block", () => {
  const ops = [{ op: "reshape", shape: [1, 2, 2] }, { op: "upsample2" }];
  assert.deepEqual(run(ops, new Float32Array(0), [1, 2, 3, 4]),
    { y: [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4], shape: [1, 4, 4] });
});

test("pyramid: stages run one after another and their outputs are summed", () => {
  const half = { op: "leaky", slope: 0.5 };
  const ops = [{ op: "pyramid", stages: [[half], [half]] }];
  assert.deepEqual(run(ops, new Float32Array(0), [-4, 2]), { y: [-3, 4], shape: [2] }); // [-2, 2] + [-1, 2]
});

test("rotation_average makes the lower-right square invariant under 90 degree turns", () => {
  const x = [1, 2, 3, 4, 5, 6, 7, 8, 9];
  const ops = [{ op: "reshape", shape: [3, 3] }, { op: "rotation_average", start: 1 }];
  // rows/cols 1.. form the square [[5, 6], [8, 9]]: all four become their mean; the rest stays
  assert.deepEqual(run(ops, new Float32Array(0), x).y, [1, 2, 3, 4, 7, 7, 7, 7, 7]);
  const whole = [{ op: "reshape", shape: [3, 3] }, { op: "rotation_average", start: 0 }];
  const full = run(whole, new Float32Array(0), x).y;
  const at = (r, c) => full[r * 3 + c];
  for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) assert.equal(at(r, c), at(c, 2 - r));
});

test("an unknown step is refused by name", () => {
  assert.throws(() => runProgram([{ op: "softmax" }], new Float32Array(0), [1]),
    /unknown decoder step "softmax"/);
});

// --- the widget ------------------------------------------------------------------------
// 2 latent values -> 4 outputs: y = W z + b
const LINEAR = pack({ w: [1, 0, 0, 1, 1, 1, 2, -1], b: [0, 0, 0, 10] });
const LINEAR_OPS = [{ op: "linear", in: 2, out: 4, w: LINEAR.refs.w, b: LINEAR.refs.b }];
const expected = ([a, b]) => [a, b, a + b, 2 * a - b + 10];

async function bound({ ops = LINEAR_OPS, attribute = "y" } = {}) {
  const sliders = [new FakeModel({ value: 0.5 }), new FakeModel({ value: -1 })];
  const mark = new FakeModel({ [attribute]: null });
  const models = { s0: sliders[0], s1: sliders[1], mark };
  const { weights } = LINEAR;
  const model = new FakeModel({
    ops, weights: new DataView(weights.buffer), attribute,
    sliders: ["IPY_MODEL_s0", "IPY_MODEL_s1"], target: "IPY_MODEL_mark",
  });
  model.widget_manager = { get_model: async (id) => models[id] };
  const cleanup = await decoder.initialize({ model });
  return { model, models, sliders, mark, cleanup };
}

test("a slider move redraws the mark; an older value from the kernel is replaced at once", async () => {
  const { model, sliders, mark, cleanup } = await bound();
  assert.deepEqual(model.sent.map((m) => m.content), [{ type: "ready" }]);
  sliders[1].set("value", 2.0); // the hand moves: the page draws, in slider order
  const drawn = Array.from(mark.get("y"));
  assert.deepEqual(drawn, expected([0.5, 2.0]));
  mark.set("y", new Float32Array(4).fill(7)); // the kernel's value for an earlier point
  assert.deepEqual(Array.from(mark.get("y")), drawn);
  cleanup();
});

test("a 2-D result goes to a heat map's colour as rows", async () => {
  const ops = [...LINEAR_OPS, { op: "reshape", shape: [2, 2] }];
  const { sliders, mark, cleanup } = await bound({ ops, attribute: "color" });
  sliders[0].set("value", 1.0);
  assert.deepEqual(mark.get("color").map((row) => Array.from(row)), [[1, -1], [0, 13]]);
  cleanup();
});

test("new weights from the kernel are used at once", async () => {
  const { model, sliders, mark, cleanup } = await bound();
  sliders[0].set("value", 1.0);
  const doubled = LINEAR.weights.map((v) => 2 * v);
  model.set("weights", new DataView(doubled.buffer));
  assert.deepEqual(Array.from(mark.get("y")), expected([1, -1]).map((v) => 2 * v));
  cleanup();
});

test("a program the page cannot run is reported once, and the kernel takes over", async () => {
  const { model, sliders, mark, cleanup } = await bound({ ops: [{ op: "softmax" }] });
  sliders[0].set("value", 1.0);
  sliders[0].set("value", 2.0);
  assert.deepEqual(model.sent.map((m) => m.content),
    [{ type: "ready" }, { type: "error", message: 'unknown decoder step "softmax"' }]);
  mark.set("y", [1, 2, 3]); // the kernel's drawing now stays
  assert.deepEqual(mark.get("y"), [1, 2, 3]);
  cleanup();
});

test("rebinding drops the old sliders; cleanup detaches from sliders and mark", async () => {
  const { model, models, sliders, mark, cleanup } = await bound();
  const other = new FakeModel({ value: 3 });
  models.s0 = other; // the kernel swapped the first slider for a new widget
  model.set("sliders", ["IPY_MODEL_s0", "IPY_MODEL_s1"]);
  await new Promise((resolve) => setImmediate(resolve)); // let the async rebind finish
  assert.equal(sliders[0].listenerCount(), 0);
  assert.equal(model.sent.filter((m) => m.content.type === "ready").length, 2);
  other.set("value", 0);
  assert.deepEqual(Array.from(mark.get("y")), expected([0, -1]));
  cleanup();
  for (const m of [other, sliders[1], mark]) assert.equal(m.listenerCount(), 0);
});
