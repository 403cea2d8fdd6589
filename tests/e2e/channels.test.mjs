// Browser test of the channel pages (#/channels): a `siyu demo` whose
// config connects WeCom to a local server speaking WeCom's API (token,
// follow users, corp tags, customers by cursor, groups) and an inbound
// Douyin webhook. WeCom's callbacks are sealed here with the documented
// WXBizMsgCrypt scheme (Tencent's sample token, key and corp id). The
// pages must show a refused and an accepted callback, the token after
// "check now", and a sync started from the page running to its end.
//
//   SIYU_BIN=../../target/debug/siyu node channels.test.mjs
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { startDemo, step, launch, watch, login, finish, failSetup } from './harness.mjs';

const TOKEN = 'QDG6eK';
const AES_KEY = 'jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C';
const CORP = 'wx5823bf96d3bd56c7';

// ---------- WeCom's API, as the token check and the sync use it ----------
const calls = [];
const contact = (ext, ts) => ({
  external_contact: { external_userid: ext, name: '客户' + ext, type: 1, unionid: 'u' + ext },
  follow_info: { userid: 'zhangsan', remark: '', description: '', createtime: ts, tag_id: ['et1'], remark_mobiles: [], oper_userid: 'zhangsan', add_way: 1, state: '' },
});
const wecom = http.createServer((req, res) => {
  let body = '';
  req.on('data', (d) => { body += d; });
  req.on('end', () => {
    const p = new URL(req.url, 'http://x').pathname;
    calls.push(p);
    const ok = { errcode: 0, errmsg: 'ok' };
    const answers = {
      '/cgi-bin/gettoken': { ...ok, access_token: 'E2E_TOKEN', expires_in: 7200 },
      '/cgi-bin/externalcontact/get_follow_user_list': { ...ok, follow_user: ['zhangsan'] },
      '/cgi-bin/externalcontact/get_corp_tag_list': { ...ok, tag_group: [{ group_id: 'g1', group_name: '客户等级', tag: [{ id: 'et1', name: 'VIP' }] }] },
      '/cgi-bin/externalcontact/batch/get_by_user': { ...ok, external_contact_list: [contact('wmE2E1', 1_700_000_000), contact('wmE2E2', 1_700_000_100)], next_cursor: '' },
      '/cgi-bin/externalcontact/groupchat/list': { ...ok, group_chat_list: [], next_cursor: '' },
    };
    if (p === '/cgi-bin/externalcontact/add_corp_tag') {
      // The tags siyu adds (a journey's `lead`), created with ids.
      const asked = JSON.parse(body || '{}');
      answers[p] = { ...ok, tag_group: { group_id: 'g2', group_name: asked.group_name || 'siyu', tag: (asked.tag || []).map((t, i) => ({ id: 'et_new' + i, name: t.name })) } };
    }
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(answers[p] || { ...ok, msgid: 'm1' }));
  });
});
await new Promise((r) => wecom.listen(0, '127.0.0.1', r));
const wecomUrl = `http://127.0.0.1:${wecom.address().port}`;

const configFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'siyu-e2e-conf-')), 'siyu.toml');
fs.writeFileSync(configFile, `
[connectors.wecom]
base_url = "${wecomUrl}"
corp_id = "${CORP}"
secret = "e2e-corp-secret"
sender = "zhangsan"
token = "${TOKEN}"
encoding_aes_key = "${AES_KEY}"

[inbound]
douyin = "e2e-inbound-secret"
`);

// A callback as WeCom posts it: the message sealed for the corp, signed.
function sealed(xml, ts) {
  const key = Buffer.from(AES_KEY + '=', 'base64');
  const msg = Buffer.from(xml);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(msg.length);
  let plain = Buffer.concat([crypto.randomBytes(16), len, msg, Buffer.from(CORP)]);
  const pad = 32 - (plain.length % 32);
  plain = Buffer.concat([plain, Buffer.alloc(pad, pad)]);
  const cipher = crypto.createCipheriv('aes-256-cbc', key, key.subarray(0, 16));
  cipher.setAutoPadding(false);
  const encrypt = Buffer.concat([cipher.update(plain), cipher.final()]).toString('base64');
  const nonce = String(crypto.randomInt(1e9));
  const signature = crypto.createHash('sha1').update([TOKEN, String(ts), nonce, encrypt].sort().join('')).digest('hex');
  return {
    query: `msg_signature=${signature}&timestamp=${ts}&nonce=${nonce}`,
    body: `<xml><ToUserName><![CDATA[${CORP}]]></ToUserName><Encrypt><![CDATA[${encrypt}]]></Encrypt><AgentID><![CDATA[1000002]]></AgentID></xml>`,
  };
}
const addContact = (ext, ts) => `<xml><ToUserName><![CDATA[${CORP}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>${ts}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType><UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[${ext}]]></ExternalUserID><State><![CDATA[]]></State></xml>`;

