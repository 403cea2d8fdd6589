// siyu console: live sessions (直播, /v1/live-sessions) on #/live and
// #/live/<id> — the sessions newest first, a form for one, and its
// report (viewers, new persons, comments answered, orders, revenue,
// repeat buyers) as figures and a bar chart of the funnel. Reached from
// the fission page. Strings are registered with I18N.add beside the page.
'use strict';
window.I18N.add({
  'zh-CN': {
    'live.title': '直播',
    'live.link': '直播 →',
    'live.new': '新建直播',
    'live.empty': '还没有直播。新建一场：渠道、主播、开始和结束时间；观看、评论和订单会自动归到这场直播。',
    'live.f.id': '编号（字母、数字）',
    'live.f.title': '标题',
    'live.f.channel': '渠道（douyin、kuaishou、channels …）',
    'live.f.host': '主播',
    'live.f.start': '开始',
    'live.f.end': '结束',
    'live.f.products': '商品编号（逗号分隔）',
    'live.f.hours': '结束后多少小时内的订单计入',
    'live.save': '保存',
    'live.saved': '已保存直播「{t}」',
    'live.report': '直播效果',
    'live.viewers': '观看（已知客户）',
    'live.new_persons': '新客户',
    'live.comments': '评论',
    'live.answered': '已回复评论',
    'live.orders': '订单',
    'live.buyers': '下单人数',
    'live.revenue': '净成交额',
    'live.refunded': '退款',
    'live.repeat': '30 天内复购',
    'live.repeat_open': '（30 天未满，仍会增加）',
    'live.how': '观看：直播期间在该渠道有事件的客户，或扫码带 live:{id} 的客户；订单：这些客户从开播到结束后 {h} 小时内在任何渠道的订单。',
  },
  en: {
    'live.title': 'Live sessions',
    'live.link': 'Live sessions →',
    'live.new': 'New session',
    'live.empty': 'No live sessions yet. Add one — channel, host, start and end — and its viewers, comments and orders are attributed to it.',
    'live.f.id': 'Id (letters, digits)',
    'live.f.title': 'Title',
    'live.f.channel': 'Channel (douyin, kuaishou, channels …)',
    'live.f.host': 'Host',
    'live.f.start': 'Starts',
    'live.f.end': 'Ends',
    'live.f.products': 'Product ids (comma separated)',
    'live.f.hours': 'Orders count this many hours after the end',
    'live.save': 'Save',
    'live.saved': 'Saved "{t}"',
    'live.report': 'What it brought',
    'live.viewers': 'Viewers (known)',
    'live.new_persons': 'New persons',
    'live.comments': 'Comments',
    'live.answered': 'Comments answered',
    'live.orders': 'Orders',
    'live.buyers': 'Buyers',
    'live.revenue': 'Net revenue',
    'live.refunded': 'Refunded',
    'live.repeat': 'Bought again within 30 d',
    'live.repeat_open': '(30 days not over: may still grow)',
    'live.how': 'Viewers: persons with an event on its channel during it, or a scan naming live:{id}; orders: theirs on any channel from the start to {h} h after the end.',
  },
});

