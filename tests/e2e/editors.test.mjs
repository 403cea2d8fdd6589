// Browser test of the visual editors and the console polish, against a
// real `siyu demo`: the demo's welcome journey edited in its flow diagram
// (a wait changed through the node form, a step added from a "+" slot),
// saved, and the change read back through the API; a 422 fault shown on
// the node it names; the JSON tab round-tripping with the diagram; the
// fission campaign, the live code and the auto-reply rules edited through
// their forms; then, in English at 1280×800, the nav on one line, badges
// that do not wrap, a person page whose timeline fits and whose
// percent-encoded buyer id is shown decoded.
//
//   SIYU_BIN=../../target/debug/siyu node editors.test.mjs
import assert from 'node:assert/strict';
import { startDemo, step, launch, watch, login, finish, failSetup } from './harness.mjs';

const demo = startDemo();
let browser;
const errors = [];
try {
  const { url, key } = await demo.ready;
  console.log(`siyu demo at ${url} (data ${demo.dataDir})`);
  const call = async (method, p, body) => {
    const r = await fetch(url + p, { method, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : null };
  };
  const apiGet = async (p) => {
    const r = await call('GET', p);
    assert.equal(r.status, 200, `${p}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };

  browser = await launch();
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, locale: 'zh-CN', timezoneId: 'UTC' });
  const page = await context.newPage();
  const fullShot = watch(page, errors);
  // From the top, so the sticky header is where it belongs in the picture.
  const shot = async (name) => { await page.evaluate(() => window.scrollTo(0, 0)); await fullShot(name); };
  // Just one editor (its card), for a closer look.
  const cardShot = async (sel, name) => {
    await page.evaluate(() => { document.querySelector('header.top').style.position = 'static'; });
    await page.locator(sel).locator('xpath=ancestor::section[contains(@class, "card")][1]').screenshot({ path: new URL('./screenshots/' + name, import.meta.url).pathname });
    await page.evaluate(() => { document.querySelector('header.top').style.position = ''; });
  };
  page.on('dialog', (d) => d.accept());
  await login(page, url, 'admin');

  const node = (name) => page.locator(`#journey-flow g.node[data-node="${name}"]`);

  await step('the demo welcome journey opens as a flow diagram: trigger, send, wait-for-event with its two ways on, tag, task', async () => {
    await page.goto(url + '/#/journeys/welcome');
    await page.locator('#journey-flow').waitFor();
    for (const n of ['trigger', 'hello', 'wait', 'thanks', 'call']) await node(n).waitFor();
    assert.match(await node('hello').textContent(), /发送消息.*welcome/s);
    assert.match(await node('wait').textContent(), /等待事件.*购买.*3d/s);
    // Edges: trigger → hello → wait → {thanks, call}.
    const edges = await page.$$eval('#journey-flow path.flow-edge', (ps) => ps.map((p) => `${p.dataset.from}>${p.dataset.to}`).sort());
    assert.deepEqual(edges, ['hello>wait', 'trigger>hello', 'wait>call', 'wait>thanks']);
    // The timeout way is labelled on its edge.
    assert.ok((await page.textContent('#journey-flow g.edges')).includes('超时后'));
    // Rows: the wait's two ways sit on one row below it.
    const y = async (n) => (await node(n).locator('rect').boundingBox()).y;
    assert.ok((await y('trigger')) < (await y('hello')) && (await y('hello')) < (await y('wait')) && (await y('wait')) < (await y('thanks')));
    assert.equal(await y('thanks'), await y('call'));
  });

  const before = await apiGet('/v1/journeys/welcome');

  await step('change the wait through its node form and add a wait step from a "+" slot; save; the API has both', async () => {
    await node('wait').click();
    await page.locator('#jf-timeout').waitFor();
    assert.equal(await page.inputValue('#jf-type'), 'wait_for_event');
    assert.equal(await page.inputValue('#jf-timeout'), '3d');
    await page.fill('#jf-timeout', '5d');
    // The diagram follows the form as it is typed.
    await page.waitForFunction(() => document.querySelector('#journey-flow g.node[data-node="wait"]')?.textContent.includes('5d'));
    // "+" under the tag step (it ends the journey today) → a new wait step.
    await page.click('#journey-flow g.flow-slot[data-from="thanks"][data-field="next"]');
    await page.selectOption('#jf-new-type', 'wait');
    await page.fill('#jf-new-name', 'pause');
    await page.click('#journey-add-step');
    await node('pause').waitFor();
    assert.equal(await page.inputValue('#jf-step-name'), 'pause');
    await page.fill('#jf-duration', '2h');
    await shot('editors-journey-zh.png');
    await page.click('#journey-save');
    await page.waitForFunction(() => /welcome/.test(document.querySelector('#toast')?.textContent) && !document.querySelector('#toast').hidden);
    // Reload the page: the saved version comes back from the server.
    await page.reload();
    await node('pause').waitFor();
    const after = await apiGet('/v1/journeys/welcome');
    assert.equal(after.version, before.version + 1);
    assert.equal(after.definition.steps.wait.timeout, '5d');
    assert.equal(after.definition.steps.thanks.next, 'pause');
    assert.deepEqual(after.definition.steps.pause, { type: 'wait', duration: '2h' });
    // Everything else is as it was.
    assert.deepEqual(after.definition.trigger, before.definition.trigger);
    assert.deepEqual(after.definition.steps.hello, before.definition.steps.hello);
    assert.match(await node('pause').textContent(), /等待.*2h/s);
  });

  await step('a 422 fault is shown on the node it names (red outline, message) and beside the field', async () => {
    const v = (await apiGet('/v1/journeys/welcome')).version;
    await node('pause').click();
    await page.fill('#jf-duration', 'soon');
    await page.click('#journey-save');
    await page.locator('#journey-error').waitFor();
    assert.deepEqual(await page.locator('#journey-error code.path').allTextContents(), ['steps.pause.duration']);
    const faulty = page.locator('#journey-flow g.node.fault');
    assert.equal(await faulty.count(), 1);
    assert.equal(await faulty.getAttribute('data-node'), 'pause');
    const msg = await faulty.locator('text.fault-msg').textContent();
    assert.ok(msg.length > 3, `fault text on the node: ${msg}`);
    assert.equal(await faulty.locator('rect').evaluate((r) => getComputedStyle(r).stroke), 'rgb(185, 28, 28)');
    // The node's form is open with the fault under the duration field.
    assert.equal(await page.getAttribute('#jf-duration', 'class'), 'invalid');
    assert.ok((await page.textContent('#journey-node-form .field-error')).length > 3);
    assert.equal((await apiGet('/v1/journeys/welcome')).version, v, 'nothing saved');
    await shot('editors-journey-fault-zh.png');
    // Removing the step (its link becomes "end") makes the journey valid again.
    await page.click('#journey-delete-step');
    await node('pause').waitFor({ state: 'detached' });
    await page.click('#journey-save');
    await page.waitForFunction((v0) => fetch('/v1/journeys/welcome').then((r) => r.json()).then((j) => j.version === v0 + 1), v);
    const j = await apiGet('/v1/journeys/welcome');
    assert.equal(j.definition.steps.pause, undefined);
    assert.equal(j.definition.steps.thanks.next, undefined);
  });

  await step('the JSON tab round-trips with the diagram', async () => {
    await page.goto(url + '/#/journeys/welcome');
    await node('thanks').waitFor();
    await page.click('#journey-tab-json');
    const shown = JSON.parse(await page.inputValue('#journey-definition'));
    const saved = (await apiGet('/v1/journeys/welcome')).definition;
    delete saved.name;
    assert.deepEqual(shown, saved);
    shown.steps.thanks.tag = 'buyer';
    await page.fill('#journey-definition', JSON.stringify(shown, null, 2));
    await page.click('#journey-tab-visual');
    await page.locator('#journey-flow').waitFor();
    assert.match(await node('thanks').textContent(), /\+ buyer/);
    await node('thanks').click();
    assert.equal(await page.inputValue('#jf-tag'), 'buyer');
    // Broken JSON keeps the JSON tab open with the reason.
    await page.click('#journey-tab-json');
    await page.fill('#journey-definition', '{"steps": ');
    await page.click('#journey-tab-visual');
    await page.locator('#journey-error').waitFor();
    assert.equal(await page.isVisible('#journey-definition'), true);
  });

  await step('fission campaign: tiers and rules through the form; an overlap is shown on the tier field; saved values read back', async () => {
    await page.goto(url + '/#/fission/double11');
    await page.locator('#cf-name').waitFor();
    assert.equal(await page.inputValue('#cf-name'), '双11 老带新');
    assert.equal(await page.inputValue('#cf-tier-0-invites'), '3');
    assert.equal(await page.inputValue('#cf-rule-hold'), '7d');
    assert.equal(await page.inputValue('#cf-landing-code'), 'vip');
    await page.fill('#cf-tier-1-invites', '2');
    await page.click('#campaign-save');
    await page.locator('#campaign-error').waitFor();
    assert.equal(await page.getAttribute('#cf-tier-1-invites', 'class'), 'invalid');
    assert.match(await page.locator('#campaign-form-pane .field-error').first().textContent(), /tiers overlap/);
    await cardShot('#campaign-form', 'editors-campaign-zh.png');
    await page.fill('#cf-tier-1-invites', '12');
    await page.fill('#cf-tier-0-invites', '4');
    await page.fill('#cf-rule-hold', '10d');
    await page.fill('#cf-reward-gift-cost', '99.5');
    await page.click('#campaign-save');
    await page.waitForFunction(() => fetch('/v1/campaigns/double11').then((r) => r.json()).then((c) => c.rules && c.rules.hold === '10d'));
    const c = await apiGet('/v1/campaigns/double11');
    assert.deepEqual(c.tiers, [{ invites: 4, reward: 'coupon' }, { invites: 12, reward: 'gift' }]);
    assert.equal(c.rewards.gift.cost, 9950);
    assert.deepEqual(c.landing, { next: 'live_code', live_code: 'vip' }, 'the landing rides along');
    assert.equal(c.rules.convert_within, '14d');
  });

  await step('live code: loaded into its form from the list, daily cap and tags changed, saved', async () => {
    await page.goto(url + '/#/communities');
    await page.locator('#livecode-list tr[data-livecode=vip] button.link').click();
    assert.equal(await page.inputValue('#livecode-id'), 'vip');
    assert.equal(await page.inputValue('#lf-cap'), '200');
    assert.equal(await page.inputValue('#lf-target-0'), 'g00');
    assert.equal(await page.inputValue('#lf-target-3-kind'), 'operator');
    await page.fill('#lf-cap', '150');
    await page.fill('#lf-tags', 'livecode, 直播');
    await page.selectOption('#lf-target-1', 'g03');
    await cardShot('#livecode-form', 'editors-livecode-zh.png');
    await page.click('#livecode-save');
    await page.waitForFunction(() => fetch('/v1/livecodes').then((r) => r.json()).then((x) => x.livecodes.find((c) => c.id === 'vip').daily_cap_per_operator === 150));
    const code = (await apiGet('/v1/livecodes')).livecodes.find((c) => c.id === 'vip');
    assert.deepEqual(code.auto_tags, ['livecode', '直播']);
    assert.deepEqual(code.targets, [{ group: 'g00' }, { group: 'g03' }, { group: 'g02' }, { operator: 'op_wang' }]);
    assert.equal(code.welcome_template, 'welcome');
  });

  await step('auto-reply rules: a keyword and the cooldown through the form; an empty rule is refused on its field', async () => {
    await page.goto(url + '/#/templates');
    await page.locator('#af-0-words').waitFor();
    assert.equal(await page.inputValue('#af-0-words'), '多少钱, 价格, 求资料');
    await page.fill('#af-0-words', '多少钱, 价格, 求资料, 怎么卖');
    await page.fill('#af-0-cooldown', '300');
    await page.click('#autoreply-add');
    await page.locator('#af-1-words').waitFor();
    await page.click('#autoreply-save');
    await page.locator('#autoreply-error').waitFor();
    assert.equal(await page.getAttribute('#af-1-words', 'class'), 'invalid');
    assert.match(await page.textContent('#autoreply-form-pane .field-error'), /empty list/);
    await cardShot('#autoreply-form', 'editors-autoreply-zh.png');
    await page.fill('#af-1-words', '发货, 快递');
    await page.fill('#af-1-id', 'shipping');
    await page.click('#autoreply-save');
    await page.waitForFunction(() => fetch('/v1/autoreply').then((r) => r.json()).then((x) => x.rules.length === 2));
    const rules = (await apiGet('/v1/autoreply')).rules;
    assert.deepEqual(rules[0].matcher, { any_of: ['多少钱', '价格', '求资料', '怎么卖'] });
    assert.equal(rules[0].cooldown_secs, 300);
    assert.equal(rules[0].create_lead, true);
    assert.deepEqual(rules[1].matcher, { any_of: ['发货', '快递'] });
    assert.equal(rules[1].id, 'shipping');
  });

  // A buyer whose id arrives percent-encoded (as order imports write
  // them), with a long property, for the person page checks.
  const BUYER = 'taobao:%E5%B0%8F%E7%BA%A2%E4%B9%A6%E5%BA%97%E9%93%BA%E7%9A%84%E5%BF%A0%E5%AE%9E%E4%B9%B0%E5%AE%B6';
  const BUYER_SHOWN = 'taobao:小红书店铺的忠实买家';
  const ts = new Date(Date.now() - 60_000).toISOString().replace(/\.\d+Z$/, 'Z');
  const long = '很长的备注'.repeat(30) + ' https://example.com/a/very/long/path/' + 'x'.repeat(120);
  const ingest = await call('POST', '/v1/events', [
    { ts, identity: BUYER, type: 'custom', name: 'viewed_item', properties: { note: long, sku: 'SKU-' + '9'.repeat(60) } },
    { ts, identity: BUYER, type: 'comment', text: '这件衣服有没有大一码的？'.repeat(6), channel: 'taobao' },
  ]);

  const navOneLine = async () => page.evaluate(() => {
    const links = [...document.querySelectorAll('#nav a')].map((a) => a.getBoundingClientRect());
    const nav = document.querySelector('#nav').getBoundingClientRect();
    const top = document.querySelector('header.top').getBoundingClientRect();
    const who = document.querySelector('header .who').getBoundingClientRect();
    const el = document.querySelector('#nav');
    return { tops: [...new Set(links.map((r) => Math.round(r.top)))], navH: nav.height, headerH: top.height, right: Math.max(...links.map((r) => r.right)), whoLeft: who.left, navClipped: el.scrollWidth > el.clientWidth, width: window.innerWidth, scroll: document.documentElement.scrollWidth };
  });

  await step('zh-CN at 1280×800: the nav is one line', async () => {
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.goto(url + '/#/dashboard');
    await page.locator('#kpis').waitFor();
    const n = await navOneLine();
    assert.equal(n.tops.length, 1, JSON.stringify(n));
    assert.ok(n.navH < 40 && n.headerH < 60, JSON.stringify(n));
    assert.ok(n.right <= n.whoLeft && !n.navClipped, `nav runs under the account area: ${JSON.stringify(n)}`);
    await page.screenshot({ path: new URL('./screenshots/editors-nav-zh.png', import.meta.url).pathname, clip: { x: 0, y: 0, width: 1280, height: 120 } });
    await page.goto(url + '/#/persons/' + encodeURIComponent(BUYER));
    await page.locator('#timeline-rows tr').first().waitFor();
    assert.equal(await page.textContent('#profile-id'), BUYER_SHOWN);
    await shot('editors-person-zh.png');
    await page.goto(url + '/#/dashboard');
    await page.locator('#kpis').waitFor();
  });

  await step('English at 1280×800: the nav is one line, nothing overflows the header', async () => {
    await page.click('#lang-toggle');
    await page.waitForFunction(() => document.querySelector('#nav a[data-page=dashboard]')?.textContent === 'Dashboard');
    const n = await navOneLine();
    assert.equal(n.tops.length, 1, `nav links on ${n.tops.length} lines: ${JSON.stringify(n)}`);
    assert.ok(n.navH < 40 && n.headerH < 60, JSON.stringify(n));
    assert.ok(n.scroll <= n.width, `page wider than the window: ${JSON.stringify(n)}`);
    assert.ok(n.right <= n.whoLeft && !n.navClipped, `nav runs under the account area: ${JSON.stringify(n)}`);
    await page.screenshot({ path: new URL('./screenshots/editors-nav-en.png', import.meta.url).pathname, clip: { x: 0, y: 0, width: 1280, height: 120 } });
  });

  await step('English person page: the buyer id decoded (links keep it encoded), badges on one line, the timeline fits', async () => {
    assert.equal(ingest.status, 200, JSON.stringify(ingest.body));
    await page.goto(url + '/#/persons/' + encodeURIComponent(BUYER));
    await page.locator('#profile').waitFor();
    await page.locator('#timeline-rows tr').first().waitFor();
    assert.equal(await page.textContent('#profile-id'), BUYER_SHOWN);
    assert.equal(await page.getAttribute('#profile-id', 'title'), BUYER);
    assert.ok((await page.textContent('#identities')).includes(BUYER_SHOWN));
    assert.ok((await page.textContent('#timeline-rows')).includes(BUYER_SHOWN));
    assert.equal(await page.getAttribute('#export', 'href'), '/v1/persons/' + encodeURIComponent(BUYER) + '/export');
    const fit = await page.evaluate(() => {
      const table = document.querySelector('#timeline').getBoundingClientRect();
      const card = document.querySelector('#timeline').closest('.card').getBoundingClientRect();
      const badges = [...document.querySelectorAll('#page .badge, #page .chip')].map((b) => ({ text: b.textContent, ws: getComputedStyle(b).whiteSpace, h: b.getBoundingClientRect().height }));
      return { table: table.right, card: card.right, scroll: document.documentElement.scrollWidth, width: window.innerWidth, badges };
    });
    assert.ok(fit.scroll <= fit.width, `horizontal overflow: ${fit.scroll} > ${fit.width}`);
    assert.ok(fit.table <= fit.card + 0.5, `timeline ${fit.table} wider than its card ${fit.card}`);
    assert.ok(fit.badges.length >= 3);
    for (const b of fit.badges) {
      assert.equal(b.ws, 'nowrap', `badge "${b.text}" may wrap`);
      assert.ok(b.h < 30, `badge "${b.text}" is ${b.h}px tall`);
    }
    await shot('editors-person-en.png');
  });

  await step('English journey editor', async () => {
    await page.setViewportSize({ width: 1360, height: 900 });
    await page.goto(url + '/#/journeys/winback');
    await page.locator('#journey-flow g.node[data-node="at10"]').waitFor();
    assert.match(await page.textContent('#journey-flow g.node[data-node="at10"]'), /Wait until.*10:00/s);
    assert.match(await page.textContent('#journey-flow g.node[data-node="trigger"]'), /enters segment.*lapsed_buyers/s);
    await page.locator('#journey-flow g.node[data-node="trigger"]').click();
    assert.equal(await page.inputValue('#jf-reentry'), 'cooldown');
    assert.equal(await page.inputValue('#jf-cooldown'), '30d');
    await shot('editors-journey-en.png');
    await page.goto(url + '/#/fission/double11');
    await page.locator('#cf-name').waitFor();
    await cardShot('#campaign-form', 'editors-campaign-en.png');
    await page.click('#lang-toggle');
  });

  await step('an analyst sees the diagram and forms, but adding, removing and saving are disabled', async () => {
    await page.click('#logout');
    await page.locator('#login-form').waitFor();
    await login(page, url, 'analyst');
    await page.goto(url + '/#/journeys/welcome');
    await node('wait').click();
    await page.locator('#jf-timeout').waitFor();
    assert.equal(await page.isDisabled('#journey-save'), true);
    assert.equal(await page.isDisabled('#journey-delete-step'), true);
    await page.click('#journey-flow g.flow-slot[data-from="thanks"]');
    assert.equal(await page.isDisabled('#journey-add-step'), true);
    await page.goto(url + '/#/templates');
    await page.locator('#af-0-words').waitFor();
    assert.equal(await page.isDisabled('#autoreply-add'), true);
    assert.equal(await page.isDisabled('#autoreply-save'), true);
  });

  await step('no page errors or CSP violations', async () => {
    assert.deepEqual(errors, []);
  });
} catch (e) {
  failSetup(e);
} finally {
  await finish(demo, browser, 'editors e2e');
}
