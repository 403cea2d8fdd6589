// Browser test of the operator inbox (会话, #/inbox): a `siyu demo` whose
// config takes signed Douyin comments (`[inbound] douyin`) and sends
// Douyin replies to a local bridge (`[connectors.bridges.douyin]`), a
// small HTTP server here that records each body with the time it came.
// A fresh comment is listed as unanswered; a second one, posted while
// the thread is open, appears live (the page's EventSource, no reload);
// a quick reply filled for the person goes out and reaches the bridge;
// ~20 replies measure click → bridge received (p50/p99 printed; target
// p99 ≤ 200 ms); a refusal is shown under the box; the conversation is
// resolved; English; an analyst cannot reply. The demo's own auto-reply
// (`price`: 多少钱/价格/求资料) answers the second comment too: replies are
// told apart on the bridge by their text, never by their order.
//
//   SIYU_BIN=../../target/debug/siyu node inbox.test.mjs
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { startDemo, step, launch, watch, login, finish, failSetup } from './harness.mjs';

const INBOUND_SECRET = 'e2e-inbox-inbound-secret';
const BRIDGE_SECRET = 'e2e-inbox-bridge-secret';
const FAN = 'douyin:e2e_fan1';
const FAN_NAME = '王小抖';
const REPLIES = Number(process.env.INBOX_REPLIES || 20);

// ---------- the Douyin bridge: every delivery with its arrival time ----------
const received = [];
const waiters = [];
const bridge = http.createServer((req, res) => {
  let body = '';
  req.on('data', (d) => { body += d; });
  req.on('end', () => {
    const at = performance.now();
    if (!req.url.startsWith('/bridge')) {
      // The Official Account's API (the demo's own WeChat sends): a token, then ok.
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ errcode: 0, errmsg: 'ok', access_token: 'E2E_TOKEN', expires_in: 7200, msgid: 1 }));
      return;
    }
    let json = null;
    try { json = JSON.parse(body); } catch (e) { /* kept as text */ }
    const rec = { at, path: req.url, json, body, signature: req.headers['x-siyu-signature'], key: req.headers['idempotency-key'] };
    received.push(rec);
    for (const w of waiters.slice()) if (w.match(rec)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(rec); }
    res.setHeader('content-type', 'application/json');
    res.end('{"ok":true}');
  });
});
await new Promise((r) => bridge.listen(0, '127.0.0.1', r));
const bridgeBase = `http://127.0.0.1:${bridge.address().port}`;
const bridgeUrl = `${bridgeBase}/bridge`;
// The first delivery (already here or still to come) whose body contains `text`.
function delivery(text, ms = 10_000) {
  const match = (r) => typeof r.body === 'string' && r.body.includes(text);
  const found = received.find(match);
  if (found) return Promise.resolve(found);
  return new Promise((resolve, reject) => {
    const w = { match, resolve };
    waiters.push(w);
    setTimeout(() => { const i = waiters.indexOf(w); if (i >= 0) { waiters.splice(i, 1); reject(new Error(`the bridge got no body with ${JSON.stringify(text)} in ${ms} ms; it got ${received.length}: ${received.slice(-3).map((r) => r.body.slice(0, 200)).join(' | ')}`)); } }, ms);
  });
}

const configFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'siyu-e2e-conf-')), 'siyu.toml');
fs.writeFileSync(configFile, `
[inbound]
douyin = "${INBOUND_SECRET}"

[connectors.bridges.douyin]
url = "${bridgeUrl}"
secret = "${BRIDGE_SECRET}"

# An Official Account (a 48 h service window): the fan follows it but has
# never written there, so a reply on WeChat is refused (409).
[connectors.wechat]
base_url = "${bridgeBase}"
app_id = "wxe2e0000inbox000"
secret = "e2e-wechat-secret"
`);

