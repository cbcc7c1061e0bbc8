// History: every analysis with its live status, and the report viewer.
import { api } from '../api.js';
import { formatBytes, formatTime, h, notice, replace } from '../dom.js';

const ACTIVE = new Set(['pending', 'uploaded', 'processing']);
// How often an active task's progress is asked for. The analyzer writes a snapshot at most
// every 5 % or 2 s, so asking more often would only repeat answers.
const PROGRESS_POLL_MS = 1000;
const PAGE_SIZE = 50;

const STATUS_TEXT = {
  pending: 'Waiting for upload',
  uploaded: 'Queued',
  processing: 'Analysing',
  completed: 'Completed',
  failed: 'Failed',
  expired: 'Deleted / expired',
};

function badge(status) {
  return h('span', { class: `badge ${status}` }, STATUS_TEXT[status] ?? status);
}

function healthText(score) {
  if (score === null || score === undefined) return '–';
  return `${Math.round(score)}/100`;
}

export async function historyPage(view, session) {
  const isAdmin = session.user?.role === 'admin';
  const status = h('div', { class: 'status-slot' });
  const filter = h(
    'select',
    { id: 'status-filter' },
    ...['all', 'processing', 'completed', 'failed', 'expired'].map((s) =>
      h('option', { value: s }, s === 'all' ? 'All' : STATUS_TEXT[s]),
    ),
  );
  const body = h('tbody');
  const table = h(
    'table',
    { class: 'tasks responsive' },
    h('caption', { class: 'visually-hidden' }, 'Your analyses, newest first'),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', { scope: 'col' }, 'File'),
        isAdmin ? h('th', { scope: 'col' }, 'Owner') : null,
        h('th', { scope: 'col' }, 'Size'),
        h('th', { scope: 'col' }, 'Status'),
        h('th', { scope: 'col' }, 'Packets'),
        h('th', { scope: 'col' }, 'Health'),
        h('th', { scope: 'col' }, 'Uploaded'),
        h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')),
      ),
    ),
    body,
  );
  const empty = h('p', { class: 'empty', hidden: true }, 'No analyses yet. ', h('a', { href: '#/upload' }, 'Upload a capture'), '.');
  const pollers = new Map();
  let stopped = false;

  function stopPolling() {
    for (const t of pollers.values()) clearTimeout(t);
    pollers.clear();
  }

  function row(task) {
    const progress = h('progress', { max: 100, value: task.progress_percent ?? 0, 'aria-label': `Analysis of ${task.filename}` });
    const statusCell = h('td', { 'data-label': 'Status', class: 'status-cell' }, badge(task.status));
    if (ACTIVE.has(task.status)) {
      statusCell.append(progress, h('span', { class: 'pct' }, `${task.progress_percent ?? 0} %`));
    }
    if (task.status === 'failed' && task.error_message) {
      statusCell.append(h('div', { class: 'error-text' }, task.error_message));
    }
    const actions = h('td', { class: 'actions' });
    if (task.status === 'completed') {
      actions.append(
        h('a', { class: 'button', href: `#/report/${task.task_id}` }, 'View report'),
        h('a', { class: 'button secondary', href: `/api/reports/${task.task_id}/json`, download: '' }, 'JSON'),
      );
    }
    if (task.status !== 'processing' && task.status !== 'expired') {
      actions.append(
        h('button', {
          type: 'button',
          class: 'danger',
          'aria-label': `Delete ${task.filename}`,
          onclick: () => remove(task),
        }, 'Delete'),
      );
    }
    return h(
      'tr',
      { 'data-task': task.task_id, 'data-status': task.status },
      h('th', { scope: 'row', 'data-label': 'File', class: 'file' }, task.filename),
      isAdmin ? h('td', { 'data-label': 'Owner' }, task.owner_username ?? '–') : null,
      h('td', { 'data-label': 'Size', class: 'nowrap' }, formatBytes(task.file_size_bytes)),
      statusCell,
      h('td', { 'data-label': 'Packets' }, task.total_packets?.toLocaleString() ?? '–'),
      h('td', { 'data-label': 'Health', class: 'nowrap' }, healthText(task.health_score)),
      h('td', { 'data-label': 'Uploaded' }, formatTime(task.uploaded_at ?? task.created_at)),
      actions,
    );
  }

  async function remove(task) {
    if (!window.confirm(`Delete ${task.filename} and its reports?`)) return;
    try {
      await api('DELETE', `/api/reports/${task.task_id}`);
      replace(status, notice('success', `${task.filename} deleted.`));
      await load();
    } catch (e) {
      replace(status, notice('error', e.message));
    }
  }

  async function poll(taskId) {
    pollers.delete(taskId);
    if (stopped) return;
    try {
      const p = await api('GET', `/api/progress/${taskId}`);
      if (stopped) return;
      if (!ACTIVE.has(p.status)) {
        await load();
        return;
      }
      const tr = body.querySelector(`tr[data-task="${taskId}"]`);
      if (tr) {
        const bar = tr.querySelector('progress');
        const pct = tr.querySelector('.pct');
        if (bar) bar.value = p.progress_percent ?? 0;
        if (pct) pct.textContent = `${p.progress_percent ?? 0} %${p.current_phase ? ` · ${p.current_phase}` : ''}`;
        if (tr.dataset.status !== p.status) {
          tr.dataset.status = p.status;
          tr.querySelector('.badge').replaceWith(badge(p.status));
        }
      }
    } catch (e) {
      if (e.status === 404) {
        await load();
        return;
      }
    }
    pollers.set(taskId, setTimeout(() => poll(taskId), PROGRESS_POLL_MS));
  }

  async function load() {
    stopPolling();
    const q = filter.value === 'all' ? '' : `&status=${encodeURIComponent(filter.value)}`;
    const data = await api('GET', `/api/tasks?limit=${PAGE_SIZE}${q}`);
    if (stopped) return;
    replace(body, ...data.tasks.map(row));
    empty.hidden = data.tasks.length > 0;
    table.hidden = data.tasks.length === 0;
    for (const t of data.tasks) {
      if (ACTIVE.has(t.status)) pollers.set(t.task_id, setTimeout(() => poll(t.task_id), PROGRESS_POLL_MS));
    }
  }

  filter.addEventListener('change', () => load().catch((e) => replace(status, notice('error', e.message))));

  replace(
    view,
    h(
      'div',
      { class: 'title-row' },
      h('h1', {}, 'History'),
      h('div', { class: 'tools' }, h('label', { for: 'status-filter' }, 'Show'), filter, h('a', { class: 'button', href: '#/upload' }, 'Upload')),
    ),
    status,
    empty,
    h('div', { class: 'table-wrap' }, table),
  );
  await load();
  return () => {
    stopped = true;
    stopPolling();
  };
}

