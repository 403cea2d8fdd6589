// Browser test of the inbox's AI helpers: a `siyu demo` whose `[ai]` points
// at a small OpenAI-compatible server here (`/v1/chat/completions`, which
// records every prompt) and which sends Douyin replies to a local bridge.
// The operator clicks 建议回复 (Suggest): the first suggestion fills the
// reply box, marked AI, with the customer's name restored — while the
// prompt that left carried neither the name nor the phone — and nothing
// reaches the bridge until the operator clicks Send. The AI summary card
// writes a summary marked AI. English labels.
//
//   SIYU_BIN=../../target/debug/siyu node ai.test.mjs
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { startDemo, step, launch, watch, login, finish, failSetup } from './harness.mjs';

const INBOUND_SECRET = 'e2e-ai-inbound-secret';
const BRIDGE_SECRET = 'e2e-ai-bridge-secret';
const FAN = 'douyin:e2e_ai_fan';
const FAN_NAME = '李小雨';
const PHONE = '13912345678';

// ---------- the fake model server: every prompt kept ----------
const prompts = [];
const llm = http.createServer((req, res) => {
  let body = '';
  req.on('data', (d) => { body += d; });
  req.on('end', () => {
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions') { res.statusCode = 404; res.end('{}'); return; }
    const json = JSON.parse(body);
    prompts.push(json);
    const text = json.messages.map((m) => m.content).join('\n');
    const name = (/\[NAME_\d+\]/.exec(text) || ['您'])[0];
    const content = /Summarize/.test(text)
      ? `${name}询问发货时间，已告知48小时内发货；待客户确认。`
      : JSON.stringify({ suggestions: [`${name}您好，下单后48小时内发货，请放心～`, '好的，我马上帮您催一下仓库。'] });
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ id: 'x', object: 'chat.completion', model: 'e2e-fake-qwen',
      choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 100, completion_tokens: 20, total_tokens: 120 } }));
  });
});
await new Promise((r) => llm.listen(0, '127.0.0.1', r));

// ---------- the Douyin bridge ----------
const delivered = [];
const bridge = http.createServer((req, res) => {
  let body = '';
  req.on('data', (d) => { body += d; });
  req.on('end', () => { delivered.push(body); res.setHeader('content-type', 'application/json'); res.end('{"ok":true}'); });
});
await new Promise((r) => bridge.listen(0, '127.0.0.1', r));

const configFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'siyu-e2e-conf-')), 'siyu.toml');
fs.writeFileSync(configFile, `
[inbound]
douyin = "${INBOUND_SECRET}"

[connectors.bridges.douyin]
url = "http://127.0.0.1:${bridge.address().port}/bridge"
secret = "${BRIDGE_SECRET}"

[ai]
base_url = "http://127.0.0.1:${llm.address().port}/v1"
model = "qwen2.5:7b"
timeout_ms = 5000
daily_budget_requests = 100
`);

