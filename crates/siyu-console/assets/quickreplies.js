// siyu console: the quick-reply library (话术库, /v1/quick-replies) on
// #/quick-replies — search as you type, filter by group, the team's
// shared replies beside the operator's own, an editor for one reply, and
// "fill in for a person": the reply rendered for a customer and copied,
// its use counted. Strings are registered with I18N.add beside the page.
'use strict';
window.I18N.add({
  'zh-CN': {
    'nav.quick_replies': '话术库',
    'qr.title': '话术库',
    'qr.search': '搜索标题、内容、分组或关键词',
    'qr.all_groups': '全部分组',
    'qr.ungrouped': '未分组',
    'qr.shared': '团队共享',
    'qr.personal': '仅自己',
    'qr.uses': '使用 {n} 次',
    'qr.new': '新建话术',
    'qr.edit': '编辑',
    'qr.delete': '删除',
    'qr.delete_confirm': '删除话术「{title}」？',
    'qr.deleted': '已删除',
    'qr.saved': '已保存话术「{title}」',
    'qr.f.id': '编号（字母、数字，保存后不能改）',
    'qr.f.title': '标题',
    'qr.f.group': '分组（例如 售前、售后）',
    'qr.f.text': '内容，可用变量 {{name}}、{{trait.city | default: "您"}}',
    'qr.f.keywords': '关键词（逗号分隔）',
    'qr.f.personal': '仅自己可见',
    'qr.save': '保存',
    'qr.use_for': '客户身份（例如 wecom:wm…）',
    'qr.use': '填入并复制',
    'qr.used': '已复制（第 {n} 次使用）',
    'qr.empty': '还没有话术。新建一条常用回复（价格、发货、售后流程），团队都能用。',
    'qr.no_match': '没有匹配的话术，换个关键词试试。',
    'qr.sensitive': '已保存，但内容触发了敏感词规则：{ids}',
  },
  en: {
    'nav.quick_replies': 'Quick replies',
    'qr.title': 'Quick replies',
    'qr.search': 'Search titles, text, groups or keywords',
    'qr.all_groups': 'All groups',
    'qr.ungrouped': 'Ungrouped',
    'qr.shared': 'Shared',
    'qr.personal': 'Only me',
    'qr.uses': 'used {n}×',
    'qr.new': 'New reply',
    'qr.edit': 'Edit',
    'qr.delete': 'Delete',
    'qr.delete_confirm': 'Delete the reply "{title}"?',
    'qr.deleted': 'Deleted',
    'qr.saved': 'Saved "{title}"',
    'qr.f.id': 'Id (letters, digits; fixed once saved)',
    'qr.f.title': 'Title',
    'qr.f.group': 'Group (e.g. pre-sales, after-sales)',
    'qr.f.text': 'Text; variables such as {{name}}, {{trait.city | default: "there"}}',
    'qr.f.keywords': 'Keywords (comma-separated)',
    'qr.f.personal': 'Only visible to me',
    'qr.save': 'Save',
    'qr.use_for': 'Customer identity (e.g. wecom:wm…)',
    'qr.use': 'Fill in and copy',
    'qr.used': 'Copied (use #{n})',
    'qr.empty': 'No quick replies yet. Add the answers you type every day (prices, shipping, returns) and the whole team can use them.',
    'qr.no_match': 'No reply matches; try another word.',
    'qr.sensitive': 'Saved, but the text hits sensitive-word rules: {ids}',
  },
});

