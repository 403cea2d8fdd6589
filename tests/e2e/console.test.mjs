// Browser test of the siyu console: starts a real `siyu demo` on a free
// port with a temp data dir, drives Debian's Chromium with playwright-core,
// and saves one screenshot per page to screenshots/.
//
//   SIYU_BIN=../../target/debug/siyu node console.test.mjs
//
// Every step prints its name and time; the first failure stops the run
// with exit code 1 (and a screenshot of the page at that moment).
import assert from 'node:assert/strict';
import path from 'node:path';
import { startDemo, step, launch, finish, failSetup, SHOTS, PASSWORD } from './harness.mjs';

const demo = startDemo();
let browser;
const pageErrors = [];
try {
  const { url, key } = await demo.ready;
  console.log(`siyu demo at ${url} (data ${demo.dataDir})`);
  const apiGet = async (p) => {
    const r = await fetch(url + p, { headers: { authorization: `Bearer ${key}` } });
    assert.equal(r.status, 200, `${p}: ${r.status}`);
    return r.json();
  };

  browser = await launch();
  // The browser runs in UTC: the console must show the workspace's zone (Asia/Shanghai), not the browser's.
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, locale: 'zh-CN', timezoneId: 'UTC' });
  const page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource: the server responded with a status of (40[0-4]|409|410|422)/.test(m.text())) pageErrors.push(`console: ${m.text()}`); });
  const shot = (name) => page.screenshot({ path: path.join(SHOTS, name), fullPage: true });
  process.on('uncaughtException', async () => { await shot('failure.png').catch(() => {}); });

  async function login(who) {
    await page.goto(url + '/');
    await page.locator('#login-form').waitFor();
    await page.fill('#login-name', who);
    await page.fill('#login-password', PASSWORD);
    await page.click('#login-submit');
    await page.locator('#app-view').waitFor();
  }

  await step('login page is zh-CN; a wrong password is refused', async () => {
    await page.goto(url + '/');
    await page.locator('#login-form').waitFor();
    assert.equal(await page.textContent('#login-submit'), '登录');
    await page.fill('#login-name', 'admin');
    await page.fill('#login-password', 'wrong-password');
    await page.click('#login-submit');
    await page.waitForFunction(() => document.querySelector('#login-error')?.textContent.length > 0);
    assert.equal(await page.textContent('#login-error'), '账号或密码错误');
    await shot('login.png');
  });

  await step('admin logs in; the session cookie is HttpOnly and SameSite=Strict', async () => {
    await login('admin');
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === 'siyu_session');
    assert.ok(session, 'session cookie set');
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Strict');
    assert.equal(await page.evaluate(() => document.cookie.includes('siyu_session')), false, 'JS cannot read the session');
    assert.equal(await page.textContent('#who-login'), 'admin');
  });

  await step('dashboard draws funnel, ROI, cohort and RFM charts', async () => {
    await page.waitForURL(/#\/dashboard/);
    for (const id of ['#funnel-chart svg', '#roi-chart svg', '#cohort-chart svg', '#rfm-chart svg']) {
      await page.locator(id).waitFor();
    }
    const health = await (await fetch(url + '/healthz')).json();
    const kpis = await page.textContent('#kpis');
    assert.ok(health.persons >= 5000 && health.persons < 10000);
    assert.ok(kpis.includes(`客户数${health.persons}`), `persons KPI: ${kpis} (${health.persons})`);
    const funnel = await apiGet('/v1/analytics/funnel');
    const bars = await page.locator('#funnel-chart svg rect[rx]').count();
    assert.equal(bars, funnel.rows.length * 3, 'one bar per channel and step');
    const cells = await page.locator('#rfm-chart svg rect').count();
    assert.equal(cells, 25, 'R × F grid');
    await page.selectOption('#rfm-m', '5');
    await page.locator('#rfm-chart svg rect').first().waitFor();
    await shot('dashboard.png');
  });

  await step('the demo fills communities, content and the fission campaign; channels have their Chinese names', async () => {
    const labels = await page.locator('#funnel-chart svg text').allTextContents();
    assert.ok(labels.includes('抖音') && labels.includes('小红书'), `funnel labels: ${labels}`);
    const [groups, content, board] = await Promise.all([apiGet('/v1/groups'), apiGet('/v1/content'), apiGet('/v1/campaigns/double11/leaderboard')]);
    assert.equal(groups.groups.length, 12);
    await page.click('#nav a[data-page=communities]');
    await page.locator('#group-list').waitFor();
    assert.equal(await page.locator('#group-list tbody tr').count(), 12);
    assert.equal(await page.textContent('#group-list tr[data-group=g00] td:nth-child(2)'), '企业微信');
    assert.equal(await page.locator('#operator-load tbody tr').count(), 3);
    await page.locator('#livecode-list tr[data-livecode=vip]').waitFor();
    // The form shows the channel's limit and refuses more before sending.
    assert.equal(await page.textContent('#group-capacity-limit'), '企业微信群最多 500 人');
    await page.fill('#group-id', 'e2e_too_big');
    await page.fill('#group-capacity', '600');
    const puts = [];
    const onRequest = (r) => { if (r.method() === 'PUT' && r.url().includes('/v1/groups/')) puts.push(r.url()); };
    page.on('request', onRequest);
    await page.click('#group-save');
    await page.locator('#group-error').waitFor();
    page.off('request', onRequest);
    assert.match(await page.textContent('#group-error'), /容量须在 1 到 500 之间：企业微信群最多 500 人/);
    assert.deepEqual(puts, [], 'nothing was sent');
    await page.fill('#group-channel', 'offline');
    assert.equal(await page.textContent('#group-capacity-limit'), '线下门店群最多 100,000 人');
    await shot('demo-communities.png');
    await page.click('#nav a[data-page=content]');
    await page.locator('#content-list').waitFor();
    assert.equal(content.content.length, 3);
    assert.equal(await page.locator('#content-list tbody tr').count(), 3);
    await shot('demo-content.png');
    await page.click('#nav a[data-page=fission]');
    await page.locator('#campaign-list tr[data-campaign=double11]').waitFor();
    await page.goto(url + '/#/fission/double11');
    await page.locator('#campaign-funnel svg').waitFor();
    assert.ok(board.top.length >= 5 && board.top[0].valid + board.top[0].pending >= 10, JSON.stringify(board.top[0]));
    await page.locator('#leaderboard tbody tr').first().waitFor();
    assert.ok((await page.locator('#reward-ledger tbody tr').count()) >= 3, 'rewards granted to the inviters past a tier');
    await shot('demo-fission.png');
    const english = await page.evaluate(() => { I18N.setLang('en'); const n = ['douyin', 'wecom', 'offline'].map(I18N.channel); I18N.setLang('zh-CN'); return n; });
    assert.deepEqual(english, ['Douyin', 'WeCom', 'Offline store']);
    await page.click('#nav a[data-page=dashboard]');
    await page.locator('#funnel-chart svg').waitFor();
  });

  await step('dashboard: the eight RFM value layers, share of buyers vs share of revenue; a layer opens its members', async () => {
    const layers = await apiGet('/v1/analytics/rfm-layers');
    assert.equal(layers.layers.length, 8);
    assert.ok(layers.buyers > 0, 'demo has buyers');
    await page.locator('#rfm-layers-chart svg').waitFor();
    const bars = await page.locator('#rfm-layers-chart svg rect[rx]').count();
    assert.equal(bars, 16, 'two bars per layer');
    const text = await page.textContent('#rfm-layers-chart');
    assert.ok(text.includes('重要价值客户') && text.includes('一般挽留客户'), text);
    const champions = layers.layers[0];
    assert.equal(champions.name, '重要价值客户');
    // Champions are worth more than the average buyer, and the chart says by how much.
    assert.ok(champions.ratio_to_average > 1, `ratio ${champions.ratio_to_average}`);
    assert.ok(text.includes(`人均 ×${champions.ratio_to_average.toFixed(1)}`), text);
    const th = await page.textContent('#rfm-thresholds');
    assert.ok(th.includes(`${layers.thresholds.recency_days} 天内`), th);
    await page.locator('#rfm-layers-chart').screenshot({ path: path.join(SHOTS, 'rfm-layers.png') });
    await page.click('#rfm-layer-links a[data-layer=important_value]');
    await page.waitForFunction(() => /rfm_layer = "重要价值客户"/.test(document.querySelector('#segment-source')?.value || ''));
    await page.locator('#segment-count').waitFor();
    const count = await page.textContent('#segment-count');
    assert.ok(count.replace(/[^0-9]/g, '') === String(champions.persons), `${count} vs ${champions.persons}`);
    await shot('rfm-layer-members.png');
  });

  await step('local time: an order paid 2026-10-31T12:15Z shows 20:15 (Asia/Shanghai); the date range narrows funnel and ROI', async () => {
    const ev = [
      { id: 'e2e-tz-touch', ts: '2026-10-31T12:10:00Z', identity: 'douyin:e2etz01', type: 'touch' },
      { id: 'e2e-tz-order', ts: '2026-10-31T12:15:00Z', identity: 'douyin:e2etz01', type: 'purchase', amount: 12900 },
    ];
    const r = await fetch(url + '/v1/events', { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(ev) });
    assert.equal(r.status, 200);
    assert.equal(await page.textContent('#tz-label'), '时区 Asia/Shanghai');
    await page.goto(url + '/#/persons/douyin%3Ae2etz01');
    const order = page.locator('#timeline-rows tr.ev-purchase time');
    await order.waitFor();
    assert.equal(await order.textContent(), '2026-10-31 20:15');
    assert.equal(await order.getAttribute('title'), 'Asia/Shanghai · 2026-10-31T12:15:00Z');
    await shot('person-local-time.png');

    await page.click('#nav a[data-page=dashboard]');
    await page.locator('#range-form').waitFor();
    assert.equal(await page.textContent('#range-caption'), 'Asia/Shanghai · 全部时间');
    await page.fill('#range-from', '2026-10-31');
    await page.fill('#range-to', '2026-10-31');
    await page.click('#range-apply');
    await page.waitForFunction(() => (document.querySelector('#range-caption') || {}).textContent === 'Asia/Shanghai · 2026-10-31 至 2026-10-31（含两端）');
    const funnel = await apiGet('/v1/analytics/funnel?from=2026-10-31&to=2026-10-31');
    const douyinRow = funnel.rows.find((x) => x.channel === 'douyin');
    assert.ok(douyinRow && douyinRow.entered >= 1, `douyin:e2etz01 entered on 10-31: ${JSON.stringify(funnel.rows)}`);
    await page.locator('#funnel-chart svg').waitFor();
    assert.equal(await page.locator('#funnel-chart svg rect[rx]').count(), funnel.rows.length * 3, 'the chart is the ranged funnel');
    const all = await apiGet('/v1/analytics/funnel');
    assert.ok(all.rows.reduce((n, x) => n + x.entered, 0) > funnel.rows.reduce((n, x) => n + x.entered, 0), 'the range narrows the funnel');
    await shot('dashboard-range.png');
    await page.fill('#range-from', '2026-11-02');
    await page.fill('#range-to', '2026-11-01');
    await page.click('#range-apply');
    await page.locator('#range-error').waitFor();
    assert.match(await page.textContent('#range-error'), /^from: `2026-11-02` is after to: `2026-11-01`/);
    await page.click('#range-clear');
    await page.waitForFunction(() => (document.querySelector('#range-caption') || {}).textContent === 'Asia/Shanghai · 全部时间');
  });

  // A demo person who came from Douyin, was linked to WeCom and bought.
  const members = await apiGet('/v1/segments/douyin_repeat_buyers/members?limit=1');
  const target = await apiGet('/v1/persons/' + encodeURIComponent(members.members[0]));
  const douyin = target.identities.find((i) => i.startsWith('douyin:'));
  const wecom = target.identities.find((i) => i.startsWith('wecom:'));
  assert.ok(douyin && wecom, `demo person with douyin and wecom identities: ${target.identities}`);

  await step(`persons: search by a Douyin prefix finds ${douyin}; profile shows WeCom identity and purchases`, async () => {
    await page.click('#nav a[data-page=persons]');
    await page.fill('#person-q', douyin.slice(0, 13));
    await page.press('#person-q', 'Enter');
    const link = page.locator('#person-results a.person-link', { hasText: target.canonical_id });
    await link.waitFor();
    await link.click();
    await page.locator('#profile').waitFor();
    const ids = await page.textContent('#identities');
    assert.ok(ids.includes(douyin) && ids.includes(wecom), `identities: ${ids}`);
    assert.equal(Number(await page.textContent('#purchases')), target.purchases);
    assert.ok(target.purchases >= 2);
    assert.ok((await page.locator('#timeline-rows tr.ev-purchase').count()) >= 1, 'purchases in the timeline');
    assert.ok((await page.textContent('#person-segments')).includes('douyin_repeat_buyers'));
    assert.equal(await page.textContent('#first-channel'), '抖音', 'the first channel by its Chinese name');
    const href = await page.getAttribute('#export', 'href');
    const exported = await page.evaluate(async (h) => (await fetch(h)).text(), href);
    assert.ok(exported.split('\n').filter(Boolean).length >= target.events, 'export link returns every event as JSONL');
    await shot('person.png');
  });

  await step('persons: record an opt-out; erase asks for the id, then the person is gone', async () => {
    const reachable = await apiGet('/v1/segments/vip/members?limit=1'); // vip excludes opted-out persons
    const victim = reachable.members[0];
    await page.goto(url + '/#/persons/' + encodeURIComponent(victim));
    await page.locator('#profile').waitFor();
    assert.equal(await page.getAttribute('#consent', 'class'), 'badge good');
    page.once('dialog', (d) => d.accept());
    await page.click('#opt-out');
    await page.waitForFunction(() => document.querySelector('#consent') && document.querySelector('#consent').className === 'badge bad');
    assert.equal((await apiGet('/v1/persons/' + encodeURIComponent(victim))).opted_out, true, 'opt-out recorded');
    await shot('person-opted-out.png');
    page.once('dialog', (d) => d.accept('not-the-id'));
    await page.click('#erase');
    await page.waitForTimeout(300);
    assert.equal((await fetch(url + '/v1/persons/' + encodeURIComponent(victim), { headers: { authorization: `Bearer ${key}` } })).status, 200, 'a wrong confirmation erases nothing');
    page.once('dialog', (d) => d.accept(victim));
    await page.click('#erase');
    await page.waitForURL(/#\/persons$/);
    assert.equal((await fetch(url + '/v1/persons/' + encodeURIComponent(victim), { headers: { authorization: `Bearer ${key}` } })).status, 404);
  });

  const source = 'purchases >= 2 and net_spend >= 300.00 and not opted_out';
  await step('segments: inline error with a caret, then a live count, save, members, explain', async () => {
    await page.click('#nav a[data-page=segments]');
    await page.locator('#segment-source').waitFor();
    await page.fill('#segment-name', 'e2e_big_spenders');
    await page.fill('#segment-source', 'purchases >= 2 and');
    await page.locator('#segment-error').waitFor();
    assert.match(await page.textContent('#segment-error'), /column 19/);
    assert.ok((await page.textContent('pre.caret')).includes('^'));
    await shot('segment-error.png');
    await page.fill('#segment-source', source);
    await page.locator('#segment-count').waitFor();
    const preview = await (await fetch(url + '/v1/segments/preview', { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ segment: source }) })).json();
    assert.ok(preview.count > 0);
    assert.ok((await page.textContent('#segment-count')).includes(preview.count.toLocaleString()), 'count as the API says');
    await page.click('#segment-save');
    await page.waitForURL(/#\/segments\/e2e_big_spenders/);
    await page.locator('#segment-members a').first().waitFor();
    const saved = (await apiGet('/v1/segments')).segments.find((s) => s.name === 'e2e_big_spenders');
    assert.equal(saved.count, preview.count);
    await page.click('#explain-result >> xpath=..//button');
    await page.locator('#explain-result ul.explain').waitFor();
    assert.ok((await page.textContent('#explain-result')).includes('✓'));
    await shot('segments.png');
  });

  await step('segments: delete asks first, is refused while another segment reads it (naming it), then deletes', async () => {
    const auth = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
    const put = (n, segment) => fetch(url + '/v1/segments/' + n, { method: 'PUT', headers: auth, body: JSON.stringify({ segment }) });
    assert.equal((await put('e2e_doomed', 'purchases >= 3')).status, 200);
    assert.equal((await put('e2e_reader', 'in_segment("e2e_doomed")')).status, 200);
    await page.goto(url + '/#/segments/e2e_doomed');
    await page.locator('#segment-delete').waitFor();
    page.once('dialog', (d) => d.dismiss());
    await page.click('#segment-delete');
    assert.equal((await fetch(url + '/v1/segments/e2e_doomed', { headers: auth })).status, 200, 'a dismissed confirmation deletes nothing');
    page.once('dialog', (d) => d.accept());
    await page.click('#segment-delete');
    await page.locator('#segment-delete-error').waitFor();
    assert.match(await page.textContent('#segment-delete-error'), /segment `e2e_reader`/);
    await shot('segment-delete-refused.png');
    assert.equal((await fetch(url + '/v1/segments/e2e_reader', { method: 'DELETE', headers: auth })).status, 200);
    page.once('dialog', (d) => d.accept());
    await page.click('#segment-delete');
    await page.waitForURL(/#\/segments$/);
    await page.waitForFunction(() => { const l = document.querySelector('#segment-list'); return l && !l.textContent.includes('e2e_doomed'); });
    assert.equal((await fetch(url + '/v1/segments/e2e_doomed', { headers: auth })).status, 404);
    await shot('segment-deleted.png');
  });

  await step('settings: keys, operators, spend upload; an admin creates a write key', async () => {
    await page.click('#nav a[data-page=settings]');
    await page.locator('#key-list').waitFor();
    assert.ok((await page.textContent('#operator-list')).includes('analyst'));
    await page.fill('#key-name', 'e2e');
    await page.click('#key-create');
    await page.locator('#new-key').waitFor();
    const newKey = await page.textContent('#new-key');
    assert.match(newKey, /^sk_[0-9a-f]{48}$/);
    const r = await fetch(url + '/v1/segments', { headers: { authorization: `Bearer ${newKey}` } });
    assert.equal(r.status, 200, 'the new key works');
    // The workspace time zone: a bad name is the server's 400 naming the field; a good one changes the header.
    assert.equal(await page.inputValue('#tz-input'), 'Asia/Shanghai');
    await page.fill('#tz-input', 'Mars/Olympus');
    await page.click('#tz-save');
    await page.locator('#tz-result .error').waitFor();
    assert.match(await page.textContent('#tz-result'), /^time_zone: `Mars\/Olympus` is not a time zone/);
    await page.fill('#tz-input', 'America/New_York');
    await page.click('#tz-save');
    await page.locator('#tz-result .good').waitFor();
    assert.equal(await page.textContent('#tz-label'), '时区 America/New_York');
    assert.equal((await apiGet('/v1/workspace')).time_zone, 'America/New_York');
    await page.fill('#tz-input', 'Asia/Shanghai');
    await page.click('#tz-save');
    await page.waitForFunction(() => document.querySelector('#tz-label')?.textContent === '时区 Asia/Shanghai');
    await page.fill('#spend-csv', 'day,channel,spend\n2025-01-01,douyin,18000000\n2025-01-01,kuaishou,4000000\n');
    await page.click('#spend-upload');
    await page.locator('#spend-result .good').waitFor();
    await shot('settings.png');
  });

  // ---------- automation pages ----------
  const apiSend = async (method, p, body) => {
    const r = await fetch(url + p, { method, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: r.status, body: await r.json() };
  };
  // Polls the API (the executor runs beside the writer) until `pred` holds.
  const eventually = async (what, fn, pred) => {
    for (let i = 0; i < 200; i++) {
      const v = await fn();
      if (pred(v)) return v;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`never happened: ${what}`);
  };
  const TEMPLATE = 'e2e_welcome';
  const JOURNEY = 'e2e_ping_journey';

  await step('automation pages show their empty states (journeys, templates, messages, tasks)', async () => {
    const [journeys, templates, outbox, tasks] = await Promise.all([apiGet('/v1/journeys'), apiGet('/v1/templates'), apiGet('/v1/outbox'), apiGet('/v1/tasks?open=true')]);
    await page.click('#nav a[data-page=journeys]');
    await page.locator('#journey-form').waitFor();
    if (journeys.journeys.length === 0) {
      assert.match(await page.textContent('#journeys-empty'), /还没有旅程.*PUT \/v1\/journeys\/\{name\}/s);
    } else {
      assert.equal(await page.locator('#journey-list tbody tr').count(), journeys.journeys.length);
    }
    await shot('journeys-empty.png');
    await page.click('#nav a[data-page=templates]');
    await page.locator('#template-body').waitFor();
    if (templates.templates.length === 0) await page.locator('#templates-empty').waitFor();
    await page.click('#nav a[data-page=messages]');
    await page.locator('#outbox-tabs').waitFor();
    if (outbox.items.length === 0) assert.ok((await page.textContent('#outbox-empty')).includes('还没有消息'));
    await page.click('#outbox-tabs a[data-tab=dead]');
    await page.waitForURL(/#\/messages\/dead/);
    await page.locator('#outbox-tabs a.active[data-tab=dead]').waitFor();
    if (!outbox.items.some((i) => i.status === 'dead')) assert.equal(await page.textContent('#outbox-empty'), '没有死信。');
    await shot('messages-empty.png');
    await page.click('#nav a[data-page=tasks]');
    await page.waitForURL(/#\/tasks/);
    if (tasks.tasks.length === 0) await page.locator('#tasks-empty').waitFor();
    else await page.locator('#task-list').waitFor();
    await shot('tasks-empty.png');
  });

  await step('templates: an unknown variable is refused at part:line:col with a caret; save, then preview for a real person', async () => {
    await page.click('#nav a[data-page=templates]');
    await page.locator('#template-body').waitFor();
    await page.fill('#template-name', TEMPLATE);
    await page.selectOption('#template-class', 'transactional');
    await page.fill('#template-body', '您好！\n{{ nmae }}，欢迎加入');
    await page.click('#template-save');
    await page.locator('#template-error').waitFor();
    assert.match(await page.textContent('#template-error'), /^body:2:4 unknown variable "nmae"/);
    assert.equal(await page.textContent('#template-status pre.caret'), '{{ nmae }}，欢迎加入\n   ^');
    await shot('template-error.png');
    await page.fill('#template-body', '{{ name | default: "朋友" }}，欢迎加入！您的编号 {{ person.id }}');
    await page.click('#template-save');
    await page.waitForURL(new RegExp(`#/templates/${TEMPLATE}$`));
    await page.locator('#template-list a.active', { hasText: TEMPLATE }).waitFor();
    const saved = (await apiGet('/v1/templates')).templates.find((x) => x.name === TEMPLATE);
    assert.equal(saved.class, 'transactional');
    await page.fill('#preview-person', wecom);
    await page.click('#preview-run');
    await page.locator('#preview-body').waitFor();
    const body = await page.textContent('#preview-body');
    assert.ok(body.endsWith(`，欢迎加入！您的编号 ${target.canonical_id}`), `preview: ${body}`);
    await shot('templates.png');
  });

  await step('journeys: every fault is shown with its path; a valid definition saves and is listed with trigger, version and active count', async () => {
    await page.click('#nav a[data-page=journeys]');
    await page.locator('#journey-form').waitFor();
    await page.click('#journey-tab-json'); // the definition as JSON (editors.test.mjs drives the diagram)
    await page.fill('#journey-name', JOURNEY);
    const bad = { trigger: { type: 'schedule', cron: 'every day' }, start: 'hello', steps: { hello: { type: 'send', template: 'no_such_template' } } };
    await page.fill('#journey-definition', JSON.stringify(bad, null, 2));
    await page.click('#journey-save');
    await page.locator('#journey-error').waitFor();
    const paths = await page.locator('#journey-error code.path').allTextContents();
    assert.deepEqual(paths.sort(), ['steps.hello.template', 'trigger.cron']);
    assert.match(await page.textContent('#journey-error'), /unknown template "no_such_template"/);
    await shot('journey-error.png');
    await page.fill('#journey-definition', '{"trigger": {"type": "event",,}}');
    await page.click('#journey-save');
    await page.locator('#journey-error pre.caret').waitFor();
    const good = {
      description: 'e2e: a custom event sends the welcome and asks an operator to call',
      trigger: { type: 'event', event: 'custom', name: 'e2e_ping' },
      start: 'hello',
      steps: {
        hello: { type: 'send', template: TEMPLATE, channel: 'wecom', next: 'call' },
        call: { type: 'task', title: 'E2E 回访新客户', note: '确认是否收到欢迎消息', due: '1d' },
      },
    };
    await page.fill('#journey-definition', JSON.stringify(good, null, 2));
    await page.click('#journey-save');
    await page.waitForURL(new RegExp(`#/journeys/${JOURNEY}$`));
    const row = page.locator(`#journey-list tr[data-journey=${JOURNEY}]`);
    await row.waitFor();
    const text = await row.textContent();
    assert.ok(text.includes('事件') && text.includes('name=e2e_ping') && text.includes('v1'), `row: ${text}`);
    assert.equal(await row.locator('.active-count').textContent(), '0');
    const listed = (await apiGet('/v1/journeys')).journeys.find((j) => j.name === JOURNEY);
    assert.equal(listed.version, 1);
    assert.equal(listed.steps, 2);
    await page.locator('#enrollments-empty').waitFor();
    await shot('journeys.png');
  });

  await step('a trigger event enrolls the person: the send is a dead letter (no connector in the demo) and a task is opened', async () => {
    const ts = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const r = await apiSend('POST', '/v1/events', [{ ts, identity: wecom, type: 'custom', name: 'e2e_ping' }]);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await eventually('a dead letter of the journey', () => apiGet(`/v1/outbox?journey=${JOURNEY}&status=dead`), (o) => o.items.length === 1);
    await eventually('an open task of the journey', () => apiGet('/v1/tasks?open=true'), (x) => x.tasks.some((t) => t.journey === JOURNEY));
  });

  await step('journey report: bar chart of sent / suppressed / dead / reads / conversions, revenue in yuan, the enrollment', async () => {
    await page.click('#nav a[data-page=journeys]');
    await page.waitForURL(/#\/journeys$/);
    await page.locator('#journey-report').waitFor({ state: 'detached' }); // the list view, no report
    await page.click(`#journey-list tr[data-journey=${JOURNEY}] a`);
    await page.locator('#journey-report svg').waitFor();
    const rep = await apiGet(`/v1/journeys/${JOURNEY}/report`);
    assert.equal(rep.enrolled, 1);
    assert.equal(rep.dead, 1);
    const bars = await page.locator('#journey-report svg rect').count();
    assert.equal(bars, 4 + Math.max(1, Object.keys(rep.suppressed).length), 'sent, suppressed (per reason), dead, reads, conversions');
    const dead = page.locator('#journey-report svg rect[data-label=死信]');
    assert.ok(Number(await dead.getAttribute('width')) > 0, 'the dead-letter bar is drawn');
    assert.equal(await page.textContent('#report-enrolled'), '1');
    assert.equal(await page.textContent('#report-revenue'), '¥0.00');
    assert.ok((await page.textContent('#enrollment-list')).includes(wecom) || (await page.textContent('#enrollment-list')).includes(target.canonical_id));
    await shot('journey-report.png');
  });

  await step('messages: the dead-letter tab lists the send with its reason; Retry queues it again', async () => {
    await page.click('#nav a[data-page=messages]');
    await page.click('#outbox-tabs a[data-tab=dead]');
    await page.locator('#outbox-tabs a.active[data-tab=dead]').waitFor();
    const [item] = (await apiGet(`/v1/outbox?journey=${JOURNEY}&status=dead`)).items;
    const row = page.locator(`#outbox-list tr[data-key="${item.key}"]`);
    await row.waitFor();
    const text = await row.textContent();
    assert.ok(text.includes('死信') && text.includes(item.detail) && text.includes(item.identity) && text.includes(TEMPLATE), `row: ${text}`);
    await shot('messages-dead.png');
    await row.locator('button.retry').click();
    await page.waitForFunction(() => document.querySelector('#toast')?.textContent === '已重新排队');
    // Re-dispatched: it fails again the same way (no connector), a later attempt.
    await eventually('the retried item is dead again', () => apiGet(`/v1/outbox?journey=${JOURNEY}`), (o) => o.items.length === 1 && o.items[0].status === 'dead' && o.items[0].updated_at >= item.updated_at);
    await page.click('#outbox-tabs a[data-tab=suppressed]');
    await page.locator('#outbox-tabs a.active[data-tab=suppressed]').waitFor();
    await page.click('#outbox-tabs a[data-tab=all]');
    await page.locator(`#outbox-list tr[data-key="${item.key}"]`).waitFor();
  });

  await step('tasks: the journey opened a task; Done closes it', async () => {
    await page.click('#nav a[data-page=tasks]');
    const task = (await apiGet('/v1/tasks?open=true')).tasks.find((t) => t.journey === JOURNEY);
    const row = page.locator(`#task-list tr[data-key="${task.key}"]`);
    await row.waitFor();
    assert.ok((await row.textContent()).includes('E2E 回访新客户'));
    await shot('tasks.png');
    await row.locator('button.done').click();
    await row.waitFor({ state: 'detached' });
    assert.equal((await apiGet('/v1/tasks?open=true')).tasks.some((t) => t.key === task.key), false, 'the task is done');
  });

  await step('guardrails: defaults are 2 marketing messages per 7 days and quiet hours 21:00–09:00; a bad timezone is refused; save', async () => {
    await page.click('#nav a[data-page=guardrails]');
    await page.locator('#guardrails-form').waitFor();
    assert.equal(await page.inputValue('#g-marketing-cap'), '2');
    assert.equal(await page.inputValue('#g-marketing-window'), '7');
    assert.equal(await page.isChecked('#g-quiet-on'), true);
    assert.equal(await page.inputValue('#g-quiet-start'), '21:00');
    assert.equal(await page.inputValue('#g-quiet-end'), '09:00');
    assert.match(await page.textContent('#guardrails-summary'), /最多 2 条.*21:00–09:00/);
    await shot('guardrails.png');
    await page.fill('#g-timezone', 'Mars/Olympus');
    await page.click('#guardrails-save');
    await page.locator('#guardrails-error').waitFor();
    assert.equal(await page.textContent('#guardrails-error code.path'), 'default_timezone');
    await page.fill('#g-timezone', 'Asia/Shanghai');
    await page.fill('#g-marketing-cap', '3');
    await page.fill('#g-quiet-start', '22:30');
    await page.click('#guardrails-save');
    await page.waitForFunction(() => document.querySelector('#guardrails-summary')?.textContent.includes('22:30'));
    const saved = await apiGet('/v1/guardrails');
    assert.equal(saved.marketing_cap, 3);
    assert.deepEqual(saved.quiet_hours, { start: '22:30', end: '09:00' });
    assert.equal(saved.marketing_window_secs, 7 * 86400);
    assert.deepEqual(saved.mass_per_local_day, { wecom: 1 });
    const restored = await apiSend('PUT', '/v1/guardrails', {});
    assert.equal(restored.body.marketing_cap, 2);
  });

  // ---------- growth pages: fission, communities, content; settings and person additions ----------
  const CAMPAIGN = 'e2e_spring';
  const campaign = {
    name: 'E2E 春季老带新',
    tiers: [{ invites: 2, reward: 'coupon' }, { invites: 10, reward: 'gift' }],
    rewards: { coupon: { stock: 100, cost: 1000 }, gift: { stock: 10, cost: 8900 } },
    rules: { convert_within: '14d', hold: '7d' },
    grant: 'instant',
  };
  let inviteCode = null;

  await step('fission: overlapping tiers are refused at tiers[1].invites; a valid campaign saves and shows its funnel', async () => {
    await page.click('#nav a[data-page=fission]');
    await page.locator('#campaign-form').waitFor();
    await page.click('#campaign-tab-json');
    assert.ok((await page.textContent('#campaign-list')).includes('double11'), 'the demo campaign is listed');
    await page.fill('#campaign-id', CAMPAIGN);
    const bad = { ...campaign, tiers: [{ invites: 5, reward: 'coupon' }, { invites: 3, reward: 'coupon' }] };
    await page.fill('#campaign-definition', JSON.stringify(bad, null, 2));
    await page.click('#campaign-save');
    await page.locator('#campaign-error').waitFor();
    assert.deepEqual(await page.locator('#campaign-error code.path').allTextContents(), ['tiers[1].invites']);
    assert.match(await page.textContent('#campaign-error'), /tiers overlap/);
    assert.equal(await page.getAttribute('#campaign-definition', 'class'), 'invalid');
    await shot('fission-error.png');
    await page.fill('#campaign-definition', JSON.stringify(campaign, null, 2));
    await page.click('#campaign-save');
    await page.waitForURL(new RegExp(`#/fission/${CAMPAIGN}$`));
    await page.locator(`#campaign-list tr[data-campaign=${CAMPAIGN}].active`).waitFor();
    await page.locator('#campaign-funnel svg').waitFor();
    assert.equal((await apiGet('/v1/campaigns/' + CAMPAIGN)).tiers.length, 2);
    await page.locator('#leaderboard-empty').waitFor();
  });

  await step('fission: an invite for a demo person, its QR poster (a PNG through a blob URL); signups through the link fill the leaderboard; reconcile grants a reward; an operator rejects one invitee', async () => {
    await page.fill('#poster-identity', wecom);
    await page.click('#invite-create');
    await page.locator('#invite-code').waitFor();
    inviteCode = await page.textContent('#invite-code');
    assert.ok((await page.textContent('#invite-link')).endsWith(`/i/${CAMPAIGN}/${inviteCode}`));
    await page.waitForFunction(() => { const i = document.querySelector('#poster-img'); return i && !i.hidden && i.complete && i.naturalWidth > 0; });
    assert.match(await page.getAttribute('#poster-img', 'src'), /^blob:/);
    const poster = await page.evaluate(async (u) => { const r = await fetch(u); const b = new Uint8Array(await r.arrayBuffer()); return [r.headers.get('content-type'), Array.from(b.slice(1, 4))]; }, `/v1/campaigns/${CAMPAIGN}/poster?identity=${encodeURIComponent(wecom)}`);
    assert.deepEqual(poster, ['image/png', [0x50, 0x4e, 0x47]], 'PNG magic');
    await shot('fission-poster.png');
    // Three newcomers sign up through the public invite link.
    // The channel (which knows who they are) gets each one a claim token
    // with the key; the public signup carries only that proof.
    for (let i = 1; i <= 3; i++) {
      const c = await apiSend('POST', `/v1/campaigns/${CAMPAIGN}/claims`, { identity: `wecom:e2e_invitee_${i}` });
      assert.equal(c.status, 200, JSON.stringify(c.body));
      const r = await fetch(`${url}/i/${CAMPAIGN}/${inviteCode}/signup`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ claim: c.body.claim }) });
      assert.equal(r.status, 200, await r.text());
    }
    const unproven = await fetch(`${url}/i/${CAMPAIGN}/${inviteCode}/signup`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ identity: 'wecom:e2e_made_up' }) });
    assert.equal(unproven.status, 401, 'a signup without a claim records nothing');
    const board = await eventually('three signups on the leaderboard', () => apiGet(`/v1/campaigns/${CAMPAIGN}/leaderboard`), (b) => b.signups === 3);
    assert.equal(board.top[0].inviter, target.canonical_id);
    await page.reload();
    const row = page.locator(`#leaderboard tr[data-inviter="${target.canonical_id}"]`);
    await row.waitFor();
    assert.equal(await row.locator('td').nth(3).textContent(), String(board.top[0].pending));
    assert.equal(await row.locator('td').nth(2).textContent(), String(board.top[0].valid));
    assert.equal(await page.locator('#invitee-list tbody tr').count(), 3);
    await page.click('#campaign-reconcile');
    await page.locator('#reward-ledger').waitFor();
    const rewards = await apiGet(`/v1/campaigns/${CAMPAIGN}/rewards`);
    assert.equal(rewards.ledger.filter((x) => x.status === 'granted').length, 1, 'two pending invitees reach the first tier (instant grant)');
    assert.equal(rewards.stock_left.coupon, 99);
    assert.ok((await page.textContent('#reward-ledger')).includes('已发放'));
    assert.equal(await page.getAttribute('#reward-stock tr[data-reward=coupon] svg.meter', 'aria-label'), '99 / 100');
    const stats = await apiGet(`/v1/campaigns/${CAMPAIGN}/stats`);
    assert.equal(stats.funnel.signups, 3);
    assert.equal(await page.textContent('#k-factor'), stats.funnel.k_factor.toFixed(2));
    assert.equal(await page.textContent('#cost-per-valid'), stats.reward_cost_per_valid == null ? '—' : '¥' + (Math.round(stats.reward_cost_per_valid) / 100).toFixed(2));
    await shot('fission.png');
    await page.locator('#invitee-list tr[data-invitee="wecom:e2e_invitee_1"] button.override-invalid').click();
    await page.waitForFunction(() => document.querySelector('#toast')?.textContent === '已记录人工判定');
    const rejected = (await apiGet(`/v1/campaigns/${CAMPAIGN}/invitees`)).invitees.find((x) => x.invitee === 'wecom:e2e_invitee_1');
    assert.equal(rejected.overridden, false);
    assert.deepEqual(rejected.verdict, { status: 'invalid', reason: 'overridden' });
    await page.click('#invitee-tabs a[data-tab=invalid]');
    // The row is in the "all" list too: wait for the page to re-render
    // with the invalid tab active before reading the list.
    await page.locator('#invitee-tabs a.active[data-tab=invalid]').waitFor();
    await page.locator('#invitee-list tr[data-invitee="wecom:e2e_invitee_1"] .override-clear').waitFor();
    assert.equal(await page.locator('#invitee-list tbody tr').count(), 1);
  });

  await step('communities: operators and a group owned by one (size bar, load), group health, a live code; hand-over moves the persons and groups', async () => {
    await page.click('#nav a[data-page=communities]');
    await page.locator('#group-form').waitFor();
    if ((await apiGet('/v1/groups')).groups.length === 0) await page.locator('#groups-empty').waitFor();
    for (const [login, name] of [['e2e_op', '小王'], ['e2e_op2', '小李']]) {
      await page.fill('#opconf-login', login);
      await page.fill('#opconf-name', name);
      await page.fill('#opconf-max', '3');
      await page.click('#opconf-save');
      await page.locator(`#operator-load tr[data-operator=${login}]`).waitFor();
    }
    // The demo person is owned by e2e_op (the `operator` trait).
    const ts = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const r = await apiSend('POST', '/v1/events', [{ ts, identity: wecom, type: 'identify', traits: { operator: 'e2e_op' } }]);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    // g01 has members in the demo (join_group events).
    await page.fill('#group-id', 'g01');
    await page.fill('#group-name', 'E2E 会员 1 群');
    await page.fill('#group-capacity', '200');
    await page.selectOption('#group-owner', 'e2e_op');
    await page.click('#group-save');
    await page.waitForURL(/#\/communities\/g01$/);
    const g = (await apiGet('/v1/groups')).groups.find((x) => x.id === 'g01');
    assert.ok(g.size > 0, 'demo members in g01');
    assert.equal(await page.getAttribute('#group-list tr[data-group=g01] svg.meter', 'aria-label'), `${g.size} / 200`);
    assert.ok((await page.textContent('#group-list tr[data-group=g01]')).includes('e2e_op'));
    await page.locator('#group-health').waitFor();
    assert.equal(await page.textContent('#health-size'), `${g.size}/200`);
    const op = page.locator('#operator-load tr[data-operator=e2e_op]');
    assert.equal(await op.locator('svg.meter').getAttribute('aria-label'), '1 / 3');
    assert.equal(await op.locator('td.persons').textContent(), '1');
    // A live code: an unknown group is refused with its path, then saved.
    await page.fill('#livecode-id', 'e2e_qr');
    await page.click('#livecode-tab-json');
    await page.fill('#livecode-definition', JSON.stringify({ targets: [{ group: 'no_such_group' }] }));
    await page.click('#livecode-save');
    await page.locator('#livecode-error').waitFor();
    assert.equal(await page.textContent('#livecode-error code.path'), 'targets[0].group');
    await page.fill('#livecode-definition', JSON.stringify({ targets: [{ group: 'g01' }, { operator: 'e2e_op2' }], daily_cap_per_operator: 100 }));
    await page.click('#livecode-save');
    await page.locator('#livecode-list tr[data-livecode=e2e_qr]').waitFor();
    await shot('communities.png');
    // Hand-over: everything of e2e_op to e2e_op2, after a confirmation.
    await page.selectOption('#handover-from', 'e2e_op');
    await page.selectOption('#handover-to', 'e2e_op2');
    await page.fill('#handover-reason', 'e2e 离职');
    page.once('dialog', (d) => d.dismiss());
    await page.click('#handover-run');
    await page.waitForTimeout(200);
    assert.equal((await apiGet('/v1/groups')).groups.find((x) => x.id === 'g01').owner, 'e2e_op', 'a dismissed confirmation hands over nothing');
    page.once('dialog', (d) => d.accept());
    await page.click('#handover-run');
    await page.waitForFunction(() => /e2e_op 已交接：1 位客户，1 个群/.test(document.querySelector('#toast')?.textContent));
    await page.locator('#operator-load tr[data-operator=e2e_op] .status-dead').waitFor();
    assert.equal((await apiGet('/v1/groups')).groups.find((x) => x.id === 'g01').owner, 'e2e_op2');
    const ops = (await apiGet('/v1/operators')).operators;
    assert.equal(ops.find((o) => o.login === 'e2e_op').status, 'left');
    await eventually('the person is owned by e2e_op2', () => apiGet('/v1/persons/' + encodeURIComponent(wecom)), (p) => p.traits && p.traits.operator === 'e2e_op2');
  });

  await step('person: owner operator after the hand-over, and the consent ledger', async () => {
    const r = await apiSend('POST', '/v1/consent', { identity: wecom, channel: 'sms', granted: false });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await page.goto(url + '/#/persons/' + encodeURIComponent(wecom));
    await page.locator('#profile').waitFor();
    assert.equal(await page.textContent('#owner'), 'e2e_op2');
    const ledger = (await apiGet('/v1/persons/' + encodeURIComponent(wecom) + '/consent')).ledger;
    assert.ok(ledger.length >= 1);
    assert.equal(await page.locator('#consent-ledger tbody tr').count(), ledger.length);
    const row = await page.textContent('#consent-ledger tbody tr:first-child');
    assert.ok(row.includes('短信') && row.includes('撤回'), `row (the channel is shown by its zh-CN name): ${row}`);
    await shot('person-consent.png');
  });

  await step('content: a mini-program without appid is refused; an article saves with 0 views and its template token', async () => {
    await page.click('#nav a[data-page=content]');
    await page.locator('#content-form').waitFor();
    if ((await apiGet('/v1/content')).content.length === 0) await page.locator('#content-empty').waitFor();
    await page.fill('#content-id', 'e2e_mini');
    await page.selectOption('#content-kind', 'miniprogram');
    await page.fill('#content-title', '小程序商城');
    await page.fill('#content-url', 'https://example.com/mini');
    await page.click('#content-save');
    await page.locator('#content-error').waitFor();
    assert.match(await page.textContent('#content-error'), /appid, path/);
    await page.fill('#content-id', 'e2e_guide');
    await page.selectOption('#content-kind', 'article');
    await page.fill('#content-title', '春季护肤指南');
    await page.fill('#content-url', 'https://example.com/guide');
    await page.click('#content-save');
    await page.waitForURL(/#\/content\/e2e_guide$/);
    const row = page.locator('#content-list tr[data-content=e2e_guide]');
    await row.waitFor();
    assert.equal(await row.locator('td.views').textContent(), '0');
    assert.ok((await row.textContent()).includes('{{content.e2e_guide}}'));
    assert.equal((await apiGet('/v1/content')).content.find((c) => c.id === 'e2e_guide').title, '春季护肤指南');
    assert.equal(await page.getAttribute('#content-templates', 'href'), '#/templates');
    await shot('content.png');
  });

  await step('settings: connectors (none configured in the demo) with the TOML hint; an admin revokes a fresh key', async () => {
    await page.click('#nav a[data-page=settings]');
    await page.locator('#connector-list').waitFor();
    const conn = await apiGet('/v1/connectors');
    assert.equal(await page.locator('#connector-list tbody tr').count(), conn.outbound.length);
    assert.ok((await page.textContent('#connector-list')).includes('未配置'));
    assert.ok((await page.textContent('#connector-hint')).includes('[connectors.'));
    await page.fill('#key-name', 'e2e-revoke');
    await page.click('#key-create');
    await page.locator('#new-key').waitFor();
    const newKey = await page.textContent('#new-key');
    const ok = await fetch(url + '/v1/segments', { headers: { authorization: `Bearer ${newKey}` } });
    assert.equal(ok.status, 200);
    await page.click('#nav a[data-page=dashboard]');
    await page.click('#nav a[data-page=settings]');
    const row = page.locator('#key-list tr', { hasText: 'e2e-revoke' });
    await row.waitFor();
    page.once('dialog', (d) => d.accept());
    await row.locator('button.revoke').click();
    await row.waitFor({ state: 'detached' });
    const gone = await fetch(url + '/v1/segments', { headers: { authorization: `Bearer ${newKey}` } });
    assert.equal(gone.status, 401, 'the revoked key no longer works');
    await shot('settings-connectors.png');
  });

  await step('language: the fission page in English', async () => {
    await page.goto(url + '/#/fission/' + CAMPAIGN);
    await page.locator('#campaign-funnel svg').waitFor();
    await page.click('#lang-toggle');
    await page.waitForFunction(() => document.querySelector('#nav a[data-page=fission]')?.textContent === 'Referrals');
    await page.locator('#campaign-funnel svg').waitFor();
    assert.equal(await page.textContent('main h1'), 'Referrals');
    assert.ok((await page.textContent('#leaderboard')).includes('Inviter'));
    assert.ok((await page.textContent('#campaign-kpis')).includes('K-factor'));
    await shot('fission-en.png');
    await page.click('#nav a[data-page=communities]');
    await page.locator('#operator-load').waitFor();
    assert.ok((await page.textContent('#operator-load')).includes('Groups / max'));
    await page.click('#lang-toggle');
    await page.waitForFunction(() => document.querySelector('#nav a[data-page=fission]')?.textContent === '裂变');
  });

  await step('language switch to English persists across a reload', async () => {
    await page.click('#nav a[data-page=dashboard]');
    await page.locator('#funnel-chart svg').waitFor();
    await page.click('#lang-toggle');
    await page.waitForFunction(() => document.querySelector('#nav a[data-page=persons]')?.textContent === 'Persons');
    await page.reload();
    await page.locator('#funnel-chart svg').waitFor();
    assert.equal(await page.textContent('#nav a[data-page=dashboard]'), 'Dashboard');
    assert.equal(await page.evaluate(() => document.documentElement.lang), 'en');
    await shot('dashboard-en.png');
    await page.click('#lang-toggle');
    await page.waitForFunction(() => document.querySelector('#nav a[data-page=dashboard]')?.textContent === '概览');
  });

  await step('an analyst sees read-only controls and every write is 403 forbidden', async () => {
    await page.click('#logout');
    await page.locator('#login-form').waitFor();
    await login('analyst');
    assert.equal(await page.isVisible('#readonly-banner'), true);
    await page.goto(url + '/#/segments/e2e_big_spenders');
    await page.locator('#segment-save').waitFor();
    assert.equal(await page.isDisabled('#segment-save'), true, 'save is disabled');
    assert.equal(await page.isDisabled('#segment-delete'), true, 'delete is disabled');
    await page.locator('#segment-count').waitFor(); // preview (a read-only POST) still works
    const forced = await page.evaluate(async () => {
      const csrf = document.cookie.split('; ').find((c) => c.startsWith('siyu_csrf=')).slice(10);
      const r = await fetch('/v1/segments/e2e_big_spenders', { method: 'PUT', headers: { 'content-type': 'application/json', 'x-csrf-token': csrf }, body: '{"segment":"purchases >= 1"}' });
      return { status: r.status, body: await r.json() };
    });
    assert.equal(forced.status, 403);
    assert.equal(forced.body.code, 'forbidden');
    await shot('analyst-segments.png');
    await page.goto(url + '/#/persons/' + encodeURIComponent(douyin));
    await page.locator('#profile').waitFor();
    assert.equal(await page.isDisabled('#erase'), true, 'erase is disabled');
    await page.goto(url + '/#/settings');
    await page.locator('#key-list').waitFor();
    assert.equal(await page.isDisabled('#key-create'), true);
    assert.equal(await page.isDisabled('#spend-upload'), true);
    await shot('analyst-settings.png');
    // The automation pages: read, preview, but no save, retry or done.
    await page.goto(url + '/#/journeys/' + JOURNEY);
    await page.locator('#journey-report svg').waitFor();
    assert.equal(await page.isDisabled('#journey-save'), true, 'journey save is disabled');
    await page.goto(url + '/#/messages/dead');
    await page.locator('#outbox-list button.retry').first().waitFor();
    assert.equal(await page.isDisabled('#outbox-list button.retry'), true, 'retry is disabled');
    await page.goto(url + '/#/guardrails');
    await page.locator('#guardrails-form').waitFor();
    assert.equal(await page.isDisabled('#guardrails-save'), true, 'guardrails save is disabled');
    await page.goto(url + '/#/templates/' + TEMPLATE);
    await page.locator('#template-body').waitFor();
    assert.equal(await page.isDisabled('#template-save'), true, 'template save is disabled');
    await page.fill('#preview-person', wecom);
    await page.click('#preview-run'); // a preview only reads: allowed
    await page.locator('#preview-body').waitFor();
    const refused = await page.evaluate(async (name) => {
      const csrf = document.cookie.split('; ').find((c) => c.startsWith('siyu_csrf=')).slice(10);
      const h = { 'content-type': 'application/json', 'x-csrf-token': csrf };
      const put = await fetch('/v1/journeys/' + name, { method: 'PUT', headers: h, body: '{}' });
      const done = await fetch('/v1/tasks/done', { method: 'POST', headers: h, body: '{"key":"x"}' });
      const policy = await fetch('/v1/guardrails', { method: 'PUT', headers: h, body: '{}' });
      return [put.status, done.status, policy.status];
    }, JOURNEY);
    assert.deepEqual(refused, [403, 403, 403]);
    await shot('analyst-templates.png');
  });

  await step('an analyst reads the growth pages but cannot change them (controls disabled, forced writes 403)', async () => {
    await page.goto(url + '/#/fission/' + CAMPAIGN);
    await page.locator('#leaderboard').waitFor();
    for (const sel of ['#campaign-save', '#invite-create', '#campaign-reconcile', '#invitee-list button.override-invalid']) {
      assert.equal(await page.locator(sel).first().isDisabled(), true, `${sel} is disabled`);
    }
    await page.fill('#poster-identity', wecom);
    await page.click('#poster-open'); // a GET: allowed
    await page.waitForFunction(() => { const i = document.querySelector('#poster-img'); return i && !i.hidden && i.naturalWidth > 0; });
    await shot('analyst-fission.png');
    await page.goto(url + '/#/communities/g01');
    await page.locator('#group-health').waitFor();
    for (const sel of ['#group-save', '#handover-run', '#opconf-save', '#livecode-save']) {
      assert.equal(await page.isDisabled(sel), true, `${sel} is disabled`);
    }
    await page.goto(url + '/#/content');
    await page.locator('#content-list').waitFor();
    assert.equal(await page.isDisabled('#content-save'), true);
    await page.goto(url + '/#/settings');
    await page.locator('#connector-list').waitFor();
    assert.equal(await page.locator('#key-list button.revoke').first().isDisabled(), true);
    const keyId = await page.locator('#key-list tr').first().getAttribute('data-key-id');
    const refused = await page.evaluate(async ([campaign, keyId]) => {
      const csrf = document.cookie.split('; ').find((c) => c.startsWith('siyu_csrf=')).slice(10);
      const h = { 'content-type': 'application/json', 'x-csrf-token': csrf };
      const calls = [
        ['PUT', '/v1/campaigns/' + campaign, '{}'],
        ['POST', `/v1/campaigns/${campaign}/overrides`, '{"invitee":"wecom:e2e_invitee_2","valid":false}'],
        ['POST', `/v1/campaigns/${campaign}/invites`, '{"identity":"wecom:x"}'],
        ['POST', '/v1/operators/e2e_op2/handover', '{"to":null,"status":"left"}'],
        ['PUT', '/v1/groups/g01', '{"channel":"wecom"}'],
        ['PUT', '/v1/content/x', '{"kind":"article","title":"x","url":"https://example.com"}'],
        ['DELETE', '/v1/admin/keys/' + keyId, undefined],
      ];
      const out = [];
      for (const [m, p, b] of calls) out.push((await fetch(p, { method: m, headers: h, body: b })).status);
      return out;
    }, [CAMPAIGN, keyId]);
    assert.deepEqual(refused, [403, 403, 403, 403, 403, 403, 403]);
    assert.equal((await apiGet('/v1/operators')).operators.find((o) => o.login === 'e2e_op2').status, 'active', 'nothing was handed over');
  });

  await step('without the CSRF header a logged-in write is refused', async () => {
    const r = await page.evaluate(async () => (await fetch('/v1/spend', { method: 'PUT', body: 'day,channel,spend\n' })).status);
    assert.equal(r, 403);
  });

  await step('no page errors or CSP violations', async () => {
    assert.deepEqual(pageErrors, []);
  });
} catch (e) {
  failSetup(e);
} finally {
  await finish(demo, browser, 'e2e');
}
