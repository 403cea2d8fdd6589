// Browser test of the pages a customer sees (H5): a real `siyu demo`, the
// demo campaign's invite link and its live code opened in Debian's
// Chromium as a phone inside WeChat (390×844, WeChat's user agent), what
// is visible asserted, the page weight checked, screenshots saved to
// screenshots/h5-*.png.
//
//   SIYU_BIN=../../target/debug/siyu node h5.test.mjs
//
// Every step prints its name and time; the first failure stops the run
// with exit code 1 (and screenshots/h5-failure.png).
import assert from 'node:assert/strict';
import path from 'node:path';
import { startDemo, step, launch, finish, failSetup, SHOTS } from './harness.mjs';

const WECHAT_UA = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.44';
// A page must stay light on a phone network.
const MAX_PAGE_BYTES = 30 * 1024;

const demo = startDemo();
let browser;
const pageErrors = [];
try {
  const { url, key } = await demo.ready;
  console.log(`siyu demo at ${url} (data ${demo.dataDir})`);
  const api = async (method, p, body) => {
    const r = await fetch(url + p, {
      method,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    assert.ok(r.ok, `${method} ${p}: ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };

  browser = await launch();
  const context = await browser.newContext({
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
    userAgent: WECHAT_UA,
    locale: 'zh-CN',
  });
  const page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
  // Error statuses are the pages under test; anything else (a CSP
  // violation, a failed image) is a fault.
  page.on('console', (m) => { if (m.type() === 'error' && !/status of (404|409|410)/.test(m.text())) pageErrors.push(`console: ${m.text()}`); });
  page.on('requestfailed', (r) => pageErrors.push(`request failed: ${r.url()}`));
  const shot = (name) => page.screenshot({ path: path.join(SHOTS, name), fullPage: true });
  process.on('uncaughtException', async () => { await shot('h5-failure.png').catch(() => {}); });

  // Opens `link` as WeChat would; checks the page's headers and weight.
  async function open(link, status) {
    const r = await page.goto(link);
    assert.equal(r.status(), status, `${link}: ${r.status()}`);
    const h = r.headers();
    assert.equal(h['content-type'], 'text/html; charset=utf-8');
    assert.match(h['content-security-policy'], /^default-src 'none'; img-src 'self'; style-src 'sha256-/);
    const bytes = (await r.body()).length;
    assert.ok(bytes < MAX_PAGE_BYTES, `${link}: ${bytes} bytes`);
    // Every image drawn (the QR codes load under the page's CSP).
    await page.waitForFunction(() => [...document.images].every((i) => i.complete && i.naturalWidth > 0));
    // Nothing wider than the phone.
    assert.equal(await page.evaluate(() => document.documentElement.scrollWidth), 390);
    return bytes;
  }
  const visible = async (text) => assert.ok(await page.getByText(text, { exact: false }).first().isVisible(), `visible: ${text}`);

  // A named customer of the demo invites (the demo's newcomer 林晓).
  const invite = await api('POST', '/v1/campaigns/double11/invites', { identity: 'wecom:wm_new0' });
  assert.ok(invite.link.startsWith(url + '/i/double11/'), invite.link);

  await step('an API client still gets the landing as JSON', async () => {
    const r = await fetch(invite.link, { headers: { accept: 'application/json' } });
    assert.equal(r.status, 200);
    const l = await r.json();
    assert.equal(l.name, '双11 老带新');
    assert.equal(l.inviter_name, '林晓');
  });

  await step('the invite link is a page: campaign, inviter, tiers, the live code to scan', async () => {
    const bytes = await open(invite.link, 200);
    assert.equal(await page.textContent('h1'), '双11 老带新');
    await visible('林晓 邀请你参加');
    await visible('林晓 invited you');
    await visible('邀请 3 位好友');
    await visible('邀请 10 位好友');
    await visible('coupon');
    await visible('长按识别二维码');
    const qr = page.locator('img.qr');
    assert.equal(await qr.getAttribute('src'), '/l/vip/qr.png');
    assert.equal(await qr.evaluate((i) => i.naturalWidth), 400);
    const box = await qr.boundingBox();
    assert.ok(box.width >= 200 && box.x >= 0 && box.x + box.width <= 390, JSON.stringify(box));
    assert.equal(await page.locator('script').count(), 0);
    // Never the inviter's identity.
    assert.ok(!(await page.content()).includes('wm_new0'));
    await shot('h5-invite.png');
    console.log(`     invite page: ${bytes} bytes`);
  });

  let target;
  await step('its button opens the live code: the group to join', async () => {
    await Promise.all([page.waitForNavigation(), page.getByRole('link', { name: /加入会员群/ }).click()]);
    assert.equal(new URL(page.url()).pathname, '/l/vip');
    const bytes = await open(page.url(), 200);
    const json = await (await fetch(url + '/l/vip')).json();
    target = json.target;
    assert.ok(target.group, JSON.stringify(json));
    const group = await api('GET', `/v1/groups/${target.group}`);
    await visible('加入群聊');
    assert.equal(await page.textContent('h1'), group.name);
    // The demo's groups have no join url: the code's own QR, for another device.
    assert.equal(await page.locator('img.qr').getAttribute('src'), '/l/vip/qr.png');
    await shot('h5-livecode.png');
    console.log(`     live code page: ${bytes} bytes`);
  });

  await step('with a join url saved, the page shows that url\'s QR and an open button', async () => {
    const g = await api('GET', `/v1/groups/${target.group}`);
    const joinUrl = 'https://work.weixin.qq.com/gm/demo-join-0001';
    await api('PUT', `/v1/groups/${target.group}`, { channel: g.channel, name: g.name, capacity: g.capacity, owner: g.owner, tags: g.tags, url: joinUrl });
    await open(url + '/l/vip', 200);
    assert.equal(await page.locator('img.qr').getAttribute('src'), `/l/vip/qr.png?target=group%3A${target.group}`);
    assert.equal(await page.getByRole('link', { name: /打开/ }).getAttribute('href'), joinUrl);
    await visible('长按识别二维码');
    await shot('h5-livecode-target.png');
  });

  await step('the QR endpoints answer PNGs', async () => {
    for (const p of ['/l/vip/qr.png', new URL(invite.link).pathname + '/qr.png']) {
      const r = await fetch(url + p);
      assert.equal(r.status, 200, p);
      assert.equal(r.headers.get('content-type'), 'image/png');
      const b = Buffer.from(await r.arrayBuffer());
      assert.equal(b.subarray(1, 4).toString(), 'PNG');
      assert.equal(b.readUInt32BE(16), 400);
      assert.equal(b.readUInt32BE(20), 400);
    }
  });

  await step('a bad link is a friendly page', async () => {
    await open(url + '/i/double11/626f7373.000000000000', 404);
    await visible('链接无效');
    await visible('This link is not valid');
    await shot('h5-error.png');
  });

  await step('an archived campaign is a 410 page', async () => {
    await api('DELETE', '/v1/campaigns/double11');
    await open(invite.link, 410);
    await visible('活动已结束');
    await visible('This campaign is not open');
    await shot('h5-invite-gone.png');
  });

  await step('no page errors or CSP violations', async () => {
    assert.deepEqual(pageErrors, []);
  });
} catch (e) {
  failSetup(e);
} finally {
  await finish(demo, browser, 'e2e h5');
}