const demo = startDemo(['--config', configFile]);
let browser;
const errors = [];
try {
  const { url } = await demo.ready;
  console.log(`siyu demo at ${url} (WeCom at ${wecomUrl})`);
  const callback = async (ext, tamper) => {
    const ts = Math.floor(Date.now() / 1000);
    const c = sealed(addContact(ext, ts), ts);
    const query = tamper ? c.query.replace('msg_signature=', 'msg_signature=0') : c.query;
    const r = await fetch(`${url}/callbacks/wecom?${query}`, { method: 'POST', headers: { 'content-type': 'text/xml' }, body: c.body });
    return r.status;
  };

  browser = await launch();
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, locale: 'zh-CN', timezoneId: 'UTC' });
  const page = await context.newPage();
  const shot = watch(page, errors);

  await step('the settings link to every channel; WeCom and Douyin are configured, the others say how', async () => {
    await login(page, url, 'admin');
    await page.goto(url + '/#/settings');
    await page.click('#channels-link');
    await page.locator('#channel-grid').waitFor();
    const names = await page.$$eval('#channel-grid [data-channel]', (els) => els.map((e) => e.dataset.channel));
    assert.deepEqual(names, ['wecom', 'wechat', 'sms', 'email', 'webhook', 'douyin']);
    assert.equal(await page.getAttribute('[data-channel=wecom] [data-health]', 'data-health'), 'ok');
    assert.equal(await page.getAttribute('[data-channel=wechat] [data-health]', 'data-health'), 'not_configured');
    assert.match(await page.textContent('[data-channel=wechat]'), /\[connectors\.wechat\]/);
    assert.equal(await page.textContent('[data-channel=wecom] h2'), '企业微信');
    assert.equal(await page.getAttribute('#nav a.active', 'data-page'), 'settings');
  });

  await step('a callback with a wrong signature shows as refused, with siyu\'s reason', async () => {
    assert.equal(await callback('wmE2Ebad', true), 401);
    await page.goto(url + '/#/channels/wecom');
    await page.locator('#channel-detail').waitFor();
    assert.equal(await page.getAttribute('.channel-title [data-health]', 'data-health'), 'error');
    assert.equal(await page.textContent('[data-kind=events] [data-count=rejected]'), '1');
    assert.match(await page.textContent('[data-kind=events] .last-rejected'), /401: .*msg_signature/);
    assert.ok(await page.locator('[data-problem=callback_rejected]').isVisible());
    await shot('channel-wecom-refused.png');
  });

  await step('an accepted callback: the channel is healthy again and shows what arrived', async () => {
    assert.equal(await callback('wmE2Egood', false), 200);
    await page.reload();
    await page.locator('#channel-detail').waitFor();
    assert.equal(await page.getAttribute('.channel-title [data-health]', 'data-health'), 'ok');
    assert.equal(await page.textContent('[data-kind=events] [data-count=accepted]'), '1');
    assert.match(await page.textContent('[data-kind=events] .last-accepted'), /秒前[\s\S]*change_external_contact\/add_external_contact/);
    assert.match(await page.textContent('.callback-url'), /\/callbacks\/wecom$/);
  });

  await step('"check now" fetches the access token from WeCom', async () => {
    const before = calls.filter((c) => c === '/cgi-bin/gettoken').length;
    await page.click('#token-check');
    await page.waitForFunction(() => /已检查/.test(document.querySelector('#toast')?.textContent));
    await page.waitForSelector('#token-state[data-state=valid]');
    assert.ok(calls.filter((c) => c === '/cgi-bin/gettoken').length <= before + 1, 'one fetch at most');
  });

  await step('a sync started on the page runs to its end, progress shown', async () => {
    await page.locator('#sync-none').waitFor();
    await page.click('#sync-start');
    await page.waitForSelector('#sync-status[data-status=done]', { timeout: 30_000 });
    assert.equal(await page.textContent('#sync-contacts'), '2');
    assert.equal(await page.getAttribute('#sync-progress', 'value'), '100');
    assert.ok(calls.includes('/cgi-bin/externalcontact/batch/get_by_user'));
    await shot('channel-wecom.png');
  });

  await step('in English; the Douyin webhook page gives its URL', async () => {
    await page.click('#lang-toggle');
    await page.waitForFunction(() => document.querySelector('.channel-title h1')?.textContent === 'WeCom');
    assert.match(await page.textContent('#channel-detail'), /Access token/);
    await shot('channel-wecom-en.png');
    await page.goto(url + '/#/channels/douyin');
    await page.locator('#channel-detail[data-channel=douyin]').waitFor();
    assert.match(await page.textContent('.callback-url'), /\/v1\/inbound\/douyin$/);
    await page.goto(url + '/#/channels');
    await page.locator('#channel-grid').waitFor();
    await shot('channels-en.png');
  });

  await step('an analyst sees the pages but cannot check or sync', async () => {
    const analyst = await browser.newContext({ viewport: { width: 1360, height: 900 }, locale: 'zh-CN' });
    const p = await analyst.newPage();
    watch(p, errors);
    await login(p, url, 'analyst');
    await p.goto(url + '/#/channels/wecom');
    await p.locator('#channel-detail').waitFor();
    assert.equal(await p.isDisabled('#token-check'), true);
    assert.equal(await p.isDisabled('#sync-restart'), true);
    await analyst.close();
  });

  await step('no page errors or CSP violations', async () => {
    assert.deepEqual(errors, []);
  });
} catch (e) {
  failSetup(e);
} finally {
  wecom.close();
  fs.rmSync(path.dirname(configFile), { recursive: true, force: true });
  await finish(demo, browser, 'e2e channels');
}
