// Browser test of the Moments SOP page (#/moments, from the communities
// page) on a real `siyu demo`: a post planned through the form (a fault
// shown on the form first), shown on the week calendar under its sender,
// edited, a second one planned through the API for another operator, one
// cancelled; in zh-CN and English. The demo has no WeCom connection, so
// publishing is the server tests' (tests/it/moments.rs).
//
//   SIYU_BIN=../../target/debug/siyu node moments.test.mjs
import assert from 'node:assert/strict';
import { startDemo, step, launch, watch, login, finish, failSetup } from './harness.mjs';

const demo = startDemo();
let browser;
const errors = [];
try {
  const { url, key } = await demo.ready;
  console.log(`siyu demo at ${url}`);
  const call = async (method, path, body) => {
    const r = await fetch(url + path, { method, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: body && JSON.stringify(body) });
    return { status: r.status, body: await r.json() };
  };
  for (const login of ['zhangsan', 'lisi']) {
    const r = await call('PUT', '/v1/operators/' + login, {});
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
  const r = await call('PUT', '/v1/content/e2e-guide', { kind: 'article', title: '双11 选购指南', url: 'https://shop.example/guide' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  browser = await launch();
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, locale: 'zh-CN', timezoneId: 'Asia/Shanghai' });
  const page = await context.newPage();
  const shot = watch(page, errors);
  // Two hours from now, on the minute, in the workspace zone (Asia/Shanghai).
  const at = Math.floor(Date.now() / 1000 / 60) * 60 + 7200;
  const local = (s) => new Date((s + 8 * 3600) * 1000).toISOString().slice(0, 16);

  await step('the page is reached from the communities page; a fault is shown on the form', async () => {
    await login(page, url, 'operator');
    await page.goto(url + '/#/communities');
    await page.click('#moments-link');
    await page.locator('#mo-form').waitFor();
    await page.fill('#mo-f-senders', 'zhangsan');
    await page.fill('#mo-f-at', local(at));
    await page.fill('#mo-f-text', '双11 新品上架，点开看选购指南');
    await page.selectOption('#mo-f-content', 'e2e-guide');
    await page.fill('#mo-f-tags', '');
    await page.click('#mo-save');
    await page.locator('#mo-fault').getByText('audience').waitFor();
  });

  let id;
  await step('planned through the form, shown on the week under its sender', async () => {
    await page.fill('#mo-f-tags', 'vip, 复购');
    await page.click('#mo-save');
    await page.locator('#mo-week [data-sender=zhangsan] [data-moment]').waitFor();
    const list = await call('GET', '/v1/moments');
    assert.equal(list.body.moments.length, 1);
    const m = list.body.moments[0];
    id = m.id;
    assert.equal(m.at, at);
    assert.equal(m.status, 'planned');
    assert.deepEqual(m.audience, { tags: ['vip', '复购'] });
    assert.deepEqual(m.attachments, [{ content: 'e2e-guide' }]);
  });

  await step('edited while planned; another operator\'s post and a cancelled one on the calendar', async () => {
    await page.fill('#mo-f-text', '双11 新品上架（已改）');
    await page.click('#mo-save');
    let got;
    for (let i = 0; i < 50; i++) {
      got = await call('GET', '/v1/moments/' + id);
      if (got.body.text === '双11 新品上架（已改）') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(got.body.text, '双11 新品上架（已改）');
    const two = await call('POST', '/v1/moments', { senders: ['lisi'], at: at + 1800, text: '会员日福利', attachments: [{ image: 'MEDIA_ID_1' }], audience: { tags: ['会员'] } });
    assert.equal(two.status, 201, JSON.stringify(two.body));
    const three = await call('POST', '/v1/moments', { senders: ['lisi'], at: at + 3600, text: '取消的一条', audience: { tags: ['会员'] } });
    assert.equal(three.status, 201, JSON.stringify(three.body));
    await page.goto(url + '/#/moments/' + three.body.id);
    await page.locator('#mo-cancel').click();
    await page.locator(`#mo-week [data-moment="${three.body.id}"] .status-cancelled`).waitFor();
    await page.goto(url + '/#/moments/' + id);
    await page.locator('#mo-week [data-sender=lisi] [data-moment]').first().waitFor();
    await page.locator('#mo-status').waitFor();
    assert.equal(await page.isVisible('#mo-f-segment'), false);
    await page.selectOption('#mo-f-kind', 'segment');
    assert.equal(await page.isVisible('#mo-f-segment'), true);
    await page.selectOption('#mo-f-kind', 'tags');
    await shot('moments.png');
  });

  await step('in English', async () => {
    await page.click('#lang-toggle');
    await page.waitForFunction(() => document.querySelector('#page h1')?.textContent === 'Moments SOP');
    await page.locator('#mo-week').waitFor();
    await shot('moments-en.png');
  });

  await step('the daily Moments cap is set on the guardrails page, the rest of the policy kept', async () => {
    const before = await call('GET', '/v1/guardrails');
    assert.equal(before.body.moments_per_local_day, 1);
    await page.goto(url + '/#/guardrails');
    await page.locator('#g-moments').waitFor();
    await page.fill('#g-moments', '2');
    await page.click('#guardrails-save');
    let after;
    for (let i = 0; i < 50; i++) {
      after = await call('GET', '/v1/guardrails');
      if (after.body.moments_per_local_day === 2) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(after.body.moments_per_local_day, 2);
    assert.equal(after.body.group_posts_per_day, before.body.group_posts_per_day);
  });

  await step('an analyst reads the calendar but cannot save', async () => {
    const analyst = await browser.newContext({ viewport: { width: 1360, height: 900 }, locale: 'zh-CN' });
    const p = await analyst.newPage();
    watch(p, errors);
    await login(p, url, 'analyst');
    await p.goto(url + '/#/moments/' + id);
    await p.locator('#mo-week').waitFor();
    assert.equal(await p.isDisabled('#mo-save'), true);
    await analyst.close();
  });

  await step('no page errors or CSP violations', async () => {
    assert.deepEqual(errors, []);
  });
} catch (e) {
  failSetup(e);
} finally {
  await finish(demo, browser, 'e2e moments');
}
