// siyu console: the channel pages (/v1/channels) — one card per channel
// on #/channels and a page per channel on #/channels/<name>: its health
// and what makes it, the callback URLs to enter in the platform's console
// with the last accepted and refused callback, the access token (with a
// "check now"), the WeCom sync's progress (started here, followed live)
// and the dispatcher's counters. Nothing here shows a secret: the server
// never sends one. Strings are registered with I18N.add beside the page.
'use strict';
window.I18N.add({
  'zh-CN': {
    'nav.channels': '渠道',
    'ch.title': '渠道状态',
    'ch.intro': '每个渠道的配置、回调、令牌和同步情况。配置写在 TOML 文件中（密钥不会在这里显示）。',
    'ch.details': '详情',
    'ch.back': '← 全部渠道',
    'ch.health.ok': '正常',
    'ch.health.attention': '需关注',
    'ch.health.error': '异常',
    'ch.health.not_configured': '未配置',
    'ch.problems': '待处理',
    'ch.no_problems': '一切正常。',
    'ch.problem.token_failing': '获取 access_token 失败：{detail}。请检查 corp_id / app_id、secret 和 IP 白名单。',
    'ch.problem.callback_rejected': '最近一次回调被拒绝：{detail}',
    'ch.problem.callbacks_not_configured': '未配置回调，收不到加好友、删除、入群和消息事件：{detail}',
    'ch.problem.dead_letters': '{detail} 条消息发送失败进入死信（见消息页）。',
    'ch.problem.sync_failed': '同步失败：{detail}。重新开始同步会从断点继续。',
    'ch.callbacks': '回调地址',
    'ch.callback_help': '把这个地址填到平台后台（企业微信「接收事件服务器」、公众号「服务器配置」、腾讯云短信回调）。',
    'ch.kind.events': '事件',
    'ch.kind.status': '状态回执',
    'ch.kind.reply': '短信回复',
    'ch.copy': '复制',
    'ch.copied': '已复制',
    'ch.accepted': '已接收',
    'ch.rejected': '已拒绝',
    'ch.last_accepted': '最近接收',
    'ch.last_rejected': '最近拒绝',
    'ch.never': '从未',
    'ch.no_callbacks': '这个渠道没有回调地址。',
    'ch.token': 'access_token',
    'ch.token.not_fetched': '尚未获取',
    'ch.token.valid': '有效',
    'ch.token.expired': '已过期（下次调用时刷新）',
    'ch.token.failing': '获取失败',
    'ch.fetched_at': '获取时间',
    'ch.expires_at': '有效至',
    'ch.fetches': '获取次数',
    'ch.stale_answers': '失效应答（40001/40014/42001）',
    'ch.last_error': '最近错误',
    'ch.check': '立即检查',
    'ch.checked': '已检查：{state}',
    'ch.sync': '企业微信同步',
    'ch.sync_none': '尚未同步。同步会导入所有成员的存量客户、企业标签和客户群（作为历史，不会触发任何消息）。',
    'ch.sync_start': '开始同步',
    'ch.sync_restart': '从头重新同步',
    'ch.sync_started': '已开始同步',
    'ch.sync.status.requested': '已请求',
    'ch.sync.status.running': '同步中',
    'ch.sync.status.done': '已完成',
    'ch.sync.status.failed': '失败',
    'ch.sync.phase': '阶段',
    'ch.sync.operators': '成员',
    'ch.sync.contacts': '客户',
    'ch.sync.groups': '客户群',
    'ch.sync.events': '写入事件',
    'ch.sync.started_at': '开始',
    'ch.sync.finished_at': '结束',
    'ch.sync.errors': '错误',
    'ch.outbound': '发送',
    'ch.settings': '配置（不含密钥）',
    'ch.configure': '配置项：',
    'ch.not_configured_help': '这个渠道还没有配置。在 TOML 配置文件中加入：',
    'ch.ago_s': '{n} 秒前',
    'ch.ago_m': '{n} 分钟前',
    'ch.ago_h': '{n} 小时前',
    'ch.ago_d': '{n} 天前',
  },
  en: {
    'nav.channels': 'Channels',
    'ch.title': 'Channel status',
    'ch.intro': 'Each channel\'s configuration, callbacks, token and sync. Configure them in the TOML file (secrets are never shown here).',
    'ch.details': 'Details',
    'ch.back': '← All channels',
    'ch.health.ok': 'OK',
    'ch.health.attention': 'Attention',
    'ch.health.error': 'Error',
    'ch.health.not_configured': 'Not configured',
    'ch.problems': 'To look at',
    'ch.no_problems': 'All good.',
    'ch.problem.token_failing': 'Fetching the access_token failed: {detail}. Check corp_id / app_id, secret and the IP whitelist.',
    'ch.problem.callback_rejected': 'The last callback was refused: {detail}',
    'ch.problem.callbacks_not_configured': 'Callbacks are not set up, so friend adds, deletions, group joins and messages do not arrive: {detail}',
    'ch.problem.dead_letters': '{detail} messages failed and were dead-lettered (see Messages).',
    'ch.problem.sync_failed': 'The sync failed: {detail}. Starting it again resumes from its checkpoint.',
    'ch.callbacks': 'Callback URLs',
    'ch.callback_help': 'Enter this URL in the platform\'s console (WeCom 接收事件服务器, Official Account 服务器配置, Tencent Cloud SMS callbacks).',
    'ch.kind.events': 'Events',
    'ch.kind.status': 'Delivery receipts',
    'ch.kind.reply': 'SMS replies',
    'ch.copy': 'Copy',
    'ch.copied': 'Copied',
    'ch.accepted': 'Accepted',
    'ch.rejected': 'Refused',
    'ch.last_accepted': 'Last accepted',
    'ch.last_rejected': 'Last refused',
    'ch.never': 'never',
    'ch.no_callbacks': 'This channel has no callback URL.',
    'ch.token': 'Access token',
    'ch.token.not_fetched': 'Not fetched yet',
    'ch.token.valid': 'Valid',
    'ch.token.expired': 'Expired (refreshed on the next call)',
    'ch.token.failing': 'Failing',
    'ch.fetched_at': 'Fetched',
    'ch.expires_at': 'Valid until',
    'ch.fetches': 'Fetches',
    'ch.stale_answers': 'Stale-token answers (40001/40014/42001)',
    'ch.last_error': 'Last error',
    'ch.check': 'Check now',
    'ch.checked': 'Checked: {state}',
    'ch.sync': 'WeCom sync',
    'ch.sync_none': 'No sync yet. A sync imports every member\'s existing customers, the corp tags and the customer groups (as history: it triggers no message).',
    'ch.sync_start': 'Start sync',
    'ch.sync_restart': 'Restart from scratch',
    'ch.sync_started': 'Sync started',
    'ch.sync.status.requested': 'Requested',
    'ch.sync.status.running': 'Running',
    'ch.sync.status.done': 'Done',
    'ch.sync.status.failed': 'Failed',
    'ch.sync.phase': 'Phase',
    'ch.sync.operators': 'Members',
    'ch.sync.contacts': 'Customers',
    'ch.sync.groups': 'Groups',
    'ch.sync.events': 'Events stored',
    'ch.sync.started_at': 'Started',
    'ch.sync.finished_at': 'Finished',
    'ch.sync.errors': 'Errors',
    'ch.outbound': 'Sending',
    'ch.settings': 'Settings (no secrets)',
    'ch.configure': 'Configured by: ',
    'ch.not_configured_help': 'This channel is not configured yet. Add to the TOML configuration file:',
    'ch.ago_s': '{n} s ago',
    'ch.ago_m': '{n} min ago',
    'ch.ago_h': '{n} h ago',
    'ch.ago_d': '{n} days ago',
  },
});

