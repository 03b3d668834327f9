// BrowserDecoder: decode the latent point in the page, on every slider move.
//
// The kernel exports the model's decoder as a small program (plasmonwidgets/nn/export.py:
// a list of steps and one float32 weight buffer). This module runs it on the values of
// the linked latent sliders and writes the result straight into the linked bqplot mark
// (a Lines' `y` or a HeatMap's `color`), so the decoded curve follows the hand without a
// round trip to the kernel. The kernel still decodes the same point for everything else
// and sends its result a few times a second; a value from the kernel is replaced at once
// by the page's own, which is never older than the sliders.

// --- the interpreter (pure; node imports it for the parity tests) --------------------
function slice(weights, ref) {
  return weights.subarray(ref[0], ref[0] + ref[1]);
}

function conv1d(x, [cin, n], op, weights) {
  const w = slice(weights, op.w), b = slice(weights, op.b);
  const { cout, k, pad, dilation: d } = op;
  const out = new Float32Array(cout * n);
  for (let co = 0; co < cout; co++) {
    const o = out.subarray(co * n, (co + 1) * n);
    o.fill(b[co]);
    for (let ci = 0; ci < cin; ci++) {
      const xi = x.subarray(ci * n, (ci + 1) * n);
      for (let t = 0; t < k; t++) {
        const wv = w[(co * cin + ci) * k + t], shift = t * d - pad;
        const lo = Math.max(0, -shift), hi = Math.min(n, n - shift);
        for (let i = lo; i < hi; i++) o[i] += wv * xi[i + shift];
      }
    }
  }
  return [out, [cout, n]];
}

function conv2d(x, [cin, h, wd], op, weights) {
  const w = slice(weights, op.w), b = slice(weights, op.b);
  const { cout, k, pad, dilation: d } = op;
  const plane = h * wd, out = new Float32Array(cout * plane);
  for (let co = 0; co < cout; co++) {
    const o = out.subarray(co * plane, (co + 1) * plane);
    o.fill(b[co]);
    for (let ci = 0; ci < cin; ci++) {
      const xi = x.subarray(ci * plane, (ci + 1) * plane);
      for (let ty = 0; ty < k; ty++) {
        const sy = ty * d - pad, ylo = Math.max(0, -sy), yhi = Math.min(h, h - sy);
        for (let tx = 0; tx < k; tx++) {
          const wv = w[((co * cin + ci) * k + ty) * k + tx], sx = tx * d - pad;
          const xlo = Math.max(0, -sx), xhi = Math.min(wd, wd - sx);
          for (let r = ylo; r < yhi; r++) {
            const orow = r * wd, irow = (r + sy) * wd + sx;
            for (let c = xlo; c < xhi; c++) o[orow + c] += wv * xi[irow + c];
          }
        }
      }
    }
  }
  return [out, [cout, h, wd]];
}

