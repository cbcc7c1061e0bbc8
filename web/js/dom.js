// Tiny DOM helpers: elements are built with properties and listeners, never from HTML strings,
// so user-supplied text (file names, user names, server messages) can never become markup.

/**
 * h('button', { class: 'x', onclick: fn, 'aria-label': 'y' }, 'text', child)
 * Keys starting with "on" become listeners; `class`, `text`, `value`, `checked`, `hidden`,
 * `disabled` are set as properties; everything else as attributes (skipped when null/false).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (['value', 'checked', 'hidden', 'disabled', 'selected'].includes(k)) el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces every child of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** A message box: role=alert for errors (announced at once), role=status otherwise. */
export function notice(kind, ...children) {
  return h('div', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, ...children);
}

/** A labelled form field; `hint` is tied to the input with aria-describedby. */
export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  let hintEl = null;
  if (hint) {
    hintEl = h('small', { id: `${id}-hint`, class: 'hint' }, hint);
    input.setAttribute('aria-describedby', hintEl.id);
  }
  return h('div', { class: 'field' }, h('label', { for: id }, label), input, hintEl);
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 1536 → "1.5 KiB" */
export function formatBytes(n) {
  if (n === null || n === undefined || Number.isNaN(Number(n))) return '–';
  let v = Number(n);
  let i = 0;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${UNITS[i]}`;
}

/** An ISO time shown in the reader's locale, with the exact UTC time as a tooltip. */
export function formatTime(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '–';
  return h('time', { datetime: d.toISOString(), title: d.toISOString() }, d.toLocaleString());
}
