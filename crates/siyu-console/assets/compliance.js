// siyu console: the compliance views of the operator workbench, tabs of
// the inbox (会话 / 存档 / 报表 / 设置):
// - #/inbox-archive: the archive of operators' messages (会话存档,
//   GET /v1/conversations/archive) searched by text, operator, customer,
//   sensitive-word hits and dates, paged older through its cursor;
// - #/inbox-report: per operator over a date range (客服报表,
//   GET /v1/conversations/report) with a chart of first-response medians;
// - #/inbox-settings: the conversation settings (alert minutes, archive
//   retention, service windows per channel; PUT /v1/conversations/settings,
//   a 422 shown on the field it names) and the sensitive-word rules
//   (/v1/sensitive-words) as JSON.
// The archive and report take their filters from the address too
// (`#/inbox-archive?operator=…&flagged=true&from=…&to=…`), so the report
// links each operator to their messages. Strings are registered with
// I18N.add beside the page.
'use strict';
window.I18N.add({
  'zh-CN': {
    'cp.tab.inbox': '会话',
    'cp.tab.archive': '存档',
    'cp.tab.report': '报表',
    'cp.tab.settings': '设置',
    'cp.q': '搜索消息内容',
    'cp.operator': '客服',
    'cp.any_operator': '全部客服',
    'cp.person': '客户身份（如 wecom:wm…）',
    'cp.flagged': '仅看敏感词',
    'cp.from': '从',
    'cp.to': '到',
    'cp.kind.message': '回复',
    'cp.kind.resolution': '解决记录',
    'cp.search': '搜索',
    'cp.clear': '清空',
    'cp.col.time': '时间',
    'cp.col.operator': '客服',
    'cp.col.customer': '客户',
    'cp.col.channel': '渠道',
    'cp.col.text': '内容',
    'cp.col.response': '响应用时',
    'cp.col.open_for': '处理用时',
    'cp.shown': '已显示 {n} 条',
    'cp.shown_all': '共 {n} 条',
    'cp.older': '加载更早的消息',
    'cp.empty': '没有符合条件的客服消息。',
    'cp.empty_hint': '客服在会话里回复的每条消息都会存档在这里，可按内容、客服、敏感词和日期查找。',
    'cp.resolved': '标记为已解决',
    'cp.no_wait': '（无等待）',
    'cp.archive_help': '客服发出的消息（含未送达的）按时间倒序；时间为工作区时区 {tz}。',
    'cp.retention': '存档保留 {n} 天',
    'cp.retention_forever': '存档保留至客户被删除',
    'cp.s': '{n} 秒',
    'cp.ms': '{m} 分 {s} 秒',
    'cp.hm': '{h} 小时 {m} 分',
    'cp.dh': '{d} 天 {h} 小时',
    'cp.r.title': '客服报表',
    'cp.r.apply': '查看',
    'cp.r.caption': '{from} 至 {to}（{tz}）',
    'cp.r.col.operator': '客服',
    'cp.r.col.messages': '消息',
    'cp.r.col.persons': '客户',
    'cp.r.col.first_responses': '首次响应',
    'cp.r.col.first_median': '首响中位',
    'cp.r.col.first_p90': '首响 P90',
    'cp.r.col.resolved': '解决',
    'cp.r.col.resolution_median': '解决用时中位',
    'cp.r.col.sensitive': '敏感词',
    'cp.r.col.unanswered': '当前未回复',
    'cp.r.total': '合计',
    'cp.r.empty': '这段时间没有客服消息。',
    'cp.r.chart': '首次响应时间（中位数）',
    'cp.r.no_chart': '这段时间没有首次响应。',
    'cp.r.help': '首次响应：客户等待时客服的第一条回复距客户最早未回复消息的时间。当前未回复：该客服负责的客户中正在等待回复的人数（不随日期变化）。',
    'cp.s.title': '会话设置',
    'cp.s.alert': '未回复提醒（分钟）',
    'cp.s.alert_help': '客户等待超过这么久，给负责人生成一条待办；0 关闭提醒。',
    'cp.s.retention': '存档保留（天）',
    'cp.s.retention_help': '客服消息在存档中保留的天数；0 表示保留到客户被删除。',
    'cp.s.windows': '服务窗口（小时）',
    'cp.s.windows_help': '平台只在客户最后一条消息后的这段时间内接受回复（公众号 48 小时；企业微信经微信客服发送时也是 48 小时）。未列出的渠道没有窗口限制。',
    'cp.s.channel': '渠道',
    'cp.s.hours': '小时',
    'cp.s.remove': '移除',
    'cp.s.add': '添加渠道',
    'cp.s.no_windows': '没有渠道限制服务窗口。',
    'cp.s.save': '保存设置',
    'cp.s.saved': '已保存会话设置',
    'cp.s.dup': '渠道 {c} 出现了两次',
    'cp.s.no_channel': '填写渠道名',
    'cp.w.title': '敏感词规则',
    'cp.w.help': '规则（JSON）：contains 包含某词、any_of 包含任一词、regex 正则；applies_to 为 customer、operator 或 both；category 是报表和存档里显示的类别。',
    'cp.w.count': '{n} 条规则',
    'cp.w.none': '还没有敏感词规则。',
    'cp.w.save': '保存规则',
    'cp.w.saved': '已保存 {n} 条敏感词规则',
    'cp.w.col.id': '编号',
    'cp.w.col.matcher': '匹配',
    'cp.w.col.applies': '适用',
    'cp.w.col.category': '类别',
    'cp.w.off': '已停用',
    'cp.w.applies.customer': '客户',
    'cp.w.applies.operator': '客服',
    'cp.w.applies.both': '双方',
  },
  en: {
    'cp.tab.inbox': 'Conversations',
    'cp.tab.archive': 'Archive',
    'cp.tab.report': 'Report',
    'cp.tab.settings': 'Settings',
    'cp.q': 'Search message text',
    'cp.operator': 'Operator',
    'cp.any_operator': 'All operators',
    'cp.person': 'Customer identity (e.g. wecom:wm…)',
    'cp.flagged': 'Sensitive words only',
    'cp.from': 'From',
    'cp.to': 'To',
    'cp.kind.message': 'Replies',
    'cp.kind.resolution': 'Resolutions',
    'cp.search': 'Search',
    'cp.clear': 'Clear',
    'cp.col.time': 'Time',
    'cp.col.operator': 'Operator',
    'cp.col.customer': 'Customer',
    'cp.col.channel': 'Channel',
    'cp.col.text': 'Text',
    'cp.col.response': 'Response time',
    'cp.col.open_for': 'Open for',
    'cp.shown': '{n} shown',
    'cp.shown_all': '{n} in all',
    'cp.older': 'Load older messages',
    'cp.empty': 'No operator message matches.',
    'cp.empty_hint': 'Every message an operator sends from a conversation is archived here, searchable by text, operator, sensitive words and date.',
    'cp.resolved': 'Marked resolved',
    'cp.no_wait': '(none waiting)',
    'cp.archive_help': 'Operators\' messages (undelivered ones too), newest first; times in the workspace zone {tz}.',
    'cp.retention': 'kept {n} days',
    'cp.retention_forever': 'kept until the customer is erased',
    'cp.s': '{n} s',
    'cp.ms': '{m} min {s} s',
    'cp.hm': '{h} h {m} min',
    'cp.dh': '{d} d {h} h',
    'cp.r.title': 'Operator report',
    'cp.r.apply': 'Show',
    'cp.r.caption': '{from} to {to} ({tz})',
    'cp.r.col.operator': 'Operator',
    'cp.r.col.messages': 'Messages',
    'cp.r.col.persons': 'Customers',
    'cp.r.col.first_responses': 'First responses',
    'cp.r.col.first_median': 'First resp. median',
    'cp.r.col.first_p90': 'First resp. p90',
    'cp.r.col.resolved': 'Resolved',
    'cp.r.col.resolution_median': 'Resolution median',
    'cp.r.col.sensitive': 'Sensitive hits',
    'cp.r.col.unanswered': 'Unanswered now',
    'cp.r.total': 'Total',
    'cp.r.empty': 'No operator messages in this range.',
    'cp.r.chart': 'First response time (median)',
    'cp.r.no_chart': 'No first responses in this range.',
    'cp.r.help': 'First response: an operator\'s first reply to a waiting customer, timed from the customer\'s oldest unanswered message. Unanswered now: customers the operator owns who are waiting (not bound to the dates).',
    'cp.s.title': 'Conversation settings',
    'cp.s.alert': 'Unanswered alert (minutes)',
    'cp.s.alert_help': 'A customer waiting longer than this raises a task for their owner; 0 turns alerts off.',
    'cp.s.retention': 'Archive retention (days)',
    'cp.s.retention_help': 'Days operators\' messages stay in the archive; 0 keeps them until the customer is erased.',
    'cp.s.windows': 'Service windows (hours)',
    'cp.s.windows_help': 'The platform takes replies only this long after the customer\'s last message (Official Accounts: 48 h; WeCom through 微信客服 too). A channel not listed has no window.',
    'cp.s.channel': 'Channel',
    'cp.s.hours': 'Hours',
    'cp.s.remove': 'Remove',
    'cp.s.add': 'Add a channel',
    'cp.s.no_windows': 'No channel has a service window.',
    'cp.s.save': 'Save settings',
    'cp.s.saved': 'Conversation settings saved',
    'cp.s.dup': 'Channel {c} is listed twice',
    'cp.s.no_channel': 'Name the channel',
    'cp.w.title': 'Sensitive-word rules',
    'cp.w.help': 'Rules (JSON): contains a word, any_of several words, or a regex; applies_to customer, operator or both; category is what the report and archive show.',
    'cp.w.count': '{n} rules',
    'cp.w.none': 'No sensitive-word rules yet.',
    'cp.w.save': 'Save rules',
    'cp.w.saved': '{n} sensitive-word rules saved',
    'cp.w.col.id': 'Id',
    'cp.w.col.matcher': 'Match',
    'cp.w.col.applies': 'Applies to',
    'cp.w.col.category': 'Category',
    'cp.w.off': 'disabled',
    'cp.w.applies.customer': 'customers',
    'cp.w.applies.operator': 'operators',
    'cp.w.applies.both': 'both',
  },
});