const demo = startDemo(['--config', configFile]);
let browser;
const errors = [];
try {
  const { url, key } = await demo.ready;
  console.log(`siyu demo at ${url} (model server at ${llm.address().port})`);
  const call = async (method, p, body) => {
    const r = await fetch(url + p, { method, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    return { status: r.status, text };
  };
  const comment = async (text) => {
    const ts = Math.floor(Date.now() / 1000);
    const body = JSON.stringify([{ id: `e2e-ai-${Date.now()}`, ts, identity: FAN, type: 'comment', text,
      properties: { kind: 'comment', comment_id: `c${Date.now()}`, item_id: 'v-e2e' } }]);
    const sig = crypto.createHmac('sha256', INBOUND_SECRET).update(`${ts}.default.${body}`).digest('hex');
    const r = await fetch(`${url}/v1/inbound/douyin`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-siyu-timestamp': String(ts), 'x-siyu-signature': `sha256=${sig}` }, body });
    assert.equal(r.status, 200, await r.text());
  };

  browser = await launch();
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, locale: 'zh-CN', timezoneId: 'UTC' });
  const page = await context.newPage();
  const shot = watch(page, errors);

  await step('setup: a named fan with a phone asks when it ships; a quick reply', async () => {
    const ev = await call('POST', '/v1/events', [{ id: 'e2e-ai-name', ts: new Date().toISOString(), identity: FAN, type: 'identify', traits: { name: FAN_NAME, phone: PHONE } }]);
    assert.equal(ev.status, 200, ev.text);
    const qr = await call('PUT', '/v1/quick-replies/e2e_ship', { title: '发货时间', group: '售前', text: '下单后48小时内发货' });
    assert.equal(qr.status, 200, qr.text);
    await comment(`你好，我是${FAN_NAME}，电话${PHONE}，请问什么时候发货？`);
  });

  await step('Suggest fills the reply box with an AI suggestion, name restored, nothing sent', async () => {
    await login(page, url, 'operator');
    await page.goto(`${url}/#/inbox/${encodeURIComponent(FAN)}`);
    await page.locator('#inbox-messages .ib-msg.in').first().waitFor();
    await page.locator('#inbox-suggest').waitFor({ state: 'visible', timeout: 10_000 });
    assert.match(await page.textContent('#inbox-suggest'), /AI\s*建议回复/);
    const sentBefore = delivered.length;
    await page.click('#inbox-suggest');
    await page.locator('#inbox-ai-suggestions').waitFor({ timeout: 10_000 });
    const text = await page.inputValue('#inbox-text');
    assert.equal(text, `${FAN_NAME}您好，下单后48小时内发货，请放心～`);
    assert.equal(await page.textContent('#inbox-ai-suggestions .badge.ai'), 'AI');
    assert.match(await page.textContent('#inbox-ai-suggestions'), /AI 生成（e2e-fake-qwen）.*不会自动发送/);
    assert.equal(await page.locator('#inbox-ai-suggestions .ib-ai-alt').count(), 1);
    // What left the machine: the grounding, no name, no phone.
    assert.equal(prompts.length, 1);
    const sent = JSON.stringify(prompts[0]);
    assert.ok(!sent.includes(FAN_NAME) && !sent.includes(PHONE), sent);
    assert.ok(sent.includes('下单后48小时内发货'), 'the quick reply grounds the prompt');
    assert.equal(prompts[0].model, 'qwen2.5:7b');
    // Nothing was sent to the customer.
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(delivered.length, sentBefore, 'a suggestion is never sent by itself');
    await shot('ai-suggest.png');
  });

  await step('another suggestion replaces the draft; Send (the operator\'s click) delivers it', async () => {
    await page.click('#inbox-ai-suggestions .ib-ai-alt');
    assert.equal(await page.inputValue('#inbox-text'), '好的，我马上帮您催一下仓库。');
    await page.click('#inbox-send');
    const t0 = Date.now();
    while (!delivered.some((b) => b.includes('马上帮您催一下仓库')) && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 100));
    assert.ok(delivered.some((b) => b.includes('马上帮您催一下仓库')), `the bridge got ${delivered.length}`);
  });

  await step('the AI summary card writes a summary marked AI', async () => {
    await page.click('#inbox-summarize');
    await page.locator('#inbox-ai-summary-text').waitFor({ timeout: 10_000 });
    const s = await page.textContent('#inbox-ai-summary-text');
    assert.equal(s, `${FAN_NAME}询问发货时间，已告知48小时内发货；待客户确认。`);
    assert.equal(await page.getAttribute('#inbox-ai-summary-text', 'data-ai'), 'true');
    assert.match(await page.textContent('#inbox-ai-card h2'), /AI\s*AI 会话摘要/);
    assert.match(await page.textContent('#inbox-ai-card'), /AI 生成 · e2e-fake-qwen/);
    const usage = JSON.parse((await call('GET', '/v1/ai/usage')).text);
    assert.equal(usage.requests, 2);
    assert.equal(usage.tokens, 240);
    await shot('ai-summary.png');
  });

  await step('in English: the Suggest button and the summary card say AI', async () => {
    await page.click('#lang-toggle');
    await page.waitForFunction(() => document.querySelector('#nav a[data-page=inbox]')?.textContent === 'Inbox');
    await page.locator('#inbox-suggest:not([hidden])').waitFor({ timeout: 10_000 });
    assert.equal((await page.textContent('#inbox-suggest')).trim(), 'AI Suggest');
    await page.locator('#inbox-ai-card').waitFor();
    assert.match(await page.textContent('#inbox-ai-card h2'), /AI\s*AI summary/);
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.click('#inbox-suggest');
    await page.waitForFunction(() => /AI-generated \(e2e-fake-qwen\)/.test(document.querySelector('#inbox-ai-suggestions')?.textContent || ''));
    // At 1280 px the reply bar may wrap, but whole controls: each button
    // on one line, Send inside the reply box.
    const heights = await page.$$eval('#inbox-suggest, #inbox-template-send, #inbox-send', (bs) => bs.map((b) => b.getBoundingClientRect().height));
    assert.ok(heights.every((h) => h < 45), `buttons on one line: ${heights}`);
    const inside = await page.evaluate(() => document.querySelector('#inbox-send').getBoundingClientRect().right <= document.querySelector('#inbox-reply').getBoundingClientRect().right + 1);
    assert.ok(inside, 'Send is inside the reply box');
    const fit = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, width: window.innerWidth }));
    assert.ok(fit.scroll <= fit.width, `horizontal overflow ${JSON.stringify(fit)}`);
    await shot('ai-suggest-en.png');
    await page.setViewportSize({ width: 1360, height: 900 });
    await page.click('#lang-toggle');
  });

  assert.deepEqual(errors, []);
} catch (e) {
  failSetup(e);
} finally {
  llm.close();
  bridge.close();
  await finish(demo, browser, 'ai.test.mjs');
}
