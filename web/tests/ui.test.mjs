// Browser tests of the UI in headless Chromium (Debian's package, never a downloaded browser),
// against a real local-gateway, Postgres and LocalStack (S3 signature checks on).
// Started by scripts/test after localstack/up; a missing browser, binary or service fails loudly.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CAPTURES = path.resolve(ROOT, '../shared/captures');
const SHOTS = path.join(ROOT, 'target/screenshots');
const CHROMIUM = '/usr/bin/chromium';
const GATEWAY = process.env.LOCAL_GATEWAY_BIN ?? path.join(ROOT, 'target/debug/local-gateway');
const ADMIN_PASSWORD = 'Ui-Test-Admin-Passphrase-42';
// Uploads above 1 MiB go in parts (of 8 MiB, the smallest the API makes); above 40 MiB they are
// refused before any byte is sent.
const MAX_UPLOAD_MB = 40;
const MULTIPART_THRESHOLD_MB = 1;
const SMALL_CAPTURE = 'cs_http_espn.pcapng';
// Repeated into a capture of three parts.
const PARTS_CAPTURE = 'cs_ppa1e_ftp-crack.pcap';
// Analysis of a 700 KB capture takes a second or two; the margin is for a loaded 2-core machine.
const ANALYSIS_TIMEOUT_MS = 120_000;

const run = randomBytes(4).toString('hex');
let gateway;
let gatewayLog = '';
let browser;
let origin;
const problems = [];

function localEnv() {
  const file = path.join(ROOT, 'localstack/local.env');
  if (!existsSync(file)) throw new Error('localstack/local.env is missing: run localstack/up first');
  const env = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = line.match(/^([A-Z0-9_]+)=(.*)$/);
    if (m) env[m[1]] = m[2].replace(/^'(.*)'$/, '$1');
  }
  return env;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function must(result, what) {
  if (result.error || result.status !== 0) {
    throw new Error(`${what} failed: ${result.error?.message ?? ''}${result.stderr ?? ''}`);
  }
  return String(result.stdout);
}

/** A fresh database (migrated by the gateway at start), bucket, queue and DLQ for this run. */
function freshResources(env, pageOrigin) {
  const db = `test_ui_${run}`;
  must(
    spawnSync(path.join(env.PG_BIN, 'psql'), [env.DATABASE_URL, '-qc', `CREATE DATABASE ${db}`], { encoding: 'utf8' }),
    'creating the test database (is Postgres up? run localstack/up)',
  );
  const out = must(
    spawnSync(path.join(ROOT, '.local/venv/bin/python'), [path.join(ROOT, 'localstack/resources.py')], {
      encoding: 'utf8',
      env: {
        ...process.env,
        AWS_ACCESS_KEY_ID: env.AWS_ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY: env.AWS_SECRET_ACCESS_KEY,
        AWS_DEFAULT_REGION: env.AWS_REGION,
        ENDPOINT: env.AWS_ENDPOINT_URL,
        BUCKET: `ui-test-${run}`,
        QUEUE: `ui-test-${run}`,
        DLQ: `ui-test-${run}-dlq`,
        ORIGINS: pageOrigin,
        VISIBILITY: '60',
      },
    }),
    'creating the test bucket and queues in LocalStack (is it up? run localstack/up)',
  );
  const vars = Object.fromEntries([...out.matchAll(/^(\w+)='(.*)'$/gm)].map((m) => [m[1], m[2]]));
  return {
    DATABASE_URL: env.DATABASE_URL.replace(/\/[^/]+$/, `/${db}`),
    BUCKET_NAME: `ui-test-${run}`,
    QUEUE_URL: vars.QUEUE_URL,
    DLQ_URL: vars.DLQ_URL,
  };
}

async function waitHealthy(url, proc) {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`local-gateway exited (${proc.exitCode}):\n${gatewayLog}`);
    try {
      const r = await fetch(`${url}/api/health`);
      if (r.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`local-gateway did not answer /api/health within 60 s:\n${gatewayLog}`);
}

