// siyu console: Moments SOPs (客户朋友圈, /v1/moments) on #/moments and
// #/moments/<id> — a week calendar of the posts per operator (sender),
// a form to plan or edit one (text, a content-library item as link card
// or WeCom image media ids, the audience by tags or a segment, the
// time), and each post's status and report (reached, left out and why,
// likes, comments, orders). Reached from the communities page. Strings
// are registered with I18N.add beside the page.
'use strict';
window.I18N.add({
  'zh-CN': {
    'mo.title': '朋友圈 SOP',
    'mo.link': '朋友圈 SOP →',
    'mo.week': '本周日历',
    'mo.prev': '← 上一周',
    'mo.next': '下一周 →',
    'mo.sender': '发表成员',
    'mo.none_week': '这一周还没有计划的朋友圈。',
    'mo.new': '计划一条朋友圈',
    'mo.edit': '编辑',
    'mo.f.senders': '发表成员（企业微信账号，逗号分隔）',
    'mo.f.at': '发表时间',
    'mo.f.text': '文字（最多 2000 字）',
    'mo.f.content': '内容库链接卡片',
    'mo.f.no_content': '（不附链接）',
    'mo.f.images': '图片 media_id（逗号分隔，最多 9 张；与链接二选一）',
    'mo.f.audience': '可见客户',
    'mo.f.by_tags': '按标签',
    'mo.f.by_segment': '按分群',
    'mo.f.tags': '标签（逗号分隔，有任一标签的客户）',
    'mo.f.segment': '分群',
    'mo.save': '保存计划',
    'mo.saved': '已保存朋友圈计划 {id}',
    'mo.cancel': '取消这条',
    'mo.cancelled': '已取消 {id}',
    'mo.sync': '立即同步点赞评论',
    'mo.synced': '已读取 {m} 条朋友圈的 {r} 个互动，新增 {n} 条',
    'mo.status': '状态',
    'mo.s.planned': '已计划',
    'mo.s.publishing': '发表中',
    'mo.s.published': '已发表',
    'mo.s.failed': '失败',
    'mo.s.cancelled': '已取消',
    'mo.s.missed': '已错过',
    'mo.report': '效果',
    'mo.audience': '分群/标签人数',
    'mo.reached': '可见客户',
    'mo.excluded': '排除',
    'mo.likes': '点赞',
    'mo.comments': '评论',
    'mo.engaged': '互动客户',
    'mo.ordered': '7 天内下单',
    'mo.why': '排除原因',
    'mo.r.no_wecom_identity': '不是企业微信客户',
    'mo.r.not_senders_customer': '不是发表成员的客户',
    'mo.r.opted_out': '已退订',
    'mo.r.no_consent': '未同意/已撤回',
    'mo.r.moment_cap': '今天已看过朋友圈（频率上限）',
    'mo.r.tag_failed': '企业微信打标签失败',
    'mo.how': '发表时，siyu 先按护栏排除客户（退订、撤回同意、每人每天朋友圈上限），再给其余客户打上这条朋友圈专属的企业标签，只对该标签可见。',
  },
  en: {
    'mo.title': 'Moments SOP',
    'mo.link': 'Moments SOP →',
    'mo.week': 'This week',
    'mo.prev': '← Previous week',
    'mo.next': 'Next week →',
    'mo.sender': 'Sender',
    'mo.none_week': 'No Moments posts planned this week.',
    'mo.new': 'Plan a Moments post',
    'mo.edit': 'Edit',
    'mo.f.senders': 'Senders (WeCom userids, comma separated)',
    'mo.f.at': 'Publish at',
    'mo.f.text': 'Text (at most 2000 characters)',
    'mo.f.content': 'Content-library link card',
    'mo.f.no_content': '(no link)',
    'mo.f.images': 'Image media ids (comma separated, at most 9; or a link)',
    'mo.f.audience': 'Visible to',
    'mo.f.by_tags': 'By tags',
    'mo.f.by_segment': 'By segment',
    'mo.f.tags': 'Tags (comma separated: customers with any)',
    'mo.f.segment': 'Segment',
    'mo.save': 'Save plan',
    'mo.saved': 'Saved Moments plan {id}',
    'mo.cancel': 'Cancel this post',
    'mo.cancelled': 'Cancelled {id}',
    'mo.sync': 'Read likes and comments now',
    'mo.synced': 'Read {r} reactions on {m} posts, {n} new',
    'mo.status': 'Status',
    'mo.s.planned': 'planned',
    'mo.s.publishing': 'publishing',
    'mo.s.published': 'published',
    'mo.s.failed': 'failed',
    'mo.s.cancelled': 'cancelled',
    'mo.s.missed': 'missed',
    'mo.report': 'Report',
    'mo.audience': 'Audience',
    'mo.reached': 'Shown to',
    'mo.excluded': 'Left out',
    'mo.likes': 'Likes',
    'mo.comments': 'Comments',
    'mo.engaged': 'Engaged customers',
    'mo.ordered': 'Ordered within 7 days',
    'mo.why': 'Left out because',
    'mo.r.no_wecom_identity': 'not a WeCom customer',
    'mo.r.not_senders_customer': "not a sender's customer",
    'mo.r.opted_out': 'opted out',
    'mo.r.no_consent': 'no consent',
    'mo.r.moment_cap': 'already saw a post today (cap)',
    'mo.r.tag_failed': 'WeCom tagging failed',
    'mo.how': 'When it is published, siyu leaves out the customers the guardrails refuse (opted out, consent revoked, the daily Moments cap), tags the others with a corp tag of this post alone and shows it to that tag only.',
  },
});

