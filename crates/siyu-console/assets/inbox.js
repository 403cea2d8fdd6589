// siyu console: the operator inbox (会话, /v1/conversations) on #/inbox
// and #/inbox/<person> — the conversation list (filters, sort, paging),
// one thread (messages oldest first, the reply box with quick replies,
// assign / resolve / tag) and the customer's profile beside it. While the
// page is shown one EventSource on /v1/conversations/stream keeps the
// list and the open thread current (debounced, no reload). Opening a
// conversation changes the address with pushState, so the list stays
// where it was; back/forward (a hashchange) draws the page again.
// `performance.mark('inbox:list' | 'inbox:thread')` when each is drawn.
// Strings are registered with I18N.add beside the page.
'use strict';
window.I18N.add({
  'zh-CN': {
    'nav.inbox': '会话',
    'ib.title': '会话',
    'ib.f.all': '全部',
    'ib.f.unanswered': '未回复',
    'ib.f.mine': '我的',
    'ib.f.resolved': '已解决',
    'ib.any_channel': '全部渠道',
    'ib.tag': '标签',
    'ib.sort.recent': '最近消息',
    'ib.sort.waiting': '等待最久',
    'ib.total': '共 {n} 个会话',
    'ib.more': '加载更多',
    'ib.empty': '没有符合条件的会话。',
    'ib.waiting': '未回复 {n} · 等 {m}',
    'ib.resolved': '已解决',
    'ib.unassigned': '未分配',
    'ib.pick': '从左侧选择一个会话。',
    'ib.pick_stats': '列表中 {n} 个会话，{u} 个在等回复。',
    'ib.pick_longest': '等得最久：',
    'ib.pick_hint': '回复框里按 Ctrl+Enter 发送；新消息会实时出现，无需刷新。',
    'ib.older': '加载更早的消息',
    'ib.no_messages': '还没有消息。',
    'ib.auto': '自动回复',
    'ib.journey': '旅程',
    'ib.mass': '群发',
    'ib.automation': '自动化',
    'ib.st.pending': '发送中',
    'ib.st.suppressed': '未发送',
    'ib.st.dead': '发送失败',
    'ib.st.done': '已发送',
    'ib.ev.resolved': '{who} 标记为已解决',
    'ib.ev.assigned': '分配给 {who}',
    'ib.ev.other': '{kind}',
    'ib.sensitive': '敏感词：{c}',
    'ib.reply': '回复',
    'ib.reply_ph': '输入回复，Ctrl+Enter 发送',
    'ib.send': '发送',
    'ib.sent': '已发送',
    'ib.sent_status': '已提交，状态：{s}',
    'ib.channel': '发送渠道',
    'ib.qr': '话术',
    'ib.tpl': '模板…',
    'ib.tpl_send': '发模板',
    'ib.tpl_sent': '已排队发送模板「{n}」',
    'ib.qr_ph': '搜索话术',
    'ib.qr_none': '没有匹配的话术',
    'ib.assign': '分配给…',
    'ib.assign_to': '分配给',
    'ib.assigned': '已分配给 {who}',
    'ib.resolve': '标记已解决',
    'ib.resolved_done': '已标记为已解决',
    'ib.add_tag': '加标签',
    'ib.tag_ph': '标签名',
    'ib.tagged': '已加标签「{tag}」',
    'ib.me': '我（{login}）',
    'ib.profile': '客户资料',
    'ib.identities': '身份',
    'ib.rfm': 'RFM 分层',
    'ib.spend': '净消费',
    'ib.orders': '订单',
    'ib.tags': '标签',
    'ib.groups': '群',
    'ib.journeys': '进行中的旅程',
    'ib.fission': '裂变',
    'ib.fission_v': '邀请 {n} 人',
    'ib.invited_by': '由 {who} 邀请',
    'ib.win_hours': '{n} 小时窗口',
    'ib.owner': '负责人',
    'ib.opted_out': '已退订',
    'ib.windows': '服务窗口',
    'ib.win_open': '开放，至 {t}',
    'ib.win_closed': '已关闭',
    'ib.no_windows': '这些渠道没有服务窗口限制。',
    'ib.open_profile': '完整资料 →',
    'ib.now': '刚刚',
    'ib.ago_m': '{n} 分钟前',
    'ib.ago_h': '{n} 小时前',
    'ib.ago_d': '{n} 天前',
    'ib.min': '{n} 分钟',
    'ib.lt_min': '<1 分钟',
    'ib.no_text': '（无文字）',
    'ib.hour': '{n} 小时',
    'ib.day': '{n} 天',
    'ib.live': '实时',
    'ib.offline': '实时连接断开，重连中…',
    'ib.colon': '：',
    'ib.no_channel': '没有可回复的渠道：此客户所在的渠道都没有配置连接器（设置 → 渠道状态）',
    'ib.tasks': '待办',
    'ib.no_tasks': '没有未完成的待办',
    'ib.task_ph': '新待办，如「明天回电确认尺码」',
    'ib.task_add': '添加待办',
    'ib.task_done': '完成',
    'ib.task_added': '已添加待办',
    'ib.ai': 'AI',
    'ib.ai_suggest': '建议回复',
    'ib.ai_suggest_title': '让 AI 根据客户资料、最近消息和话术库写回复建议（发送前需人工点击发送）',
    'ib.ai_thinking': 'AI 正在生成…',
    'ib.ai_note': 'AI 生成（{m}）：已填入回复框，请核对修改后再点「发送」；不会自动发送。',
    'ib.ai_other': '其他建议：',
    'ib.ai_summary': 'AI 会话摘要',
    'ib.ai_summarize': '生成摘要',
    'ib.ai_summary_of': 'AI 生成 · {m} · {t} · 基于 {n} 条消息',
    'ib.ai_summary_none': '尚未生成。摘要由 AI 根据最近消息生成，不保存。',
    'ib.task_closed': '待办已完成',
  },
  en: {
    'nav.inbox': 'Inbox',
    'ib.title': 'Inbox',
    'ib.f.all': 'All',
    'ib.f.unanswered': 'Unanswered',
    'ib.f.mine': 'Mine',
    'ib.f.resolved': 'Resolved',
    'ib.any_channel': 'All channels',
    'ib.tag': 'Tag',
    'ib.sort.recent': 'Most recent',
    'ib.sort.waiting': 'Waiting longest',
    'ib.total': '{n} conversations',
    'ib.more': 'Load more',
    'ib.empty': 'No conversation matches.',
    'ib.waiting': '{n} unanswered · {m}',
    'ib.resolved': 'Resolved',
    'ib.unassigned': 'Unassigned',
    'ib.pick': 'Pick a conversation on the left.',
    'ib.pick_stats': '{n} conversations listed, {u} waiting for a reply.',
    'ib.pick_longest': 'Waiting longest:',
    'ib.pick_hint': 'Ctrl+Enter in the reply box sends; new messages appear live, no reload needed.',
    'ib.older': 'Load older messages',
    'ib.no_messages': 'No messages yet.',
    'ib.auto': 'Auto-reply',
    'ib.journey': 'Journey',
    'ib.mass': 'Mass send',
    'ib.automation': 'Automation',
    'ib.st.pending': 'Sending',
    'ib.st.suppressed': 'Not sent',
    'ib.st.dead': 'Failed',
    'ib.st.done': 'Sent',
    'ib.ev.resolved': 'Resolved by {who}',
    'ib.ev.assigned': 'Assigned to {who}',
    'ib.ev.other': '{kind}',
    'ib.sensitive': 'Sensitive: {c}',
    'ib.reply': 'Reply',
    'ib.reply_ph': 'Type a reply; Ctrl+Enter sends',
    'ib.send': 'Send',
    'ib.sent': 'Sent',
    'ib.sent_status': 'Accepted, status: {s}',
    'ib.channel': 'Channel',
    'ib.qr': 'Quick reply',
    'ib.tpl': 'Template…',
    'ib.tpl_send': 'Send template',
    'ib.tpl_sent': 'Template "{n}" queued',
    'ib.qr_ph': 'Search quick replies',
    'ib.qr_none': 'No quick reply matches',
    'ib.assign': 'Assign…',
    'ib.assign_to': 'Assign to',
    'ib.assigned': 'Assigned to {who}',
    'ib.resolve': 'Resolve',
    'ib.resolved_done': 'Marked resolved',
    'ib.add_tag': 'Add tag',
    'ib.tag_ph': 'Tag',
    'ib.tagged': 'Tagged "{tag}"',
    'ib.me': 'Me ({login})',
    'ib.profile': 'Customer',
    'ib.identities': 'Identities',
    'ib.rfm': 'RFM layer',
    'ib.spend': 'Net spend',
    'ib.orders': 'Orders',
    'ib.tags': 'Tags',
    'ib.groups': 'Groups',
    'ib.journeys': 'Journeys in progress',
    'ib.fission': 'Referrals',
    'ib.fission_v': '{n} invited',
    'ib.invited_by': 'invited by {who}',
    'ib.win_hours': '{n} h window',
    'ib.owner': 'Owner',
    'ib.opted_out': 'Opted out',
    'ib.windows': 'Service windows',
    'ib.win_open': 'open until {t}',
    'ib.win_closed': 'closed',
    'ib.no_windows': 'No service window applies on these channels.',
    'ib.open_profile': 'Full profile →',
    'ib.now': 'just now',
    'ib.ago_m': '{n} min ago',
    'ib.ago_h': '{n} h ago',
    'ib.ago_d': '{n} d ago',
    'ib.min': '{n} min',
    'ib.lt_min': '<1 min',
    'ib.no_text': '(no text)',
    'ib.hour': '{n} h',
    'ib.day': '{n} d',
    'ib.live': 'Live',
    'ib.offline': 'Live connection lost; reconnecting…',
    'ib.colon': ': ',
    'ib.no_channel': 'No channel to reply on: none of this customer\'s channels has a connector (Settings → Channels)',
    'ib.tasks': 'Tasks',
    'ib.no_tasks': 'No open tasks',
    'ib.task_ph': 'New task, e.g. "call back about the size"',
    'ib.task_add': 'Add task',
    'ib.task_done': 'Done',
    'ib.task_added': 'Task added',
    'ib.ai': 'AI',
    'ib.ai_suggest': 'Suggest',
    'ib.ai_suggest_title': 'AI drafts replies from the profile, recent messages and quick replies (you still click Send)',
    'ib.ai_thinking': 'AI is writing…',
    'ib.ai_note': 'AI-generated ({m}): put in the reply box; check and edit it, then click Send. Nothing is sent automatically.',
    'ib.ai_other': 'Other suggestions:',
    'ib.ai_summary': 'AI summary',
    'ib.ai_summarize': 'Summarize',
    'ib.ai_summary_of': 'AI-generated · {m} · {t} · from {n} messages',
    'ib.ai_summary_none': 'Not written yet. The AI summarizes the recent messages; nothing is stored.',
    'ib.task_closed': 'Task done',
  },
});

