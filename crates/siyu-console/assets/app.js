// siyu console: a hash-routed single page over the /v1 API and
// /console/api. Session cookie auth; every unsafe request sends the CSRF
// token header. DOM is built with `h()` (textContent only, never HTML from data).
'use strict';
(function () {
  const { t } = window.I18N;
  const C = window.Charts;
  // `tz`: the workspace time zone every time is shown in (GET /v1/workspace);
  // `range`: the dates the analytics are asked for ('' = open).
  const state = { me: null, route: '', tz: 'Asia/Shanghai', range: { from: '', to: '' } };
  const $ = (sel, root) => (root || document).querySelector(sel);

  // ---------- DOM helper ----------
  function h(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) {
      const v = attrs[k];
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (k === 'class') e.className = v;
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      e.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function toast(msg, kind) {
    const el = $('#toast');
    el.textContent = msg;
    el.className = 'toast ' + (kind || '');
    el.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { el.hidden = true; }, 4000);
  }

  function readCookie(name) {
    const m = document.cookie.split(';').map((s) => s.trim()).find((s) => s.startsWith(name + '='));
    return m ? m.slice(name.length + 1) : '';
  }

  // ---------- API ----------
  async function api(method, path, body, opts) {
    opts = opts || {};
    const headers = {};
    if (method !== 'GET') headers['x-csrf-token'] = (state.me && state.me.csrf) || readCookie('siyu_csrf');
    let payload;
    if (body !== undefined) {
      if (typeof body === 'string') { payload = body; headers['content-type'] = opts.type || 'text/plain'; }
      else { payload = JSON.stringify(body); headers['content-type'] = 'application/json'; }
    }
    let resp;
    try {
      resp = await fetch(path, { method, headers, body: payload, credentials: 'same-origin' });
    } catch (e) {
      return { ok: false, status: 0, data: { code: 'network', message: t('err.network') } };
    }
    let data = null;
    const ctype = resp.headers.get('content-type') || '';
    if (ctype.includes('json')) data = await resp.json().catch(() => null);
    else data = await resp.text();
    const result = { ok: resp.ok, status: resp.status, data, retryAfter: Number(resp.headers.get('retry-after')) || 0 };
    if (resp.status === 401 && !opts.quiet401) showLogin();
    if (resp.status === 403 && !opts.quiet) toast(t('err.forbidden') + ': ' + ((data && data.message) || ''), 'error');
    return result;
  }

  const enc = encodeURIComponent;
  const yuan = (cents) => (typeof cents === 'number' ? (cents / 100).toLocaleString(I18N.lang(), { minimumFractionDigits: 2, maximumFractionDigits: 2 }) : '—');
  // ---------- local time ----------
  // Times are shown in the workspace time zone (named in the header, and
  // in each time's tooltip with the UTC instant), never the browser's own
  // zone and never raw UTC: an order paid 12:15Z shows 20:15 in Shanghai.
  const zoneFormat = {};
  const localParts = (ms) => {
    let f = zoneFormat[state.tz];
    if (!f) {
      const opts = { year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' };
      try { f = new Intl.DateTimeFormat('en-CA', Object.assign({ timeZone: state.tz }, opts)); } catch (e) { f = new Intl.DateTimeFormat('en-CA', Object.assign({ timeZone: 'UTC' }, opts)); }
      zoneFormat[state.tz] = f;
    }
    const p = {};
    f.formatToParts(new Date(ms)).forEach((x) => { p[x.type] = x.value; });
    return p;
  };
  // Epoch milliseconds → "YYYY-MM-DD HH:MM" in the workspace zone.
  const fmtLocal = (ms) => { const p = localParts(ms); return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}`; };
  // A time cell: local time, the zone and UTC instant in its tooltip.
  const timeCell = (ms) => h('time', { datetime: new Date(ms).toISOString(), title: `${state.tz} · ${new Date(ms).toISOString().replace('.000Z', 'Z')}` }, fmtLocal(ms));
  // A local "YYYY-MM-DDTHH:MM" (a datetime-local input) in the workspace
  // zone → epoch milliseconds (null when not a date): the zone's offset
  // at that moment, found from the formatter, applied twice so a DST
  // change in between still lands on the wall time typed.
  const zoneOffset = (ms) => { const p = localParts(ms); return Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute) - Math.floor(ms / 60000) * 60000; };
  const fromLocal = (text) => {
    const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(text || '');
    if (!m) return null;
    const wall = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]);
    return wall - zoneOffset(wall - zoneOffset(wall));
  };
  // RFC 3339 text (the API's instants) → a local time cell.
  const date = (s) => { if (!s) return t('persons.none_value'); const ms = Date.parse(s); return Number.isNaN(ms) ? s : timeCell(ms); };

  // An identity for display: buyer ids arrive percent-encoded
  // (`taobao:%E5%B0%8F…`) and are shown decoded; links and API calls keep
  // the encoded form. A malformed escape is shown as it is.
  function showId(id) {
    if (typeof id !== 'string' || !id.includes('%')) return id;
    try { return decodeURIComponent(id); } catch (e) { return id; }
  }

  function canWrite() { return state.me && state.me.role !== 'analyst'; }
  function isAdmin() { return state.me && state.me.role === 'admin'; }

  // Disables controls the role may not use (the server refuses them anyway).
  function applyRole(root) {
    root.querySelectorAll('[data-write]').forEach((el) => {
      if (!canWrite()) { el.disabled = true; el.title = t('role.readonly'); }
    });
    root.querySelectorAll('[data-admin]').forEach((el) => {
      if (!isAdmin()) { el.disabled = true; el.title = t('set.admin_only'); }
    });
  }

  // ---------- login ----------
  function showLogin() {
    state.me = null;
    $('#app-view').hidden = true;
    $('#login-view').hidden = false;
    I18N.applyStatic();
    $('#login-name').focus();
  }

  async function showApp() {
    $('#login-view').hidden = true;
    $('#app-view').hidden = false;
    $('#who-login').textContent = state.me.login;
    $('#who-role').textContent = t('role.' + state.me.role);
    $('#who-role').className = 'badge role-' + state.me.role;
    $('#readonly-banner').hidden = canWrite();
    document.body.dataset.role = state.me.role;
    const ws = await api('GET', '/v1/workspace', undefined, { quiet: true });
    if (ws.ok && ws.data && ws.data.time_zone) state.tz = ws.data.time_zone;
    showZone();
    I18N.applyStatic();
    if (!location.hash || location.hash === '#/' || location.hash === '#') location.hash = '#/dashboard';
    else render();
  }

  // The header names the zone every time on the page is in.
  function showZone() {
    $('#tz-label').textContent = t('tz.label', { tz: state.tz });
    $('#tz-label').dataset.tz = state.tz;
  }

  $('#login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    $('#login-error').textContent = '';
    const r = await api('POST', '/console/api/login', { login: $('#login-name').value, password: $('#login-password').value }, { quiet401: true });
    if (r.ok) {
      state.me = r.data;
      $('#login-password').value = '';
      showApp();
    } else {
      $('#login-error').textContent = r.status === 401 ? t('login.failed')
        : r.status === 429 ? t('login.throttled', { s: r.retryAfter || 1 })
        : (r.data && r.data.message) || t('err.network');
    }
  });

  $('#logout').addEventListener('click', async () => {
    await api('POST', '/console/api/logout', undefined, { quiet401: true });
    showLogin();
  });

  document.querySelectorAll('[data-lang-toggle]').forEach((b) => b.addEventListener('click', () => {
    I18N.setLang(I18N.lang() === 'en' ? 'zh-CN' : 'en');
    if (state.me) { $('#who-role').textContent = t('role.' + state.me.role); showZone(); render(); }
  }));

  // ---------- routing ----------
  window.addEventListener('hashchange', render);

  function render() {
    if (!state.me) return;
    const hash = location.hash.replace(/^#\/?/, '');
    // `#/segments?q=…` carries a query for the page (read from location.hash).
    const [page, ...rest] = hash.split('?')[0].split('/');
    const arg = rest.length ? decodeURIComponent(rest.join('/')) : null;
    // The channel pages belong to the settings, quick replies to the templates.
    // The archive, report and conversation settings are tabs of the inbox.
    const navPage = { channels: 'settings', 'quick-replies': 'templates', 'inbox-archive': 'inbox', 'inbox-report': 'inbox', 'inbox-settings': 'inbox', live: 'fission', partners: 'fission', moments: 'communities' }[page] || page;
    document.querySelectorAll('#nav a').forEach((a) => a.classList.toggle('active', a.dataset.page === navPage));
    // Each render draws into its own view: a slower earlier page (the
    // dashboard still loading when the user moved on) finishes into a
    // view no longer shown instead of over the page asked for last.
    const main = h('div', { class: 'view' }, h('p', { class: 'muted' }, t('common.loading')));
    $('#page').replaceChildren(main);
    const pages = Object.assign({ dashboard, persons, segments, settings }, automation, growth, channelPages, quickReplyPages, inboxPages, livePages, compliancePages.pages, partnerPages, momentPages);
    (pages[page] || dashboard)(main, arg).then(() => { applyRole(main); I18N.applyStatic(main); });
  }

  // The faults of a 422: "steps.a.template: unknown …; trigger.cron: …" →
  // one line per fault with its path set apart, plus a caret under
  // "line L column C" of `text` when the JSON itself did not parse.
  function faults(id, message, text) {
    const items = message.split(/;\s+(?=[\w.\[\]"-]+:\s)/).map((f) => {
      const m = /^([\w.\[\]"-]+):\s([\s\S]*)$/.exec(f);
      return h('li', {}, m ? [h('code', { class: 'path' }, m[1]), ' ', m[2]] : f);
    });
    let caret = null;
    const lc = /line (\d+),? column (\d+)/.exec(message);
    if (lc && text !== undefined) {
      const line = text.split('\n')[Number(lc[1]) - 1] || '';
      caret = h('pre', { class: 'caret' }, line + '\n' + ' '.repeat(Math.max(0, Number(lc[2]) - 1)) + '^');
    }
    return h('div', { class: 'error', id, role: 'alert' }, h('ul', { class: 'faults' }, items), caret);
  }


  function card(title, ...body) {
    return h('section', { class: 'card' }, h('h2', {}, title), ...body);
  }

  // ---------- dashboard ----------
  async function dashboard(main) {
    const q = [];
    if (state.range.from) q.push('from=' + enc(state.range.from));
    if (state.range.to) q.push('to=' + enc(state.range.to));
    const ranged = q.length ? '?' + q.join('&') : '';
    const [health, funnel, roi, cohorts, rfm, rep, layers] = await Promise.all([
      api('GET', '/healthz'),
      api('GET', '/v1/analytics/funnel' + ranged),
      api('GET', '/v1/analytics/roi' + ranged),
      api('GET', '/v1/analytics/cohorts?weeks=12'),
      api('GET', '/v1/analytics/rfm'),
      api('GET', '/v1/analytics/repurchase'),
      api('GET', '/v1/analytics/rfm-layers'),
    ]);
    const kpi = (label, value, sub) => h('div', { class: 'kpi' }, h('div', { class: 'kpi-label' }, label), h('div', { class: 'kpi-value' }, value), sub ? h('div', { class: 'kpi-sub' }, sub) : null);
    const hd = health.data || {};
    const rd = rep.data || {};
    const kpis = h('div', { class: 'kpis', id: 'kpis' },
      kpi(t('dash.persons'), C.fmt(hd.persons)),
      kpi(t('dash.identities'), C.fmt(hd.identities)),
      kpi(t('dash.events'), C.fmt(hd.events)),
      kpi(t('dash.repurchase'), typeof rd.rate === 'number' ? (rd.rate * 100).toFixed(1) + '%' : '—',
        rd.median_interval_days != null ? t('dash.median_interval', { d: rd.median_interval_days.toFixed(1) }) : null));

    const empty = () => h('p', { class: 'muted' }, t('dash.empty'));
    // The date range of the funnel and ROI: local dates, both included.
    const fromIn = h('input', { type: 'date', id: 'range-from', value: state.range.from, 'aria-label': t('dash.range_from') });
    const toIn = h('input', { type: 'date', id: 'range-to', value: state.range.to, 'aria-label': t('dash.range_to') });
    const rangeError = [funnel, roi].find((r) => r.status === 400);
    const caption = (r) => {
      const d = (r && r.data) || {};
      const day = (x) => (x ? fmtLocal(Date.parse(x)).slice(0, 10) : null);
      // `to` is exclusive: the last day shown is the day before it.
      const last = d.to ? fmtLocal(Date.parse(d.to) - 1000).slice(0, 10) : null;
      return !d.from && !d.to ? t('dash.range_all', { tz: d.time_zone || state.tz })
        : t('dash.range_caption', { tz: d.time_zone || state.tz, from: day(d.from) || t('dash.range_start'), to: last || t('dash.range_now') });
    };
    const rangeForm = h('form', { class: 'search range', id: 'range-form', onsubmit: (e) => {
      e.preventDefault();
      state.range = { from: fromIn.value, to: toIn.value };
      render();
    } }, h('label', {}, t('dash.range_from'), ' ', fromIn), h('label', {}, t('dash.range_to'), ' ', toIn),
      h('button', { type: 'submit', class: 'primary', id: 'range-apply' }, t('dash.range_apply')),
      h('button', { type: 'button', class: 'link', id: 'range-clear', onclick: () => { state.range = { from: '', to: '' }; render(); } }, t('dash.range_clear')),
      h('span', { class: 'muted small', id: 'range-caption' }, rangeError ? '' : caption(roi)),
      rangeError ? h('p', { class: 'error', id: 'range-error', role: 'alert' }, (rangeError.data && rangeError.data.message) || '400') : null);
    const frows = (funnel.data && funnel.data.rows) || [];
    const funnelChart = frows.length ? C.groupedBars(
      frows.map((r) => ({ label: I18N.channel(r.channel), values: [r.entered, r.friended, r.converted], note: r.entered ? (100 * r.converted / r.entered).toFixed(1) + '%' : '' })),
      [t('dash.entered'), t('dash.friended'), t('dash.converted')], { title: t('dash.funnel') }) : empty();

    const rrows = (roi.data && roi.data.rows) || [];
    const roiChart = rrows.length ? C.groupedBars(
      rrows.map((r) => ({ label: I18N.channel(r.channel), values: [r.spend / 100, r.revenue / 100], note: r.spend ? 'ROI ' + (r.revenue / r.spend).toFixed(2) : '' })),
      [t('dash.spend'), t('dash.revenue')], { title: t('dash.roi') }) : empty();
    // The partner program beside the channels: commission and fees against
    // the revenue of the customers each partner brought in the range.
    const prows = (roi.data && roi.data.partners) || [];
    const partnerChart = prows.length ? h('div', { id: 'partner-roi-chart' }, C.groupedBars(
      prows.map((r) => ({ label: r.name, values: [(r.commission + r.fees) / 100, r.revenue / 100], note: typeof r.roi === 'number' ? 'ROI ' + r.roi.toFixed(2) : '' })),
      [t('dash.partner_cost'), t('dash.revenue')], { title: t('dash.partner_roi') }),
      h('p', { class: 'muted small' }, h('a', { href: '#/partners' }, t('dash.partner_link')))) : null;

    const cd = cohorts.data || {};
    const crows = (cd.rows || []).filter((r) => r.size > 0);
    let cohortChart = empty();
    if (crows.length) {
      const weeks = Math.max(...crows.map((r) => r.active.length));
      // Each cohort's Monday, a local date (weeks start Monday 00:00 in the workspace zone).
      const labels = crows.map((r) => String(r.week_start || '').slice(5) + ' (' + r.size + ')');
      const cells = crows.map((r) => r.active.map((a) => ({ frac: a / r.size, label: (100 * a / r.size).toFixed(0) + '%', title: `${a} / ${r.size}` })));
      cohortChart = C.heatmap(cells, labels, Array.from({ length: weeks }, (_, i) => t('dash.week', { n: i })), { left: 110, cellW: 44, title: t('dash.cohorts') });
    }

    const rfmCells = (rfm.data && rfm.data.cells) || [];
    const rfmBox = h('div', { id: 'rfm-chart' });
    const mSelect = h('select', { id: 'rfm-m', 'aria-label': 'M' }, h('option', { value: '0' }, t('dash.all_m')), [1, 2, 3, 4, 5].map((m) => h('option', { value: String(m) }, 'M=' + m)));
    const drawRfm = () => {
      const m = Number(mSelect.value);
      const grid = [5, 4, 3, 2, 1].map((r) => [1, 2, 3, 4, 5].map((f) => rfmCells.filter((c) => c.r === r && c.f === f && (!m || c.m === m)).reduce((s, c) => s + c.persons, 0)));
      const max = Math.max(1, ...grid.flat());
      rfmBox.replaceChildren(C.heatmap(grid.map((row, i) => row.map((v, j) => ({ frac: v / max, label: C.fmt(v), title: `R=${5 - i} F=${j + 1}: ${v}` }))),
        ['R=5', 'R=4', 'R=3', 'R=2', 'R=1'], ['F=1', 'F=2', 'F=3', 'F=4', 'F=5'], { left: 50, cellW: 64, cellH: 30, xTitle: t('dash.frequency'), title: t('dash.rfm') }));
    };
    mSelect.addEventListener('change', drawRfm);
    drawRfm();

    // The eight value layers: share of buyers next to share of revenue, and
    // each layer's revenue per person against the average buyer, so "worth
    // 5–10×" reads at a glance; each name opens its members as a segment.
    const ld = layers.data || {};
    const lrows = ld.layers || [];
    let layersChart = empty();
    if (ld.buyers > 0) {
      const pct = (v) => (v * 100).toFixed(1) + '%';
      const th = ld.thresholds;
      layersChart = h('div', {},
        C.groupedBars(lrows.map((l) => ({ label: t('layer.' + l.layer), values: [l.share_of_persons * 100, l.share_of_revenue * 100],
          note: l.persons ? t('dash.layer_ratio', { x: l.ratio_to_average.toFixed(1) }) : '' })),
        [t('dash.share_persons'), t('dash.share_revenue')], { title: t('dash.layers'), format: (v) => v.toFixed(1) + '%', width: 720 }),
        th ? h('p', { class: 'muted small', id: 'rfm-thresholds' }, t('dash.layer_thresholds', { r: th.recency_days, f: th.frequency, m: (th.monetary_cents / 100).toFixed(2), src: t('dash.src_' + th.source) })) : null,
        h('ul', { class: 'layer-links', id: 'rfm-layer-links' }, lrows.map((l) => h('li', {},
          h('a', { href: '#/segments?q=' + enc('rfm_layer = "' + l.name + '"'), 'data-layer': l.layer }, t('layer.' + l.layer)),
          ' ', h('span', { class: 'muted' }, `${C.fmt(l.persons)} · ${pct(l.share_of_revenue)}`)))));
    }

    main.replaceChildren(h('h1', {}, t('nav.dashboard')), kpis,
      card(t('dash.layers'), h('div', { id: 'rfm-layers-chart' }, layersChart)),
      card(t('dash.range'), rangeForm),
      h('div', { class: 'grid2' },
        card(t('dash.funnel'), h('div', { id: 'funnel-chart' }, funnelChart)),
        card(t('dash.roi'), h('div', { id: 'roi-chart' }, roiChart), partnerChart),
        card(t('dash.cohorts'), h('div', { id: 'cohort-chart', class: 'scroll' }, cohortChart)),
        card(t('dash.rfm'), mSelect, rfmBox)));
  }

  // ---------- persons ----------
  const EVENT_TYPES = {
    touch: ['触达', 'touch'], comment: ['评论', 'comment'], follow: ['关注', 'follow'], custom: ['自定义', 'custom'], identify: ['识别关联', 'identify'], alias: ['别名', 'alias'],
    add_friend: ['加好友', 'add friend'], join_group: ['入群', 'join group'], leave_group: ['退群', 'leave group'],
    referral_signup: ['邀请注册', 'referral signup'], message_sent: ['发送消息', 'message sent'], message_read: ['阅读消息', 'message read'],
    purchase: ['购买', 'purchase'], refund: ['退款', 'refund'], opt_out: ['退订', 'opt out'], opt_in: ['恢复订阅', 'opt in'], page: ['浏览', 'page'], track: ['自定义', 'track'],
  };
  const typeLabel = (ty) => (EVENT_TYPES[ty] ? EVENT_TYPES[ty][I18N.lang() === 'en' ? 1 : 0] : ty);

  // The customer list (GET /v1/customers): a filter bar, sortable
  // columns, paging, row selection and bulk actions. Its state lives in
  // the hash (`#/persons?q=…&tag=…&sort=…`), so a reload or a shared link
  // shows the same list; every change sets the hash and the page renders
  // again from it.
  const FILTERS = ['q', 'segment', 'tag', 'channel', 'owner', 'rfm', 'spend_min', 'spend_max', 'last_seen_from', 'last_seen_to'];
  const LIST_CHANNELS = ['wecom', 'wechat', 'douyin', 'kuaishou', 'xiaohongshu', 'taobao', 'tmall', 'jd', 'pinduoduo', 'miniprogram', 'offline', 'sms', 'email', 'web'];
  const LAYERS = ['important_value', 'important_develop', 'important_keep', 'important_win_back', 'general_value', 'general_develop', 'general_keep', 'general_win_back'];
  const listParams = () => new URLSearchParams(location.hash.split('?')[1] || '');
  // The API's parameters from the hash: spend is typed in yuan, asked in fen.
  function apiParams(p) {
    const out = new URLSearchParams();
    for (const k of FILTERS) {
      const v = (p.get(k) || '').trim();
      if (!v) continue;
      out.set(k, k.startsWith('spend_') && /^-?\d+(\.\d{1,2})?$/.test(v) ? String(Math.round(Number(v) * 100)) : v);
    }
    for (const k of ['sort', 'order', 'offset', 'limit']) if (p.get(k)) out.set(k, p.get(k));
    return out;
  }
  const goList = (p) => { location.hash = '#/persons' + (p.toString() ? '?' + p.toString() : ''); };

  async function persons(main, id) {
    if (id) {
      // A profile, with the search box that leads back to the list.
      const input = h('input', { id: 'person-q', type: 'search', placeholder: t('cust.search'), autocomplete: 'off' });
      const form = h('form', { class: 'search', onsubmit: (e) => { e.preventDefault(); goList(new URLSearchParams({ q: input.value.trim() })); } },
        input, h('button', { type: 'submit', class: 'primary' }, t('persons.search_button')));
      main.replaceChildren(h('h1', {}, t('nav.persons')), form, h('div', { id: 'person-results' }));
      main.appendChild(await profile(id));
      return;
    }
    const p = listParams();
    const [res, segs, ops, journeys] = await Promise.all([
      api('GET', '/v1/customers?' + apiParams(p).toString()),
      api('GET', '/v1/segments'), api('GET', '/v1/operators'), api('GET', '/v1/journeys'),
    ]);
    const opt = (value, label, cur) => h('option', { value, selected: value === cur }, label);
    const select = (name, label, options) => h('label', { class: 'field' }, h('span', {}, label),
      h('select', { id: 'cf-' + name, name }, opt('', t('cust.any'), p.get(name) || ''), options.map(([v, l]) => opt(v, l, p.get(name) || ''))));
    const input = (name, label, attrs) => h('label', { class: 'field' }, h('span', {}, label),
      h('input', Object.assign({ id: 'cf-' + name, name, value: p.get(name) || '' }, attrs)));
    const segNames = ((segs.data && segs.data.segments) || []).map((s) => s.name);
    const logins = ((ops.data && ops.data.operators) || []).map((o) => [o.login, o.name ? `${o.name} (${o.login})` : o.login]);
    const journeyNames = ((journeys.data && journeys.data.journeys) || []).filter((j) => !j.archived).map((j) => j.name);
    const search = h('input', { id: 'person-q', name: 'q', type: 'search', value: p.get('q') || '', placeholder: t('cust.search'), autocomplete: 'off' });
    const filters = h('form', { class: 'filters', id: 'customer-filters', onsubmit: (e) => {
      e.preventDefault();
      const next = new URLSearchParams();
      new FormData(e.target).forEach((v, k) => { if (String(v).trim()) next.set(k, String(v).trim()); });
      for (const k of ['sort', 'order']) if (p.get(k)) next.set(k, p.get(k));
      goList(next);
    } },
      h('div', { class: 'search' }, search, h('button', { type: 'submit', class: 'primary', id: 'cf-apply' }, t('persons.search_button')),
        h('button', { type: 'button', id: 'cf-reset', onclick: () => goList(new URLSearchParams()) }, t('cust.reset'))),
      h('div', { class: 'filter-row' },
        select('segment', t('cust.segment'), segNames.map((n) => [n, n])),
        input('tag', t('persons.tags'), { placeholder: 'vip', size: 10 }),
        select('channel', t('persons.channel'), LIST_CHANNELS.map((c) => [c, I18N.channel(c)])),
        select('owner', t('persons.owner'), logins),
        select('rfm', t('cust.rfm'), LAYERS.map((l) => [l, t('layer.' + l)])),
        input('spend_min', t('cust.spend_min'), { type: 'number', step: '0.01', size: 8 }),
        input('spend_max', t('cust.spend_max'), { type: 'number', step: '0.01', size: 8 }),
        input('last_seen_from', t('cust.seen_from'), { type: 'date' }),
        input('last_seen_to', t('cust.seen_to'), { type: 'date' })));
    if (!res.ok) {
      main.replaceChildren(h('h1', {}, t('nav.persons')), filters,
        h('div', { class: 'error', id: 'customer-error', role: 'alert' }, (res.data && res.data.message) || String(res.status)));
      return;
    }
    const d = res.data;
    const rows = d.customers;
    // Selection: canonical ids of the rows ticked on this page.
    const selected = new Set();
    const count = h('span', { id: 'bulk-count' }, t('cust.selected', { n: 0 }));
    const allMatching = h('input', { type: 'checkbox', id: 'bulk-all' });
    const action = h('select', { id: 'bulk-action' },
      [['tag', t('cust.act.tag')], ['untag', t('cust.act.untag')], ['assign_owner', t('cust.act.owner')], ['enroll', t('cust.act.enroll')]].map(([v, l]) => h('option', { value: v }, l)));
    const value = h('span', { id: 'bulk-value-slot' });
    const showValue = () => {
      const a = action.value;
      value.replaceChildren(a === 'assign_owner' ? h('select', { id: 'bulk-value' }, logins.map(([v, l]) => h('option', { value: v }, l)))
        : a === 'enroll' ? h('select', { id: 'bulk-value' }, journeyNames.map((n) => h('option', { value: n }, n)))
          : h('input', { id: 'bulk-value', placeholder: t('cust.tag_placeholder'), size: 12 }));
    };
    action.addEventListener('change', showValue);
    showValue();
    const apply = h('button', { type: 'button', class: 'primary', id: 'bulk-apply', 'data-write': true, onclick: async () => {
      const v = ($('#bulk-value') || {}).value || '';
      if (!v.trim()) { toast(t('cust.need_value'), 'error'); return; }
      const body = { action: action.value };
      if (allMatching.checked) {
        const f = {};
        apiParams(p).forEach((val, k) => { if (FILTERS.includes(k)) f[k] = val; });
        body.filter = f;
      } else if (selected.size) body.ids = [...selected];
      else { toast(t('cust.need_rows'), 'error'); return; }
      if (action.value === 'tag' || action.value === 'untag') body.tag = v.trim();
      if (action.value === 'assign_owner') body.owner = v;
      if (action.value === 'enroll') body.journey = v;
      const n = body.ids ? body.ids.length : d.total;
      if (!window.confirm(t('cust.confirm', { action: action.selectedOptions[0].textContent, n }))) return;
      const r = await api('POST', '/v1/customers/bulk', body);
      if (r.ok) { toast(t('cust.done', { n: r.data.applied, persons: r.data.persons }), 'good'); render(); }
      else toast((r.data && r.data.message) || String(r.status), 'error');
    } }, t('cust.apply'));
    const csv = h('a', { id: 'customers-csv', class: 'button', href: '/v1/customers.csv?' + apiParams(p).toString(), download: 'customers.csv' }, t('cust.csv', { n: C.fmt(d.total) }));
    const bulkBar = h('div', { class: 'bulk-bar', id: 'bulk-bar' }, count, h('label', { class: 'inline' }, allMatching, ' ', t('cust.all_matching', { n: C.fmt(d.total) })),
      action, value, apply, csv);
    const updateCount = () => { count.textContent = allMatching.checked ? t('cust.selected', { n: C.fmt(d.total) }) : t('cust.selected', { n: selected.size }); };
    allMatching.addEventListener('change', updateCount);
    const boxes = [];
    const tick = (cid) => h('input', { type: 'checkbox', class: 'row-select', 'data-id': cid, 'aria-label': cid, onchange: (e) => {
      if (e.target.checked) selected.add(cid); else selected.delete(cid);
      updateCount();
    } });
    const selectAll = h('input', { type: 'checkbox', id: 'select-all', 'aria-label': t('cust.select_page'), onchange: (e) => {
      boxes.forEach((b) => { b.checked = e.target.checked; if (b.checked) selected.add(b.dataset.id); else selected.delete(b.dataset.id); });
      updateCount();
    } });
    // Sortable headers: a click sorts by the column, a second click turns it around.
    const sortBy = d.sort;
    const th = (key, label, col) => {
      if (!col) return h('th', {}, label);
      const active = sortBy === col;
      const arrow = active ? (d.order === 'desc' ? ' ↓' : ' ↑') : '';
      return h('th', { class: 'sortable' + (active ? ' sorted' : ''), 'data-sort': col, 'aria-sort': active ? (d.order === 'desc' ? 'descending' : 'ascending') : 'none' },
        h('a', { href: '#', onclick: (e) => {
          e.preventDefault();
          const next = new URLSearchParams(p);
          next.delete('offset');
          next.set('sort', col);
          next.set('order', active ? (d.order === 'desc' ? 'asc' : 'desc') : (col === 'name' ? 'asc' : 'desc'));
          goList(next);
        } }, label + arrow));
    };
    const idChip = (i) => h('span', { class: 'chip id' + (i.hashed ? ' hashed' : ''), title: `${i.channel}:${i.id}` },
      I18N.channel(i.channel) + ' ' + (i.hashed ? t('cust.hashed') : showId(i.id)));
    const table = h('table', { class: 'list customers', id: 'customer-table' },
      h('thead', {}, h('tr', {}, h('th', {}, selectAll), th('name', t('cust.name'), 'name'), th('ids', t('persons.identities')),
        th('tags', t('persons.tags')), th('owner', t('persons.owner')), th('rfm', t('cust.rfm')),
        th('spend', t('persons.net_spend'), 'spend'), th('orders', t('persons.purchases'), 'orders'),
        th('last', t('cust.last_seen'), 'last_seen'), th('first', t('persons.first_seen'), 'first_seen'))),
      h('tbody', { id: 'customer-rows' }, rows.map((c) => {
        const b = tick(c.id);
        boxes.push(b);
        return h('tr', { 'data-id': c.id },
          h('td', {}, b),
          h('td', { class: 'name' }, h('a', { href: '#/persons/' + enc(c.id), class: 'person-link' }, h('strong', {}, c.display_name),
            c.display_name !== c.id ? h('span', { class: 'muted small canonical', title: c.id }, ' ' + showId(c.id)) : null)),
          h('td', { class: 'ids' }, c.identities.slice(0, 3).map(idChip), c.identity_count > 3 ? h('span', { class: 'muted small' }, '+' + (c.identity_count - 3)) : null),
          h('td', { class: 'tags' }, c.tags.map((x) => h('span', { class: 'chip' }, x))),
          h('td', { class: 'owner' }, c.owner || t('persons.none_value')),
          h('td', { class: 'rfm' }, c.rfm_layer_key ? t('layer.' + c.rfm_layer_key) : t('persons.none_value')),
          h('td', { class: 'num spend' }, t('common.yuan', { v: yuan(c.spend) })),
          h('td', { class: 'num orders' }, String(c.orders)),
          h('td', { class: 'last' }, date(c.last_seen)),
          h('td', { class: 'first' }, date(c.first_seen)));
      })));
    const page = (offset) => { const next = new URLSearchParams(p); if (offset) next.set('offset', String(offset)); else next.delete('offset'); goList(next); };
    const pager = h('div', { class: 'pager', id: 'pager' },
      h('button', { type: 'button', id: 'page-prev', disabled: d.offset === 0, onclick: () => page(Math.max(0, d.offset - d.limit)) }, t('cust.prev')),
      h('span', { id: 'page-info' }, d.total ? t('cust.range', { from: C.fmt(d.offset + 1), to: C.fmt(d.offset + rows.length), total: C.fmt(d.total) }) : t('persons.none')),
      h('button', { type: 'button', id: 'page-next', disabled: d.next_offset === null, onclick: () => page(d.next_offset) }, t('cust.next')));
    main.replaceChildren(h('h1', {}, t('nav.persons')), filters, bulkBar,
      h('div', { id: 'person-results' }, rows.length ? table : h('p', { class: 'muted', id: 'customers-empty' }, t('persons.none'))), pager);
  }

  async function profile(id) {
    const [pr, tl, mg, cs] = await Promise.all([
      api('GET', '/v1/persons/' + enc(id)),
      api('GET', '/v1/persons/' + enc(id) + '/timeline?limit=50'),
      api('GET', '/v1/persons/' + enc(id) + '/merges'),
      api('GET', '/v1/persons/' + enc(id) + '/consent'),
    ]);
    if (!pr.ok) return h('p', { class: 'error' }, (pr.data && pr.data.message) || String(pr.status));
    const p = pr.data;
    const none = t('persons.none_value');
    const row = (k, v) => h('tr', {}, h('th', {}, k), h('td', {}, v));
    // Identity chips show the decoded id, the stored one in the tooltip.
    const chips = (xs, cls) => (xs && xs.length ? xs.map((x) => h('span', { class: 'chip ' + (cls || ''), title: x }, cls === 'id' ? showId(x) : x)) : none);
    const traits = Object.entries(p.traits || {}).map(([k, v]) => h('span', { class: 'chip' }, `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`));
    const consent = p.opted_out ? h('span', { class: 'badge bad', id: 'consent' }, t('persons.opted_out')) : h('span', { class: 'badge good', id: 'consent' }, t('persons.reachable'));

    const tbody = h('tbody', { id: 'timeline-rows' });
    let next = null;
    const addEvents = (data) => {
      for (const item of (data && data.events) || []) {
        const e = item.event;
        const extra = Object.entries(e).filter(([k]) => !['ts', 'identity', 'type', 'channel', 'amount', 'id'].includes(k))
          .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ');
        tbody.appendChild(h('tr', { class: 'ev ev-' + e.type }, h('td', { class: 'nowrap' }, date(e.ts)), h('td', {}, h('span', { class: 'chip type-' + e.type }, typeLabel(e.type))),
          h('td', { class: 'ident', title: e.identity }, showId(e.identity)), h('td', { title: e.channel || '' }, e.channel ? I18N.channel(e.channel) : ''), h('td', { class: 'num' }, e.amount != null ? yuan(e.amount) : ''), h('td', { class: 'muted small extra', title: extra }, extra)));
      }
      next = data && data.next_before;
      more.hidden = !next;
    };
    const more = h('button', { type: 'button', onclick: async () => { addEvents((await api('GET', '/v1/persons/' + enc(id) + '/timeline?limit=50&before=' + next)).data); } }, t('persons.more'));
    addEvents(tl.data);

    const eraseBtn = h('button', { type: 'button', class: 'danger', id: 'erase', 'data-admin': true, onclick: async () => {
      const typed = window.prompt(t('persons.erase_confirm', { id: p.canonical_id }));
      if (typed !== p.canonical_id) return;
      const r = await api('DELETE', '/v1/persons/' + enc(p.canonical_id));
      if (r.ok) { toast(t('persons.erased', { id: p.canonical_id, n: r.data.events_removed }), 'good'); location.hash = '#/persons'; }
    } }, t('persons.erase'));

    const optOutBtn = p.opted_out ? null : h('button', { type: 'button', id: 'opt-out', 'data-write': true, onclick: async () => {
      if (!window.confirm(t('persons.opt_out_confirm', { id: p.canonical_id }))) return;
      const ev = { ts: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), identity: p.canonical_id, type: 'opt_out' };
      const r = await api('POST', '/v1/events', [ev]);
      if (r.ok) render();
      else if (r.status !== 403) toast((r.data && r.data.message) || String(r.status), 'error');
    } }, t('persons.opt_out'));

    // A loyal customer becomes a distributor (分销): their own partner
    // link and commission, opened on the partner page.
    const partnerBtn = p.purchases > 0 ? h('button', { type: 'button', id: 'make-partner', 'data-write': true, onclick: async () => {
      const r = await api('POST', '/v1/partners/from-person', { identity: p.canonical_id });
      if (r.ok) { toast(t('persons.made_partner', { id: r.data.partner.id }), 'good'); location.hash = '#/partners/' + enc(r.data.partner.id); }
      else if (r.status !== 403) toast((r.data && r.data.message) || String(r.status), 'error');
    } }, t('persons.make_partner')) : null;

    const merges = ((mg.data && mg.data.merges) || []).map((m) => h('li', {}, date(m.at), ` · ${showId(m.identity)} ↔ ${showId(m.linked)} → ${showId(m.into)}`));
    const owner = p.traits && typeof p.traits.operator === 'string' ? p.traits.operator : null;
    const ledger = (cs.data && cs.data.ledger) || [];
    const epoch = (s) => (typeof s === 'number' ? timeCell(s * 1000) : '');
    const consentCard = card(t('persons.consent_ledger'), ledger.length ? h('table', { class: 'list', id: 'consent-ledger' },
      h('thead', {}, h('tr', {}, ['persons.time', 'persons.identity', 'persons.channel', 'persons.consent', 'persons.source'].map((k) => h('th', {}, t(k))))),
      h('tbody', {}, ledger.slice().reverse().map((c) => h('tr', { 'data-granted': String(c.granted) }, h('td', { class: 'nowrap' }, epoch(c.ts)), h('td', {}, c.identity),
        h('td', {}, c.channel ? I18N.channel(c.channel) : t('persons.all_channels')),
        h('td', {}, h('span', { class: 'badge ' + (c.granted ? 'good' : 'bad') }, t(c.granted ? 'persons.granted' : 'persons.revoked'))),
        h('td', { class: 'small' }, (() => { const k = 'persons.source.' + c.source; const v = t(k); return v === k ? c.source : v; })())))))
      : h('p', { class: 'muted', id: 'consent-ledger-empty' }, cs.ok ? t('persons.no_consent') : (cs.data && cs.data.message) || String(cs.status)));
    const rfm = p.rfm ? `R${p.rfm.r} F${p.rfm.f} M${p.rfm.m}` : none;

    return h('div', { class: 'profile', id: 'profile' },
      h('h2', { id: 'profile-id', title: p.canonical_id }, showId(p.canonical_id)),
      h('div', { class: 'grid2' },
        card(t('persons.identities'), h('div', { id: 'identities' }, chips(p.identities, 'id'))),
        card(t('persons.profile'), h('table', { class: 'kv' }, h('tbody', {},
          row(t('persons.first_seen'), date(p.first_seen)),
          row(t('persons.first_channel'), p.first_channel ? h('span', { id: 'first-channel', title: p.first_channel }, I18N.channel(p.first_channel)) : none),
          row(t('persons.purchases'), h('span', { id: 'purchases' }, String(p.purchases))),
          row(t('persons.net_spend'), h('span', { id: 'net-spend' }, '¥' + yuan(p.net_spend))),
          row(t('persons.refunded'), '¥' + yuan(p.refunded)),
          row(t('persons.last_purchase'), date(p.last_purchase_at)),
          row(t('persons.rfm'), rfm),
          row(t('persons.consent'), [consent, ' ', optOutBtn]),
          row(t('persons.owner'), h('span', { id: 'owner' }, owner ? h('a', { href: '#/communities', class: 'chip' }, owner) : none)),
          row(t('persons.tags'), h('span', { id: 'tags' }, chips(p.tags))),
          row(t('persons.groups'), chips(p.groups)),
          row(t('persons.traits'), traits.length ? traits : none),
          row(t('persons.segments'), h('span', { id: 'person-segments' }, (p.segments || []).length ? p.segments.map((s) => h('a', { class: 'chip seg', href: '#/segments/' + enc(s) }, s)) : none)))),
          h('div', { class: 'actions' },
            h('a', { href: '/v1/persons/' + enc(p.canonical_id) + '/export', class: 'button', id: 'export', download: '' }, t('persons.export')), partnerBtn, eraseBtn))),
      card(t('persons.timeline'), h('div', { class: 'timeline-box' }, h('table', { class: 'timeline', id: 'timeline' },
        h('colgroup', {}, h('col', { class: 'c-time' }), h('col', { class: 'c-type' }), h('col', { class: 'c-ident' }), h('col', { class: 'c-channel' }), h('col', { class: 'c-amount' }), h('col', { class: 'c-extra' })), tbody)), more),
      consentCard,
      merges.length ? card(t('persons.merges'), h('ul', { class: 'merges' }, merges)) : null);
  }

  // A Delete / Archive button: asks first, then DELETEs `path`. A refusal
  // (409 `in_use`: what still uses it, and how to free it) is shown in
  // `status` (or a toast); the server decides, the button only asks.
  // `label` and `confirm` are i18n keys ('del.delete' / 'del.archive' …).
  function removeButton({ id, path, name, label, confirm, done, status }) {
    return h('button', { type: 'button', class: 'danger', id, 'data-write': true, onclick: async () => {
      if (!window.confirm(t(confirm, { name }))) return;
      const r = await api('DELETE', path);
      if (r.ok) { toast(t(r.data && r.data.archived ? 'del.archived' : 'del.deleted', { name }), 'good'); done(); return; }
      if (r.status === 403) return;
      const msg = (r.data && r.data.message) || String(r.status);
      if (status) status.replaceChildren(h('div', { class: 'error', id: (id || 'remove') + '-error', role: 'alert' }, msg));
      else toast(msg, 'error');
    } }, t(label));
  }

  // ---------- segments ----------
  async function segments(main, name) {
    const list = await api('GET', '/v1/segments');
    const segs = (list.data && list.data.segments) || [];
    const current = segs.find((s) => s.name === name);
    const nav = h('ul', { class: 'seglist', id: 'segment-list' },
      h('li', {}, h('a', { href: '#/segments', class: !name ? 'active' : '' }, '+ ' + t('seg.new'))),
      segs.map((s) => h('li', {}, h('a', { href: '#/segments/' + enc(s.name), class: s.name === name ? 'active' : '' }, s.name, ' ',
        s.status === 'broken' ? h('span', { class: 'badge bad', title: s.error }, t('seg.broken')) : h('span', { class: 'count' }, C.fmt(s.count))))));
    // A stored segment the server could not load: say why; saving repairs it.
    const broken = current && current.status === 'broken';

    const nameIn = h('input', { id: 'segment-name', value: current ? current.name : '', placeholder: 'vip_buyers', pattern: '[a-z0-9_\\-]+', required: true, readonly: current ? true : null });
    // A new segment may start from a condition in the link (`#/segments?q=…`,
    // e.g. an RFM layer from the dashboard).
    const q = current ? '' : new URLSearchParams(location.hash.split('?')[1] || '').get('q') || '';
    const src = h('textarea', { id: 'segment-source', rows: 4, spellcheck: 'false', placeholder: t('seg.help') }, (current && current.segment) || q);
    const status = h('div', { id: 'segment-status', class: 'status', 'aria-live': 'polite' });
    if (broken) status.replaceChildren(h('div', { class: 'error', id: 'segment-broken' }, t('seg.broken_help') + ' ' + current.error));
    const sample = h('div', { id: 'segment-sample' });
    let seq = 0;
    const preview = async () => {
      const mine = ++seq;
      const text = src.value;
      if (!text.trim()) { if (!broken) status.replaceChildren(); sample.replaceChildren(); return; }
      const r = await api('POST', '/v1/segments/preview', { segment: text });
      if (mine !== seq) return;
      if (r.ok) {
        src.classList.remove('invalid');
        status.replaceChildren(h('span', { class: 'count-big', id: 'segment-count' }, t('seg.count', { n: r.data.count.toLocaleString() })));
        sample.replaceChildren(...r.data.sample.map((id) => h('a', { class: 'chip', href: '#/persons/' + enc(id), title: id }, showId(id))));
      } else {
        src.classList.add('invalid');
        const msg = (r.data && r.data.message) || String(r.status);
        const m = /line (\d+), column (\d+)/.exec(msg);
        let caret = null;
        if (m) {
          const line = text.split('\n')[Number(m[1]) - 1] || '';
          caret = h('pre', { class: 'caret' }, line + '\n' + ' '.repeat(Math.max(0, Number(m[2]) - 1)) + '^');
        }
        status.replaceChildren(h('div', { class: 'error', id: 'segment-error' }, msg), caret);
        sample.replaceChildren();
      }
    };
    let timer;
    src.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(preview, 250); });
    const save = h('button', { type: 'submit', class: 'primary', id: 'segment-save', 'data-write': true }, t('seg.save'));
    const form = h('form', { class: 'editor', onsubmit: async (e) => {
      e.preventDefault();
      const n = nameIn.value.trim();
      const r = await api('PUT', '/v1/segments/' + enc(n), { segment: src.value });
      if (r.ok) {
        toast(t('seg.saved', { name: n, v: r.data.version, n: r.data.count }), 'good');
        if (name === n) render(); else location.hash = '#/segments/' + enc(n);
      } else if (r.status !== 403) {
        status.replaceChildren(h('div', { class: 'error', id: 'segment-error' }, (r.data && r.data.message) || String(r.status)));
      }
    } },
      h('label', {}, t('seg.name'), nameIn),
      h('label', {}, t('seg.source'), src),
      h('p', { class: 'muted small' }, t('seg.help')),
      status, sample, h('div', { class: 'actions' }, save,
        current ? removeButton({ id: 'segment-delete', path: '/v1/segments/' + enc(current.name), name: current.name, label: 'del.delete', confirm: 'del.segment_confirm', status, done: () => { location.hash = '#/segments'; } }) : null));

    const right = [card(current ? `${current.name} · ${broken ? t('seg.broken') : t('seg.version', { v: current.version })}` : t('seg.new'), form)];
    if (current && !broken) {
      const [mem] = await Promise.all([api('GET', '/v1/segments/' + enc(current.name) + '/members?limit=100')]);
      const members = (mem.data && mem.data.members) || [];
      right.push(card(t('seg.members') + ` (${C.fmt(current.count)})`, h('div', { id: 'segment-members' }, members.map((m) => h('a', { class: 'chip', href: '#/persons/' + enc(m), title: m }, showId(m))))));
      const who = h('input', { id: 'explain-person', placeholder: t('seg.why_placeholder'), value: members[0] || '' });
      const out = h('div', { id: 'explain-result' });
      const renderExp = (x) => h('li', { class: x.holds ? 'holds' : 'fails' }, h('span', { class: 'mark' }, x.holds ? '✓' : '✗'), ' ', h('code', {}, x.clause),
        x.actual != null ? h('span', { class: 'muted' }, ' = ' + x.actual) : null, x.parts && x.parts.length ? h('ul', {}, x.parts.map(renderExp)) : null);
      const explain = async (e) => {
        if (e) e.preventDefault();
        const r = await api('GET', '/v1/segments/' + enc(current.name) + '/explain?person=' + enc(who.value.trim()));
        if (!r.ok) { out.replaceChildren(h('p', { class: 'error' }, (r.data && r.data.message) || String(r.status))); return; }
        out.replaceChildren(h('p', { class: r.data.member ? 'good' : 'bad' }, t(r.data.member ? 'seg.member_yes' : 'seg.member_no', { id: r.data.canonical_id })),
          r.data.explanation ? h('ul', { class: 'explain' }, renderExp(r.data.explanation)) : null);
      };
      right.push(card(t('seg.why'), h('form', { class: 'search', onsubmit: explain }, who, h('button', { type: 'submit' }, t('seg.explain'))), out));
    }
    main.replaceChildren(h('h1', {}, t('nav.segments')), h('div', { class: 'split' }, card(t('seg.list'), nav), h('div', {}, right)));
    if (current || q) preview();
  }

  // ---------- settings ----------
  async function settings(main) {
    const [keys, ops, conn] = await Promise.all([api('GET', '/console/api/keys'), api('GET', '/console/api/operators'), api('GET', '/v1/connectors')]);
    const when = (s) => (s ? timeCell(s * 1000) : '');

    const keyOut = h('div', { id: 'key-created' });
    const keyName = h('input', { id: 'key-name', placeholder: t('set.key_name'), required: true, 'data-admin': true });
    // '' = no `scopes` sent: ingest, read, write, erase (a key as before scopes).
    const keyScope = h('select', { id: 'key-scope', 'data-admin': true }, ['', 'ingest', 'read', 'read,write', 'admin'].map((v) => h('option', { value: v }, t('set.key_scope.' + (v || 'full')))));
    const keyForm = h('form', { class: 'search', onsubmit: async (e) => {
      e.preventDefault();
      const body = { name: keyName.value.trim() };
      if (keyScope.value) body.scopes = keyScope.value.split(',');
      const r = await api('POST', '/v1/admin/keys', body);
      if (r.ok) { keyOut.replaceChildren(h('p', {}, t('set.key_created')), h('code', { class: 'secret', id: 'new-key' }, r.data.key)); keyName.value = ''; }
      else if (r.status !== 403) toast((r.data && r.data.message) || String(r.status), 'error');
    } }, keyName, keyScope, h('button', { type: 'submit', class: 'primary', 'data-admin': true, id: 'key-create' }, t('set.key_create')));
    const keyRows = ((keys.data && keys.data.keys) || []).map((k) => h('tr', { 'data-key-id': k.id }, h('td', {}, k.name), h('td', {}, h('code', {}, k.id + '…')), h('td', { class: 'key-scopes' }, (k.scopes || []).join(' · ')), h('td', {}, when(k.created_at)),
      h('td', {}, h('button', { type: 'button', class: 'link danger revoke', 'data-admin': true, onclick: async () => {
        if (!window.confirm(t('set.key_revoke_confirm', { name: k.name, id: k.id }))) return;
        const r = await api('DELETE', '/v1/admin/keys/' + enc(k.id));
        if (r.ok) { toast(t('set.key_revoked', { name: k.name }), 'good'); render(); }
        else if (r.status !== 403) toast((r.data && r.data.message) || String(r.status), 'error');
      } }, t('set.key_revoke')))));

    const opRows = ((ops.data && ops.data.operators) || []).map((o) => h('tr', {}, h('td', {}, o.login), h('td', {}, t('role.' + o.role)), h('td', {}, when(o.created_at)),
      h('td', {}, o.login === state.me.login ? '' : h('button', { type: 'button', class: 'link danger', 'data-admin': true, onclick: async () => {
        if (!window.confirm(`${t('set.op_delete')} ${o.login}?`)) return;
        const r = await api('DELETE', '/console/api/operators/' + enc(o.login));
        if (r.ok) render();
      } }, t('set.op_delete')))));
    const opLogin = h('input', { id: 'op-login', placeholder: t('set.op_login'), required: true, 'data-admin': true });
    const opPass = h('input', { id: 'op-password', type: 'password', placeholder: t('set.op_password'), autocomplete: 'new-password', 'data-admin': true });
    const opRole = h('select', { id: 'op-role', 'data-admin': true }, ['operator', 'analyst', 'admin'].map((r) => h('option', { value: r }, t('role.' + r))));
    const opForm = h('form', { class: 'search', onsubmit: async (e) => {
      e.preventDefault();
      const body = { role: opRole.value };
      if (opPass.value) body.password = opPass.value;
      const r = await api('PUT', '/console/api/operators/' + enc(opLogin.value.trim()), body);
      if (r.ok) { toast(t('set.op_saved', { login: r.data.login }), 'good'); render(); }
      else if (r.status !== 403) toast((r.data && r.data.message) || String(r.status), 'error');
    } }, opLogin, opPass, opRole, h('button', { type: 'submit', class: 'primary', 'data-admin': true }, t('set.op_save')));

    const csv = h('textarea', { id: 'spend-csv', rows: 5, spellcheck: 'false', placeholder: 'day,channel,spend\n2025-01-01,douyin,1800000', 'data-write': true });
    const file = h('input', { type: 'file', accept: '.csv,text/csv', id: 'spend-file', 'data-write': true, onchange: async () => { if (file.files[0]) csv.value = await file.files[0].text(); } });
    const spendOut = h('div', { id: 'spend-result' });
    const spendForm = h('form', { class: 'editor', onsubmit: async (e) => {
      e.preventDefault();
      const r = await api('PUT', '/v1/spend', csv.value, { type: 'text/csv' });
      if (r.ok) spendOut.replaceChildren(h('p', { class: 'good' }, t('set.spend_done', { n: r.data.rows })));
      else if (r.status !== 403) spendOut.replaceChildren(h('p', { class: 'error' }, (r.data && r.data.message) || String(r.status)));
    } }, h('p', { class: 'muted small' }, t('set.spend_help')), file, csv, spendOut,
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', id: 'spend-upload', 'data-write': true }, t('set.spend_upload'))));

    // The workspace time zone: an IANA name the server checks (a bad one is its 400).
    const zones = ['Asia/Shanghai', 'Asia/Hong_Kong', 'Asia/Taipei', 'Asia/Singapore', 'Asia/Tokyo', 'Europe/London', 'America/New_York', 'America/Los_Angeles', 'UTC'];
    const tzIn = h('input', { id: 'tz-input', value: state.tz, list: 'tz-zones', required: true, spellcheck: 'false', 'data-admin': true });
    const tzOut = h('div', { id: 'tz-result' });
    const tzForm = h('form', { class: 'search', id: 'tz-form', onsubmit: async (e) => {
      e.preventDefault();
      const r = await api('PUT', '/v1/workspace', { time_zone: tzIn.value.trim() });
      if (r.ok) { state.tz = r.data.time_zone; showZone(); tzOut.replaceChildren(h('p', { class: 'good' }, t('set.tz_saved', { tz: state.tz }))); }
      else if (r.status !== 403) tzOut.replaceChildren(h('p', { class: 'error' }, (r.data && r.data.message) || String(r.status)));
    } }, tzIn, h('datalist', { id: 'tz-zones' }, zones.map((z) => h('option', { value: z }))),
      h('button', { type: 'submit', class: 'primary', id: 'tz-save', 'data-admin': true }, t('set.tz_save')));

    main.replaceChildren(h('h1', {}, t('nav.settings')),
      h('div', { class: 'grid2' },
        card(t('set.tz'), h('p', { class: 'muted small' }, t('set.tz_help')), tzForm, tzOut),
        card(t('set.keys'), h('table', { class: 'list', id: 'key-list' }, h('tbody', {}, keyRows)), keyForm, keyOut),
        card(t('set.operators'), h('table', { class: 'list', id: 'operator-list' }, h('tbody', {}, opRows)), opForm),
        connectors(conn),
        card(t('set.spend'), spendForm)));
  }

  // Configured outbound channels with their dispatch counters, inbound
  // webhook channels and where to configure them (never secrets).
  function connectors(conn) {
    if (!conn.ok) return card(t('set.connectors'), h('p', { class: 'error' }, (conn.data && conn.data.message) || String(conn.status)));
    const d = conn.data;
    const counters = (d.stats && d.stats.channels) || {};
    const n = (ch, k) => C.fmt((counters[ch] && counters[ch][k]) || 0);
    const rows = (d.outbound || []).map((o) => h('tr', { 'data-channel': o.channel },
      h('td', { title: o.channel }, h('a', { href: '#/channels/' + enc(o.channel) }, I18N.channel(o.channel))),
      h('td', {}, h('span', { class: 'badge ' + (o.configured ? 'status-done' : '') }, t(o.configured ? 'set.configured' : 'set.not_configured'))),
      ['queued', 'in_flight', 'delivered', 'retried', 'dead'].map((k) => h('td', { class: 'num' }, n(o.channel, k)))));
    const inbound = (d.inbound || []).length ? d.inbound.map((c) => h('span', { class: 'chip', title: c }, I18N.channel(c))) : h('span', { class: 'muted' }, t('set.no_inbound'));
    return card(t('set.connectors'),
      h('p', {}, h('a', { href: '#/channels', id: 'channels-link', class: 'button' }, t('ch.title') + ' →')),
      h('table', { class: 'list', id: 'connector-list' },
        h('thead', {}, h('tr', {}, ['set.channel', 'set.state', 'set.queued', 'set.in_flight', 'set.delivered', 'set.retried', 'set.dead'].map((k) => h('th', {}, t(k))))),
        h('tbody', {}, rows)),
      d.stats && d.stats.unknown_channel ? h('p', { class: 'small bad' }, t('set.unknown_channel', { n: d.stats.unknown_channel })) : null,
      h('p', {}, t('set.inbound'), ' ', h('span', { id: 'inbound-channels' }, inbound)),
      d.public_url ? h('p', { class: 'muted small' }, t('set.public_url'), ' ', h('code', {}, d.public_url)) : null,
      h('pre', { class: 'hint', id: 'connector-hint' }, t('set.connector_hint') + '\n' + (d.note || '')));
  }

  // ---------- automation (automation.js) and growth (growth.js) pages ----------
  // Helpers the page modules (automation.js, growth.js) share.
  const msgOf = (r) => (r.data && r.data.message) || String(r.status);
  // Epoch seconds → "YYYY-MM-DD HH:MM" in the workspace zone ('—' when absent).
  const localTime = (s) => (typeof s !== 'number' || !s ? '—' : fmtLocal(s * 1000));
  const empty = (id, text, hint) => h('div', { class: 'empty', id }, h('p', {}, text), hint ? h('p', { class: 'muted small' }, h('code', {}, hint)) : null);
  const person = (id) => h('a', { href: '#/persons/' + enc(id), class: 'person-link', title: id }, showId(id));
  const zone = { tz: () => state.tz, fmtLocal, fromLocal };
  const ui = { h, api, card, toast, enc, yuan, render, faults, canWrite, isAdmin, msgOf, when: localTime, empty, person, removeButton, showId, zone, applyRole, me: () => state.me };
  ui.editors = window.Editors(ui);
  const automation = window.AutomationPages(ui);
  const growth = window.GrowthPages(ui);
  const channelPages = window.ChannelPages(ui);
  const quickReplyPages = window.QuickReplyPages(ui);
  // The inbox's tabs (会话 / 存档 / 报表 / 设置) are drawn by compliance.js.
  const compliancePages = window.CompliancePages(ui);
  ui.inboxTabs = compliancePages.tabs;
  const inboxPages = window.InboxPages(ui);
  const livePages = window.LivePages(ui);
  const partnerPages = window.PartnerPages(ui);
  const momentPages = window.MomentPages(ui);

  // ---------- start ----------
  async function start() {
    I18N.applyStatic();
    const r = await api('GET', '/console/api/me', undefined, { quiet401: true });
    if (r.ok) { state.me = r.data; showApp(); } else showLogin();
  }
  start();
})();
