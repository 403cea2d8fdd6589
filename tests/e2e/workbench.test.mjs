// Browser test of the operator workbench pages: the quick-reply library
// (#/quick-replies) on a real `siyu demo` — an operator saves a shared and
// a personal reply through the form, sees a template fault on the form,
// finds replies by typing, fills one in for a customer (the customer's
// name in the text, the use counted) and reads it all in English.
//
//   SIYU_BIN=../../target/debug/siyu node workbench.test.mjs
import assert from 'node:assert/strict';
import { startDemo, step, launch, watch, login, finish, failSetup } from './harness.mjs';

const demo = startDemo();
let browser;
const errors = [];
try {
  const { url, key } = await demo.ready;
  console.log(`siyu demo at ${url}`);
  const r = await fetch(url + '/v1/events', {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify([{ ts: Math.floor(Date.now() / 1000), identity: 'wecom:wmE2EQR', type: 'identify', traits: { name: '李雷' } }]),
  });
  assert.equal(r.status, 200);

  browser = await launch();
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, locale: 'zh-CN', timezoneId: 'UTC' });
  const page = await context.newPage();
  const shot = watch(page, errors);
  const fill = async (fields) => { for (const [id, v] of Object.entries(fields)) await page.fill(id, v); };

  await step('an empty library says what to do; a bad template is refused on the form', async () => {
    await login(page, url, 'operator');
    await page.click('#nav a[data-page=templates]');
    await page.click('#quick-replies-link');
    await page.locator('#qr-empty').waitFor();
    await fill({ '#qr-f-id': 'price', '#qr-f-title': '价格表', '#qr-f-group': '售前', '#qr-f-text': '{{ name 您好' });
    await page.click('#qr-save');
    await page.locator('#qr-fault').waitFor();
    assert.match(await page.textContent('#qr-fault'), /text.*line 1 column/);
  });

  await step('saved shared and personal replies are listed by group', async () => {
    await page.fill('#qr-f-text', '{{name | default: "亲"}}您好，正价 199 元，会员 159 元');
    await page.fill('#qr-f-keywords', '多少钱, 价格');
    await page.click('#qr-save');
    await page.locator('[data-reply=price]').waitFor();
    await fill({ '#qr-f-id': 'intro', '#qr-f-title': '我的开场白', '#qr-f-group': '', '#qr-f-text': '我是您的专属顾问小王' });
    await page.check('#qr-f-personal');
    await page.click('#qr-save');
    await page.locator('[data-reply=intro]').waitFor();
    assert.match(await page.textContent('[data-reply=intro] .badge'), /仅自己/);
    assert.match(await page.textContent('[data-reply=price] .badge'), /团队共享/);
    const shared = await (await fetch(url + '/v1/quick-replies', { headers: { authorization: `Bearer ${key}` } })).json();
    assert.deepEqual(shared.quick_replies.map((q) => q.id), ['price'], 'the personal one is the operator\'s only');
  });

  await step('a reply that hits a sensitive-word rule is saved with a warning', async () => {
    const r = await fetch(url + '/v1/sensitive-words', {
      method: 'PUT',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ rules: [{ id: 'wechat', matcher: { regex: '加(我|个)?(个人)?(微信|vx|wx)' }, applies_to: 'operator', category: '私下交易' }] }),
    });
    assert.equal(r.status, 200);
    await fill({ '#qr-f-id': 'offline', '#qr-f-title': '加微信', '#qr-f-group': '', '#qr-f-text': '加我个人微信聊' });
    await page.click('#qr-save');
    await page.locator('#qr-sensitive').waitFor();
    assert.match(await page.textContent('#qr-sensitive'), /私下交易/);
    await page.locator('[data-reply=offline]').waitFor();
    page.once('dialog', (d) => d.accept());
    await page.click('[data-reply=offline] .qr-delete');
    await page.waitForFunction(() => !document.querySelector('[data-reply=offline]'));
  });

  await step('typing finds replies by keyword', async () => {
    await page.fill('#qr-search', '多少钱');
    await page.waitForFunction(() => document.querySelectorAll('[data-reply]').length === 1);
    assert.ok(await page.locator('[data-reply=price]').isVisible());
    await page.fill('#qr-search', '没有这个词');
    await page.locator('#qr-empty').waitFor();
    await page.fill('#qr-search', '');
    await page.waitForFunction(() => document.querySelectorAll('[data-reply]').length === 2);
  });

  await step('filled in for a customer: their name in the text, the use counted', async () => {
    await page.fill('#qr-person', 'wecom:wmE2EQR');
    await page.click('[data-reply=price] .qr-use');
    await page.locator('#qr-filled').waitFor();
    assert.equal(await page.textContent('#qr-filled'), '李雷您好，正价 199 元，会员 159 元');
    await page.waitForFunction(() => /使用 1 次/.test(document.querySelector('[data-reply=price] .qr-uses')?.textContent));
    await shot('quick-replies.png');
  });

  await step('in English', async () => {
    await page.click('#lang-toggle');
    await page.waitForFunction(() => document.querySelector('#page h1')?.textContent === 'Quick replies');
    await page.locator('[data-reply=price]').waitFor();
    assert.match(await page.textContent('[data-reply=price] .qr-uses'), /used 1×/);
    await shot('quick-replies-en.png');
  });

  await step('an analyst reads the library but cannot change or use it', async () => {
    const analyst = await browser.newContext({ viewport: { width: 1360, height: 900 }, locale: 'zh-CN' });
    const p = await analyst.newPage();
    watch(p, errors);
    await login(p, url, 'analyst');
    await p.goto(url + '/#/quick-replies');
    await p.locator('[data-reply=price]').waitFor();
    assert.equal(await p.isDisabled('[data-reply=price] .qr-use'), true);
    assert.equal(await p.isDisabled('#qr-save'), true);
    await analyst.close();
  });

  await step('no page errors or CSP violations', async () => {
    assert.deepEqual(errors, []);
  });
} catch (e) {
  failSetup(e);
} finally {
  await finish(demo, browser, 'e2e workbench');
}
