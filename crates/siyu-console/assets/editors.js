// siyu console: the visual editors. A journey is drawn as a flow diagram
// (trigger → steps → branches → waits, SVG boxes and connectors) whose
// nodes open a form for that step; campaigns, live codes and auto-reply
// rules get forms. Why one module: every editor here is a view over ONE
// plain object (the definition exactly as the API takes it), so the
// "advanced" JSON tab is that object printed, and reading the JSON back
// replaces it — fields a form does not know (a poster, a future field)
// survive a round trip untouched. The server stays the judge: a save is
// the API's PUT, and each fault path of its 422 (`steps.a.template: …`,
// `tiers[1].invites: …`) is shown on the node or field it names.
// app.js calls `Editors(ui)` with its helpers; DOM through `h()` and
// createElementNS (textContent only; positions are SVG attributes, never
// inline styles, so the strict CSP holds).
'use strict';
window.Editors = function (ui) {
  const { h, api, enc, msgOf, faults } = ui;
  const { t } = window.I18N;
  const SVG = 'http://www.w3.org/2000/svg';

  function s(tag, attrs, ...children) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs || {}) {
      const v = attrs[k];
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      e.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  // A label with a fallback to the code when there is no translation.
  const label = (key, code) => { const v = t(key); return v === key ? code : v; };
  // Text cut to about `max` half-width cells (a CJK character is two).
  function clip(text, max) {
    let w = 0;
    let out = '';
    for (const ch of String(text)) {
      w += /[\u1100-\uffff]/.test(ch) ? 2 : 1;
      if (w > max) return out + '…';
      out += ch;
    }
    return out;
  }
  const clone = (v) => JSON.parse(JSON.stringify(v));
  // A read-only role may look at every form but not change the definition:
  // the buttons that add or remove parts are disabled like Save (the
  // server refuses the save anyway).
  const lock = (root) => { if (!ui.canWrite()) root.querySelectorAll('[data-write]').forEach((b) => { b.disabled = true; b.title = t('role.readonly'); }); };
  const isObj = (v) => v && typeof v === 'object' && !Array.isArray(v);

  // ---------- faults ----------
  // A 422's message, "p1: m1; p2: m2", as [{path, message}]: a fault
  // starts at the beginning or after "; " with a path and ": ".
  // `pathRe` (a regex source) says what a path looks like, so a message
  // that itself contains "; " is not cut in two.
  function splitFaults(message, pathRe) {
    const re = new RegExp('(?:^|;\\s+)(' + pathRe + '):\\s', 'g');
    const starts = [];
    let m;
    while ((m = re.exec(message))) {
      starts.push({ at: m.index, body: m.index + m[0].length, path: m[1] });
      if (m[0].length === 0) re.lastIndex++;
    }
    return starts.map((x, i) => ({ path: x.path, message: message.slice(x.body, i + 1 < starts.length ? starts[i + 1].at : undefined).trim() }));
  }
  const escapeRe = (x) => x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

  // A field's own fault line under it (and the field marked invalid).
  function markField(el, messages) {
    if (!el || !messages.length) return;
    el.classList.add('invalid');
    const box = el.closest('label') || el.parentNode;
    box.appendChild(h('span', { class: 'field-error', role: 'alert' }, messages.join(' · ')));
  }

  // Tabs "form | JSON": `toJson` prints the state into the textarea,
  // `fromJson` reads it back (an error message keeps the JSON tab open).
  function tabs(prefix, panes, { toJson, fromJson, status }) {
    let active = 'form';
    const bar = h('div', { class: 'tabs editor-tabs', role: 'tablist', id: prefix + '-tabs' });
    const show = (k) => {
      if (k === active) return;
      if (k === 'json') toJson();
      else {
        const err = fromJson();
        if (err) { status.replaceChildren(faults(prefix + '-error', err)); return; }
        status.replaceChildren();
      }
      active = k;
      for (const b of bar.children) { const on = b.dataset.tab === k; b.classList.toggle('active', on); b.setAttribute('aria-selected', on ? 'true' : 'false'); }
      panes.form.hidden = k !== 'form';
      panes.json.hidden = k !== 'json';
    };
    for (const [k, key] of [['form', prefix === 'journey' ? 'ed.tab.visual' : 'ed.tab.form'], ['json', 'ed.tab.json']]) {
      bar.appendChild(h('button', { type: 'button', role: 'tab', class: 'tab' + (k === 'form' ? ' active' : ''), id: prefix + '-tab-' + (k === 'form' && prefix === 'journey' ? 'visual' : k), 'data-tab': k, 'aria-selected': k === 'form' ? 'true' : 'false', onclick: () => show(k) }, t(key)));
    }
    panes.json.hidden = true;
    return { bar, active: () => active, show };
  }

  // ---------- journeys ----------
  const EVENT_TYPES = ['touch', 'comment', 'follow', 'add_friend', 'identify', 'join_group', 'leave_group', 'message_sent', 'message_read', 'purchase', 'refund', 'referral_signup', 'opt_out', 'custom'];
  const CHANNELS = ['wecom', 'wechat', 'sms', 'email', 'webhook', 'douyin', 'xiaohongshu', 'kuaishou', 'miniprogram'];
  // Per step kind: its fields ([name, input kind, required]), the fields
  // naming the next step, and a new step's defaults.
  const KINDS = {
    send: { fields: [['template', 'template', true], ['channel', 'channel'], ['class', 'class'], ['kind', 'sendkind', true]], next: ['next'], make: (c) => ({ template: c.templates[0] || '', kind: 'direct' }) },
    wait: { fields: [['duration', 'duration', true]], next: ['next'], make: () => ({ duration: '1d' }) },
    wait_until: { fields: [['time', 'clock', true]], next: ['next'], make: () => ({ time: '10:00' }) },
    wait_for_event: { fields: [['event', 'event', true], ['name', 'text'], ['timeout', 'duration', true]], next: ['next', 'on_timeout'], make: () => ({ event: 'purchase', timeout: '3d' }) },
    branch: { fields: [['condition', 'condition', true]], next: ['then', 'else'], make: (c) => ({ condition: c.segments[0] ? `in_segment("${c.segments[0]}")` : 'purchases >= 1' }) },
    split: { fields: [], next: [], arms: true, make: () => ({ arms: [{ weight: 50 }, { weight: 50 }] }) },
    add_tag: { fields: [['tag', 'text', true]], next: ['next'], make: () => ({ tag: '' }) },
    remove_tag: { fields: [['tag', 'text', true]], next: ['next'], make: () => ({ tag: '' }) },
    set_trait: { fields: [['name', 'text', true], ['value', 'jsonish', true]], next: ['next'], make: () => ({ name: '', value: '' }) },
    task: { fields: [['title', 'text', true], ['note', 'textarea'], ['due', 'duration']], next: ['next'], make: () => ({ title: '' }) },
    webhook: { fields: [['payload', 'json']], next: ['next'], make: () => ({}) },
    exit: { fields: [], next: [], make: () => ({}) },
  };
  const TRIGGERS = {
    event: { fields: [['event', 'event', true], ['channel', 'channel'], ['name', 'text'], ['text_contains', 'text'], ['where', 'condition']], make: () => ({ event: 'add_friend' }) },
    segment_entry: { fields: [['segment', 'segment', true]], make: (c) => ({ segment: c.segments[0] || '' }) },
    segment_exit: { fields: [['segment', 'segment', true]], make: (c) => ({ segment: c.segments[0] || '' }) },
    schedule: { fields: [['cron', 'text', true], ['timezone', 'text'], ['segment', 'segment']], make: () => ({ cron: '0 10 * * 1' }) },
    birthday: { fields: [['at', 'clock', true]], make: () => ({ at: '09:00' }) },
    after_first_purchase: { fields: [['days', 'int', true]], make: () => ({ days: 7 }) },
    silent: { fields: [['days', 'int', true]], make: () => ({ days: 30 }) },
  };
  const stepKind = (k) => label('ed.k.' + k, k);

  // The steps `step` goes to: [{field, target, label}] ('arms[0].next' …).
  function successors(step) {
    if (!isObj(step)) return [];
    if (step.type === 'split') return (Array.isArray(step.arms) ? step.arms : []).map((a, i) => ({ field: `arms[${i}].next`, target: a && a.next, label: `${(a && a.weight) || 0}` }));
    const k = KINDS[step.type];
    return (k ? k.next : ['next']).map((f) => ({ field: f, target: step[f], label: f === 'next' ? '' : t('ed.f.' + f) }));
  }
  const setSuccessor = (step, field, target) => {
    const arm = /^arms\[(\d+)\]\.next$/.exec(field);
    const holder = arm ? step.arms[Number(arm[1])] : step;
    const key = arm ? 'next' : field;
    if (target) holder[key] = target; else delete holder[key];
  };

  // One line saying what a step does.
  function summary(step) {
    switch (step.type) {
      case 'send': return (step.template || '?') + (step.channel ? ' · ' + I18N.channel(step.channel) : '');
      case 'wait': return step.duration || '?';
      case 'wait_until': return step.time || '?';
      case 'wait_for_event': return `${label('ed.ev.' + step.event, step.event || '?')}${step.name ? ' ' + step.name : ''} ≤ ${step.timeout || '?'}`;
      case 'branch': return step.condition || '?';
      case 'split': return (step.arms || []).map((a) => (a && a.weight) || 0).join(' / ');
      case 'add_tag': return '+ ' + (step.tag || '?');
      case 'remove_tag': return '− ' + (step.tag || '?');
      case 'set_trait': return `${step.name || '?'} = ${typeof step.value === 'string' ? step.value : JSON.stringify(step.value)}`;
      case 'task': return step.title || '?';
      case 'webhook': return 'POST';
      default: return '';
    }
  }
  function triggerSummary(tr) {
    if (!isObj(tr)) return '?';
    const rest = Object.entries(tr).filter(([k]) => k !== 'type').map(([, v]) => (typeof v === 'string' ? (tr.type === 'event' && v === tr.event ? label('ed.ev.' + v, v) : v) : JSON.stringify(v)));
    return rest.join(' · ');
  }

  // Rows of the diagram: a step's row is its longest distance from the
  // trigger (so a join sits below both arms); steps nothing reaches go in
  // a last row, marked. Cycles (the server refuses them) are cut by the
  // relaxation's bound.
  function layout(def) {
    const steps = def.steps;
    const names = Object.keys(steps);
    const depth = {};
    if (steps[def.start]) depth[def.start] = 1;
    for (let round = 0; round < names.length; round++) {
      let changed = false;
      for (const n of names) {
        if (depth[n] === undefined) continue;
        for (const sc of successors(steps[n])) {
          if (sc.target && steps[sc.target] && (depth[sc.target] === undefined || depth[sc.target] < depth[n] + 1) && depth[n] + 1 <= names.length) { depth[sc.target] = depth[n] + 1; changed = true; }
        }
      }
      if (!changed) break;
    }
    // Order within a row: the order a walk from the start meets them.
    const order = [];
    const seen = new Set();
    const walk = (n) => { if (!steps[n] || seen.has(n)) return; seen.add(n); order.push(n); successors(steps[n]).forEach((sc) => walk(sc.target)); };
    walk(def.start);
    const unreached = names.filter((n) => !seen.has(n));
    const maxDepth = Math.max(0, ...Object.values(depth));
    unreached.forEach((n) => { depth[n] = maxDepth + 1; order.push(n); });
    const rows = [['trigger']];
    for (const n of order) (rows[depth[n]] = rows[depth[n]] || []).push(n);
    return { rows: rows.filter(Boolean), unreached: new Set(unreached) };
  }

  const NODE_W = 190;
  const NODE_H = 66;
  const GAP_X = 36;
  const GAP_Y = 64;

  // The journey editor: `current` (GET /v1/journeys/{name}) or null with
  // `example`; `templates` and `segments` fill the selects. `onSaved(name)`.
  function journey({ name, current, example, templates, segments, extraActions, onSaved }) {
    const catalog = { templates, segments };
    let def = clone(current && current.definition ? current.definition : example);
    delete def.name;
    const usable = (d) => isObj(d) && isObj(d.steps) && isObj(d.trigger);
    let selected = 'trigger';
    let nodeFaults = {};
    let generalFaults = [];

    const nameIn = h('input', { id: 'journey-name', value: current ? current.name : (name || ''), placeholder: 'welcome_series', required: true, readonly: current ? true : null });
    const src = h('textarea', { id: 'journey-definition', rows: 22, spellcheck: 'false' });
    const status = h('div', { id: 'journey-status', 'aria-live': 'polite' });
    const svgBox = h('div', { class: 'flow-scroll', id: 'journey-flow-box' });
    const panel = h('div', { class: 'flow-panel', id: 'journey-node-form' });
    const visual = h('div', { class: 'flow-editor', id: 'journey-visual' }, svgBox, panel);
    const jsonPane = h('div', { id: 'journey-json' }, h('label', {}, t('auto.j.definition'), src), h('p', { class: 'muted small' }, t('auto.j.help')));
    const tab = tabs('journey', { form: visual, json: jsonPane }, {
      status,
      toJson: () => { src.value = JSON.stringify(def, null, 2); },
      fromJson: () => {
        let v;
        try { v = JSON.parse(src.value); } catch (e) { return 'journey: ' + e.message; }
        if (!usable(v)) return t('ed.j.not_a_journey');
        def = v;
        delete def.name;
        if (!def.steps[selected] && selected !== 'trigger') selected = 'trigger';
        draw();
        openForm();
        return null;
      },
    });

    // ----- the diagram -----
    function draw() {
      const { rows, unreached } = layout(def);
      const widest = Math.max(...rows.map((r) => r.length));
      const width = Math.max(1, widest) * (NODE_W + GAP_X) + GAP_X;
      const height = rows.length * (NODE_H + GAP_Y) + 20;
      const pos = {};
      rows.forEach((row, y) => {
        const left = (width - row.length * (NODE_W + GAP_X) + GAP_X) / 2;
        row.forEach((n, i) => { pos[n] = { x: left + i * (NODE_W + GAP_X), y: 16 + y * (NODE_H + GAP_Y) }; });
      });
      const svg = s('svg', { class: 'flow', id: 'journey-flow', width, height, viewBox: `0 0 ${width} ${height}`, role: 'group', 'aria-label': t('ed.j.diagram') },
        s('defs', {}, s('marker', { id: 'flow-arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' }, s('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'flow-arrowhead' }))));
      const edges = s('g', { class: 'edges' });
      const nodes = s('g', { class: 'nodes' });
      svg.append(edges, nodes);
      const edge = (from, to, text, i, n) => {
        const a = pos[from];
        const b = pos[to];
        if (!a || !b) return;
        const x1 = a.x + (NODE_W * (i + 1)) / (n + 1);
        const y1 = a.y + NODE_H;
        const x2 = b.x + NODE_W / 2;
        const y2 = b.y;
        const back = y2 <= y1;
        const d = back ? `M ${x1} ${y1} C ${x1 + 80} ${y1 + 60}, ${x2 + 80} ${y2 - 60}, ${x2} ${y2}` : `M ${x1} ${y1} C ${x1} ${(y1 + y2) / 2}, ${x2} ${(y1 + y2) / 2}, ${x2} ${y2}`;
        edges.appendChild(s('path', { d, class: 'flow-edge' + (back ? ' back' : ''), 'marker-end': 'url(#flow-arrow)', 'data-from': from, 'data-to': to }));
        if (text) edges.appendChild(s('text', { x: (x1 + x2) / 2 + 4, y: (y1 + y2) / 2, class: 'flow-edge-label' }, text));
      };
      // A "+" where a step may go on: adds a step there.
      const slot = (from, field, i, n, text) => {
        const a = pos[from];
        const cx = a.x + (NODE_W * (i + 1)) / (n + 1);
        const cy = a.y + NODE_H + 18;
        nodes.appendChild(s('g', { class: 'flow-slot', tabindex: 0, role: 'button', 'data-from': from, 'data-field': field, onclick: () => select({ add: { from, field } }), onkeydown: (e) => { if (e.key === 'Enter') select({ add: { from, field } }); } },
          s('title', {}, t('ed.j.add_here', { field: text || field })),
          s('line', { x1: cx, y1: a.y + NODE_H, x2: cx, y2: cy - 8, class: 'flow-slot-line' }),
          s('circle', { cx, cy, r: 8 }), s('text', { x: cx, y: cy + 4, 'text-anchor': 'middle' }, '+'),
          text ? s('text', { x: cx + 12, y: cy + 4, class: 'flow-edge-label' }, text) : null));
      };
      const box = (id, kindText, line, sub, classes) => {
        const p = pos[id];
        const fs = nodeFaults[id] || [];
        const cls = ['node', ...classes, id === selected ? 'selected' : '', fs.length ? 'fault' : ''].filter(Boolean).join(' ');
        const g = s('g', { class: cls, 'data-node': id, tabindex: 0, role: 'button', 'aria-label': `${kindText} ${id}`, onclick: () => select(id), onkeydown: (e) => { if (e.key === 'Enter') select(id); } },
          s('title', {}, [kindText, line, sub].filter(Boolean).join('\n') + (fs.length ? '\n' + fs.map((f) => f.message).join('\n') : '')),
          s('rect', { x: p.x, y: p.y, width: NODE_W, height: NODE_H, rx: 8 }),
          s('text', { x: p.x + 10, y: p.y + 18, class: 'node-kind' }, clip(kindText, sub ? 16 : 28), sub ? s('tspan', { class: 'node-name', dx: 6 }, clip(sub, 28 - Math.min(16, kindText.length * 2))) : null),
          s('text', { x: p.x + 10, y: p.y + 36, class: 'node-line' }, clip(line, 28)));
        if (fs.length) g.appendChild(s('text', { x: p.x + 10, y: p.y + NODE_H - 8, class: 'fault-msg' }, clip(fs[0].message, 30)));
        nodes.appendChild(g);
      };
      box('trigger', t('ed.j.trigger') + ' · ' + label('auto.trigger.' + (def.trigger && def.trigger.type), (def.trigger && def.trigger.type) || '?'), triggerSummary(def.trigger), '', ['trigger']);
      if (def.steps[def.start]) edge('trigger', def.start, '', 0, 1);
      else slot('trigger', 'start', 0, 1, t('ed.f.start'));
      for (const [id, step] of Object.entries(def.steps)) {
        box(id, stepKind(step && step.type), summary(step || {}), id, ['kind-' + (step && step.type), unreached.has(id) ? 'unreached' : '']);
        const sc = successors(step);
        sc.forEach((x, i) => {
          if (x.target && def.steps[x.target]) edge(id, x.target, x.label, i, sc.length);
          else slot(id, x.field, i, sc.length, x.label);
        });
        if (step && step.type === 'split') {
          // One more arm from the diagram.
          const p = pos[id];
          nodes.appendChild(s('g', { class: 'flow-slot add-arm', tabindex: 0, role: 'button', 'data-from': id, onclick: () => { step.arms.push({ weight: 0 }); changed(true); } },
            s('title', {}, t('ed.j.add_arm')), s('circle', { cx: p.x + NODE_W + 10, cy: p.y + NODE_H / 2, r: 8 }), s('text', { x: p.x + NODE_W + 10, y: p.y + NODE_H / 2 + 4, 'text-anchor': 'middle' }, '+')));
        }
      }
      svgBox.replaceChildren(svg, h('p', { class: 'muted small' }, t('ed.j.diagram_help')));
    }

    function select(what) {
      selected = what;
      draw();
      openForm();
      const first = panel.querySelector('input:not([readonly]), select, textarea');
      if (first && what && what.add) first.focus();
    }
    // After an edit: redraw (and rebuild the form when its shape changed).
    function changed(reform) {
      draw();
      if (reform) openForm();
    }

    // ----- the node forms -----
    const fieldId = (f) => 'jf-' + f.replace(/[^\w-]/g, '_');
    // An input for `obj[field]` of input kind `kind`; `required` fields stay
    // in the object when empty (the server then names them).
    function input(obj, field, kind, required, onChange) {
      const id = fieldId(field);
      const v = obj[field];
      const set = (x) => { if (x === '' || x === undefined) { if (required) obj[field] = kind === 'int' ? 0 : ''; else delete obj[field]; } else obj[field] = x; onChange && onChange(); changed(false); };
      const text = (attrs) => { const e = h('input', Object.assign({ id, value: v === undefined || v === null ? '' : String(v) }, attrs || {})); e.addEventListener('input', () => set(e.value.trim() === '' ? '' : e.value)); return e; };
      const select = (options, allowEmpty) => {
        const opts = options.slice();
        if (v && !opts.some((o) => o[0] === v)) opts.push([v, v]);
        const e = h('select', { id }, allowEmpty ? h('option', { value: '' }, allowEmpty) : null, opts.map(([val, text]) => h('option', { value: val, selected: val === v ? true : null }, text)));
        e.addEventListener('change', () => set(e.value));
        return e;
      };
      switch (kind) {
        case 'duration': return [text({ placeholder: '3d', size: 8 }), h('span', { class: 'muted small' }, t('ed.hint.duration'))];
        case 'clock': return [text({ placeholder: '10:00', size: 6 }), h('span', { class: 'muted small' }, t('ed.hint.clock'))];
        case 'int': { const e = h('input', { id, type: 'number', min: '0', step: '1', value: v === undefined ? '' : String(v) }); e.addEventListener('input', () => set(e.value === '' ? '' : Number(e.value))); return e; }
        case 'template': return select(templates.map((x) => [x, x]), required ? null : t('ed.none'));
        case 'segment': return select(segments.map((x) => [x, x]), required ? null : t('ed.everyone'));
        case 'event': return select(EVENT_TYPES.map((x) => [x, `${label('ed.ev.' + x, x)} (${x})`]), null);
        case 'channel': return select(CHANNELS.map((x) => [x, `${I18N.channel(x)} (${x})`]), t('ed.auto_channel'));
        case 'class': return select(['marketing', 'transactional'].map((x) => [x, t('auto.class.' + x)]), t('ed.template_class'));
        case 'sendkind': return select(['direct', 'mass'].map((x) => [x, t('ed.sendkind.' + x)]), null);
        case 'textarea': { const e = h('textarea', { id, rows: 2 }, v || ''); e.addEventListener('input', () => set(e.value)); return e; }
        case 'condition': {
          const e = h('textarea', { id, rows: 2, spellcheck: 'false', placeholder: 'in_segment("vip") and purchases >= 2' }, v || '');
          e.addEventListener('input', () => set(e.value));
          const pick = h('select', { 'aria-label': t('ed.insert_segment'), onchange: () => { if (pick.value) { e.value = `in_segment("${pick.value}")`; set(e.value); pick.value = ''; } } },
            h('option', { value: '' }, t('ed.insert_segment')), segments.map((x) => h('option', { value: x }, x)));
          return [e, segments.length ? pick : null, h('span', { class: 'muted small' }, t('ed.hint.condition'))];
        }
        case 'json': case 'jsonish': {
          const e = h('textarea', { id, rows: 3, spellcheck: 'false' }, v === undefined ? '' : (kind === 'jsonish' && typeof v === 'string' ? v : JSON.stringify(v, null, 2)));
          e.addEventListener('input', () => {
            e.classList.remove('invalid');
            if (e.value.trim() === '') { set(kind === 'json' ? '' : ''); return; }
            try { set(JSON.parse(e.value)); } catch (err) { if (kind === 'jsonish') set(e.value); else e.classList.add('invalid'); }
          });
          return [e, h('span', { class: 'muted small' }, t(kind === 'json' ? 'ed.hint.json' : 'ed.hint.jsonish'))];
        }
        default: return text();
      }
    }
    const field = (labelText, control, f) => h('label', { 'data-field': f }, labelText, control);
    // Selects naming the next step ('' = the journey ends there).
    function nextSelect(step, f, id, text) {
      const cur = f.startsWith('arms[') ? (step.arms[Number(/\d+/.exec(f)[0])] || {}).next : step[f];
      const e = h('select', { id: fieldId(f) }, h('option', { value: '' }, t('ed.end')),
        Object.keys(def.steps).filter((n) => n !== id).map((n) => h('option', { value: n, selected: n === cur ? true : null }, `${n} · ${stepKind(def.steps[n].type)}`)));
      if (cur && !def.steps[cur]) e.appendChild(h('option', { value: cur, selected: true }, cur + ' ?'));
      e.addEventListener('change', () => { setSuccessor(step, f, e.value); changed(false); });
      return field(text, e, f);
    }

    function openForm() {
      const fs = typeof selected === 'string' ? nodeFaults[selected] || [] : [];
      let body;
      if (selected && selected.add) body = addForm(selected.add);
      else if (selected === 'trigger' || !def.steps[selected]) { selected = selected === 'trigger' || !def.steps[selected] ? 'trigger' : selected; body = triggerForm(); }
      else body = stepForm(selected);
      panel.replaceChildren(...body.flat(Infinity).filter(Boolean));
      lock(panel);
      // Each fault beside its field; the rest at the top of the form.
      const loose = [];
      for (const f of fs) {
        const el = f.field && panel.querySelector(`[data-field="${f.field}"] input, [data-field="${f.field}"] select, [data-field="${f.field}"] textarea`);
        if (el) markField(el, [f.message]); else loose.push(f.message);
      }
      if (loose.length) panel.insertBefore(h('div', { class: 'error node-faults', role: 'alert', id: 'journey-node-faults' }, h('ul', {}, loose.map((m) => h('li', {}, m)))), panel.children[1] || null);
    }

    function triggerForm() {
      def.trigger = isObj(def.trigger) ? def.trigger : { type: 'event', event: 'add_friend' };
      const tr = def.trigger;
      const type = h('select', { id: 'jf-trigger-type' }, Object.keys(TRIGGERS).map((k) => h('option', { value: k, selected: k === tr.type ? true : null }, label('auto.trigger.' + k, k))));
      type.addEventListener('change', () => { def.trigger = Object.assign({ type: type.value }, TRIGGERS[type.value].make(catalog)); changed(true); });
      const spec = TRIGGERS[tr.type] || { fields: [] };
      const reentryKind = isObj(def.reentry) ? 'cooldown' : (def.reentry || 'once');
      const reentry = h('select', { id: 'jf-reentry' }, ['once', 'every_time', 'cooldown'].map((k) => h('option', { value: k, selected: k === reentryKind ? true : null }, t('ed.reentry.' + k))));
      const cooldown = h('input', { id: 'jf-cooldown', value: isObj(def.reentry) ? def.reentry.cooldown || '' : '7d', size: 8, disabled: reentryKind === 'cooldown' ? null : true });
      const syncReentry = () => { def.reentry = reentry.value === 'cooldown' ? { cooldown: cooldown.value.trim() } : reentry.value; cooldown.disabled = reentry.value !== 'cooldown'; changed(false); };
      reentry.addEventListener('change', syncReentry);
      cooldown.addEventListener('input', syncReentry);
      const start = h('select', { id: 'jf-start' }, Object.keys(def.steps).map((n) => h('option', { value: n, selected: n === def.start ? true : null }, n)));
      if (!def.steps[def.start]) start.prepend(h('option', { value: '', selected: true }, '—'));
      start.addEventListener('change', () => { def.start = start.value; changed(false); });
      const enabled = h('input', { type: 'checkbox', id: 'jf-enabled', checked: def.enabled === false ? null : true });
      enabled.addEventListener('change', () => { def.enabled = enabled.checked; changed(false); });
      const desc = h('input', { id: 'jf-description', value: def.description || '' });
      desc.addEventListener('input', () => { if (desc.value.trim()) def.description = desc.value; else delete def.description; });
      return [h('h3', {}, t('ed.j.trigger')),
        field(t('ed.f.trigger_type'), type, 'type'),
        spec.fields.map(([f, kind, req]) => field(t('ed.f.' + f), input(tr, f, kind, req), f)),
        h('h3', {}, t('ed.j.entry')),
        h('div', { class: 'row2' }, field(t('ed.f.reentry'), reentry, 'reentry'), field(t('ed.f.cooldown'), cooldown, 'cooldown')),
        field(t('ed.f.start'), start, 'start'),
        h('label', { class: 'inline', 'data-field': 'enabled' }, enabled, ' ', t('ed.f.enabled')),
        field(t('ed.f.description'), desc, 'description')];
    }

    function stepForm(id) {
      const step = def.steps[id];
      const spec = KINDS[step.type] || { fields: [], next: ['next'] };
      const nameIn2 = h('input', { id: 'jf-step-name', value: id });
      nameIn2.addEventListener('change', () => {
        const n = nameIn2.value.trim();
        if (!n || n === id) return;
        if (def.steps[n]) { markField(nameIn2, [t('ed.j.name_taken', { name: n })]); return; }
        rename(id, n);
      });
      const kind = h('select', { id: 'jf-type' }, Object.keys(KINDS).map((k) => h('option', { value: k, selected: k === step.type ? true : null }, `${stepKind(k)} (${k})`)));
      kind.addEventListener('change', () => {
        const old = def.steps[id];
        const fresh = Object.assign({ type: kind.value }, KINDS[kind.value].make(catalog));
        // The first way on is kept where the new kind has one.
        const on = successors(old).map((x) => x.target).find(Boolean);
        if (on && KINDS[kind.value].next.length) fresh[KINDS[kind.value].next[0]] = on;
        if (on && kind.value === 'split') fresh.arms[0].next = on;
        def.steps[id] = fresh;
        changed(true);
      });
      const parts = [h('h3', {}, t('ed.j.step'), ' ', h('code', {}, id), id === def.start ? h('span', { class: 'badge' }, t('ed.j.first')) : null),
        h('div', { class: 'row2' }, field(t('ed.f.step_name'), nameIn2, 'name_of_step'), field(t('ed.f.type'), kind, 'type')),
        spec.fields.map(([f, k, req]) => field(t('ed.f.' + f), input(step, f, k, req), f)),
        spec.next.map((f) => nextSelect(step, f, id, t('ed.f.' + f)))];
      if (spec.arms) {
        step.arms = Array.isArray(step.arms) ? step.arms : [];
        parts.push(h('fieldset', { 'data-field': 'arms' }, h('legend', {}, t('ed.f.arms')),
          step.arms.map((a, i) => {
            const w = h('input', { type: 'number', min: '0', step: '1', id: `jf-arm-${i}-weight`, value: String(a.weight || 0), 'aria-label': t('ed.f.weight') });
            w.addEventListener('input', () => { a.weight = Number(w.value) || 0; changed(false); });
            return h('div', { class: 'arm-row' }, h('label', {}, t('ed.f.weight'), w), nextSelect(step, `arms[${i}].next`, id, t('ed.f.next')),
              h('button', { type: 'button', class: 'link danger', onclick: () => { step.arms.splice(i, 1); changed(true); } }, t('ed.remove')));
          }),
          h('button', { type: 'button', id: 'jf-add-arm', 'data-write': true, onclick: () => { step.arms.push({ weight: 0 }); changed(true); } }, '+ ' + t('ed.j.add_arm'))));
      }
      parts.push(h('div', { class: 'actions' }, h('button', { type: 'button', class: 'danger', id: 'journey-delete-step', 'data-write': true, onclick: () => removeStep(id) }, t('ed.j.delete_step'))));
      return parts;
    }

    function addForm({ from, field: f }) {
      const kind = h('select', { id: 'jf-new-type' }, Object.keys(KINDS).map((k) => h('option', { value: k, selected: k === 'wait' ? true : null }, `${stepKind(k)} (${k})`)));
      const fresh = (k) => { let i = 1; while (def.steps[k + (i === 1 ? '' : i)]) i++; return k + (i === 1 ? '' : i); };
      const nm = h('input', { id: 'jf-new-name', value: fresh('wait') });
      let typed = false;
      nm.addEventListener('input', () => { typed = true; });
      kind.addEventListener('change', () => { if (!typed) nm.value = fresh(kind.value); });
      const out = h('div', {});
      const add = () => {
        const n = nm.value.trim();
        if (!n || def.steps[n]) { out.replaceChildren(h('p', { class: 'error' }, t('ed.j.name_taken', { name: n }))); return; }
        def.steps[n] = Object.assign({ type: kind.value }, KINDS[kind.value].make(catalog));
        if (from === 'trigger') def.start = n; else setSuccessor(def.steps[from], f, n);
        select(n);
      };
      const where = from === 'trigger' ? t('ed.j.as_first') : t('ed.j.after', { step: from, field: f });
      return [h('h3', {}, t('ed.j.new_step')), h('p', { class: 'muted small' }, where),
        h('div', { class: 'row2' }, field(t('ed.f.type'), kind, 'type'), field(t('ed.f.step_name'), nm, 'name')), out,
        h('div', { class: 'actions' }, h('button', { type: 'button', class: 'primary', id: 'journey-add-step', 'data-write': true, onclick: add }, t('ed.j.add_step')),
          h('button', { type: 'button', onclick: () => select(from) }, t('ed.cancel')))];
    }

    function rename(from, to) {
      const steps = {};
      for (const [k, v] of Object.entries(def.steps)) steps[k === from ? to : k] = v;
      for (const st of Object.values(steps)) for (const sc of successors(st)) if (sc.target === from) setSuccessor(st, sc.field, to);
      if (def.start === from) def.start = to;
      def.steps = steps;
      if (nodeFaults[from]) { nodeFaults[to] = nodeFaults[from]; delete nodeFaults[from]; }
      select(to);
    }

    function removeStep(id) {
      if (!window.confirm(t('ed.j.delete_confirm', { step: id }))) return;
      const gone = def.steps[id];
      delete def.steps[id];
      for (const st of Object.values(def.steps)) for (const sc of successors(st)) if (sc.target === id) setSuccessor(st, sc.field, '');
      if (def.start === id) def.start = successors(gone).map((x) => x.target).find((x) => x && def.steps[x]) || Object.keys(def.steps)[0] || '';
      delete nodeFaults[id];
      select('trigger');
    }

    // A 422's faults onto the nodes they name.
    function showFaults(message) {
      nodeFaults = {};
      generalFaults = [];
      const names = Object.keys(def.steps || {}).sort((a, b) => b.length - a.length);
      const stepPath = names.map((n) => 'steps\\.' + escapeRe(n) + '(?:\\.[\\w\\[\\].]+)?').join('|');
      const re = [stepPath, 'steps', 'start', 'name', 'description', 'reentry(?:\\.\\w+)?', 'trigger(?:\\.\\w+)?', 'journey'].filter(Boolean).join('|');
      for (const f of splitFaults(message, re)) {
        const n = names.find((x) => f.path === 'steps.' + x || f.path.startsWith('steps.' + x + '.'));
        if (n) {
          const rest = f.path.slice(('steps.' + n).length + 1);
          (nodeFaults[n] = nodeFaults[n] || []).push({ field: rest ? rest.replace(/\[.*$/, '').split('.')[0] : null, message: f.message });
        } else if (/^(trigger|start|reentry|name|description)/.test(f.path)) {
          const field = f.path.startsWith('trigger.') ? f.path.slice(8) : f.path === 'reentry.cooldown' ? 'cooldown' : f.path;
          (nodeFaults.trigger = nodeFaults.trigger || []).push({ field, message: f.message });
        } else generalFaults.push(f);
      }
      // The first node at fault opens its form.
      const first = Object.keys(nodeFaults)[0];
      if (first) selected = first;
      draw();
      openForm();
    }

    const save = h('button', { type: 'submit', class: 'primary', id: 'journey-save', 'data-write': true }, t('auto.save'));
    const form = h('form', { class: 'editor', id: 'journey-form', onsubmit: async (e) => {
      e.preventDefault();
      const n = nameIn.value.trim();
      status.replaceChildren();
      src.classList.remove('invalid');
      // The JSON tab sends its text as typed (a syntax error comes back
      // with line and column); the diagram sends its object.
      const fromJson = tab.active() === 'json';
      const body = fromJson ? src.value : JSON.stringify(def, null, 2);
      const r = await api('PUT', '/v1/journeys/' + enc(n), body, { type: 'application/json' });
      if (r.ok) { nodeFaults = {}; onSaved(n, r.data); return; }
      if (r.status === 403) return;
      const msg = msgOf(r);
      if (fromJson) {
        src.classList.add('invalid');
        try { const v = JSON.parse(src.value); if (usable(v)) { def = v; delete def.name; } } catch (err) { /* the caret says where */ }
      }
      status.replaceChildren(faults('journey-error', msg, fromJson ? src.value : body));
      if (usable(def)) showFaults(msg);
    } },
      h('label', {}, t('auto.j.name'), nameIn),
      tab.bar, visual, jsonPane, status,
      h('div', { class: 'actions' }, save, [].concat(extraActions || []).flat(Infinity)));
    if (usable(def)) { draw(); openForm(); } else { src.value = JSON.stringify(def, null, 2); tab.show('json'); }
    return form;
  }

  // ---------- generic forms (campaigns, live codes, auto-reply rules) ----------
  // Path helpers: ['rules', 'hold'] ↔ "rules.hold", ['tiers', 1, 'invites'] ↔ "tiers[1].invites".
  const pathText = (p) => p.reduce((acc, k) => (typeof k === 'number' ? `${acc}[${k}]` : acc ? `${acc}.${k}` : k), '');
  const getIn = (o, p) => p.reduce((x, k) => (x == null ? undefined : x[k]), o);
  function setIn(o, p, v) {
    let x = o;
    for (let i = 0; i < p.length - 1; i++) {
      if (x[p[i]] == null || typeof x[p[i]] !== 'object') x[p[i]] = typeof p[i + 1] === 'number' ? [] : {};
      x = x[p[i]];
    }
    const last = p[p.length - 1];
    if (v === undefined) { if (Array.isArray(x)) x[last] = undefined; else delete x[last]; } else x[last] = v;
  }

  // A bound input: `kind` text | int | yuan | list | select | check |
  // datetime (local in the workspace zone ↔ RFC 3339); empty optional
  // fields are left out of the object. Registers the path for faults.
  function binder(root, fields) {
    return function bind(path, kind, opts) {
      opts = opts || {};
      const id = opts.id;
      const v = getIn(root(), path);
      const set = (x) => setIn(root(), path, x);
      let el;
      if (kind === 'select') {
        const options = (opts.options || []).slice();
        if (v != null && v !== '' && !options.some((o) => o[0] === v)) options.push([v, v]);
        el = h('select', { id }, opts.empty != null ? h('option', { value: '' }, opts.empty) : null, options.map(([val, text]) => h('option', { value: val, selected: val === v ? true : null }, text)));
        el.addEventListener('change', () => set(el.value === '' ? (opts.required ? '' : undefined) : el.value));
      } else if (kind === 'check') {
        el = h('input', { id, type: 'checkbox', checked: (v === undefined ? opts.default : v) ? true : null });
        el.addEventListener('change', () => set(el.checked));
      } else if (kind === 'int' || kind === 'yuan') {
        const shown = v == null ? '' : kind === 'yuan' ? String(v / 100) : String(v);
        el = h('input', { id, type: 'number', min: opts.min == null ? '0' : opts.min, step: kind === 'yuan' ? '0.01' : '1', value: shown, placeholder: opts.placeholder || null });
        el.addEventListener('input', () => set(el.value === '' ? (opts.required ? 0 : undefined) : kind === 'yuan' ? Math.round(Number(el.value) * 100) : Number(el.value)));
      } else if (kind === 'list') {
        el = h('input', { id, value: Array.isArray(v) ? v.join(', ') : '', placeholder: opts.placeholder || t('ed.hint.list') });
        el.addEventListener('input', () => { const xs = el.value.split(/[,，]/).map((x) => x.trim()).filter(Boolean); set(xs.length || opts.required ? xs : undefined); });
      } else if (kind === 'datetime') {
        const ms = typeof v === 'number' ? v * 1000 : typeof v === 'string' ? Date.parse(v) : NaN;
        el = h('input', { id, type: 'datetime-local', value: Number.isNaN(ms) ? '' : ui.zone.fmtLocal(ms).replace(' ', 'T') });
        el.addEventListener('input', () => { const at = ui.zone.fromLocal(el.value); set(at == null ? undefined : new Date(at).toISOString().replace('.000Z', 'Z')); });
      } else {
        el = h('input', { id, value: v == null ? '' : String(v), placeholder: opts.placeholder || null, list: opts.list || null });
        el.addEventListener('input', () => set(el.value === '' ? (opts.required ? '' : undefined) : el.value));
      }
      fields.push({ path: pathText(path), el });
      return el;
    };
  }
  const lbl = (text, el, extra) => h('label', {}, text, el, extra || null);
  // Faults of a 422 beside the fields whose path they name (the longest
  // registered path that the fault's path starts with).
  function markFaults(fields, message, normalize) {
    const list = splitFaults(normalize ? normalize(message) : message, '[\\w.\\[\\]"\\-]+');
    const byEl = new Map();
    for (const f of list) {
      const hit = fields.filter((x) => x.el.isConnected && (f.path === x.path || f.path.startsWith(x.path + '.') || f.path.startsWith(x.path + '['))).sort((a, b) => b.path.length - a.path.length)[0];
      if (hit) byEl.set(hit.el, (byEl.get(hit.el) || []).concat(f.message));
    }
    byEl.forEach((msgs, el) => markField(el, msgs));
    return byEl.size;
  }
  const clearMarks = (root) => { root.querySelectorAll('.field-error').forEach((x) => x.remove()); root.querySelectorAll('.invalid').forEach((x) => x.classList.remove('invalid')); };

  // A form over `state.v` with a JSON tab; `build(bind)` makes the form
  // body (called again after the JSON tab changed the object);
  // `save(body, fromJson)` → api result; `normalize` maps fault paths.
  function formWithJson({ prefix, value, rows, build, save, normalize, saveLabel, extraActions, header }) {
    const state = { v: clone(value) };
    let fields = [];
    const src = h('textarea', { id: prefix + '-definition', rows: rows || 16, spellcheck: 'false' });
    const status = h('div', { id: prefix + '-status', 'aria-live': 'polite' });
    const formPane = h('div', { class: 'form-pane', id: prefix + '-form-pane' });
    const jsonPane = h('div', {}, src);
    const rebuild = () => { fields = []; formPane.replaceChildren(...[].concat(build(binder(() => state.v, fields), rebuild, state)).flat(Infinity).filter(Boolean)); lock(formPane); };
    const tab = tabs(prefix, { form: formPane, json: jsonPane }, {
      status,
      toJson: () => { src.value = JSON.stringify(state.v, null, 2); },
      fromJson: () => { try { state.v = JSON.parse(src.value); } catch (e) { return `${prefix}: ${e.message}`; } rebuild(); return null; },
    });
    rebuild();
    const form = h('form', { class: 'editor', id: prefix + '-form', onsubmit: async (e) => {
      e.preventDefault();
      status.replaceChildren();
      src.classList.remove('invalid');
      clearMarks(formPane);
      const fromJson = tab.active() === 'json';
      const r = await save(fromJson ? src.value : JSON.stringify(state.v, null, 2), fromJson);
      if (!r || r.ok || r.status === 403) return;
      const msg = msgOf(r);
      if (fromJson) {
        src.classList.add('invalid');
        try { state.v = JSON.parse(src.value); rebuild(); } catch (err) { /* the caret says where */ }
      }
      markFaults(fields, msg, normalize);
      status.replaceChildren(faults(prefix + '-error', msg, fromJson ? src.value : undefined));
    } }, header || null, tab.bar, formPane, jsonPane, status,
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', id: prefix + '-save', 'data-write': true }, saveLabel || t('auto.save')), [].concat(extraActions || []).flat(Infinity)));
    form.editorState = state;
    form.load = (v) => { state.v = clone(v); rebuild(); if (tab.active() === 'json') src.value = JSON.stringify(state.v, null, 2); };
    return form;
  }

  // Rows of a list (tiers, targets …): each `row(i, bind, item)` plus a
  // remove button; an add button appending `make()`.
  function listEditor(state, path, rebuild, { id, row, make, addLabel }) {
    const list = getIn(state.v, path);
    const items = Array.isArray(list) ? list : [];
    return h('div', { class: 'list-editor', id },
      items.map((item, i) => h('div', { class: 'list-row', 'data-index': i }, row(i, item),
        h('button', { type: 'button', class: 'link danger', onclick: () => { items.splice(i, 1); setIn(state.v, path, items); rebuild(); } }, t('ed.remove')))),
      h('button', { type: 'button', class: 'add-row', id: id + '-add', 'data-write': true, onclick: () => { items.push(make()); setIn(state.v, path, items); rebuild(); } }, '+ ' + addLabel));
  }

  // ---------- fission campaign ----------
  function campaign({ value, id, readonly, templates, livecodes, save, extraActions }) {
    const idIn = h('input', { id: 'campaign-id', value: id || '', placeholder: 'spring_invite', required: true, readonly: readonly ? true : null });
    const RULES = [['convert_within', 'text', '14d'], ['hold', 'text', '7d'], ['group', 'text', 'g01'], ['burst_max', 'int', '30'], ['burst_window', 'text', '1h'], ['zombie_after', 'text', '30d'], ['max_per_device', 'int', '3'], ['max_per_ip', 'int', '10']];
    const tplOptions = templates.map((x) => [x, x]);
    return formWithJson({
      prefix: 'campaign', value, rows: 18, extraActions,
      header: h('label', {}, t('gr.f.id'), idIn),
      save: (body) => save(idIn.value.trim(), body),
      build: (bind, rebuild, state) => {
        const v = state.v;
        const rewardNames = () => Object.keys(isObj(v.rewards) ? v.rewards : {});
        // A reward renamed: its tiers follow.
        const rewardRow = (name) => {
          const nameIn = h('input', { value: name, 'aria-label': t('ed.c.reward_name'), class: 'reward-name', size: 10 });
          nameIn.addEventListener('change', () => {
            const n = nameIn.value.trim();
            if (!n || n === name || v.rewards[n]) { nameIn.value = name; return; }
            const next = {};
            for (const [k, r] of Object.entries(v.rewards)) next[k === name ? n : k] = r;
            v.rewards = next;
            (v.tiers || []).forEach((tr) => { if (tr.reward === name) tr.reward = n; });
            rebuild();
          });
          return h('div', { class: 'list-row', 'data-reward': name }, lbl(t('ed.c.reward_name'), nameIn),
            lbl(t('ed.c.stock'), bind(['rewards', name, 'stock'], 'int', { required: true, id: `cf-reward-${name}-stock` })),
            lbl(t('ed.c.cost'), bind(['rewards', name, 'cost'], 'yuan', { id: `cf-reward-${name}-cost` })),
            lbl(t('ed.c.template'), bind(['rewards', name, 'template'], 'select', { options: tplOptions, empty: t('ed.none') })),
            lbl(t('ed.c.channel'), bind(['rewards', name, 'channel'], 'text', { placeholder: 'wecom' })),
            h('button', { type: 'button', class: 'link danger', onclick: () => { delete v.rewards[name]; rebuild(); } }, t('ed.remove')));
        };
        const landing = isObj(v.landing) ? v.landing : (v.landing = {});
        return [
          lbl(t('ed.c.name'), bind(['name'], 'text', { required: true, id: 'cf-name' })),
          h('div', { class: 'row2' }, lbl(t('ed.c.starts_at', { tz: ui.zone.tz() }), bind(['starts_at'], 'datetime', { id: 'cf-starts' })), lbl(t('ed.c.ends_at', { tz: ui.zone.tz() }), bind(['ends_at'], 'datetime', { id: 'cf-ends' }))),
          lbl(t('gr.f.grant'), bind(['grant'], 'select', { id: 'cf-grant', options: ['instant', 'after_hold'].map((x) => [x, t('gr.f.grant.' + x)]) }), h('span', { class: 'muted small' }, t('ed.c.grant_help'))),
          h('fieldset', {}, h('legend', {}, t('gr.f.tiers')),
            listEditor(state, ['tiers'], rebuild, { id: 'cf-tiers', addLabel: t('ed.c.add_tier'), make: () => ({ invites: ((v.tiers || []).slice(-1)[0] || { invites: 0 }).invites + 5, reward: rewardNames()[0] || '' }),
              row: (i) => [lbl(t('ed.c.invites'), bind(['tiers', i, 'invites'], 'int', { required: true, id: `cf-tier-${i}-invites` })),
                lbl(t('gr.f.reward'), bind(['tiers', i, 'reward'], 'select', { required: true, id: `cf-tier-${i}-reward`, options: rewardNames().map((x) => [x, x]) }))] })),
          h('fieldset', {}, h('legend', {}, t('ed.c.rewards')),
            h('div', { class: 'list-editor', id: 'cf-rewards' }, rewardNames().map(rewardRow),
              h('button', { type: 'button', class: 'add-row', id: 'cf-rewards-add', 'data-write': true, onclick: () => { let i = rewardNames().length + 1; while (v.rewards && v.rewards['reward' + i]) i++; v.rewards = Object.assign(v.rewards || {}, { ['reward' + i]: { stock: 100, cost: 0 } }); rebuild(); } }, '+ ' + t('ed.c.add_reward')))),
          h('fieldset', {}, h('legend', {}, t('ed.c.rules')), h('p', { class: 'muted small' }, t('ed.c.rules_help')),
            h('div', { class: 'grid-fields' }, RULES.map(([f, kind, ph]) => lbl(t('ed.c.rule.' + f), bind(['rules', f], kind, { placeholder: ph, id: 'cf-rule-' + f }))))),
          h('fieldset', {}, h('legend', {}, t('ed.c.landing')),
            h('div', { class: 'row2' }, lbl(t('ed.c.landing_next'), bind(['landing', 'next'], 'select', { id: 'cf-landing-next', empty: t('ed.none'), options: ['add_friend', 'live_code', 'join_group'].map((x) => [x, t('ed.c.next.' + x)]) })),
              lbl(t('ed.c.live_code'), bind(['landing', 'live_code'], 'select', { id: 'cf-landing-code', empty: t('ed.none'), options: livecodes.map((x) => [x, x]) })))),
          landing && v.poster ? h('p', { class: 'muted small' }, t('ed.c.poster_json')) : null,
        ];
      },
    });
  }

  // ---------- live code ----------
  function livecode({ value, id, groups, operators, templates, save }) {
    const idIn = h('input', { id: 'livecode-id', value: id || '', placeholder: 'spring_qr', required: true });
    const form = formWithJson({
      prefix: 'livecode', value, rows: 10,
      header: lbl(t('gr.c.code'), idIn),
      save: (body) => save(idIn.value.trim(), body),
      build: (bind, rebuild, state) => {
        const v = state.v;
        const hoursOn = h('input', { type: 'checkbox', id: 'lf-hours-on', checked: v.working_hours ? true : null });
        hoursOn.addEventListener('change', () => { if (hoursOn.checked) v.working_hours = { start: '09:00', end: '21:00', timezone: ui.zone.tz() }; else delete v.working_hours; rebuild(); });
        return [
          h('fieldset', {}, h('legend', {}, t('gr.c.targets')), h('p', { class: 'muted small' }, t('ed.l.targets_help')),
            listEditor(state, ['targets'], rebuild, { id: 'lf-targets', addLabel: t('ed.l.add_target'), make: () => ({ group: groups[0] || '' }),
              row: (i, item) => {
                const kind = isObj(item) && 'operator' in item ? 'operator' : 'group';
                const pick = h('select', { id: `lf-target-${i}-kind`, 'aria-label': t('ed.l.kind') }, ['group', 'operator'].map((k) => h('option', { value: k, selected: k === kind ? true : null }, t('gr.c.' + k))));
                pick.addEventListener('change', () => { state.v.targets[i] = { [pick.value]: (pick.value === 'group' ? groups : operators)[0] || '' }; rebuild(); });
                return [pick, bind(['targets', i, kind], 'select', { required: true, id: `lf-target-${i}`, options: (kind === 'group' ? groups : operators).map((x) => [x, x]) })];
              } })),
          h('div', { class: 'row2' }, lbl(t('gr.c.daily_cap'), bind(['daily_cap_per_operator'], 'int', { id: 'lf-cap', placeholder: '200' })),
            lbl(t('ed.l.backup'), bind(['backup_operator'], 'select', { id: 'lf-backup', empty: t('ed.none'), options: operators.map((x) => [x, x]) }))),
          h('fieldset', {}, h('legend', {}, h('label', { class: 'inline' }, hoursOn, ' ', t('gr.c.hours'))),
            v.working_hours ? h('div', { class: 'grid-fields' }, lbl(t('auto.g.quiet_start'), bind(['working_hours', 'start'], 'text', { required: true, id: 'lf-hours-start', placeholder: '09:00' })),
              lbl(t('auto.g.quiet_end'), bind(['working_hours', 'end'], 'text', { required: true, id: 'lf-hours-end', placeholder: '21:00' })),
              lbl(t('auto.g.timezone'), bind(['working_hours', 'timezone'], 'text', { id: 'lf-hours-tz', placeholder: ui.zone.tz() }))) : null),
          h('div', { class: 'row2' }, lbl(t('ed.l.auto_tags'), bind(['auto_tags'], 'list', { id: 'lf-tags' })),
            lbl(t('ed.l.welcome'), bind(['welcome_template'], 'select', { id: 'lf-welcome', empty: t('ed.none'), options: templates.map((x) => [x, x]) }))),
          h('div', { class: 'row2' }, lbl(t('ed.l.source'), bind(['source_channel'], 'text', { id: 'lf-source', placeholder: 'douyin' })),
            lbl(t('ed.l.backing'), bind(['backing'], 'select', { id: 'lf-backing', empty: t('ed.l.backing_none'), options: [['wecom', t('ed.l.backing_wecom')]] }))),
        ];
      },
    });
    form.setId = (x) => { idIn.value = x; };
    return form;
  }

  // ---------- auto-reply rules ----------
  function autoreply({ rules, templates, journeys, save }) {
    // "rule 0 ("price"), matcher.contains: …" and "rules[0].reply_template: …" → "[0]…".
    const normalize = (msg) => msg.replace(/rule (\d+) \("(?:[^"\\]|\\.)*"\), ([\w.\[\]]+):/g, '[$1].$2:').replace(/rules\[(\d+)\]\./g, '[$1].');
    // `none`: the rule matches by the message's intents alone.
    const MATCHERS = ['contains', 'any_of', 'regex', 'none'];
    return formWithJson({
      prefix: 'autoreply', value: rules, rows: 10, normalize,
      save: (body) => save(body),
      build: (bind, rebuild, state) => {
        if (!Array.isArray(state.v)) state.v = [];
        const list = state.v;
        return [
          list.length ? null : h('div', { class: 'empty', id: 'autoreply-empty' }, h('p', {}, t('ed.a.empty'))),
          list.map((rule, i) => {
            if (!isObj(rule)) return null;
            const byIntent = Array.isArray(rule.intents) && rule.intents.length > 0;
            if (!isObj(rule.matcher) && !byIntent) rule.matcher = { contains: '' };
            const m = isObj(rule.matcher) ? rule.matcher : null;
            const mk = m ? (MATCHERS.find((k) => k in m) || 'contains') : 'none';
            const kind = h('select', { id: `af-${i}-matcher`, 'aria-label': t('ed.a.matcher') }, MATCHERS.map((k) => h('option', { value: k, selected: k === mk ? true : null }, t('ed.a.m.' + k))));
            kind.addEventListener('change', () => {
              const old = m ? m[mk] : '';
              const words = Array.isArray(old) ? old : old ? [old] : [];
              if (kind.value === 'none') delete rule.matcher;
              else rule.matcher = { [kind.value]: kind.value === 'any_of' ? words : words.join(' ') };
              rebuild();
            });
            return h('fieldset', { class: 'rule', 'data-rule-index': i }, h('legend', {}, t('ed.a.rule', { n: i + 1 }), ' ', h('code', {}, rule.id || '')),
              h('div', { class: 'row2' }, lbl(t('ed.a.id'), bind([i, 'id'], 'text', { required: true, id: `af-${i}-id` })), lbl(t('ed.a.priority'), bind([i, 'priority'], 'int', { id: `af-${i}-priority`, min: '-1000', placeholder: '0' }))),
              h('div', { class: 'row2' }, lbl(t('ed.a.matcher'), kind),
                mk === 'none' ? h('p', { class: 'muted small' }, t('ed.a.m.none_help'))
                  : lbl(t('ed.a.words'), bind([i, 'matcher', mk], mk === 'any_of' ? 'list' : 'text', { required: true, id: `af-${i}-words` }))),
              lbl(t('ed.a.intents'), bind([i, 'intents'], 'list', { id: `af-${i}-intents`, placeholder: 'price, buy', required: mk === 'none' ? true : null })),
              h('div', { class: 'row2' }, lbl(t('ed.a.reply'), bind([i, 'reply_template'], 'select', { id: `af-${i}-reply`, empty: t('ed.none'), options: templates.map((x) => [x, x]) })),
                lbl(t('ed.a.tags'), bind([i, 'tags'], 'list', { id: `af-${i}-tags` }))),
              h('div', { class: 'row2' }, lbl(t('ed.a.channels'), bind([i, 'channels'], 'list', { id: `af-${i}-channels`, placeholder: t('ed.a.all_channels') })),
                lbl(t('ed.a.event_types'), bind([i, 'event_types'], 'list', { id: `af-${i}-events`, placeholder: 'comment, message' }))),
              h('div', { class: 'row2' }, lbl(t('ed.a.cooldown'), bind([i, 'cooldown_secs'], 'int', { id: `af-${i}-cooldown`, placeholder: '600' })),
                lbl(t('ed.a.journey'), bind([i, 'enroll_journey'], 'select', { id: `af-${i}-journey`, empty: t('ed.none'), options: journeys.map((x) => [x, x]) }))),
              h('div', { class: 'row2' }, lbl(t('ed.a.operator'), bind([i, 'assign_operator'], 'text', { id: `af-${i}-operator` })),
                h('div', {}, h('label', { class: 'inline' }, bind([i, 'create_lead'], 'check', { id: `af-${i}-lead` }), ' ', t('ed.a.lead')),
                  h('label', { class: 'inline' }, bind([i, 'enabled'], 'check', { id: `af-${i}-enabled`, default: true }), ' ', t('ed.a.enabled')))),
              h('div', { class: 'actions' }, h('button', { type: 'button', class: 'link danger', onclick: () => { list.splice(i, 1); rebuild(); } }, t('ed.a.remove'))));
          }),
          h('button', { type: 'button', class: 'add-row', id: 'autoreply-add', 'data-write': true, onclick: () => { let n = list.length + 1; while (list.some((r) => r && r.id === 'rule' + n)) n++; list.push({ id: 'rule' + n, matcher: { any_of: [] }, reply_template: templates[0] }); rebuild(); } }, '+ ' + t('ed.a.add')),
        ];
      },
    });
  }

  return { journey, campaign, livecode, autoreply, splitFaults };
};
