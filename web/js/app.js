// Entry point: the session, the hash router and the navigation. Each page lives in its own
// module and renders into <main>.
import { api, resetSession, setUnauthorizedHandler } from './api.js';
import { h, notice, replace } from './dom.js';
import { signInPage, registerPage } from './pages/auth.js';
import { uploadPage } from './pages/upload.js';
import { historyPage, reportPage } from './pages/history.js';
import { profilePage } from './pages/profile.js';
import { adminPage } from './pages/admin.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');

/** Shared by the pages: the signed-in user (or null) and helpers to move around. */
export const session = {
  user: null,
  flash: null,
  go(route) {
    if (location.hash === `#/${route}`) render();
    else location.hash = `#/${route}`;
  },
  async refreshUser() {
    try {
      session.user = await api('GET', '/api/users/me');
    } catch (e) {
      if (e.status !== 401) throw e;
      session.user = null;
    }
    updateNav();
    return session.user;
  },
  async signOut() {
    try {
      await api('POST', '/api/logout');
    } catch {
      // The cookie is cleared by the answer even when the session had already expired.
    }
    resetSession();
    session.user = null;
    session.flash = notice('info', 'You are signed out.');
    updateNav();
    session.go('signin');
  },
};

const PUBLIC_ROUTES = { signin: signInPage, register: registerPage };
const USER_ROUTES = {
  upload: uploadPage,
  history: historyPage,
  report: reportPage,
  profile: profilePage,
  admin: adminPage,
};

// Pages register a cleanup (timers, pollers) to stop when the reader leaves them.
let cleanup = null;

function updateNav() {
  const u = session.user;
  nav.hidden = !u;
  document.getElementById('nav-admin').hidden = u?.role !== 'admin';
  document.getElementById('whoami').textContent = u ? `${u.username}${u.role === 'admin' ? ' (admin)' : ''}` : '';
  const current = location.hash.replace(/^#\//, '').split('/')[0];
  for (const a of nav.querySelectorAll('a[data-route]')) {
    if (a.dataset.route === current) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

async function render() {
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  const [name, ...args] = location.hash.replace(/^#\/?/, '').split('/');
  const u = session.user;
  let page;
  let route = name;
  if (!u) {
    page = PUBLIC_ROUTES[name];
    if (!page) {
      route = 'signin';
      page = signInPage;
    }
  } else if (u.password_must_change && name !== 'profile') {
    // The API answers password_change_required everywhere else until it is done.
    session.go('profile');
    return;
  } else {
    page = USER_ROUTES[name];
    if (!page) {
      session.go('history');
      return;
    }
  }
  if (route !== name) history.replaceState(null, '', `#/${route}`);
  updateNav();
  const view = h('div', { class: 'page' });
  replace(main, view);
  try {
    cleanup = (await page(view, session, ...args)) ?? null;
  } catch (e) {
    replace(view, h('h1', { tabindex: '-1' }, 'Something went wrong'), notice('error', e.message));
  }
  const heading = main.querySelector('h1');
  if (heading) {
    heading.setAttribute('tabindex', '-1');
    document.title = `${heading.textContent} · PCAP Analyzer`;
    // Moves screen readers and keyboard focus to the new page, as a page load would.
    heading.focus({ preventScroll: true });
  }
}

setUnauthorizedHandler(() => {
  if (!session.user) return;
  resetSession();
  session.user = null;
  session.flash = notice('error', 'Your session has ended; please sign in again.');
  updateNav();
  session.go('signin');
});

document.getElementById('signout').addEventListener('click', () => session.signOut());
window.addEventListener('hashchange', render);

async function start() {
  try {
    await session.refreshUser();
  } catch (e) {
    session.flash = notice('error', `The service is not answering: ${e.message}`);
  }
  if (!location.hash) history.replaceState(null, '', session.user ? '#/history' : '#/signin');
  await render();
}

start();
