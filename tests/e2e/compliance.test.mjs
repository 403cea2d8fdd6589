// Browser test of the inbox's compliance views (compliance.js): the
// archive of operators' messages (会话存档, #/inbox-archive), the
// per-operator report (客服报表, #/inbox-report) and the conversation
// settings (#/inbox-settings), reached through the inbox's tabs.
// A `siyu demo` takes signed Douyin comments (`[inbound] douyin`) and sends
// Douyin replies to a local bridge (a small HTTP server here). Two Douyin
// fans comment (one with a percent-encoded id, shown decoded); operator
// replies are made through the API (`POST /v1/conversations/{person}/messages`
// with `operator`), two of them hitting sensitive-word rules; 55 more from
// another operator page the archive. In the browser: found by text, by
// operator and by 仅看敏感词; older pages through the cursor; the report's
// numbers for the operator are what was sent; a bad setting is refused on
// its field; an analyst sees everything but cannot save; English.
//
//   SIYU_BIN=../../target/debug/siyu node compliance.test.mjs
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { startDemo, step, launch, watch, login, finish, failSetup } from './harness.mjs';

const INBOUND_SECRET = 'e2e-compliance-inbound-secret';
const BRIDGE_SECRET = 'e2e-compliance-bridge-secret';
const FAN_A = 'douyin:e2e_cmp_a';
// A percent-encoded id (as buyer ids arrive): shown decoded, linked encoded.
const FAN_B = 'douyin:e2e_%E5%B0%8F%E7%BA%A2';
const FAN_B_SHOWN = 'douyin:e2e_小红';
const AGENT = 'e2e_agent';
const OTHER = 'e2e_other';
const BULK = 'e2e_bulk';
const BULK_N = 55;

// ---------- the Douyin bridge: takes every delivery ----------
let delivered = 0;
const bridge = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    delivered++;
    res.setHeader('content-type', 'application/json');
    res.end('{"ok":true}');
  });
});
await new Promise((r) => bridge.listen(0, '127.0.0.1', r));
const bridgeUrl = `http://127.0.0.1:${bridge.address().port}/bridge`;

const configFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'siyu-e2e-conf-')), 'siyu.toml');
fs.writeFileSync(configFile, `
[inbound]
douyin = "${INBOUND_SECRET}"

[connectors.bridges.douyin]
url = "${bridgeUrl}"
secret = "${BRIDGE_SECRET}"
`);

