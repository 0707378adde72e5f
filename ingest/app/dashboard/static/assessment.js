// ecowatch dashboard: the assessment view (#assessment).
//
// What a bureau publishes, from GET /api/v1/assessment: a period (a day, month, quarter, year or
// the year to date) judged by the 2011 surface-water assessment method; the whole registry or one
// district, basin or river. Shown: the overall figures (sections, assessed, class I–III share,
// 劣V share, compliance rate, grade, their change against the previous period and last year),
// the section table as the monthly bulletin lays it out (target, this period, the one before,
// a year earlier, main pollutants with exceedance multiples, meets target, grade; a section
// without a required item is "not assessable", never classed), and the regional tables. Export
// fetches the printed report (HTML, XLSX, CSV) with the token and hands it to the browser.
// Same rules as app.js: nodes built with createElement and textContent, texts from i18n.js.
'use strict';

(() => {
  const i18n = window.ecowatchI18n;
  const { t } = i18n;
  const dash = window.ecowatchDash;
  const { $, el, clear, api, apiJson, classBadge, notify } = dash;
  const GROUPS = ['district', 'basin', 'river'];
  const FIGURES = ['share_i_iii', 'share_worse_than_v', 'compliance_rate'];

  const view = { started: false, data: null, request: 0, regions: null };

  // --- the period picker ----------------------------------------------------------------------
  function pad(n) {
    return String(n).padStart(2, '0');
  }

  function localDate(date) {
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  }

  function setDefaults() {
    const now = new Date();
    const yesterday = new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1);
    $('as-day').value = localDate(yesterday);
    $('as-day').max = localDate(yesterday);
    $('as-month').value = `${now.getFullYear()}-${pad(now.getMonth() + 1)}`;
    $('as-year').value = String(now.getFullYear());
    $('as-quarter').value = String(Math.floor(now.getMonth() / 3) + 1);
  }

  function showInputs() {
    const kind = $('as-kind').value;
    $('as-day').hidden = kind !== 'day';
    $('as-month').hidden = kind !== 'month';
    $('as-year').hidden = kind !== 'year' && kind !== 'quarter';
    $('as-quarter').hidden = kind !== 'quarter';
  }

  function periodText() {
    const kind = $('as-kind').value;
    if (kind === 'day') return $('as-day').value;
    if (kind === 'month') return $('as-month').value;
    if (kind === 'quarter') return `${$('as-year').value}-Q${$('as-quarter').value}`;
    if (kind === 'year') return $('as-year').value;
    return 'ytd';
  }

  function fillRegions() {
    const select = $('as-region');
    const chosen = select.value;
    clear(select);
    select.append(el('option', { value: '' }, t('as.scope.all')));
    for (const group of GROUPS) {
      const names = [...new Set(view.regions.map((s) => s[group]))].sort((a, b) => a.localeCompare(b, 'zh-CN'));
      const optgroup = el('optgroup', { label: t(`as.group.${group}`) });
      for (const name of names) optgroup.append(el('option', { value: `${group}:${name}` }, name));
      select.append(optgroup);
    }
    select.value = chosen;
  }

  function query(extra) {
    const params = new URLSearchParams({ period: periodText() });
    if ($('as-region').value) params.set('region', $('as-region').value);
    for (const [key, value] of Object.entries(extra || {})) params.set(key, value);
    return `/api/v1/assessment?${params}`;
  }

  // --- loading --------------------------------------------------------------------------------
  async function load() {
    const request = ++view.request;
    $('as-state').textContent = t('as.loading');
    $('as-show').disabled = true;
    try {
      const data = await apiJson(query());
      if (request !== view.request) return;
      view.data = data;
      render();
    } catch (error) {
      if (request !== view.request) return;
      $('as-state').textContent = t('as.failed', { error: error.message });
    } finally {
      if (request === view.request) $('as-show').disabled = false;
    }
  }

  async function exportAs(format) {
    try {
      const response = await api(query({ format }));
      if (!response.ok) throw new Error(response.statusText);
      const blob = await response.blob();
      const disposition = response.headers.get('Content-Disposition') || '';
      const name = (disposition.match(/filename="([^"]+)"/) || [])[1] || `ecowatch.${format}`;
      const link = el('a', { href: URL.createObjectURL(blob), download: name });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    } catch (error) {
      notify(t('as.failed', { error: error.message }), 'error');
    }
  }

  // --- formatting -----------------------------------------------------------------------------
  function share(value) {
    return value === null || value === undefined ? '—' : `${(value * 100).toFixed(1)}%`;
  }

  function points(change, bare) {
    if (change === null || change === undefined) return '—';
    const value = Math.round(change * 1000) / 10;
    const sign = value > 0 ? '+' : '';
    return bare ? `${sign}${value.toFixed(1)}` : t('as.points', { sign, points: value.toFixed(1) });
  }

  function itemName(code) {
    const p = dash.state.parameters.get(code);
    if (!p) return code;
    return i18n.lang === 'zh' && p.name_zh ? p.name_zh : p.name;
  }

  function pollutants(section) {
    const parts = (section.primary_pollutants || []).map((p) => (
      p.multiple === null ? itemName(p.parameter) : `${itemName(p.parameter)}(${p.multiple.toFixed(2)})`));
    return parts.length ? parts.join(t('as.list.sep')) : '—';
  }

  function classCell(section, waterClass) {
    if (waterClass) return classBadge(waterClass);
    if (section && section.assessable === false && section.missing && section.missing.length) {
      const missing = section.missing.map(itemName).join(t('as.list.sep'));
      return el('span', { class: 'badge na', title: t('as.missing', { items: missing }) }, t('as.not_assessable'));
    }
    return classBadge(null);
  }

  function meets(value) {
    if (value === true) return el('span', { class: 'ok' }, t('yes'));
    if (value === false) return el('span', { class: 'bad' }, t('no'));
    return el('span', { class: 'muted' }, '—');
  }

  function bar(value) {
    const width = value === null || value === undefined ? 0 : Math.max(0, Math.min(1, value)) * 60;
    const level = value === null || value === undefined ? 'none' : value >= 0.9 ? 'full' : value >= 0.75 ? 'most' : 'low';
    return dash.svg('svg', { class: 'bar', width: 60, height: 8, viewBox: '0 0 60 8', 'aria-hidden': 'true' },
      dash.svg('rect', { class: 'bar-bg', width: 60, height: 8, rx: 4 }),
      dash.svg('rect', { class: `bar-fg ${level}`, width: width.toFixed(1), height: 8, rx: 4 }));
  }

  // --- drawing --------------------------------------------------------------------------------
  function render() {
    const data = view.data;
    if (!data) return;
    const kind = data.period.kind;
    const label = i18n.lang === 'zh' ? data.period.label_zh : data.period.label;
    const scope = data.scope ? `${data.scope.name} ` : '';
    $('as-heading').textContent = scope + t('as.heading', { label, kind: t(`as.heading.${kind}`) });
    const sources = data.sources || {};
    const note = [t('as.sources', {
      stored: sources.stored_days ?? 0, read: sources.read_days ?? 0, missing: sources.missing_days ?? 0,
    })];
    for (const problem of sources.problems || []) note.push(t('as.problem', { problem }));
    $('as-state').textContent = note.join(' · ');
    renderSummary(data);
    renderSections(data);
    renderRegions(data);
  }

  function renderSummary(data) {
    const box = $('as-summary');
    clear(box);
    const overall = data.overall;
    const card = (label, value, extra) => el('div', { class: 'figure' },
      el('span', { class: 'figure-label' }, label), el('span', { class: 'figure-value' }, value), extra || null);
    box.append(card(t('as.sections'), String(overall.sections)));
    box.append(card(t('as.assessed'), String(overall.assessed)));
    for (const name of FIGURES) {
      const changes = [];
      if (overall.change_vs_previous) changes.push(`${t('as.vs_previous')} ${points(overall.change_vs_previous[name])}`);
      if (overall.change_vs_last_year) changes.push(`${t('as.vs_last_year')} ${points(overall.change_vs_last_year[name])}`);
      box.append(card(t(`as.${name}`), share(overall[name]), el('span', { class: 'figure-change muted' }, changes.join(' · '))));
    }
    box.append(card(t('as.grade'), i18n.grade(overall.grade)));
  }

  function renderSections(data) {
    const table = $('as-sections');
    const kind = data.period.kind;
    const before = data.previous_period !== null;
    const head = table.tHead;
    clear(head);
    const headers = [t('col.station'), t('col.river'), t('col.district'), t('col.target'), t(`as.now.${kind}`)];
    if (before) headers.push(t(`as.before.${kind}`));
    headers.push(t('as.last_year'), t('as.pollutants'), t('as.meets'), t('as.grade'));
    head.append(el('tr', {}, headers.map((h) => el('th', {}, h))));
    const body = table.tBodies[0];
    clear(body);
    if (!data.sections.length) {
      body.append(el('tr', {}, el('td', { colspan: headers.length, class: 'empty' }, t('as.no_sections'))));
      return;
    }
    for (const s of data.sections) {
      const cells = [
        el('td', {}, el('span', { class: 'name' }, s.name), el('span', { class: 'id' }, s.station_id)),
        el('td', {}, s.river),
        el('td', {}, s.district),
        el('td', {}, classBadge(s.target)),
        el('td', { class: 'class-cell' }, classCell(s, s.class)),
      ];
      if (before) cells.push(el('td', {}, classBadge(s.previous_class)));
      cells.push(
        el('td', {}, classBadge(s.last_year_class)),
        el('td', { class: 'pollutants' }, pollutants(s)),
        el('td', {}, meets(s.meets_target)),
        el('td', {}, i18n.grade(s.grade)),
      );
      body.append(el('tr', { 'data-station': s.station_id, class: s.meets_target === false ? 'missed' : null }, cells));
    }
  }

  function renderRegions(data) {
    const box = $('as-regions');
    clear(box);
    const before = data.previous_period !== null;
    for (const group of GROUPS) {
      const rows = Object.entries(data.regions[group] || {});
      if (group === 'district') rows.sort((a, b) => (a[1].rank ?? 1e9) - (b[1].rank ?? 1e9) || a[0].localeCompare(b[0], 'zh-CN'));
      const headers = [t(`as.group.${group}`), t('as.sections'), t('as.assessed'), t('as.share_i_iii'),
        t('as.share_worse_than_v'), t('as.compliance_rate'), t('as.grade')];
      if (before) headers.push(t('as.vs_previous.pp'));
      headers.push(t('as.vs_last_year.pp'));
      if (group === 'district') headers.push(t('as.rank'));
      const table = el('table', { class: 'table rates as-region', 'data-group': group },
        el('caption', {}, t(`as.by.${group}`)),
        el('thead', {}, el('tr', {}, headers.map((h) => el('th', {}, h)))));
      const body = el('tbody', {});
      for (const [name, region] of rows) {
        const cells = [
          el('td', {}, name),
          el('td', {}, String(region.sections)),
          el('td', {}, String(region.assessed)),
          el('td', { class: 'rate' }, bar(region.share_i_iii), el('span', {}, share(region.share_i_iii))),
          el('td', { class: region.worse_than_v ? 'bad' : null }, share(region.share_worse_than_v)),
          el('td', {}, share(region.compliance_rate)),
          el('td', {}, i18n.grade(region.grade)),
        ];
        if (before) cells.push(el('td', {}, points(region.change_vs_previous && region.change_vs_previous.share_i_iii, true)));
        cells.push(el('td', {}, points(region.change_vs_last_year && region.change_vs_last_year.share_i_iii, true)));
        if (group === 'district') cells.push(el('td', {}, region.rank === null ? '—' : String(region.rank)));
        body.append(el('tr', { 'data-region': `${group}:${name}` }, cells));
      }
      table.append(body);
      box.append(el('div', { class: 'scroll' }, table));
    }
  }

  // --- start ----------------------------------------------------------------------------------
  async function open() {
    if (view.started) return;
    view.started = true;
    const registry = await dash.state.registryReady;
    view.regions = registry.stations.filter((s) => s.kinds.includes('water'));
    fillRegions();
    load();
  }

  function bind() {
    setDefaults();
    showInputs();
    $('as-kind').addEventListener('change', showInputs);
    $('as-controls').addEventListener('submit', (event) => {
      event.preventDefault();
      load();
    });
    for (const button of document.querySelectorAll('[data-export]')) {
      button.addEventListener('click', () => exportAs(button.getAttribute('data-export')));
    }
    document.addEventListener('ecowatch:view', (event) => {
      if (event.detail === 'assessment') open();
    });
    document.addEventListener('ecowatch:lang', () => {
      if (view.regions) fillRegions();
      render();
    });
    if (window.location.hash === '#assessment') open();
  }

  document.addEventListener('DOMContentLoaded', bind);
})();
