// Timings of the console against a running siyu (not part of the test run):
//
//   node timings.mjs http://127.0.0.1:8080 admin PASSWORD [runs=15]
//   ONLY=inbox node timings.mjs …   (only these pages)
//
// Prints p50/p90 per API call the console makes (session cookie auth, as
// the browser sends it), per page's API batch (the calls a page makes in
// parallel), and per page fully loaded in Chromium (navigation until the
// page's main element is drawn).
import { chromium } from 'playwright-core';

const [url, login, password, runsArg] = process.argv.slice(2);
if (!url || !login || !password) {
  console.error('usage: node timings.mjs URL LOGIN PASSWORD [runs]');
  process.exit(2);
}
const RUNS = Number(runsArg || 15);
const q = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))];
const fmt = (ms) => ms.toFixed(1).padStart(8) + ' ms';

const r = await fetch(url + '/console/api/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ login, password }) });
if (!r.ok) throw new Error(`login: ${r.status} ${await r.text()}`);
const me = await r.json();
const cookie = r.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
const call = async (method, path, body) => {
  const res = await fetch(url + path, { method, headers: { cookie, 'x-csrf-token': me.csrf, 'content-type': 'application/json' }, body });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 200)}`);
  return text;
};
// Pages whose calls take seconds at scale (a pass over the log): fewer runs.
const SLOW = new Set(['group health']);
const runsOf = (page) => (SLOW.has(page) ? Math.min(RUNS, 3) : RUNS);
const time = async (fn) => { const t = performance.now(); await fn(); return performance.now() - t; };

// Someone to look at: the first member of the first segment, or a search hit.
const segs = JSON.parse(await call('GET', '/v1/segments')).segments;
const seg = segs[0];
const someone = seg ? JSON.parse(await call('GET', `/v1/segments/${seg.name}/members?limit=1`)).members[0] : null;
const prefix = someone ? someone.slice(0, someone.indexOf(':') + 3) : 'douyin:ab';
const enc = encodeURIComponent;
// The first campaign and group, if any (their detail views are what an operator opens).
const campaign = (JSON.parse(await call('GET', '/v1/campaigns')).campaigns[0] || {}).id;
const group = (JSON.parse(await call('GET', '/v1/groups')).groups[0] || {}).id;
const segSource = 'purchases(last 90d) >= 2 and net_spend >= 500.00 and not opted_out';
// The most recent conversation (the inbox opens one thread beside its list).
const conv = await call('GET', '/v1/conversations?limit=1').then((x) => (JSON.parse(x).conversations[0] || {}).person).catch(() => null);

const pages = {
  inbox: [['GET', '/v1/conversations?sort=recent&limit=50']].concat(conv ? [['GET', `/v1/conversations/${enc(conv)}?limit=100`]] : []),
  dashboard: [['GET', '/healthz'], ['GET', '/v1/analytics/funnel'], ['GET', '/v1/analytics/roi'], ['GET', '/v1/analytics/cohorts?weeks=12'], ['GET', '/v1/analytics/rfm'], ['GET', '/v1/analytics/repurchase']],
  'persons search': [['GET', `/v1/persons?limit=50&q=${enc(prefix)}`]],
  'person profile': someone ? [['GET', `/v1/persons/${enc(someone)}`], ['GET', `/v1/persons/${enc(someone)}/timeline?limit=50`], ['GET', `/v1/persons/${enc(someone)}/merges`], ['GET', `/v1/persons/${enc(someone)}/consent`]] : [],
  'segments editor': [['GET', '/v1/segments'], ['POST', '/v1/segments/preview', JSON.stringify({ segment: segSource })]].concat(seg ? [['GET', `/v1/segments/${seg.name}/members?limit=100`], ['GET', `/v1/segments/${seg.name}/explain?person=${enc(someone)}`]] : []),
  journeys: [['GET', '/v1/journeys'], ['GET', '/v1/templates']],
  templates: [['GET', '/v1/templates'], ['GET', '/v1/autoreply']],
  messages: [['GET', '/v1/outbox?limit=200']],
  tasks: [['GET', '/v1/tasks?open=true&limit=500']],
  guardrails: [['GET', '/v1/guardrails']],
  fission: [['GET', '/v1/campaigns']].concat(campaign ? ['stats', 'leaderboard?limit=20', 'invitees?limit=100', 'rewards'].map((x) => ['GET', `/v1/campaigns/${enc(campaign)}/${x}`]) : []),
  communities: [['GET', '/v1/groups'], ['GET', '/v1/operators'], ['GET', '/v1/livecodes']],
  'group health': group ? [['GET', `/v1/groups/${enc(group)}/health`]] : [],
  content: [['GET', '/v1/content']],
  settings: [['GET', '/console/api/keys'], ['GET', '/console/api/operators'], ['GET', '/v1/connectors']],
};

// ONLY=inbox,dashboard limits the run to those pages.
const only = process.env.ONLY ? new Set(process.env.ONLY.split(',')) : null;
for (const name of Object.keys(pages)) if (only && !only.has(name)) delete pages[name];
console.log(`${url}: ${RUNS} runs each; person ${someone}; segment ${seg && seg.name}; campaign ${campaign}; group ${group}; conversation ${conv}`);
console.log('\n-- API calls (sequential) --');
for (const [page, calls] of Object.entries(pages)) {
  for (const [m, p, b] of calls) {
    await call(m, p, b); // warm
    const xs = [];
    for (let i = 0; i < runsOf(page); i++) xs.push(await time(() => call(m, p, b)));
    console.log(`${page.padEnd(16)} ${(m + ' ' + p).slice(0, 72).padEnd(72)} p50 ${fmt(q(xs, 0.5))}  p90 ${fmt(q(xs, 0.9))}`);
  }
}
console.log('\n-- page API batch (the calls a page makes, in parallel) --');
for (const [page, calls] of Object.entries(pages)) {
  const xs = [];
  for (let i = 0; i < runsOf(page); i++) xs.push(await time(() => Promise.all(calls.map(([m, p, b]) => call(m, p, b)))));
  console.log(`${page.padEnd(16)} p50 ${fmt(q(xs, 0.5))}  p90 ${fmt(q(xs, 0.9))}`);
}

console.log('\n-- page fully loaded in Chromium (navigation → main element drawn) --');
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const ctx = await browser.newContext({ viewport: { width: 1360, height: 900 } });
await ctx.addCookies(cookie.split('; ').map((kv) => { const [name, value] = kv.split('='); return { name, value, url }; }));
const page = await ctx.newPage();
// A view: [hash, selector drawn, extra wait, performance mark the page sets when drawn].
const views = {
  inbox: [conv ? `#/inbox/${enc(conv)}` : '#/inbox', conv ? '#inbox-messages' : '#inbox-list .ib-row, #inbox-empty', null, conv ? 'inbox:thread' : 'inbox:list'],
  dashboard: ['#/dashboard', '#rfm-chart svg, #funnel-chart svg', async () => { for (const s of ['#funnel-chart svg', '#roi-chart svg', '#cohort-chart svg', '#rfm-chart svg']) await page.locator(s).waitFor(); }],
  'person profile': someone ? [`#/persons/${enc(someone)}`, '#profile'] : null,
  'segments editor': seg ? [`#/segments/${enc(seg.name)}`, '#segment-count'] : null,
  journeys: ['#/journeys', '#journey-definition'],
  templates: ['#/templates', '#template-body'],
  messages: ['#/messages', '#outbox-list, #outbox-empty'],
  tasks: ['#/tasks', '#task-list, #tasks-empty'],
  guardrails: ['#/guardrails', '#guardrails-form'],
  fission: campaign ? [`#/fission/${enc(campaign)}`, '#invitee-list, #invitees-empty'] : ['#/fission', '#campaign-definition'],
  communities: ['#/communities', '#group-form'],
  'group health': group ? [`#/communities/${enc(group)}`, '#group-health'] : null,
  content: ['#/content', '#content-form'],
  settings: ['#/settings', '#connector-list'],
};
for (const [name, v] of Object.entries(views)) {
  if (!v || (only && !only.has(name))) continue;
  const [hash, sel, extra, mark] = v;
  const xs = [];
  const marks = [];
  for (let i = 0; i < Math.min(runsOf(name), 10) + 1; i++) {
    await page.goto('about:blank');
    const t = performance.now();
    await page.goto(url + '/' + hash);
    await page.locator(sel).first().waitFor({ timeout: 60_000 });
    if (extra) await extra();
    if (i > 0) xs.push(performance.now() - t); // first load warms the cache
    if (i > 0 && mark) marks.push(await page.evaluate((m) => { const e = performance.getEntriesByName(m)[0]; return e ? e.startTime : NaN; }, mark));
  }
  console.log(`${name.padEnd(16)} p50 ${fmt(q(xs, 0.5))}  p90 ${fmt(q(xs, 0.9))}` + (marks.length ? `   (${mark} mark since navigation: p50 ${fmt(q(marks, 0.5))}  p90 ${fmt(q(marks, 0.9))})` : ''));
}
await browser.close();
