// The page's decoder against the real models' decode(): tests/widgets/test_browser_decoder.py
// exports each model's program in Python, decodes a few latent points with torch, writes
// both to a folder and runs this file with PW_DECODER_FIXTURES set to it. Alone (plain
// `node --test tests/js/`) there is nothing to compare, so the test says so and skips.
//
// Folder contents: case.json {name, ops, z: [[...]], expected: [[...]] (flattened), shape,
// rtol, atol} and weights.bin (the float32 weight buffer).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import test from "node:test";

import { runProgram } from "../../plasmonwidgets/widgets/static/browser_decoder.js";

const dir = process.env.PW_DECODER_FIXTURES;

test("the page's decoder computes what model.decode computes",
  { skip: !dir && "needs programs exported by tests/widgets/test_browser_decoder.py (PW_DECODER_FIXTURES)" }, () => {
    const c = JSON.parse(readFileSync(join(dir, "case.json"), "utf8"));
    const buf = readFileSync(join(dir, "weights.bin"));
    const weights = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    assert.ok(c.z.length > 0, "no latent points in the fixture");
    c.z.forEach((z, n) => {
      const [y, shape] = runProgram(c.ops, weights, z);
      assert.deepEqual(shape, c.shape, `${c.name}, point ${n}: shape`);
      const want = c.expected[n];
      assert.equal(y.length, want.length, `${c.name}, point ${n}: length`);
      // the worst element, judged as numpy's assert_allclose judges it
      let worst = -1, excess = 0;
      for (let i = 0; i < y.length; i++) {
        const over = Math.abs(y[i] - want[i]) - (c.atol + c.rtol * Math.abs(want[i]));
        if (!(over <= excess)) [worst, excess] = [i, over];
      }
      assert.equal(worst, -1, `${c.name}, point ${n}: element ${worst} is ${y[worst]},`
        + ` decode() gave ${want[worst]} (rtol ${c.rtol}, atol ${c.atol})`);
    });
  });