export async function reportPage(view, session, taskId) {
  if (!/^[0-9a-f-]{36}$/i.test(taskId ?? '')) {
    replace(view, h('h1', {}, 'Report'), notice('error', 'No such report.'));
    return null;
  }
  let task;
  try {
    task = await api('GET', `/api/status/${taskId}`);
  } catch (e) {
    replace(view, h('h1', {}, 'Report'), notice('error', e.status === 404 ? 'No such report.' : e.message), h('p', {}, h('a', { href: '#/history' }, 'Back to history')));
    return null;
  }
  if (task.status !== 'completed') {
    replace(view, h('h1', {}, `Report: ${task.filename}`), notice('info', `No report: the analysis is ${STATUS_TEXT[task.status] ?? task.status}.`), h('p', {}, h('a', { href: '#/history' }, 'Back to history')));
    return null;
  }
  const html = `/api/reports/${task.task_id}/html`;
  replace(
    view,
    h(
      'div',
      { class: 'title-row' },
      h('h1', {}, `Report: ${task.filename}`),
      h(
        'div',
        { class: 'tools' },
        h('a', { class: 'button secondary', href: '#/history' }, 'Back'),
        h('a', { class: 'button secondary', href: html, target: '_blank', rel: 'noopener' }, 'Open in new tab'),
        h('a', { class: 'button', href: `/api/reports/${task.task_id}/json`, download: '' }, 'Download JSON'),
      ),
    ),
    h(
      'p',
      { class: 'meta' },
      `${task.total_packets?.toLocaleString() ?? '–'} packets · ${formatBytes(task.file_size_bytes)} · health ${healthText(task.health_score)} · analysed `,
      formatTime(task.analyzed_at),
    ),
    // The report comes from a short-lived presigned URL on the object store. It has no
    // script; the empty sandbox keeps it that way and gives it no access to this page.
    h('iframe', { class: 'report', src: html, title: `Analysis report of ${task.filename}`, sandbox: '' }),
  );
  return null;
}