window.CompliancePages = function (ui) {
  const { h, api, card, toast, enc, msgOf, showId, zone, faults } = ui;
  const { t } = window.I18N;
  const C = window.Charts;
  const PAGE = 50;
  const CHANNELS = ['wechat', 'wecom_kf', 'wecom', 'douyin', 'kuaishou', 'xiaohongshu', 'miniprogram', 'taobao', 'tmall', 'jd', 'pinduoduo', 'weibo', 'sms', 'web'];

  // The workbench's tabs (the inbox draws them too): links, so each is an address.
  const TABS = [['inbox', '#/inbox'], ['archive', '#/inbox-archive'], ['report', '#/inbox-report'], ['settings', '#/inbox-settings']];
  function tabs(active) {
    return h('nav', { class: 'ib-pages', id: 'inbox-pages', role: 'tablist' }, TABS.map(([k, href]) =>
      h('a', { href, role: 'tab', 'data-tab': k, class: k === active ? 'active' : null, 'aria-selected': k === active ? 'true' : 'false' }, t('cp.tab.' + k))));
  }
  const head = (active, ...more) => h('div', { class: 'ib-title' }, h('h1', {}, t('ib.title')), tabs(active), ...more);

  // Seconds → "42 秒", "3 分 20 秒", "2 小时 5 分", "1 天 3 小时".
  function dur(secs) {
    if (typeof secs !== 'number' || !isFinite(secs)) return '—';
    const s = Math.max(0, Math.round(secs));
    if (s < 60) return t('cp.s', { n: s });
    if (s < 3600) return t('cp.ms', { m: Math.floor(s / 60), s: s % 60 });
    if (s < 86400) return t('cp.hm', { h: Math.floor(s / 3600), m: Math.floor((s % 3600) / 60) });
    return t('cp.dh', { d: Math.floor(s / 86400), h: Math.floor((s % 86400) / 3600) });
  }
  const timeEl = (s) => h('time', { datetime: new Date(s * 1000).toISOString(), title: `${zone.tz()} · ${new Date(s * 1000).toISOString().replace('.000Z', 'Z')}` }, zone.fmtLocal(s * 1000));
  const chBadge = (c) => (c ? h('span', { class: 'badge ch', 'data-channel': c, title: c }, I18N.channel(c)) : null);
  // Today and `days` before it, as local dates (YYYY-MM-DD) in the workspace zone.
  const localDay = (ms) => zone.fmtLocal(ms).slice(0, 10);
  const hashParams = () => new URLSearchParams(location.hash.split('?')[1] || '');
  // `text` with each occurrence of `q` marked (case-insensitive).
  function marked(text, q) {
    if (!q) return [text];
    const out = [];
    const low = text.toLowerCase();
    const ql = q.toLowerCase();
    let i = 0;
    for (;;) {
      const j = low.indexOf(ql, i);
      if (j < 0) break;
      if (j > i) out.push(text.slice(i, j));
      out.push(h('mark', {}, text.slice(j, j + q.length)));
      i = j + q.length;
    }
    out.push(text.slice(i));
    return out;
  }

  // Operators worth offering in a select: the registry's and those with messages in the report.
  async function operatorNames() {
    const [ops, rep] = await Promise.all([api('GET', '/v1/operators', undefined, { quiet: true }), api('GET', '/v1/conversations/report', undefined, { quiet: true })]);
    const names = new Set();
    ((ops.ok && ops.data && ops.data.operators) || []).forEach((o) => { if (o.login) names.add(o.login); });
    ((rep.ok && rep.data && rep.data.operators) || []).forEach((o) => { if (o.operator) names.add(o.operator); });
    const me = ui.me && ui.me();
    if (me && me.login && me.role !== 'analyst') names.add(me.login);
    return [...names].sort();
  }

  // ---------- the archive ----------
  // The filters outlive a render (a language switch); the address may set them.
  const af = { q: '', operator: '', person: '', flagged: false, from: '', to: '', kind: 'message' };

  // The filters as a query (the address and the API share it).
  function filterParams(x) {
    const p = new URLSearchParams();
    for (const k of ['q', 'operator', 'person', 'from', 'to']) if (x[k]) p.set(k, x[k]);
    if (x.flagged) p.set('flagged', 'true');
    if (x.kind && x.kind !== 'message') p.set('kind', x.kind);
    return p;
  }

  async function archive(main) {
    const hp = hashParams();
    if ([...hp.keys()].length) {
      Object.assign(af, { q: '', operator: '', person: '', flagged: false, from: '', to: '', kind: 'message' });
      for (const k of ['q', 'operator', 'person', 'from', 'to', 'kind']) if (hp.get(k)) af[k] = hp.get(k);
      af.flagged = hp.get('flagged') === 'true';
    }
    const [names, settings] = await Promise.all([operatorNames(), api('GET', '/v1/conversations/settings', undefined, { quiet: true })]);
    if (af.operator && !names.includes(af.operator)) names.push(af.operator);
    const qIn = h('input', { type: 'search', id: 'archive-q', value: af.q, placeholder: t('cp.q'), 'aria-label': t('cp.q'), autocomplete: 'off', maxlength: 200 });
    const opSel = h('select', { id: 'archive-operator', 'aria-label': t('cp.operator') }, h('option', { value: '' }, t('cp.any_operator')),
      names.map((n) => h('option', { value: n, selected: n === af.operator }, n)));
    const personIn = h('input', { id: 'archive-person', value: af.person, placeholder: t('cp.person'), 'aria-label': t('cp.person'), spellcheck: 'false', size: 18 });
    const flagIn = h('input', { type: 'checkbox', id: 'archive-flagged', checked: af.flagged });
    const fromIn = h('input', { type: 'date', id: 'archive-from', value: af.from, 'aria-label': t('cp.from') });
    const toIn = h('input', { type: 'date', id: 'archive-to', value: af.to, 'aria-label': t('cp.to') });
    const kindSel = h('select', { id: 'archive-kind', 'aria-label': 'kind' }, ['message', 'resolution'].map((k) => h('option', { value: k, selected: af.kind === k }, t('cp.kind.' + k))));
    const status = h('div', { id: 'archive-status' });
    const countEl = h('span', { class: 'muted small', id: 'archive-count' });
    const tbody = h('tbody', { id: 'archive-rows' });
    const respHead = h('th', { class: 'num' });
    const table = h('table', { class: 'list archive', id: 'archive-table' },
      h('colgroup', {}, h('col', { class: 'c-time' }), h('col', { class: 'c-op' }), h('col', { class: 'c-cust' }), h('col', { class: 'c-ch' }), h('col', {}), h('col', { class: 'c-resp' })),
      h('thead', {}, h('tr', {}, h('th', {}, t('cp.col.time')), h('th', {}, t('cp.col.operator')), h('th', {}, t('cp.col.customer')), h('th', {}, t('cp.col.channel')), h('th', {}, t('cp.col.text')), respHead)),
      tbody);
    const more = h('button', { type: 'button', id: 'archive-more', hidden: true, onclick: () => load(true) }, t('cp.older'));
    let cursor = null;
    let shown = 0;
    let seq = 0;
    let asked = Object.assign({}, af);
    const box = h('section', { class: 'card', id: 'archive' });

    function query(older) {
      const q = filterParams(asked);
      q.set('limit', String(PAGE));
      if (older && cursor) q.set('before', cursor);
      return q;
    }

    function row(m) {
      const flags = (m.sensitive || []).map((s) => h('span', { class: 'badge flag', 'data-rule': s.id, title: s.id }, '⚑ ' + (s.category || s.id)));
      const resolution = m.kind === 'resolution';
      return h('tr', { 'data-key': m.key, 'data-operator': m.operator, 'data-kind': m.kind, class: flags.length ? 'flagged' : null },
        h('td', { class: 'nowrap small' }, timeEl(m.ts)),
        h('td', { class: 'op' }, m.operator),
        h('td', { class: 'cust' }, h('a', { href: '#/inbox/' + enc(m.identity), title: m.identity, class: 'person-link' }, showId(m.identity))),
        h('td', {}, chBadge(m.channel)),
        h('td', { class: 'text' }, resolution && !m.text ? h('span', { class: 'muted' }, t('cp.resolved')) : h('span', { class: 'ar-text' }, marked(m.text || '', asked.q)),
          flags.length ? h('div', { class: 'ar-flags' }, flags) : null),
        h('td', { class: 'num nowrap' }, typeof m.response_secs === 'number' ? dur(m.response_secs) : h('span', { class: 'muted small' }, resolution ? '—' : t('cp.no_wait'))));
    }

    async function load(older) {
      const mine = ++seq;
      if (!older) { cursor = null; shown = 0; }
      more.disabled = true;
      const r = await api('GET', '/v1/conversations/archive?' + query(older));
      if (mine !== seq || !main.isConnected) return;
      // What is shown answers this search (a test waits for it).
      box.dataset.asked = filterParams(asked).toString();
      more.disabled = false;
      respHead.textContent = t(asked.kind === 'resolution' ? 'cp.col.open_for' : 'cp.col.response');
      if (!r.ok) {
        status.replaceChildren(h('p', { class: 'error', id: 'archive-error', role: 'alert' }, msgOf(r)));
        if (!older) { tbody.replaceChildren(); countEl.textContent = ''; more.hidden = true; table.hidden = true; }
        return;
      }
      status.replaceChildren();
      const msgs = r.data.messages || [];
      cursor = r.data.cursor || null;
      shown += msgs.length;
      if (older) tbody.append(...msgs.map(row)); else tbody.replaceChildren(...msgs.map(row));
      table.hidden = !shown;
      if (!shown) status.replaceChildren(h('div', { class: 'empty', id: 'archive-empty' }, h('p', {}, t('cp.empty')), h('p', { class: 'small' }, t('cp.empty_hint'))));
      more.hidden = !cursor;
      countEl.textContent = cursor ? t('cp.shown', { n: shown }) : t('cp.shown_all', { n: shown });
      performance.mark('inbox:archive');
    }

    const form = h('form', { class: 'search archive-filters', id: 'archive-form', onsubmit: (e) => {
      e.preventDefault();
      Object.assign(af, { q: qIn.value.trim(), operator: opSel.value, person: personIn.value.trim(), flagged: flagIn.checked, from: fromIn.value, to: toIn.value, kind: kindSel.value });
      asked = Object.assign({}, af);
      // The address names the search (a reload or a link shows the same).
      const p = filterParams(af);
      const hash = '#/inbox-archive' + (p.toString() ? '?' + p : '');
      if (location.hash !== hash) history.replaceState(null, '', hash);
      load(false);
    } },
    qIn, opSel, personIn,
    h('label', { class: 'check inline' }, flagIn, ' ', t('cp.flagged')),
    h('span', { class: 'range' }, t('cp.from'), ' ', fromIn, ' ', t('cp.to'), ' ', toIn),
    kindSel,
    h('button', { type: 'submit', class: 'primary', id: 'archive-search' }, t('cp.search')),
    h('button', { type: 'button', class: 'link', id: 'archive-clear', onclick: () => {
      qIn.value = ''; opSel.value = ''; personIn.value = ''; flagIn.checked = false; fromIn.value = ''; toIn.value = ''; kindSel.value = 'message';
      form.requestSubmit();
    } }, t('cp.clear')));
    // The checkbox and the selects search at once.
    [opSel, flagIn, kindSel].forEach((el) => el.addEventListener('change', () => form.requestSubmit()));

    const sd = settings.ok ? settings.data : null;
    const keep = sd ? (sd.archive_retention_days ? t('cp.retention', { n: sd.archive_retention_days }) : t('cp.retention_forever')) : '';
    main.replaceChildren(head('archive'), box);
    box.append(
      h('p', { class: 'muted small' }, t('cp.archive_help', { tz: zone.tz() }), keep ? ' · ' : null, keep ? h('a', { href: '#/inbox-settings', id: 'archive-retention' }, keep) : null),
      form,
      h('div', { class: 'ib-list-head' }, countEl),
      status,
      h('div', { class: 'scroll' }, table),
      h('div', { class: 'actions' }, more));
    await load(false);
  }

  // ---------- the report ----------
  const rf = { from: '', to: '' };

  async function report(main) {
    const hp = hashParams();
    if (hp.get('from')) rf.from = hp.get('from');
    if (hp.get('to')) rf.to = hp.get('to');
    // Default: the last 30 days, today included.
    if (!rf.from && !rf.to) { rf.to = localDay(Date.now()); rf.from = localDay(Date.now() - 29 * 86400_000); }
    const fromIn = h('input', { type: 'date', id: 'report-from', value: rf.from, 'aria-label': t('cp.from') });
    const toIn = h('input', { type: 'date', id: 'report-to', value: rf.to, 'aria-label': t('cp.to') });
    const form = h('form', { class: 'search range report-range', id: 'report-form', onsubmit: (e) => {
      e.preventDefault();
      rf.from = fromIn.value;
      rf.to = toIn.value;
      const p = new URLSearchParams();
      if (rf.from) p.set('from', rf.from);
      if (rf.to) p.set('to', rf.to);
      history.replaceState(null, '', '#/inbox-report' + (p.toString() ? '?' + p : ''));
      ui.render();
    } },
      h('label', {}, t('cp.from'), ' ', fromIn), h('label', {}, t('cp.to'), ' ', toIn),
      h('button', { type: 'submit', class: 'primary', id: 'report-apply' }, t('cp.r.apply')));
    const q = new URLSearchParams();
    if (rf.from) q.set('from', rf.from);
    if (rf.to) q.set('to', rf.to);
    const r = await api('GET', '/v1/conversations/report?' + q);
    if (!main.isConnected) return;
    if (!r.ok) {
      main.replaceChildren(head('report'), h('section', { class: 'card' }, form, h('p', { class: 'error', id: 'report-error', role: 'alert' }, msgOf(r))));
      return;
    }
    const d = r.data;
    const ops = d.operators || [];
    // The range asked, as local days (`to` is exclusive: its day before).
    const caption = t('cp.r.caption', { tz: zone.tz(), from: d.from ? localDay(d.from * 1000) : '…', to: d.to ? localDay(d.to * 1000 - 1000) : localDay(Date.now()) });
    const archiveLink = (extra) => {
      const p = new URLSearchParams(extra);
      if (rf.from) p.set('from', rf.from);
      if (rf.to) p.set('to', rf.to);
      return '#/inbox-archive?' + p;
    };
    const COLS = [
      ['messages', (o) => C.fmt(o.messages)],
      ['persons', (o) => C.fmt(o.persons)],
      ['first_responses', (o) => C.fmt(o.first_responses)],
      ['first_median', (o) => dur(o.first_response_median_secs)],
      ['first_p90', (o) => dur(o.first_response_p90_secs)],
      ['resolved', (o) => C.fmt(o.resolved)],
      ['resolution_median', (o) => dur(o.resolution_median_secs)],
      ['sensitive', (o) => (o.sensitive_hits ? h('a', { href: archiveLink({ operator: o.operator, flagged: 'true' }), class: 'badge flag' }, C.fmt(o.sensitive_hits)) : '0')],
      ['unanswered', (o) => (o.unanswered_now ? h('span', { class: 'badge ib-waiting' }, C.fmt(o.unanswered_now)) : '0')],
    ];
    const rows = ops.map((o) => h('tr', { 'data-operator': o.operator },
      h('td', { class: 'op' }, h('a', { href: archiveLink({ operator: o.operator }) }, o.operator)),
      COLS.map(([k, f]) => h('td', { class: 'num', 'data-col': k }, f(o)))));
    const sum = (k) => ops.reduce((a, o) => a + (o[k] || 0), 0);
    const totals = { messages: sum('messages'), first_responses: sum('first_responses'), resolved: sum('resolved'), sensitive: sum('sensitive_hits'), unanswered: sum('unanswered_now') };
    const table = ops.length ? h('div', { class: 'scroll' }, h('table', { class: 'list report', id: 'report-table' },
      h('thead', {}, h('tr', {}, h('th', {}, t('cp.r.col.operator')), COLS.map(([k]) => h('th', { class: 'num' }, t('cp.r.col.' + k))))),
      h('tbody', {}, rows),
      h('tfoot', {}, h('tr', { id: 'report-total' }, h('th', {}, t('cp.r.total')),
        COLS.map(([k]) => h('th', { class: 'num', 'data-col': k }, k in totals ? C.fmt(totals[k]) : ''))))))
      : h('div', { class: 'empty', id: 'report-empty' }, h('p', {}, t('cp.r.empty')));
    const timed = ops.filter((o) => typeof o.first_response_median_secs === 'number');
    const chart = timed.length
      ? C.bars(timed.map((o) => ({ label: o.operator, value: o.first_response_median_secs, text: dur(o.first_response_median_secs) })), { title: t('cp.r.chart'), width: 640, labelW: 130 })
      : h('p', { class: 'muted', id: 'report-no-chart' }, t('cp.r.no_chart'));
    main.replaceChildren(head('report'),
      h('section', { class: 'card' }, h('h2', {}, t('cp.r.title')), form,
        h('p', { class: 'muted small', id: 'report-caption' }, caption),
        table,
        h('p', { class: 'muted small' }, t('cp.r.help'))),
      h('section', { class: 'card' }, h('h2', {}, t('cp.r.chart')), h('div', { id: 'report-chart', class: 'report-chart' }, chart)));
    performance.mark('inbox:report');
  }

  // ---------- the settings ----------
  async function settingsPage(main) {
    const [sr, wr] = await Promise.all([api('GET', '/v1/conversations/settings'), api('GET', '/v1/sensitive-words')]);
    if (!main.isConnected) return;
    if (!sr.ok) { main.replaceChildren(head('settings'), h('p', { class: 'error' }, msgOf(sr))); return; }
    main.replaceChildren(head('settings'), h('div', { class: 'grid2' }, settingsCard(sr.data), wordsCard(wr)));
  }

  function settingsCard(s) {
    const fieldErr = (id) => h('p', { class: 'error field-error', id, role: 'alert', hidden: true });
    const alertIn = h('input', { type: 'number', id: 'cs-alert', min: 0, step: 1, required: true, value: String(s.unanswered_alert_minutes), 'data-write': true });
    const keepIn = h('input', { type: 'number', id: 'cs-retention', min: 0, step: 1, required: true, value: String(s.archive_retention_days), 'data-write': true });
    const alertErr = fieldErr('cs-alert-error');
    const keepErr = fieldErr('cs-retention-error');
    const winErr = fieldErr('cs-windows-error');
    const formErr = h('div', { id: 'cs-error' });
    const rowsBox = h('tbody', { id: 'cs-windows' });
    const noRows = h('p', { class: 'muted small', id: 'cs-no-windows' }, t('cp.s.no_windows'));
    const sync = () => { noRows.hidden = rowsBox.children.length > 0; };
    function windowRow(ch, hours) {
      const chIn = h('input', { class: 'cs-channel', value: ch, list: 'cs-channels', placeholder: t('cp.s.channel'), 'aria-label': t('cp.s.channel'), spellcheck: 'false', 'data-write': true, size: 14 });
      const hIn = h('input', { type: 'number', class: 'cs-hours', min: 0, step: 1, required: true, value: hours === '' ? '' : String(hours), 'aria-label': t('cp.s.hours'), 'data-write': true });
      const name = h('span', { class: 'muted small cs-name' }, I18N.channel(ch) !== ch ? I18N.channel(ch) : '');
      chIn.addEventListener('input', () => { const v = chIn.value.trim(); name.textContent = v && I18N.channel(v) !== v ? I18N.channel(v) : ''; });
      const err = h('div', { class: 'error small cs-row-error', role: 'alert', hidden: true });
      const tr = h('tr', { 'data-channel': ch },
        h('td', {}, chIn, ' ', name, err),
        h('td', {}, hIn),
        h('td', {}, h('button', { type: 'button', class: 'link danger cs-remove', 'data-write': true, onclick: () => { tr.remove(); sync(); } }, t('cp.s.remove'))));
      tr.parts = { chIn, hIn, err };
      return tr;
    }
    const fill = (v) => {
      alertIn.value = String(v.unanswered_alert_minutes);
      keepIn.value = String(v.archive_retention_days);
      rowsBox.replaceChildren(...Object.entries(v.service_windows || {}).map(([c, n]) => windowRow(c, n)));
      sync();
    };
    fill(s);
    const clearErrors = () => {
      [alertErr, keepErr, winErr].forEach((e) => { e.hidden = true; e.textContent = ''; });
      formErr.replaceChildren();
      form.querySelectorAll('.invalid').forEach((e) => { e.classList.remove('invalid'); e.removeAttribute('aria-invalid'); });
      rowsBox.querySelectorAll('.cs-row-error').forEach((e) => { e.hidden = true; e.textContent = ''; });
    };
    const flag = (input, errEl, text) => {
      if (input) { input.classList.add('invalid'); input.setAttribute('aria-invalid', 'true'); }
      errEl.textContent = text;
      errEl.hidden = false;
      if (input) input.focus();
    };
    // A 422 "field: message" → under the field it names.
    function showFault(message) {
      const m = /^([^\s:]+):\s*([\s\S]*)$/.exec(message);
      const field = m ? m[1] : '';
      if (field === 'unanswered_alert_minutes') return flag(alertIn, alertErr, message);
      if (field === 'archive_retention_days') return flag(keepIn, keepErr, message);
      if (field.startsWith('service_windows.')) {
        const ch = field.slice('service_windows.'.length);
        const tr = [...rowsBox.children].find((x) => x.parts.chIn.value.trim() === ch);
        if (tr) { tr.parts.hIn.classList.add('invalid'); tr.parts.chIn.classList.add('invalid'); return flag(tr.parts.hIn, tr.parts.err, message); }
      }
      if (field.startsWith('service_windows')) return flag(null, winErr, message);
      formErr.replaceChildren(faults('cs-fault', message));
      return null;
    }
    const save = h('button', { type: 'submit', class: 'primary', id: 'cs-save', 'data-write': true }, t('cp.s.save'));
    const form = h('form', { class: 'editor cs-form', id: 'cs-form', novalidate: false, onsubmit: async (e) => {
      e.preventDefault();
      clearErrors();
      const windows = {};
      for (const tr of rowsBox.children) {
        const { chIn, hIn, err } = tr.parts;
        const c = chIn.value.trim();
        if (!c) { flag(chIn, err, t('cp.s.no_channel')); return; }
        if (c in windows) { flag(chIn, err, t('cp.s.dup', { c })); return; }
        windows[c] = Number(hIn.value);
      }
      const body = { unanswered_alert_minutes: Number(alertIn.value), archive_retention_days: Number(keepIn.value), service_windows: windows };
      save.disabled = true;
      const r = await api('PUT', '/v1/conversations/settings', body);
      save.disabled = false;
      if (r.ok) {
        fill(r.data);
        ui.applyRole(form);
        formErr.replaceChildren(h('p', { class: 'good', id: 'cs-saved' }, t('cp.s.saved')));
        toast(t('cp.s.saved'), 'good');
      } else if (r.status !== 403) showFault(msgOf(r));
    } },
    h('label', {}, t('cp.s.alert'), alertIn, h('span', { class: 'small muted' }, t('cp.s.alert_help')), alertErr),
    h('label', {}, t('cp.s.retention'), keepIn, h('span', { class: 'small muted' }, t('cp.s.retention_help')), keepErr),
    h('div', { class: 'cs-windows' }, h('h3', {}, t('cp.s.windows')), h('p', { class: 'small muted' }, t('cp.s.windows_help')),
      h('table', { class: 'list' }, h('thead', {}, h('tr', {}, h('th', {}, t('cp.s.channel')), h('th', {}, t('cp.s.hours')), h('th', {}))), rowsBox),
      noRows, winErr,
      h('datalist', { id: 'cs-channels' }, CHANNELS.map((c) => h('option', { value: c }, I18N.channel(c)))),
      h('button', { type: 'button', id: 'cs-add', 'data-write': true, onclick: () => { const tr = windowRow('', 48); rowsBox.append(tr); sync(); tr.parts.chIn.focus(); } }, t('cp.s.add'))),
    formErr,
    h('div', { class: 'actions' }, save));
    return card(t('cp.s.title'), form);
  }

  function wordsCard(wr) {
    if (!wr.ok) return card(t('cp.w.title'), h('p', { class: 'error' }, msgOf(wr)));
    const rules = wr.data.rules || [];
    const matcher = (m) => {
      if (!m || typeof m !== 'object') return '';
      if (m.contains !== undefined) return m.contains;
      if (m.any_of) return m.any_of.join(' / ');
      if (m.regex !== undefined) return '/' + m.regex + '/';
      return JSON.stringify(m);
    };
    const table = rules.length ? h('table', { class: 'list', id: 'words-table' },
      h('thead', {}, h('tr', {}, ['id', 'matcher', 'applies', 'category'].map((k) => h('th', {}, t('cp.w.col.' + k))))),
      h('tbody', {}, rules.map((r) => h('tr', { 'data-rule': r.id, class: r.enabled === false ? 'muted' : null },
        h('td', {}, h('code', {}, r.id), r.enabled === false ? h('span', { class: 'badge' }, ' ' + t('cp.w.off')) : null),
        h('td', { class: 'wrap' }, matcher(r.matcher)),
        h('td', {}, t('cp.w.applies.' + (r.applies_to || 'both'))),
        h('td', {}, r.category ? h('span', { class: 'badge flag' }, r.category) : '')))))
      : h('p', { class: 'muted', id: 'words-none' }, t('cp.w.none'));
    const src = h('textarea', { id: 'words-json', rows: 8, spellcheck: 'false', 'data-write': true });
    src.value = JSON.stringify({ rules }, null, 2);
    const out = h('div', { id: 'words-result' });
    const form = h('form', { class: 'editor', onsubmit: async (e) => {
      e.preventDefault();
      let body;
      try { body = JSON.parse(src.value); } catch (err) { out.replaceChildren(h('p', { class: 'error' }, err.message)); return; }
      const r = await api('PUT', '/v1/sensitive-words', body);
      if (r.ok) { toast(t('cp.w.saved', { n: (r.data.rules || []).length }), 'good'); ui.render(); } else if (r.status !== 403) out.replaceChildren(faults('words-fault', msgOf(r), src.value));
    } }, h('p', { class: 'small muted' }, t('cp.w.help')), src, out,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', id: 'words-save', 'data-write': true }, t('cp.w.save'))));
    return card(t('cp.w.title') + ' · ' + t('cp.w.count', { n: rules.length }), table, form);
  }

  return { tabs, pages: { 'inbox-archive': archive, 'inbox-report': report, 'inbox-settings': settingsPage } };
};
