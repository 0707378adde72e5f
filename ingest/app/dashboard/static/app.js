// ecowatch operator dashboard. Hand-written, no build step, nothing loaded from elsewhere.
//
// Safety rule of this file: data never becomes markup. Every node is built with
// createElement / createElementNS, text goes in with textContent or text nodes, and attribute
// names are fixed by this code (only their values come from data). The server's
// Content-Security-Policy forbids inline script and style, so nothing here uses either.
//
// Auth: when the daemon answers 401, the page asks for the API token once, keeps it in
// sessionStorage and sends it as `Authorization: Bearer`. EventSource cannot send that header,
// so the live stream is read with fetch() and its text/event-stream body parsed here.
//
// Language: every text comes from i18n.js (`t`): Chinese by default, English on request; the
// views draw themselves again on `ecowatch:lang`. Views: the live one here, the assessment in
// assessment.js (which uses the helpers this file exports as `window.ecowatchDash`); the
// address's #live / #assessment picks one.
//
// Incidents (the snapshot's `incidents`, alerts.incidents): the map draws the rivers along the
// network (GET /api/v1/network: each river's line of [km, lat, lon]) with intakes and boundary
// sections as their own symbols, and over it the selected incident (the newest open one unless
// the operator picked another): its path along the rivers between the stations it reached, its
// origin reach, and a dashed line to the points it is forecast to reach, each with its ETA in
// Asia/Shanghai time ± tolerance. Other open incidents are drawn muted and can be clicked. The
// incident panel lists the open and recently closed ones and the selected one's forecast and
// timeline.
'use strict';

