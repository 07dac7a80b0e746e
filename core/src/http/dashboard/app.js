// Tally's dashboard: sign-in, site and period, overview with chart, and the breakdown panels.
// The API key lives in sessionStorage only; everything else of the view lives in the URL.

import * as api from './api.js';
import { drawChart } from './chart.js';
import * as fmt from './format.js';

const KEY_STORE = 'tally.key';
const SITES_STORE = 'tally.typed-sites';
const PAGE = 10;
const $ = (id) => document.getElementById(id);

const PERIODS = [
  ['realtime', 'Realtime'],
  ['day', 'Today'],
  ['24h', 'Last 24 hours'],
  ['7d', 'Last 7 days'],
  ['30d', 'Last 30 days'],
  ['month', 'This month'],
  ['6mo', 'Last 6 months'],
  ['12mo', 'Last 12 months'],
  ['year', 'This year'],
  ['all', 'All time'],
  ['custom', 'Custom range…'],
];
const TOP = [
  ['visitors', 'Unique visitors'],
  ['visits', 'Total visits'],
  ['pageviews', 'Total pageviews'],
  ['views_per_visit', 'Views per visit'],
  ['bounce_rate', 'Bounce rate'],
  ['visit_duration', 'Visit duration'],
];
const UTM = [
  ['utm_medium', 'Medium'],
  ['utm_source', 'Source'],
  ['utm_campaign', 'Campaign'],
  ['utm_content', 'Content'],
  ['utm_term', 'Term'],
];
const PCT = { metrics: ['visitors', 'percentage'], heads: ['Visitors', '%'] };
const VISITS = { metrics: ['visitors', 'visits'], heads: ['Visitors', 'Visits'] };
const PANELS = [
  { id: 'sources', title: 'Sources', dim: 'visit:source', col: 'Source', ...VISITS },
  { id: 'utm', title: 'Campaigns', col: 'Value', ...VISITS, tabs: UTM },
  { id: 'pages', title: 'Top pages', dim: 'event:page', col: 'Page', metrics: ['visitors', 'pageviews'], heads: ['Visitors', 'Views'] },
  { id: 'entry-pages', title: 'Entry pages', dim: 'visit:entry_page', col: 'Page', ...VISITS },
  { id: 'exit-pages', title: 'Exit pages', dim: 'visit:exit_page', col: 'Page', ...VISITS, unfilteredOnly: true },
  { id: 'countries', title: 'Countries', dim: 'visit:country', col: 'Country', ...PCT, label: fmt.country },
  { id: 'devices', title: 'Devices', dim: 'visit:device', col: 'Device', ...PCT },
  { id: 'browsers', title: 'Browsers', dim: 'visit:browser', col: 'Browser', ...PCT },
  { id: 'os', title: 'Operating systems', dim: 'visit:os', col: 'OS', ...PCT },
  { id: 'events', title: 'Custom events', dim: 'event:name', col: 'Event', metrics: ['visitors', 'events'], heads: ['Visitors', 'Events'],
    extra: [['is_not', 'event:name', ['pageview']]] },
  { id: 'props', title: 'Event properties', col: 'Value', metrics: ['visitors', 'events'], heads: ['Visitors', 'Events'], props: true },
];
const DIM_NAMES = {
  'visit:source': 'Source', 'event:page': 'Page', 'visit:entry_page': 'Entry page', 'visit:exit_page': 'Exit page',
  'visit:country': 'Country', 'visit:device': 'Device', 'visit:browser': 'Browser', 'visit:os': 'OS', 'event:name': 'Event',
  ...Object.fromEntries(UTM.map(([k, n]) => [`visit:${k}`, `UTM ${n.toLowerCase()}`])),
};
const FILTERABLE = (dim) => (dim in DIM_NAMES && dim !== 'visit:exit_page') || /^event:props:./.test(dim);

const state = {
  key: sessionStorage.getItem(KEY_STORE),
  sites: null, // [{domain, timezone}] or null before they are known
  listable: true, // whether the key may list its sites
  site: '',
  period: '30d',
  from: '',
  to: '',
  filters: [], // [[dimension, value]]
  utm: 'utm_medium',
  prop: '', // the prop name of the URL (the panel shows the first listed one when it is not listed)
  completeUntil: null,
  timeZone: null,
  window: null, // realtime: [from, to] of the lists, UTC to the second, set once per refresh
};
const panels = new Map(); // id -> {def, el, offset, ctrl, scale, names}
const ctrls = {};
let timers = [];