before(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install the Debian package 'chromium' (scripts/install-chromium)`);
  if (!existsSync(GATEWAY)) throw new Error(`${GATEWAY} is missing: cargo build -p local-gateway`);
  if (!existsSync(path.join(CAPTURES, SMALL_CAPTURE))) throw new Error(`${CAPTURES} is missing the test captures`);
  mkdirSync(SHOTS, { recursive: true });
  const env = localEnv();
  const port = await freePort();
  origin = `http://127.0.0.1:${port}`;
  const resources = freshResources(env, origin);
  gateway = spawn(GATEWAY, [], {
    cwd: ROOT,
    env: {
      ...process.env,
      ...env,
      ...resources,
      APP_PORT: String(port),
      ALLOWED_ORIGINS: origin,
      ADMIN_PASSWORD,
      MAX_UPLOAD_SIZE_MB: String(MAX_UPLOAD_MB),
      MULTIPART_THRESHOLD_MB: String(MULTIPART_THRESHOLD_MB),
      WEB_DIR: path.join(ROOT, 'web'),
      LOG_LEVEL: 'warn',
      LOG_FORMAT: 'text',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  gateway.stdout.on('data', (d) => { gatewayLog += d; });
  gateway.stderr.on('data', (d) => { gatewayLog += d; });
  await waitHealthy(origin, gateway);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
});

after(async () => {
  await browser?.close();
  gateway?.kill('SIGINT');
});

/** A page in its own cookie jar that records console errors, page errors and CSP violations. */
async function newPage(name, viewport = { width: 1280, height: 860 }) {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  const page = await context.newPage();
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI}`);
    });
  });
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const url = msg.location()?.url ?? '';
    // Chromium logs every non-2xx answer to fetch; refusals from our API are expected in these
    // flows (not signed in yet, pending approval, too large) and are asserted on the page.
    const expectedRefusal = /^Failed to load resource: the server responded with a status of (401|403|422)/.test(msg.text())
      && url.startsWith(`${origin}/api/`);
    if (!expectedRefusal) problems.push(`[${name}] console: ${msg.text()} (${url})`);
  });
  page.on('pageerror', (err) => problems.push(`[${name}] page error: ${err.message}`));
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

async function signIn(page, username, password) {
  await page.goto(`${origin}/#/signin`);
  await page.getByLabel('User name').fill(username);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

const user = `ui-${run}`;
const userPassword = 'Correct-Horse-Battery-7';

test('a new user registers, is approved by an admin, uploads a capture, reads and deletes its report, and signs out', async () => {
  const visitor = await newPage('user');
  await visitor.goto(origin);
  await visitor.getByRole('heading', { name: 'Sign in' }).waitFor();
  await shot(visitor, '01-sign-in');

  await visitor.getByRole('link', { name: 'Request one' }).click();
  await visitor.getByLabel('User name').fill(user);
  await visitor.getByLabel('E-mail').fill(`${user}@example.org`);
  await visitor.getByLabel('Password', { exact: true }).fill(userPassword);
  await visitor.getByLabel('Confirm password').fill(userPassword);
  await shot(visitor, '02-register');
  await visitor.getByRole('button', { name: 'Create account' }).click();
  await visitor.getByText('An administrator must approve it').waitFor();

  await signIn(visitor, user, userPassword);
  await visitor.getByText('waiting for an administrator to approve it').waitFor();
  await shot(visitor, '03-sign-in-pending');

  const admin = await newPage('admin');
  await signIn(admin, 'admin', ADMIN_PASSWORD);
  await admin.getByRole('heading', { name: 'History' }).waitFor();
  await admin.getByRole('link', { name: 'Admin' }).click();
  const row = admin.locator(`tr[data-user="${user}"]`);
  await row.waitFor();
  assert.equal(await admin.locator('tbody tr').first().getAttribute('data-user'), user, 'pending users come first');
  assert.equal(await row.getAttribute('data-status'), 'pending');
  await shot(admin, '04-admin-pending');
  await row.getByRole('button', { name: `Approve ${user}` }).click();
  await admin.locator(`tr[data-user="${user}"][data-status="approved"]`).waitFor();

  await signIn(visitor, user, userPassword);
  await visitor.getByRole('heading', { name: 'History' }).waitFor();
  assert.equal(await visitor.getByRole('link', { name: 'Admin' }).isVisible(), false, 'a user sees no Admin link');
  await shot(visitor, '05-history-empty');

  await visitor.getByRole('link', { name: 'Upload', exact: true }).first().click();
  await visitor.getByRole('heading', { name: 'Upload captures' }).waitFor();
  await visitor.locator('#file-input').setInputFiles(path.join(CAPTURES, SMALL_CAPTURE));
  await visitor.getByText('Uploaded; analysis queued.').waitFor({ timeout: 30_000 });
  const huge = Buffer.alloc((MAX_UPLOAD_MB + 1) * 1024 * 1024);
  Buffer.from('d4c3b2a1', 'hex').copy(huge);
  await visitor.locator('#file-input').setInputFiles({ name: 'huge.pcap', mimeType: 'application/octet-stream', buffer: huge });
  await visitor.getByText('huge.pcap is too large').waitFor();
  await visitor.locator('#file-input').setInputFiles({ name: 'notes.pcap', mimeType: 'text/plain', buffer: Buffer.from('these are my notes, not packets') });
  await visitor.getByText('notes.pcap is not a capture').waitFor();
  await shot(visitor, '06-upload');

  await visitor.getByRole('link', { name: 'Follow it in History' }).click();
  const task = visitor.locator('tbody tr').filter({ hasText: SMALL_CAPTURE });
  await visitor.locator('tbody tr[data-status="completed"]').filter({ hasText: SMALL_CAPTURE }).waitFor({ timeout: ANALYSIS_TIMEOUT_MS });
  await shot(visitor, '07-history-completed');

  const [download] = await Promise.all([
    visitor.waitForEvent('download'),
    task.getByRole('link', { name: 'JSON' }).click(),
  ]);
  const report = JSON.parse(readFileSync(await download.path(), 'utf8'));
  assert.ok(report.metadata.total_packets > 0, 'the JSON report counts packets');

  await task.getByRole('link', { name: 'View report' }).click();
  await visitor.getByRole('heading', { name: `Report: ${SMALL_CAPTURE}` }).waitFor();
  const frame = visitor.frameLocator('iframe.report');
  await frame.locator('body').getByText(/health/i).first().waitFor({ timeout: 30_000 });
  await shot(visitor, '08-report');

  await visitor.getByRole('link', { name: 'Back' }).click();
  visitor.once('dialog', (d) => d.accept());
  await task.getByRole('button', { name: `Delete ${SMALL_CAPTURE}` }).click();
  await visitor.getByText(`${SMALL_CAPTURE} deleted.`).waitFor();
  await visitor.locator('tbody tr[data-status="expired"]').filter({ hasText: SMALL_CAPTURE }).waitFor();

  // A normal user typing the admin address gets no admin data, and the API refuses too.
  await visitor.goto(`${origin}/#/admin`);
  await visitor.getByText('This page is for administrators.').waitFor();
  const status = await visitor.evaluate(async () => (await fetch('/api/users')).status);
  assert.equal(status, 403);

  await visitor.getByRole('link', { name: 'Profile' }).click();
  await visitor.getByRole('heading', { name: 'Profile' }).waitFor();
  await shot(visitor, '09-profile');

  await visitor.setViewportSize({ width: 390, height: 844 });
  await visitor.getByRole('link', { name: 'History' }).click();
  await visitor.getByRole('heading', { name: 'History' }).waitFor();
  await shot(visitor, '10-history-phone');
  await visitor.setViewportSize({ width: 1280, height: 860 });

  await visitor.getByRole('button', { name: 'Sign out' }).click();
  await visitor.getByText('You are signed out.').waitFor();
  await visitor.goto(`${origin}/#/history`);
  await visitor.getByRole('heading', { name: 'Sign in' }).waitFor();
  assert.equal(await visitor.evaluate(async () => (await fetch('/api/users/me')).status), 401);
  await admin.context().close();
  await visitor.context().close();
});

test('an admin creates an account with a temporary password, blocks and unblocks it, and the user must change the password first', async () => {
  const admin = await newPage('admin2');
  await signIn(admin, 'admin', ADMIN_PASSWORD);
  await admin.getByRole('heading', { name: 'History' }).waitFor();
  await admin.goto(`${origin}/#/admin`);
  const name = `tmp-${run}`;
  await admin.getByLabel('User name').fill(name);
  await admin.getByLabel('E-mail').fill(`${name}@example.org`);
  await admin.getByRole('button', { name: 'Create with temporary password' }).click();
  const secret = admin.locator('.notice code.secret');
  await secret.waitFor();
  const temporary = (await secret.textContent()).trim();
  await shot(admin, '11-admin-created');

  await admin.locator(`tr[data-user="${name}"]`).getByRole('button', { name: `Block ${name}` }).click();
  await admin.locator(`tr[data-user="${name}"][data-status="blocked"]`).waitFor();
  const newcomer = await newPage('newcomer');
  await signIn(newcomer, name, temporary);
  await newcomer.getByText('This account is blocked.').waitFor();

  await admin.locator(`tr[data-user="${name}"]`).getByRole('button', { name: `Unblock ${name}` }).click();
  await admin.locator(`tr[data-user="${name}"][data-status="approved"]`).waitFor();
  await signIn(newcomer, name, temporary);
  await newcomer.getByText('You signed in with a temporary password').waitFor();
  await shot(newcomer, '12-forced-password-change');
  await newcomer.goto(`${origin}/#/upload`);
  await newcomer.getByRole('heading', { name: 'Profile' }).waitFor();
  await newcomer.getByLabel('Temporary password').fill(temporary);
  await newcomer.getByLabel('New password', { exact: true }).fill('Brand-New-Passphrase-99');
  await newcomer.getByLabel('Confirm new password').fill('Brand-New-Passphrase-99');
  await newcomer.getByRole('button', { name: 'Change password' }).click();
  await newcomer.getByRole('heading', { name: 'History' }).waitFor();
  await newcomer.getByRole('link', { name: 'Upload', exact: true }).first().click();
  await newcomer.getByRole('heading', { name: 'Upload captures' }).waitFor();

  await admin.locator(`tr[data-user="${name}"] input[type=checkbox]`).check();
  await admin.getByRole('button', { name: 'Block selected', exact: true }).click();
  await admin.getByText('block: 1 of 1 done').waitFor();
  await admin.locator(`tr[data-user="${name}"][data-status="blocked"]`).waitFor();
  await shot(admin, '13-admin-bulk');
  await admin.context().close();
  await newcomer.context().close();
});

/** A pcap of about 17 MiB: the records of a shared capture, over and over (three parts). */
function partsCapture() {
  const bytes = readFileSync(path.join(CAPTURES, PARTS_CAPTURE));
  const records = bytes.subarray(24);
  const copies = Math.ceil((17 * 1024 * 1024) / records.length);
  const out = path.join(ROOT, 'target/tmp', `parts-${run}.pcap`);
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, Buffer.concat([bytes.subarray(0, 24), ...Array(copies).fill(records)]));
  return out;
}

test('a capture above the multipart threshold goes up in parts, survives a page reload mid-way, and is analysed', async () => {
  const file = partsCapture();
  const name = path.basename(file);
  const page = await newPage('multipart');
  const puts = new Map();
  page.on('request', (r) => {
    const part = r.method() === 'PUT' && new URL(r.url()).searchParams.get('partNumber');
    if (part) puts.set(part, (puts.get(part) ?? 0) + 1);
  });
  await signIn(page, 'admin', ADMIN_PASSWORD);
  await page.getByRole('heading', { name: 'History' }).waitFor();
  await page.goto(`${origin}/#/upload`);
  await page.getByRole('heading', { name: 'Upload captures' }).waitFor();

  // Parts 2 and 3 hang (a cut): part 1 arrives, then the page is reloaded.
  const hang = (route) => {
    if (/partNumber=[23]\b/.test(route.request().url())) return; // never answered
    route.continue();
  };
  await page.route(/partNumber=/, hang);
  const first = page.waitForResponse((r) => /partNumber=1\b/.test(r.url()) && r.ok(), { timeout: 60_000 });
  await page.locator('#file-input').setInputFiles(file);
  await first;
  await page.reload();
  await page.unroute(/partNumber=/, hang);
  await page.getByRole('heading', { name: 'Upload captures' }).waitFor();

  // The same file again: the upload resumes from the part the store holds.
  await page.locator('#file-input').setInputFiles(file);
  await page.getByText('Uploaded; analysis queued.').waitFor({ timeout: 60_000 });
  assert.equal(puts.get('1'), 1, 'part 1 was not sent again');
  assert.ok(puts.get('3') >= 1, 'part 3 was sent');
  await shot(page, '14-upload-in-parts');
  await page.getByRole('link', { name: 'Follow it in History' }).click();
  await page.locator('tbody tr[data-status="completed"]').filter({ hasText: name }).waitFor({ timeout: ANALYSIS_TIMEOUT_MS });
  await page.context().close();
});

test('no console error and no CSP violation happened in any page', () => {
  assert.deepEqual(problems, []);
});
