// Upload front end: the refusal text the kernel also gives, and the transfer itself driven
// through a fake model and DOM against a fake kernel that answers as upload.py does.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import test from "node:test";

import upload, { mb, tooLargeText } from "../../plasmonwidgets/widgets/static/upload.js";
import { FakeElement, FakeModel, installBrowser } from "./fakes.mjs";

test("the page words a refusal exactly as the kernel does", () => {
  // the same file is checked against upload.py's too_large_message by tests/widgets/test_upload.py
  const { cases } = JSON.parse(readFileSync(new URL("./too_large_messages.json", import.meta.url), "utf8"));
  assert.ok(cases.length > 0);
  for (const c of cases) assert.equal(tooLargeText(c.name, c.size, c.max_bytes, c.hint), c.text);
});

test("sizes are shown in MiB with one decimal", () => {
  assert.equal(mb(0), "0.0");
  assert.equal(mb(1024 * 1024 * 2.26), "2.3");
});

/**
 * A kernel that stores chunks as upload.py does: ack each piece with the bytes received so
 * far, "done" when the file is complete. `refuse` names a file it answers with an error.
 */
function fakeKernel(model, { refuse = null } = {}) {
  const files = new Map(); // id -> {name, size, bytes, received}
  let waiting = false; // a request the kernel has not answered yet
  model.onSend = (content, buffers) => {
    if (content.type === "start" || content.type === "chunk") {
      assert.equal(waiting, false, "the page waits for each reply before it sends more");
      waiting = true;
    }
    const reply = (msg) => setImmediate(() => {
      waiting = false;
      model.receive({ id: content.id, ...msg });
    });
    if (content.type === "start") {
      if (content.name === refuse) return reply({ type: "error", message: `'${refuse}' is not wanted` });
      const { name, size } = content;
      files.set(content.id, { name, size, bytes: new Uint8Array(size), received: 0 });
      reply({ type: "ack", received: 0 });
    } else if (content.type === "chunk") {
      const f = files.get(content.id), piece = new Uint8Array(buffers[0]);
      assert.equal(content.offset, f.received, "chunks arrive in order");
      f.bytes.set(piece, f.received);
      f.received += piece.length;
      reply(f.received < f.size
        ? { type: "ack", received: f.received }
        : { type: "done", name: f.name, size: f.size });
    }
  };
  return files;
}

function uploader(state = {}) {
  installBrowser();
  const model = new FakeModel({
    description: "Upload", accept: ".dm4,.hspy", multiple: true, disabled: false,
    chunk_bytes: 4, max_bytes: 16, too_large_hint: "put it in the data folder", ...state,
  });
  const host = new FakeElement("div");
  const cleanup = upload.render({ model, el: host });
  const root = host.find("pw-upload"), input = host.find("pw-upload-input");
  const lines = () => host.find("pw-upload-lines").children.map((l) => [l.className, l.textContent]);
  return { model, host, root, input, lines, cleanup };
}

/** Choose files in the picker and wait until the page is idle again. */
async function choose(input, root, files) {
  input.files = files;
  input.value = "C:\\fakepath\\" + files[0].name;
  input.dispatch("change");
  assert.equal(input.value, "", "the same file can be chosen again");
  do await new Promise((resolve) => setImmediate(resolve));
  while (root.dataset.state !== "idle");
}

test("a file travels in chunk_bytes pieces, each sent after the previous one is acknowledged", async () => {
  const { model, root, input, lines, host, cleanup } = uploader();
  const files = fakeKernel(model);
  const bytes = Uint8Array.from({ length: 10 }, (_, i) => 100 + i);
  await choose(input, root, [new File([bytes], "a.dm4")]);
  const sent = model.sent.map(({ content, buffers }) => ({ ...content, bytes: buffers?.[0]?.byteLength }));
  assert.deepEqual(sent.map((m) => [m.type, m.offset, m.bytes]),
    [["start", undefined, undefined], ["chunk", 0, 4], ["chunk", 4, 4], ["chunk", 8, 2]]);
  assert.deepEqual([...files.values()][0].bytes, bytes);
  assert.deepEqual(lines(), [["pw-upload-line pw-upload-ok", "a.dm4: uploaded (0.0 MB)"]]);
  assert.equal(host.find("pw-upload-progress").hidden, true);
  cleanup();
});

test("a file over max_bytes is refused before any byte is read; the others still go", async () => {
  const { model, root, input, lines, cleanup } = uploader();
  fakeKernel(model);
  const big = new File([new Uint8Array(17)], "big.dm4");
  big.slice = () => assert.fail("a refused file must not be read");
  await choose(input, root, [big, new File([new Uint8Array(3)], "small.hspy")]);
  const first = model.sent[0].content;
  assert.deepEqual([first.type, first.name, first.size], ["refused", "big.dm4", 17]);
  assert.equal(model.sent[1].content.batch, first.batch, "one selection is one batch");
  assert.deepEqual(lines(), [
    ["pw-upload-line pw-upload-error", tooLargeText("big.dm4", 17, 16, "put it in the data folder")],
    ["pw-upload-line pw-upload-ok", "small.hspy: uploaded (0.0 MB)"],
  ]);
  cleanup();
});

test("the kernel's refusal is shown as an alert; a file that cannot be read is cancelled", async () => {
  const { model, root, input, host, lines, cleanup } = uploader();
  fakeKernel(model, { refuse: "no.dm4" });
  const vanished = new File([new Uint8Array(5)], "gone.dm4");
  const unreadable = new DOMException("file changed", "NotReadableError");
  vanished.slice = () => ({ arrayBuffer: () => Promise.reject(unreadable) });
  await choose(input, root, [new File([new Uint8Array(5)], "no.dm4"), vanished]);
  assert.deepEqual(lines(), [
    ["pw-upload-line pw-upload-error", "'no.dm4' is not wanted"],
    ["pw-upload-line pw-upload-error",
      "gone.dm4: the browser could not read the file (NotReadableError); choose it again"],
  ]);
  assert.equal(host.find("pw-upload-lines").children[0].getAttribute("role"), "alert");
  const cancel = model.sent.at(-1).content;
  assert.deepEqual([cancel.type, cancel.reason],
    ["cancel", "the browser could not read the file (NotReadableError)"]);
  cleanup();
});

test("the button follows the model's traits; cleanup detaches everything", () => {
  const { model, host, input, cleanup } = uploader();
  const label = host.find("pw-upload-button");
  assert.equal(label.children[1].textContent, "Upload");
  assert.deepEqual([input.accept, input.multiple, input.disabled], [".dm4,.hspy", true, false]);
  model.set("disabled", true);
  model.set("description", "Add data");
  assert.ok(label.classList.contains("pw-upload-disabled"));
  assert.deepEqual([input.disabled, label.children[1].textContent], [true, "Add data"]);
  cleanup();
  assert.equal(model.listenerCount(), 0);
  assert.equal(input.listenerCount(), 0);
});