// ---------- URL ----------

const enc = (s) => encodeURIComponent(s).replace(/%(3A|2F|7C|40|2C)/g, (m) => decodeURIComponent(m));

function readUrl() {
  const p = new URLSearchParams(location.search);
  state.site = p.get('site') || state.site || '';
  const period = p.get('period');
  state.period = PERIODS.some(([id]) => id === period) ? period : '30d';
  state.from = p.get('from') || '';
  state.to = p.get('to') || '';
  const isDate = (d) => /^\d{4}-\d{2}-\d{2}$/.test(d);
  if (state.period === 'custom' && !(isDate(state.from) && isDate(state.to))) state.period = '30d';
  state.filters = p.getAll('f').flatMap((s) => {
    const i = s.indexOf('|');
    const dim = s.slice(0, i);
    return i > 0 && FILTERABLE(dim) ? [[dim, s.slice(i + 1)]] : [];
  });
  const utm = p.get('utm');
  state.utm = UTM.some(([k]) => k === utm) ? utm : 'utm_medium';
  state.prop = p.get('prop') || '';
}

function writeUrl(push) {
  const parts = [['site', state.site], ['period', state.period]];
  if (state.period === 'custom') parts.push(['from', state.from], ['to', state.to]);
  for (const [d, v] of state.filters) parts.push(['f', `${d}|${v}`]);
  if (state.utm !== 'utm_medium') parts.push(['utm', state.utm]);
  if (state.prop) parts.push(['prop', state.prop]);
  const search = `?${parts.map(([k, v]) => `${k}=${enc(v)}`).join('&')}`;
  if (search !== location.search) history[push ? 'pushState' : 'replaceState'](null, '', search);
}

// ---------- helpers ----------

function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  e.append(...children.flat().filter((c) => c != null && c !== false));
  return e;
}

const apiFilters = () => state.filters.map(([d, v]) => ['is', d, [v]]);
const errorBox = (e) => h('p', { class: 'error', role: 'alert', 'data-testid': 'error' }, e.message || String(e));

function dateRange() {
  if (state.period === 'custom') return [state.from, state.to];
  return state.period;
}

/** The range of the lists: the period's, or in realtime the last 30 minutes to the second. */
const listRange = () => (state.period === 'realtime' ? state.window || realtimeWindow() : dateRange());

/** Realtime: [now − 30 min, now] as ISO date-times in UTC, the same for every list of one refresh. */
function realtimeWindow() {
  const iso = (t) => new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const to = Math.floor(Date.now() / 1000) * 1000;
  state.window = [iso(to - 30 * 60e3), iso(to)];
  const box = $('panels');
  [box.dataset.from, box.dataset.to] = state.window;
  return state.window;
}

/** The time dimension of the chart for the period, and the unit its labels are in. */
function timeDimension() {
  switch (state.period) {
    case 'day':
    case '24h':
      return 'time:hour';
    case '7d':
    case '30d':
    case 'month':
      return 'time:day';
    case '6mo':
      return 'time:week';
    case '12mo':
    case 'year':
      return 'time:month';
    case 'custom': {
      const days = (Date.parse(state.to) - Date.parse(state.from)) / 864e5 + 1;
      return days <= 2 ? 'time:hour' : days <= 92 ? 'time:day' : days <= 400 ? 'time:week' : 'time:month';
    }
    default:
      return 'time'; // all: the API picks the unit
  }
}

function unitOf(dim, labels) {
  if (dim !== 'time') return dim.slice(5);
  if (labels.length < 2) return labels[0]?.includes(' ') ? 'hour' : 'day';
  if (labels[0].includes(' ')) return 'hour';
  const gap = (Date.parse(labels[1]) - Date.parse(labels[0])) / 864e5;
  return gap <= 1 ? 'day' : gap <= 7 ? 'week' : 'month';
}

function handleAuth(e) {
  if (e.status === 401 || (e.status === 403 && e.code !== 'over_budget')) {
    signOut(`Your key was not accepted: ${e.message}`);
    return true;
  }
  return false;
}

