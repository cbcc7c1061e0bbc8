// Upload: pick or drop captures; each is checked here (extension, capture magic bytes), then
// declared to the API (which checks the size against the limit before any byte is sent), then
// PUT straight to the object store with a progress bar: in one PUT, or, above the service's
// multipart threshold, in parts, four at a time, each retried with a growing pause. A multipart
// upload is remembered in localStorage (task id, file name, size, last-modified time): picking
// the same file again after a reload or a cut resumes it from the parts the store holds.
import { api, putWithProgress } from '../api.js';
import { formatBytes, h, replace } from '../dom.js';

const EXTENSIONS = ['.pcap', '.pcapng', '.cap', '.pcap.gz', '.pcapng.gz'];

// First four bytes of every format the analyzer reads: the six pcap variants (µs/ns, both byte
// orders, the "modified" format), pcapng's section header block, and gzip (two bytes).
const MAGICS = [
  'a1b2c3d4', 'd4c3b2a1', 'a1b23c4d', '4d3cb2a1', 'a1b2cd34', '34cdb2a1', '0a0d0d0a',
];
const GZIP_MAGIC = '1f8b';

async function looksLikeCapture(file) {
  const head = new Uint8Array(await file.slice(0, 4).arrayBuffer());
  const hex = [...head].map((b) => b.toString(16).padStart(2, '0')).join('');
  return MAGICS.includes(hex) || hex.startsWith(GZIP_MAGIC);
}

const PARTS_AT_ONCE = 4;
const PART_TRIES = 5;
const RESUME_KEY = 'pcap-analyzer.uploads';

/** The unfinished multipart uploads this browser started, by file identity. */
function resumable() {
  try {
    return JSON.parse(localStorage.getItem(RESUME_KEY) ?? '{}');
  } catch {
    return {};
  }
}

function fileKey(file) {
  return `${file.name}|${file.size}|${file.lastModified}`;
}

function remember(file, taskId) {
  const all = resumable();
  if (taskId) all[fileKey(file)] = taskId;
  else delete all[fileKey(file)];
  localStorage.setItem(RESUME_KEY, JSON.stringify(all));
}

const pause = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * PUTs the parts of a multipart upload that the store does not hold yet, PARTS_AT_ONCE at a
 * time, then completes it with the ETags the store lists. `listing` is the answer of
 * GET /api/uploads/{id} (or of POST /api/uploads: every part missing).
 */
async function uploadParts(file, listing, onProgress) {
  const id = listing.task_id;
  const held = (listing.parts ?? []).filter((p) => p.etag);
  let missing = listing.missing ?? listing.parts;
  const sent = new Map(held.map((p) => [p.part_number, p.size]));
  const report = () => onProgress([...sent.values()].reduce((a, b) => a + b, 0), file.size);
  report();
  const putPart = async (part) => {
    for (let attempt = 1; ; attempt += 1) {
      const start = (part.part_number - 1) * listing.part_size;
      try {
        await putWithProgress(part.url, file.slice(start, start + part.size), {}, (loaded) => {
          sent.set(part.part_number, loaded);
          report();
        });
        sent.set(part.part_number, part.size);
        report();
        return;
      } catch (e) {
        sent.set(part.part_number, 0);
        report();
        if (attempt >= PART_TRIES) throw e;
        await pause(500 * 2 ** attempt);
        // The URL may have expired: ask for fresh ones.
        if (e.status === 403) {
          const fresh = await api('GET', `/api/uploads/${id}`);
          part = fresh.missing.find((p) => p.part_number === part.part_number) ?? part;
        }
      }
    }
  };
  const queue = [...missing];
  await Promise.all(
    Array.from({ length: PARTS_AT_ONCE }, async () => {
      while (queue.length > 0) await putPart(queue.shift());
    }),
  );
  // The store's own list of the parts, with their ETags (the browser may not read them).
  const done = await api('GET', `/api/uploads/${id}`);
  missing = done.missing ?? [];
  if (missing.length > 0) throw new Error(`${missing.length} parts did not arrive; pick the file again to resume`);
  const parts = done.parts
    .map((p) => ({ part_number: p.part_number, etag: p.etag }))
    .sort((a, b) => a.part_number - b.part_number);
  await api('POST', `/api/uploads/${id}/complete`, { parts });
}

/** What the reader sees when the API refuses a declared upload. */
function declareError(e, file) {
  if (e.status === 422 && /limit/.test(e.message)) {
    return `${file.name} is too large (${formatBytes(file.size)}): ${e.message.replace(/^size_bytes \d+ /, '')}.`;
  }
  if (e.status === 429) return `Too many uploads; try again in ${e.retryAfter ?? 'a few'} seconds.`;
  return e.message;
}