const demo = startDemo(['--config', configFile]);
let browser;
const errors = [];
try {
  const { url, key } = await demo.ready;
  console.log(`siyu demo at ${url} (bridge at ${bridgeUrl})`);
  let seq = 0;
  // A customer's comment as the Douyin bridge posts it, signed.
  const comment = async (identity, text) => {
    const ts = Math.floor(Date.now() / 1000);
    const body = JSON.stringify([{ id: `e2e-cmp-${Date.now()}-${++seq}`, ts, identity, type: 'comment', text,
      properties: { kind: 'comment', comment_id: `cc${Date.now()}${seq}`, item_id: 'v-e2e-cmp' } }]);
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
  const reply = async (person, operator, text) => {
    const r = await call('POST', `/v1/conversations/${encodeURIComponent(person)}/messages`, { text, operator });
    assert.equal(r.status, 202, r.text);
    return r.json;
  };
  // The engine has taken the comment: the person is listed as waiting.
  const waiting = async (person) => {
    for (let i = 0; i < 100; i++) {
      const r = await call('GET', `/v1/conversations/${encodeURIComponent(person)}?limit=5`);
      if (r.status === 200 && r.json.person && r.json.person.unanswered_since) return;
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error(`${person} is not waiting after its comment`);
  };

  browser = await launch();
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, locale: 'zh-CN', timezoneId: 'UTC' });
  const page = await context.newPage();
  const shot = watch(page, errors);
  const rows = (p = page) => p.locator('#archive-rows tr');
  // The archive rows' texts once the count line says `n`.
  const archiveShows = async (p, n) => {
    await p.waitForFunction((want) => {
      const c = document.querySelector('#archive-count');
      const e = document.querySelector('#archive-empty');
      return want === 0 ? !!e : c && /\d/.test(c.textContent) && document.querySelectorAll('#archive-rows tr').length === want;
    }, n, { timeout: 10_000 }).catch(async (e) => {
      throw new Error(`${e.message}\narchive shows ${await p.locator('#archive-rows tr').count()} rows: ${await p.textContent('#archive-count').catch(() => '')} ${await p.textContent('#archive-status').catch(() => '')}`);
    });
  };
  // Fill the filters, search, and wait until the page shows that search
  // (a select or the checkbox searches at once too: an earlier answer
  // must not pass for this one).
  const search = async (p, fill) => {
    await fill();
    await p.click('#archive-search');
    await p.waitForFunction(() => { const a = document.querySelector('#archive'); return a && a.dataset.asked === (location.hash.split('?')[1] || ''); }, null, { timeout: 10_000 });
  };
  let expected;

  await step('setup: sensitive-word rules, two fans comment, operators reply through the API', async () => {
    const rules = await call('PUT', '/v1/sensitive-words', { rules: [
      { id: 'private_deal', matcher: { any_of: ['加微信', '私下转账'] }, applies_to: 'both', category: '私下交易' },
      { id: 'competitor', matcher: { contains: '某宝' }, applies_to: 'operator', category: '竞品' },
    ] });
    assert.equal(rules.status, 200, rules.text);
    await comment(FAN_A, '你好，想了解一下这款产品的尺码');
    await comment(FAN_B, '请问什么时候发货');
    await waiting(FAN_A);
    await waiting(FAN_B);
    const sent = [
      await reply(FAN_A, AGENT, '您好，这款有货 E2E-CMP-1'),
      await reply(FAN_A, AGENT, '方便的话加微信详聊 E2E-CMP-2'),
      await reply(FAN_B, AGENT, 'E2E-CMP-3 我们比某宝便宜'),
      await reply(FAN_B, AGENT, 'E2E-CMP-4 好的，已为您登记'),
      await reply(FAN_A, OTHER, 'E2E-CMP-5 我是另一位客服'),
    ];
    assert.deepEqual(sent.map((s) => s.sensitive.map((x) => x.id).join(',')), ['', 'private_deal', 'competitor', '', '']);
    assert.ok(typeof sent[0].response_secs === 'number', `the first reply answers a waiting fan: ${JSON.stringify(sent[0])}`);
    for (let i = 0; i < BULK_N; i++) await reply(FAN_A, BULK, `E2E-BULK-${String(i).padStart(2, '0')} 批量回复`);
    const rep = await call('GET', '/v1/conversations/report');
    assert.equal(rep.status, 200, rep.text);
    expected = rep.json.operators.find((o) => o.operator === AGENT);
    assert.ok(expected, `${AGENT} in the report: ${rep.text}`);
    assert.equal(expected.messages, 4);
    assert.equal(expected.persons, 2);
    assert.equal(expected.sensitive_hits, 2);
    console.log(`     ${AGENT} per the API: ${JSON.stringify(expected)}; bridge deliveries so far ${delivered}`);
  });

  await step('the inbox has tabs 会话 / 存档 / 报表 / 设置; 存档 finds the replies by text', async () => {
    await login(page, url, 'operator');
    await page.click('#nav a[data-page=inbox]');
    await page.locator('#inbox-list').waitFor();
    assert.deepEqual(await page.$$eval('#inbox-pages a', (as) => as.map((a) => a.textContent)), ['会话', '存档', '报表', '设置']);
    await page.click('#inbox-pages a[data-tab=archive]');
    await page.locator('#archive-form').waitFor();
    assert.equal(new URL(page.url()).hash, '#/inbox-archive');
    assert.equal(await page.getAttribute('#nav a[data-page=inbox]', 'class'), 'active', 'the nav keeps 会话 active');
    await search(page, () => page.fill('#archive-q', 'E2E-CMP'));
    await archiveShows(page, 5);
    // (Newest first to the second: replies within one second come in key order.)
    const all = (await rows().locator('.ar-text').allTextContents()).map((x) => x.match(/E2E-CMP-\d/)[0]).sort();
    assert.deepEqual(all, ['E2E-CMP-1', 'E2E-CMP-2', 'E2E-CMP-3', 'E2E-CMP-4', 'E2E-CMP-5']);
    assert.equal(await page.locator('#archive-rows tr.flagged').count(), 2);
    await shot('archive.png');
    await search(page, () => page.fill('#archive-q', 'E2E-CMP-2'));
    await archiveShows(page, 1);
    const row = rows().first();
    assert.equal(await row.getAttribute('data-operator'), AGENT);
    assert.equal(await row.locator('td.op').textContent(), AGENT);
    assert.equal(await row.locator('mark').textContent(), 'E2E-CMP-2');
    assert.equal(await row.locator('.badge.flag').textContent(), '⚑ 私下交易');
    assert.equal(await row.locator('.badge.flag').getAttribute('data-rule'), 'private_deal');
    assert.equal(await row.locator('.badge.ch').textContent(), '抖音');
    assert.equal(await row.locator('td.cust a').getAttribute('href'), '#/inbox/' + encodeURIComponent(FAN_A));
    assert.match(await row.locator('time').textContent(), /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}$/);
    // The address names the search.
    assert.equal(new URL(page.url()).hash, '#/inbox-archive?q=E2E-CMP-2');
  });

  await step('by operator; by 仅看敏感词; a decoded identity links to its conversation', async () => {
    await search(page, async () => { await page.fill('#archive-q', 'E2E-CMP'); await page.selectOption('#archive-operator', AGENT); });
    await archiveShows(page, 4);
    assert.deepEqual([...new Set(await rows().evaluateAll((trs) => trs.map((tr) => tr.dataset.operator)))], [AGENT]);
    // The checkbox searches at once.
    await page.check('#archive-flagged');
    await archiveShows(page, 2);
    const texts = await rows().locator('.ar-text').allTextContents();
    assert.deepEqual(texts.map((s) => s.match(/E2E-CMP-\d/)[0]).sort(), ['E2E-CMP-2', 'E2E-CMP-3']);
    assert.deepEqual((await rows().locator('.badge.flag').allTextContents()).sort(), ['⚑ 私下交易', '⚑ 竞品']);
    // 仅看敏感词 alone (every operator, no text): each row is flagged.
    await search(page, async () => { await page.fill('#archive-q', ''); await page.selectOption('#archive-operator', ''); });
    await page.waitForFunction(() => document.querySelectorAll('#archive-rows tr').length >= 2);
    const flagged = await rows().evaluateAll((trs) => trs.map((tr) => tr.querySelectorAll('.badge.flag').length));
    assert.ok(flagged.every((n) => n > 0), `every row flagged: ${flagged}`);
    // By customer (any identity of theirs): fan B's two replies.
    await search(page, async () => { await page.uncheck('#archive-flagged'); await page.fill('#archive-q', 'E2E-CMP'); await page.fill('#archive-person', FAN_B); });
    await archiveShows(page, 2);
    assert.deepEqual((await rows().locator('td.cust a').allTextContents()), [FAN_B_SHOWN, FAN_B_SHOWN]);
    // Nobody by that identity: the server's answer, no rows.
    await search(page, () => page.fill('#archive-person', 'douyin:e2e_nobody'));
    await page.locator('#archive-error').waitFor({ timeout: 10_000 });
    console.log(`     unknown customer: ${await page.textContent('#archive-error')}`);
    assert.equal(await rows().count(), 0);
    await page.fill('#archive-person', '');
    await page.check('#archive-flagged');
    // Fan B's row: the identity decoded, the link encoded.
    await search(page, () => page.fill('#archive-q', 'E2E-CMP-3'));
    await archiveShows(page, 1);
    const cust = rows().first().locator('td.cust a');
    assert.equal(await cust.textContent(), FAN_B_SHOWN);
    assert.equal(await cust.getAttribute('title'), FAN_B);
    await cust.click();
    await page.locator('#inbox-messages .ib-msg').first().waitFor({ timeout: 10_000 });
    assert.equal(new URL(page.url()).hash, '#/inbox/' + encodeURIComponent(FAN_B));
    assert.ok(await page.locator('#inbox-messages .ib-msg.out.flagged').count() >= 1, 'the flagged reply in the thread');
  });

  await step(`the cursor pages older: ${BULK_N} messages of one operator, ${50} then the rest`, async () => {
    await page.click('#inbox-pages a[data-tab=archive]');
    await page.locator('#archive-form').waitFor();
    await search(page, async () => { await page.fill('#archive-q', ''); await page.uncheck('#archive-flagged'); await page.selectOption('#archive-operator', BULK); });
    await archiveShows(page, 50);
    assert.equal(await page.isVisible('#archive-more'), true, 'load older shown');
    assert.match(await page.textContent('#archive-count'), /已显示 50 条/);
    await page.click('#archive-more');
    await archiveShows(page, BULK_N);
    assert.equal(await page.isVisible('#archive-more'), false, 'no older page');
    assert.match(await page.textContent('#archive-count'), new RegExp(`共 ${BULK_N} 条`));
    const texts = await rows().locator('.ar-text').allTextContents();
    assert.equal(new Set(texts).size, BULK_N, 'no row twice');
    const times = await rows().locator('time').evaluateAll((ts) => ts.map((x) => Date.parse(x.getAttribute('datetime'))));
    assert.ok(times.every((x, i) => i === 0 || times[i - 1] >= x), 'newest first');
  });

  await step('resolve a conversation in the inbox: 存档 lists the resolution', async () => {
    await page.goto(url + '/#/inbox/' + encodeURIComponent(FAN_B));
    await page.locator('#inbox-resolve').waitFor();
    await page.waitForFunction(() => !document.querySelector('#inbox-resolve').disabled);
    await page.click('#inbox-resolve');
    await page.locator('#inbox-thread-status').waitFor({ timeout: 10_000 });
    await page.goto(url + '/#/inbox-archive?kind=resolution&operator=operator');
    await page.waitForFunction(() => document.querySelectorAll('#archive-rows tr[data-kind=resolution]').length >= 1, null, { timeout: 10_000 });
    assert.equal(await page.inputValue('#archive-kind'), 'resolution');
    const row = page.locator('#archive-rows tr[data-kind=resolution]').first();
    assert.equal(await row.locator('td.cust a').textContent(), FAN_B_SHOWN);
    assert.equal(await page.textContent('#archive-table thead th:last-child'), '处理用时');
  });

  await step('报表: the operator\'s numbers are what was sent; a chart of first-response medians', async () => {
    const rep = (await call('GET', '/v1/conversations/report')).json;
    const api = (op) => rep.operators.find((o) => o.operator === op);
    await page.click('#inbox-pages a[data-tab=report]');
    await page.locator('#report-table').waitFor({ timeout: 10_000 });
    assert.equal(new URL(page.url()).hash, '#/inbox-report');
    const today = await page.inputValue('#report-to');
    const from = await page.inputValue('#report-from');
    assert.equal((Date.parse(today) - Date.parse(from)) / 86400_000, 29, `the last 30 days: ${from} to ${today}`);
    const cell = (op, col) => page.textContent(`#report-table tr[data-operator="${op}"] td[data-col=${col}]`);
    assert.equal(await cell(AGENT, 'messages'), '4');
    assert.equal(await cell(AGENT, 'persons'), '2');
    assert.equal(await cell(AGENT, 'sensitive'), '2');
    assert.equal(await cell(AGENT, 'first_responses'), String(api(AGENT).first_responses));
    assert.equal(await cell(OTHER, 'messages'), '1');
    assert.equal(await cell(OTHER, 'sensitive'), '0');
    assert.equal(await cell(BULK, 'messages'), String(BULK_N));
    // The operator who resolved in the console.
    assert.equal(await cell('operator', 'resolved'), String(api('operator').resolved));
    assert.ok(api('operator').resolved >= 1);
    // Durations as min/s: "N 秒", "N 分 N 秒" …
    const median = await cell(AGENT, 'first_median');
    assert.match(median, /^(\d+ 秒|\d+ 分 \d+ 秒|\d+ 小时 \d+ 分|\d+ 天 \d+ 小时)$/, median);
    assert.equal(await page.textContent('#report-total th[data-col=messages]'), String(rep.operators.reduce((a, o) => a + o.messages, 0)));
    assert.equal(await page.locator(`#report-chart svg rect[data-label="${AGENT}"]`).count(), 1);
    await shot('report.png');
    // A range with none of these messages (the demo's operators who own
    // waiting customers are listed all the same: unanswered now).
    await page.fill('#report-from', '2020-01-01');
    await page.fill('#report-to', '2020-01-31');
    await page.click('#report-apply');
    await page.waitForFunction(() => /2020-01-01/.test(document.querySelector('#report-caption')?.textContent || ''), null, { timeout: 10_000 });
    assert.match(await page.textContent('#report-caption'), /2020-01-01 至 2020-01-31/);
    assert.equal(await page.locator(`#report-table tr[data-operator="${AGENT}"]`).count(), 0);
    assert.ok(await page.locator('#report-no-chart').isVisible(), 'no chart without first responses');
    assert.equal(new URL(page.url()).hash, '#/inbox-report?from=2020-01-01&to=2020-01-31');
    // From after to: the server's message.
    await page.fill('#report-from', '2020-02-01');
    await page.click('#report-apply');
    await page.locator('#report-error').waitFor({ timeout: 10_000 });
    assert.match(await page.textContent('#report-error'), /from/);
    await page.fill('#report-from', from);
    await page.fill('#report-to', today);
    await page.click('#report-apply');
    await page.locator('#report-table').waitFor({ timeout: 10_000 });
    // The sensitive hits link to those messages in the archive.
    await page.click(`#report-table tr[data-operator="${AGENT}"] td[data-col=sensitive] a`);
    await archiveShows(page, 2);
    assert.equal(await page.inputValue('#archive-operator'), AGENT);
    assert.equal(await page.isChecked('#archive-flagged'), true);
  });

  await step('设置: a bad value is refused on its field; a good one is saved', async () => {
    await page.click('#inbox-pages a[data-tab=settings]');
    await page.locator('#cs-form').waitFor();
    assert.equal(await page.inputValue('#cs-alert'), '30');
    assert.equal(await page.inputValue('#cs-retention'), '180');
    const channels = await page.$$eval('#cs-windows input.cs-channel', (xs) => xs.map((x) => x.value));
    assert.deepEqual(channels.sort(), ['wechat']);
    // Too many minutes: the server's 422 under the alert field.
    await page.fill('#cs-alert', '20000');
    await page.click('#cs-save');
    await page.locator('#cs-alert-error').waitFor({ state: 'visible', timeout: 10_000 });
    assert.match(await page.textContent('#cs-alert-error'), /unanswered_alert_minutes: at most 10080/);
    assert.equal(await page.getAttribute('#cs-alert', 'aria-invalid'), 'true');
    assert.equal(await page.isVisible('#cs-retention-error'), false);
    // A window of 0 hours on a new channel: on its row.
    await page.fill('#cs-alert', '45');
    await page.click('#cs-add');
    const added = page.locator('#cs-windows tr').last();
    await added.locator('input.cs-channel').fill('xiaohongshu');
    await added.locator('input.cs-hours').fill('0');
    await page.click('#cs-save');
    await added.locator('.cs-row-error').waitFor({ state: 'visible', timeout: 10_000 });
    assert.match(await added.locator('.cs-row-error').textContent(), /service_windows\.xiaohongshu: hours from 1 to 720/);
    assert.equal(await page.isVisible('#cs-alert-error'), false, 'the earlier fault is cleared');
    await shot('conversation-settings.png');
    // Nothing was saved.
    assert.equal((await call('GET', '/v1/conversations/settings')).json.unanswered_alert_minutes, 30);
    await added.locator('input.cs-hours').fill('24');
    await page.click('#cs-save');
    await page.locator('#cs-saved').waitFor({ timeout: 10_000 });
    const saved = (await call('GET', '/v1/conversations/settings')).json;
    assert.equal(saved.unanswered_alert_minutes, 45);
    assert.equal(saved.archive_retention_days, 180);
    assert.deepEqual(saved.service_windows, { wechat: 48, xiaohongshu: 24 });
    // The sensitive-word rules beside it.
    assert.deepEqual(await page.$$eval('#words-table tr[data-rule]', (trs) => trs.map((tr) => tr.dataset.rule)), ['private_deal', 'competitor']);
    // A rule that does not compile: the fault names it, nothing saved.
    await page.fill('#words-json', JSON.stringify({ rules: [{ id: 'bad', matcher: { regex: '(' }, category: '坏' }] }));
    await page.click('#words-save');
    await page.locator('#words-fault').waitFor({ timeout: 10_000 });
    assert.match(await page.textContent('#words-fault'), /rules\[0\]\./);
    assert.equal((await call('GET', '/v1/sensitive-words')).json.rules.length, 2);
    // The archive names the retention, linking here.
    await page.click('#inbox-pages a[data-tab=archive]');
    assert.match(await page.textContent('#archive-retention'), /180 天/);
  });

  await step('an analyst sees the archive, the report and the settings but cannot save', async () => {
    const analyst = await browser.newContext({ viewport: { width: 1360, height: 900 }, locale: 'zh-CN', timezoneId: 'UTC' });
    const p = await analyst.newPage();
    watch(p, errors);
    await login(p, url, 'analyst');
    await p.goto(url + '/#/inbox-archive?q=E2E-CMP');
    await archiveShows(p, 5);
    await p.goto(url + '/#/inbox-report');
    await p.locator(`#report-table tr[data-operator="${AGENT}"]`).waitFor({ timeout: 10_000 });
    assert.equal(await p.textContent(`#report-table tr[data-operator="${AGENT}"] td[data-col=messages]`), '4');
    await p.goto(url + '/#/inbox-settings');
    await p.locator('#cs-form').waitFor();
    assert.equal(await p.inputValue('#cs-alert'), '45');
    for (const sel of ['#cs-save', '#cs-alert', '#cs-retention', '#cs-add', '#words-save', '#words-json']) {
      assert.equal(await p.isDisabled(sel), true, `${sel} disabled for an analyst`);
    }
    assert.ok(await p.locator('#cs-windows input.cs-hours').first().isDisabled(), 'window hours disabled');
    await analyst.close();
  });

  await step('in English at 1280 px: the nav is one line, the archive fits; screenshot', async () => {
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.goto(url + '/#/inbox-archive?q=E2E-CMP');
    await archiveShows(page, 5);
    await page.click('#lang-toggle');
    await page.waitForFunction(() => document.querySelector('#inbox-pages a[data-tab=archive]')?.textContent === 'Archive');
    await archiveShows(page, 5);
    const tops = await page.$$eval('#nav a', (as) => [...new Set(as.map((a) => Math.round(a.getBoundingClientRect().top)))]);
    assert.equal(tops.length, 1, `nav on ${tops.length} lines`);
    const fit = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, width: window.innerWidth }));
    assert.ok(fit.scroll <= fit.width, `horizontal overflow ${JSON.stringify(fit)}`);
    assert.deepEqual(await page.$$eval('#inbox-pages a', (as) => as.map((a) => a.textContent)), ['Conversations', 'Archive', 'Report', 'Settings']);
    assert.equal(await page.textContent('#archive-table thead th:last-child'), 'Response time');
    assert.match(await page.textContent('label.check'), /Sensitive words only/);
    assert.match(await page.textContent('#archive-count'), /5 in all/);
    await shot('archive-en.png');
    // The inbox itself still fits the window with its tabs.
    await page.click('#inbox-pages a[data-tab=inbox]');
    await page.locator('#inbox-list a.ib-row').first().waitFor({ timeout: 10_000 });
    const inboxFit = await page.evaluate(() => ({ scroll: document.documentElement.scrollHeight, height: window.innerHeight }));
    assert.ok(inboxFit.scroll <= inboxFit.height + 1, `the inbox scrolls the page: ${JSON.stringify(inboxFit)}`);
    await page.click('#lang-toggle');
  });

  await step('no page errors or CSP violations', async () => {
    assert.deepEqual(errors, []);
  });
} catch (e) {
  failSetup(e);
} finally {
  bridge.close();
  fs.rmSync(path.dirname(configFile), { recursive: true, force: true });
  await finish(demo, browser, 'e2e compliance');
}