function noteFreshness(meta) {
  if (meta?.time_zone) state.timeZone = meta.time_zone;
  if (meta?.data_complete_until) {
    const t = Date.parse(meta.data_complete_until);
    if (!state.completeUntil || t > state.completeUntil) state.completeUntil = t;
    renderFreshness();
  }
}

function renderFreshness() {
  const el = $('freshness');
  if (!state.completeUntil) {
    el.textContent = 'No data yet';
    return;
  }
  const t = new Date(state.completeUntil);
  const opts = { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' };
  let when;
  try {
    when = t.toLocaleTimeString('en-GB', { ...opts, timeZone: state.timeZone || undefined });
  } catch {
    when = t.toLocaleTimeString('en-GB', opts);
  }
  el.textContent = `Complete up to ${when}, ${fmt.ago(Date.now() - t)}`;
  el.title = `Numbers include every accepted event up to ${t.toISOString()}${state.timeZone ? ` (times in ${state.timeZone})` : ''}`;
  el.dataset.raw = new Date(state.completeUntil).toISOString();
}

// ---------- sign-in ----------

function showSignIn(message) {
  $('dash').hidden = true;
  $('signin').hidden = false;
  const err = $('signin-error');
  err.textContent = message || '';
  err.hidden = !message;
  $('signin-site').value = state.site || '';
  $('signin-key').focus();
}

function signOut(message) {
  sessionStorage.removeItem(KEY_STORE);
  state.key = null;
  state.sites = null;
  stopTimers();
  Object.values(ctrls).forEach((c) => c.abort());
  for (const p of panels.values()) p.ctrl?.abort();
  showSignIn(message);
}

/** Finds the sites the key may read: [{domain, timezone}], or null when the key may not list them. */
async function listSites(key) {
  try {
    state.listable = true;
    return await api.sites(key);
  } catch (e) {
    if (e.status === 403 && e.code === 'forbidden') {
      state.listable = false;
      return null;
    }
    throw e;
  }
}

function typedSites() {
  try {
    return JSON.parse(sessionStorage.getItem(SITES_STORE)) || [];
  } catch {
    return [];
  }
}

function rememberTypedSite(domain) {
  const list = typedSites().filter((d) => d !== domain);
  sessionStorage.setItem(SITES_STORE, JSON.stringify([domain, ...list].slice(0, 20)));
}

$('signin-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const key = $('signin-key').value.trim();
  const site = $('signin-site').value.trim().toLowerCase();
  const button = ev.target.querySelector('button');
  if (!key) return showSignIn('Enter an API key.');
  button.disabled = true;
  try {
    let sites = await listSites(key);
    if (sites === null) {
      const domain = site || state.site || typedSites()[0];
      if (!domain) throw new Error('This key cannot list its sites: type the site\'s domain too.');
      // A cheap question that checks the key and the site.
      await api.query(key, { site_id: domain, metrics: ['visitors'], date_range: 'day' });
      rememberTypedSite(domain);
      sites = [{ domain }];
      state.site = domain;
    } else if (!sites.length) {
      throw new Error('This key may read no site.');
    } else if (site) {
      state.site = site;
    }
    sessionStorage.setItem(KEY_STORE, key);
    state.key = key;
    $('signin-key').value = '';
    start(sites);
  } catch (e) {
    showSignIn(e.status === 401 ? `This key was not accepted: ${e.message}` : e.status === 404 ? `${e.message}.` : e.message);
  } finally {
    button.disabled = false;
  }
});

$('signout').addEventListener('click', () => {
  sessionStorage.removeItem(SITES_STORE);
  signOut('Signed out.');
});

// ---------- dashboard ----------

function start(sites) {
  state.sites = sites;
  if (sites && !sites.some((s) => s.domain === state.site)) state.site = sites[0].domain;
  $('signin').hidden = true;
  $('dash').hidden = false;
  writeUrl(false);
  renderSites();
  loadAll();
  startTimers();
}

