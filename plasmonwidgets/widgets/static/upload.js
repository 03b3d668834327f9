// ChunkedUpload front end (anywidget ES module).
//
// Files over max_bytes are refused here, before any byte of them is read. Accepted
// files travel as chunk_bytes slices, one binary message at a time: the next slice is
// read only after the kernel acknowledged the previous one, so neither side holds a
// whole file and no websocket message comes near the Jupyter server's 10 MiB cap.
// The size check here only spares the user a useless transfer: the kernel enforces the
// limit on every piece, from a value the page cannot change (it never sets any trait).

const MIB = 1024 * 1024;
// A reply may wait behind a busy kernel (a file being loaded, a long cell); past this
// the transfer is given up rather than left hanging.
const REPLY_TIMEOUT_MS = 300_000;

export function mb(bytes) {
  return (bytes / MIB).toFixed(1);
}

// Same figures as the kernel's message: size with one decimal, the limit as Python's :g.
export function tooLargeText(name, size, maxBytes, hint) {
  const limit = String(Number((maxBytes / MIB).toPrecision(6)));
  const text = `'${name}' is ${mb(size)} MB, over the ${limit} MB upload limit`;
  return hint ? `${text}; ${hint}` : text;
}

function newId() {
  // crypto.randomUUID needs a secure context; a dashboard may be served over plain http
  return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 12);
}

function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "pw-upload";
  root.dataset.state = "idle";

  // a label around a visually hidden input: opens the picker, keeps keyboard focus
  const label = document.createElement("label");
  label.className = "jupyter-button pw-upload-button";
  const input = document.createElement("input");
  input.type = "file";
  input.className = "pw-upload-input";
  const caption = document.createElement("span");
  label.append(input, caption);

  const progress = document.createElement("progress");
  progress.className = "pw-upload-progress";
  progress.hidden = true;
  const progressText = document.createElement("span");
  progressText.className = "pw-upload-progress-text";
  const lines = document.createElement("div");
  lines.className = "pw-upload-lines";
  lines.setAttribute("aria-live", "polite");
  root.append(label, progress, progressText, lines);
  el.append(root);

  function sync() {
    caption.textContent = model.get("description");
    input.accept = model.get("accept");
    input.multiple = model.get("multiple");
    input.disabled = model.get("disabled");
    label.classList.toggle("pw-upload-disabled", input.disabled);
  }
  sync();

  function addLine(text, kind) {
    const line = document.createElement("div");
    setLine(line, text, kind);
    lines.append(line);
    return line;
  }
  function setLine(line, text, kind) {
    line.className = `pw-upload-line pw-upload-${kind}`;
    if (kind === "error") line.setAttribute("role", "alert");
    else line.removeAttribute("role");
    line.textContent = text;
  }

  // replies from the kernel, matched to the request waiting for them by transfer id
  const pending = new Map();
  function onMessage(msg) {
    const waiting = msg && pending.get(msg.id);
    if (!waiting) return; // another view's transfer, or one already given up
    pending.delete(msg.id);
    clearTimeout(waiting.timer);
    waiting.resolve(msg);
  }
  function request(content, buffers) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        pending.delete(content.id);
        resolve({ type: "timeout", id: content.id });
      }, REPLY_TIMEOUT_MS);
      pending.set(content.id, { resolve, timer });
      model.send(content, undefined, buffers);
    });
  }

  function showProgress(name, done, size) {
    progress.hidden = false;
    progress.max = Math.max(size, 1);
    progress.value = done;
    progressText.textContent = `${name}: ${mb(done)} / ${mb(size)} MB`;
  }
  function hideProgress() {
    progress.hidden = true;
    progressText.textContent = "";
  }

  async function sendFile(file, batch) {
    const id = newId();
    const chunk = model.get("chunk_bytes");
    const line = addLine(`${file.name}: uploading…`, "info");
    showProgress(file.name, 0, file.size);
    let reply = await request({ type: "start", id, batch, name: file.name, size: file.size });
    while (reply.type === "ack") {
      const offset = reply.received;
      showProgress(file.name, offset, file.size);
      let buffer;
      try {
        buffer = await file.slice(offset, Math.min(offset + chunk, file.size)).arrayBuffer();
      } catch (err) {
        // the file changed or vanished on disk since it was chosen
        const reason = `the browser could not read the file (${err && err.name})`;
        model.send({ type: "cancel", id, reason });
        setLine(line, `${file.name}: ${reason}; choose it again`, "error");
        return;
      }
      reply = await request({ type: "chunk", id, offset }, [buffer]);
    }
    if (reply.type === "done") {
      setLine(line, `${file.name}: uploaded (${mb(reply.size)} MB)`, "ok");
    } else if (reply.type === "error") {
      setLine(line, reply.message, "error");
    } else {
      model.send({ type: "cancel", id, reason: "no reply from the kernel" });
      setLine(line, `${file.name}: no reply from the kernel for ${REPLY_TIMEOUT_MS / 60000} minutes; `
        + "the upload was stopped, try again", "error");
    }
  }

  async function uploadSelection(files) {
    root.dataset.state = "uploading";
    lines.replaceChildren();
    const batch = newId();
    const maxBytes = model.get("max_bytes");
    const accepted = [];
    for (const file of files) {
      if (file.size > maxBytes) {
        // refused before reading: only the name and size go to the kernel
        addLine(tooLargeText(file.name, file.size, maxBytes, model.get("too_large_hint")), "error");
        model.send({ type: "refused", batch, name: file.name, size: file.size });
      } else {
        accepted.push(file);
      }
    }
    try {
      for (const file of accepted) await sendFile(file, batch);
    } finally {
      hideProgress();
      root.dataset.state = "idle";
    }
  }

  // selections made during an upload wait their turn: one transfer at a time
  let queue = Promise.resolve();
  function onChange() {
    const files = Array.from(input.files || []);
    input.value = ""; // choosing the same file again must fire "change" again
    if (files.length === 0) return;
    queue = queue.then(() => uploadSelection(files)).catch((err) => {
      addLine(`upload failed in the browser: ${err}`, "error");
      root.dataset.state = "idle";
    });
  }
  input.addEventListener("change", onChange);

  const traitEvents = ["description", "accept", "multiple", "disabled"].map((n) => `change:${n}`);
  for (const name of traitEvents) model.on(name, sync);
  model.on("msg:custom", onMessage);
  return () => {
    for (const name of traitEvents) model.off(name, sync);
    model.off("msg:custom", onMessage);
    input.removeEventListener("change", onChange);
    for (const { timer } of pending.values()) clearTimeout(timer);
    pending.clear();
  };
}

export default { render };