function step(x, shape, op, weights) {
  switch (op.op) {
    case "linear": {
      const w = slice(weights, op.w), b = slice(weights, op.b), out = new Float32Array(op.out);
      for (let i = 0; i < op.out; i++) {
        let s = b[i];
        const row = i * op.in;
        for (let j = 0; j < op.in; j++) s += w[row + j] * x[j];
        out[i] = s;
      }
      return [out, [op.out]];
    }
    case "reshape":
      return [x, op.shape.slice()];
    case "conv":
      return op.ndim === 1 ? conv1d(x, shape, op, weights) : conv2d(x, shape, op, weights);
    case "leaky": {
      const out = new Float32Array(x.length);
      for (let i = 0; i < x.length; i++) out[i] = x[i] >= 0 ? x[i] : op.slope * x[i];
      return [out, shape];
    }
    case "affine": {
      const scale = slice(weights, op.scale), shift = slice(weights, op.shift);
      const per = x.length / shape[0], out = new Float32Array(x.length);
      for (let c = 0; c < shape[0]; c++)
        for (let i = c * per; i < (c + 1) * per; i++) out[i] = x[i] * scale[c] + shift[c];
      return [out, shape];
    }
    case "upsample2": {
      const [c, h, wd] = shape, out = new Float32Array(c * 4 * h * wd);
      for (let ch = 0; ch < c; ch++)
        for (let r = 0; r < 2 * h; r++)
          for (let col = 0; col < 2 * wd; col++)
            out[(ch * 2 * h + r) * 2 * wd + col] = x[(ch * h + (r >> 1)) * wd + (col >> 1)];
      return [out, [c, 2 * h, 2 * wd]];
    }
    case "pyramid": {
      let cur = x, curShape = shape, total = null;
      for (const stage of op.stages) {
        for (const s of stage) [cur, curShape] = step(cur, curShape, s, weights);
        if (total === null) total = Float32Array.from(cur);
        else for (let i = 0; i < total.length; i++) total[i] += cur[i];
      }
      return [total, curShape];
    }
    case "squeeze":
      return [x, shape.slice(1)];
    case "denormalize": {
      const off = slice(weights, op.offset), out = new Float32Array(x.length);
      for (let i = 0; i < x.length; i++) out[i] = x[i] * op.scale + off[i];
      return [out, shape];
    }
    case "rotation_average": {
      const [h, wd] = shape, lo = op.start, n = h - lo, out = Float32Array.from(x);
      const at = (r, c) => x[(lo + r) * wd + lo + c];
      for (let r = 0; r < n; r++)
        for (let c = 0; c < n; c++)
          out[(lo + r) * wd + lo + c] =
            (at(r, c) + at(c, n - 1 - r) + at(n - 1 - r, n - 1 - c) + at(n - 1 - c, r)) / 4;
      return [out, shape];
    }
    default:
      throw new Error(`unknown decoder step ${JSON.stringify(op.op)}`);
  }
}

/** Run a decoder program on the latent vector z; returns [Float32Array, shape]. */
export function runProgram(ops, weights, z) {
  let x = Float32Array.from(z), shape = [z.length];
  for (const op of ops) [x, shape] = step(x, shape, op, weights);
  return [x, shape];
}

// --- the widget ---------------------------------------------------------------------
const MINE = { pwBrowserDecoder: true }; // marks the page's own writes to the target mark
const REF = "IPY_MODEL_";

function floats(value) {
  if (!value) return new Float32Array(0);
  const view = value instanceof DataView ? value : new DataView(value.buffer ?? value);
  return new Float32Array(view.buffer, view.byteOffset, view.byteLength / 4);
}

async function initialize({ model }) {
  const manager = model.widget_manager;
  let program = null, weights = null, sliders = [], target = null, unbind = [];
  let latest = null; // the page's latest decode, re-applied over older kernel values

  const load = () => {
    program = model.get("ops");
    weights = floats(model.get("weights"));
  };
  const z = () => sliders.map((s) => s.get("value"));
  const write = () => {
    if (!target || !latest) return;
    const [y, shape] = latest;
    const value = shape.length === 2
      ? Array.from({ length: shape[0] }, (_, r) => y.slice(r * shape[1], (r + 1) * shape[1]))
      : y;
    target.set(model.get("attribute"), value, MINE);
  };
  const decode = () => {
    if (!program || !sliders.length) return;
    try {
      latest = runProgram(program, weights, z());
      write();
    } catch (err) {
      model.send({ type: "error", message: String(err && err.message ? err.message : err) });
      program = null; // stop: the kernel takes over drawing
    }
  };
  const onTarget = (_m, _v, options) => {
    if (!(options && options.pwBrowserDecoder)) write(); // kernel value: keep the newest
  };

  async function bind() {
    for (const off of unbind) off();
    unbind = [];
    const refs = model.get("sliders") || [];
    sliders = await Promise.all(refs.map((r) => manager.get_model(r.slice(REF.length))));
    const ref = model.get("target");
    target = ref ? await manager.get_model(ref.slice(REF.length)) : null;
    for (const s of sliders) {
      s.on("change:value", decode);
      unbind.push(() => s.off("change:value", decode));
    }
    if (target) {
      const event = `change:${model.get("attribute")}`;
      target.on(event, onTarget);
      unbind.push(() => target.off(event, onTarget));
    }
    latest = null;
    model.send({ type: "ready" });
  }

  load();
  model.on("change:ops", () => { load(); decode(); });
  model.on("change:weights", () => { load(); decode(); });
  model.on("change:sliders", bind);
  model.on("change:target", bind);
  await bind();
  return () => { for (const off of unbind) off(); };
}

export default { initialize, render() {} };
