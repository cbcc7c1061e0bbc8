// Profile: the account and the password change (forced after a temporary password).
import { api, resetSession } from '../api.js';
import { field, formatTime, h, notice, replace } from '../dom.js';

export async function profilePage(view, session) {
  const u = await session.refreshUser();
  const status = h('div', { class: 'status-slot' });
  if (u.password_must_change) {
    status.append(notice('warning', 'You signed in with a temporary password. Choose your own password to continue.'));
  }
  const current = h('input', { type: 'password', autocomplete: 'current-password', required: true, maxlength: 1024 });
  const next = h('input', { type: 'password', autocomplete: 'new-password', required: true, minlength: 12, maxlength: 128 });
  const confirm = h('input', { type: 'password', autocomplete: 'new-password', required: true, minlength: 12, maxlength: 128 });
  const submit = h('button', { type: 'submit' }, 'Change password');
  const form = h(
    'form',
    { class: 'card narrow' },
    h('h2', {}, 'Change password'),
    field(u.password_must_change ? 'Temporary password' : 'Current password', current),
    field('New password', next, '12 to 128 characters, not one of your last five.'),
    field('Confirm new password', confirm),
    submit,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    replace(status);
    if (next.value !== confirm.value) {
      replace(status, notice('error', 'The two new passwords differ.'));
      confirm.focus();
      return;
    }
    submit.disabled = true;
    try {
      await api('PUT', '/api/users/me', { current_password: current.value, new_password: next.value });
      // The change revoked the old session; the answer set a new cookie, so the CSRF token
      // bound to the old one is useless.
      resetSession();
      const wasForced = u.password_must_change;
      await session.refreshUser();
      form.reset();
      if (wasForced) {
        session.go('history');
        return;
      }
      replace(status, notice('success', 'Password changed. Other sessions have been signed out.'));
    } catch (e) {
      replace(status, notice('error', e.status === 401 ? 'The current password is wrong.' : e.message));
    } finally {
      submit.disabled = false;
    }
  });
  const dl = h(
    'dl',
    { class: 'card narrow facts' },
    h('dt', {}, 'User name'), h('dd', {}, u.username),
    h('dt', {}, 'E-mail'), h('dd', {}, u.email),
    h('dt', {}, 'Role'), h('dd', {}, u.role),
    h('dt', {}, 'Member since'), h('dd', {}, formatTime(u.created_at)),
    h('dt', {}, 'Last sign-in'), h('dd', {}, formatTime(u.last_login)),
  );
  replace(view, h('h1', {}, 'Profile'), status, h('div', { class: 'columns' }, dl, form));
  return null;
}