window.MomentPages = function (ui) {
  const { h, api, card, toast, enc, msgOf, empty, zone, faults } = ui;
  const { t } = window.I18N;
  let weekOffset = 0;
  let shownArg = null;

  const toInput = (s) => zone.fmtLocal(s * 1000).replace(' ', 'T').slice(0, 16);
  const fromInput = (v) => { const ms = zone.fromLocal(v); return ms === null ? null : Math.floor(ms / 1000); };
  const list = (v) => v.split(/[,，\s]+/).map((x) => x.trim()).filter(Boolean);
  // A local date (YYYY-MM-DD) `n` days after `date`.
  const addDays = (date, n) => new Date(Date.parse(date + 'T00:00:00Z') + n * 86400000).toISOString().slice(0, 10);
  const badge = (s) => h('span', { class: 'badge status-' + s }, t('mo.s.' + s));

  async function moments(main, arg) {
    // The week shown: the chosen post's, else this one; ← → move from there.
    if (arg !== shownArg) { weekOffset = 0; shownArg = arg; }
    const one = arg ? await api('GET', '/v1/moments/' + enc(arg)) : null;
    const current = one && one.ok ? one.data : null;
    const today = zone.fmtLocal(Date.now()).slice(0, 10);
    const anchor = current ? zone.fmtLocal(current.at * 1000).slice(0, 10) : today;
    const dow = (new Date(anchor + 'T00:00:00Z').getUTCDay() + 6) % 7;
    const monday = addDays(anchor, weekOffset * 7 - dow);
    const days = [...Array(7).keys()].map((i) => addDays(monday, i));
    const from = Math.floor(zone.fromLocal(days[0] + 'T00:00') / 1000);
    const to = Math.floor(zone.fromLocal(addDays(monday, 7) + 'T00:00') / 1000);
    const [week, content, segs] = await Promise.all([
      api('GET', `/v1/moments?from=${from}&to=${to}`), api('GET', '/v1/content'), api('GET', '/v1/segments')]);
    if (!week.ok) { main.replaceChildren(h('h1', {}, t('mo.title')), h('p', { class: 'error' }, msgOf(week))); return; }
    const posts = week.data.moments || [];

    // ---- the week: one row per sender, one column per local day ----
    const senders = [...new Set(posts.flatMap((p) => p.senders))].sort();
    const dayOf = (p) => zone.fmtLocal(p.at * 1000).slice(0, 10);
    const cell = (sender, day) => h('td', { class: 'mo-cell' }, posts.filter((p) => p.senders.includes(sender) && dayOf(p) === day).map((p) =>
      h('a', { class: 'mo-post' + (current && current.id === p.id ? ' selected' : ''), href: '#/moments/' + enc(p.id), 'data-moment': p.id },
        h('span', { class: 'mo-time' }, zone.fmtLocal(p.at * 1000).slice(11, 16)), ' ', badge(p.status),
        h('div', { class: 'mo-text' }, (p.text || '').slice(0, 40) || '—'))));
    const nav = h('div', { class: 'mo-nav' },
      h('button', { type: 'button', id: 'mo-prev', onclick: () => { weekOffset -= 1; ui.render(); } }, t('mo.prev')), ' ',
      h('strong', {}, days[0] + ' – ' + days[6]), ' ',
      h('button', { type: 'button', id: 'mo-next', onclick: () => { weekOffset += 1; ui.render(); } }, t('mo.next')), ' ',
      h('button', { type: 'button', id: 'mo-sync', 'data-write': true, onclick: async () => {
        const r = await api('POST', '/v1/moments/sync');
        if (!r.ok) { toast(msgOf(r), 'bad'); return; }
        toast(t('mo.synced', { m: r.data.moments, r: r.data.reactions, n: r.data.new_events }), 'good');
        ui.render();
      } }, t('mo.sync')));
    const weekday = (d) => new Date(d + 'T00:00:00Z').toLocaleDateString(window.I18N.lang() === 'en' ? 'en-GB' : 'zh-CN', { weekday: 'short', timeZone: 'UTC' });
    const calendar = senders.length
      ? h('table', { class: 'list mo-week', id: 'mo-week' },
        h('thead', {}, h('tr', {}, h('th', {}, t('mo.sender')), days.map((d) => h('th', { class: d === today ? 'today' : '' }, weekday(d) + ' ' + d.slice(5))))),
        h('tbody', {}, senders.map((s) => h('tr', { 'data-sender': s }, h('th', {}, s), days.map((d) => cell(s, d))))))
      : empty('mo-empty', t('mo.none_week'));

    // ---- the form: a new plan, or the chosen planned one ----
    const now = Math.floor(Date.now() / 1000);
    const p = current || { id: '', senders: [], at: now + 3600, text: '', attachments: [], audience: { tags: [] } };
    const editable = !current || current.status === 'planned';
    const items = ((content.data && content.data.content) || []);
    const linked = (p.attachments.find((a) => a.content) || {}).content || '';
    const segNames = ((segs.data && segs.data.segments) || []).map((s) => s.name);
    const bySegment = !!p.audience.segment;
    const f = {
      senders: h('input', { id: 'mo-f-senders', value: p.senders.join(', '), 'data-write': true, disabled: !editable }),
      at: h('input', { id: 'mo-f-at', type: 'datetime-local', value: toInput(p.at), 'data-write': true, disabled: !editable }),
      text: h('textarea', { id: 'mo-f-text', rows: 4, maxlength: 2000, 'data-write': true, disabled: !editable }, p.text),
      content: h('select', { id: 'mo-f-content', 'data-write': true, disabled: !editable },
        h('option', { value: '' }, t('mo.f.no_content')),
        items.map((c) => h('option', { value: c.id, selected: c.id === linked }, `${c.title} (${c.id})`))),
      images: h('input', { id: 'mo-f-images', value: p.attachments.filter((a) => a.image).map((a) => a.image).join(', '), 'data-write': true, disabled: !editable }),
      kind: h('select', { id: 'mo-f-kind', 'data-write': true, disabled: !editable },
        h('option', { value: 'tags', selected: !bySegment }, t('mo.f.by_tags')),
        h('option', { value: 'segment', selected: bySegment }, t('mo.f.by_segment'))),
      tags: h('input', { id: 'mo-f-tags', value: (p.audience.tags || []).join(', '), 'data-write': true, disabled: !editable }),
      segment: h('select', { id: 'mo-f-segment', 'data-write': true, disabled: !editable },
        segNames.map((n) => h('option', { value: n, selected: n === p.audience.segment }, n))),
    };
    const fault = h('div', { id: 'mo-fault' });
    const label = (k, el) => h('label', { id: 'mo-l-' + k }, t('mo.f.' + k), el);
    // Only the audience kind chosen is shown.
    const showAudience = () => {
      const seg = f.kind.value === 'segment';
      form.querySelector('#mo-l-tags').hidden = seg;
      form.querySelector('#mo-l-segment').hidden = !seg;
    };
    f.kind.addEventListener('change', showAudience);
    const form = h('form', { class: 'form', id: 'mo-form', onsubmit: async (e) => {
      e.preventDefault();
      const attachments = f.content.value ? [{ content: f.content.value }] : [];
      list(f.images.value).forEach((m) => attachments.push({ image: m }));
      const body = {
        senders: list(f.senders.value), at: fromInput(f.at.value), text: f.text.value, attachments,
        audience: f.kind.value === 'segment' ? { segment: f.segment.value } : { tags: list(f.tags.value) },
      };
      const r = current ? await api('PUT', '/v1/moments/' + enc(current.id), body) : await api('POST', '/v1/moments', body);
      if (!r.ok) { fault.replaceChildren(faults('mo-fault-list', msgOf(r))); return; }
      toast(t('mo.saved', { id: r.data.id }), 'good');
      location.hash = '#/moments/' + enc(r.data.id);
      ui.render();
    } },
    label('senders', f.senders), label('at', f.at), label('text', f.text), label('content', f.content), label('images', f.images),
    label('audience', f.kind), label('tags', f.tags), label('segment', f.segment), fault,
    editable ? h('button', { type: 'submit', class: 'primary', id: 'mo-save', 'data-write': true }, t('mo.save')) : null,
    current && editable ? h('button', { type: 'button', id: 'mo-cancel', 'data-write': true, onclick: async () => {
      const r = await api('DELETE', '/v1/moments/' + enc(current.id));
      if (!r.ok) { toast(msgOf(r), 'bad'); return; }
      toast(t('mo.cancelled', { id: current.id }), 'good');
      ui.render();
    } }, t('mo.cancel')) : null);
    showAudience();

    const parts = [h('div', { class: 'page-head' }, h('h1', {}, t('mo.title'))),
      card(t('mo.week'), nav, calendar),
      h('div', { class: 'grid2' }, card(current ? `${t('mo.edit')} ${current.id}` : t('mo.new'), form),
        current ? report(current) : card(t('mo.report'), h('p', { class: 'muted small' }, t('mo.how'))))];
    main.replaceChildren(...parts);
  }

  function report(p) {
    const r = p.report || {};
    const fig = (k, v, id) => h('div', { class: 'kpi', id }, h('div', { class: 'kpi-label' }, t(k)), h('div', { class: 'kpi-value' }, String(v)));
    const why = Object.entries(p.excluded || {}).map(([k, n]) => h('li', { 'data-reason': k }, `${t('mo.r.' + k)}: ${n}`));
    return card(t('mo.report'),
      h('p', { id: 'mo-status' }, t('mo.status') + ': ', badge(p.status), p.error ? h('span', { class: 'error' }, ' ' + p.error) : null,
        p.moment_id ? h('code', { class: 'muted' }, ' ' + p.moment_id) : null),
      p.status === 'planned' || p.status === 'cancelled' ? null : h('div', { class: 'kpis', id: 'mo-report' },
        fig('mo.audience', r.audience || 0, 'mo-audience'), fig('mo.reached', r.reached || 0, 'mo-reached'),
        fig('mo.excluded', r.excluded || 0, 'mo-excluded'), fig('mo.likes', r.likes || 0, 'mo-likes'),
        fig('mo.comments', r.comments || 0, 'mo-comments'), fig('mo.engaged', r.engaged || 0, 'mo-engaged'),
        fig('mo.ordered', r.ordered || 0, 'mo-ordered')),
      why.length ? h('div', {}, h('h3', {}, t('mo.why')), h('ul', { id: 'mo-why' }, why)) : null,
      h('p', { class: 'muted small' }, t('mo.how')));
  }

  return { moments };
};