function renderSites() {
  const sel = $('site');
  const domains = state.sites ? state.sites.map((s) => s.domain) : [state.site];
  if (!state.listable) for (const d of typedSites()) if (!domains.includes(d)) domains.push(d);
  if (state.site && !domains.includes(state.site)) domains.unshift(state.site);
  sel.replaceChildren(...domains.map((d) => h('option', { value: d }, d)));
  if (!state.listable) sel.append(h('option', { value: '' }, 'Other site…'));
  sel.value = state.site;
}

$('site').addEventListener('change', (ev) => {
  let domain = ev.target.value;
  if (!domain) {
    domain = (prompt('Domain of the site (your key must be allowed to read it):') || '').trim().toLowerCase();
    if (!domain) return renderSites();
    rememberTypedSite(domain);
  }
  state.site = domain;
  state.filters = [];
  state.completeUntil = null;
  writeUrl(true);
  renderSites();
  loadAll();
});

$('period').replaceChildren(...PERIODS.map(([id, name]) => h('option', { value: id }, name)));
$('period').addEventListener('change', (ev) => {
  const p = ev.target.value;
  if (p === 'custom') {
    $('custom').hidden = false;
    const today = new Date().toISOString().slice(0, 10);
    $('from').value ||= state.from || new Date(Date.now() - 29 * 864e5).toISOString().slice(0, 10);
    $('to').value ||= state.to || today;
    $('from').focus();
    return;
  }
  state.period = p;
  writeUrl(true);
  loadAll();
});
$('custom').addEventListener('submit', (ev) => {
  ev.preventDefault();
  let [from, to] = [$('from').value, $('to').value];
  if (!from || !to) return;
  if (from > to) [from, to] = [to, from];
  Object.assign(state, { period: 'custom', from, to });
  writeUrl(true);
  loadAll();
});

window.addEventListener('popstate', () => {
  if (!state.key) return;
  const site = state.site;
  readUrl();
  if (state.site !== site) state.completeUntil = null;
  renderSites();
  loadAll();
});

function addFilter(dim, value) {
  state.filters = [...state.filters.filter(([d]) => d !== dim), [dim, value]];
  writeUrl(true);
  loadAll();
}

function removeFilter(dim) {
  const hadFocus = $('filters').contains(document.activeElement);
  state.filters = state.filters.filter(([d]) => d !== dim);
  writeUrl(true);
  loadAll();
  if (hadFocus) ($('filters').querySelector('button') || $('period')).focus();
}

function filterName(dim) {
  return DIM_NAMES[dim] || (dim.startsWith('event:props:') ? `Property ${dim.slice(12)}` : dim);
}

function renderChrome() {
  $('period').value = state.period;
  $('custom').hidden = state.period !== 'custom';
  if (state.period === 'custom') {
    $('from').value = state.from;
    $('to').value = state.to;
  }
  $('filters').replaceChildren(...state.filters.map(([d, v]) => {
    const shown = d === 'visit:country' ? fmt.country(v) : v;
    return h('span', { class: 'chip', 'data-testid': 'filter-chip', 'data-dimension': d, 'data-value': v },
      h('span', {}, `${filterName(d)} is `, h('strong', {}, shown)),
      h('button', { type: 'button', 'aria-label': `Remove filter ${filterName(d)} is ${shown}`, title: 'Remove filter', onclick: () => removeFilter(d) }, '×'));
  }));
  const realtime = state.period === 'realtime';
  const notice = $('notice');
  notice.hidden = !(realtime && state.filters.length);
  notice.textContent = 'The chart and current visitors are unfiltered (the API answers realtime questions without filters); the filters apply to the numbers and lists.';
  $('panels-note').hidden = !realtime;
  $('panels-note').textContent = 'Last 30 minutes';
  document.title = state.site ? `${state.site} · Tally` : 'Tally';
}

function loadAll() {
  if (state.period === 'realtime') realtimeWindow();
  renderChrome();
  renderFreshness();
  loadOverview();
  loadCurrent();
  renderPanels();
}

function abortable(name) {
  ctrls[name]?.abort();
  ctrls[name] = new AbortController();
  return ctrls[name].signal;
}

async function guarded(name, box, fn) {
  const signal = abortable(name);
  try {
    await fn(signal);
  } catch (e) {
    if (e.name === 'AbortError' || signal.aborted) return;
    if (handleAuth(e)) return;
    box.replaceChildren(errorBox(e));
    box.dataset.state = 'error';
  }
}

