// Browser test of the live-session page (#/live, from the fission page) on
// a real `siyu demo`: a session saved through the form (a fault shown on
// the form first), events from several channels posted through the API,
// and its report read on the page, in zh-CN and English.
//
//   SIYU_BIN=../../target/debug/siyu node live.test.mjs
import assert from 'node:assert/strict';
import { startDemo, step, launch, watch, login, finish, failSetup } from './harness.mjs';

const demo = startDemo();
let browser;
const errors = [];
try {
  const { url, key } = await demo.ready;
  console.log(`siyu demo at ${url}`);
  browser = await launch();
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, locale: 'zh-CN', timezoneId: 'Asia/Shanghai' });
  const page = await context.newPage();
  const shot = watch(page, errors);
  // Two hours that ended an hour ago, in the workspace zone (Asia/Shanghai).
  const end = Math.floor(Date.now() / 1000 / 60) * 60 - 3600;
  const start = end - 7200;
  const local = (s) => new Date((s + 8 * 3600) * 1000).toISOString().slice(0, 16);

  await step('the page is reached from the fission page; a fault is shown on the form', async () => {
    await login(page, url, 'operator');
    await page.goto(url + '/#/fission');
    await page.click('#live-link');
    await page.locator('#live-empty').waitFor();
    await page.fill('#live-f-id', 'warmup');
    await page.fill('#live-f-title', '双11 预热直播');
    await page.fill('#live-f-channel', 'douyin');
    await page.fill('#live-f-host', '小美');
    await page.fill('#live-f-start', local(start));
    await page.fill('#live-f-end', local(start));
    await page.click('#live-save');
    await page.locator('#live-fault').getByText('ends_at').waitFor();
  });

  await step('saved through the form', async () => {
    await page.fill('#live-f-end', local(end));
    await page.click('#live-save');
    await page.locator('#live-list [data-session=warmup]').waitFor();
    const s = await (await fetch(url + '/v1/live-sessions/warmup', { headers: { authorization: `Bearer ${key}` } })).json();
    assert.equal(s.starts_at, start);
    assert.equal(s.ends_at, end);
  });

  await step('what it brought, from Douyin comments, a live QR code and a Taobao order', async () => {
    const ev = (o) => ({ ...o });
    const events = [
      ev({ ts: start + 60, identity: 'douyin:e2e_live_a', type: 'comment', text: '多少钱' }),
      ev({ ts: start + 600, identity: 'douyin:e2e_live_a', type: 'message_sent' }),
      ev({ ts: start + 700, identity: 'wecom:e2e_live_a', type: 'identify', ref: 'douyin:e2e_live_a', traits: { name: '直播观众甲' } }),
      ev({ ts: start + 3600, identity: 'wecom:e2e_live_a', type: 'purchase', amount: 19900, channel: 'taobao' }),
      ev({ ts: start + 120, identity: 'douyin:e2e_live_b', type: 'comment', text: '有货吗' }),
      ev({ ts: start + 30, identity: 'wecom:e2e_live_c', type: 'touch', properties: { campaign: 'live:warmup' } }),
    ];
    const r = await fetch(url + '/v1/events', { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(events) });
    assert.equal(r.status, 200, await r.text());
    // The page shows the session already (the save went there): read again.
    await page.reload();
    await page.locator('#live-report').waitFor();
    assert.match(await page.textContent('#live-viewers .kpi-value'), /^3$/);
    assert.match(await page.textContent('#live-comments .kpi-value'), /^1 \/ 2$/);
    assert.match(await page.textContent('#live-orders .kpi-value'), /^1$/);
    assert.match(await page.textContent('#live-revenue .kpi-value'), /199\.00/);
    await page.locator('#live-bars svg rect').first().waitFor();
    await shot('live.png');
  });

  await step('in English', async () => {
    await page.click('#lang-toggle');
    await page.waitForFunction(() => document.querySelector('#page h1')?.textContent === 'Live sessions');
    await page.locator('#live-report').waitFor();
    await shot('live-en.png');
  });

  await step('an analyst reads the report but cannot save', async () => {
    const analyst = await browser.newContext({ viewport: { width: 1360, height: 900 }, locale: 'zh-CN' });
    const p = await analyst.newPage();
    watch(p, errors);
    await login(p, url, 'analyst');
    await p.goto(url + '/#/live/warmup');
    await p.locator('#live-report').waitFor();
    assert.equal(await p.isDisabled('#live-save'), true);
    await analyst.close();
  });

  await step('no page errors or CSP violations', async () => {
    assert.deepEqual(errors, []);
  });
} catch (e) {
  failSetup(e);
} finally {
  await finish(demo, browser, 'e2e live');
}
