// Browser test of the siyu console: starts a real `siyu demo` on a free
// port with a temp data dir, drives Debian's Chromium with playwright-core,
// and saves one screenshot per page to screenshots/.
//
//   SIYU_BIN=../../target/debug/siyu node console.test.mjs
//
// Every step prints its name and time; the first failure stops the run
// with exit code 1 (and a screenshot of the page at that moment).
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = process.env.SIYU_BIN || path.join(here, '../../target/debug/siyu');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = path.join(here, 'screenshots');
const PASSWORD = 'siyu-demo';
fs.mkdirSync(SHOTS, { recursive: true });

// ---------- the server ----------
function startDemo() {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'siyu-e2e-'));
  const child = spawn(BIN, ['demo', '--listen', '127.0.0.1:0', '--data-dir', dataDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' },
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`siyu demo did not start in 120 s\nstdout:\n${out}\nstderr:\n${err}`)), 120_000);
    child.stdout.on('data', (d) => {
      out += d;
      const url = /siyu demo on (http:\/\/\S+)/.exec(out);
      const key = /write key:\s+(\S+)/.exec(out);
      const logins = out.includes('login analyst');
      if (url && key && logins) { clearTimeout(timer); resolve({ url: url[1], key: key[1] }); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`siyu demo exited with ${code}\nstdout:\n${out}\nstderr:\n${err}`)); });
  });
  return { child, dataDir, ready, output: () => out };
}

// ---------- steps ----------
let failures = 0;
async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failures++;
    console.log(`FAIL ${name} (${Date.now() - t0} ms)\n${e.stack || e}`);
    throw e;
  }
}