// ---------- overview: metrics and chart ----------

async function loadOverview(silent) {
  const metricsBox = $('metrics');
  const chartBox = $('chart');
  if (!silent) {
    metricsBox.dataset.state = 'loading';
    chartBox.dataset.state = 'loading';
  }
  if (state.period === 'realtime') return loadRealtime();
  const filters = apiFilters();
  const noVpv = state.filters.some(([d]) => d === 'event:page');
  const metrics = TOP.map(([m]) => m).filter((m) => !(noVpv && m === 'views_per_visit'));
  const base = { site_id: state.site, date_range: dateRange(), filters };
  guarded('metrics', metricsBox, async (signal) => {
    const body = { ...base, metrics };
    if (state.period !== 'all') body.include = { comparisons: { mode: 'previous_period' } };
    const res = await api.query(state.key, body, signal);
    noteFreshness(res.meta);
    const row = res.results[0] || { metrics: [] };
    const values = Object.fromEntries(metrics.map((m, i) => [m, [row.metrics[i], row.comparison?.change?.[i], row.comparison?.metrics?.[i]]]));
    renderMetrics(TOP.map(([m, name]) => [m, name, values[m]]), noVpv);
  });
  guarded('chart', chartBox, async (signal) => {
    const dim = timeDimension();
    const res = await api.query(state.key, { ...base, metrics: ['visitors', 'pageviews'], dimensions: [dim], include: { time_labels: true } }, signal);
    noteFreshness(res.meta);
    const labels = res.meta.time_labels || res.results.map((r) => r.dimensions[0]);
    drawSeries(labels, res.results, unitOf(dim, labels));
  });
}

function renderMetrics(list, noVpv) {
  const box = $('metrics');
  box.replaceChildren(...list.map(([m, name, v]) => {
    const card = h('div', { class: 'metric', 'data-testid': `metric-card-${m}` }, h('div', { class: 'name' }, name));
    if (!v) {
      card.append(h('div', { class: 'value unavailable', 'data-testid': `metric-${m}`, 'data-raw': '',
        title: noVpv ? 'Views per visit cannot be asked with a page filter' : 'Not available' }, '—'));
      return card;
    }
    const [value, change, before] = v;
    card.append(h('div', { class: 'value', 'data-testid': `metric-${m}`, 'data-raw': value ?? '' }, fmt.metric(m, value)));
    const c = fmt.change(m, change);
    if (c) {
      card.append(h('div', { class: `change ${c.tone}`, 'data-testid': `change-${m}`, 'data-raw': change,
        title: `Previous period: ${fmt.metric(m, before)}` }, c.text, h('span', { class: 'sr' }, ' against the previous period')));
    } else if (state.period !== 'all' && state.period !== 'realtime') {
      card.append(h('div', { class: 'change flat' }, '—'));
    }
    return card;
  }));
  box.dataset.state = 'ready';
  if (!performance.getEntriesByName('tally:first-metrics').length) performance.mark('tally:first-metrics');
}

function drawSeries(labels, rows, unit) {
  const byLabel = new Map(rows.map((r) => [r.dimensions[0], r.metrics]));
  const series = [['visitors', 'Visitors'], ['pageviews', 'Pageviews']].map(([cls, label], k) => ({
    cls, label, values: labels.map((l) => byLabel.get(l)?.[k] ?? 0),
  }));
  const box = $('chart');
  drawChart(box, { labels, unit, series });
  box.dataset.state = 'ready';
  box.dataset.points = labels.length;
}

/** The last 30 minutes: the numbers over the lists' range (filtered), the chart by minute from live events (unfiltered). */
async function loadRealtime() {
  const metricsBox = $('metrics');
  const chartBox = $('chart');
  guarded('metrics', metricsBox, async (signal) => {
    const res = await api.query(state.key, { site_id: state.site, metrics: ['visitors', 'pageviews'], date_range: listRange(), filters: apiFilters() }, signal);
    noteFreshness(res.meta);
    const row = res.results[0] || { metrics: [] };
    renderMetrics([['visitors', 'Visitors (30 min)', [row.metrics[0]]], ['pageviews', 'Pageviews (30 min)', [row.metrics[1]]]]);
  });
  guarded('chart', chartBox, async (signal) => {
    const res = await api.query(state.key, { site_id: state.site, metrics: ['visitors', 'pageviews'], date_range: '30m', dimensions: ['time:minute'] }, signal);
    // Realtime answers carry no time labels: every minute from the range's first to its last.
    const [from, to] = res.query.date_range.map((s) => Date.parse(`${s.slice(0, 16)}:00Z`));
    const labels = [];
    for (let t = from; t <= to && labels.length < 61; t += 60e3) labels.push(new Date(t).toISOString().slice(0, 16).replace('T', ' ') + ':00');
    drawSeries(labels, res.results, 'minute');
  });
}