window.ChannelPages = function (ui) {
  const { h, api, card, toast, enc, msgOf, when, render } = ui;
  const { t } = window.I18N;
  const C = window.Charts;

  const healthBadge = (health) => h('span', { class: 'badge health-' + health, 'data-health': health }, t('ch.health.' + health));
  // "3 min ago" beside the local time (the tooltip has both).
  function ago(secs) {
    if (typeof secs !== 'number' || !secs) return h('span', { class: 'muted' }, t('ch.never'));
    const d = Math.max(0, Math.floor(Date.now() / 1000) - secs);
    const rel = d < 60 ? t('ch.ago_s', { n: d }) : d < 3600 ? t('ch.ago_m', { n: Math.floor(d / 60) })
      : d < 86400 ? t('ch.ago_h', { n: Math.floor(d / 3600) }) : t('ch.ago_d', { n: Math.floor(d / 86400) });
    return h('span', { title: when(secs) }, rel, ' ', h('span', { class: 'muted small' }, '(' + when(secs) + ')'));
  }
  const problemText = (p) => t('ch.problem.' + p.code, { detail: p.detail });
  const problems = (s) => (s.problems.length
    ? h('ul', { class: 'problems' }, s.problems.map((p) => h('li', { class: 'problem health-' + p.health, 'data-problem': p.code }, problemText(p))))
    : h('p', { class: 'good' }, t('ch.no_problems')));
  const lastCallback = (s) => s.callbacks.reduce((m, c) => Math.max(m, c.last_accepted_at || 0), 0) || null;
  const sum = (o, k) => Object.values(o || {}).reduce((n, c) => n + (c[k] || 0), 0);

  // ---------- #/channels: every channel as a card ----------
  async function list(main) {
    const r = await api('GET', '/v1/channels');
    if (!r.ok) { main.replaceChildren(h('h1', {}, t('ch.title')), h('p', { class: 'error' }, msgOf(r))); return; }
    const cards = r.data.channels.map((s) => h('a', { class: 'card channel-card', href: '#/channels/' + enc(s.channel), 'data-channel': s.channel },
      h('div', { class: 'channel-head' }, h('h2', {}, I18N.channel(s.channel)), healthBadge(s.health)),
      s.configured ? h('dl', { class: 'facts' },
        s.callbacks.length ? [h('dt', {}, t('ch.last_accepted')), h('dd', {}, ago(lastCallback(s)))] : null,
        s.token ? [h('dt', {}, t('ch.token')), h('dd', {}, t('ch.token.' + s.token.state))] : null,
        Object.keys(s.outbound).length ? [h('dt', {}, t('set.delivered')), h('dd', {}, C.fmt(sum(s.outbound, 'delivered')))] : null,
        s.sync ? [h('dt', {}, t('ch.sync')), h('dd', {}, t('ch.sync.status.' + s.sync.status))] : null)
        : h('p', { class: 'muted small' }, h('code', {}, s.configure)),
      s.problems.length ? h('p', { class: 'small problem-line health-' + s.problems[0].health }, problemText(s.problems[0])) : null));
    main.replaceChildren(h('h1', {}, t('ch.title')), h('p', { class: 'muted' }, t('ch.intro')),
      h('div', { class: 'channel-grid', id: 'channel-grid' }, cards));
  }

  // ---------- #/channels/<name>: one channel ----------
  async function detail(main, name) {
    const r = await api('GET', '/v1/channels/' + enc(name));
    if (!r.ok) { main.replaceChildren(h('p', {}, h('a', { href: '#/channels' }, t('ch.back'))), h('p', { class: 'error' }, msgOf(r))); return; }
    const s = r.data;
    const sections = [];
    sections.push(card(t('ch.problems'), problems(s)));
    if (!s.configured) {
      sections.push(card(t('ch.settings'), h('p', {}, t('ch.not_configured_help')), h('pre', { class: 'hint', id: 'channel-configure' }, s.configure)));
    }
    sections.push(card(t('ch.callbacks'), s.callbacks.length ? [h('p', { class: 'muted small' }, t('ch.callback_help')), ...s.callbacks.map(callbackBlock)]
      : h('p', { class: 'muted' }, t('ch.no_callbacks'))));
    if (s.token) sections.push(tokenCard(s));
    if (s.channel === 'wecom' && s.configured) sections.push(syncCard(s.sync));
    if (Object.keys(s.outbound).length) sections.push(outboundCard(s.outbound));
    if (s.configured) {
      sections.push(card(t('ch.settings'),
        h('table', { class: 'list', id: 'channel-settings' }, h('tbody', {}, Object.entries(s.settings).map(([k, v]) => h('tr', {}, h('td', {}, h('code', {}, k)), h('td', { class: 'wrap' }, v))))),
        h('p', { class: 'muted small' }, t('ch.configure'), h('code', {}, s.configure))));
    }
    main.replaceChildren(h('p', {}, h('a', { href: '#/channels' }, t('ch.back'))),
      h('div', { class: 'channel-title' }, h('h1', {}, I18N.channel(s.channel)), healthBadge(s.health)),
      h('div', { class: 'grid2', id: 'channel-detail', 'data-channel': s.channel }, sections));
    followSync(main, s);
  }

  function callbackBlock(c) {
    const url = h('code', { class: 'callback-url' }, c.url);
    const copy = h('button', { type: 'button', class: 'link', onclick: async () => {
      try { await navigator.clipboard.writeText(c.url); toast(t('ch.copied'), 'good'); } catch (e) { window.getSelection().selectAllChildren(url); }
    } }, t('ch.copy'));
    return h('div', { class: 'callback', 'data-kind': c.kind },
      h('p', {}, h('strong', {}, t('ch.kind.' + c.kind)), ' ', url, ' ', copy),
      h('dl', { class: 'facts' },
        h('dt', {}, t('ch.accepted')), h('dd', { 'data-count': 'accepted' }, C.fmt(c.accepted)),
        h('dt', {}, t('ch.last_accepted')), h('dd', { class: 'last-accepted' }, ago(c.last_accepted_at), c.last_kind ? h('div', { class: 'muted small' }, c.last_kind) : null),
        h('dt', {}, t('ch.rejected')), h('dd', { 'data-count': 'rejected' }, C.fmt(c.rejected)),
        h('dt', {}, t('ch.last_rejected')), h('dd', { class: 'last-rejected' }, ago(c.last_rejected_at), c.last_rejection ? h('div', { class: 'small bad wrap' }, c.last_rejection) : null)));
  }

  function tokenCard(s) {
    const tk = s.token;
    const check = h('button', { type: 'button', class: 'primary', id: 'token-check', 'data-write': true, onclick: async () => {
      check.disabled = true;
      const r = await api('POST', '/v1/channels/' + enc(s.channel) + '/check');
      if (r.ok) toast(t('ch.checked', { state: t('ch.token.' + r.data.token.state) }), r.data.token.state === 'valid' ? 'good' : 'error');
      else if (r.status !== 403) toast(msgOf(r), 'error');
      render();
    } }, t('ch.check'));
    return card(t('ch.token'),
      h('p', {}, h('span', { class: 'badge token-' + tk.state, id: 'token-state', 'data-state': tk.state }, t('ch.token.' + tk.state))),
      h('dl', { class: 'facts' },
        h('dt', {}, t('ch.fetched_at')), h('dd', {}, ago(tk.fetched_at)),
        h('dt', {}, t('ch.expires_at')), h('dd', {}, when(tk.expires_at)),
        h('dt', {}, t('ch.fetches')), h('dd', {}, C.fmt(tk.fetches)),
        h('dt', {}, t('ch.stale_answers')), h('dd', {}, C.fmt(tk.stale_answers)),
        tk.last_error ? [h('dt', {}, t('ch.last_error')), h('dd', { class: 'bad wrap', id: 'token-error' }, tk.last_error, ' ', ago(tk.last_error_at))] : null),
      h('div', { class: 'actions' }, check));
  }

  function syncCard(sync) {
    const start = (restart) => async () => {
      const r = await api('POST', '/v1/wecom/sync', restart ? { restart: true } : undefined);
      if (r.ok) { toast(t('ch.sync_started'), 'good'); render(); } else if (r.status !== 403) toast(msgOf(r), 'error');
    };
    const running = sync && (sync.status === 'requested' || sync.status === 'running');
    const buttons = h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'primary', id: 'sync-start', 'data-write': true, disabled: running, onclick: start(false) }, t('ch.sync_start')),
      sync ? h('button', { type: 'button', class: 'link', id: 'sync-restart', 'data-write': true, disabled: running, onclick: start(true) }, t('ch.sync_restart')) : null);
    if (!sync) return card(t('ch.sync'), h('p', { class: 'muted', id: 'sync-none' }, t('ch.sync_none')), buttons);
    const total = sync.operators_total || 0;
    const pct = total ? Math.round((100 * sync.operators_done) / total) : (sync.status === 'done' ? 100 : 0);
    return card(t('ch.sync'),
      h('p', {}, h('span', { class: 'badge sync-' + sync.status, id: 'sync-status', 'data-status': sync.status }, t('ch.sync.status.' + sync.status)),
        ' ', t('ch.sync.phase'), ' ', h('code', {}, sync.phase)),
      h('progress', { max: 100, value: pct, id: 'sync-progress', title: pct + '%' }),
      h('dl', { class: 'facts' },
        h('dt', {}, t('ch.sync.operators')), h('dd', {}, `${C.fmt(sync.operators_done)} / ${C.fmt(total)}`),
        h('dt', {}, t('ch.sync.contacts')), h('dd', { id: 'sync-contacts' }, C.fmt(sync.contacts)),
        h('dt', {}, t('ch.sync.groups')), h('dd', {}, C.fmt(sync.groups)),
        h('dt', {}, t('ch.sync.events')), h('dd', {}, C.fmt(sync.events_stored)),
        h('dt', {}, t('ch.sync.started_at')), h('dd', {}, when(sync.started_at)),
        h('dt', {}, t('ch.sync.finished_at')), h('dd', {}, when(sync.finished_at)),
        sync.errors.length ? [h('dt', {}, t('ch.sync.errors')), h('dd', { class: 'bad wrap' }, sync.errors.slice(-3).join('\n'))] : null),
      buttons);
  }

  // While a sync runs, its card is redrawn every 2 s (until the page changes).
  function followSync(main, s) {
    if (!s.sync || !(s.sync.status === 'requested' || s.sync.status === 'running')) return;
    const hash = location.hash;
    setTimeout(() => { if (location.hash === hash && main.isConnected) render(); }, 2000);
  }

  function outboundCard(outbound) {
    const keys = ['queued', 'in_flight', 'delivered', 'retried', 'dead'];
    return card(t('ch.outbound'), h('table', { class: 'list', id: 'channel-outbound' },
      h('thead', {}, h('tr', {}, h('th', {}, t('set.channel')), keys.map((k) => h('th', {}, t('set.' + k))))),
      h('tbody', {}, Object.entries(outbound).map(([ch, n]) => h('tr', {}, h('td', { title: ch }, I18N.channel(ch)), keys.map((k) => h('td', { class: 'num' }, C.fmt(n[k]))))))));
  }

  return { channels: (main, arg) => (arg ? detail(main, arg) : list(main)) };
};