const demo = startDemo();
let browser;
const pageErrors = [];
try {
  const { url, key } = await demo.ready;
  console.log(`siyu demo at ${url} (data ${demo.dataDir})`);
  const apiGet = async (p) => {
    const r = await fetch(url + p, { headers: { authorization: `Bearer ${key}` } });
    assert.equal(r.status, 200, `${p}: ${r.status}`);
    return r.json();
  };

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, locale: 'zh-CN' });
  const page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource: the server responded with a status of 40[0-4]/.test(m.text())) pageErrors.push(`console: ${m.text()}`); });
  const shot = (name) => page.screenshot({ path: path.join(SHOTS, name), fullPage: true });
  process.on('uncaughtException', async () => { await shot('failure.png').catch(() => {}); });

  async function login(who) {
    await page.goto(url + '/');
    await page.locator('#login-form').waitFor();
    await page.fill('#login-name', who);
    await page.fill('#login-password', PASSWORD);
    await page.click('#login-submit');
    await page.locator('#app-view').waitFor();
  }

  await step('login page is zh-CN; a wrong password is refused', async () => {
    await page.goto(url + '/');
    await page.locator('#login-form').waitFor();
    assert.equal(await page.textContent('#login-submit'), '登录');
    await page.fill('#login-name', 'admin');
    await page.fill('#login-password', 'wrong-password');
    await page.click('#login-submit');
    await page.waitForFunction(() => document.querySelector('#login-error').textContent.length > 0);
    assert.equal(await page.textContent('#login-error'), '账号或密码错误');
    await shot('login.png');
  });

  await step('admin logs in; the session cookie is HttpOnly and SameSite=Strict', async () => {
    await login('admin');
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === 'siyu_session');
    assert.ok(session, 'session cookie set');
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Strict');
    assert.equal(await page.evaluate(() => document.cookie.includes('siyu_session')), false, 'JS cannot read the session');
    assert.equal(await page.textContent('#who-login'), 'admin');
  });

  await step('dashboard draws funnel, ROI, cohort and RFM charts', async () => {
    await page.waitForURL(/#\/dashboard/);
    for (const id of ['#funnel-chart svg', '#roi-chart svg', '#cohort-chart svg', '#rfm-chart svg']) {
      await page.locator(id).waitFor();
    }
    const health = await (await fetch(url + '/healthz')).json();
    const kpis = await page.textContent('#kpis');
    assert.ok(health.persons >= 5000 && health.persons < 10000);
    assert.ok(kpis.includes(`客户数${health.persons}`), `persons KPI: ${kpis} (${health.persons})`);
    const funnel = await apiGet('/v1/analytics/funnel');
    const bars = await page.locator('#funnel-chart svg rect[rx]').count();
    assert.equal(bars, funnel.rows.length * 3, 'one bar per channel and step');
    const cells = await page.locator('#rfm-chart svg rect').count();
    assert.equal(cells, 25, 'R × F grid');
    await page.selectOption('#rfm-m', '5');
    await page.locator('#rfm-chart svg rect').first().waitFor();
    await shot('dashboard.png');
  });

  // A demo person who came from Douyin, was linked to WeCom and bought.
  const members = await apiGet('/v1/segments/douyin_repeat_buyers/members?limit=1');
  const target = await apiGet('/v1/persons/' + encodeURIComponent(members.members[0]));
  const douyin = target.identities.find((i) => i.startsWith('douyin:'));
  const wecom = target.identities.find((i) => i.startsWith('wecom:'));
  assert.ok(douyin && wecom, `demo person with douyin and wecom identities: ${target.identities}`);

  await step(`persons: search by a Douyin prefix finds ${douyin}; profile shows WeCom identity and purchases`, async () => {
    await page.click('#nav a[data-page=persons]');
    await page.fill('#person-q', douyin.slice(0, 13));
    await page.press('#person-q', 'Enter');
    const link = page.locator('#person-results a.person-link', { hasText: target.canonical_id });
    await link.waitFor();
    await link.click();
    await page.locator('#profile').waitFor();
    const ids = await page.textContent('#identities');
    assert.ok(ids.includes(douyin) && ids.includes(wecom), `identities: ${ids}`);
    assert.equal(Number(await page.textContent('#purchases')), target.purchases);
    assert.ok(target.purchases >= 2);
    assert.ok((await page.locator('#timeline-rows tr.ev-purchase').count()) >= 1, 'purchases in the timeline');
    assert.ok((await page.textContent('#person-segments')).includes('douyin_repeat_buyers'));
    const href = await page.getAttribute('#export', 'href');
    const exported = await page.evaluate(async (h) => (await fetch(h)).text(), href);
    assert.ok(exported.split('\n').filter(Boolean).length >= target.events, 'export link returns every event as JSONL');
    await shot('person.png');
  });

  await step('persons: record an opt-out; erase asks for the id, then the person is gone', async () => {
    const reachable = await apiGet('/v1/segments/vip/members?limit=1'); // vip excludes opted-out persons
    const victim = reachable.members[0];
    await page.goto(url + '/#/persons/' + encodeURIComponent(victim));
    await page.locator('#profile').waitFor();
    assert.equal(await page.getAttribute('#consent', 'class'), 'badge good');
    page.once('dialog', (d) => d.accept());
    await page.click('#opt-out');
    await page.waitForFunction(() => document.querySelector('#consent') && document.querySelector('#consent').className === 'badge bad');
    assert.equal((await apiGet('/v1/persons/' + encodeURIComponent(victim))).opted_out, true, 'opt-out recorded');
    await shot('person-opted-out.png');
    page.once('dialog', (d) => d.accept('not-the-id'));
    await page.click('#erase');
    await page.waitForTimeout(300);
    assert.equal((await fetch(url + '/v1/persons/' + encodeURIComponent(victim), { headers: { authorization: `Bearer ${key}` } })).status, 200, 'a wrong confirmation erases nothing');
    page.once('dialog', (d) => d.accept(victim));
    await page.click('#erase');
    await page.waitForURL(/#\/persons$/);
    assert.equal((await fetch(url + '/v1/persons/' + encodeURIComponent(victim), { headers: { authorization: `Bearer ${key}` } })).status, 404);
  });

  const source = 'purchases >= 2 and net_spend >= 300.00 and not opted_out';
  await step('segments: inline error with a caret, then a live count, save, members, explain', async () => {
    await page.click('#nav a[data-page=segments]');
    await page.locator('#segment-source').waitFor();
    await page.fill('#segment-name', 'e2e_big_spenders');
    await page.fill('#segment-source', 'purchases >= 2 and');
    await page.locator('#segment-error').waitFor();
    assert.match(await page.textContent('#segment-error'), /column 19/);
    assert.ok((await page.textContent('pre.caret')).includes('^'));
    await shot('segment-error.png');
    await page.fill('#segment-source', source);
    await page.locator('#segment-count').waitFor();
    const preview = await (await fetch(url + '/v1/segments/preview', { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ segment: source }) })).json();
    assert.ok(preview.count > 0);
    assert.ok((await page.textContent('#segment-count')).includes(preview.count.toLocaleString()), 'count as the API says');
    await page.click('#segment-save');
    await page.waitForURL(/#\/segments\/e2e_big_spenders/);
    await page.locator('#segment-members a').first().waitFor();
    const saved = (await apiGet('/v1/segments')).segments.find((s) => s.name === 'e2e_big_spenders');
    assert.equal(saved.count, preview.count);
    await page.click('#explain-result >> xpath=..//button');
    await page.locator('#explain-result ul.explain').waitFor();
    assert.ok((await page.textContent('#explain-result')).includes('✓'));
    await shot('segments.png');
  });

  await step('settings: keys, operators, spend upload; an admin creates a write key', async () => {
    await page.click('#nav a[data-page=settings]');
    await page.locator('#key-list').waitFor();
    assert.ok((await page.textContent('#operator-list')).includes('analyst'));
    await page.fill('#key-name', 'e2e');
    await page.click('#key-create');
    await page.locator('#new-key').waitFor();
    const newKey = await page.textContent('#new-key');
    assert.match(newKey, /^sk_[0-9a-f]{48}$/);
    const r = await fetch(url + '/v1/segments', { headers: { authorization: `Bearer ${newKey}` } });
    assert.equal(r.status, 200, 'the new key works');
    await page.fill('#spend-csv', 'day,channel,spend\n2025-01-01,douyin,18000000\n2025-01-01,kuaishou,4000000\n');
    await page.click('#spend-upload');
    await page.locator('#spend-result .good').waitFor();
    await shot('settings.png');
  });

  await step('language switch to English persists across a reload', async () => {
    await page.click('#nav a[data-page=dashboard]');
    await page.locator('#funnel-chart svg').waitFor();
    await page.click('#lang-toggle');
    await page.waitForFunction(() => document.querySelector('#nav a[data-page=persons]').textContent === 'Persons');
    await page.reload();
    await page.locator('#funnel-chart svg').waitFor();
    assert.equal(await page.textContent('#nav a[data-page=dashboard]'), 'Dashboard');
    assert.equal(await page.evaluate(() => document.documentElement.lang), 'en');
    await shot('dashboard-en.png');
    await page.click('#lang-toggle');
    await page.waitForFunction(() => document.querySelector('#nav a[data-page=dashboard]').textContent === '概览');
  });

  await step('an analyst sees read-only controls and every write is 403 forbidden', async () => {
    await page.click('#logout');
    await page.locator('#login-form').waitFor();
    await login('analyst');
    assert.equal(await page.isVisible('#readonly-banner'), true);
    await page.goto(url + '/#/segments/e2e_big_spenders');
    await page.locator('#segment-save').waitFor();
    assert.equal(await page.isDisabled('#segment-save'), true, 'save is disabled');
    await page.locator('#segment-count').waitFor(); // preview (a read-only POST) still works
    const forced = await page.evaluate(async () => {
      const csrf = document.cookie.split('; ').find((c) => c.startsWith('siyu_csrf=')).slice(10);
      const r = await fetch('/v1/segments/e2e_big_spenders', { method: 'PUT', headers: { 'content-type': 'application/json', 'x-csrf-token': csrf }, body: '{"segment":"purchases >= 1"}' });
      return { status: r.status, body: await r.json() };
    });
    assert.equal(forced.status, 403);
    assert.equal(forced.body.code, 'forbidden');
    await shot('analyst-segments.png');
    await page.goto(url + '/#/persons/' + encodeURIComponent(douyin));
    await page.locator('#profile').waitFor();
    assert.equal(await page.isDisabled('#erase'), true, 'erase is disabled');
    await page.goto(url + '/#/settings');
    await page.locator('#key-list').waitFor();
    assert.equal(await page.isDisabled('#key-create'), true);
    assert.equal(await page.isDisabled('#spend-upload'), true);
    await shot('analyst-settings.png');
  });

  await step('without the CSRF header a logged-in write is refused', async () => {
    const r = await page.evaluate(async () => (await fetch('/v1/spend', { method: 'PUT', body: 'day,channel,spend\n' })).status);
    assert.equal(r, 403);
  });

  await step('no page errors or CSP violations', async () => {
    assert.deepEqual(pageErrors, []);
  });
} catch (e) {
  if (!failures) console.log(`FAIL setup\n${e.stack || e}`);
  failures = failures || 1;
} finally {
  if (browser) await browser.close().catch(() => {});
  demo.child.kill('SIGTERM');
  await new Promise((r) => (demo.child.exitCode !== null ? r() : demo.child.on('exit', r)));
  fs.rmSync(demo.dataDir, { recursive: true, force: true });
}
console.log(failures ? `e2e: FAILED (screenshots in ${SHOTS})` : `e2e: all passed (screenshots in ${SHOTS})`);
process.exit(failures ? 1 : 0);