// ---------- current visitors ----------

async function loadCurrent() {
  const el = document.querySelector('[data-testid=current-visitors]');
  const signal = abortable('current');
  try {
    const res = await api.query(state.key, { site_id: state.site, metrics: ['visitors'], date_range: 'realtime' }, signal);
    const n = res.results[0]?.metrics[0] ?? 0;
    el.textContent = fmt.int(n);
    el.dataset.raw = n;
    $('current').title = 'Visitors in the last 5 minutes, all traffic (realtime counts are unfiltered)';
  } catch (e) {
    if (e.name === 'AbortError' || signal.aborted || handleAuth(e)) return;
    el.textContent = '?';
    el.dataset.raw = '';
    $('current').title = e.message;
  }
}

// ---------- panels ----------

function renderPanels() {
  const box = $('panels');
  if (!panels.size) {
    for (const def of PANELS) {
      const el = h('section', { class: 'card panel', 'data-testid': `panel-${def.id}`, 'aria-labelledby': `h-${def.id}` });
      panels.set(def.id, { def, el, offset: 0, scale: 0 });
      box.append(el);
    }
  }
  for (const p of panels.values()) {
    p.offset = 0;
    p.scale = 0;
    p.names = null;
    loadPanel(p);
  }
}

function panelDim(p) {
  if (p.def.tabs) return `visit:${state.utm}`;
  if (p.def.props) return chosenProp(p) ? `event:props:${chosenProp(p)}` : null;
  return p.def.dim;
}

function panelHead(p) {
  const { def } = p;
  const head = h('div', { class: 'panel-head' });
  let title = def.title;
  const event = state.filters.find(([d]) => d === 'event:name');
  if (def.props && event) title = `Properties of ${event[1]}`;
  head.append(h('h2', { id: `h-${def.id}` }, title));
  if (def.tabs) {
    head.append(h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'UTM parameter' }, def.tabs.map(([k, name]) =>
      h('button', { type: 'button', role: 'tab', 'aria-selected': String(k === state.utm), 'data-testid': `tab-${k}`,
        onclick: () => { state.utm = k; writeUrl(true); p.offset = 0; p.scale = 0; loadPanel(p); } }, name))));
  }
  if (def.props && p.names?.length) head.append(propSelect(p));
  return head;
}

/** The prop to break down: the URL's when it is listed, else the first listed (most events). */
const chosenProp = (p) => (p.names?.includes(state.prop) ? state.prop : p.names?.[0] || '');

/** The listed prop names, most events first; a choice goes into the URL. */
function propSelect(p) {
  const chosen = chosenProp(p);
  const select = h('select', { id: 'prop-name', 'aria-label': 'Property', 'data-testid': 'prop-name', onchange: () => {
    state.prop = select.value;
    writeUrl(true);
    p.offset = 0;
    p.scale = 0;
    loadPanel(p);
  } }, p.names.map((name) => h('option', { value: name, selected: name === chosen, 'data-testid': 'prop-tab', 'data-value': name }, name)));
  return select;
}

/** Lists the prop names of the site, range and filters into `p.names` (kept until the next full load). */
async function loadPropNames(p, signal) {
  const res = await api.props(state.key, { site_id: state.site, date_range: listRange(), filters: apiFilters() }, signal);
  if (signal.aborted) return;
  noteFreshness(res.meta);
  p.names = res.props.map((x) => x.name);
}

