// Stand-ins for what the anywidget modules touch: the widget model, DOM elements, a 2D
// canvas context and animation frames. Each has only the members the modules use, so a
// module that starts using something new fails here loudly instead of passing by luck.

/** The part of a Backbone widget model (anywidget's `model`) the modules use. */
export class FakeModel {
  constructor(state = {}) {
    this.state = { ...state };
    this.handlers = new Map();
    this.sent = []; // [{content, buffers}] in the order the module sent them
    this.saves = 0;
    this.onSend = null; // optional (content, buffers) => void, e.g. a fake kernel
  }
  get(key) {
    return this.state[key];
  }
  // Backbone also skips values equal to the current one; no test here sets an equal value.
  set(key, value, options) {
    this.state[key] = value;
    this.trigger(`change:${key}`, this, value, options);
  }
  on(events, fn) {
    for (const name of events.split(" ")) {
      if (!this.handlers.has(name)) this.handlers.set(name, []);
      this.handlers.get(name).push(fn);
    }
  }
  off(events, fn) {
    for (const name of events.split(" ")) {
      this.handlers.set(name, (this.handlers.get(name) ?? []).filter((g) => g !== fn));
    }
  }
  trigger(name, ...args) {
    for (const fn of [...(this.handlers.get(name) ?? [])]) fn(...args);
  }
  /** How many handlers are still attached (0 after a view's cleanup). */
  listenerCount() {
    let n = 0;
    for (const fns of this.handlers.values()) n += fns.length;
    return n;
  }
  save_changes() {
    this.saves += 1;
  }
  send(content, _callbacks, buffers) {
    this.sent.push({ content, buffers });
    if (this.onSend) this.onSend(content, buffers);
  }
  /** A custom message from the kernel, as anywidget delivers it. */
  receive(content, buffers = []) {
    this.trigger("msg:custom", content, buffers);
  }
}

/** A 2D context that records every drawing call as [name, args]. */
function recordingContext(canvas) {
  const target = {
    canvas,
    calls: [],
    createImageData(w, h) {
      return { width: w, height: h, data: new Uint8ClampedArray(w * h * 4) };
    },
    measureText(text) {
      return { width: 6 * text.length };
    },
  };
  return new Proxy(target, {
    get(obj, prop) {
      if (prop in obj) return obj[prop];
      return (...args) => obj.calls.push([prop, args]);
    },
  });
}

export class FakeElement {
  constructor(tag) {
    this.tagName = tag.toUpperCase();
    this.children = [];
    this.parentNode = null;
    this.className = "";
    this.dataset = {};
    this.style = {};
    this.textContent = "";
    this.hidden = false;
    this.attributes = new Map();
    this.listeners = new Map();
    this.classList = {
      toggle: (name, force) => {
        const names = new Set(this.className.split(" ").filter(Boolean));
        const on = force === undefined ? !names.has(name) : Boolean(force);
        if (on) names.add(name);
        else names.delete(name);
        this.className = [...names].join(" ");
        return on;
      },
      contains: (name) => this.className.split(" ").includes(name),
    };
  }
  appendChild(child) {
    this.children.push(child);
    child.parentNode = this;
    return child;
  }
  append(...children) {
    for (const child of children) this.appendChild(child);
  }
  replaceChildren(...children) {
    this.children = [];
    this.append(...children);
  }
  setAttribute(name, value) {
    this.attributes.set(name, String(value));
  }
  getAttribute(name) {
    return this.attributes.has(name) ? this.attributes.get(name) : null;
  }
  removeAttribute(name) {
    this.attributes.delete(name);
  }
  addEventListener(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, []);
    this.listeners.get(type).push(fn);
  }
  removeEventListener(type, fn) {
    this.listeners.set(type, (this.listeners.get(type) ?? []).filter((g) => g !== fn));
  }
  /** Deliver an event object to the listeners; adds preventDefault. */
  dispatch(type, fields = {}) {
    const ev = {
      type, defaultPrevented: false, preventDefault() { this.defaultPrevented = true; }, ...fields,
    };
    for (const fn of [...(this.listeners.get(type) ?? [])]) fn(ev);
    return ev;
  }
  listenerCount() {
    let n = 0;
    for (const fns of this.listeners.values()) n += fns.length;
    return n;
  }
  /** The first descendant whose class list has `name`. */
  find(name) {
    for (const child of this.children) {
      if (child.classList.contains(name)) return child;
      const deeper = child.find(name);
      if (deeper) return deeper;
    }
    return null;
  }
  // --- canvas and focus: what the HAADF viewer uses --------------------------------
  getContext() {
    this.context ??= recordingContext(this);
    return this.context;
  }
  getBoundingClientRect() {
    const width = parseFloat(this.style.width) || 0, height = parseFloat(this.style.height) || 0;
    return { left: 0, top: 0, width, height };
  }
  focus() {}
  setPointerCapture(id) {
    this.captured = id;
  }
  hasPointerCapture(id) {
    return this.captured === id;
  }
  releasePointerCapture() {
    this.captured = undefined;
  }
}

/**
 * Put `document`, `window` and animation frames on globalThis (node's test runner gives
 * every file its own process, so these never leak into another file).
 * Returns {created, flushFrames}: every element made so far (attached or not), and a function
 * that runs the frames requested so far, as the browser's next paint would.
 */
export function installBrowser({ devicePixelRatio = 1 } = {}) {
  let frames = new Map(), next = 1;
  const created = [];
  globalThis.document = {
    createElement(tag) {
      const node = new FakeElement(tag);
      created.push(node);
      return node;
    },
  };
  globalThis.window = { devicePixelRatio };
  globalThis.requestAnimationFrame = (fn) => {
    frames.set(next, fn);
    return next++;
  };
  globalThis.cancelAnimationFrame = (id) => frames.delete(id);
  return {
    created,
    flushFrames() {
      const due = frames;
      frames = new Map();
      for (const fn of due.values()) fn(performance.now());
    },
  };
}
