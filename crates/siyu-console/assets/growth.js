// siyu console: the growth pages — fission campaigns (/v1/campaigns),
// communities (groups, operators and their load, hand-over, live codes,
// group health: /v1/groups, /v1/operators, /v1/livecodes) and the content
// library (/v1/content). app.js calls `GrowthPages(ui)` with its helpers and
// gets the page functions back; like the other pages, the DOM is built with
// `h()` (textContent only) and writes carry `data-write` so an analyst's
// controls are disabled (the server refuses them anyway).
'use strict';
window.GrowthPages = function (ui) {
  const { h, api, card, toast, enc, yuan, faults, msgOf, when, empty, person, removeButton } = ui;
  const { t } = window.I18N;
  const C = window.Charts;

  const head = (keys) => h('thead', {}, h('tr', {}, keys.map((k) => h('th', {}, k ? t(k) : ''))));
  const kpi = (label, value, id) => h('div', { class: 'kpi' }, h('div', { class: 'kpi-label' }, label), h('div', { class: 'kpi-value', id }, value));
  // A label that falls back to the code when there is no translation.
  const label = (prefix, code) => { const k = prefix + code; const s = t(k); return s === k ? code : s; };
  const days = (secs) => (typeof secs === 'number' ? (secs / 86400).toFixed(1) : '—');

  // ---------- fission campaigns ----------
  function campaignExample() {
    return {
      name: t('gr.f.example_name'),
      tiers: [{ invites: 3, reward: 'coupon' }, { invites: 10, reward: 'gift' }],
      rewards: { coupon: { stock: 500, cost: 1000 }, gift: { stock: 50, cost: 8900 } },
      rules: { convert_within: '14d', hold: '7d', max_per_device: 3 },
      grant: 'instant',
      landing: { next: 'add_friend' },
    };
  }

  const tiersText = (c) => (c.tiers || []).map((x) => `${x.invites}→${x.reward}`).join(' · ');

  async function fission(main, arg) {
    const id = (arg || '').split('?')[0] || null;
    const [list, tpls, codes] = await Promise.all([api('GET', '/v1/campaigns'), api('GET', '/v1/templates'), api('GET', '/v1/livecodes')]);
    const cs = (list.data && list.data.campaigns) || [];
    const names = { templates: ((tpls.data && tpls.data.templates) || []).map((x) => x.name), livecodes: ((codes.data && codes.data.livecodes) || []).map((x) => x.id) };
    const rows = cs.map((c) => h('tr', { class: c.id === id ? 'active' : '', 'data-campaign': c.id },
      h('td', {}, h('a', { href: '#/fission/' + enc(c.id) }, c.id)),
      h('td', {}, c.name),
      h('td', {}, tiersText(c)),
      h('td', {}, t('gr.f.grant.' + (c.grant || 'instant'))),
      h('td', { class: 'small' }, Object.entries(c.rewards || {}).map(([k, r]) => `${k}: ${C.fmt(r.stock)}`).join(' · '))));
    const table = cs.length ? h('table', { class: 'list', id: 'campaign-list' }, head(['gr.f.id', 'gr.f.name', 'gr.f.tiers', 'gr.f.grant', 'gr.f.stock']), h('tbody', {}, rows))
      : list.ok ? empty('campaigns-empty', t('gr.f.empty'), 'PUT /v1/campaigns/{id}') : h('p', { class: 'error' }, msgOf(list));
    const parts = [h('div', { class: 'page-head' }, h('h1', {}, t('nav.fission')), h('span', { class: 'page-links' }, h('a', { href: '#/partners', id: 'partners-link' }, t('nav.partners') + ' →'), ' ', h('a', { href: '#/live', id: 'live-link' }, t('live.link')))),
      card(t('gr.f.list'), table, h('div', { class: 'actions' }, h('a', { class: 'button', href: '#/fission', id: 'campaign-new' }, '+ ' + t('gr.f.new'))))];
    const current = cs.find((c) => c.id === id) || null;
    if (!current) {
      parts.push(card(t('gr.f.new'), campaignEditor(null, id, names)));
      main.replaceChildren(...parts);
      return;
    }
    const base = '/v1/campaigns/' + enc(current.id);
    const [stats, board, inv, rewards] = await Promise.all([
      api('GET', base + '/stats'),
      api('GET', base + '/leaderboard?limit=20'),
      api('GET', base + '/invitees?limit=100' + (invFilter() ? '&status=' + invFilter() : '')),
      api('GET', base + '/rewards'),
    ]);
    parts.push(h('h2', { id: 'campaign-title' }, `${current.name} · ${current.id}`));
    parts.push(statsView(stats));
    parts.push(h('div', { class: 'grid2' },
      h('div', {}, leaderboard(board), posterCard(current, board)),
      h('div', {}, rewardsCard(current, rewards), card(t('gr.f.definition'), campaignEditor(current, current.id, names)))));
    parts.push(invitees(current, inv));
    main.replaceChildren(...parts);
  }

  // The invitee filter lives in the hash query: #/fission/ID?status=invalid.
  function invFilter() {
    const s = new URLSearchParams(location.hash.split('?')[1] || '').get('status');
    return ['valid', 'pending', 'invalid'].includes(s) ? s : '';
  }

  function statsView(stats) {
    if (!stats.ok) return card(t('gr.f.funnel'), h('p', { class: 'error' }, msgOf(stats)));
    const d = stats.data;
    const f = d.funnel || {};
    const P = C.PALETTE;
    const rows = [
      { label: t('gr.f.clicks'), value: f.clicks || 0, color: P[3] },
      { label: t('gr.f.signups'), value: f.signups || 0, color: P[1] },
      { label: t('gr.f.valid'), value: f.valid || 0, color: P[0] },
      { label: t('gr.f.pending'), value: f.pending || 0, color: P[2] },
      { label: t('gr.f.invalid'), value: f.invalid || 0, color: P[4] },
      { label: t('gr.f.converted'), value: f.converted || 0, color: P[0] },
    ];
    const reasons = Object.entries(f.invalid_by_reason || {}).map(([k, n]) => ({ label: label('gr.reason.', k), value: n, color: P[4] }));
    const perValid = d.reward_cost_per_valid == null ? '—' : '¥' + yuan(Math.round(d.reward_cost_per_valid));
    return h('div', {},
      h('div', { class: 'kpis', id: 'campaign-kpis' },
        kpi(t('gr.f.k_factor'), typeof f.k_factor === 'number' ? f.k_factor.toFixed(2) : '—', 'k-factor'),
        kpi(t('gr.f.cost_per_valid'), perValid, 'cost-per-valid'),
        kpi(t('gr.f.revenue'), '¥' + yuan(f.referred_revenue || 0), 'referred-revenue'),
        kpi(t('gr.f.cycle'), f.cycle_time_median_secs == null ? '—' : t('gr.f.days', { d: days(f.cycle_time_median_secs) }), 'cycle-time')),
      h('div', { class: 'grid2' },
        card(t('gr.f.funnel'), h('div', { id: 'campaign-funnel' }, C.bars(rows, { title: t('gr.f.funnel') })),
          h('p', { class: 'muted small' }, t('gr.f.funnel_help', { inviters: C.fmt(f.inviters || 0), granted: d.rewards_granted, clawed: d.rewards_clawed_back, cost: yuan(d.reward_cost || 0), ms: (d.evaluation_ms || 0).toFixed(1) }))),
        card(t('gr.f.invalid_by_reason'), reasons.length ? h('div', { id: 'campaign-reasons' }, C.bars(reasons, { title: t('gr.f.invalid_by_reason') })) : empty('reasons-empty', t('gr.f.no_invalid')))));
  }

  function leaderboard(board) {
    const top = (board.data && board.data.top) || [];
    const table = top.length ? h('table', { class: 'list', id: 'leaderboard' }, head(['gr.f.rank', 'gr.f.inviter', 'gr.f.valid', 'gr.f.pending']),
      h('tbody', {}, top.map((r, i) => h('tr', { 'data-inviter': r.inviter }, h('td', { class: 'num' }, String(i + 1)), h('td', {}, person(r.inviter)),
        h('td', { class: 'num' }, C.fmt(r.valid)), h('td', { class: 'num' }, C.fmt(r.pending))))))
      : board.ok ? empty('leaderboard-empty', t('gr.f.no_signups')) : h('p', { class: 'error' }, msgOf(board));
    const ms = board.data && typeof board.data.evaluation_ms === 'number' ? h('p', { class: 'muted small' }, t('gr.f.evaluated', { ms: board.data.evaluation_ms.toFixed(1), n: C.fmt(board.data.signups) })) : null;
    return card(t('gr.f.leaderboard'), table, ms);
  }

  // An inviter's invite link and QR poster. The poster is fetched with the
  // session cookie and shown through a blob: URL (an <img src> to the API
  // would work too, but this keeps errors visible and the auth explicit).
  function posterCard(c, board) {
    const top = (board.data && board.data.top) || [];
    const who = h('input', { id: 'poster-identity', placeholder: t('gr.f.inviter_placeholder'), value: top.length ? top[0].inviter : '', required: true });
    const out = h('div', { id: 'invite-result' });
    const img = h('img', { id: 'poster-img', alt: t('gr.f.poster'), class: 'poster', hidden: true });
    let url = null;
    const open = async () => {
      const identity = who.value.trim();
      if (!identity) return;
      const resp = await fetch(`/v1/campaigns/${enc(c.id)}/poster?identity=${enc(identity)}`, { credentials: 'same-origin' });
      if (!resp.ok) {
        const body = await resp.json().catch(() => ({}));
        img.hidden = true;
        out.replaceChildren(h('p', { class: 'error', id: 'poster-error' }, body.message || String(resp.status)));
        return;
      }
      if (url) URL.revokeObjectURL(url);
      url = URL.createObjectURL(await resp.blob());
      img.src = url;
      img.hidden = false;
    };
    const invite = async () => {
      const identity = who.value.trim();
      if (!identity) return;
      const r = await api('POST', `/v1/campaigns/${enc(c.id)}/invites`, { identity });
      if (!r.ok) { if (r.status !== 403) out.replaceChildren(h('p', { class: 'error', id: 'invite-error' }, msgOf(r))); return; }
      out.replaceChildren(h('table', { class: 'kv' }, h('tbody', {},
        h('tr', {}, h('th', {}, t('gr.f.code')), h('td', {}, h('code', { id: 'invite-code', class: 'key' }, r.data.code))),
        h('tr', {}, h('th', {}, t('gr.f.link')), h('td', {}, h('code', { id: 'invite-link', class: 'key' }, r.data.link))))));
      await open();
    };
    return card(t('gr.f.poster'), h('p', { class: 'muted small' }, t('gr.f.poster_help')),
      h('form', { class: 'search', onsubmit: (e) => { e.preventDefault(); open(); } }, who,
        h('button', { type: 'submit', id: 'poster-open' }, t('gr.f.open_poster')),
        h('button', { type: 'button', id: 'invite-create', class: 'primary', 'data-write': true, onclick: invite }, t('gr.f.create_invite'))),
      out, img);
  }

  function rewardsCard(c, rewards) {
    if (!rewards.ok) return card(t('gr.f.rewards'), h('p', { class: 'error' }, msgOf(rewards)));
    const stock = rewards.data.stock_left || {};
    const ledger = rewards.data.ledger || [];
    const stockRows = Object.entries(c.rewards || {}).map(([name, r]) => ({ name, left: stock[name] != null ? stock[name] : r.stock, total: r.stock, cost: r.cost }));
    const statusBadge = (s) => h('span', { class: 'badge ' + (s === 'granted' ? 'status-done' : s === 'clawed_back' ? 'status-dead' : 'status-suppressed') }, label('gr.f.ledger.', s));
    const reconcile = h('button', { type: 'button', id: 'campaign-reconcile', 'data-write': true, onclick: async (e) => {
      e.target.disabled = true;
      const r = await api('POST', `/v1/campaigns/${enc(c.id)}/reconcile`);
      e.target.disabled = false;
      if (r.ok) { toast(t('gr.f.reconciled'), 'good'); ui.render(); } else if (r.status !== 403) toast(msgOf(r), 'error');
    } }, t('gr.f.reconcile'));
    return card(t('gr.f.rewards'),
      h('table', { class: 'list', id: 'reward-stock' }, head(['gr.f.reward', 'gr.f.stock_left', 'gr.f.unit_cost']),
        h('tbody', {}, stockRows.map((r) => h('tr', { 'data-reward': r.name }, h('td', {}, r.name), h('td', {}, C.meter(r.left, r.total)), h('td', { class: 'num' }, '¥' + yuan(r.cost || 0)))))),
      ledger.length ? h('table', { class: 'list', id: 'reward-ledger' }, head(['gr.f.inviter', 'gr.f.tier', 'gr.f.reward', 'gr.f.status', 'gr.f.time']),
        h('tbody', {}, ledger.slice(-200).reverse().map((x) => h('tr', {}, h('td', {}, person(x.inviter)), h('td', { class: 'num' }, String(x.tier + 1)), h('td', {}, x.reward), h('td', {}, statusBadge(x.status)), h('td', { class: 'nowrap' }, when(x.at))))))
        : empty('ledger-empty', t('gr.f.no_rewards')),
      h('div', { class: 'actions' }, reconcile));
  }

  function verdictBadge(v) {
    if (!v) return '—';
    if (v.status === 'valid') return h('span', { class: 'badge status-done' }, t('gr.f.valid'));
    if (v.status === 'pending') return h('span', { class: 'badge status-pending', title: when(v.until) }, t('gr.f.pending_until', { at: when(v.until) }));
    return h('span', { class: 'badge status-dead' }, t('gr.f.invalid') + ' · ' + label('gr.reason.', v.reason));
  }

  function invitees(c, inv) {
    const status = invFilter();
    const tabs = h('div', { class: 'tabs', role: 'tablist', id: 'invitee-tabs' }, ['', 'valid', 'pending', 'invalid'].map((k) =>
      h('a', { href: '#/fission/' + enc(c.id) + (k ? '?status=' + k : ''), role: 'tab', 'data-tab': k || 'all', class: k === status ? 'tab active' : 'tab' }, t(k ? 'gr.f.' + k : 'gr.f.all'))));
    const list = (inv.data && inv.data.invitees) || [];
    const decide = (invitee, valid) => async (e) => {
      e.target.disabled = true;
      const r = await api('POST', `/v1/campaigns/${enc(c.id)}/overrides`, { invitee, valid });
      if (r.ok) { toast(t('gr.f.overridden'), 'good'); ui.render(); } else { e.target.disabled = false; if (r.status !== 403) toast(msgOf(r), 'error'); }
    };
    const rows = list.map((x) => h('tr', { 'data-invitee': x.invitee },
      h('td', {}, person(x.invitee)), h('td', {}, person(x.inviter)), h('td', { class: 'nowrap' }, when(x.ts)),
      h('td', {}, verdictBadge(x.verdict)),
      h('td', {}, x.flag ? h('span', { class: 'badge status-suppressed' }, label('gr.reason.', x.flag)) : ''),
      h('td', {}, x.converted ? '✓' : ''),
      h('td', {}, x.overridden == null ? '' : h('span', { class: 'badge' }, t(x.overridden ? 'gr.f.forced_valid' : 'gr.f.forced_invalid'))),
      h('td', { class: 'nowrap' },
        h('button', { type: 'button', class: 'link override-valid', 'data-write': true, onclick: decide(x.invitee, true) }, t('gr.f.count')),
        h('button', { type: 'button', class: 'link danger override-invalid', 'data-write': true, onclick: decide(x.invitee, false) }, t('gr.f.reject')),
        x.overridden == null ? null : h('button', { type: 'button', class: 'link override-clear', 'data-write': true, onclick: decide(x.invitee, null) }, t('gr.f.clear')))));
    const table = list.length ? h('table', { class: 'list', id: 'invitee-list' }, head(['gr.f.invitee', 'gr.f.inviter', 'gr.f.time', 'gr.f.verdict', 'gr.f.flag', 'gr.f.converted', 'gr.f.override', '']), h('tbody', {}, rows))
      : inv.ok ? empty('invitees-empty', t('gr.f.no_signups')) : h('p', { class: 'error' }, msgOf(inv));
    return card(t('gr.f.invitees'), tabs, h('p', { class: 'muted small' }, t('gr.f.invitees_help')), table);
  }

  // The campaign as a form (tiers, rewards, rules, landing), its JSON in
  // the "advanced" tab (editors.js); fields a form lacks (the poster) ride along.
  function campaignEditor(current, id, names) {
    // The saved form spells out every unset rule as null: leave those out.
    const compact = (v) => (Array.isArray(v) ? v.map(compact) : v && typeof v === 'object'
      ? Object.fromEntries(Object.entries(v).filter(([, x]) => x !== null).map(([k, x]) => [k, compact(x)])) : v);
    const def = current ? compact(current) : campaignExample();
    delete def.id;
    return ui.editors.campaign({
      value: def, id: current ? current.id : (id || ''), readonly: !!current, templates: names.templates, livecodes: names.livecodes,
      extraActions: current ? removeButton({ id: 'campaign-archive', path: '/v1/campaigns/' + enc(current.id), name: current.id, label: 'del.archive', confirm: 'del.campaign_confirm', done: () => { location.hash = '#/fission'; } }) : null,
      save: async (n, body) => {
        const r = await api('PUT', '/v1/campaigns/' + enc(n), body, { type: 'application/json' });
        if (r.ok) {
          toast(t('gr.f.saved', { id: n }), 'good');
          if (current && current.id === n) ui.render(); else location.hash = '#/fission/' + enc(n);
        }
        return r;
      },
    });
  }

  // ---------- communities ----------
  async function communities(main, arg) {
    const [groups, ops, codes, tpls] = await Promise.all([api('GET', '/v1/groups'), api('GET', '/v1/operators'), api('GET', '/v1/livecodes'), api('GET', '/v1/templates')]);
    const gs = (groups.data && groups.data.groups) || [];
    const os = (ops.data && ops.data.operators) || [];
    const selected = gs.find((g) => g.id === arg) || null;
    const parts = [h('div', { class: 'page-head' }, h('h1', {}, t('nav.communities')), h('span', { class: 'page-links' }, h('a', { href: '#/moments', id: 'moments-link' }, t('mo.link'))))];
    parts.push(h('div', { class: 'grid2' }, groupsCard(gs, groups, selected), operatorsCard(os, ops)));
    // Group health is one pass over the log (seconds at millions of
    // events): the page renders first and the card fills in when it comes.
    let healthSlot = null;
    if (selected) {
      healthSlot = h('div', { id: 'group-health-slot' }, card(`${t('gr.c.health')} · ${selected.name || selected.id}`, h('p', { class: 'muted' }, t('gr.c.health_loading'))));
      api('GET', '/v1/groups/' + enc(selected.id) + '/health').then((r) => healthSlot.replaceChildren(healthCard(selected, r)));
    }
    parts.push(h('div', { class: 'grid2' },
      h('div', {}, healthSlot, groupEditor(selected, os, groups.data && groups.data.capacity_limits)),
      h('div', {}, handoverCard(os), operatorEditor(), liveCodesCard((codes.data && codes.data.livecodes) || [], codes,
        { groups: gs.map((g) => g.id), operators: os.filter((o) => o.status === 'active').map((o) => o.login), templates: ((tpls.data && tpls.data.templates) || []).map((x) => x.name) }))));
    main.replaceChildren(...parts);
  }

  function groupsCard(gs, r, selected) {
    const rows = gs.map((g) => h('tr', { 'data-group': g.id, class: selected && selected.id === g.id ? 'active' : '' },
      h('td', {}, h('a', { href: '#/communities/' + enc(g.id) }, g.name || g.id), g.name && g.name !== g.id ? h('div', { class: 'muted small' }, g.id) : null),
      h('td', { title: g.channel }, I18N.channel(g.channel)),
      h('td', {}, g.owner),
      h('td', { class: 'size' }, C.meter(g.size, g.capacity, { extra: g.reserved })),
      h('td', { class: 'num' }, C.fmt(g.free)),
      h('td', {}, g.archived ? h('span', { class: 'badge' }, t('gr.c.archived')) : '')));
    const table = gs.length ? h('table', { class: 'list', id: 'group-list' }, head(['gr.c.group', 'gr.c.channel', 'gr.c.owner', 'gr.c.size', 'gr.c.free', '']), h('tbody', {}, rows))
      : r.ok ? empty('groups-empty', t('gr.c.no_groups'), 'PUT /v1/groups/{id}') : h('p', { class: 'error' }, msgOf(r));
    return card(t('gr.c.groups'), table, h('p', { class: 'muted small' }, t('gr.c.size_help')));
  }

  function operatorsCard(os, r) {
    const rows = os.map((o) => h('tr', { 'data-operator': o.login },
      h('td', {}, o.login, o.name && o.name !== o.login ? h('div', { class: 'muted small' }, o.name) : null),
      h('td', {}, h('span', { class: 'badge ' + (o.status === 'active' ? 'status-done' : 'status-dead') }, t('gr.c.status.' + o.status))),
      h('td', { class: 'load' }, C.meter(o.groups || 0, o.max_groups)),
      h('td', { class: 'num persons' }, C.fmt(o.persons || 0)),
      h('td', {}, o.backup || ''),
      h('td', { class: 'small' }, o.handed_to ? '→ ' + o.handed_to : '')));
    const table = os.length ? h('table', { class: 'list', id: 'operator-load' }, head(['gr.c.operator', 'gr.c.state', 'gr.c.groups_max', 'gr.c.persons', 'gr.c.backup', 'gr.c.handed_to']), h('tbody', {}, rows))
      : r.ok ? empty('operators-empty', t('gr.c.no_operators'), 'PUT /v1/operators/{login}') : h('p', { class: 'error' }, msgOf(r));
    return card(t('gr.c.operators'), table);
  }

  function healthCard(g, r) {
    if (!r.ok) return card(t('gr.c.health'), h('p', { class: 'error' }, msgOf(r)));
    const d = r.data;
    const perDay = d.per_day || [];
    const chart = perDay.length ? C.groupedBars(perDay.map((x) => ({ label: x.date.slice(5), values: [x.joins, x.leaves] })), [t('gr.c.joins'), t('gr.c.leaves')], { title: t('gr.c.health') }) : null;
    return card(`${t('gr.c.health')} · ${g.name || g.id}`,
      h('div', { class: 'kpis kpis-small', id: 'group-health' },
        kpi(t('gr.c.size'), `${C.fmt(d.size)}/${C.fmt(d.capacity)}`, 'health-size'),
        kpi(t('gr.c.net', { d: d.window.days }), (d.net > 0 ? '+' : '') + d.net, 'health-net'),
        kpi(t('gr.c.active_rate'), (100 * (d.active_rate || 0)).toFixed(1) + '%', 'health-active'),
        kpi(t('gr.c.left_after_reward'), C.fmt(d.left_after_reward.count), 'health-left')),
      chart ? h('div', { id: 'health-chart' }, chart) : null,
      h('p', { class: 'muted small' }, t('gr.c.health_help', { j: d.joins, l: d.leaves, n: C.fmt(d.events_scanned), ms: (d.ms || 0).toFixed(0) })));
  }

  // The most members a group on `channel` may have (the server's
  // per-channel limits from GET /v1/groups; it refuses more too).
  function capacityLimit(limits, channel) {
    if (!limits) return 100000;
    return (limits.channels && limits.channels[channel]) || limits.default;
  }

  function groupEditor(g, os, limits) {
    const id = h('input', { id: 'group-id', value: g ? g.id : '', placeholder: 'vip_group_1', required: true, readonly: g ? true : null });
    const name = h('input', { id: 'group-name', value: g ? g.name : '', placeholder: t('gr.c.name_placeholder') });
    const channel = h('input', { id: 'group-channel', value: g ? g.channel : 'wecom', required: true });
    const capacity = h('input', { id: 'group-capacity', type: 'number', min: '1', value: String(g ? g.capacity : 500) });
    const capacityHint = h('div', { class: 'muted small', id: 'group-capacity-limit' });
    // No `max` on the input: the browser would block the submit without
    // saying why; the form's own check below names the channel's limit.
    const showLimit = () => {
      const ch = channel.value.trim();
      const max = capacityLimit(limits, ch);
      capacityHint.textContent = t('gr.c.capacity_limit', { channel: I18N.channel(ch), max: max.toLocaleString(I18N.lang()) });
    };
    channel.addEventListener('input', showLimit);
    showLimit();
    const owner = h('select', { id: 'group-owner' }, h('option', { value: '' }, t('gr.c.owner_auto')),
      os.filter((o) => o.status === 'active').map((o) => h('option', { value: o.login, selected: g && g.owner === o.login ? true : null }, `${o.login} (${o.groups || 0}/${o.max_groups})`)));
    const status = h('div', { id: 'group-status' });
    const form = h('form', { class: 'editor', id: 'group-form', onsubmit: async (e) => {
      e.preventDefault();
      status.replaceChildren();
      const body = { channel: channel.value.trim(), capacity: Number(capacity.value) };
      const max = capacityLimit(limits, body.channel);
      if (!(body.capacity >= 1 && body.capacity <= max)) {
        status.replaceChildren(faults('group-error', t('gr.c.capacity_too_large', { channel: I18N.channel(body.channel), max: max.toLocaleString(I18N.lang()) })));
        return;
      }
      if (name.value.trim()) body.name = name.value.trim();
      if (owner.value) body.owner = owner.value;
      if (g) { body.tags = g.tags || []; if (g.url) body.url = g.url; body.archived = !!g.archived; }
      const gid = id.value.trim();
      const r = await api('PUT', '/v1/groups/' + enc(gid), body);
      if (r.ok) { toast(t('gr.c.group_saved', { id: gid }), 'good'); if (g && g.id === gid) ui.render(); else location.hash = '#/communities/' + enc(gid); }
      else if (r.status !== 403) status.replaceChildren(faults('group-error', msgOf(r)));
    } },
      h('div', { class: 'row2' }, h('label', {}, t('gr.c.group_id'), id), h('label', {}, t('gr.c.name'), name)),
      h('div', { class: 'row2' }, h('label', {}, t('gr.c.channel'), channel), h('label', {}, t('gr.c.capacity'), capacity, capacityHint)),
      h('label', {}, t('gr.c.owner'), owner),
      status,
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', id: 'group-save', 'data-write': true }, t('auto.save')),
        g && !g.archived ? removeButton({ id: 'group-archive', path: '/v1/groups/' + enc(g.id), name: g.id, label: 'del.archive', confirm: 'del.group_confirm', status, done: () => { location.hash = '#/communities'; } }) : null,
        g ? h('a', { class: 'button', href: '#/communities' }, '+ ' + t('gr.c.new_group')) : null));
    return card(g ? `${t('gr.c.edit_group')} · ${g.id}` : t('gr.c.new_group'), form);
  }

  function operatorEditor() {
    const login = h('input', { id: 'opconf-login', placeholder: t('gr.c.login'), required: true });
    const name = h('input', { id: 'opconf-name', placeholder: t('gr.c.name') });
    const max = h('input', { id: 'opconf-max', type: 'number', min: '0', max: '10000', value: '7', 'aria-label': t('gr.c.max_groups') });
    const form = h('form', { class: 'search', id: 'opconf-form', onsubmit: async (e) => {
      e.preventDefault();
      const l = login.value.trim();
      const body = { max_groups: Number(max.value), status: 'active' };
      if (name.value.trim()) body.name = name.value.trim();
      const r = await api('PUT', '/v1/operators/' + enc(l), body);
      if (r.ok) { toast(t('gr.c.operator_saved', { login: l }), 'good'); ui.render(); } else if (r.status !== 403) toast(msgOf(r), 'error');
    } }, login, name, max, h('button', { type: 'submit', class: 'primary', id: 'opconf-save', 'data-write': true }, t('auto.save')));
    return card(t('gr.c.operator_new'), h('p', { class: 'muted small' }, t('gr.c.operator_help')), form);
  }

  function handoverCard(os) {
    const active = os.filter((o) => o.status === 'active');
    const from = h('select', { id: 'handover-from', 'aria-label': t('gr.c.handover_from') }, active.map((o) => h('option', { value: o.login }, `${o.login} (${C.fmt(o.persons || 0)} · ${o.groups || 0})`)));
    const to = h('select', { id: 'handover-to', 'aria-label': t('gr.c.handover_to') }, h('option', { value: '' }, t('gr.c.spread')), active.map((o) => h('option', { value: o.login }, o.login)));
    const status = h('select', { id: 'handover-status', 'aria-label': t('gr.c.state') }, ['left', 'banned'].map((s) => h('option', { value: s }, t('gr.c.status.' + s))));
    const reason = h('input', { id: 'handover-reason', placeholder: t('gr.c.reason') });
    const out = h('div', { id: 'handover-result' });
    const form = h('form', { class: 'editor', id: 'handover-form', onsubmit: async (e) => {
      e.preventDefault();
      if (!from.value) return;
      if (to.value === from.value) { out.replaceChildren(h('p', { class: 'error' }, t('gr.c.handover_self'))); return; }
      const target = to.value || t('gr.c.spread');
      if (!window.confirm(t('gr.c.handover_confirm', { from: from.value, to: target }))) return;
      const r = await api('POST', '/v1/operators/' + enc(from.value) + '/handover', { to: to.value || null, status: status.value, reason: reason.value.trim() || null });
      if (r.ok) { toast(t('gr.c.handed_over', { from: from.value, n: r.data.handover.persons, g: r.data.handover.groups }), 'good'); ui.render(); }
      else if (r.status !== 403) out.replaceChildren(faults('handover-error', msgOf(r)));
    } },
      h('p', { class: 'muted small' }, t('gr.c.handover_help')),
      h('div', { class: 'row2' }, h('label', {}, t('gr.c.handover_from'), from), h('label', {}, t('gr.c.handover_to'), to)),
      h('div', { class: 'row2' }, h('label', {}, t('gr.c.state'), status), h('label', {}, t('gr.c.reason'), reason)),
      out,
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'danger', id: 'handover-run', 'data-write': true, disabled: active.length ? null : true }, t('gr.c.handover'))));
    return card(t('gr.c.handover'), form);
  }

  function liveCodesCard(codes, r, names) {
    const targetText = (x) => (x.group ? t('gr.c.group') + ' ' + x.group : t('gr.c.operator') + ' ' + x.operator);
    // The form edits a live code; a row's name loads it there.
    const example = { targets: [{ group: names.groups[0] || 'vip_group_1' }], daily_cap_per_operator: 200, working_hours: { start: '09:00', end: '21:00', timezone: 'Asia/Shanghai' }, auto_tags: ['livecode'] };
    const form = ui.editors.livecode({
      value: example, id: '', groups: names.groups, operators: names.operators, templates: names.templates,
      save: async (id, body) => {
        const r2 = await api('PUT', '/v1/livecodes/' + enc(id), body, { type: 'application/json' });
        if (r2.ok) { toast(t('gr.c.livecode_saved', { id: r2.data.id }), 'good'); ui.render(); }
        return r2;
      },
    });
    const rows = codes.map((c) => h('tr', { 'data-livecode': c.id },
      h('td', {}, h('button', { type: 'button', class: 'link', onclick: () => { const v = Object.assign({}, c); delete v.id; delete v.wecom; form.setId(c.id); form.load(v); } }, c.id)),
      h('td', { class: 'small' }, (c.targets || []).map(targetText).join(' · ')),
      h('td', { class: 'num' }, c.daily_cap_per_operator != null ? String(c.daily_cap_per_operator) : '—'),
      h('td', { class: 'small nowrap' }, c.working_hours ? `${c.working_hours.start}–${c.working_hours.end}` : '—'),
      h('td', {}, h('code', {}, '/l/' + c.id)),
      h('td', {}, removeButton({ id: 'livecode-archive-' + c.id, path: '/v1/livecodes/' + enc(c.id), name: c.id, label: 'del.archive', confirm: 'del.livecode_confirm', done: () => ui.render() }))));
    const table = codes.length ? h('table', { class: 'list', id: 'livecode-list' }, head(['gr.c.code', 'gr.c.targets', 'gr.c.daily_cap', 'gr.c.hours', 'gr.c.public_link', '']), h('tbody', {}, rows))
      : r.ok ? empty('livecodes-empty', t('gr.c.no_livecodes'), 'PUT /v1/livecodes/{id}') : h('p', { class: 'error' }, msgOf(r));
    return card(t('gr.c.livecodes'), table, h('p', { class: 'muted small' }, t('gr.c.livecode_help')), form);
  }

  // ---------- content ----------
  async function content(main, id) {
    const r = await api('GET', '/v1/content');
    const items = (r.data && r.data.content) || [];
    const current = items.find((x) => x.id === id) || null;
    const rows = items.map((x) => h('tr', { 'data-content': x.id, class: current && current.id === x.id ? 'active' : '' },
      h('td', {}, h('a', { href: '#/content/' + enc(x.id) }, x.id)),
      h('td', {}, h('span', { class: 'badge' }, t('gr.k.kind.' + x.kind))),
      h('td', {}, x.title),
      h('td', { class: 'detail small' }, h('a', { href: x.url, target: '_blank', rel: 'noopener noreferrer' }, x.url)),
      h('td', { class: 'num views' }, C.fmt(x.views || 0)),
      h('td', {}, h('code', {}, `{{content.${x.id}}}`))));
    const table = items.length ? h('table', { class: 'list', id: 'content-list' }, head(['gr.k.id', 'gr.k.kind', 'gr.k.title', 'gr.k.url', 'gr.k.views', 'gr.k.token']), h('tbody', {}, rows))
      : r.ok ? empty('content-empty', t('gr.k.empty'), 'PUT /v1/content/{id}') : h('p', { class: 'error' }, msgOf(r));

    const idIn = h('input', { id: 'content-id', value: current ? current.id : '', placeholder: 'spring_guide', required: true, readonly: current ? true : null });
    const kind = h('select', { id: 'content-kind' }, ['article', 'image', 'miniprogram'].map((k) => h('option', { value: k, selected: current && current.kind === k ? true : null }, t('gr.k.kind.' + k))));
    const title = h('input', { id: 'content-title', value: current ? current.title : '', required: true });
    const url = h('input', { id: 'content-url', value: current ? current.url : '', placeholder: 'https://…', required: true });
    const appid = h('input', { id: 'content-appid', value: (current && current.appid) || '', placeholder: 'wx…' });
    const path = h('input', { id: 'content-path', value: (current && current.path) || '', placeholder: 'pages/index' });
    const mini = h('div', { class: 'row2' }, h('label', {}, 'appid', appid), h('label', {}, t('gr.k.path'), path));
    const syncKind = () => { mini.hidden = kind.value !== 'miniprogram'; };
    kind.addEventListener('change', syncKind);
    syncKind();
    const status = h('div', { id: 'content-status' });
    const form = h('form', { class: 'editor', id: 'content-form', onsubmit: async (e) => {
      e.preventDefault();
      status.replaceChildren();
      const body = { kind: kind.value, title: title.value.trim(), url: url.value.trim() };
      if (kind.value === 'miniprogram') {
        if (appid.value.trim()) body.appid = appid.value.trim();
        if (path.value.trim()) body.path = path.value.trim();
      }
      const cid = idIn.value.trim();
      const rr = await api('PUT', '/v1/content/' + enc(cid), body);
      if (rr.ok) { toast(t('gr.k.saved', { id: cid }), 'good'); if (current && current.id === cid) ui.render(); else location.hash = '#/content/' + enc(cid); }
      else if (rr.status !== 403) status.replaceChildren(faults('content-error', msgOf(rr)));
    } },
      h('div', { class: 'row2' }, h('label', {}, t('gr.k.id'), idIn), h('label', {}, t('gr.k.kind'), kind)),
      h('label', {}, t('gr.k.title'), title),
      h('label', {}, t('gr.k.url'), url),
      mini,
      status,
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', id: 'content-save', 'data-write': true }, t('auto.save')),
        current ? removeButton({ id: 'content-archive', path: '/v1/content/' + enc(current.id), name: current.id, label: 'del.archive', confirm: 'del.content_confirm', status, done: () => { location.hash = '#/content'; } }) : null,
        current ? h('a', { class: 'button', href: '#/content' }, '+ ' + t('gr.k.new')) : null));
    const help = h('p', { class: 'muted small', id: 'content-help' }, t('gr.k.help'), ' ', h('a', { href: '#/templates', id: 'content-templates' }, t('gr.k.to_templates')));
    main.replaceChildren(h('h1', {}, t('nav.content')),
      card(t('gr.k.list'), table, help),
      card(current ? `${current.title} · ${current.id}` : t('gr.k.new'), form));
  }

  return { fission, communities, content };
};