async function loadPanel(p) {
  const { def, el } = p;
  p.ctrl?.abort();
  const ctrl = (p.ctrl = new AbortController());
  const old = el.querySelector('.list');
  const finish = (...content) => {
    // Keep the keyboard focus on the same control (a tab, a pager button, the prop select).
    const active = document.activeElement;
    const focused = el.contains(active) && active.dataset.testid;
    el.replaceChildren(panelHead(p), ...content);
    if (focused) {
      const again = el.querySelector(focused === 'row' ? `[data-testid=row][data-value="${CSS.escape(active.dataset.value)}"]` : `[data-testid="${focused}"]`);
      const target = again && !again.disabled ? again : el.querySelector('[data-testid=prev]:not(:disabled), [data-testid=next]:not(:disabled)');
      target?.focus();
    }
  };
  if (def.props && !p.names) {
    // The names first: the panel breaks one of them down.
    el.dataset.state = 'loading';
    if (!old) finish(h('ul', { class: 'list' }));
    try {
      await loadPropNames(p, ctrl.signal);
    } catch (e) {
      if (e.name === 'AbortError' || ctrl.signal.aborted || handleAuth(e)) return;
      finish(errorBox(e));
      el.dataset.state = 'error';
      return;
    }
    if (ctrl.signal.aborted) return;
  }
  const dim = panelDim(p);
  if (def.props && !dim) {
    el.dataset.state = 'ready';
    const event = state.filters.some(([d]) => d === 'event:name');
    return finish(h('p', { class: 'empty', 'data-testid': 'note' }, `No custom event properties ${event ? 'on this event ' : ''}in this period.`));
  }
  if (def.unfilteredOnly && state.period === 'realtime') {
    el.dataset.state = 'ready';
    return finish(h('p', { class: 'empty', 'data-testid': 'note' }, 'Exit pages are not shown in Realtime (the API cannot answer them for the last 30 minutes).'));
  }
  if (def.unfilteredOnly && state.filters.length) {
    el.dataset.state = 'ready';
    return finish(h('p', { class: 'empty', 'data-testid': 'note' }, 'Exit pages are shown without filters only (the API cannot filter them yet).'));
  }
  el.dataset.state = 'loading';
  const oldHead = el.querySelector('.panel-head');
  if (old && oldHead) {
    // Keep the old rows, dimmed, while loading; the head (tabs) shows the new choice at once.
    const head = panelHead(p);
    const focused = oldHead.contains(document.activeElement) && document.activeElement.dataset.testid;
    oldHead.replaceWith(head);
    if (focused) head.querySelector(`[data-testid="${focused}"]`)?.focus();
  }
  else finish(h('ul', { class: 'list' }));
  const range = listRange();
  if (Array.isArray(range) && state.period === 'realtime') [el.dataset.from, el.dataset.to] = range;
  else {
    delete el.dataset.from;
    delete el.dataset.to;
  }
  const query = {
    site_id: state.site, metrics: def.metrics, date_range: range, dimensions: [dim],
    filters: [...(def.extra || []), ...apiFilters()],
    pagination: { limit: PAGE, offset: p.offset }, include: { total_rows: true },
  };
  try {
    const res = await api.query(state.key, query, ctrl.signal);
    if (ctrl.signal.aborted) return;
    noteFreshness(res.meta);
    const total = res.meta.total_rows ?? res.results.length;
    if (!p.scale) p.scale = Math.max(1, ...res.results.map((r) => r.metrics[0] || 0));
    const [m1, m2] = def.metrics;
    const clickable = FILTERABLE(dim);
    const list = h('ul', { class: 'list' }, res.results.map((r) => {
      const value = r.dimensions[0];
      const shown = def.label ? def.label(value) : value;
      const fill = h('span', { class: 'fill', 'aria-hidden': 'true' });
      fill.style.width = `${Math.min(100, ((r.metrics[0] || 0) / p.scale) * 100)}%`;
      const cells = [fill, h('span', { class: 'label', title: value }, shown),
        h('span', { class: 'num', 'data-testid': `row-${m1}`, 'data-raw': r.metrics[0] ?? '' }, fmt.metric(m1, r.metrics[0])),
        h('span', { class: 'num second', 'data-testid': `row-${m2}`, 'data-raw': r.metrics[1] ?? '' }, fmt.metric(m2, r.metrics[1]))];
      const row = clickable
        ? h('button', { type: 'button', class: 'row', 'data-testid': 'row', 'data-value': value, title: `Filter by ${filterName(dim)} ${value}`,
          onclick: () => addFilter(dim, value) }, cells)
        : h('div', { class: 'row', 'data-testid': 'row', 'data-value': value, title: 'Filtering by exit page is not supported by the API yet' }, cells);
      return h('li', {}, row);
    }));
    const content = [h('div', { class: 'cols', 'aria-hidden': 'true' }, h('span', {}, def.tabs ? UTM.find(([k]) => k === state.utm)[1] : def.col), ...def.heads.map((x) => h('span', {}, x)))];
    if (!res.results.length) content.push(h('p', { class: 'empty' }, p.offset ? 'No more rows.' : 'No data for this period.'));
    else content.push(list);
    if (total > PAGE || p.offset) {
      const last = Math.min(p.offset + res.results.length, total);
      content.push(h('div', { class: 'pager' },
        h('button', { type: 'button', 'data-testid': 'prev', disabled: p.offset === 0,
          onclick: () => { p.offset = Math.max(0, p.offset - PAGE); loadPanel(p); } }, '‹ Previous'),
        h('span', { 'data-testid': 'page-info' }, `${fmt.int(p.offset + 1)}–${fmt.int(last)} of ${fmt.int(total)}`),
        h('button', { type: 'button', 'data-testid': 'next', disabled: p.offset + PAGE >= total,
          onclick: () => { p.offset += PAGE; loadPanel(p); } }, 'Next ›')));
    }
    finish(...content);
    el.dataset.state = 'ready';
    el.dataset.total = total;
  } catch (e) {
    if (e.name === 'AbortError' || ctrl.signal.aborted) return;
    if (handleAuth(e)) return;
    finish(errorBox(e));
    el.dataset.state = 'error';
  }
}

