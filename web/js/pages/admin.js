// Administration: accounts awaiting approval first, then everyone; approve, block, unblock,
// delete, reset password, one at a time or in bulk; create accounts with a temporary password.
import { api } from '../api.js';
import { field, formatTime, h, notice, replace } from '../dom.js';

// The API's page limit for GET /api/users; a deployment has tens of accounts, not thousands.
const USER_LIST_LIMIT = 500;

function userStatus(u) {
  if (!u.is_active) return 'blocked';
  if (!u.is_approved) return 'pending';
  return 'approved';
}

const STATUS_ORDER = { pending: 0, approved: 1, blocked: 2 };
const STATUS_TEXT = { pending: 'Pending approval', approved: 'Approved', blocked: 'Blocked' };

export async function adminPage(view, session) {
  if (session.user?.role !== 'admin') {
    replace(view, h('h1', {}, 'Administration'), notice('error', 'This page is for administrators.'));
    return null;
  }
  const status = h('div', { class: 'status-slot' });
  const filter = h(
    'select',
    { id: 'user-filter' },
    h('option', { value: '' }, 'All'),
    ...['pending', 'approved', 'blocked'].map((s) => h('option', { value: s }, STATUS_TEXT[s])),
  );
  const selectAll = h('input', { type: 'checkbox', 'aria-label': 'Select all users' });
  const body = h('tbody');
  const count = h('span', { class: 'count', 'aria-live': 'polite' });
  let users = [];

  const selected = () => [...body.querySelectorAll('input[type=checkbox]:checked')].map((c) => c.value);

  function say(kind, ...text) {
    replace(status, notice(kind, ...text));
  }

  async function act(label, fn) {
    try {
      const result = await fn();
      await load();
      if (result) say('success', ...[].concat(result));
    } catch (e) {
      say('error', `${label}: ${e.message}`);
    }
  }

  function secret(label, value) {
    return [label, ' ', h('code', { class: 'secret' }, value), ' — give it to the user; it must be changed at first sign-in.'];
  }

  function row(u) {
    const st = userStatus(u);
    const self = u.id === session.user.id;
    const buttons = [];
    const btn = (text, cls, onclick, label) =>
      h('button', { type: 'button', class: cls, onclick, 'aria-label': `${label ?? text} ${u.username}` }, text);
    if (st === 'pending') {
      buttons.push(btn('Approve', '', () => act('Approve', async () => {
        await api('PUT', `/api/admin/users/${u.id}/approve`);
        return `${u.username} approved.`;
      })));
    }
    if (!self && u.role !== 'admin') {
      if (st === 'blocked') {
        buttons.push(btn('Unblock', 'secondary', () => act('Unblock', async () => {
          await api('PUT', `/api/admin/users/${u.id}/unblock`);
          return `${u.username} unblocked.`;
        })));
      } else {
        buttons.push(btn('Block', 'secondary', () => act('Block', async () => {
          await api('PUT', `/api/admin/users/${u.id}/block`);
          return `${u.username} blocked; their sessions are closed.`;
        })));
      }
      buttons.push(btn('Reset password', 'secondary', () => act('Reset password', async () => {
        const r = await api('POST', `/api/admin/users/${u.id}/reset-password`);
        return secret(`New temporary password for ${u.username}:`, r.temporary_password);
      })));
      buttons.push(btn('Delete', 'danger', () => {
        if (!window.confirm(`Delete ${u.username} and all their analyses?`)) return;
        act('Delete', async () => {
          const r = await api('DELETE', `/api/admin/users/${u.id}`);
          return `${u.username} deleted with ${r.tasks_deleted ?? 0} analyses.`;
        });
      }));
    }
    return h(
      'tr',
      { 'data-user': u.username, 'data-status': st },
      h('td', { class: 'check' }, self ? null : h('input', { type: 'checkbox', value: u.id, 'aria-label': `Select ${u.username}` })),
      h('th', { scope: 'row', 'data-label': 'User' }, u.username, u.role === 'admin' ? h('span', { class: 'badge admin' }, 'admin') : null),
      h('td', { 'data-label': 'E-mail' }, u.email),
      h('td', { 'data-label': 'Status' }, h('span', { class: `badge ${st}` }, STATUS_TEXT[st]), u.password_must_change ? h('span', { class: 'badge pending' }, 'temporary password') : null),
      h('td', { 'data-label': 'Created' }, formatTime(u.created_at)),
      h('td', { 'data-label': 'Last sign-in' }, formatTime(u.last_login)),
      h('td', { class: 'actions' }, ...buttons),
    );
  }

  async function load() {
    const q = filter.value ? `&status=${filter.value}` : '';
    users = await api('GET', `/api/users?limit=${USER_LIST_LIMIT}${q}`);
    // Pending accounts first: they are what an administrator comes here for.
    users.sort((a, b) => STATUS_ORDER[userStatus(a)] - STATUS_ORDER[userStatus(b)] || String(b.created_at).localeCompare(String(a.created_at)));
    replace(body, ...users.map(row));
    selectAll.checked = false;
    const pending = users.filter((u) => userStatus(u) === 'pending').length;
    count.textContent = `${users.length} accounts, ${pending} pending approval`;
  }

  async function bulk(action) {
    const ids = selected();
    if (ids.length === 0) {
      say('error', 'Select at least one account first.');
      return;
    }
    await act(`Bulk ${action}`, async () => {
      const r = await api('POST', `/api/admin/users/bulk/${action}`, { user_ids: ids });
      const failed = (r.results ?? []).filter((x) => x.status !== 'success');
      return `${action}: ${r.success} of ${r.total} done${failed.length ? `; not done: ${failed.map((f) => `${f.username ?? f.user_id} (${f.reason})`).join(', ')}` : ''}.`;
    });
  }

  selectAll.addEventListener('change', () => {
    for (const c of body.querySelectorAll('input[type=checkbox]')) c.checked = selectAll.checked;
  });
  filter.addEventListener('change', () => load().catch((e) => say('error', e.message)));

  const newName = h('input', { name: 'username', required: true, minlength: 3, maxlength: 50, pattern: '[a-z0-9_\\-]+', autocomplete: 'off' });
  const newEmail = h('input', { name: 'email', type: 'email', required: true, maxlength: 254, autocomplete: 'off' });
  const newRole = h('select', { name: 'role' }, h('option', { value: 'user' }, 'User'), h('option', { value: 'admin' }, 'Administrator'));
  const create = h(
    'form',
    { class: 'card create' },
    h('h2', {}, 'Create an account'),
    h('div', { class: 'inline-fields' }, field('User name', newName), field('E-mail', newEmail), field('Role', newRole)),
    h('button', { type: 'submit' }, 'Create with temporary password'),
  );
  create.addEventListener('submit', (ev) => {
    ev.preventDefault();
    act('Create', async () => {
      const r = await api('POST', '/api/admin/users', { username: newName.value.trim(), email: newEmail.value.trim(), role: newRole.value });
      create.reset();
      return secret(`Account ${r.user.username} created. Temporary password:`, r.temporary_password);
    });
  });

  replace(
    view,
    h('div', { class: 'title-row' }, h('h1', {}, 'Administration'), h('div', { class: 'tools' }, h('label', { for: 'user-filter' }, 'Show'), filter)),
    status,
    h(
      'div',
      { class: 'bulk', role: 'group', 'aria-label': 'Bulk actions on the selected accounts' },
      count,
      h('button', { type: 'button', onclick: () => bulk('approve') }, 'Approve selected'),
      h('button', { type: 'button', class: 'secondary', onclick: () => bulk('block') }, 'Block selected'),
      h('button', { type: 'button', class: 'secondary', onclick: () => bulk('unblock') }, 'Unblock selected'),
    ),
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        { class: 'users responsive' },
        h('caption', { class: 'visually-hidden' }, 'Accounts, pending approval first'),
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            h('td', { class: 'check' }, selectAll),
            h('th', { scope: 'col' }, 'User'),
            h('th', { scope: 'col' }, 'E-mail'),
            h('th', { scope: 'col' }, 'Status'),
            h('th', { scope: 'col' }, 'Created'),
            h('th', { scope: 'col' }, 'Last sign-in'),
            h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')),
          ),
        ),
        body,
      ),
    ),
    create,
  );
  await load();
  return null;
}