window.QuickReplyPages = function (ui) {
  const { h, api, card, toast, enc, msgOf, faults, me } = ui;
  const { t } = window.I18N;

  async function quickReplies(main, arg) {
    const login = (me() || {}).login;
    const editing = arg || null;
    const search = h('input', { id: 'qr-search', type: 'search', placeholder: t('qr.search'), autocomplete: 'off' });
    const group = h('select', { id: 'qr-group' });
    const list = h('div', { id: 'qr-list' });
    const forPerson = h('input', { id: 'qr-person', placeholder: t('qr.use_for'), spellcheck: 'false' });
    let timer = null;

    async function load() {
      const params = new URLSearchParams();
      if (search.value.trim()) params.set('q', search.value.trim());
      if (group.value) params.set('group', group.value);
      if (login) params.set('owner', login);
      const r = await api('GET', '/v1/quick-replies?' + params);
      if (!r.ok) { list.replaceChildren(h('p', { class: 'error' }, msgOf(r))); return; }
      if (!group.options.length || !search.value) {
        const keep = group.value;
        group.replaceChildren(h('option', { value: '' }, t('qr.all_groups')), ...r.data.groups.map((g) => h('option', { value: g }, g || t('qr.ungrouped'))));
        group.value = keep;
      }
      const replies = r.data.quick_replies;
      if (!replies.length) {
        list.replaceChildren(h('div', { class: 'empty', id: 'qr-empty' }, h('p', {}, search.value || group.value ? t('qr.no_match') : t('qr.empty'))));
        return;
      }
      const byGroup = new Map();
      for (const q of replies) { if (!byGroup.has(q.group)) byGroup.set(q.group, []); byGroup.get(q.group).push(q); }
      list.replaceChildren(...[...byGroup].map(([g, qs]) => h('section', { class: 'qr-group' },
        h('h3', {}, g || t('qr.ungrouped')),
        qs.map((q) => h('div', { class: 'qr-item', 'data-reply': q.id },
          h('div', { class: 'qr-head' }, h('strong', {}, q.title), ' ',
            h('span', { class: 'badge' }, q.owner ? t('qr.personal') : t('qr.shared')), ' ',
            h('span', { class: 'muted small qr-uses' }, t('qr.uses', { n: q.uses }))),
          h('p', { class: 'qr-text wrap' }, q.text),
          h('div', { class: 'actions' },
            h('button', { type: 'button', class: 'primary qr-use', 'data-write': true, onclick: () => use(q) }, t('qr.use')),
            h('a', { href: '#/quick-replies/' + enc(q.id), class: 'qr-edit' }, t('qr.edit')),
            h('button', { type: 'button', class: 'link danger qr-delete', 'data-write': true, onclick: () => remove(q) }, t('qr.delete'))))))));
      ui.applyRole(list);
    }

    async function use(q) {
      const person = forPerson.value.trim();
      if (!person) { forPerson.focus(); toast(t('qr.use_for'), 'error'); return; }
      const r = await api('POST', '/v1/quick-replies/' + enc(q.id) + '/use', { person });
      if (!r.ok) { if (r.status !== 403) toast(msgOf(r), 'error'); return; }
      try { await navigator.clipboard.writeText(r.data.text); } catch (e) { /* shown below either way */ }
      $out.replaceChildren(h('pre', { class: 'hint wrap', id: 'qr-filled' }, r.data.text));
      toast(t('qr.used', { n: r.data.uses }), 'good');
      load();
    }

    async function remove(q) {
      if (!window.confirm(t('qr.delete_confirm', { title: q.title }))) return;
      const r = await api('DELETE', '/v1/quick-replies/' + enc(q.id));
      if (r.ok) { toast(t('qr.deleted'), 'good'); load(); } else if (r.status !== 403) toast(msgOf(r), 'error');
    }

    const $out = h('div', { id: 'qr-out' });
    search.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(load, 150); });
    group.addEventListener('change', load);

    main.replaceChildren(h('h1', {}, t('qr.title')),
      h('div', { class: 'split qr-layout' },
        h('div', {}, card(t('qr.title'), h('div', { class: 'search' }, search, group), h('div', { class: 'search' }, forPerson), $out, list)),
        await editor(editing, login, load)));
    await load();
  }

  // The form for a new reply, or for `id`.
  async function editor(id, login, reload) {
    let current = { id: '', title: '', text: '', group: '', keywords: [], owner: null };
    if (id) {
      const r = await api('GET', '/v1/quick-replies?all=true');
      const found = r.ok && r.data.quick_replies.find((q) => q.id === id);
      if (found) current = found;
    }
    const f = {
      id: h('input', { id: 'qr-f-id', value: current.id, placeholder: t('qr.f.id'), required: true, readonly: !!id, 'data-write': true }),
      title: h('input', { id: 'qr-f-title', value: current.title, placeholder: t('qr.f.title'), required: true, 'data-write': true }),
      group: h('input', { id: 'qr-f-group', value: current.group, placeholder: t('qr.f.group'), 'data-write': true }),
      text: h('textarea', { id: 'qr-f-text', rows: 6, placeholder: t('qr.f.text'), 'data-write': true }),
      keywords: h('input', { id: 'qr-f-keywords', value: (current.keywords || []).join(', '), placeholder: t('qr.f.keywords'), 'data-write': true }),
      personal: h('input', { id: 'qr-f-personal', type: 'checkbox', checked: !!current.owner, 'data-write': true }),
    };
    f.text.value = current.text;
    const out = h('div', { id: 'qr-f-result' });
    const form = h('form', { class: 'editor', id: 'qr-form', onsubmit: async (e) => {
      e.preventDefault();
      const body = {
        title: f.title.value, text: f.text.value, group: f.group.value.trim(),
        keywords: f.keywords.value.split(/[,，]/).map((k) => k.trim()).filter(Boolean),
      };
      if (f.personal.checked && login) body.owner = login;
      const r = await api('PUT', '/v1/quick-replies/' + enc(f.id.value.trim()), body);
      if (r.ok) {
        toast(t('qr.saved', { title: r.data.title }), 'good');
        out.replaceChildren();
        // Saved all the same: the operator sees which rules it hits.
        if ((r.data.sensitive || []).length) {
          out.replaceChildren(h('p', { class: 'bad', id: 'qr-sensitive' }, t('qr.sensitive', { ids: r.data.sensitive.map((x) => x.category || x.id).join('、') })));
        }
        if (!id) { f.id.value = ''; f.title.value = ''; f.text.value = ''; f.keywords.value = ''; f.personal.checked = false; }
        reload();
      } else if (r.status !== 403) out.replaceChildren(faults('qr-fault', msgOf(r)));
    } },
    f.id, f.title, f.group, f.text, f.keywords,
    h('label', { class: 'check' }, f.personal, ' ', t('qr.f.personal')),
    out, h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', id: 'qr-save', 'data-write': true }, t('qr.save'))));
    return card(id ? t('qr.edit') + ' · ' + id : t('qr.new'), form);
  }

  return { 'quick-replies': quickReplies };
};
