// siyu console: the partner program (达人 / KOC / MCN / 分销, /v1/partners)
// on #/partners — every partner with its commission ledger totals and ROI
// (revenue against commission and fees, the customers' repeat rate), one
// partner's ledger lines with the payout and its CSV export, a form for a
// new partner and one that turns a customer into a distributor.
// Strings are registered with I18N.add beside the page.
'use strict';
window.I18N.add({
  'zh-CN': {
    'nav.partners': '达人分销',
    'pt.title': '达人与分销',
    'pt.empty': '还没有合作达人。新建一个达人（KOC、MCN），或把老客户设为分销员。',
    'pt.f.id': '编号',
    'pt.f.name': '名称',
    'pt.f.kind': '类型',
    'pt.f.identity': '达人身份（例如 wecom:koc01）',
    'pt.f.rate': '佣金比例（万分比，1000 = 10%）',
    'pt.f.hold': '退款期（例如 7d）',
    'pt.f.window': '归因窗口（例如 30d）',
    'pt.f.fees': '固定费用（分）',
    'pt.k.koc': '达人/KOC',
    'pt.k.mcn': 'MCN',
    'pt.k.distributor': '分销员',
    'pt.held': '退款期内',
    'pt.payable': '可结算',
    'pt.paid': '已结算',
    'pt.clawed_back': '已追回',
    'pt.refused': '风控拒绝',
    'pt.revenue': '带来营收',
    'pt.roi': 'ROI',
    'pt.repeat': '复购率',
    'pt.new': '新建达人',
    'pt.save': '保存',
    'pt.saved': '已保存达人「{name}」',
    'pt.from_person': '老客户设为分销员',
    'pt.from_person_id': '客户身份（例如 douyin:…）',
    'pt.made': '已设为分销员：{id}',
    'pt.ledger': '佣金明细',
    'pt.payout': '结算可结算佣金',
    'pt.paid_out': '已结算 ¥{amount}（{lines} 条）',
    'pt.csv': '导出结算 CSV',
    'pt.code': '推广码',
    'pt.l.order': '订单',
    'pt.l.person': '客户',
    'pt.l.kind': '类型',
    'pt.l.status': '状态',
    'pt.l.base': '净营收',
    'pt.l.amount': '佣金',
    'pt.l.flag': '风控',
    'pt.no_lines': '还没有归因到该达人的订单。',
    'pt.lk.accrual': '计提',
    'pt.lk.adjustment': '调整',
    'pt.lk.clawback': '追回',
    'pt.lk.refused': '拒绝',
    'pt.ls.held': '退款期内',
    'pt.ls.payable': '可结算',
    'pt.ls.paid': '已结算',
    'pt.ls.refused': '已拒绝',
    'pt.flag.self_referral': '自购自推',
    'pt.flag.shared_device': '共用设备',
    'pt.share': '推广链接与海报',
    'pt.link': '落地页',
    'pt.qr': '二维码',
    'pt.poster': '海报',
    'pt.program': '归因规则',
    'pt.model': '多个达人都带来同一位客户时，订单归于',
    'pt.m.first_touch': '首次触达的达人（默认）',
    'pt.m.last_touch': '最近一次触达的达人',
    'pt.program_saved': '归因规则已保存，佣金明细将按新规则重新归因',
    'pt.persons': '带来客户',
  },
  en: {
    'nav.partners': 'Partners',
    'pt.title': 'Partners and distributors',
    'pt.empty': 'No partners yet. Add a creator (KOC, MCN), or turn a loyal customer into a distributor.',
    'pt.f.id': 'Id',
    'pt.f.name': 'Name',
    'pt.f.kind': 'Kind',
    'pt.f.identity': 'Partner identity (e.g. wecom:koc01)',
    'pt.f.rate': 'Commission in basis points (1000 = 10%)',
    'pt.f.hold': 'Refund window (e.g. 7d)',
    'pt.f.window': 'Attribution window (e.g. 30d)',
    'pt.f.fees': 'Fixed fees (fen)',
    'pt.k.koc': 'KOC',
    'pt.k.mcn': 'MCN',
    'pt.k.distributor': 'Distributor',
    'pt.held': 'Held',
    'pt.payable': 'Payable',
    'pt.paid': 'Paid',
    'pt.clawed_back': 'Clawed back',
    'pt.refused': 'Refused',
    'pt.revenue': 'Revenue',
    'pt.roi': 'ROI',
    'pt.repeat': 'Repeat rate',
    'pt.new': 'New partner',
    'pt.save': 'Save',
    'pt.saved': 'Saved "{name}"',
    'pt.from_person': 'Turn a customer into a distributor',
    'pt.from_person_id': 'Customer identity (e.g. douyin:…)',
    'pt.made': 'Now a distributor: {id}',
    'pt.ledger': 'Commission ledger',
    'pt.payout': 'Pay what is payable',
    'pt.paid_out': 'Paid ¥{amount} ({lines} lines)',
    'pt.csv': 'Export payout CSV',
    'pt.code': 'Link code',
    'pt.l.order': 'Order',
    'pt.l.person': 'Customer',
    'pt.l.kind': 'Kind',
    'pt.l.status': 'Status',
    'pt.l.base': 'Net revenue',
    'pt.l.amount': 'Commission',
    'pt.l.flag': 'Anti-fraud',
    'pt.no_lines': 'No orders are credited to this partner yet.',
    'pt.lk.accrual': 'Accrual',
    'pt.lk.adjustment': 'Adjustment',
    'pt.lk.clawback': 'Clawback',
    'pt.lk.refused': 'Refused',
    'pt.ls.held': 'Held',
    'pt.ls.payable': 'Payable',
    'pt.ls.paid': 'Paid',
    'pt.ls.refused': 'Refused',
    'pt.flag.self_referral': 'Self-referral',
    'pt.flag.shared_device': 'Shared device',
    'pt.share': 'Link and poster',
    'pt.link': 'Landing page',
    'pt.qr': 'QR code',
    'pt.poster': 'Poster',
    'pt.program': 'Attribution',
    'pt.model': 'When several partners brought the same customer, credit the order to',
    'pt.m.first_touch': 'the first partner (default)',
    'pt.m.last_touch': 'the latest partner',
    'pt.program_saved': 'Attribution saved: ledgers are re-credited under it',
    'pt.persons': 'Customers brought',
  },
});

