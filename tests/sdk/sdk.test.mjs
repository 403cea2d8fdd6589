// SDK compatibility: the official analytics libraries, unchanged but for
// host and key, send one scenario each (identify, track, page, screen,
// group, alias) to a real `siyu serve`; what landed is read back through
// siyu's API (GET /v1/persons/…, /timeline) and checked per call.
//
//   SIYU_BIN=…/siyu node sdk.test.mjs   (run.sh builds and installs first)
//
// Prints the matrix (call × SDK × result) and exits 1 on any failure.

import { spawn, execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const BIN = process.env.SIYU_BIN || path.join(here, '../../target/debug/siyu');
const PY = path.join(here, '.venv/bin/python');
const ADMIN = 'sdk-test-admin-token-0123456789';

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function startSiyu() {
  const port = await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'siyu-sdk-'));
  const child = spawn(BIN, ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir], {
    env: { ...process.env, SIYU_ADMIN_TOKEN: ADMIN, RUST_LOG: process.env.RUST_LOG || 'warn' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) return { url, child, dataDir };
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill();
  throw new Error('siyu did not start');
}

async function api(url, method, p, token, body) {
  const res = await fetch(url + p, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = text; }
  return { status: res.status, json };
}

async function makeKey(url, body) {
  const r = await api(url, 'POST', '/v1/admin/keys', ADMIN, body);
  if (r.status !== 201) throw new Error(`key: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json.key;
}

const CALLS = ['identify', 'track', 'page', 'screen', 'group', 'alias', 'user+anon', 'context'];

/** What each call of the scenario (prefix P) must have left, as found through the API. */
async function check(url, key, P, { browser = false } = {}) {
  const who = encodeURIComponent(`user:${P}-new`);
  const person = await api(url, 'GET', `/v1/persons/${who}`, key);
  const out = Object.fromEntries(CALLS.map((c) => [c, 'missing']));
  if (person.status !== 200) return { out, why: `person: ${person.status} ${JSON.stringify(person.json)}` };
  const p = person.json;
  const tl = await api(url, 'GET', `/v1/persons/${who}/timeline?limit=500`, key);
  const events = (tl.json.events || []).map((e) => e.event);
  const ids = new Set(p.identities);
  const custom = (n) => events.find((e) => e.type === 'custom' && e.name === n);
  const ok = (c, cond, detail) => { out[c] = cond ? 'ok' : `FAIL ${detail}`; };
  ok('identify', ids.has(`user:${P}-王@例子.cn`) && p.traits.name === '张三' && p.traits.city === '上海',
    `traits ${JSON.stringify(p.traits)} ids ${[...ids]}`);
  const buy = events.find((e) => e.type === 'purchase');
  ok('track', buy && buy.amount === 1250 && buy.properties?.currency === 'CNY' && p.purchases === 1,
    JSON.stringify(buy));
  const page = custom('page_viewed');
  ok('page', page && page.properties?.name === 'Home' && page.properties?.category === 'Shop', JSON.stringify(page));
  const screen = custom('screen_viewed');
  ok('screen', screen && screen.properties?.name === 'Cart' && screen.properties?.category === 'App',
    JSON.stringify(screen));
  ok('group', p.traits.group_id === `${P}-g` && p.traits.group?.plan === 'pro' && p.traits.group?.name === 'Acme',
    JSON.stringify(p.traits));
  ok('alias', ids.has(`user:${P}-new`) && ids.has(`user:${P}-王@例子.cn`) && !ids.has(`anon:${P}-王@例子.cn`),
    [...ids].join(' '));
  ok('user+anon', ids.has(`anon:${P}-anon`), [...ids].join(' '));
  const ctx = buy?.properties?.context;
  ok('context', buy && buy.channel === 'xiaohongshu' && buy.properties?.campaign === 'double11'
    && ctx?.ip && (browser ? /Chrom/.test(ctx.userAgent || '') : !!ctx?.userAgent),
    JSON.stringify(buy));
  return { out, events: events.length };
}

async function until(url, key, P, opts) {
  let last;
  for (let i = 0; i < 60; i++) {
    last = await check(url, key, P, opts);
    if (Object.values(last.out).every((v) => v === 'ok')) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  return last;
}

function runPython(lib, url, key, P, mode) {
  return new Promise((resolve) => {
    execFile(PY, [path.join(here, 'send_python.py'), lib, url, key, P, mode], { timeout: 60000 },
      (err, stdout, stderr) => resolve({ err, stdout, stderr }));
  });
}

async function nodeScenario(client, P, kind) {
  const user = `${P}-王@例子.cn`;
  const anon = `${P}-anon`;
  const ua = { userAgent: `sdk-test ${kind}` };
  const campaign = { source: 'Xiaohongshu', medium: 'social', name: 'double11' };
  client.identify({ userId: user, anonymousId: anon, traits: { name: '张三', city: '上海' } });
  client.track({
    userId: user, anonymousId: anon, event: 'Order Completed',
    properties: { revenue: 12.5, currency: 'CNY', order_id: `${P}-o1` },
    context: { campaign, ...ua },
  });
  client.page({ userId: user, category: 'Shop', name: 'Home', properties: { path: '/' } });
  client.screen({ userId: user, category: 'App', name: 'Cart', properties: { items: 2 } });
  client.group({ userId: user, groupId: `${P}-g`, traits: { name: 'Acme', plan: 'pro' } });
  client.alias({ previousId: user, userId: `${P}-new` });
}

async function segmentNode(url, key, P) {
  const { Analytics } = require('@segment/analytics-node');
  const errors = [];
  const client = new Analytics({ writeKey: key, host: url });
  client.on('error', (e) => errors.push(String(e?.reason ?? e?.message ?? e)));
  await nodeScenario(client, P, 'analytics-node');
  await client.closeAndFlush({ timeout: 20000 });
  return errors;
}

async function rudderNode(url, key, P) {
  const Rudder = require('@rudderstack/rudder-sdk-node');
  const errors = [];
  const client = new Rudder(key, { dataPlaneUrl: url, errorHandler: (e) => errors.push(String(e?.message ?? e)), logLevel: 'error' });
  await nodeScenario(client, P, 'rudder-node');
  await client.flush();
  return errors;
}

async function analyticsNext(url, key, P, shop, batching = false) {
  const { chromium } = require('playwright-core');
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
  const errors = [];
  try {
    const page = await browser.newPage();
    // The shop's page and analytics.js come from the shop's own server
    // (`shop`, another origin than siyu's: CORS); nothing else is reachable.
    await page.route('**/*', (route) => {
      const u = new URL(route.request().url());
      return u.hostname === '127.0.0.1' ? route.continue() : route.abort();
    });
    page.on('pageerror', (e) => errors.push(`pageerror ${e.message}`));
    if (process.env.SDK_DEBUG) {
      page.on('console', (m) => console.log('browser:', m.text()));
      page.on('request', (r) => console.log('request:', r.method(), r.url(), r.postData()));
      page.on('response', (r) => console.log('response:', r.status(), r.url()));
    }
    await page.goto(`${shop}/?utm_source=Xiaohongshu&utm_medium=social&utm_campaign=double11`);
    const host = new URL(url).host;
    const result = await page.evaluate(async ({ key, host, P, batching }) => {
      const { AnalyticsBrowser } = window.AnalyticsNext;
      const seg = { apiKey: key, apiHost: `${host}/v1`, protocol: 'http' };
      // Batching: messages go together to /v1/b (`{batch, sentAt, writeKey}`).
      if (batching) seg.deliveryStrategy = { strategy: 'batching', config: { size: 50, timeout: 200 } };
      const [analytics] = await AnalyticsBrowser.load(
        { writeKey: key, cdnSettings: { integrations: { 'Segment.io': seg } } },
        { integrations: { 'Segment.io': seg } },
      );
      const failed = [];
      const note = (name) => (ctx) => { if (ctx.failedDelivery()) failed.push(`${name}: ${ctx.failedDelivery().reason}`); };
      analytics.setAnonymousId(`${P}-anon`);
      const user = `${P}-王@例子.cn`;
      // analytics-next sends the current user as `userId` of every call,
      // alias too (alias(to, from) after identify(from) sends from → from),
      // so a page aliases before it identifies, as analytics.js advises.
      note('alias')(await analytics.alias(`${P}-new`, user));
      note('identify')(await analytics.identify(user, { name: '张三', city: '上海' }));
      note('track')(await analytics.track('Order Completed', { revenue: 12.5, currency: 'CNY', order_id: `${P}-o1` }));
      note('page')(await analytics.page('Shop', 'Home', { path: '/' }));
      note('screen')(await analytics.screen('App', 'Cart', { items: 2 }));
      note('group')(await analytics.group(`${P}-g`, { name: 'Acme', plan: 'pro' }));
      return failed;
    }, { key, host, P, batching });
    if (batching) await page.waitForTimeout(600); // the batch's timeout, then its request
    errors.push(...result);
  } finally {
    await browser.close();
  }
  return errors;
}

/** The shop: a page loading analytics.js (the package's UMD build), on its own origin. */
async function startShop() {
  const http = await import('node:http');
  const umd = path.join(path.dirname(require.resolve('@segment/analytics-next/package.json')), 'dist/umd');
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    if (u.pathname.startsWith('/ajs/')) {
      const f = path.join(umd, path.basename(u.pathname));
      if (fs.existsSync(f)) {
        res.writeHead(200, { 'content-type': 'application/javascript' });
        return fs.createReadStream(f).pipe(res);
      }
      res.writeHead(404);
      return res.end();
    }
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>shop</title><script src="/ajs/index.js"></script>');
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { server, origin: `http://127.0.0.1:${server.address().port}` };
}

async function corsRefusals(url, fullKey) {
  // A browser with a key that can read is refused, naming the fix; so is
  // an origin the key does not list. The preflight itself is answered.
  const pre = await fetch(`${url}/v1/t`, { method: 'OPTIONS', headers: { origin: 'http://shop.test', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' } });
  const r = await fetch(`${url}/v1/t`, { method: 'POST', headers: { origin: 'http://shop.test', 'content-type': 'text/plain' }, body: JSON.stringify({ writeKey: fullKey, userId: 'x', event: 'E' }) });
  const body = await r.json();
  return pre.status === 204 && pre.headers.get('access-control-allow-origin') === 'http://shop.test'
    && r.status === 403 && /ingest/.test(body.message) ? 'ok' : `FAIL preflight ${pre.status}, full key from browser ${r.status} ${JSON.stringify(body)}`;
}

const { url, child, dataDir } = await startSiyu();
const shop = await startShop();
const matrix = {};
const notes = [];
let failed = false;
try {
  const full = await makeKey(url, { name: 'reader', scopes: ['ingest', 'read'] });
  const ingest = await makeKey(url, { name: 'sdk', scopes: ['ingest'] });
  const web = await makeKey(url, { name: 'web', scopes: ['ingest'], origins: [shop.origin] });
  const run = Date.now().toString(36);
  const sdks = [
    ['segment-analytics-python (gzip off)', (P) => runPython('segment', url, ingest, P, 'plain')],
    ['segment-analytics-python (gzip=True)', (P) => runPython('segment', url, ingest, P, 'gzip')],
    ['rudder-sdk-python (defaults: gzip)', (P) => runPython('rudder', url, ingest, P, 'default')],
    ['@segment/analytics-node (defaults)', (P) => segmentNode(url, ingest, P)],
    ['@rudderstack/rudder-sdk-node (defaults: gzip)', (P) => rudderNode(url, ingest, P)],
    ['@segment/analytics-next (Chromium, CORS)', (P) => analyticsNext(url, web, P, shop.origin)],
    ['@segment/analytics-next (Chromium, batching)', (P) => analyticsNext(url, web, P, shop.origin, true)],
  ];
  const only = process.env.SDK_ONLY;
  for (const [i, [name, send]] of sdks.entries()) {
    if (only && !name.includes(only)) continue;
    const P = `${run}s${i}`;
    const t0 = Date.now();
    let sendErr = '';
    try {
      const r = await send(P);
      if (Array.isArray(r) && r.length) sendErr = r.join('; ');
      if (r && r.err) sendErr = `${r.err.message} ${r.stdout} ${r.stderr}`;
    } catch (e) {
      sendErr = String(e.stack || e);
    }
    const res = await until(url, full, P, { browser: name.includes('Chromium') });
    matrix[name] = { ...res.out, 'SDK errors': sendErr ? `FAIL ${sendErr.slice(0, 300)}` : 'none' };
    notes.push(`${name}: ${Date.now() - t0} ms${res.why ? ` (${res.why})` : ''}`);
  }
  matrix['browser rules'] = { 'CORS/key check': await corsRefusals(url, full) };
} finally {
  shop.server.close();
  child.kill('SIGTERM');
  await new Promise((r) => child.on('exit', r));
  fs.rmSync(dataDir, { recursive: true, force: true });
}

for (const [sdk, row] of Object.entries(matrix)) {
  console.log(`\n${sdk}`);
  for (const [call, result] of Object.entries(row)) {
    console.log(`  ${call.padEnd(16)} ${result}`);
    if (result !== 'ok' && result !== 'none') failed = true;
  }
}
console.log(`\n${notes.join('\n')}`);
console.log(failed ? '\nSDK compatibility: FAILED' : '\nSDK compatibility: all ok');
process.exit(failed ? 1 : 0);