window.InboxPages = function (ui) {
  const { h, api, toast, enc, msgOf, showId, me, yuan, zone } = ui;
  const { t } = window.I18N;
  const CHANNELS = ['douyin', 'wecom', 'wechat', 'xiaohongshu', 'kuaishou', 'miniprogram', 'sms', 'taobao', 'tmall', 'jd', 'pinduoduo', 'web'];
  const PAGE = 50;
  // The RFM layer's name as the API gives it → its key (its label in either language).
  const LAYER_KEYS = { 重要价值客户: 'important_value', 重要发展客户: 'important_develop', 重要保持客户: 'important_keep', 重要挽留客户: 'important_win_back',
    一般价值客户: 'general_value', 一般发展客户: 'general_develop', 一般保持客户: 'general_keep', 一般挽留客户: 'general_win_back' };
  // The list's filters outlive a render (a language switch, a back to the list).
  const filters = { view: 'all', channel: '', tag: '', sort: 'recent' };
  // The one stream: closed when the page is left or drawn again. The
  // router may draw the next page before this listener runs: a stream
  // whose view is still shown (the inbox drawn again) stays open.
  let stream = null;
  let streamView = null;
  const closeStream = () => { if (stream) { stream.close(); stream = null; streamView = null; } };
  window.addEventListener('hashchange', () => { if (streamView && !streamView.isConnected) closeStream(); });

  // replaceChildren without the nulls of optional parts (the DOM would show "null").
  const put = (el, ...xs) => el.replaceChildren(...xs.flat().filter((x) => x !== null && x !== undefined && x !== false));
  const nowS = () => Date.now() / 1000;
  const ago = (s) => {
    if (typeof s !== 'number' || !s) return '';
    const d = Math.max(0, nowS() - s);
    if (d < 60) return t('ib.now');
    if (d < 3600) return t('ib.ago_m', { n: Math.floor(d / 60) });
    if (d < 86400) return t('ib.ago_h', { n: Math.floor(d / 3600) });
    if (d < 7 * 86400) return t('ib.ago_d', { n: Math.floor(d / 86400) });
    return zone.fmtLocal(s * 1000).slice(0, 10);
  };
  const span = (secs) => {
    const m = Math.max(0, Math.floor(secs / 60));
    if (m < 1) return t('ib.lt_min');
    if (m < 60) return t('ib.min', { n: m });
    if (m < 1440) return t('ib.hour', { n: Math.floor(m / 60) });
    return t('ib.day', { n: Math.floor(m / 1440) });
  };
  const timeEl = (s, text) => h('time', { datetime: new Date(s * 1000).toISOString(), title: `${zone.tz()} · ${zone.fmtLocal(s * 1000)}` }, text);
  const chBadge = (c) => (c ? h('span', { class: 'badge ch', 'data-channel': c, title: c }, I18N.channel(c)) : null);

  async function inbox(main, arg) {
    closeStream();
    const login = (me() || {}).login;
    let person = arg || null; // the open thread, as asked (any identity)
    let rows = [];
    let total = 0;
    let shown = PAGE; // rows asked for: a live refresh keeps as many
    let thread = null; // the last thread answer
    let listSeq = 0;
    let threadSeq = 0;

    // ---------- the list ----------
    const listBox = h('div', { class: 'ib-rows', id: 'inbox-list' });
    const totalEl = h('span', { class: 'muted small', id: 'inbox-total' });
    const moreBtn = h('button', { type: 'button', class: 'link', id: 'inbox-more', hidden: true, onclick: () => { shown += PAGE; loadList(); } }, t('ib.more'));
    const tabs = h('div', { class: 'ib-tabs', id: 'inbox-filters', role: 'tablist' }, ['all', 'unanswered', 'mine', 'resolved'].map((v) =>
      h('button', { type: 'button', class: 'tab' + (filters.view === v ? ' active' : ''), 'data-view': v, role: 'tab', onclick: (e) => {
        filters.view = v;
        tabs.querySelectorAll('button').forEach((b) => b.classList.toggle('active', b === e.currentTarget));
        shown = PAGE;
        loadList();
      } }, t('ib.f.' + v))));
    const chSel = h('select', { id: 'inbox-channel', 'aria-label': t('ib.channel') }, h('option', { value: '' }, t('ib.any_channel')),
      CHANNELS.map((c) => h('option', { value: c, selected: filters.channel === c }, I18N.channel(c))));
    const tagIn = h('input', { id: 'inbox-tag', type: 'search', value: filters.tag, placeholder: t('ib.tag'), size: 6, autocomplete: 'off' });
    const sortSel = h('select', { id: 'inbox-sort', 'aria-label': 'sort' }, ['recent', 'waiting'].map((s) => h('option', { value: s, selected: filters.sort === s }, t('ib.sort.' + s))));
    let tagTimer;
    chSel.addEventListener('change', () => { filters.channel = chSel.value; shown = PAGE; loadList(); });
    sortSel.addEventListener('change', () => { filters.sort = sortSel.value; shown = PAGE; loadList(); });
    tagIn.addEventListener('input', () => { clearTimeout(tagTimer); tagTimer = setTimeout(() => { filters.tag = tagIn.value.trim(); shown = PAGE; loadList(); }, 300); });

    function listQuery() {
      const q = new URLSearchParams();
      if (filters.view === 'unanswered') { q.set('unanswered', 'true'); q.set('status', 'open'); }
      if (filters.view === 'mine' && login) q.set('operator', login);
      if (filters.view === 'resolved') q.set('status', 'resolved');
      if (filters.channel) q.set('channel', filters.channel);
      if (filters.tag) q.set('tag', filters.tag);
      q.set('sort', filters.sort);
      q.set('limit', String(Math.min(200, shown)));
      return q;
    }

    async function loadList() {
      const mine = ++listSeq;
      const r = await api('GET', '/v1/conversations?' + listQuery());
      if (mine !== listSeq || !main.isConnected) return;
      if (!r.ok) { listBox.replaceChildren(h('p', { class: 'error', id: 'inbox-list-error' }, msgOf(r))); return; }
      rows = r.data.conversations || [];
      total = r.data.total || 0;
      drawList();
    }

    // Rows are updated in place: a row whose text is unchanged keeps its
    // element, so a live refresh never swallows a click on it.
    function drawList() {
      totalEl.textContent = t('ib.total', { n: total });
      moreBtn.hidden = rows.length >= total || shown >= 200;
      if (!rows.length) { listBox.replaceChildren(h('p', { class: 'empty', id: 'inbox-empty' }, t('ib.empty'))); performance.mark('inbox:list'); return; }
      const open = openCanonical();
      const old = new Map();
      listBox.querySelectorAll('a.ib-row').forEach((a) => old.set(a.dataset.person, a));
      const want = rows.map((c) => {
        const v = {
          name: c.display_name || showId(c.person), channel: c.channel, ago: c.last_message_at ? ago(c.last_message_at) : '', preview: c.preview || '',
          waiting: c.unanswered && c.unanswered_since ? t('ib.waiting', { n: c.unanswered, m: span(nowS() - c.unanswered_since) }) : null,
          unanswered: c.unanswered, status: c.status, operator: c.operator || t('ib.unassigned'), lang: I18N.lang(), intent: c.last_intent || null,
        };
        const sig = JSON.stringify(v);
        const kept = old.get(c.person);
        const a = kept && kept.dataset.sig === sig ? kept : h('a', { class: 'ib-row' + (c.unanswered ? ' unanswered' : '') + (c.status === 'resolved' ? ' resolved' : ''),
          href: '#/inbox/' + enc(c.person), 'data-person': c.person, 'data-sig': sig, onclick: (e) => { e.preventDefault(); openThread(c.person, true); } },
          h('div', { class: 'ib-row-top' }, h('strong', { class: 'ib-name', title: c.person }, v.name), chBadge(c.channel),
            c.last_message_at ? timeEl(c.last_message_at, v.ago) : null),
          h('div', { class: 'ib-preview' + (v.preview ? '' : ' none') }, v.preview || t('ib.no_text')),
          h('div', { class: 'ib-row-meta' },
            v.waiting ? h('span', { class: 'badge ib-waiting', 'data-unanswered': String(c.unanswered) }, v.waiting) : null,
            c.status === 'resolved' ? h('span', { class: 'badge status-done' }, t('ib.resolved')) : null,
            intentBadge({ direction: 'in', intent: v.intent }),
            h('span', { class: 'ib-op muted small' }, v.operator)));
        a.classList.toggle('active', c.person === open);
        return a;
      });
      // Move or insert only what differs, then drop what is left.
      want.forEach((a, i) => { const at = listBox.children[i]; if (at !== a) listBox.insertBefore(a, at || null); });
      while (listBox.children.length > want.length) listBox.lastChild.remove();
      if (!person) drawPick();
      performance.mark('inbox:list');
    }

    // ---------- the thread ----------
    const threadBox = h('div', { class: 'ib-thread', id: 'inbox-thread' });
    const profileBox = h('div', { class: 'ib-profile', id: 'inbox-profile' });
    const grid = h('div', { class: 'inbox' + (person ? '' : ' no-thread'), id: 'inbox' },
      h('section', { class: 'card ib-list' },
        tabs,
        h('div', { class: 'ib-filter-row' }, chSel, sortSel, tagIn),
        h('div', { class: 'ib-list-head' }, totalEl),
        listBox, moreBtn),
      h('section', { class: 'card ib-main' }, threadBox),
      profileBox);
    const openCanonical = () => (thread && thread.person ? thread.person.person : person);
    // Does a stream event's person name the open thread?
    const concernsThread = (p) => !!person && (p === person || (thread && ((thread.person && thread.person.person === p) || ((thread.profile && thread.profile.identities) || []).includes(p))));

    function openThread(p, push) {
      if (push) {
        const hash = '#/inbox/' + enc(p);
        if (location.hash !== hash) history.pushState(null, '', hash);
      }
      if (p !== person) threadBox.replaceChildren(h('p', { class: 'muted ib-loading' }, t('common.loading')));
      person = p;
      thread = null;
      listBox.querySelectorAll('.ib-row').forEach((a) => a.classList.toggle('active', a.dataset.person === p));
      return loadThread();
    }

    async function loadThread() {
      if (!person) {
        drawPick();
        profileBox.replaceChildren();
        grid.classList.add('no-thread');
        return;
      }
      const mine = ++threadSeq;
      const asked = person;
      const r = await api('GET', '/v1/conversations/' + enc(asked) + '?limit=100');
      if (mine !== threadSeq || !main.isConnected || asked !== person) return;
      if (!r.ok) {
        threadBox.replaceChildren(h('p', { class: 'error', id: 'inbox-thread-error' }, msgOf(r)));
        profileBox.replaceChildren();
        return;
      }
      drawThread(r.data);
    }

    // No thread open: what the list shown holds, and the one waiting longest.
    function drawPick() {
      const waiting = rows.filter((c) => c.unanswered && c.unanswered_since);
      const longest = waiting.reduce((a, c) => (!a || c.unanswered_since < a.unanswered_since ? c : a), null);
      threadBox.replaceChildren(h('div', { class: 'ib-pick', id: 'inbox-pick' },
        h('p', { class: 'ib-pick-title' }, t('ib.pick')),
        rows.length ? h('p', { class: 'muted' }, t('ib.pick_stats', { n: rows.length, u: waiting.length })) : null,
        longest ? h('p', {}, t('ib.pick_longest'), ' ',
          h('a', { href: '#/inbox/' + enc(longest.person), id: 'inbox-pick-longest', onclick: (e) => { e.preventDefault(); openThread(longest.person, true); } },
            (longest.display_name || showId(longest.person)) + ' · ' + span(nowS() - longest.unanswered_since))) : null,
        h('p', { class: 'muted small' }, t('ib.pick_hint'))));
    }

    // The messages of a thread answer (and older pages prepended).
    let messages = [];
    let more = false;
    // Whether [ai] configures a language model: the Suggest button and the
    // summary card are shown only then (GET /v1/ai/usage, once per page).
    const ai = { configured: false, summaries: {} };
    api('GET', '/v1/ai/usage').then((r) => {
      ai.configured = !!(r.ok && r.data.configured);
      box.suggestBtn.hidden = !ai.configured;
      if (ai.configured && thread) drawProfile(thread);
    });
    // The reply box survives a redraw of the thread (a live refresh must
    // not lose what is being typed).
    const box = replyBox();
    const taskBox = taskForm();
    const headName = h('div', { class: 'ib-head-name' });
    const head = h('div', { class: 'ib-head' }, headName, h('div', { class: 'ib-actions' }, box.assign, box.resolveBtn));
    const log = h('div', { class: 'ib-messages', id: 'inbox-messages' });

    function drawThread(d) {
      const samePerson = thread && thread.person && d.person && thread.person.person === d.person.person;
      // A refresh keeps older pages already loaded.
      const first = firstOffset(d.messages || []);
      if (samePerson && messages.length && first !== null) {
        const older = messages.filter((m) => m.offset !== null && m.offset !== undefined && m.offset < first);
        messages = older.concat(d.messages);
        more = older.length ? more : d.more;
      } else { messages = d.messages || []; more = !!d.more; }
      thread = d;
      const c = d.person || {};
      const atBottom = !log.isConnected || log.scrollHeight - log.scrollTop - log.clientHeight < 40;
      put(log,
        more ? h('button', { type: 'button', class: 'link ib-older', id: 'inbox-older', onclick: loadOlder }, t('ib.older')) : null,
        ...(messages.length ? messages.map(bubble) : [h('p', { class: 'muted', id: 'inbox-no-messages' }, t('ib.no_messages'))]));
      put(headName, h('strong', { id: 'inbox-thread-name', title: c.person }, c.display_name || showId(c.person)), ' ', chBadge(c.channel),
        c.status === 'resolved' ? h('span', { class: 'badge status-done', id: 'inbox-thread-status' }, t('ib.resolved')) : null);
      box.setChannels(d.reply_channels || []);
      box.setPerson(c.person || person);
      // Already resolved: nothing to resolve until the customer writes again.
      box.resolveBtn.disabled = c.status === 'resolved' || !ui.canWrite();
      // The reply box (and what is typed in it, and its focus) stays put.
      if (threadBox.firstChild !== head || !box.el.isConnected) threadBox.replaceChildren(head, log, box.el);
      if (atBottom) log.scrollTop = log.scrollHeight;
      drawProfile(d);
      ui.applyRole(threadBox);
      performance.mark('inbox:thread');
    }

    // The offset of the oldest line that has one (an operator message not
    // delivered yet has none: it is shown from the archive).
    function firstOffset(ms) {
      const m = ms.find((x) => typeof x.offset === 'number');
      return m ? m.offset : null;
    }

    async function loadOlder() {
      const first = firstOffset(messages);
      if (first === null || !person) return;
      const r = await api('GET', '/v1/conversations/' + enc(person) + '?limit=100&before=' + enc(String(first)));
      if (!r.ok || !main.isConnected) return;
      messages = (r.data.messages || []).filter((m) => typeof m.offset === 'number' && m.offset < first).concat(messages);
      more = !!r.data.more;
      const keep = log.scrollHeight - log.scrollTop;
      drawThread(Object.assign({}, thread, { messages: messages.slice(), more }));
      log.scrollTop = log.scrollHeight - keep;
    }

    function who(m) {
      if (m.operator) return m.operator;
      return t({ auto_reply: 'ib.auto', journey: 'ib.journey', mass: 'ib.mass' }[m.source] || 'ib.automation');
    }

    // An inbound message's intent (properties.intent, set at ingest).
    function intentBadge(m) {
      if (m.direction !== 'in' || !m.intent) return null;
      const name = t('intent.' + m.intent);
      const title = m.intent_confidence != null ? t('intent.confidence', { i: name, c: Math.round(m.intent_confidence * 100) }) : name;
      return h('span', { class: 'badge ib-intent intent-' + m.intent, 'data-intent': m.intent, title }, name);
    }

    function bubble(m) {
      const flags = (m.sensitive || []).map((s) => h('span', { class: 'ib-flag', title: s.id || s.rule, 'data-rule': s.id || s.rule }, '⚑ ' + t('ib.sensitive', { c: s.category || s.id || s.rule })));
      if (m.direction === 'event') {
        // `operator`: who resolved it; for an assignment, the new owner.
        const text = m.kind === 'resolved' ? t('ib.ev.resolved', { who: m.operator || t('ib.automation') })
          : m.kind === 'assigned' ? t('ib.ev.assigned', { who: m.operator || t('ib.unassigned') })
            : t('ib.ev.other', { kind: m.kind + (m.operator ? ' · ' + m.operator : '') });
        return h('div', { class: 'ib-event', 'data-kind': m.kind, 'data-offset': m.offset }, text, ' · ', timeEl(m.at, zone.fmtLocal(m.at * 1000).slice(5)));
      }
      const out = m.direction === 'out';
      const status = out && m.status && m.status !== 'done'
        ? [h('span', { class: 'badge status-' + m.status, title: m.detail || '', 'data-status': m.status }, t('ib.st.' + m.status)),
          m.detail ? h('span', { class: 'ib-detail small' }, m.detail) : null]
        : null;
      return h('div', { class: 'ib-msg ' + (out ? 'out' : 'in') + (flags.length ? ' flagged' : ''), 'data-offset': m.offset, 'data-key': m.key, 'data-direction': m.direction, 'data-kind': m.kind },
        h('div', { class: 'ib-bubble' }, h('div', { class: 'ib-text' }, m.text || ''), flags.length ? h('div', { class: 'ib-flags' }, flags) : null),
        h('div', { class: 'ib-msg-meta muted small' },
          out ? h('span', { class: 'ib-who' + (m.operator ? '' : ' auto') }, who(m)) : null,
          intentBadge(m),
          m.channel ? I18N.channel(m.channel) : null,
          timeEl(m.at, zone.fmtLocal(m.at * 1000).slice(5)),
          status));
    }

    // ---------- the reply box ----------
    function replyBox() {
      let current = null; // canonical person
      let quick = null; // the quick reply filled in (`/use` counted it)
      const text = h('textarea', { id: 'inbox-text', rows: 3, placeholder: t('ib.reply_ph'), 'data-write': true, 'aria-label': t('ib.reply') });
      const channel = h('select', { id: 'inbox-reply-channel', 'aria-label': t('ib.channel'), 'data-write': true });
      const result = h('div', { class: 'ib-result', id: 'inbox-result', role: 'alert' });
      // What is shown under the box; the messages stay scrolled to their end.
      const out = { replaceChildren: (...xs) => {
        const log = threadBox.querySelector('.ib-messages');
        const atEnd = log && log.scrollHeight - log.scrollTop - log.clientHeight < 40;
        put(result, ...xs);
        if (atEnd) log.scrollTop = log.scrollHeight;
      } };
      const send = h('button', { type: 'button', class: 'primary', id: 'inbox-send', 'data-write': true, onclick: () => submit() }, t('ib.send'));
      text.addEventListener('input', () => { if (!text.value) quick = null; });
      text.addEventListener('keydown', (e) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); submit(); } });

      // Quick replies: searched as typed, filled in for the person on a click.
      const qrIn = h('input', { id: 'inbox-qr', type: 'search', placeholder: t('ib.qr_ph'), autocomplete: 'off', 'data-write': true, 'aria-label': t('ib.qr') });
      const qrList = h('div', { class: 'ib-qr-list', id: 'inbox-qr-list', hidden: true });
      let qrTimer;
      let qrSeq = 0;
      const searchQr = async () => {
        const mine = ++qrSeq;
        const q = new URLSearchParams();
        if (qrIn.value.trim()) q.set('q', qrIn.value.trim());
        if (me() && me().login) q.set('owner', me().login);
        const r = await api('GET', '/v1/quick-replies?' + q);
        if (mine !== qrSeq) return;
        if (!r.ok) { qrList.replaceChildren(h('p', { class: 'error small' }, msgOf(r))); qrList.hidden = false; return; }
        const items = (r.data.quick_replies || []).slice(0, 12);
        qrList.replaceChildren(...(items.length ? items.map((q) => h('button', { type: 'button', class: 'ib-qr-item', 'data-reply': q.id, onclick: () => fill(q) },
          h('strong', {}, q.title), h('span', { class: 'muted small' }, q.text))) : [h('p', { class: 'muted small' }, t('ib.qr_none'))]));
        qrList.hidden = false;
      };
      qrIn.addEventListener('focus', searchQr);
      qrIn.addEventListener('input', () => { clearTimeout(qrTimer); qrTimer = setTimeout(searchQr, 150); });
      qrIn.addEventListener('keydown', (e) => { if (e.key === 'Escape') qrList.hidden = true; });
      const qrWrap = h('div', { class: 'ib-qr' }, qrIn, qrList);
      const onDoc = (e) => {
        if (!main.isConnected) { document.removeEventListener('click', onDoc); return; }
        if (!qrWrap.contains(e.target)) qrList.hidden = true;
      };
      document.addEventListener('click', onDoc);
      async function fill(q) {
        clearTimeout(qrTimer);
        qrSeq++;
        qrIn.value = '';
        qrList.hidden = true;
        const body = { person: current };
        if (channel.value) body.channel = channel.value;
        const r = await api('POST', '/v1/quick-replies/' + enc(q.id) + '/use', body);
        if (!r.ok) { if (r.status !== 403) out.replaceChildren(h('p', { class: 'error', id: 'inbox-refusal' }, msgOf(r))); return; }
        text.value = r.data.text;
        quick = q.id;
        out.replaceChildren();
        text.focus();
      }

      // A template to this one customer (a notice outside a platform's
      // reply window: an Official Account template message, say): one
      // direct send through the guardrails, like a journey's.
      const tplSel = h('select', { id: 'inbox-template', 'aria-label': t('ib.tpl'), 'data-write': true }, h('option', { value: '' }, t('ib.tpl')));
      let tplLoaded = false;
      tplSel.addEventListener('focus', async () => {
        if (tplLoaded) return;
        tplLoaded = true;
        const r = await api('GET', '/v1/templates');
        if (r.ok) tplSel.append(...(r.data.templates || []).map((x) => h('option', { value: x.name }, x.name)));
      });
      const tplSend = h('button', { type: 'button', id: 'inbox-template-send', 'data-write': true, onclick: async () => {
        if (!current || !tplSel.value) return;
        const body = { id: 'inbox-' + Date.now().toString(36), identities: [current], template: tplSel.value, kind: 'direct' };
        if (channel.value) body.channel = channel.value;
        const r = await api('POST', '/v1/sends', body);
        if (r.ok) { out.replaceChildren(h('p', { class: 'good small', id: 'inbox-template-sent' }, t('ib.tpl_sent', { n: tplSel.value }))); scheduleThread(); scheduleList(); }
        else if (r.status !== 403) out.replaceChildren(h('p', { class: 'error', id: 'inbox-refusal', 'data-code': (r.data && r.data.code) || String(r.status) }, msgOf(r)));
      } }, t('ib.tpl_send'));
      const tplWrap = h('span', { class: 'ib-tpl' }, tplSel, tplSend);
      // AI suggestions (POST /v1/ai/suggest): the first fills the box, the
      // others are offered; the operator still clicks Send (the reply path:
      // outbox and guardrails).
      const suggestBtn = h('button', { type: 'button', id: 'inbox-suggest', hidden: true, 'data-write': true, title: t('ib.ai_suggest_title'), onclick: async () => {
        if (!current || suggestBtn.disabled) return;
        suggestBtn.disabled = true;
        out.replaceChildren(h('p', { class: 'muted small', id: 'inbox-ai-wait' }, t('ib.ai_thinking')));
        const r = await api('POST', '/v1/ai/suggest', { person: current });
        suggestBtn.disabled = false;
        if (!r.ok) { if (r.status !== 403) out.replaceChildren(h('p', { class: 'error', id: 'inbox-refusal', 'data-code': (r.data && r.data.code) || String(r.status) }, msgOf(r))); return; }
        const list = (r.data.suggestions || []).map((x) => x.text);
        if (!list.length) return;
        text.value = list[0];
        quick = null;
        text.focus();
        out.replaceChildren(h('div', { class: 'ib-ai', id: 'inbox-ai-suggestions', 'data-ai': 'true' },
          h('p', { class: 'small' }, h('span', { class: 'badge ai' }, t('ib.ai')), ' ', t('ib.ai_note', { m: r.data.model || '' })),
          list.length > 1 ? h('p', { class: 'small' }, t('ib.ai_other'), ...list.slice(1).map((x, i) => h('button', { type: 'button', class: 'small ib-ai-alt', 'data-suggestion': String(i + 1), onclick: () => { text.value = x; text.focus(); } }, x))) : null));
      } }, h('span', { class: 'badge ai' }, t('ib.ai')), ' ', t('ib.ai_suggest'));
      const noChannel = () => h('p', { class: 'muted small', id: 'inbox-no-channel' }, t('ib.no_channel'));
      async function submit() {
        if (!current || !text.value.trim() || send.disabled) return;
        if (!channel.value) { out.replaceChildren(noChannel()); return; }
        const body = { text: text.value };
        if (channel.value) body.channel = channel.value;
        send.disabled = true;
        const r = await api('POST', '/v1/conversations/' + enc(current) + '/messages', body);
        send.disabled = false;
        if (r.ok) {
          // Cleared unless something new was typed while it was sent.
          if (text.value === body.text) { text.value = ''; quick = null; }
          const d = r.data || {};
          const st = d.status || 'done';
          const flags = (d.sensitive || []).map((s) => s.category || s.id || s.rule);
          out.replaceChildren(st === 'done' || st === 'pending'
            ? h('p', { class: 'good small', id: 'inbox-sent', 'data-status': st }, t('ib.sent_status', { s: t('ib.st.' + st) }))
            : h('p', { class: 'bad small', id: 'inbox-sent', 'data-status': st }, t('ib.sent_status', { s: t('ib.st.' + st) }) + (d.detail ? t('ib.colon') + d.detail : '')),
          flags.length ? h('p', { class: 'bad small' }, t('ib.sensitive', { c: flags.join('、') })) : null);
          scheduleThread();
          scheduleList();
        } else if (r.status !== 403) {
          out.replaceChildren(h('p', { class: 'error', id: 'inbox-refusal', 'data-code': (r.data && r.data.code) || String(r.status) }, msgOf(r)));
        }
      }

      // Assign: the operators are asked for when the button is used.
      const assignSel = h('select', { id: 'inbox-assign-select', hidden: true, 'aria-label': t('ib.assign_to'), 'data-write': true });
      const assignBtn = h('button', { type: 'button', id: 'inbox-assign', 'data-write': true, onclick: async () => {
        const r = await api('GET', '/v1/operators');
        const ops = (r.ok && r.data.operators) || [];
        const cur = thread && thread.person ? thread.person.operator : null;
        const opts = [['', t('ib.unassigned')]];
        if (login && !ops.some((o) => o.login === login)) opts.push([login, t('ib.me', { login })]);
        ops.filter((o) => !o.status || o.status === 'active').forEach((o) => opts.push([o.login, o.name ? `${o.name} (${o.login})` : o.login]));
        assignSel.replaceChildren(h('option', { value: '__', disabled: true, selected: true }, t('ib.assign_to')), ...opts.map(([v, l]) => h('option', { value: v }, l + (v === cur ? ' ✓' : ''))));
        assignSel.hidden = false;
        assignBtn.hidden = true;
        assignSel.focus();
      } }, t('ib.assign'));
      assignSel.addEventListener('change', async () => {
        const v = assignSel.value;
        assignSel.hidden = true;
        assignBtn.hidden = false;
        const r = await api('POST', '/v1/conversations/' + enc(current) + '/assign', { operator: v || null });
        if (r.ok) { toast(t('ib.assigned', { who: v || t('ib.unassigned') }), 'good'); scheduleThread(); scheduleList(); } else if (r.status !== 403) toast(msgOf(r), 'error');
      });
      const resolveBtn = h('button', { type: 'button', id: 'inbox-resolve', 'data-write': true, onclick: async () => {
        const r = await api('POST', '/v1/conversations/' + enc(current) + '/resolve', {});
        if (r.ok) { toast(t('ib.resolved_done'), 'good'); scheduleThread(); scheduleList(); } else if (r.status !== 403) toast(msgOf(r), 'error');
      } }, t('ib.resolve'));
      const tagIn2 = h('input', { id: 'inbox-tag-input', placeholder: t('ib.tag_ph'), size: 8, 'data-write': true, 'aria-label': t('ib.add_tag') });
      const tagForm = h('form', { class: 'ib-tag-form', onsubmit: async (e) => {
        e.preventDefault();
        const tag = tagIn2.value.trim();
        if (!tag || !current) return;
        const r = await api('POST', '/v1/customers/bulk', { action: 'tag', ids: [current], tag });
        if (r.ok) { tagIn2.value = ''; toast(t('ib.tagged', { tag }), 'good'); scheduleThread(); scheduleList(); } else if (r.status !== 403) toast(msgOf(r), 'error');
      } }, tagIn2, h('button', { type: 'submit', id: 'inbox-tag-add', 'data-write': true }, t('ib.add_tag')));

      const el = h('div', { class: 'ib-reply', id: 'inbox-reply' }, text,
        h('div', { class: 'ib-reply-bar' }, channel, qrWrap, suggestBtn, tplWrap, h('span', { class: 'ib-grow' }), send), result);
      return {
        el,
        assign: h('span', { class: 'ib-assign' }, assignBtn, assignSel),
        resolveBtn,
        tagForm,
        suggestBtn,
        // Another person: a draft written for the last one is not theirs.
        setPerson(p) { if (p !== current) { if (current) { text.value = ''; quick = null; } current = p; out.replaceChildren(); } },
        setChannels(cs) {
          const keep = channel.value;
          channel.replaceChildren(...cs.map((c) => h('option', { value: c }, I18N.channel(c))));
          if (cs.includes(keep)) channel.value = keep;
          channel.disabled = !cs.length || !ui.canWrite();
          if (!cs.length) out.replaceChildren(noChannel());
        },
      };
    }

    // ---------- the person's open tasks, done and added in place ----------
    // The add form survives a redraw of the thread like the reply box: a
    // live refresh (a reply, a status) must not wipe a title being typed.
    function taskForm() {
      let canonical = null;
      const title = h('input', { id: 'inbox-task-title', placeholder: t('ib.task_ph'), 'data-write': true, 'aria-label': t('ib.task_add'), maxlength: 200 });
      const form = h('form', { class: 'ib-tag-form', onsubmit: async (e) => {
        e.preventDefault();
        const v = title.value.trim();
        const asked = canonical;
        if (!v || !asked) return;
        const r = await api('POST', '/v1/conversations/' + enc(asked) + '/tasks', { title: v });
        if (r.ok) { if (canonical === asked && title.value.trim() === v) title.value = ''; toast(t('ib.task_added'), 'good'); scheduleThread(); } else if (r.status !== 403) toast(msgOf(r), 'error');
      } }, title, h('button', { type: 'submit', id: 'inbox-task-add', 'data-write': true }, t('ib.task_add')));
      return {
        form,
        // Another person: a title typed for the last one is not theirs.
        setPerson(c) { if (c !== canonical) { if (canonical) title.value = ''; canonical = c; } },
      };
    }
    function tasksCard(d, canonical) {
      const tasks = d.tasks || [];
      taskBox.setPerson(canonical);
      const item = (task) => h('li', { 'data-task': task.key },
        h('span', {}, task.title),
        task.operator ? h('span', { class: 'muted small' }, ' · ' + task.operator) : null,
        task.due ? h('span', { class: 'muted small' }, ' · ' + zone.fmtLocal(task.due * 1000).slice(5, 16)) : null,
        ' ',
        h('button', { type: 'button', class: 'small', 'data-write': true, onclick: async () => {
          const r = await api('POST', '/v1/tasks/done', { key: task.key });
          if (r.ok) { toast(t('ib.task_closed'), 'good'); scheduleThread(); } else if (r.status !== 403) toast(msgOf(r), 'error');
        } }, t('ib.task_done')));
      return h('section', { class: 'card', id: 'inbox-tasks' }, h('h2', {}, t('ib.tasks')),
        tasks.length ? h('ul', { class: 'ib-tasks' }, tasks.map(item)) : h('p', { class: 'muted small' }, t('ib.no_tasks')),
        taskBox.form);
    }

    // ---------- the AI summary (POST /v1/ai/summarize; not stored) ----------
    function aiCard(canonical) {
      if (!ai.configured) return null;
      const body = h('div', { id: 'inbox-ai-summary' });
      const show = () => {
        const s = ai.summaries[canonical];
        put(body, s
          ? [h('p', { id: 'inbox-ai-summary-text', 'data-ai': 'true' }, s.summary),
            h('p', { class: 'muted small' }, t('ib.ai_summary_of', { m: s.model, t: zone.fmtLocal(s.at * 1000).slice(5, 16), n: s.messages }))]
          : h('p', { class: 'muted small' }, t('ib.ai_summary_none')));
      };
      show();
      const btn = h('button', { type: 'button', class: 'small', id: 'inbox-summarize', 'data-write': true, onclick: async () => {
        btn.disabled = true;
        put(body, h('p', { class: 'muted small' }, t('ib.ai_thinking')));
        const r = await api('POST', '/v1/ai/summarize', { person: canonical });
        btn.disabled = false;
        if (r.ok) { ai.summaries[canonical] = r.data; if (body.isConnected) show(); else if (thread) drawProfile(thread); } else { show(); if (r.status !== 403) body.append(h('p', { class: 'error small', 'data-code': (r.data && r.data.code) || String(r.status) }, msgOf(r))); }
      } }, t('ib.ai_summarize'));
      return h('section', { class: 'card', id: 'inbox-ai-card' }, h('h2', {}, h('span', { class: 'badge ai' }, t('ib.ai')), ' ', t('ib.ai_summary')), body, btn);
    }

    // ---------- the profile ----------
    function drawProfile(d) {
      const p = d.profile || {};
      const none = t('persons.none_value');
      const layer = d.rfm_layer || p.rfm_layer || null;
      const layerKey = LAYER_KEYS[layer];
      const orders = typeof p.purchases === 'number' ? p.purchases : p.orders;
      const owner = (d.person && d.person.operator) || p.owner || (p.traits && typeof p.traits.operator === 'string' ? p.traits.operator : null);
      const chips = (xs, cls) => (xs && xs.length ? xs.map((x) => h('span', { class: 'chip ' + (cls || ''), title: x }, cls === 'id' ? showId(x) : x)) : none);
      const row = (k, v, id) => [h('dt', {}, k), h('dd', id ? { id } : {}, v)];
      const journeys = (d.journeys || p.journeys || []).map((j) => h('span', { class: 'chip', title: j.entered_at ? zone.fmtLocal(j.entered_at * 1000) : '' }, j.journey));
      const f = d.fission || p.fission;
      const windows = d.service_windows || [];
      const canonical = d.person ? d.person.person : person;
      grid.classList.remove('no-thread');
      // The forms kept across redraws keep their focus too.
      const focused = profileBox.contains(document.activeElement) ? document.activeElement : null;
      profileBox.replaceChildren(
        h('section', { class: 'card' }, h('h2', {}, t('ib.profile')),
          h('dl', { class: 'facts ib-facts' },
            row(t('ib.identities'), h('div', { id: 'inbox-identities' }, chips(p.identities, 'id'))),
            row(t('ib.rfm'), layer ? (layerKey ? t('layer.' + layerKey) : layer) : none, 'inbox-rfm'),
            row(t('ib.spend'), typeof p.net_spend === 'number' ? '¥' + yuan(p.net_spend) : none, 'inbox-spend'),
            row(t('ib.orders'), typeof orders === 'number' ? String(orders) : none, 'inbox-orders'),
            row(t('ib.tags'), h('div', { id: 'inbox-tags' }, chips(p.tags)), null),
            row(t('ib.groups'), chips(p.groups)),
            row(t('ib.journeys'), journeys.length ? journeys : none, 'inbox-journeys'),
            row(t('ib.fission'), f && (f.invited || f.invited_by) ? [t('ib.fission_v', { n: f.invited || 0 }),
              f.invited_by ? h('div', { class: 'small muted', title: f.invited_by }, t('ib.invited_by', { who: showId(f.invited_by) })) : null] : none),
            row(t('ib.owner'), owner || none, 'inbox-owner')),
          p.opted_out ? h('p', { class: 'badge bad', id: 'inbox-opted-out' }, t('ib.opted_out')) : null,
          box.tagForm,
          h('p', { class: 'small' }, h('a', { href: '#/persons/' + enc(canonical), id: 'inbox-profile-link' }, t('ib.open_profile')))),
        ...(ai.configured ? [aiCard(canonical)] : []),
        tasksCard(d, canonical),
        h('section', { class: 'card' }, h('h2', {}, t('ib.windows')),
          windows.length ? h('ul', { class: 'ib-windows', id: 'inbox-windows' }, windows.map((w) => h('li', { 'data-channel': w.channel, 'data-open': String(!!w.open) },
            I18N.channel(w.channel), ' ', h('span', { class: 'badge ' + (w.open ? 'status-done' : 'status-dead') },
              w.open ? t('ib.win_open', { t: w.closes_at ? zone.fmtLocal(w.closes_at * 1000).slice(5) : '—' }) : t('ib.win_closed')),
            w.hours ? h('span', { class: 'muted small' }, ' · ' + t('ib.win_hours', { n: w.hours })) : null)))
            : h('p', { class: 'muted small', id: 'inbox-windows' }, t('ib.no_windows'))));
      ui.applyRole(profileBox);
      if (focused && focused.isConnected) focused.focus();
    }

    // ---------- live ----------
    let listTimer = null;
    let threadTimer = null;
    // Logged out (the app hidden) or another page: the stream is not wanted.
    const gone = () => !main.isConnected || document.querySelector('#app-view').hidden;
    // At most 200 ms after the first change: changes meanwhile ride along
    // (a timer reset on every change would starve while the stream is busy).
    function scheduleList() { if (!listTimer) listTimer = setTimeout(() => { listTimer = null; if (main.isConnected) loadList(); }, 200); }
    function scheduleThread() { if (!threadTimer) threadTimer = setTimeout(() => { threadTimer = null; if (main.isConnected && person) loadThread(); }, 200); }
    const liveEl = h('span', { class: 'badge ib-live', id: 'inbox-live', 'data-state': 'connecting' }, t('ib.live'));
    function listen() {
      if (typeof EventSource === 'undefined') return;
      const es = new EventSource('/v1/conversations/stream');
      stream = es;
      streamView = main;
      es.addEventListener('open', () => { liveEl.dataset.state = 'open'; liveEl.title = ''; liveEl.classList.remove('off'); });
      es.addEventListener('error', () => {
        if (gone() || stream !== es) { es.close(); if (stream === es) closeStream(); return; }
        liveEl.dataset.state = 'error';
        liveEl.title = t('ib.offline');
        liveEl.classList.add('off');
      });
      // A slow listener missed changes: everything shown is asked again.
      es.addEventListener('lagged', () => { if (main.isConnected && stream === es) { scheduleList(); scheduleThread(); } });
      es.addEventListener('conversation', (e) => {
        if (gone() || stream !== es) { es.close(); if (stream === es) closeStream(); return; }
        let d = {};
        try { d = JSON.parse(e.data); } catch (err) { /* a refresh all the same */ }
        scheduleList();
        if (!d.person || concernsThread(d.person)) scheduleThread();
      });
    }
    // Waiting times and "n min ago" move on without asking the server.
    const tick = setInterval(() => { if (!main.isConnected) { clearInterval(tick); return; } if (rows.length) drawList(); }, 60_000);

    main.replaceChildren(
      h('div', { class: 'ib-title' }, h('h1', {}, t('ib.title')), ui.inboxTabs ? ui.inboxTabs('inbox') : null, liveEl),
      grid);
    listen();
    await Promise.all([loadList(), loadThread()]);
  }

  return { inbox };
};