window.PartnerPages = function (ui) {
  const { h, api, card, toast, enc, yuan, msgOf, faults, person, empty } = ui;
  const { t } = window.I18N;
  const head = (keys) => h('thead', {}, h('tr', {}, keys.map((k) => h('th', {}, t(k)))));
  const pct = (x) => (typeof x === 'number' ? (x * 100).toFixed(1) + '%' : '—');
  const ratio = (x) => (typeof x === 'number' ? x.toFixed(2) : '—');

  async function partners(main, arg) {
    if (arg) return ledgerPage(main, arg);
    const r = await api('GET', '/v1/partners');
    if (!r.ok) { main.replaceChildren(h('p', { class: 'error' }, msgOf(r))); return; }
    const list = r.data.partners;
    const ledgers = await Promise.all(list.map((p) => api('GET', '/v1/partners/' + enc(p.id) + '/ledger')));
    const rows = list.map((p, i) => {
      const l = ledgers[i].ok ? ledgers[i].data : null;
      const tt = l ? l.totals : {};
      return h('tr', { 'data-partner': p.id },
        h('td', {}, h('a', { href: '#/partners/' + enc(p.id) }, p.name)),
        h('td', {}, t('pt.k.' + p.kind)),
        h('td', { class: 'num' }, yuan(tt.held)), h('td', { class: 'num' }, yuan(tt.payable)),
        h('td', { class: 'num' }, yuan(tt.paid)), h('td', { class: 'num' }, yuan(tt.clawed_back)),
        h('td', { class: 'num' }, l ? String(l.roi.persons) : '—'),
        h('td', { class: 'num' }, l ? yuan(l.roi.revenue) : '—'),
        h('td', { class: 'num roi' }, l ? ratio(l.roi.roi) : '—'),
        h('td', { class: 'num' }, l ? pct(l.roi.repeat_rate) : '—'));
    });
    const table = rows.length
      ? h('table', { class: 'list', id: 'partner-list' },
        head(['pt.f.name', 'pt.f.kind', 'pt.held', 'pt.payable', 'pt.paid', 'pt.clawed_back', 'pt.persons', 'pt.revenue', 'pt.roi', 'pt.repeat']),
        h('tbody', {}, rows))
      : empty('partner-empty', t('pt.empty'));
    main.replaceChildren(h('h1', {}, t('pt.title')),
      card(t('pt.title'), table), h('div', { class: 'split' }, editor(), fromPerson()), ...[await program()].filter(Boolean));
  }

  function editor() {
    const f = {
      id: h('input', { id: 'pt-f-id', placeholder: t('pt.f.id'), required: true, 'data-write': true }),
      name: h('input', { id: 'pt-f-name', placeholder: t('pt.f.name'), required: true, 'data-write': true }),
      kind: h('select', { id: 'pt-f-kind', 'data-write': true }, ['koc', 'mcn', 'distributor'].map((k) => h('option', { value: k }, t('pt.k.' + k)))),
      identity: h('input', { id: 'pt-f-identity', placeholder: t('pt.f.identity'), required: true, 'data-write': true }),
      rate: h('input', { id: 'pt-f-rate', type: 'number', min: 0, max: 10000, value: 1000, placeholder: t('pt.f.rate'), 'data-write': true }),
      hold: h('input', { id: 'pt-f-hold', value: '7d', placeholder: t('pt.f.hold'), 'data-write': true }),
      window: h('input', { id: 'pt-f-window', value: '30d', placeholder: t('pt.f.window'), 'data-write': true }),
      fees: h('input', { id: 'pt-f-fees', type: 'number', min: 0, value: 0, placeholder: t('pt.f.fees'), 'data-write': true }),
    };
    const out = h('div', { id: 'pt-f-result' });
    const form = h('form', { class: 'editor', id: 'pt-form', onsubmit: async (e) => {
      e.preventDefault();
      const body = {
        name: f.name.value, kind: f.kind.value, identity: f.identity.value.trim(),
        commission: { rate_bp: Number(f.rate.value) }, hold: f.hold.value.trim(),
        attribution: { window: f.window.value.trim() }, fees: Number(f.fees.value || 0),
      };
      const r = await api('PUT', '/v1/partners/' + enc(f.id.value.trim()), body);
      if (r.ok) { toast(t('pt.saved', { name: r.data.name }), 'good'); ui.render(); } else if (r.status !== 403) out.replaceChildren(faults('pt-fault', msgOf(r)));
    } },
    f.id, f.name, f.kind, f.identity, f.rate, f.hold, f.window, f.fees, out,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', id: 'pt-save', 'data-write': true }, t('pt.save'))));
    return card(t('pt.new'), form);
  }

  function fromPerson() {
    const who = h('input', { id: 'pt-person', placeholder: t('pt.from_person_id'), required: true, 'data-write': true });
    const out = h('div', { id: 'pt-person-result' });
    const form = h('form', { class: 'editor', id: 'pt-person-form', onsubmit: async (e) => {
      e.preventDefault();
      const r = await api('POST', '/v1/partners/from-person', { identity: who.value.trim() });
      if (r.ok) { toast(t('pt.made', { id: r.data.partner.id }), 'good'); ui.render(); } else if (r.status !== 403) out.replaceChildren(faults('pt-person-fault', msgOf(r)));
    } }, who, out, h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', id: 'pt-make', 'data-write': true }, t('pt.from_person'))));
    return card(t('pt.from_person'), form);
  }

  async function ledgerPage(main, id) {
    const [p, l, link] = await Promise.all([
      api('GET', '/v1/partners/' + enc(id)),
      api('GET', '/v1/partners/' + enc(id) + '/ledger'),
      api('GET', '/v1/partners/' + enc(id) + '/link', undefined, { quiet: true }),
    ]);
    if (!p.ok || !l.ok) { main.replaceChildren(h('p', { class: 'error' }, msgOf(p.ok ? l : p))); return; }
    const tt = l.data.totals;
    const kpi = (k, v, cls) => h('div', { class: 'kpi ' + (cls || '') }, h('div', { class: 'kpi-label' }, t(k)), h('div', { class: 'kpi-value' }, v));
    const lines = l.data.lines;
    const table = lines.length
      ? h('table', { class: 'list', id: 'partner-ledger' },
        head(['pt.l.order', 'pt.l.person', 'pt.l.kind', 'pt.l.status', 'pt.l.base', 'pt.l.amount', 'pt.l.flag']),
        h('tbody', {}, lines.map((x) => h('tr', { 'data-status': x.status, 'data-kind': x.kind },
          h('td', {}, x.order_id + (x.n ? ' #' + x.n : '')), h('td', {}, person(x.person)),
          h('td', {}, t('pt.lk.' + x.kind)), h('td', {}, t('pt.ls.' + x.status)), h('td', { class: 'num' }, yuan(x.base)),
          h('td', { class: 'num' + (x.amount < 0 ? ' bad' : '') }, yuan(x.amount)),
          h('td', {}, x.flag ? t('pt.flag.' + x.flag) : '')))))
      : empty('partner-ledger-empty', t('pt.no_lines'));
    const pay = h('button', { type: 'button', class: 'primary', id: 'pt-payout', 'data-write': true, disabled: tt.payable <= 0, onclick: async () => {
      const r = await api('POST', '/v1/partners/' + enc(id) + '/payouts', {});
      if (r.ok) { toast(t('pt.paid_out', { amount: yuan(r.data.paid), lines: r.data.lines }), 'good'); ui.render(); } else if (r.status !== 403) toast(msgOf(r), 'error');
    } }, t('pt.payout'));
    main.replaceChildren(h('h1', {}, p.data.name + ' · ' + t('pt.k.' + p.data.kind)),
      h('div', { class: 'kpis', id: 'partner-totals' },
        kpi('pt.held', yuan(tt.held)), kpi('pt.payable', yuan(tt.payable)), kpi('pt.paid', yuan(tt.paid)),
        kpi('pt.clawed_back', yuan(tt.clawed_back)), kpi('pt.refused', String(tt.refused_orders)),
        kpi('pt.revenue', yuan(l.data.roi.revenue)), kpi('pt.roi', ratio(l.data.roi.roi), 'roi'), kpi('pt.repeat', pct(l.data.roi.repeat_rate))),
      card(t('pt.ledger'),
        h('div', { class: 'actions' }, pay, ' ',
          h('a', { href: '/v1/partners/' + enc(id) + '/ledger.csv', id: 'pt-csv', download: 'partner-' + id + '-ledger.csv' }, t('pt.csv')),
          link.ok ? h('span', { class: 'muted small' }, ' ' + t('pt.code') + ': ', h('code', { id: 'pt-code' }, link.data.code)) : null),
        table),
      ...(link.ok ? [share(link.data)] : []));
  }

  // The partner's public landing, its QR (public) and its poster (fetched
  // with the session cookie and shown through a blob: URL, as the fission
  // page does, so an error stays visible).
  function share(l) {
    const poster = h('img', { id: 'pt-poster', class: 'poster', alt: t('pt.poster'), hidden: true });
    const out = h('div', { id: 'pt-poster-result' });
    fetch(l.poster, { credentials: 'same-origin' }).then(async (resp) => {
      if (!resp.ok) { const b = await resp.json().catch(() => ({})); out.replaceChildren(h('p', { class: 'error' }, b.message || String(resp.status))); return; }
      poster.src = URL.createObjectURL(await resp.blob());
      poster.hidden = false;
    });
    return card(t('pt.share'),
      h('table', { class: 'kv' }, h('tbody', {},
        h('tr', {}, h('th', {}, t('pt.link')), h('td', {}, h('a', { id: 'pt-link', class: 'key', href: l.link, target: '_blank', rel: 'noopener' }, l.link))))),
      h('div', { class: 'split' },
        h('figure', {}, h('img', { id: 'pt-qr', src: l.qr, width: 200, height: 200, alt: t('pt.qr') }), h('figcaption', { class: 'muted small' }, t('pt.qr'))),
        h('figure', {}, poster, out)));
  }

  // The program's attribution model (first or last touch).
  async function program() {
    const r = await api('GET', '/v1/partners/settings', undefined, { quiet: true });
    if (!r.ok) return null;
    const sel = h('select', { id: 'pt-model', 'data-write': true }, ['first_touch', 'last_touch'].map((m) =>
      h('option', { value: m, selected: r.data.model === m }, t('pt.m.' + m))));
    sel.onchange = async () => {
      const w = await api('PUT', '/v1/partners/settings', { model: sel.value });
      if (w.ok) toast(t('pt.program_saved'), 'good'); else if (w.status !== 403) toast(msgOf(w), 'error');
    };
    return card(t('pt.program'), h('label', {}, t('pt.model') + ' ', sel));
  }

  return { partners };
};
