// Sign in and registration.
import { api, resetSession } from '../api.js';
import { field, h, notice, replace } from '../dom.js';

/** What a refused sign-in means to the reader. */
function signInError(e) {
  switch (e.code) {
    case 'pending_approval':
      return 'Your account is waiting for an administrator to approve it. You can sign in once it is approved.';
    case 'account_blocked':
      return 'This account is blocked. Contact an administrator.';
    case 'rate_limited':
      return `Too many attempts. Try again in ${e.retryAfter ?? 'a few'} seconds.`;
    default:
      return e.status === 401 ? 'Wrong user name or password.' : e.message;
  }
}

export async function signInPage(view, session) {
  const username = h('input', { name: 'username', autocomplete: 'username', required: true, maxlength: 255 });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true, maxlength: 1024 });
  const status = h('div', { class: 'status-slot' });
  if (session.flash) {
    status.append(session.flash);
    session.flash = null;
  }
  const submit = h('button', { type: 'submit' }, 'Sign in');
  const form = h(
    'form',
    { class: 'card narrow', novalidate: false },
    field('User name', username),
    field('Password', password),
    submit,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    replace(status);
    try {
      resetSession();
      const token = await api('POST', '/api/token', { username: username.value.trim(), password: password.value });
      await session.refreshUser();
      session.go(token.password_must_change || session.user?.password_must_change ? 'profile' : 'history');
    } catch (e) {
      // Waiting for approval is not a mistake of the reader's: shown as a warning.
      replace(status, notice(e.code === 'pending_approval' ? 'warning' : 'error', signInError(e)));
      password.value = '';
      password.focus();
    } finally {
      submit.disabled = false;
    }
  });
  replace(
    view,
    h('h1', {}, 'Sign in'),
    status,
    form,
    h('p', { class: 'center' }, 'No account yet? ', h('a', { href: '#/register' }, 'Request one')),
  );
}

export async function registerPage(view, session) {
  const username = h('input', {
    name: 'username',
    autocomplete: 'username',
    required: true,
    minlength: 3,
    maxlength: 50,
    pattern: '[a-z0-9_\\-]+',
  });
  const email = h('input', { name: 'email', type: 'email', autocomplete: 'email', required: true, maxlength: 254 });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'new-password', required: true, minlength: 12, maxlength: 128 });
  const confirm = h('input', { name: 'confirm', type: 'password', autocomplete: 'new-password', required: true, minlength: 12, maxlength: 128 });
  const status = h('div', { class: 'status-slot' });
  const submit = h('button', { type: 'submit' }, 'Create account');
  const form = h(
    'form',
    { class: 'card narrow' },
    field('User name', username, '3 to 50 characters: lower-case letters, digits, "-" and "_".'),
    field('E-mail', email),
    field('Password', password, '12 to 128 characters; a long passphrase is best.'),
    field('Confirm password', confirm),
    submit,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    replace(status);
    if (password.value !== confirm.value) {
      replace(status, notice('error', 'The two passwords differ.'));
      confirm.focus();
      return;
    }
    submit.disabled = true;
    try {
      const user = await api('POST', '/api/register', {
        username: username.value.trim(),
        email: email.value.trim(),
        password: password.value,
      });
      session.flash = notice(
        'success',
        `Account "${user.username}" created. An administrator must approve it before you can sign in.`,
      );
      session.go('signin');
    } catch (e) {
      replace(status, notice('error', e.status === 429 ? `Too many registrations from here; try again in ${e.retryAfter ?? 'a few'} seconds.` : e.message));
    } finally {
      submit.disabled = false;
    }
  });
  replace(
    view,
    h('h1', {}, 'Create an account'),
    status,
    form,
    h('p', { class: 'center' }, 'Already have one? ', h('a', { href: '#/signin' }, 'Sign in')),
  );
}