(() => {
  const i18n = window.ecowatchI18n;
  const { t } = i18n;
  const CLASSES = ['I', 'II', 'III', 'IV', 'V', '劣V'];
  // CSS class of each GB 3838 class; the colours live in style.css (palette documented there).
  const CLASS_KEY = { I: 'c1', II: 'c2', III: 'c3', IV: 'c4', V: 'c5', '劣V': 'c6' };
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const TOKEN_KEY = 'ecowatch.token';
  const OPERATOR_KEY = 'ecowatch.operator';
  // The server pings every couple of seconds; this long without a byte means the stream is dead.
  const STREAM_SILENCE_MS = 20000;
  // The smallest extent (degrees) the map zooms to around an incident: about 50 km.
  const FOCUS_MIN_SPAN = 0.45;
  // Forecast points the incident view keeps in frame: the next few, not three days of river.
  const FOCUS_FORECAST = 3;
  const CHART_REFRESH_MS = 5000;

  const state = {
    registry: null,
    stations: new Map(), // id -> registry station
    parameters: new Map(), // code -> catalogue entry
    snapshot: null,
    layout: null, // map positions
    network: null, // GET /api/v1/network
    mapView: 'incident', // 'incident': fit the selected open incident; 'all': the whole network
    layoutKey: null, // what the layout fits
    incident: { selected: null }, // the incident the operator picked (null: the newest open one)
    chart: { station: null, parameter: null, hours: 72, lastReading: null, loadedAt: 0, data: null },
    tokenPrompt: null,
    alertsById: new Map(),
    liveMode: 'connecting',
    registryReady: null, // resolves with the registry once loaded (assessment.js waits on it)
  };
  let registryLoaded = null;
  state.registryReady = new Promise((resolve) => { registryLoaded = resolve; });

  // --- DOM helpers ----------------------------------------------------------------------------
  const $ = (id) => document.getElementById(id);

  function setAttrs(node, attrs) {
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined && value !== false) node.setAttribute(name, String(value));
    }
  }

  function append(node, children) {
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function classBadge(waterClass) {
    const key = CLASS_KEY[waterClass] || 'c0';
    return el('span', { class: `badge ${key}` }, waterClass || '—');
  }

  let timeFormat = null;
  let clockFormat = null;
  // Incident times and ETAs: local time where the rivers are, whatever the browser's zone.
  let zoneFormat = null;
  function makeFormats() {
    zoneFormat = new Intl.DateTimeFormat(i18n.locale(), {
      timeZone: 'Asia/Shanghai', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
    });
    timeFormat = new Intl.DateTimeFormat(i18n.locale(), {
      month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hour12: false,
    });
    clockFormat = new Intl.DateTimeFormat(i18n.locale(), {
      hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false,
    });
  }
  makeFormats();

  function formatTime(value) {
    if (!value) return '—';
    const date = new Date(value);
    return Number.isNaN(date.getTime()) ? '—' : timeFormat.format(date);
  }

  function age(value) {
    if (!value) return '';
    const seconds = Math.max(0, (Date.now() - new Date(value).getTime()) / 1000);
    if (seconds < 90) return t('age.s', { n: Math.round(seconds) });
    if (seconds < 5400) return t('age.min', { n: Math.round(seconds / 60) });
    if (seconds < 172800) return t('age.h', { n: Math.round(seconds / 3600) });
    return t('age.d', { n: Math.round(seconds / 86400) });
  }

  function percent(share) {
    return share === null || share === undefined ? '—' : `${Math.round(share * 100)}%`;
  }

  function shortName(station) {
    const prefix = `${station.river} `;
    return station.name.startsWith(prefix) ? station.name.slice(prefix.length) : station.name;
  }

  function parameterLabel(code) {
    const p = state.parameters.get(code);
    if (!p) return code;
    return p.name_zh && i18n.lang === 'zh' ? `${p.name_zh} ${code}` : `${p.name} (${code})`;
  }

  let noticeTimer = null;
  function notify(message, kind = 'info') {
    const box = $('notice');
    box.textContent = message;
    box.className = `notice ${kind}`;
    box.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { box.hidden = true; }, kind === 'error' ? 10000 : 4000);
  }

  // --- API ------------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  function askToken(message) {
    if (state.tokenPrompt) return state.tokenPrompt;
    const dialog = $('token-dialog');
    const error = $('token-error');
    error.textContent = message || '';
    error.hidden = !message;
    state.tokenPrompt = new Promise((resolve) => {
      const form = $('token-form');
      const submit = (event) => {
        event.preventDefault();
        const token = $('token-input').value.trim();
        if (!token) return;
        sessionStorage.setItem(TOKEN_KEY, token);
        $('token-input').value = '';
        form.removeEventListener('submit', submit);
        dialog.close();
        state.tokenPrompt = null;
        $('signout').hidden = false;
        resolve();
      };
      form.addEventListener('submit', submit);
      dialog.showModal();
    });
    return state.tokenPrompt;
  }

  async function api(path, options = {}) {
    const headers = new Headers(options.headers || {});
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.set('Authorization', `Bearer ${token}`);
    const init = { method: options.method || 'GET', headers, cache: 'no-store', signal: options.signal };
    if (options.body !== undefined) {
      headers.set('Content-Type', 'application/json');
      init.body = JSON.stringify(options.body);
    }
    const response = await fetch(path, init);
    if (response.status === 401) {
      if (token) sessionStorage.removeItem(TOKEN_KEY);
      await askToken(token ? t('token.refused') : '');
      return api(path, options);
    }
    return response;
  }

  async function apiJson(path, options) {
    const response = await api(path, options);
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new ApiError(response.status, body.error || response.statusText);
    return body;
  }

  // --- live stream ----------------------------------------------------------------------------
  function setLive(mode) {
    const live = $('live');
    state.liveMode = mode;
    live.className = `live ${mode}`;
    live.textContent = t(`live.${mode}`);
  }

  async function readEvents(body, onEvent, watchdog) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      watchdog();
      buffer += value;
      buffer = buffer.replace(/\r\n?/g, '\n');
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = 'message';
        const data = [];
        for (const line of block.split('\n')) {
          if (line === '' || line.startsWith(':')) continue;
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          let text = colon < 0 ? '' : line.slice(colon + 1);
          if (text.startsWith(' ')) text = text.slice(1);
          if (field === 'event') event = text;
          else if (field === 'data') data.push(text);
        }
        if (data.length) onEvent(event, data.join('\n'));
      }
    }
  }

  async function runStream() {
    let delay = 1000;
    for (;;) {
      const controller = new AbortController();
      let timer = null;
      const watchdog = () => {
        clearTimeout(timer);
        timer = setTimeout(() => controller.abort(), STREAM_SILENCE_MS);
      };
      try {
        setLive('connecting');
        watchdog();
        const response = await api('/api/v1/stream', {
          headers: { Accept: 'text/event-stream' }, signal: controller.signal,
        });
        if (!response.ok || !response.body) throw new ApiError(response.status, 'stream refused');
        setLive('live');
        delay = 1000;
        await readEvents(response.body, (event, data) => {
          if (event === 'update') applySnapshot(JSON.parse(data));
        }, watchdog);
      } catch (error) {
        if (!(error instanceof DOMException)) console.warn('stream:', error);
      } finally {
        clearTimeout(timer);
        controller.abort();
      }
      setLive('offline');
      await new Promise((resolve) => setTimeout(resolve, delay + Math.random() * 500));
      delay = Math.min(delay * 2, 30000);
    }
  }

  function applySnapshot(snapshot) {
    state.snapshot = snapshot;
    state.alertsById = new Map((snapshot.alerts || []).map((a) => [a.alert_id, a]));
    $('updated').textContent = t('updated', { time: clockFormat.format(new Date(snapshot.at)) });
    renderMap();
    renderIncidents();
    renderStations();
    renderAlerts();
    renderCompliance();
    if (!state.chart.station) chooseInitialStation();
    const current = liveStation(state.chart.station);
    const lastReading = current ? current.last_reading_at : null;
    if (lastReading !== state.chart.lastReading && Date.now() - state.chart.loadedAt > CHART_REFRESH_MS) {
      loadChart();
    }
  }

  function liveStation(id) {
    const stations = (state.snapshot && state.snapshot.stations) || [];
    return stations.find((s) => s.id === id) || null;
  }

  // --- map ------------------------------------------------------------------------------------
  // `focus` ([lat, lon] places, or null): fit those rather than everything (the rest is clipped).
  function computeLayout(stations, network, focus) {
    const width = 800;
    const height = 500;
    const pad = 48;
    const net = network && network.enabled ? network : null;
    // Everything drawn counts for the extent: stations, and the network's lines (which hold its
    // points, confluences and extrapolated river ends).
    const coords = focus ? [...focus] : stations.map((s) => [s.lat, s.lon]);
    if (!focus) for (const river of net ? net.rivers : []) for (const [, lat, lon] of river.line) coords.push([lat, lon]);
    if (focus) {
      // Never closer than FOCUS_MIN_SPAN degrees: the sections around stay in view.
      const [la, lo] = [coords.map((c) => c[0]), coords.map((c) => c[1])];
      const [cLat, cLon] = [(Math.min(...la) + Math.max(...la)) / 2, (Math.min(...lo) + Math.max(...lo)) / 2];
      coords.push([cLat - FOCUS_MIN_SPAN / 2, cLon - FOCUS_MIN_SPAN / 2], [cLat + FOCUS_MIN_SPAN / 2, cLon + FOCUS_MIN_SPAN / 2]);
    }
    const lats = coords.map((c) => c[0]);
    const lons = coords.map((c) => c[1]);
    const midLat = (Math.min(...lats) + Math.max(...lats)) / 2;
    const kx = Math.cos((midLat * Math.PI) / 180); // equirectangular: keep angles near the centre
    const xs = lons.map((lon) => lon * kx);
    const x0 = Math.min(...xs);
    const spanX = Math.max(...xs) - x0 || 1;
    const y1 = Math.max(...lats);
    const spanY = y1 - Math.min(...lats) || 1;
    const scale = Math.min((width - 2 * pad) / spanX, (height - 2 * pad) / spanY);
    const offsetX = (width - spanX * scale) / 2;
    const offsetY = (height - spanY * scale) / 2;
    const project = (lat, lon) => [offsetX + (lon * kx - x0) * scale, offsetY + (y1 - lat) * scale];
    const positions = new Map();
    for (const s of stations) positions.set(s.id, project(s.lat, s.lon));
    const lines = [];
    const byRiver = new Map(); // river -> {river, kms, points}: the network's lines, by chainage
    for (const river of net ? net.rivers : []) {
      if (!river.line.length) continue;
      const line = {
        river: river.name, kms: river.line.map((v) => v[0]), points: river.line.map((v) => project(v[1], v[2])),
      };
      lines.push(line);
      byRiver.set(river.name, line);
    }
    for (const point of net ? net.points : []) {
      if (point.lat !== null && point.lon !== null) positions.set(point.id, project(point.lat, point.lon));
    }
    // Rivers the network does not draw: their stations in order along the river's longer extent
    // (a schematic, not a survey).
    const rivers = new Map();
    for (const s of stations) {
      if (byRiver.has(s.river)) continue;
      if (!rivers.has(s.river)) rivers.set(s.river, []);
      rivers.get(s.river).push(s);
    }
    for (const [river, members] of rivers) {
      const points = members.map((s) => positions.get(s.id));
      const rangeX = Math.max(...points.map((p) => p[0])) - Math.min(...points.map((p) => p[0]));
      const rangeY = Math.max(...points.map((p) => p[1])) - Math.min(...points.map((p) => p[1]));
      const axis = rangeX >= rangeY ? 0 : 1;
      points.sort((a, b) => a[axis] - b[axis]);
      lines.push({ river, points });
    }
    return { positions, lines, byRiver };
  }

  function renderMap() {
    const map = $('map');
    if (!state.registry) return;
    const focus = incidentFocus();
    const key = focus ? focus.key : 'all';
    if (!state.layout || state.layoutKey !== key) {
      state.layout = computeLayout(state.registry.stations, state.network, focus && focus.coords);
      state.layoutKey = key;
    }
    const zoom = $('map-zoom');
    zoom.hidden = !focus && state.mapView !== 'all';
    zoom.textContent = t(focus ? 'map.zoom.all' : 'map.zoom.incident');
    const { positions, lines } = state.layout;
    clear(map);
    const riverLayer = svg('g', { class: 'rivers' });
    for (const line of lines) {
      const d = line.points.map((p, i) => `${i ? 'L' : 'M'}${p[0].toFixed(1)},${p[1].toFixed(1)}`).join(' ');
      riverLayer.append(svg('path', { d, class: 'river' }));
      const [lx, ly] = line.points[0];
      riverLayer.append(svg('text', { x: lx - 8, y: ly - 14, class: 'river-label', 'text-anchor': 'end' }, line.river));
    }
    map.append(riverLayer);
    const overlay = incidentOverlay(state.layout);
    map.append(overlay.under);
    const live = new Map(((state.snapshot && state.snapshot.stations) || []).map((s) => [s.id, s]));
    const layer = svg('g', { class: 'points' });
    let missing = 0;
    let classified = 0;
    // Labels that would overlap an earlier one are left to the tooltip; points in trouble go first.
    // The incident's labels (ETAs, origin) were placed first; a station with an ETA label needs no other.
    const placed = [...overlay.boxes];
    const trouble = (s) => { const n = live.get(s.id) || {}; return (n.compliant === false ? 2 : 0) + ((n.active_alerts || []).length ? 1 : 0); };
    const order = [...state.registry.stations].sort((a, b) => trouble(b) - trouble(a));
    const labelled = new Set();
    for (const station of order) {
      if (overlay.named.has(station.id)) continue;
      const [x, y] = positions.get(station.id);
      const box = [x + 10, y - 8, x + 12 + shortName(station).length * 11, y + 6];
      if (placed.some((o) => box[0] < o[2] && o[0] < box[2] && box[1] < o[3] && o[1] < box[3])) continue;
      placed.push(box);
      labelled.add(station.id);
    }
    for (const station of state.registry.stations) {
      const [x, y] = positions.get(station.id);
      const now = live.get(station.id) || {};
      const waterClass = now.class || null;
      const missed = now.compliant === false;
      const alerting = (now.active_alerts || []).length > 0;
      if (waterClass) classified += 1;
      if (missed) missing += 1;
      const classes = ['station', CLASS_KEY[waterClass] || 'c0'];
      if (missed) classes.push('missed');
      if (alerting) classes.push('alerting');
      if (station.id === state.chart.station) classes.push('selected');
      const group = svg('g', {
        class: classes.join(' '), transform: `translate(${x.toFixed(1)},${y.toFixed(1)})`,
        tabindex: 0, role: 'button', 'data-station': station.id,
        'aria-label': t('map.point', {
          name: station.name,
          class: waterClass ? t('map.class', { class: waterClass }) : t('map.unknown'),
          target: station.target_class,
        }),
      });
      const title = `${station.name} · ${station.district}\n${t('map.title.line', { class: waterClass || '—', target: station.target_class })}`
        + (missed ? t('map.misses') : '') + (alerting ? t('map.alerts', { count: now.active_alerts.length }) : '');
      group.append(svg('title', {}, title));
      if (missed) group.append(svg('circle', { r: 12, class: 'ring' }));
      group.append(svg('circle', { r: 7, class: 'dot' }));
      if (labelled.has(station.id)) group.append(svg('text', { x: 11, y: 4, class: 'station-label' }, shortName(station)));
      group.addEventListener('click', () => selectStation(station.id));
      group.addEventListener('keydown', (event) => {
        if (event.key === 'Enter' || event.key === ' ') selectStation(station.id);
      });
      layer.append(group);
    }
    map.append(layer);
    map.append(overlay.over);
    $('map-summary').textContent = state.snapshot
      ? t('map.summary', { classified, missing })
      : t('map.waiting');
  }

  function renderLegend() {
    const legend = $('legend');
    clear(legend);
    for (const c of CLASSES) {
      legend.append(el('li', {}, el('span', { class: `swatch ${CLASS_KEY[c]}` }), t('legend.class', { class: c })));
    }
    legend.append(el('li', {}, el('span', { class: 'swatch c0' }), t('legend.nodata')));
    legend.append(el('li', {}, el('span', { class: 'swatch missed-key' }), t('legend.missed')));
    if (state.network && state.network.enabled) {
      for (const key of ['intake', 'boundary', 'path', 'origin', 'forecast']) {
        legend.append(el('li', {}, el('span', { class: `swatch key-${key}` }), t(`legend.${key}`)));
      }
    }
  }

  // --- incidents ------------------------------------------------------------------------------
  // Closed incidents stay in the panel this long after they closed (by the server's clock, the
  // snapshot's `at`), at most this many: the duty room sees what just ended, not the archive.
  const RECENT_CLOSED_MS = 3 * 86400000;
  const MAX_CLOSED_SHOWN = 10;

  function incidentTime(value) {
    if (!value) return '—';
    const date = new Date(value);
    return Number.isNaN(date.getTime()) ? '—' : zoneFormat.format(date);
  }

  function tolerance(seconds) {
    if (seconds < 5400) return t('inc.tol.min', { n: Math.max(1, Math.round(seconds / 60)) });
    const hours = seconds / 3600;
    return t('inc.tol.h', { n: hours < 10 ? hours.toFixed(1) : Math.round(hours) });
  }

  function networkPoint(id) {
    return state.network && state.network.enabled ? state.network.points.find((p) => p.id === id) || null : null;
  }

  function placeName(id, short = false) {
    const station = state.stations.get(id);
    if (station) return short ? shortName(station) : station.name;
    const point = networkPoint(id);
    if (!point) return id;
    return short ? shortName(point) : point.name;
  }

  // The item's name in the page's language, capitalised (English catalogue names are lower case).
  function itemLabel(code) {
    const p = state.parameters.get(code);
    const name = !p ? code : i18n.lang === 'zh' && p.name_zh ? p.name_zh : p.name;
    return name.charAt(0).toUpperCase() + name.slice(1);
  }

  function itemUnit(code) {
    const p = state.parameters.get(code);
    return p && p.unit && p.unit !== '1' ? ` ${p.unit}` : '';
  }

  // Open ones first, newest first; then the recently closed ones, last closed first.
  function listedIncidents() {
    const all = (state.snapshot && state.snapshot.incidents) || [];
    const at = state.snapshot ? new Date(state.snapshot.at).getTime() : 0;
    const open = all.filter((i) => i.status !== 'closed')
      .sort((a, b) => String(b.opened_at).localeCompare(String(a.opened_at)) || a.id.localeCompare(b.id));
    const closed = all.filter((i) => i.status === 'closed' && i.closed_at && at - new Date(i.closed_at).getTime() <= RECENT_CLOSED_MS)
      .sort((a, b) => String(b.closed_at).localeCompare(String(a.closed_at)))
      .slice(0, MAX_CLOSED_SHOWN);
    return [...open, ...closed];
  }

  function selectedIncident(listed) {
    const chosen = listed.find((i) => i.id === state.incident.selected);
    return chosen || listed.find((i) => i.status !== 'closed') || null;
  }

  // (lat, lon) of `km` along a river of the network, from its line; null off the network.
  function geoAt(river, km) {
    const line = ((state.network && state.network.rivers) || []).find((r) => r.name === river);
    if (!line || !line.line.length) return null;
    const v = line.line;
    if (km <= v[0][0] || v.length === 1) return [v[0][1], v[0][2]];
    for (let i = 1; i < v.length; i += 1) {
      if (km <= v[i][0]) {
        const share = (km - v[i - 1][0]) / (v[i][0] - v[i - 1][0] || 1);
        return [v[i - 1][1] + share * (v[i][1] - v[i - 1][1]), v[i - 1][2] + share * (v[i][2] - v[i - 1][2])];
      }
    }
    return [v[v.length - 1][1], v[v.length - 1][2]];
  }

  function geoOf(id) {
    const station = state.stations.get(id);
    if (station) return [station.lat, station.lon];
    const point = networkPoint(id);
    return point && point.lat !== null ? [point.lat, point.lon] : null;
  }

  // What the map fits while an open incident is selected (and the operator did not ask for the
  // whole map): its sections, origin reach and next forecast points; null otherwise.
  function incidentFocus() {
    if (state.mapView === 'all' || !state.network || !state.network.enabled) return null;
    const incident = selectedIncident(listedIncidents());
    if (!incident || incident.status === 'closed') return null;
    const forecast = (incident.forecast || []).slice(0, FOCUS_FORECAST);
    const coords = [...incident.stations.map((s) => geoOf(s.station_id)), ...forecast.map((f) => geoOf(f.point_id))];
    if (incident.origin) {
      coords.push(...incident.origin.upstream.map((b) => geoOf(b.station_id)));
      for (const g of incident.origin.segments) coords.push(geoAt(g.river, g.from_km), geoAt(g.river, g.to_km));
    }
    const known = coords.filter(Boolean);
    if (!known.length) return null;
    const key = [incident.id, ...incident.stations.map((s) => s.station_id), ...forecast.map((f) => f.point_id)].join('|');
    return { key, coords: known };
  }

  function selectIncident(id) {
    state.incident.selected = id;
    renderMap();
    renderIncidents();
  }

  // Along the flow from (river, km) to (toRiver, toKm): [{river, from, to}], null when the second
  // place is not downstream of the first (two branches above a confluence).
  function route(river, km, toRiver, toKm) {
    const rivers = new Map(((state.network && state.network.rivers) || []).map((r) => [r.name, r]));
    const legs = [];
    let [current, at] = [river, km];
    for (let hops = 0; hops <= rivers.size; hops += 1) {
      if (current === toRiver && toKm >= at) {
        legs.push({ river: current, from: at, to: toKm });
        return legs;
      }
      const config = rivers.get(current);
      if (!config || !config.joins) return null;
      legs.push({ river: current, from: at, to: config.length_km });
      [current, at] = [config.joins.river, config.joins.at_km];
    }
    return null;
  }

  // The drawn polyline of `river` between two chainages (clamped to its line).
  function linePoints(layout, river, from, to) {
    const line = layout.byRiver && layout.byRiver.get(river);
    if (!line) return [];
    const { kms, points } = line;
    if (kms.length === 1) return [points[0]];
    const lo = Math.max(kms[0], Math.min(from, to));
    const hi = Math.min(kms[kms.length - 1], Math.max(from, to));
    const at = (km) => {
      let i = 0;
      while (i < kms.length - 2 && kms[i + 1] < km) i += 1;
      const span = kms[i + 1] - kms[i];
      const share = span > 0 ? (km - kms[i]) / span : 0;
      return [points[i][0] + share * (points[i + 1][0] - points[i][0]), points[i][1] + share * (points[i + 1][1] - points[i][1])];
    };
    if (hi < lo) return [];
    return [at(lo), ...points.filter((_, i) => kms[i] > lo && kms[i] < hi), at(hi)];
  }

  function legsPath(layout, legs) {
    let d = '';
    for (const leg of legs || []) {
      linePoints(layout, leg.river, leg.from, leg.to).forEach((p, i) => {
        d += `${i ? 'L' : 'M'}${p[0].toFixed(1)},${p[1].toFixed(1)} `;
      });
    }
    return d.trim();
  }

  function pathBetween(layout, a, b) {
    return legsPath(layout, route(a.river, a.chainage_km, b.river, b.chainage_km));
  }

  // Rough label size in the map's units (10.5 px text): CJK characters are about twice as wide.
  function labelBox(x, y, text, anchor) {
    let width = 0;
    for (const ch of text) width += ch.codePointAt(0) > 0x2e80 ? 11 : 6.2;
    const left = anchor === 'end' ? x - width : x;
    return [left, y - 10, left + width, y + 3];
  }

  function fits(box, boxes) {
    if (box[0] < 0 || box[1] < 0 || box[2] > 800 || box[3] > 500) return false;
    return !boxes.some((o) => box[0] < o[2] && o[0] < box[2] && box[1] < o[3] && o[1] < box[3]);
  }

  // A label beside (x, y) where it overlaps nothing placed yet, or null (the tooltip keeps it).
  function placeLabel(boxes, x, y, text, cls) {
    const spots = [[12, 4, 'start'], [-12, 4, 'end'], [9, -10, 'start'], [9, 17, 'start'], [-9, -10, 'end'], [-9, 17, 'end']];
    for (const [dx, dy, anchor] of spots) {
      const box = labelBox(x + dx, y + dy, text, anchor);
      if (fits(box, boxes)) {
        boxes.push(box);
        return svg('text', { x: (x + dx).toFixed(1), y: (y + dy).toFixed(1), 'text-anchor': anchor, class: cls }, text);
      }
    }
    return null;
  }

  function pointSymbol(point, x, y) {
    const kind = ['intake', 'boundary'].includes(point.kind) ? point.kind : 'other';
    const group = svg('g', {
      class: `netpoint ${kind}`, transform: `translate(${x.toFixed(1)},${y.toFixed(1)})`, 'data-point': point.id,
    });
    const where = point.kind === 'boundary'
      ? `${point.upstream_district} → ${point.downstream_district}`
      : point.district || '';
    group.append(svg('title', {}, `${point.name} · ${t(`inc.kind.${kind}`)}${where ? ` · ${where}` : ''}`));
    if (kind === 'intake') {
      // A water tap's square with a drop in it: drinking water is taken here.
      group.append(svg('rect', { x: -6, y: -6, width: 12, height: 12, rx: 2, class: 'mark' }));
      group.append(svg('circle', { r: 2.6, class: 'drop' }));
    } else if (kind === 'boundary') {
      group.append(svg('path', { d: 'M0,-6 L6,0 L0,6 L-6,0 Z', class: 'mark' }));
    } else {
      group.append(svg('circle', { r: 3.5, class: 'mark' }));
    }
    return group;
  }

  // The map's incident layers: `under` (muted other incidents, the selected one's path, origin
  // and forecast lines, the network's points) goes below the stations, `over` (rings, order
  // numbers, ETA labels) above them; `boxes` are the labels placed, `named` the stations whose
  // name an ETA label already shows.
  function incidentOverlay(layout) {
    const under = svg('g', { class: 'incident-layer' });
    const over = svg('g', { class: 'incident-marks' });
    const boxes = [];
    const named = new Set();
    const network = state.network && state.network.enabled ? state.network : null;
    const listed = listedIncidents();
    const chosen = selectedIncident(listed);
    for (const incident of listed) {
      if (incident.status === 'closed' || incident === chosen) continue;
      const d = incident.stations.slice(1).map((s, i) => pathBetween(layout, incident.stations[i], s)).join(' ');
      const origin = incident.origin ? legsPath(layout, incident.origin.segments.map((g) => ({ river: g.river, from: g.from_km, to: g.to_km }))) : '';
      const group = svg('g', { class: 'incident other', 'data-incident': incident.id, role: 'button', tabindex: 0 });
      group.append(svg('title', {}, t('inc.map.other', { item: itemLabel(incident.item), station: placeName(incident.stations[0].station_id) })));
      if (origin) group.append(svg('path', { d: origin, class: 'incident-origin' }));
      if (d) group.append(svg('path', { d, class: 'incident-path' }));
      for (const s of incident.stations) {
        const at = layout.positions.get(s.station_id);
        if (at) group.append(svg('circle', { cx: at[0].toFixed(1), cy: at[1].toFixed(1), r: 11, class: 'incident-hit' }));
      }
      group.addEventListener('click', () => selectIncident(incident.id));
      group.addEventListener('keydown', (event) => { if (event.key === 'Enter' || event.key === ' ') selectIncident(incident.id); });
      under.append(group);
    }
    const points = svg('g', { class: 'netpoints' });
    for (const point of network ? network.points : []) {
      const at = layout.positions.get(point.id);
      if (at) points.append(pointSymbol(point, at[0], at[1]));
    }
    if (chosen) {
      const closed = chosen.status === 'closed';
      const group = svg('g', { class: `incident selected${closed ? ' closed' : ''}`, 'data-incident': chosen.id });
      const marks = svg('g', { class: 'incident-labels', 'data-incident': chosen.id });
      if (chosen.origin) {
        const legs = chosen.origin.segments.map((g) => ({ river: g.river, from: g.from_km, to: g.to_km }));
        const d = legsPath(layout, legs);
        if (d) {
          group.append(svg('path', { d, class: 'incident-origin' }, svg('title', {}, originText(chosen))));
          const main = legs[0];
          const mid = linePoints(layout, main.river, main.from, main.to);
          if (mid.length) {
            const [x, y] = mid[Math.floor(mid.length / 2)];
            const label = placeLabel(boxes, x, y, t('inc.map.origin'), 'origin-label');
            if (label) marks.append(label);
          }
        }
      }
      const reached = chosen.stations;
      const path = reached.slice(1).map((s, i) => pathBetween(layout, reached[i], s)).filter(Boolean).join(' ');
      if (path) group.append(svg('path', { d: path, class: 'incident-path' }));
      const forecast = closed ? [] : chosen.forecast || [];
      if (forecast.length && reached.length) {
        const front = reached[reached.length - 1];
        const last = forecast[forecast.length - 1];
        const d = legsPath(layout, route(front.river, front.chainage_km, last.river, last.chainage_km));
        if (d) group.append(svg('path', { d, class: 'incident-forecast' }));
      }
      reached.forEach((s, index) => {
        const at = layout.positions.get(s.station_id);
        if (!at) return;
        const [x, y] = at;
        const hit = svg('g', { class: 'incident-hit', transform: `translate(${x.toFixed(1)},${y.toFixed(1)})`, 'data-station': s.station_id });
        hit.append(svg('title', {}, t('inc.map.hit', {
          name: placeName(s.station_id), time: incidentTime(s.first_exceeded_at), peak: formatValue(s.peak), unit: itemUnit(chosen.item),
        })));
        hit.append(svg('circle', { r: 12, class: 'ring' }));
        hit.append(svg('circle', { cx: -10, cy: -10, r: 6.5, class: 'order' }));
        hit.append(svg('text', { x: -10, y: -7, 'text-anchor': 'middle', class: 'order-number' }, String(index + 1)));
        boxes.push([x - 17, y - 17, x - 3, y - 3]);
        marks.append(hit);
      });
      for (const f of forecast) {
        const at = layout.positions.get(f.point_id);
        if (!at) continue;
        const [x, y] = at;
        const text = t('inc.map.eta', { name: placeName(f.point_id, true), eta: incidentTime(f.eta), tol: tolerance(f.eta_tolerance_s) });
        const eta = svg('g', { class: `eta ${f.kind}`, 'data-point': f.point_id });
        eta.append(svg('title', {}, t('inc.map.eta.title', {
          name: placeName(f.point_id), eta: incidentTime(f.eta), tol: tolerance(f.eta_tolerance_s),
          value: formatValue(f.expected_value), unit: itemUnit(chosen.item),
        })));
        eta.append(svg('circle', { cx: x.toFixed(1), cy: y.toFixed(1), r: 10, class: 'eta-ring' }));
        const label = placeLabel(boxes, x, y, text, 'eta-label');
        if (label) {
          eta.append(label);
          named.add(f.point_id);
        }
        marks.append(eta);
      }
      under.append(group);
      over.append(marks);
    }
    under.append(points);
    const caption = $('map-incident');
    caption.hidden = !chosen;
    caption.textContent = chosen ? t('inc.map.caption', {
      item: itemLabel(chosen.item),
      status: t(`inc.status.${chosen.status}`),
      path: chosen.stations.map((s) => placeName(s.station_id, true)).join(' → '),
      more: listed.filter((i) => i.status !== 'closed').length > 1 ? t('inc.map.more') : '',
    }) : '';
    return { under, over, boxes, named };
  }

  function originText(incident) {
    const origin = incident.origin;
    if (!origin) return '—';
    const bounds = origin.upstream.map((b) => `${placeName(b.station_id, true)}${b.verified ? '' : t('inc.unverified')}`);
    return t('inc.origin', {
      river: origin.river,
      upper: bounds.length ? bounds.join(t('as.list.sep')) : t('inc.source'),
      lower: placeName(origin.downstream, true),
    });
  }

  function statusBadge(incident) {
    return el('span', { class: `inc-status ${incident.status}` }, t(`inc.status.${incident.status}`));
  }

  function firstStation(incident) {
    const first = [...incident.stations].sort((a, b) => String(a.first_exceeded_at).localeCompare(String(b.first_exceeded_at)))[0];
    return first ? first.station_id : null;
  }

  function renderIncidents() {
    if (!state.registry) return;
    const snapshot = state.snapshot || {};
    const listed = listedIncidents();
    const chosen = selectedIncident(listed);
    const open = listed.filter((i) => i.status !== 'closed').length;
    $('incident-count').textContent = String(open);
    $('incident-count').className = open ? 'count hot' : 'count';
    let note = '';
    if (state.network && !state.network.enabled) note = t('inc.no_network');
    else if (snapshot.alerts_enabled === false) note = t('alerts.disabled');
    $('incidents-state').textContent = note;
    $('no-incidents').hidden = listed.length > 0;
    const body = $('incidents').tBodies[0];
    clear(body);
    for (const incident of listed) {
      const first = firstStation(incident);
      const reached = el('ol', { class: 'reached' });
      for (const s of incident.stations) {
        reached.append(el('li', { 'data-station': s.station_id },
          el('span', { class: 'where' }, placeName(s.station_id, true)), ' ',
          el('span', { class: 'muted' }, incidentTime(s.first_exceeded_at)), ' ',
          t('inc.peak', { peak: formatValue(s.peak), unit: itemUnit(incident.item) }),
          s.cleared_at ? el('span', { class: 'muted' }, ` ${t('inc.cleared')}`) : null));
      }
      const status = el('td', {}, statusBadge(incident));
      if (incident.not_seen_downstream) status.append(el('span', { class: 'summary' }, t('inc.unconfirmed')));
      const row = el('tr', {
        'data-incident': incident.id, tabindex: 0, class: chosen && chosen.id === incident.id ? 'selected' : null,
      },
      el('td', {}, el('span', { class: 'name' }, itemLabel(incident.item)),
        el('span', { class: 'id' }, t('inc.opened_at', { time: incidentTime(incident.opened_at) }))),
      status,
      el('td', {}, first ? placeName(first) : '—'),
      el('td', {}, originText(incident)),
      el('td', {}, reached));
      row.addEventListener('click', () => selectIncident(incident.id));
      row.addEventListener('keydown', (event) => { if (event.key === 'Enter') selectIncident(incident.id); });
      body.append(row);
    }
    renderIncidentDetail(chosen);
  }

  function timelineText(event) {
    const station = event.station_id ? placeName(event.station_id, true) : '';
    return t(`inc.event.${event.kind}`, { station });
  }

  function renderIncidentDetail(incident) {
    const detail = $('incident-detail');
    detail.hidden = !incident;
    if (!incident) return;
    detail.setAttribute('data-incident', incident.id);
    $('incident-heading').textContent = t('inc.heading', { item: itemLabel(incident.item), status: t(`inc.status.${incident.status}`) });
    const facts = $('incident-facts');
    clear(facts);
    if (incident.origin) {
      facts.append(el('li', {}, el('span', { class: 'label' }, t('inc.col.origin')), ' ', originText(incident)));
      facts.append(el('li', {}, el('span', { class: 'label' }, t('inc.entry')), ' ',
        `${incidentTime(incident.origin.entry_earliest)} – ${incidentTime(incident.origin.entry_latest)}`));
    }
    if (incident.single_station && incident.not_seen_downstream) {
      facts.append(el('li', { class: 'bad' }, t('inc.not_seen', { station: placeName(incident.not_seen_downstream, true) })));
    }
    const forecastBody = $('incident-forecast').tBodies[0];
    clear(forecastBody);
    const forecast = incident.status === 'closed' ? [] : incident.forecast || [];
    for (const f of forecast) {
      forecastBody.append(el('tr', { 'data-point': f.point_id, class: `kind-${f.kind}` },
        el('td', {}, el('span', { class: 'name' }, placeName(f.point_id)),
          el('span', { class: 'id' }, `${t(`inc.kind.${['station', 'intake', 'boundary'].includes(f.kind) ? f.kind : 'other'}`)} · ${f.river} ${f.distance_km} km`)),
        el('td', { class: 'since' }, incidentTime(f.eta), el('span', { class: 'muted' }, ` ± ${tolerance(f.eta_tolerance_s)}`)),
        el('td', {}, `${formatValue(f.expected_value)}${itemUnit(incident.item)}`)));
    }
    $('no-forecast').hidden = forecast.length > 0;
    const timeline = $('incident-timeline');
    clear(timeline);
    // Forecast updates are left out: the table above is the current forecast.
    for (const event of incident.timeline.filter((e) => e.kind !== 'forecast_updated')) {
      timeline.append(el('li', { class: `event ${event.kind}`, 'data-kind': event.kind },
        el('time', { datetime: event.time }, incidentTime(event.time)), ' ', timelineText(event)));
    }
  }

  // --- station table --------------------------------------------------------------------------
  function renderStations() {
    const body = $('stations').tBodies[0];
    clear(body);
    const filter = $('station-filter').value.trim().toLowerCase();
    for (const s of (state.snapshot && state.snapshot.stations) || []) {
      const haystack = `${s.name} ${s.river} ${s.district} ${s.id}`.toLowerCase();
      if (filter && !haystack.includes(filter)) continue;
      const compliant = s.compliant === true ? el('span', { class: 'ok' }, t('yes'))
        : s.compliant === false ? el('span', { class: 'bad' }, t('no')) : el('span', { class: 'muted' }, '—');
      const pollutants = (s.primary_pollutants || []).map(parameterLabel).join(t('as.list.sep')) || '—';
      const row = el('tr', {
        class: s.id === state.chart.station ? 'selected' : null, 'data-station': s.id, tabindex: 0,
      },
      el('td', {}, el('span', { class: 'name' }, s.name), el('span', { class: 'id' }, s.id)),
      el('td', {}, s.river),
      el('td', {}, s.district),
      el('td', { class: 'class-cell' }, classBadge(s.class)),
      el('td', {}, classBadge(s.target_class)),
      el('td', {}, compliant),
      el('td', {}, pollutants),
      el('td', { title: s.last_reading_at || '' }, formatTime(s.last_reading_at), ' ',
        el('span', { class: 'muted' }, age(s.last_reading_at))));
      row.addEventListener('click', () => selectStation(s.id));
      row.addEventListener('keydown', (event) => { if (event.key === 'Enter') selectStation(s.id); });
      body.append(row);
    }
  }

  // --- alerts ---------------------------------------------------------------------------------
  function scopeOf(alert) {
    const station = alert.station_id ? state.stations.get(alert.station_id) : null;
    if (station) return [station.name, `${station.district} · ${station.river}`];
    const labels = alert.labels || {};
    for (const key of ['district', 'basin', 'river']) {
      if (labels[key]) return [labels[key], t(`as.group.${key}`)];
    }
    return [alert.station_id || '—', ''];
  }

  function renderAlerts() {
    const body = $('alerts').tBodies[0];
    clear(body);
    const snapshot = state.snapshot || {};
    const alerts = snapshot.alerts || [];
    $('alert-count').textContent = String(alerts.length);
    $('alert-count').className = alerts.length ? 'count hot' : 'count';
    $('alerts-state').textContent = snapshot.alerts_enabled === false ? t('alerts.disabled') : '';
    $('no-alerts').hidden = alerts.length > 0;
    const rank = { critical: 0, warning: 1, info: 2 };
    const sorted = [...alerts].sort((a, b) => (rank[a.severity] ?? 3) - (rank[b.severity] ?? 3)
      || String(b.starts_at).localeCompare(String(a.starts_at)));
    for (const alert of sorted) {
      const [scope, detail] = scopeOf(alert);
      const what = alert.parameter ? `${alert.rule} · ${parameterLabel(alert.parameter)}` : alert.rule;
      const status = el('td', { class: 'since', title: alert.starts_at || '' },
        el('span', { class: 'name' }, formatTime(alert.fired_at || alert.starts_at)),
        el('span', { class: `state ${alert.state}` }, t(`state.${alert.state}`)));
      if (alert.acknowledged) {
        status.append(el('span', { class: 'acked', title: alert.acknowledged.comment || '' },
          t('alerts.acked', { by: alert.acknowledged.by })));
      }
      if (alert.silenced) status.append(el('span', { class: 'silenced' }, t('alerts.silenced')));
      const ack = el('button', { type: 'button', class: 'small', 'data-action': 'ack', disabled: Boolean(alert.acknowledged) },
        alert.acknowledged ? t('alerts.acknowledged') : t('alerts.ack'));
      ack.addEventListener('click', () => openAck(alert.alert_id));
      const silence = el('button', { type: 'button', class: 'small ghost', 'data-action': 'silence', disabled: Boolean(alert.silenced) },
        t('alerts.silence'));
      silence.addEventListener('click', () => openSilence(alert.alert_id));
      const row = el('tr', {
        'data-alert': alert.alert_id, 'data-station': alert.station_id || null, class: `sev-${alert.severity || 'info'}`,
      },
      el('td', {}, el('span', { class: 'name' }, scope), el('span', { class: 'id' }, detail)),
      el('td', {},
        el('span', { class: 'name' }, el('span', { class: `sev ${alert.severity || 'info'}` }, t(`severity.${alert.severity || 'info'}`)), ' ', what),
        el('span', { class: 'summary' }, alert.summary || '')),
      status,
      el('td', { class: 'actions' }, ack, silence));
      if (alert.station_id) {
        row.addEventListener('click', (event) => {
          if (event.target.closest('button')) return;
          selectStation(alert.station_id, alert.parameter);
        });
      }
      body.append(row);
    }
  }

  function operator() {
    return $('operator').value.trim();
  }

  function showError(node, message) {
    node.textContent = message;
    node.hidden = !message;
  }

  let ackTarget = null;
  function openAck(alertId) {
    const alert = state.alertsById.get(alertId);
    if (!alert) return;
    ackTarget = alertId;
    const [scope] = scopeOf(alert);
    $('ack-summary').textContent = `${scope}: ${alert.summary || alert.rule}`;
    $('ack-by').value = operator();
    $('ack-comment').value = '';
    showError($('ack-error'), '');
    $('ack-dialog').showModal();
    ($('ack-by').value ? $('ack-comment') : $('ack-by')).focus();
  }

  async function submitAck(event) {
    event.preventDefault();
    const by = $('ack-by').value.trim();
    if (!by) return showError($('ack-error'), t('ack.who'));
    const comment = $('ack-comment').value.trim();
    try {
      const answer = await apiJson('/api/v1/alerts/ack', {
        method: 'POST', body: { alert_id: ackTarget, by, comment: comment || null },
      });
      rememberOperator(by);
      $('ack-dialog').close();
      const current = state.alertsById.get(ackTarget);
      if (current && answer.alert) Object.assign(current, answer.alert);
      renderAlerts();
      notify(t('ack.done'));
    } catch (error) {
      showError($('ack-error'), t('ack.failed', { error: error.message }));
    }
    return undefined;
  }

  let silenceTarget = null;
  function silenceMatchers(alert) {
    const labels = alert.labels || {};
    const matchers = { rule: alert.rule };
    const keys = labels.station_id ? ['station_id', 'parameter'] : ['district', 'basin', 'river', 'parameter'];
    for (const key of keys) if (labels[key]) matchers[key] = labels[key];
    return matchers;
  }

  function openSilence(alertId) {
    const alert = state.alertsById.get(alertId);
    if (!alert) return;
    silenceTarget = alert;
    const [scope] = scopeOf(alert);
    $('silence-summary').textContent = `${scope}: ${alert.summary || alert.rule}`;
    $('silence-matchers').textContent = Object.entries(silenceMatchers(alert)).map(([k, v]) => `${k}=${v}`).join(', ');
    $('silence-by').value = operator();
    $('silence-reason').value = '';
    showError($('silence-error'), '');
    $('silence-dialog').showModal();
    $('silence-reason').focus();
  }

  async function submitSilence(event) {
    event.preventDefault();
    const by = $('silence-by').value.trim();
    const reason = $('silence-reason').value.trim();
    if (!by || !reason) return showError($('silence-error'), t('silence.required'));
    const hours = Number($('silence-duration').value);
    try {
      await apiJson('/api/v1/silences', {
        method: 'POST',
        body: {
          matchers: silenceMatchers(silenceTarget),
          ends_at: new Date(Date.now() + hours * 3600000).toISOString(),
          by,
          reason,
        },
      });
      rememberOperator(by);
      $('silence-dialog').close();
      silenceTarget.silenced = true;
      renderAlerts();
      notify(t('silence.done', { hours }));
    } catch (error) {
      showError($('silence-error'), t('silence.failed', { error: error.message }));
    }
    return undefined;
  }

  function rememberOperator(name) {
    if (!operator()) {
      $('operator').value = name;
      localStorage.setItem(OPERATOR_KEY, name);
    }
  }

  // --- compliance -----------------------------------------------------------------------------
  function shareBar(share) {
    const width = share === null || share === undefined ? 0 : Math.max(0, Math.min(1, share)) * 80;
    const level = share === null || share === undefined ? 'none' : share >= 0.999 ? 'full' : share >= 0.8 ? 'most' : 'low';
    return svg('svg', { class: 'bar', width: 80, height: 8, viewBox: '0 0 80 8', 'aria-hidden': 'true' },
      svg('rect', { class: 'bar-bg', width: 80, height: 8, rx: 4 }),
      svg('rect', { class: `bar-fg ${level}`, width: width.toFixed(1), height: 8, rx: 4 }));
  }

  function renderRates(tableId, rows, key) {
    const body = $(tableId).tBodies[0];
    clear(body);
    // Worst first: the regions an operator has to look at.
    const sorted = [...(rows || [])].sort((a, b) => (a.share_meeting_target ?? 2) - (b.share_meeting_target ?? 2)
      || String(a[key]).localeCompare(String(b[key])));
    for (const row of sorted) {
      body.append(el('tr', {},
        el('td', {}, row[key]),
        el('td', { class: 'rate' }, shareBar(row.share_meeting_target),
          el('span', {}, `${percent(row.share_meeting_target)}`),
          el('span', { class: 'muted' }, ` ${row.meeting_target}/${row.assessed}`)),
        el('td', {}, percent(row.share_class_i_iii)),
        el('td', { class: row.worse_than_v ? 'bad' : null }, percent(row.share_worse_than_v))));
    }
  }

  function renderCompliance() {
    const compliance = (state.snapshot && state.snapshot.compliance) || {};
    renderRates('compliance-district', compliance.district, 'district');
    renderRates('compliance-basin', compliance.basin, 'basin');
  }

  // --- trend chart ----------------------------------------------------------------------------
  function chooseInitialStation() {
    const alerts = (state.snapshot && state.snapshot.alerts) || [];
    const alerting = alerts.find((a) => a.station_id && state.stations.has(a.station_id));
    const first = state.registry.stations.find((s) => s.kinds.includes('water')) || state.registry.stations[0];
    if (alerting) selectStation(alerting.station_id, alerting.parameter);
    else if (first) selectStation(first.id);
  }

  function selectStation(id, parameter) {
    const station = state.stations.get(id);
    if (!station) return;
    state.chart.station = id;
    $('chart-station').value = id;
    const codes = station.parameters;
    const live = liveStation(id);
    const preferred = [parameter, state.chart.parameter, ...((live && live.primary_pollutants) || []), 'nh3n', 'do', codes[0]];
    state.chart.parameter = preferred.find((code) => code && codes.includes(code)) || null;
    fillParameters(station);
    renderMap();
    for (const row of $('stations').tBodies[0].rows) {
      row.classList.toggle('selected', row.getAttribute('data-station') === id);
    }
    loadChart();
  }

  function fillParameters(station) {
    const select = $('chart-parameter');
    clear(select);
    for (const code of station.parameters) {
      const p = state.parameters.get(code);
      select.append(el('option', { value: code }, `${parameterLabel(code)}${p && p.unit && p.unit !== '1' ? ` (${p.unit})` : ''}`));
    }
    if (state.chart.parameter) select.value = state.chart.parameter;
  }

  let chartRequest = 0;
  async function loadChart() {
    const { station, parameter, hours } = state.chart;
    if (!station || !parameter) return;
    const request = ++chartRequest;
    state.chart.loadedAt = Date.now();
    const live = liveStation(station);
    state.chart.lastReading = live ? live.last_reading_at : null;
    const query = new URLSearchParams({ station, parameter, hours: String(hours) });
    try {
      const data = await apiJson(`/api/v1/readings?${query}`);
      if (request !== chartRequest) return;
      state.chart.data = data;
      drawChart(data);
    } catch (error) {
      if (request !== chartRequest) return;
      $('chart-note').textContent = t('chart.none', { error: error.message });
      clear($('chart'));
    }
  }

  function niceTicks(lo, hi, count) {
    const span = hi - lo || 1;
    const step0 = span / count;
    const magnitude = 10 ** Math.floor(Math.log10(step0));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= step0) || step0;
    const ticks = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
    return ticks;
  }

  function formatValue(value) {
    const abs = Math.abs(value);
    if (abs >= 100) return value.toFixed(0);
    if (abs >= 10) return value.toFixed(1);
    if (abs >= 1) return value.toFixed(2);
    return value.toPrecision(2);
  }

  // A chart point [t, value, flag, below_dl]: below the detection limit, the value is the limit.
  function pointValue(p) {
    return `${p[3] ? '<' : ''}${formatValue(p[1])}`;
  }

  function limitLines(limits, target) {
    // [{value, label, key, target}] with classes sharing a limit merged (COD: I–II 15).
    if (!limits) return [];
    if (limits.kind === 'range') {
      return [
        { value: limits.low, label: `≥ ${limits.low}`, key: 'c3', target: true },
        { value: limits.high, label: `≤ ${limits.high}`, key: 'c3', target: true },
      ];
    }
    const merged = [];
    for (const { class: waterClass, limit } of limits.classes) {
      const last = merged[merged.length - 1];
      if (last && last.value === limit) {
        last.classes.push(waterClass);
      } else {
        merged.push({ value: limit, classes: [waterClass] });
      }
    }
    const sign = limits.kind === 'max' ? '≤' : '≥';
    return merged.map((m) => ({
      value: m.value,
      label: `${m.classes.length > 1 ? `${m.classes[0]}–${m.classes[m.classes.length - 1]}` : m.classes[0]} ${sign}${m.value}`,
      key: CLASS_KEY[m.classes[m.classes.length - 1]],
      target: m.classes.includes(target),
    }));
  }

  function drawChart(data) {
    const chart = $('chart');
    clear(chart);
    const W = 1200;
    const H = 320;
    const m = { l: 56, r: 118, t: 16, b: 30 };
    const points = data.points;
    const x0 = new Date(data.since).getTime();
    const x1 = new Date(data.until).getTime();
    const lines = limitLines(data.limits, data.station.target_class);
    const values = points.map((p) => p[1]).concat(lines.map((l) => l.value));
    let lo = values.length ? Math.min(...values) : 0;
    let hi = values.length ? Math.max(...values) : 1;
    if (hi === lo) { hi += 1; lo -= 1; }
    const pad = (hi - lo) * 0.08;
    hi += pad;
    lo = lo >= 0 && lo - pad <= (hi - lo) * 0.5 ? 0 : lo - pad;
    const sx = (t) => m.l + ((t - x0) / (x1 - x0)) * (W - m.l - m.r);
    const sy = (v) => H - m.b - ((v - lo) / (hi - lo)) * (H - m.t - m.b);
    const grid = svg('g', { class: 'grid' });
    for (const v of niceTicks(lo, hi, 5)) {
      grid.append(svg('line', { x1: m.l, x2: W - m.r, y1: sy(v), y2: sy(v) }));
      grid.append(svg('text', { x: m.l - 6, y: sy(v) + 4, 'text-anchor': 'end' }, formatValue(v)));
    }
    const dayMs = 86400000;
    const stepMs = data.hours <= 6 ? 3600000 : data.hours <= 24 ? 3 * 3600000 : data.hours <= 72 ? 12 * 3600000 : data.hours <= 168 ? dayMs : 5 * dayMs;
    const offset = new Date().getTimezoneOffset() * 60000; // ticks on local midnights
    for (let t = Math.ceil((x0 - offset) / stepMs) * stepMs + offset; t <= x1; t += stepMs) {
      grid.append(svg('line', { x1: sx(t), x2: sx(t), y1: m.t, y2: H - m.b, class: 'vertical' }));
      grid.append(svg('text', { x: sx(t), y: H - m.b + 18, 'text-anchor': 'middle' }, formatTime(t)));
    }
    chart.append(grid);
    const limitLayer = svg('g', { class: 'limits' });
    for (const line of lines) {
      const y = sy(line.value);
      limitLayer.append(svg('line', { x1: m.l, x2: W - m.r, y1: y, y2: y, class: `limit ${line.key}${line.target ? ' target' : ''}` }));
      limitLayer.append(svg('text', { x: W - m.r + 6, y: y + 4, class: `limit-label ${line.key}${line.target ? ' target' : ''}` },
        line.target ? t('chart.target', { label: line.label }) : line.label));
    }
    chart.append(limitLayer);
    if (!points.length) {
      chart.append(svg('text', { x: (W - m.r + m.l) / 2, y: H / 2, class: 'empty', 'text-anchor': 'middle' }, t('chart.empty')));
    } else {
      // Break the line where readings stop for longer than five typical intervals.
      const gaps = points.slice(1).map((p, i) => p[0] - points[i][0]).sort((a, b) => a - b);
      const typical = gaps.length ? gaps[Math.floor(gaps.length / 2)] : 0;
      let d = '';
      points.forEach((p, i) => {
        const jump = i === 0 || (typical && p[0] - points[i - 1][0] > typical * 5);
        d += `${jump ? 'M' : 'L'}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)} `;
      });
      chart.append(svg('path', { d: d.trim(), class: 'series' }));
      const marks = svg('g', { class: 'flagged' });
      for (const p of points) {
        if (p[2] !== 'N') {
          marks.append(svg('circle', { cx: sx(p[0]), cy: sy(p[1]), r: 3.5 }, svg('title', {}, `${t('chart.flag', { flag: p[2] })} · ${formatTime(p[0])} · ${pointValue(p)}`)));
        }
      }
      chart.append(marks);
      addHover(chart, points, sx, sy, m, W, H, data.parameter.unit);
    }
    chart.append(svg('rect', { x: m.l, y: m.t, width: W - m.l - m.r, height: H - m.t - m.b, class: 'frame' }));
    const p = data.parameter;
    const flagged = points.filter((q) => q[2] !== 'N').length;
    $('chart-note').textContent = t('chart.note', {
      name: data.station.name,
      parameter: parameterLabel(p.code),
      unit: p.unit && p.unit !== '1' ? t('chart.unit', { unit: p.unit }) : '',
      points: points.length,
      flagged: flagged ? t('chart.flagged', { count: flagged }) : '',
      limits: data.limits
        ? t('chart.limits', { body: t(`body.${data.station.water_body}`), target: data.station.target_class })
        : t('chart.unclassified'),
    });
  }

  function addHover(chart, points, sx, sy, m, W, H, unit) {
    const cursor = svg('g', { class: 'cursor', visibility: 'hidden' });
    const vline = svg('line', { y1: m.t, y2: H - m.b });
    const dot = svg('circle', { r: 4 });
    const label = svg('text', { y: m.t + 12 });
    cursor.append(vline, dot, label);
    const overlay = svg('rect', { x: m.l, y: m.t, width: W - m.l - m.r, height: H - m.t - m.b, class: 'overlay' });
    chart.append(cursor, overlay);
    overlay.addEventListener('mousemove', (event) => {
      const box = chart.getBoundingClientRect();
      const x = ((event.clientX - box.left) / box.width) * W;
      let best = points[0];
      for (const p of points) if (Math.abs(sx(p[0]) - x) < Math.abs(sx(best[0]) - x)) best = p;
      const px = sx(best[0]);
      setAttrs(vline, { x1: px, x2: px });
      setAttrs(dot, { cx: px, cy: sy(best[1]) });
      setAttrs(label, { x: px > W / 2 ? px - 8 : px + 8, 'text-anchor': px > W / 2 ? 'end' : 'start' });
      label.textContent = `${formatTime(best[0])} · ${pointValue(best)}${unit && unit !== '1' ? ` ${unit}` : ''}${best[2] !== 'N' ? ` (${t('chart.flag', { flag: best[2] })})` : ''}`;
      cursor.setAttribute('visibility', 'visible');
    });
    overlay.addEventListener('mouseleave', () => cursor.setAttribute('visibility', 'hidden'));
  }

  // --- start ----------------------------------------------------------------------------------
  function bindControls() {
    $('chart-station').addEventListener('change', (event) => selectStation(event.target.value));
    $('chart-parameter').addEventListener('change', (event) => {
      state.chart.parameter = event.target.value;
      loadChart();
    });
    $('chart-hours').addEventListener('change', (event) => {
      state.chart.hours = Number(event.target.value);
      loadChart();
    });
    $('chart-controls').addEventListener('submit', (event) => event.preventDefault());
    $('map-zoom').addEventListener('click', () => {
      state.mapView = state.mapView === 'all' ? 'incident' : 'all';
      renderMap();
    });
    $('station-filter').addEventListener('input', renderStations);
    $('ack-form').addEventListener('submit', submitAck);
    $('silence-form').addEventListener('submit', submitSilence);
    for (const button of document.querySelectorAll('[data-close]')) {
      button.addEventListener('click', () => button.closest('dialog').close());
    }
    $('token-dialog').addEventListener('cancel', (event) => event.preventDefault());
    const name = $('operator');
    name.value = localStorage.getItem(OPERATOR_KEY) || '';
    name.addEventListener('change', () => localStorage.setItem(OPERATOR_KEY, name.value.trim()));
    $('lang').addEventListener('click', () => i18n.set(i18n.lang === 'zh' ? 'en' : 'zh'));
    document.addEventListener('ecowatch:lang', relabel);
    window.addEventListener('hashchange', showView);
    const signout = $('signout');
    signout.hidden = !sessionStorage.getItem(TOKEN_KEY);
    signout.addEventListener('click', () => {
      sessionStorage.removeItem(TOKEN_KEY);
      window.location.reload();
    });
  }

  // --- views and language ----------------------------------------------------------------------
  function showView() {
    const view = window.location.hash === '#assessment' ? 'assessment' : 'live';
    $('view-live').hidden = view !== 'live';
    $('view-assessment').hidden = view !== 'assessment';
    for (const tab of document.querySelectorAll('.tabs .tab')) {
      const active = tab.getAttribute('data-view') === view;
      tab.classList.toggle('active', active);
      if (active) tab.setAttribute('aria-current', 'page');
      else tab.removeAttribute('aria-current');
    }
    document.dispatchEvent(new CustomEvent('ecowatch:view', { detail: view }));
  }

  function relabel() {
    makeFormats();
    setLive(state.liveMode);
    renderLegend();
    if (state.registry) {
      renderMap();
      renderIncidents();
      fillStationOptions();
      if (state.chart.station) fillParameters(state.stations.get(state.chart.station));
    }
    if (state.snapshot) applySnapshot(state.snapshot);
    if (state.chart.data) drawChart(state.chart.data);
  }

  function fillStationOptions() {
    const select = $('chart-station');
    const chosenStation = select.value;
    clear(select);
    for (const s of state.registry.stations) select.append(el('option', { value: s.id }, `${s.name} (${s.district})`));
    if (chosenStation) select.value = chosenStation;
  }

  window.ecowatchDash = {
    $, el, svg, clear, api, apiJson, ApiError, classBadge, notify, percent, parameterLabel, state, CLASS_KEY,
  };

  async function start() {
    i18n.apply();
    bindControls();
    showView();
    setLive('connecting');
    renderLegend();
    for (;;) {
      try {
        state.registry = await apiJson('/api/v1/registry');
        break;
      } catch (error) {
        notify(t('registry.failed', { error: error.message }), 'error');
        await new Promise((resolve) => setTimeout(resolve, 5000));
      }
    }
    for (const s of state.registry.stations) state.stations.set(s.id, s);
    for (const p of state.registry.parameters) state.parameters.set(p.code, p);
    try {
      state.network = await apiJson('/api/v1/network');
    } catch (error) {
      notify(t('network.failed', { error: error.message }), 'error'); // the map draws rivers through stations
    }
    state.layout = null;
    renderLegend();
    fillStationOptions();
    registryLoaded(state.registry);
    renderMap();
    renderIncidents();
    runStream();
  }

  document.addEventListener('DOMContentLoaded', start);
})();