window.LivePages = function (ui) {
  const { h, api, card, toast, enc, yuan, msgOf, empty, zone, faults } = ui;
  const { t } = window.I18N;

  // datetime-local value (workspace zone) ↔ epoch seconds.
  const toInput = (s) => zone.fmtLocal(s * 1000).replace(' ', 'T').slice(0, 16);
  const fromInput = (v) => { const ms = zone.fromLocal(v); return ms === null ? null : Math.floor(ms / 1000); };

  async function live(main, arg) {
    const list = await api('GET', '/v1/live-sessions');
    if (!list.ok) { main.replaceChildren(h('h1', {}, t('live.title')), h('p', { class: 'error' }, msgOf(list))); return; }
    const sessions = list.data.live_sessions || [];
    const current = sessions.find((s) => s.id === arg) || null;
    const rows = sessions.map((s) => h('tr', { 'data-session': s.id, class: s.id === arg ? 'selected' : '' },
      h('td', {}, h('a', { href: '#/live/' + enc(s.id) }, s.title)),
      h('td', {}, window.I18N.channel ? window.I18N.channel(s.channel) : s.channel),
      h('td', {}, s.host || '—'),
      h('td', {}, zone.fmtLocal(s.starts_at * 1000).slice(0, 16))));
    const listCard = card(t('live.title'), sessions.length
      ? h('table', { class: 'list', id: 'live-list' }, h('tbody', {}, rows))
      : empty('live-empty', t('live.empty')));

    const now = Math.floor(Date.now() / 1000);
    const s = current || { id: '', title: '', channel: 'douyin', host: '', starts_at: now, ends_at: now + 7200, products: [], attribution_hours: 24 };
    const f = {
      id: h('input', { id: 'live-f-id', value: s.id, disabled: !!current, 'data-write': true }),
      title: h('input', { id: 'live-f-title', value: s.title, 'data-write': true }),
      channel: h('input', { id: 'live-f-channel', value: s.channel, 'data-write': true }),
      host: h('input', { id: 'live-f-host', value: s.host || '', 'data-write': true }),
      start: h('input', { id: 'live-f-start', type: 'datetime-local', value: toInput(s.starts_at), 'data-write': true }),
      end: h('input', { id: 'live-f-end', type: 'datetime-local', value: toInput(s.ends_at), 'data-write': true }),
      products: h('input', { id: 'live-f-products', value: (s.products || []).join(', '), 'data-write': true }),
      hours: h('input', { id: 'live-f-hours', type: 'number', min: 0, max: 720, value: s.attribution_hours, 'data-write': true }),
    };
    const fault = h('div', { id: 'live-fault' });
    const label = (k, el) => h('label', {}, t('live.f.' + k), el);
    const form = h('form', { class: 'form', id: 'live-form', onsubmit: async (e) => {
      e.preventDefault();
      const id = f.id.value.trim();
      const body = {
        title: f.title.value.trim(), channel: f.channel.value.trim(), host: f.host.value.trim(),
        starts_at: fromInput(f.start.value), ends_at: fromInput(f.end.value),
        products: f.products.value.split(/[,，]/).map((x) => x.trim()).filter(Boolean),
        attribution_hours: Number(f.hours.value || 24),
      };
      const r = await api('PUT', '/v1/live-sessions/' + enc(id || 'x'), body);
      if (!r.ok) { fault.replaceChildren(faults('live-fault-list', msgOf(r))); return; }
      toast(t('live.saved', { t: body.title }), 'good');
      location.hash = '#/live/' + enc(id);
    } },
    label('id', f.id), label('title', f.title), label('channel', f.channel), label('host', f.host),
    label('start', f.start), label('end', f.end), label('products', f.products), label('hours', f.hours),
    fault, h('button', { type: 'submit', class: 'primary', id: 'live-save', 'data-write': true }, t('live.save')));
    const parts = [h('div', { class: 'page-head' }, h('h1', {}, t('live.title'))),
      h('div', { class: 'grid2' }, listCard, card(current ? current.title : t('live.new'), form))];

    if (current) {
      const r = await api('GET', '/v1/live-sessions/' + enc(current.id) + '/report');
      if (!r.ok) parts.push(h('p', { class: 'error' }, msgOf(r)));
      else {
        const d = r.data;
        const fig = (k, v, id, sub) => h('div', { class: 'kpi', id }, h('div', { class: 'kpi-label' }, t(k)), h('div', { class: 'kpi-value' }, v), sub ? h('div', { class: 'kpi-sub' }, sub) : null);
        const funnel = [['live.viewers', d.viewers], ['live.comments', d.comments], ['live.answered', d.comments_answered], ['live.buyers', d.buyers], ['live.repeat', d.repeat_buyers]];
        const chart = h('div', { id: 'live-bars' });
        chart.appendChild(window.Charts.bars(funnel.map(([k, v]) => ({ label: t(k), value: v })), { title: t('live.report') }));
        parts.push(card(t('live.report'),
          h('div', { class: 'kpis', id: 'live-report' },
            fig('live.viewers', String(d.viewers), 'live-viewers', t('live.new_persons') + ' ' + d.new_persons),
            fig('live.comments', `${d.comments_answered} / ${d.comments}`, 'live-comments', t('live.answered')),
            fig('live.orders', String(d.orders), 'live-orders', t('live.buyers') + ' ' + d.buyers),
            fig('live.revenue', '¥' + yuan(d.revenue), 'live-revenue', t('live.refunded') + ' ¥' + yuan(d.refunded)),
            fig('live.repeat', String(d.repeat_buyers), 'live-repeat', d.repeat_final ? null : t('live.repeat_open'))),
          chart,
          h('p', { class: 'muted small' }, t('live.how', { id: current.id, h: current.attribution_hours }))));
      }
    }
    main.replaceChildren(...parts);
  }

  return { live };
};
