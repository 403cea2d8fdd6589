// Browser test of the partner pages (#/partners): a real `siyu demo`, a
// KOC whose referred customers bought (and one refunded) three weeks ago,
// through the API; the console lists the partner with its totals and ROI,
// shows the ledger lines with the refused self-referral, pays what is
// payable, and turns a demo customer into a distributor.
// Screenshots: screenshots/partners-*.png.
//
//   SIYU_BIN=../../target/debug/siyu node partners.test.mjs
import assert from 'node:assert/strict';
import { startDemo, step, launch, watch, login, finish, failSetup } from './harness.mjs';

const demo = startDemo();
let browser;
const errors = [];
try {
  const { url, key } = await demo.ready;
  console.log(`siyu demo at ${url} (data ${demo.dataDir})`);
  const call = async (method, p, body) => {
    const r = await fetch(url + p, {
      method,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    assert.ok(r.ok, `${method} ${p}: ${r.status} ${text}`);
    return JSON.parse(text);
  };
  const now = Math.floor(Date.now() / 1000);
  const DAY = 86400;
  await call('PUT', '/v1/partners/e2e-koc', {
    name: '小红书达人', kind: 'koc', identity: 'wecom:e2ekoc', hold: '7d', fees: 5000,
    commission: { rate_bp: 1000 },
  });
  const evs = [{ id: 'e2e-self', ts: now - 30 * DAY, identity: 'douyin:e2e-fan5', type: 'identify', channel: 'douyin', ref: 'wecom:e2ekoc' }];
  for (let i = 1; i <= 5; i++) {
    evs.push({ id: `e2e-arrive-${i}`, ts: now - 22 * DAY + i, identity: `douyin:e2e-fan${i}`, type: 'referral_signup', channel: 'douyin', ref: 'wecom:e2ekoc', properties: { campaign: 'partner/e2e-koc', device: `e2e-dev-${i}` } });
    evs.push({ id: `e2e-buy-${i}`, ts: now - 21 * DAY + i, identity: `douyin:e2e-fan${i}`, type: 'purchase', channel: 'douyin', amount: 10000 * i, properties: { order_id: `E2E-${i}` } });
  }
  evs.push({ id: 'e2e-refund-2', ts: now - 18 * DAY, identity: 'douyin:e2e-fan2', type: 'refund', channel: 'douyin', amount: 20000, properties: { order_id: 'E2E-2' } });
  await call('POST', '/v1/events', evs);

  browser = await launch();
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, locale: 'zh-CN', timezoneId: 'Asia/Shanghai' });
  const page = await context.newPage();
  const shot = watch(page, errors);

  await step('admin opens 达人分销: the partner with its payable commission and ROI', async () => {
    await login(page, url, 'admin');
    await page.click('#nav a[data-page=fission]');
    await page.click('#partners-link');
    await page.locator('#partner-list').waitFor();
    const row = page.locator('#partner-list tr[data-partner="e2e-koc"]');
    await row.waitFor();
    const text = await row.textContent();
    // fans 1, 3, 4 earn 10 % (¥10 + ¥30 + ¥40); fan 2 refunded, fan 5 is the KOC.
    assert.ok(text.includes('80.00'), text);
    assert.ok(text.includes('小红书达人'), text);
    await shot('partners-list.png');
  });

  await step('the ledger shows the refund and the refused self-referral; pay it', async () => {
    await page.click('#partner-list tr[data-partner="e2e-koc"] a');
    await page.locator('#partner-ledger').waitFor();
    assert.equal(await page.locator('#partner-ledger tr[data-status=refused]').count(), 1);
    assert.equal(await page.locator('#partner-ledger tr[data-status=payable]').count(), 4);
    assert.ok((await page.textContent('#pt-code')).includes('.'));
    // Kinds and statuses read in the console's language.
    assert.ok((await page.textContent('#partner-ledger')).includes('可结算'));
    assert.ok((await page.textContent('#partner-ledger')).includes('自购自推'));
    // The share card: the public landing, its QR and the poster.
    assert.ok((await page.getAttribute('#pt-link', 'href')).includes('/p/e2e-koc/'));
    await page.waitForFunction(() => document.querySelector('#pt-qr').naturalWidth > 0);
    await page.waitForFunction(() => { const i = document.querySelector('#pt-poster'); return i && !i.hidden && i.naturalWidth === 750; });
    await page.locator('#pt-poster').scrollIntoViewIfNeeded();
    await shot('partners-share.png');
    await page.evaluate(() => window.scrollTo(0, 0));
    await shot('partners-ledger.png');
    await page.click('#pt-payout');
    await page.locator('#partner-ledger tr[data-status=paid]').first().waitFor();
    assert.equal(await page.locator('#partner-ledger tr[data-status=paid]').count(), 4);
    assert.ok(await page.locator('#pt-payout').isDisabled());
    const api = await call('GET', '/v1/partners/e2e-koc/ledger');
    assert.equal(api.totals.paid, 8000);
    await shot('partners-paid.png');
  });

  await step('the public landing names the partner, in a phone-sized browser', async () => {
    const link = (await call('GET', '/v1/partners/e2e-koc/link')).link;
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, locale: 'zh-CN' });
    const p = await phone.newPage();
    const resp = await p.goto(link);
    assert.equal(resp.status(), 200);
    assert.ok((await p.textContent('h1')).includes('小红书达人'));
    await p.screenshot({ path: 'screenshots/partner-landing.png' });
    await phone.close();
  });

  await step('the dashboard shows partner ROI beside channel ROI', async () => {
    await page.click('#nav a[data-page=dashboard]');
    await page.locator('#partner-roi-chart').waitFor();
    assert.ok((await page.textContent('#partner-roi-chart')).includes('小红书达人'));
    await page.locator('#partner-roi-chart').scrollIntoViewIfNeeded();
    await shot('partners-roi.png');
  });

  await step('the attribution model is set on the partners page', async () => {
    await page.goto(url + '/#/partners');
    await page.locator('#pt-model').waitFor();
    assert.equal(await page.inputValue('#pt-model'), 'first_touch');
    await page.selectOption('#pt-model', 'last_touch');
    await page.waitForFunction(() => /归因规则已保存/.test(document.querySelector('#toast')?.textContent));
    assert.equal((await call('GET', '/v1/partners/settings')).model, 'last_touch');
    await call('PUT', '/v1/partners/settings', { model: 'first_touch' });
  });

  await step('a buyer becomes a distributor from their profile', async () => {
    await page.goto(url + '/#/persons/' + encodeURIComponent('douyin:e2e-fan4'));
    await page.locator('#make-partner').waitFor();
    await page.click('#make-partner');
    await page.waitForFunction(() => location.hash.startsWith('#/partners/d-'));
    await page.locator('#partner-totals').waitFor();
    const list = await call('GET', '/v1/partners');
    assert.ok(list.partners.some((p) => p.kind === 'distributor' && p.identity === 'douyin:e2e-fan4'), JSON.stringify(list));
  });

  await step('a customer becomes a distributor from the partners page', async () => {
    await page.click('#nav a[data-page=fission]');
    await page.click('#partners-link');
    await page.locator('#pt-person-form').waitFor();
    await page.fill('#pt-person', 'douyin:e2e-fan3');
    await page.click('#pt-make');
    await page.waitForFunction(() => document.querySelectorAll('#partner-list tr[data-partner^="d-"]').length === 2);
    const list = await call('GET', '/v1/partners');
    assert.ok(list.partners.some((p) => p.kind === 'distributor' && p.identity === 'douyin:e2e-fan3'), JSON.stringify(list));
    await shot('partners-distributor.png');
  });
  assert.deepEqual(errors, []);
} catch (e) {
  failSetup(e);
} finally {
  await finish(demo, browser, 'partners');
}
