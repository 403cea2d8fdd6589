// Browser test of the customer list (the Persons page): a real `siyu demo`
// on a free port, Debian's Chromium through playwright-core (the harness
// of console.test.mjs). Searches the demo for a Chinese name, filters by a
// tag, sorts, bulk-tags two persons and finds the tag on their profiles.
// Screenshots: screenshots/customers-*.png.
//
//   SIYU_BIN=../../target/debug/siyu node customers.test.mjs
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
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, locale: 'zh-CN', timezoneId: 'UTC' });
  const page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource: the server responded with a status of (40[0-4]|409|410|422)/.test(m.text())) pageErrors.push(`console: ${m.text()}`); });
  page.on('dialog', (d) => d.accept());
  const shot = (name) => page.screenshot({ path: path.join(SHOTS, name), fullPage: true });
  // The ids of the rows shown, in order.
  const shownIds = () => page.$$eval('#customer-rows tr', (trs) => trs.map((tr) => tr.dataset.id));
  // Waits until the list shows what the API answers for `query`.
  async function listShows(query) {
    const want = (await apiGet('/v1/customers?' + query)).customers.map((c) => c.id);
    await page.waitForFunction((w) => {
      const ids = [...document.querySelectorAll('#customer-rows tr')].map((tr) => tr.dataset.id);
      return ids.length === w.length && ids.every((id, i) => id === w[i]);
    }, want);
    return want;
  }

  await step('admin logs in; the Persons page is a customer list with a total and pages', async () => {
    await page.goto(url + '/');
    await page.locator('#login-form').waitFor();
    await page.fill('#login-name', 'admin');
    await page.fill('#login-password', PASSWORD);
    await page.click('#login-submit');
    await page.locator('#app-view').waitFor();
    await page.click('#nav a[data-page=persons]');
    await page.locator('#customer-table').waitFor();
    const all = await apiGet('/v1/customers');
    assert.ok(all.total >= 5000, `demo persons: ${all.total}`);
    assert.equal(await page.locator('#customer-rows tr').count(), 50);
    const info = await page.textContent('#page-info');
    assert.ok(info.replace(/[^0-9–]/g, '').endsWith(String(all.total)), `page info: ${info} (${all.total})`);
    await listShows('');
    await shot('customers-list.png');
    await page.click('#page-next');
    await listShows('offset=50');
    assert.ok((await page.textContent('#page-info')).startsWith('第 51–100 位'), await page.textContent('#page-info'));
  });

  await step('search for a Chinese name finds exactly the persons of that name', async () => {
    await page.click('#nav a[data-page=persons]');
    await page.locator('#customer-table').waitFor();
    await page.fill('#person-q', '王芳');
    await page.press('#person-q', 'Enter');
    await page.waitForURL(/q=/);
    const ids = await listShows('q=' + encodeURIComponent('王芳'));
    assert.ok(ids.length > 0);
    const names = await page.$$eval('#customer-rows td.name strong', (els) => els.map((e) => e.textContent));
    assert.ok(names.every((n) => n === '王芳'), names.join(','));
    await shot('customers-search.png');
  });

  let vip;
  await step('filter by the tag vip, then sort by spend (descending, then ascending)', async () => {
    await page.click('#cf-reset');
    await page.waitForURL(/#\/persons$/);
    await page.locator('#customer-table').waitFor();
    await page.fill('#cf-tag', 'vip');
    await page.click('#cf-apply');
    await page.waitForURL(/tag=vip/);
    vip = await apiGet('/v1/customers?tag=vip');
    assert.ok(vip.total > 0 && vip.total < 5000, `vip: ${vip.total}`);
    await listShows('tag=vip');
    const tags = await page.$$eval('#customer-rows td.tags', (tds) => tds.map((td) => td.textContent));
    assert.ok(tags.every((x) => x.includes('vip')), tags.join('|'));
    await page.click('#customer-table th[data-sort=spend] a');
    await page.waitForURL(/sort=spend/);
    await listShows('tag=vip&sort=spend&order=desc');
    const spends = await page.$$eval('#customer-rows td.spend', (tds) => tds.map((td) => Number(td.textContent.replace(/[^0-9.]/g, ''))));
    assert.ok(spends.every((v, i) => i === 0 || spends[i - 1] >= v), spends.join(','));
    assert.ok(spends[0] > 0);
    assert.equal(await page.getAttribute('#customer-table th[data-sort=spend]', 'aria-sort'), 'descending');
    await shot('customers-vip-by-spend.png');
    await page.click('#customer-table th[data-sort=spend] a');
    await page.waitForURL(/order=asc/);
    await listShows('tag=vip&sort=spend&order=asc');
    // The export link carries the same filter and sort.
    const href = await page.getAttribute('#customers-csv', 'href');
    const csv = await page.evaluate(async (h) => (await fetch(h)).text(), href);
    assert.equal(csv.replace(/^\uFEFF/, '').trim().split('\r\n').length, vip.total + 1, 'CSV: header + every vip');
  });

  await step('bulk: tick two persons, add a tag; their profiles show it', async () => {
    await page.click('#cf-reset');
    await page.waitForURL(/#\/persons$/);
    await page.locator('#customer-table').waitFor();
    const boxes = page.locator('#customer-rows input.row-select');
    const two = [await boxes.nth(0).getAttribute('data-id'), await boxes.nth(1).getAttribute('data-id')];
    await boxes.nth(0).check();
    await boxes.nth(1).check();
    assert.equal(await page.textContent('#bulk-count'), '已选 2 人');
    await page.selectOption('#bulk-action', 'tag');
    await page.fill('#bulk-value', '春节回访');
    await shot('customers-bulk.png');
    await page.click('#bulk-apply');
    await page.locator('#toast.good').waitFor();
    for (const id of two) {
      const p = await apiGet('/v1/persons/' + encodeURIComponent(id));
      assert.ok(p.tags.includes('春节回访'), `${id}: ${p.tags}`);
    }
    // In the list, filtered by the new tag: exactly those two.
    await page.fill('#cf-tag', '春节回访');
    await page.click('#cf-apply');
    await page.waitForURL(/tag=/);
    const shown = await listShows('tag=' + encodeURIComponent('春节回访'));
    assert.deepEqual([...shown].sort(), [...two].sort());
    await shot('customers-tagged.png');
    // And on the profile page.
    await page.click(`#customer-rows tr[data-id="${two[0]}"] a.person-link`);
    await page.locator('#profile').waitFor();
    assert.ok((await page.textContent('#profile')).includes('春节回访'));
    await shot('customers-profile.png');
  });

  await step('English: the filter bar and columns in English', async () => {
    await page.goto(url + '/#/persons?tag=vip');
    await page.locator('#customer-table').waitFor();
    await page.locator('[data-lang-toggle]:visible').click();
    await page.waitForFunction(() => document.querySelector('#cf-apply') && document.querySelector('#cf-apply')?.textContent === 'Search');
    assert.equal(await page.textContent('#customer-table th[data-sort=last_seen] a'), 'Last seen ↓');
    assert.ok((await page.textContent('#page-info')).includes(' of '));
    await shot('customers-en.png');
    await page.locator('[data-lang-toggle]:visible').click();
  });

  await step('a bad filter shows the API message naming the parameter', async () => {
    await page.goto(url + '/#/persons?sort=age');
    await page.locator('#customer-error').waitFor();
    assert.ok((await page.textContent('#customer-error')).includes('sort'));
  });

  await step('no page errors or CSP violations', async () => {
    assert.deepEqual(pageErrors, []);
  });
} catch (e) {
  failSetup(e);
} finally {
  await finish(demo, browser, 'e2e customers');
}