export async function uploadPage(view) {
  const input = h('input', {
    type: 'file',
    id: 'file-input',
    multiple: true,
    accept: EXTENSIONS.join(','),
    class: 'visually-hidden',
  });
  const zone = h(
    'label',
    { for: 'file-input', class: 'dropzone', tabindex: '0', role: 'button', 'aria-describedby': 'dz-hint' },
    h('strong', {}, 'Drop capture files here'),
    h('span', {}, 'or press to choose files'),
    h('small', { id: 'dz-hint' }, `pcap, pcapng or gzip-compressed (${EXTENSIONS.join(', ')}); several at once`),
  );
  const list = h('ul', { class: 'uploads', 'aria-live': 'polite' });

  // A <label> opens the picker on click; Enter and Space must do the same from the keyboard.
  zone.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      input.click();
    }
  });
  for (const type of ['dragenter', 'dragover']) {
    zone.addEventListener(type, (e) => {
      e.preventDefault();
      zone.classList.add('over');
    });
  }
  for (const type of ['dragleave', 'drop']) {
    zone.addEventListener(type, () => zone.classList.remove('over'));
  }
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    startAll([...e.dataTransfer.files]);
  });
  input.addEventListener('change', () => {
    startAll([...input.files]);
    input.value = '';
  });

  function startAll(files) {
    for (const file of files) uploadOne(file);
  }

  async function uploadOne(file) {
    const bar = h('progress', { max: 100, value: 0, 'aria-label': `Upload of ${file.name}` });
    const state = h('span', { class: 'state' }, 'Checking…');
    const row = h(
      'li',
      { class: 'upload' },
      h('span', { class: 'name' }, file.name),
      h('span', { class: 'size' }, formatBytes(file.size)),
      bar,
      state,
    );
    list.prepend(row);
    const fail = (msg) => {
      row.classList.add('failed');
      bar.remove();
      replace(state, h('span', { class: 'error-text', role: 'alert' }, msg));
    };
    const lower = file.name.toLowerCase();
    if (!EXTENSIONS.some((ext) => lower.endsWith(ext))) {
      fail(`${file.name} is not a capture file: expected ${EXTENSIONS.join(', ')}.`);
      return;
    }
    if (file.size === 0) {
      fail(`${file.name} is empty.`);
      return;
    }
    if (!(await looksLikeCapture(file))) {
      fail(`${file.name} is not a capture: it does not start like a pcap, pcapng or gzip file.`);
      return;
    }
    const started = Date.now();
    const onProgress = (loaded, total) => {
      const pct = Math.floor((loaded / total) * 100);
      bar.value = pct;
      const secs = (Date.now() - started) / 1000;
      const rate = secs > 1 ? loaded / secs : 0;
      const left = rate > 0 ? Math.ceil((total - loaded) / rate) : null;
      state.textContent = rate > 0
        ? `Uploading… ${pct} % (${formatBytes(rate)}/s, ${left} s left)`
        : `Uploading… ${pct} %`;
    };
    // The same file as an unfinished multipart upload: resume it.
    let upload = null;
    const pending = resumable()[fileKey(file)];
    if (pending) {
      try {
        upload = await api('GET', `/api/uploads/${pending}`);
        state.textContent = 'Resuming…';
      } catch {
        remember(file, null);
      }
    }
    if (!upload) {
      try {
        upload = await api('POST', '/api/uploads', { filename: file.name, size_bytes: file.size });
      } catch (e) {
        fail(declareError(e, file));
        return;
      }
    }
    state.textContent = 'Uploading…';
    try {
      if (upload.method === 'multipart') {
        remember(file, upload.task_id);
        await uploadParts(file, upload, onProgress);
        remember(file, null);
      } else {
        await putWithProgress(upload.upload_url, file, upload.headers, onProgress);
      }
    } catch (e) {
      fail(e.message);
      return;
    }
    bar.value = 100;
    row.classList.add('done');
    replace(
      state,
      'Uploaded; analysis queued. ',
      h('a', { href: '#/history' }, 'Follow it in History'),
    );
  }

  replace(
    view,
    h('h1', {}, 'Upload captures'),
    h('p', { class: 'lead' }, 'Files go straight to storage and are analysed on arrival. Reports are kept for a limited time, then deleted.'),
    input,
    zone,
    list,
  );
  return null;
}