const demo = startDemo(['--config', configFile]);
let browser;
const errors = [];
const q = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil(p * xs.length) - 1)];
try {
  const { url, key } = await demo.ready;
  console.log(`siyu demo at ${url} (bridge at ${bridgeUrl})`);
  let seq = 0;
  // A customer's comment as the Douyin bridge posts it, signed.
  const comment = async (text, identity = FAN) => {
    const ts = Math.floor(Date.now() / 1000);
    const body = JSON.stringify([{ id: `e2e-inbox-${Date.now()}-${++seq}`, ts, identity, type: 'comment', text,
      properties: { kind: 'comment', comment_id: `c${Date.now()}${seq}`, item_id: 'v-e2e' } }]);
    const sig = crypto.createHmac('sha256', INBOUND_SECRET).update(`${ts}.default.${body}`).digest('hex');
    const r = await fetch(`${url}/v1/inbound/douyin`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-siyu-timestamp': String(ts), 'x-siyu-signature': `sha256=${sig}` }, body });
    const answer = await r.json();
    assert.equal(r.status, 200, JSON.stringify(answer));
    assert.equal(answer.accepted, 1, JSON.stringify(answer));
  };
  const call = async (method, p, body) => {
    const r = await fetch(url + p, { method, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    let json = null;
    try { json = JSON.parse(text); } catch (e) { /* text */ }
    return { status: r.status, json, text };
  };

  browser = await launch();
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, locale: 'zh-CN', timezoneId: 'UTC' });
  // Every EventSource the page opens, to see it closed when the page is left.
  await context.addInitScript(() => {
    const Native = window.EventSource;
    window.__streams = [];
    window.EventSource = function (u, o) { const es = new Native(u, o); window.__streams.push(es); return es; };
    window.EventSource.prototype = Native.prototype;
  });
  const page = await context.newPage();
  const shot = watch(page, errors);
  if (process.env.INBOX_DEBUG) page.on('request', (r) => { if (/conversations/.test(r.url())) console.log('     REQ', performance.now().toFixed(0), r.method(), r.url().replace(/^.*\/v1/, '')); });
  if (process.env.INBOX_DEBUG) page.on('response', async (r) => { if (/\/messages$/.test(r.url())) console.log('     POST', r.status(), performance.now().toFixed(0), await r.text().catch(() => '')); });
  const rowOf = (p) => `#inbox-list a.ib-row[data-person="${p}"]`;

  await step('setup: a named Douyin fan, a quick reply, a first comment', async () => {
    const ev = await call('POST', '/v1/events', [{ id: 'e2e-inbox-name', ts: new Date().toISOString(), identity: FAN, type: 'identify', traits: { name: FAN_NAME } },
      { id: 'e2e-inbox-follow', ts: new Date().toISOString(), identity: FAN, type: 'identify', ref: 'wechat:oE2Einbox' },
      { id: 'e2e-inbox-buy', ts: new Date(Date.now() - 86_400_000).toISOString(), identity: FAN, type: 'purchase', amount: 12900 }]);
    assert.equal(ev.status, 200, ev.text);
    const rules = await call('PUT', '/v1/sensitive-words', { rules: [{ id: 'private_deal', matcher: { any_of: ['加微信', '私下转账'] }, applies_to: 'both', category: '私下交易' }] });
    assert.equal(rules.status, 200, rules.text);
    const qr = await call('PUT', '/v1/quick-replies/e2e_hello', { title: 'E2E 问候', group: '售前', text: '{{name}} 您好，感谢关注！这是快捷回复。', keywords: ['问候'] });
    assert.equal(qr.status, 200, qr.text);
    await comment('你好，我想了解一下这款产品');
  });

  await step('as operator the inbox is the first page after the dashboard; the new conversation is unanswered', async () => {
    await login(page, url, 'operator');
    const navOrder = await page.$$eval('#nav a', (as) => as.map((a) => a.dataset.page));
    assert.deepEqual(navOrder.slice(0, 2), ['dashboard', 'inbox']);
    await page.click('#nav a[data-page=inbox]');
    await page.locator('#inbox-list').waitFor();
    await page.click('#inbox-filters [data-view=unanswered]');
    await page.locator(rowOf(FAN)).waitFor({ timeout: 10_000 });
    const row = page.locator(rowOf(FAN));
    assert.match(await row.textContent(), new RegExp(FAN_NAME));
    assert.match(await row.locator('.ib-preview').textContent(), /我想了解一下这款产品/);
    assert.equal(await row.locator('.ib-waiting').getAttribute('data-unanswered'), '1');
    assert.match(await row.locator('.ib-waiting').textContent(), /未回复 1 · 等 (<1|\d+) 分钟/);
    assert.equal(await row.locator('.badge.ch').textContent(), '抖音');
    const mark = await page.evaluate(() => performance.getEntriesByName('inbox:list').length);
    assert.ok(mark >= 1, 'performance mark inbox:list');
    await shot('inbox.png');
  });

  await step('open it: the thread, the profile and the reply channels', async () => {
    const t0 = Date.now();
    await page.click(rowOf(FAN));
    await page.locator('#inbox-messages .ib-msg.in').first().waitFor();
    console.log(`     thread drawn ${Date.now() - t0} ms after the click`);
    assert.equal(new URL(page.url()).hash, '#/inbox/' + encodeURIComponent(FAN));
    assert.equal(await page.textContent('#inbox-thread-name'), FAN_NAME);
    assert.match(await page.textContent('#inbox-identities'), /douyin:e2e_fan1/);
    assert.equal(await page.textContent('#inbox-spend'), '¥129.00');
    assert.equal(await page.textContent('#inbox-orders'), '1');
    const channels = await page.$$eval('#inbox-reply-channel option', (os) => os.map((o) => o.value));
    assert.equal(channels[0], 'douyin', `reply channels ${channels}`);
    assert.ok(await page.evaluate(() => performance.getEntriesByName('inbox:thread').length >= 1), 'performance mark inbox:thread');
    assert.equal(await page.evaluate(() => window.__streams.filter((s) => s.readyState !== 2).length), 1, 'one open EventSource');
  });

  await step('a comment posted while the thread is open appears live, without a reload', async () => {
    await page.evaluate(() => { window.__noReload = true; });
    const before = await page.locator('#inbox-messages .ib-msg.in').count();
    await comment('这个多少钱？可以私下转账吗');
    await page.waitForFunction((n) => document.querySelectorAll('#inbox-messages .ib-msg.in').length > n, before, { timeout: 10_000 });
    const last = page.locator('#inbox-messages .ib-msg.in').last();
    assert.match(await last.textContent(), /这个多少钱/);
    // Flagged by the sensitive-word rule: a red mark with its category.
    assert.equal(await last.locator('.ib-flag').getAttribute('data-rule'), 'private_deal');
    assert.match(await last.locator('.ib-flag').textContent(), /敏感词：私下交易/);
    // Its intent, read at ingest (properties.intent): a badge on the message.
    assert.equal(await last.locator('.ib-intent').getAttribute('data-intent'), 'price');
    assert.match(await last.locator('.ib-intent').textContent(), /询价/);
    // The list row follows too (its preview is the last message, in or out).
    await page.waitForFunction((p) => { const e = document.querySelector(`#inbox-list a.ib-row[data-person="${p}"] .ib-preview`); return e && !/我想了解/.test(e.textContent); }, FAN, { timeout: 10_000 });
    assert.equal(await page.evaluate(() => window.__noReload), true, 'the page was not reloaded');
    // The demo's `price` auto-reply answers it (to the bridge, like ours).
    const auto = await delivery('"identity":"douyin:e2e_fan1"', 15_000).catch(() => null);
    console.log(`     the demo's auto-reply ${auto ? 'reached the bridge too: ' + JSON.stringify(auto.json && auto.json.body) : 'did not answer'}`);
  });

  await step('a quick reply filled in for the person is sent and reaches the bridge', async () => {
    await page.fill('#inbox-qr', '问候');
    await page.locator('#inbox-qr-list [data-reply=e2e_hello]').click();
    await page.waitForFunction(() => document.querySelector('#inbox-text').value.includes('感谢关注'));
    const text = await page.inputValue('#inbox-text');
    assert.ok(text.startsWith(FAN_NAME), `filled for the person: ${text}`);
    const t0 = performance.now();
    await page.click('#inbox-send');
    const rec = await delivery('感谢关注', 10_000);
    console.log(`     quick reply: click → bridge ${(rec.at - t0).toFixed(1)} ms`);
    assert.equal(rec.json.channel, 'douyin');
    assert.equal(rec.json.identity, FAN);
    assert.equal(rec.json.body, text);
    assert.match(rec.signature || '', /^sha256=[0-9a-f]{64}$/);
    await page.locator('#inbox-sent').waitFor();
    await page.waitForFunction((s) => [...document.querySelectorAll('#inbox-messages .ib-msg.out .ib-text')].some((e) => e.textContent === s), text, { timeout: 10_000 });
    assert.match(await page.locator('#inbox-messages .ib-msg.out').last().textContent(), /operator/);
    await shot('inbox-thread.png');
  });

  await step('an operator reply that hits a rule is sent, flagged under the box and in the thread', async () => {
    await page.fill('#inbox-text', '方便的话可以加微信详聊');
    await page.click('#inbox-send');
    await page.waitForFunction(() => /私下交易/.test(document.querySelector('#inbox-result')?.textContent || ''), null, { timeout: 10_000 });
    await delivery('可以加微信详聊', 10_000);
    await page.waitForFunction(() => [...document.querySelectorAll('#inbox-messages .ib-msg.out.flagged .ib-text')].some((e) => e.textContent.includes('可以加微信详聊')), null, { timeout: 10_000 });
  });

  await step('assign it to me: it is listed under 我的', async () => {
    await page.click('#inbox-assign');
    await page.selectOption('#inbox-assign-select', 'operator');
    await page.waitForFunction(() => /已分配给 operator/.test(document.querySelector('#toast')?.textContent || ''), null, { timeout: 10_000 });
    await page.click('#inbox-filters [data-view=mine]');
    await page.locator(rowOf(FAN)).waitFor({ timeout: 10_000 });
    assert.match(await page.locator(rowOf(FAN) + ' .ib-op').textContent(), /operator/);
  });

  await step(`${REPLIES} replies: click → received by the bridge`, async () => {
    const lat = [];
    for (let i = 0; i < REPLIES; i++) {
      const marker = `E2E-R${i}-${crypto.randomBytes(3).toString('hex')}`;
      // The last reply's answer is back (the bridge may have it sooner).
      await page.waitForFunction(() => !document.querySelector('#inbox-send').disabled && !document.querySelector('#inbox-text').value);
      await page.fill('#inbox-text', `好的，已为您登记 ${marker}`);
      const t0 = performance.now();
      await page.click('#inbox-send');
      const rec = await delivery(marker, 5_000).catch(async (e) => {
        const st = await page.evaluate(() => ({ text: document.querySelector('#inbox-text').value, disabled: document.querySelector('#inbox-send').disabled, connected: document.querySelector('#inbox-send').isConnected }));
        throw new Error(`${e.message}\nunder the box: ${await page.textContent('#inbox-result')}; the box: ${JSON.stringify(st)}`);
      });
      lat.push(rec.at - t0);
    }
    const p50 = q(lat, 0.5);
    const p99 = q(lat, 0.99);
    console.log(`     click → bridge over ${lat.length} replies: p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${Math.max(...lat).toFixed(1)} ms (target p99 ≤ 200 ms)`);
    if (p99 > 200) console.log('     WARN p99 above the 200 ms target');
    assert.ok(p99 < 5000, `p99 ${p99} ms`);
    const ours = received.filter((r) => /E2E-R\d+-/.test(r.body)).length;
    assert.equal(ours, REPLIES, 'each reply delivered once');
  });

  await step('a template sent to this customer from the reply bar reaches the bridge', async () => {
    const before = received.length;
    await page.focus('#inbox-template');
    await page.locator('#inbox-template option[value=price]').waitFor({ state: 'attached' });
    await page.selectOption('#inbox-template', 'price');
    await page.click('#inbox-template-send');
    await page.locator('#inbox-template-sent').waitFor();
    const started = Date.now();
    while (!received.slice(before).some((r) => r.json && r.json.data && r.json.data.template === 'price')) {
      assert.ok(Date.now() - started < 10_000, `no template delivery; got ${received.slice(before).map((r) => r.body.slice(0, 120)).join(' | ')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  await step('a refusal from the server is shown under the reply box, the text kept', async () => {
    // The thread follows the replies live.
    await page.waitForFunction((n) => [...document.querySelectorAll('#inbox-messages .ib-msg.out .ib-text')].some((e) => e.textContent.includes(`E2E-R${n}-`)), REPLIES - 1, { timeout: 10_000 });
    // WeChat takes replies only within 48 h of the customer's last message
    // there, and this fan has never written on WeChat: 409.
    const channels = await page.$$eval('#inbox-reply-channel option', (os) => os.map((o) => o.value));
    assert.ok(channels.includes('wechat'), `reply channels ${channels}`);
    assert.match(await page.textContent('#inbox-windows li[data-channel=wechat]'), /已关闭/);
    await page.selectOption('#inbox-reply-channel', 'wechat');
    await page.fill('#inbox-text', '这条在服务窗口外，发不出去');
    await page.click('#inbox-send');
    await page.locator('#inbox-refusal').waitFor();
    assert.equal(await page.getAttribute('#inbox-refusal', 'data-code'), 'outside_service_window');
    assert.match(await page.textContent('#inbox-refusal'), /48 h/);
    assert.equal(await page.inputValue('#inbox-text'), '这条在服务窗口外，发不出去');
    console.log(`     refused: ${await page.textContent('#inbox-refusal')}`);
    await shot('inbox-refused.png');
    await page.selectOption('#inbox-reply-channel', 'douyin');
    await page.fill('#inbox-text', '');
  });

  await step('a follow-up task is added and done beside the thread', async () => {
    await page.fill('#inbox-task-title', '明天回电确认尺码');
    // A live redraw between typing and clicking (here a new comment) keeps
    // the title: the form is not rebuilt with the thread.
    const before = await page.locator('#inbox-messages .ib-msg.in').count();
    await comment('尺码偏大还是偏小？');
    await page.waitForFunction((n) => document.querySelectorAll('#inbox-messages .ib-msg.in').length > n, before, { timeout: 10_000 });
    assert.equal(await page.inputValue('#inbox-task-title'), '明天回电确认尺码');
    await page.click('#inbox-task-add');
    const task = page.locator('#inbox-tasks li[data-task]', { hasText: '明天回电确认尺码' });
    await task.waitFor({ timeout: 10_000 });
    const open = await (await fetch(url + '/v1/tasks?open=true', { headers: { authorization: `Bearer ${key}` } })).json();
    assert.ok(open.tasks.some((x) => x.title === '明天回电确认尺码' && x.operator === 'operator'), JSON.stringify(open.tasks));
    await task.locator('button').click();
    await task.waitFor({ state: 'detached', timeout: 10_000 });
  });

  await step('resolve: the thread says so and the list moves it to 已解决', async () => {
    await page.click('#inbox-resolve');
    await page.locator('#inbox-thread-status').waitFor({ timeout: 10_000 });
    await page.locator('#inbox-messages .ib-event[data-kind=resolved]').waitFor({ timeout: 10_000 }).catch(() => console.log('     (no resolved event line in the thread)'));
    await page.click('#inbox-filters [data-view=resolved]');
    await page.locator(rowOf(FAN)).waitFor({ timeout: 10_000 });
    assert.match(await page.locator(rowOf(FAN)).textContent(), /已解决/);
  });

  await step('in English at 1280 px: the nav is one line; screenshot', async () => {
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.click('#lang-toggle');
    await page.waitForFunction(() => document.querySelector('#nav a[data-page=inbox]')?.textContent === 'Inbox');
    await page.locator('#inbox-messages .ib-msg').first().waitFor();
    const tops = await page.$$eval('#nav a', (as) => [...new Set(as.map((a) => Math.round(a.getBoundingClientRect().top)))]);
    assert.equal(tops.length, 1, `nav on ${tops.length} lines`);
    const fit = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, width: window.innerWidth }));
    assert.ok(fit.scroll <= fit.width, `horizontal overflow ${JSON.stringify(fit)}`);
    assert.equal(await page.textContent('#inbox-send'), 'Send');
    assert.equal(await page.evaluate(() => window.__streams.filter((s) => s.readyState !== 2).length), 1, 'one open EventSource after the redraw');
    await shot('inbox-en.png');
    await page.click('#lang-toggle');
    await page.setViewportSize({ width: 1360, height: 900 });
  });

  await step('leaving the page closes the stream', async () => {
    await page.click('#nav a[data-page=dashboard]');
    await page.locator('#kpis').waitFor();
    assert.equal(await page.evaluate(() => window.__streams.filter((s) => s.readyState !== 2).length), 0);
  });

  await step('intent settings on the templates page: auto-tags and hot intents saved; a bad window is refused naming it', async () => {
    await page.goto(url + '/#/templates');
    await page.locator('#intent-settings').waitFor();
    assert.equal(await page.isChecked('#intent-hot-price'), true, 'price is hot by default');
    await page.fill('#intent-tags-price', '询价客户, 高意向');
    await page.check('#intent-hot-ask_material');
    await page.click('#intent-settings-save');
    const api = async () => (await fetch(url + '/v1/intents/settings', { headers: { authorization: `Bearer ${key}` } })).json();
    const deadline = Date.now() + 10_000;
    let s = await api();
    while (!(s.auto_tags && s.auto_tags.price) && Date.now() < deadline) { await new Promise((r) => setTimeout(r, 100)); s = await api(); }
    assert.deepEqual(s.auto_tags, { price: ['询价客户', '高意向'] });
    assert.deepEqual([...s.hot].sort(), ['ask_material', 'buy', 'price']);
    await page.locator('#intent-tags-price').waitFor();
    assert.equal(await page.inputValue('#intent-tags-price'), '询价客户, 高意向');
    await page.fill('#intent-window', '0.001');
    await page.click('#intent-settings-save');
    await page.locator('#intent-settings-error').waitFor({ timeout: 10_000 });
    assert.match(await page.textContent('#intent-settings-error'), /lead_window_secs/);
    await page.locator('#intent-settings').scrollIntoViewIfNeeded();
    await shot('intent-settings.png');
  });

  await step('an analyst sees the thread but cannot reply, assign or resolve', async () => {
    const analyst = await browser.newContext({ viewport: { width: 1360, height: 900 }, locale: 'zh-CN', timezoneId: 'UTC' });
    const p = await analyst.newPage();
    watch(p, errors);
    await login(p, url, 'analyst');
    await p.goto(url + '/#/inbox/' + encodeURIComponent(FAN));
    await p.locator('#inbox-messages .ib-msg').first().waitFor();
    for (const sel of ['#inbox-send', '#inbox-text', '#inbox-resolve', '#inbox-assign', '#inbox-qr', '#inbox-tag-add']) {
      assert.equal(await p.isDisabled(sel), true, `${sel} disabled for an analyst`);
    }
    await analyst.close();
  });

  await step('no page errors or CSP violations', async () => {
    assert.deepEqual(errors, []);
  });
} catch (e) {
  failSetup(e);
} finally {
  bridge.close();
  fs.rmSync(path.dirname(configFile), { recursive: true, force: true });
  await finish(demo, browser, 'e2e inbox');
}
