// siyu console: the automation pages (journeys, templates, messages =
// the outbox, tasks, guardrails) over /v1/journeys, /v1/templates,
// /v1/outbox, /v1/tasks, /v1/guardrails and /v1/autoreply.
// app.js calls `AutomationPages(ui)` with its helpers and gets the page
// functions back; like app.js, the DOM is built with `h()` (textContent only).
'use strict';
window.AutomationPages = function (ui) {
  const { h, api, card, toast, enc, yuan, msgOf, when, empty, person, removeButton } = ui;
  const { t } = window.I18N;
  const C = window.Charts;

  const suppressLabel = (code) => { const k = 'auto.reason.' + code; const s = t(k); return s === k ? code : s; };

  // The faults of a 422, one line per path (app.js: `faults`).
  const faults = ui.faults;

  function triggerText(tr) {
    if (!tr) return '—';
    const label = t('auto.trigger.' + tr.type);
    const detail = Object.entries(tr).filter(([k]) => k !== 'type').map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ');
    return (label.startsWith('auto.') ? tr.type : label) + (detail ? ' · ' + detail : '');
  }

  // ---------- journeys ----------
  function journeyExample(template) {
    return {
      description: t('auto.j.example_description'),
      trigger: { type: 'event', event: 'add_friend', channel: 'wecom' },
      reentry: 'once',
      start: 'welcome',
      steps: {
        welcome: { type: 'send', template: template || 'welcome', next: 'wait' },
        wait: { type: 'wait_for_event', event: 'purchase', timeout: '3d', next: 'thanks', on_timeout: 'follow_up' },
        thanks: { type: 'add_tag', tag: 'converted' },
        follow_up: { type: 'task', title: t('auto.j.example_task'), due: '1d' },
      },
      enabled: true,
    };
  }

  async function journeys(main, name) {
    const [list, tpls, segs] = await Promise.all([api('GET', '/v1/journeys'), api('GET', '/v1/templates'), api('GET', '/v1/segments')]);
    const js = (list.data && list.data.journeys) || [];
    const templateNames = ((tpls.data && tpls.data.templates) || []).map((x) => x.name);
    const segmentNames = ((segs.data && segs.data.segments) || []).map((x) => x.name);
    const rows = js.map((j) => h('tr', { class: j.name === name ? 'active' : '', 'data-journey': j.name },
      h('td', {}, h('a', { href: '#/journeys/' + enc(j.name) }, j.name)),
      h('td', {}, triggerText(j.trigger)),
      h('td', { class: 'num' }, 'v' + j.version),
      h('td', { class: 'num' }, String(j.steps)),
      h('td', { class: 'num active-count' }, C.fmt(j.active)),
      h('td', {}, j.enabled ? h('span', { class: 'badge good' }, t('auto.j.enabled')) : h('span', { class: 'badge' }, t('auto.j.paused')))));
    const table = js.length ? h('table', { class: 'list', id: 'journey-list' },
      h('thead', {}, h('tr', {}, ['auto.j.name', 'auto.j.trigger', 'auto.j.version', 'auto.j.steps', 'auto.j.active', 'auto.j.state'].map((k) => h('th', {}, t(k))))),
      h('tbody', {}, rows)) : empty('journeys-empty', t('auto.j.empty'), 'PUT /v1/journeys/{name}');
    const listCard = card(t('auto.j.list'), table, h('div', { class: 'actions' }, h('a', { class: 'button', href: '#/journeys', id: 'journey-new' }, '+ ' + t('auto.j.new'))));

    let current = null;
    if (name) {
      const r = await api('GET', '/v1/journeys/' + enc(name));
      if (r.ok) current = r.data;
    }
    // Archive: running enrollments finish, or exit now (their pending messages cancelled).
    const archiveStatus = h('div', { id: 'journey-archive-status' });
    const extra = current && current.definition && !current.definition.archived ? ['finish', 'exit'].map((mode) => removeButton({ id: 'journey-archive-' + mode, path: `/v1/journeys/${enc(current.name)}?enrollments=${mode}`, name: current.name,
      label: 'del.journey_' + mode, confirm: 'del.journey_' + mode + '_confirm', status: archiveStatus, done: () => { location.hash = '#/journeys'; } }))
      : current && current.definition && current.definition.archived ? h('span', { class: 'badge', id: 'journey-archived' }, t('del.archived_badge')) : null;
    // The flow diagram and its node forms, with the JSON as an "advanced" tab (editors.js).
    const form = ui.editors.journey({
      name, current, example: journeyExample(templateNames[0]), templates: templateNames, segments: segmentNames, extraActions: [extra, archiveStatus],
      onSaved: (n, saved) => { toast(t('auto.j.saved', { name: n, v: saved.version }), 'good'); if (name === n) ui.render(); else location.hash = '#/journeys/' + enc(n); },
    });
    const title = current ? `${current.name} · v${current.version}` + (current.versions.length > 1 ? ` (${t('auto.j.versions')} ${current.versions.map((v) => 'v' + v).join(', ')})` : '') : t('auto.j.new');
    const parts = [h('h1', {}, t('nav.journeys')), listCard, card(title, form)];
    if (current) {
      const [rep, enr] = await Promise.all([
        api('GET', '/v1/journeys/' + enc(current.name) + '/report'),
        api('GET', '/v1/journeys/' + enc(current.name) + '/enrollments?limit=20'),
      ]);
      parts.push(h('div', { class: 'grid2' }, report(rep), enrollments(enr)));
    }
    main.replaceChildren(...parts);
  }

  function report(rep) {
    if (!rep.ok) return card(t('auto.j.report'), h('p', { class: 'error' }, msgOf(rep)));
    const d = rep.data;
    const P = C.PALETTE;
    const rows = [{ label: t('auto.r.sent'), value: d.sent, color: P[0] }];
    for (const [reason, n] of Object.entries(d.suppressed || {})) rows.push({ label: t('auto.r.suppressed') + ' · ' + suppressLabel(reason), value: n, color: P[2] });
    if (!Object.keys(d.suppressed || {}).length) rows.push({ label: t('auto.r.suppressed'), value: 0, color: P[2] });
    rows.push({ label: t('auto.r.dead'), value: d.dead, color: P[4] });
    rows.push({ label: t('auto.r.reads'), value: d.reads, color: P[3] });
    rows.push({ label: t('auto.r.conversions'), value: d.conversions, color: P[1] });
    const kpi = (label, value, id) => h('div', { class: 'kpi' }, h('div', { class: 'kpi-label' }, label), h('div', { class: 'kpi-value', id }, value));
    return card(t('auto.j.report'),
      h('div', { class: 'kpis kpis-small' },
        kpi(t('auto.r.enrolled'), C.fmt(d.enrolled), 'report-enrolled'),
        kpi(t('auto.j.active'), C.fmt(d.active), 'report-active'),
        kpi(t('auto.r.pending'), C.fmt((d.outbox && d.outbox.pending) || 0), 'report-pending'),
        kpi(t('auto.r.revenue'), '¥' + yuan(d.revenue), 'report-revenue')),
      h('div', { id: 'journey-report' }, C.bars(rows, { title: t('auto.j.report') })),
      h('p', { class: 'muted small' }, t('auto.r.window', { d: d.window_days })));
  }

  function enrollments(enr) {
    const list = (enr.data && enr.data.enrollments) || [];
    return card(t('auto.j.enrollments'), list.length ? h('table', { class: 'list', id: 'enrollment-list' }, h('tbody', {}, list.map((e) => h('tr', {},
      h('td', {}, person(e.identity)), h('td', {}, 'v' + e.version), h('td', { class: 'nowrap' }, when(e.entered_at)),
      h('td', {}, e.done ? t('auto.j.done') : h('span', { class: 'badge good' }, t('auto.j.in_progress'))))))) : empty('enrollments-empty', t('auto.j.no_enrollments')));
  }

  // ---------- templates ----------
  async function templates(main, name) {
    const [list, rules, jl] = await Promise.all([api('GET', '/v1/templates'), api('GET', '/v1/autoreply'), api('GET', '/v1/journeys')]);
    const tpls = (list.data && list.data.templates) || [];
    const current = tpls.find((x) => x.name === name) || null;
    const nav = h('ul', { class: 'seglist', id: 'template-list' },
      h('li', {}, h('a', { href: '#/templates', class: !name ? 'active' : '' }, '+ ' + t('auto.t.new'))),
      tpls.map((x) => h('li', {}, h('a', { href: '#/templates/' + enc(x.name), class: x.name === name ? 'active' : '' }, x.name, ' ', h('span', { class: 'count' }, t('auto.class.' + x.class))))));
    const listCard = card(t('auto.t.list'), tpls.length ? null : empty('templates-empty', t('auto.t.empty'), 'PUT /v1/templates/{name}'), nav);

    const nameIn = h('input', { id: 'template-name', value: current ? current.name : (name || ''), placeholder: 'welcome', required: true, readonly: current ? true : null });
    const cls = h('select', { id: 'template-class' }, ['marketing', 'transactional'].map((c) => h('option', { value: c, selected: current && current.class === c ? true : null }, t('auto.class.' + c))));
    const subject = h('input', { id: 'template-subject', value: (current && current.subject) || '', placeholder: t('auto.t.subject_placeholder') });
    const body = h('textarea', { id: 'template-body', rows: 6, spellcheck: 'false', placeholder: t('auto.t.body_placeholder') }, current ? current.body : '');
    const variants = h('textarea', { id: 'template-variants', rows: 4, spellcheck: 'false', placeholder: '{"sms": {"body": "…"}}' },
      current && current.variants && Object.keys(current.variants).length ? JSON.stringify(current.variants, null, 2) : '');
    const status = h('div', { id: 'template-status', 'aria-live': 'polite' });
    // "body:1:7: unknown variable …" / "variants.sms.body:2:3: …": a caret under the spot.
    const showError = (msg) => {
      const m = /^([\w.-]+):(\d+):(\d+): ([\s\S]*)$/.exec(msg);
      let caret = null;
      if (m) {
        const vm = /^variants\.([^.]+)\.(body|subject)$/.exec(m[1]);
        let text = m[1] === 'body' ? body.value : m[1] === 'subject' ? subject.value : null;
        if (vm) { try { const v = JSON.parse(variants.value || '{}')[vm[1]]; text = v && v[vm[2]]; } catch (e) { text = null; } }
        if (typeof text === 'string') {
          const line = text.split('\n')[Number(m[2]) - 1] || '';
          caret = h('pre', { class: 'caret' }, line + '\n' + ' '.repeat(Math.max(0, Number(m[3]) - 1)) + '^');
        }
        (m[1] === 'subject' ? subject : m[1] === 'body' ? body : variants).classList.add('invalid');
      }
      status.replaceChildren(h('div', { class: 'error', id: 'template-error', role: 'alert' }, m ? [h('code', { class: 'path' }, `${m[1]}:${m[2]}:${m[3]}`), ' ', m[4]] : msg), caret);
    };
    const form = h('form', { class: 'editor', onsubmit: async (e) => {
      e.preventDefault();
      [body, subject, variants].forEach((x) => x.classList.remove('invalid'));
      status.replaceChildren();
      const n = nameIn.value.trim();
      const payload = { body: body.value, class: cls.value };
      if (subject.value.trim()) payload.subject = subject.value;
      if (variants.value.trim()) {
        try { payload.variants = JSON.parse(variants.value); } catch (err) { variants.classList.add('invalid'); showError('variants: ' + err.message); return; }
      }
      const r = await api('PUT', '/v1/templates/' + enc(n), payload);
      if (r.ok) {
        toast(t('auto.t.saved', { name: n }), 'good');
        if (name === n) ui.render(); else location.hash = '#/templates/' + enc(n);
      } else if (r.status !== 403) showError(msgOf(r));
    } },
      h('div', { class: 'row2' }, h('label', {}, t('auto.t.name'), nameIn), h('label', {}, t('auto.t.class'), cls)),
      h('label', {}, t('auto.t.subject'), subject),
      h('label', {}, t('auto.t.body'), body),
      h('label', {}, t('auto.t.variants'), variants),
      h('p', { class: 'muted small' }, t('auto.t.help')),
      status,
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', id: 'template-save', 'data-write': true }, t('auto.save')),
        current ? removeButton({ id: 'template-delete', path: '/v1/templates/' + enc(current.name), name: current.name, label: 'del.delete', confirm: 'del.template_confirm', status, done: () => { location.hash = '#/templates'; } }) : null));

    const right = [card(current ? current.name : t('auto.t.new'), form)];
    if (current) {
      const who = h('input', { id: 'preview-person', placeholder: t('seg.why_placeholder'), required: true });
      const channel = h('input', { id: 'preview-channel', value: 'wecom', size: 10, 'aria-label': t('auto.t.channel') });
      const out = h('div', { id: 'template-preview' });
      const preview = async (e) => {
        e.preventDefault();
        const r = await api('POST', `/v1/templates/${enc(current.name)}/preview?person=${enc(who.value.trim())}&channel=${enc(channel.value.trim() || 'wecom')}`);
        if (!r.ok) { if (r.status !== 403) out.replaceChildren(h('p', { class: 'error', id: 'preview-error' }, msgOf(r))); return; }
        out.replaceChildren(h('div', { class: 'message' },
          h('div', { class: 'muted small' }, `${r.data.person} · ${I18N.channel(r.data.channel)}`),
          r.data.subject ? h('div', { class: 'subject', id: 'preview-subject' }, r.data.subject) : null,
          h('div', { class: 'body', id: 'preview-body' }, r.data.body)));
      };
      right.push(card(t('auto.t.preview'), h('p', { class: 'muted small' }, t('auto.t.preview_help')),
        h('form', { class: 'search', onsubmit: preview }, who, channel, h('button', { type: 'submit', id: 'preview-run' }, t('auto.t.preview_button'))), out));
    }
    right.push(autoreply(rules, tpls.map((x) => x.name), ((jl.data && jl.data.journeys) || []).map((x) => x.name)));
    right.push(await intentSettings());
    main.replaceChildren(h('div', { class: 'page-head' }, h('h1', {}, t('nav.templates')), h('a', { href: '#/quick-replies', id: 'quick-replies-link' }, t('nav.quick_replies') + ' →')),
      h('div', { class: 'split' }, listCard, h('div', {}, right)));
  }

  // The keyword auto-reply rules (they name a reply template): one form
  // per rule, the list as JSON in the "advanced" tab (editors.js).
  function autoreply(rules, templateNames, journeyNames) {
    const status = h('div', { id: 'autoreply-status-list' });
    const form = ui.editors.autoreply({
      rules: (rules.data && Array.isArray(rules.data.rules) ? rules.data.rules : []), templates: templateNames, journeys: journeyNames,
      save: async (body) => {
        const r = await api('PUT', '/v1/autoreply', body, { type: 'application/json' });
        if (r.ok) { toast(t('auto.a.saved', { n: r.data.rules }), 'good'); ui.render(); }
        return r;
      },
    });
    const list = (rules.data && Array.isArray(rules.data.rules) ? rules.data.rules : []).filter((x) => x && x.id);
    const rows = list.length ? h('ul', { class: 'plain', id: 'autoreply-list' }, list.map((x) => h('li', { 'data-rule': x.id }, h('code', {}, x.id), ' ',
      removeButton({ id: 'autoreply-delete-' + x.id, path: '/v1/autoreply/' + enc(x.id), name: x.id, label: 'del.delete', confirm: 'del.rule_confirm', status, done: () => ui.render() })))) : null;
    return card(t('auto.a.title'), h('p', { class: 'muted small' }, t('auto.a.help')), rows, status, form);
  }

  // What a live message's intent does by itself (/v1/intents/settings):
  // per intent its auto-tags and whether it is hot (a lead task for the
  // owner), the lead window and the minimum confidence.
  async function intentSettings() {
    const [ids, got] = await Promise.all([api('GET', '/v1/intents'), api('GET', '/v1/intents/settings')]);
    const s = got.data || {};
    const intents = Array.isArray(ids.data) ? ids.data : [];
    const rows = intents.map((i) => ({
      id: i.id,
      tags: h('input', { id: 'intent-tags-' + i.id, value: ((s.auto_tags || {})[i.id] || []).join(', '), placeholder: i.id === 'price' ? '询价客户' : '', 'aria-label': t('intent.s.tags') + ' · ' + t('intent.' + i.id) }),
      hot: h('input', { type: 'checkbox', id: 'intent-hot-' + i.id, checked: (s.hot || []).includes(i.id) ? true : null, 'aria-label': t('intent.s.hot') + ' · ' + t('intent.' + i.id) }),
    }));
    const windowIn = h('input', { id: 'intent-window', type: 'number', min: 0, step: 'any', value: String((s.lead_window_secs || 86400) / 3600) });
    const confIn = h('input', { id: 'intent-min-confidence', type: 'number', min: 0, max: 1, step: 0.05, value: String(s.min_confidence != null ? s.min_confidence : 0.5) });
    const status = h('div', { id: 'intent-settings-status', 'aria-live': 'polite' });
    const form = h('form', { class: 'editor', id: 'intent-settings', onsubmit: async (e) => {
      e.preventDefault();
      status.replaceChildren();
      const auto_tags = {};
      for (const r of rows) {
        const tags = r.tags.value.split(/[,，]/).map((x) => x.trim()).filter(Boolean);
        if (tags.length) auto_tags[r.id] = tags;
      }
      const body = { auto_tags, hot: rows.filter((r) => r.hot.checked).map((r) => r.id), lead_window_secs: Math.round(Number(windowIn.value) * 3600), min_confidence: Number(confIn.value) };
      const r = await api('PUT', '/v1/intents/settings', body, { type: 'application/json' });
      if (r.ok) { toast(t('intent.s.saved'), 'good'); ui.render(); } else if (r.status !== 403) status.replaceChildren(h('div', { class: 'error', id: 'intent-settings-error', role: 'alert' }, msgOf(r)));
    } },
      h('table', { class: 'list', id: 'intent-settings-table' },
        h('thead', {}, h('tr', {}, h('th', {}, t('intent.s.intent')), h('th', {}, t('intent.s.tags')), h('th', {}, t('intent.s.hot')))),
        h('tbody', {}, rows.map((r) => h('tr', { 'data-intent': r.id }, h('td', {}, t('intent.' + r.id), ' ', h('code', { class: 'muted small' }, r.id)), h('td', {}, r.tags), h('td', {}, r.hot))))),
      h('div', { class: 'row2' }, h('label', {}, t('intent.s.window'), windowIn), h('label', {}, t('intent.s.min_confidence'), confIn)),
      status,
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', id: 'intent-settings-save', 'data-write': true }, t('auto.save'))));
    return card(t('intent.s.title'), h('p', { class: 'muted small' }, t('intent.s.help')), form);
  }

  // ---------- messages (the outbox) ----------
  const TABS = [['all', null], ['dead', 'dead'], ['suppressed', 'suppressed'], ['pending', 'pending'], ['done', 'done']];

  async function messages(main, arg) {
    const tabArg = (arg || '').split('?')[0];
    const tab = TABS.find(([k]) => k === tabArg) ? tabArg : 'all';
    const status = TABS.find(([k]) => k === tab)[1];
    const params = new URLSearchParams(location.hash.split('?')[1] || '');
    const journey = h('input', { id: 'outbox-journey', placeholder: t('auto.m.journey'), value: params.get('journey') || '' });
    const who = h('input', { id: 'outbox-person', placeholder: t('auto.m.person'), value: params.get('person') || '' });
    const q = new URLSearchParams({ limit: '200' });
    if (status) q.set('status', status);
    if (journey.value) q.set('journey', journey.value);
    if (who.value) q.set('person', who.value);
    const r = await api('GET', '/v1/outbox?' + q);
    const items = (r.data && r.data.items) || [];
    const filterQs = () => { const f = new URLSearchParams(); if (journey.value.trim()) f.set('journey', journey.value.trim()); if (who.value.trim()) f.set('person', who.value.trim()); const s = f.toString(); return s ? '?' + s : ''; };
    const tabs = h('div', { class: 'tabs', role: 'tablist', id: 'outbox-tabs' }, TABS.map(([k]) =>
      h('a', { href: '#/messages/' + k + filterQs(), role: 'tab', 'data-tab': k, class: k === tab ? 'tab active' : 'tab', 'aria-selected': k === tab ? 'true' : 'false' }, t('auto.m.tab.' + k))));
    const filters = h('form', { class: 'search', onsubmit: (e) => { e.preventDefault(); location.hash = '#/messages/' + tab + filterQs(); } },
      journey, who, h('button', { type: 'submit' }, t('auto.m.filter')));
    const badge = (s) => h('span', { class: 'badge status-' + s }, t('auto.m.status.' + s));
    const what = (a) => {
      if (!a || typeof a !== 'object') return '';
      const kind = a.action || a.type || '';
      return [kind, a.template || a.tag || a.title || a.name || ''].filter(Boolean).join(' · ');
    };
    const rows = items.map((it) => h('tr', { 'data-key': it.key, 'data-status': it.status },
      h('td', { class: 'small' }, h('code', { class: 'key' }, it.key)),
      h('td', {}, person(it.identity)),
      h('td', {}, it.journey ? h('a', { href: '#/journeys/' + enc(it.journey) }, it.journey) : h('span', { class: 'muted' }, '—'), h('div', { class: 'muted small' }, what(it.action))),
      h('td', {}, badge(it.status)),
      h('td', { class: 'detail' }, it.status === 'suppressed' ? suppressLabel(it.detail) : it.detail),
      h('td', { class: 'num' }, String(it.attempts)),
      h('td', { class: 'nowrap' }, when(it.updated_at || it.created_at)),
      h('td', {}, it.status === 'dead' ? h('button', { type: 'button', class: 'retry', 'data-write': true, onclick: async (e) => {
        e.target.disabled = true;
        const rr = await api('POST', '/v1/outbox/retry', { key: it.key });
        if (rr.ok) { toast(t('auto.m.retried'), 'good'); ui.render(); } else { e.target.disabled = false; if (rr.status !== 403) toast(msgOf(rr), 'error'); }
      } }, t('auto.m.retry')) : null)));
    const table = items.length ? h('table', { class: 'list', id: 'outbox-list' },
      h('thead', {}, h('tr', {}, ['auto.m.key', 'auto.m.person', 'auto.m.journey', 'auto.m.status', 'auto.m.detail', 'auto.m.attempts', 'auto.m.time', ''].map((k) => h('th', {}, k ? t(k) : '')))),
      h('tbody', {}, rows)) : r.ok ? empty('outbox-empty', t('auto.m.empty.' + tab)) : h('p', { class: 'error' }, msgOf(r));
    main.replaceChildren(h('h1', {}, t('nav.messages')), card(t('auto.m.title'), tabs, filters, h('p', { class: 'muted small' }, t('auto.m.help')), table));
  }

  // ---------- tasks ----------
  async function tasks(main) {
    const r = await api('GET', '/v1/tasks?open=true&limit=500');
    const list = (r.data && r.data.tasks) || [];
    const now = Date.now() / 1000;
    const rows = list.map((x) => h('tr', { 'data-key': x.key },
      h('td', {}, h('div', { class: 'task-title' }, x.title), x.note ? h('div', { class: 'muted small' }, x.note) : null),
      h('td', {}, person(x.identity)),
      h('td', {}, x.journey ? h('a', { href: '#/journeys/' + enc(x.journey) }, x.journey) : '—'),
      h('td', {}, x.operator || '—'),
      h('td', { class: 'nowrap' + (x.due && x.due < now ? ' bad' : '') }, x.due ? when(x.due) : '—'),
      h('td', { class: 'nowrap' }, when(x.created_at)),
      h('td', {}, h('button', { type: 'button', class: 'done', 'data-write': true, onclick: async (e) => {
        e.target.disabled = true;
        const rr = await api('POST', '/v1/tasks/done', { key: x.key });
        if (rr.ok) { toast(t('auto.k.completed', { title: x.title }), 'good'); ui.render(); } else { e.target.disabled = false; if (rr.status !== 403) toast(msgOf(rr), 'error'); }
      } }, t('auto.k.done')))));
    const table = list.length ? h('table', { class: 'list', id: 'task-list' },
      h('thead', {}, h('tr', {}, ['auto.k.title', 'auto.m.person', 'auto.m.journey', 'auto.k.operator', 'auto.k.due', 'auto.k.created', ''].map((k) => h('th', {}, k ? t(k) : '')))),
      h('tbody', {}, rows)) : r.ok ? empty('tasks-empty', t('auto.k.empty'), '{"type": "task", "title": "…", "due": "1d"}') : h('p', { class: 'error' }, msgOf(r));
    main.replaceChildren(h('h1', {}, t('nav.tasks')), card(t('auto.k.open', { n: list.length }), table));
  }

  // ---------- guardrails ----------
  async function guardrails(main) {
    const r = await api('GET', '/v1/guardrails');
    if (!r.ok) { main.replaceChildren(h('h1', {}, t('nav.guardrails')), h('p', { class: 'error' }, msgOf(r))); return; }
    const p = r.data;
    const num = (id, v, attrs) => h('input', Object.assign({ id, type: 'number', min: '0', step: '1', value: String(v) }, attrs || {}));
    const cap = num('g-marketing-cap', p.marketing_cap);
    const windowDays = num('g-marketing-window', p.marketing_window_secs / 86400, { min: '0.001', step: 'any' });
    const quietOn = h('input', { type: 'checkbox', id: 'g-quiet-on', checked: p.quiet_hours ? true : null });
    const qStart = h('input', { type: 'time', id: 'g-quiet-start', value: (p.quiet_hours && p.quiet_hours.start) || '21:00' });
    const qEnd = h('input', { type: 'time', id: 'g-quiet-end', value: (p.quiet_hours && p.quiet_hours.end) || '09:00' });
    const syncQuiet = () => { qStart.disabled = qEnd.disabled = !quietOn.checked; };
    quietOn.addEventListener('change', syncQuiet);
    syncQuiet();
    const tz = h('input', { id: 'g-timezone', value: p.default_timezone });
    const optIn = h('input', { type: 'checkbox', id: 'g-opt-in', checked: p.require_opt_in ? true : null });
    const caps = h('textarea', { id: 'g-channel-caps', rows: 3, spellcheck: 'false', placeholder: '{"sms": {"max": 1, "window_secs": 86400}}' }, JSON.stringify(p.channel_caps || {}, null, 2));
    const mass = h('textarea', { id: 'g-mass', rows: 3, spellcheck: 'false' }, JSON.stringify(p.mass_per_local_day || {}, null, 2));
    const moments = num('g-moments', p.moments_per_local_day);
    const status = h('div', { id: 'guardrails-status', 'aria-live': 'polite' });
    const summary = h('p', { id: 'guardrails-summary', class: 'summary' }, summaryText(p));
    const form = h('form', { class: 'editor', id: 'guardrails-form', onsubmit: async (e) => {
      e.preventDefault();
      status.replaceChildren();
      const policy = {
        marketing_cap: Number(cap.value),
        marketing_window_secs: Math.round(Number(windowDays.value) * 86400),
        quiet_hours: quietOn.checked ? { start: qStart.value, end: qEnd.value } : null,
        default_timezone: tz.value.trim(),
        require_opt_in: optIn.checked,
        // Kept as stored: PUT replaces the whole policy.
        group_posts_per_day: p.group_posts_per_day,
        moments_per_local_day: Number(moments.value),
      };
      for (const [key, el] of [['channel_caps', caps], ['mass_per_local_day', mass]]) {
        el.classList.remove('invalid');
        try { policy[key] = JSON.parse(el.value || '{}'); } catch (err) { el.classList.add('invalid'); status.replaceChildren(faults('guardrails-error', `${key}: ${err.message}`)); return; }
      }
      const rr = await api('PUT', '/v1/guardrails', policy);
      if (rr.ok) { toast(t('auto.g.saved'), 'good'); summary.textContent = summaryText(rr.data); }
      else if (rr.status !== 403) status.replaceChildren(faults('guardrails-error', msgOf(rr)));
    } },
      h('div', { class: 'row2' }, h('label', {}, t('auto.g.cap'), cap), h('label', {}, t('auto.g.window'), windowDays)),
      h('fieldset', {}, h('legend', {}, h('label', { class: 'inline' }, quietOn, ' ', t('auto.g.quiet'))),
        h('div', { class: 'row2' }, h('label', {}, t('auto.g.quiet_start'), qStart), h('label', {}, t('auto.g.quiet_end'), qEnd))),
      h('label', {}, t('auto.g.timezone'), tz),
      h('label', { class: 'inline' }, optIn, ' ', t('auto.g.opt_in')),
      h('label', {}, t('auto.g.channel_caps'), caps),
      h('label', {}, t('auto.g.mass'), mass),
      h('label', {}, t('auto.g.moments'), moments),
      status,
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', id: 'guardrails-save', 'data-write': true }, t('auto.save'))));
    main.replaceChildren(h('h1', {}, t('nav.guardrails')), h('div', { class: 'grid2' }, card(t('auto.g.title'), summary, form), card(t('auto.g.how'), h('ol', { class: 'small' }, [1, 2, 3, 4, 5].map((i) => h('li', {}, t('auto.g.rule' + i)))))));
  }

  function summaryText(p) {
    const days = +(p.marketing_window_secs / 86400).toFixed(2);
    return t('auto.g.summary', { n: p.marketing_cap, d: days }) + ' · ' +
      (p.quiet_hours ? t('auto.g.summary_quiet', { start: p.quiet_hours.start, end: p.quiet_hours.end, tz: p.default_timezone }) : t('auto.g.summary_no_quiet'));
  }

  return { journeys, templates, messages, tasks, guardrails };
};