// ---------- refresh ----------

function includesToday() {
  if (state.period === 'custom') return state.to >= new Date(Date.now() - 864e5).toISOString().slice(0, 10);
  return ['day', '24h', 'month', 'year', 'all'].includes(state.period);
}

function startTimers() {
  stopTimers();
  let ticks = 0;
  timers.push(setInterval(renderFreshness, 1000));
  timers.push(setInterval(() => {
    if (document.hidden || !state.key) return;
    ticks++;
    loadCurrent();
    if (state.period === 'realtime') {
      // Every 10 s, the last 30 minutes again: one new range for the numbers and every list.
      realtimeWindow();
      loadOverview(true);
      for (const p of panels.values()) {
        p.names = null;
        if (!p.offset) p.scale = 0;
        loadPanel(p);
      }
    } else if (ticks % 6 === 0 && includesToday()) {
      // Every minute, the overview and each panel's current page again (and the prop names).
      loadOverview(true);
      for (const p of panels.values()) {
        if (p.el.dataset.state === 'loading') continue;
        p.names = null;
        loadPanel(p);
      }
    }
  }, 10000));
}

function stopTimers() {
  timers.forEach(clearInterval);
  timers = [];
}

document.addEventListener('visibilitychange', () => {
  if (!document.hidden && state.key) loadCurrent();
});

// ---------- boot ----------

async function boot() {
  readUrl();
  if (!state.key) return showSignIn();
  const listing = listSites(state.key);
  // With a site in the URL, ask its questions at once; the switcher fills in when the list comes.
  const early = Boolean(state.site);
  if (early) start(null);
  try {
    const sites = await listing;
    if (sites === null) {
      const domain = state.site || typedSites()[0];
      if (!domain) return signOut('This key cannot list its sites: sign in again with the site\'s domain.');
      state.site = domain;
      if (early) renderSites();
      else start(null);
    } else if (!sites.length) {
      signOut('This key may read no site.');
    } else if (!early) {
      start(sites);
    } else {
      state.sites = sites;
      if (!sites.some((x) => x.domain === state.site)) {
        state.site = sites[0].domain;
        state.filters = [];
        state.completeUntil = null;
        writeUrl(false);
        loadAll();
      }
      renderSites();
    }
  } catch (e) {
    if (e.status === 401 || e.status === 403) signOut(`Your key was not accepted: ${e.message}`);
    else showSignIn(`Could not reach Tally: ${e.message}`);
  }
}

boot();
