// The twinrt dashboard: the organisation tree, one twin in detail, the
// alarms of the token's scope; all kept live from the node's event stream.
//
// State lives in `S`; render functions redraw one region of the page from
// it. Live events patch `S` and redraw only what they touch.

import { ApiError, forgetToken, makeApi, storeToken, takeToken } from './api.js';
import { openStream } from './sse.js';
import {
  PRIORITIES, compareAlarms, eventText, formatTime, formatValue, h, isUnacked, leaf,
  matchesFilter, numeric, pathUrl, pickKpis, stateText, total, within,
} from './format.js';

const TREND_WINDOW_S = 15 * 60;
const $ = (id) => document.getElementById(id);

const S = {
  api: null,
  who: null, // { token, role, scope }
  nodes: new Map(), // path -> tree node as /api/tree gives it, children as paths
  expanded: new Set(),
  selected: null, // path
  twin: null, // /api/twins answer for `selected`
  trendProp: null,
  trend: { xs: [], ys: [] },
  alarms: new Map(), // scope alarm list, id -> alarm
  alarmFilter: 'active',
  alarmsTruncated: false,
  events: [],
  stream: null,
};

let chart = null;

// ---- start, sign in and out ------------------------------------------------

async function start() {
  $('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const token = $('login-token').value.trim();
    if (token) signIn(token);
  });
  $('logout').addEventListener('click', signOut);
  $('alarm-filter').addEventListener('change', (e) => {
    S.alarmFilter = e.target.value;
    loadAlarms();
  });
  $('shelve-cancel').addEventListener('click', () => $('shelve-dialog').close('cancel'));
  window.addEventListener('hashchange', () => {
    const p = pathFromHash();
    if (p && p !== S.selected && S.who && within(p, S.who.scope)) select(p, { push: false });
  });
  const token = takeToken();
  if (token) await signIn(token);
  else showLogin('');
}

function showLogin(message) {
  $('app').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message;
  $('login-token').focus();
}

async function signIn(token) {
  S.api = makeApi(token);
  try {
    S.who = await S.api.get('/api/whoami');
  } catch (e) {
    forgetToken();
    showLogin(e.status === 401 ? 'The node does not know this token.' : `Cannot sign in: ${e.message}`);
    return;
  }
  storeToken(token);
  $('login').hidden = true;
  $('app').hidden = false;
  $('logout').hidden = false;
  $('company').textContent = S.who.scope.split('/')[0];
  $('whoami').textContent = `${S.who.token} · ${S.who.role} · ${S.who.scope}`;
  $('whoami').title = `token ${S.who.token}, role ${S.who.role}, sees ${S.who.scope} and below`;

  const fromHash = pathFromHash();
  S.selected = fromHash && within(fromHash, S.who.scope) ? fromHash : S.who.scope;
  S.expanded = new Set([S.who.scope]);
  for (const p of ancestors(S.selected)) S.expanded.add(p);
  await refreshAll();
  startStream();
}

function signOut() {
  S.stream?.close();
  S.stream = null;
  forgetToken();
  setLive('off');
  S.nodes.clear();
  S.alarms.clear();
  S.twin = null;
  $('whoami').textContent = '';
  $('company').textContent = '';
  history.replaceState(null, '', location.pathname);
  showLogin('Signed out.');
}

// ---- the live stream -------------------------------------------------------

function startStream() {
  const url = `/api/stream?path=${encodeURIComponent(`${S.who.scope}/**`)}`;
  let opened = false;
  S.stream = openStream({
    url,
    token: S.api.token,
    onStatus: (state, detail) => setLive(state, detail),
    onOpen: ({ resumed }) => {
      // The first connection: refetch, as something may have changed since
      // the page loaded. A resumed one replays what it missed, or says `reset`.
      if (opened && !resumed) refreshAll();
      opened = true;
    },
    onEvent: ({ event, data }) => {
      let d;
      try { d = JSON.parse(data); } catch { return; }
      if (event === 'state') applyState(d);
      else if (event === 'alarm') applyAlarm(d);
      else if (event === 'dropped' || event === 'reset') {
        toast(event === 'dropped' ? `Missed ${d.count ?? 'some'} updates; reloading` : 'Reloading');
        refreshAll();
      }
    },
  });
}

function setLive(state, detail) {
  const el = $('live-status');
  el.dataset.state = state;
  const text = { live: 'live', connecting: 'connecting', down: 'reconnecting', denied: 'denied', off: 'off' }[state] ?? state;
  el.querySelector('.live-text').textContent = text;
  el.title = `live updates: ${text}${detail ? ` (${detail})` : ''}`;
}

/** A `state` event: the latest values of one twin. */
function applyState(d) {
  const node = S.nodes.get(d.path);
  if (node) {
    for (const k of node.kpis ?? []) {
      const p = d.properties?.[k.name];
      if (p) Object.assign(k, { value: p.value, quality: p.quality, reason: p.reason });
    }
    renderTreeNodeLine(d.path);
  }
  if (S.twin && d.path === S.twin.path && !(d.seq <= S.twin.seq)) {
    S.twin.seq = d.seq;
    for (const prop of S.twin.properties) {
      const p = d.properties?.[prop.name];
      if (!p) continue;
      const changed = p.value !== prop.value || p.quality !== prop.quality;
      Object.assign(prop, p);
      if (changed) updatePropRow(prop);
      if (prop.name === S.trendProp) appendTrend(p);
    }
  }
}

/** An `alarm` event: one alarm after a change of state or mode. */
function applyAlarm(a) {
  const alarm = { ...a };
  delete alarm.from;
  upsertAlarm(alarm);
  if (S.twin && within(alarm.twin, S.twin.path)) {
    if (alarm.twin === S.twin.path) loadEventsSoon();
    reloadTwinSoon();
  }
  refreshTreeSoon();
}

function upsertAlarm(alarm) {
  if (matchesFilter(alarm, S.alarmFilter)) S.alarms.set(alarm.id, alarm);
  else S.alarms.delete(alarm.id);
  renderAlarmList();
  if (S.twin) {
    const i = S.twin.alarms.findIndex((x) => x.id === alarm.id);
    if (i >= 0) S.twin.alarms[i] = alarm;
    renderTwinAlarms();
  }
}

// ---- loading ----------------------------------------------------------------

async function refreshAll() {
  await Promise.all([loadTree(), loadTwin(S.selected), loadAlarms()]);
}

function debounce(fn, ms) {
  let t = null;
  return () => {
    clearTimeout(t);
    t = setTimeout(fn, ms);
  };
}
const refreshTreeSoon = debounce(() => loadTree(), 400);
const reloadTwinSoon = debounce(() => S.selected && loadTwin(S.selected, { keepTrend: true }), 400);
const loadEventsSoon = debounce(() => loadEvents(), 300);

/** Stores one /api/tree node and its loaded children, children as paths. */
function absorb(node) {
  const stored = { ...node };
  if (Array.isArray(node.children)) {
    stored.children = node.children.map((c) => c.path);
    node.children.forEach(absorb);
  } else {
    stored.children = S.nodes.get(node.path)?.children ?? null;
  }
  S.nodes.set(node.path, stored);
}

/** The scope's root and every expanded node, one level below each. */
async function loadTree() {
  const root = S.who.scope;
  const wanted = [root, ...[...S.expanded].filter((p) => p !== root && within(p, root))];
  const results = await Promise.allSettled(
    wanted.map((p) => S.api.get(`/api/tree/${pathUrl(p)}`, { depth: p === root ? 2 : 1 })),
  );
  results.forEach((r, i) => {
    if (r.status === 'fulfilled') absorb(r.value);
    else if (r.reason?.status === 404) S.expanded.delete(wanted[i]);
  });
  if (results[0].status === 'rejected') toast(`Cannot load the tree: ${results[0].reason.message}`);
  renderTree();
}

async function expand(path) {
  S.expanded.add(path);
  const node = S.nodes.get(path);
  if (node && node.children === null && node.child_count > 0) {
    try {
      absorb(await S.api.get(`/api/tree/${pathUrl(path)}`, { depth: 1 }));
    } catch (e) {
      toast(`Cannot open ${path}: ${e.message}`);
    }
  }
  renderTree();
}

/** Loads the children of each of `paths` not loaded yet, top down, so a twin opened by link shows in the tree. */
async function loadBranches(paths) {
  for (const p of paths) {
    const node = S.nodes.get(p);
    if (node && node.children !== null) continue;
    try {
      absorb(await S.api.get(`/api/tree/${pathUrl(p)}`, { depth: 1 }));
    } catch {
      break; // the tree says what it can; the twin pane reports errors
    }
  }
  renderTree();
}

async function loadTwin(path, { keepTrend = false } = {}) {
  if (!path) return;
  try {
    const twin = await S.api.get(`/api/twins/${pathUrl(path)}`);
    if (path !== S.selected) return; // another twin was chosen meanwhile
    const first = !S.twin || S.twin.path !== twin.path;
    S.twin = twin;
    $('twin-error').textContent = '';
    renderTwin();
    if (first) {
      S.events = [];
      loadEvents();
    }
    if (first || !keepTrend || !S.twin.properties.some((p) => p.name === S.trendProp)) {
      const prop = first ? defaultTrendProp(twin) : S.trendProp;
      if (prop) await loadTrend(prop);
      else clearTrend();
    }
  } catch (e) {
    if (path !== S.selected) return;
    $('twin-error').textContent = `Cannot load ${path}: ${e.message}`;
  }
}

function defaultTrendProp(twin) {
  const nums = twin.properties.filter((p) => p.kind !== 'param' && typeof p.value === 'number');
  return (nums.find((p) => p.name === 'flow' || p.name === 'throughput') ?? nums[0])?.name ?? null;
}

async function loadEvents() {
  if (!S.twin) return;
  const path = S.twin.path;
  let after = S.events.length ? S.events[S.events.length - 1].seq : 0;
  try {
    for (let page = 0; page < 10; page += 1) {
      const r = await S.api.get(`/api/events/${pathUrl(path)}`, { after, limit: 1000 });
      const list = Array.isArray(r) ? r : r.events ?? [];
      if (path !== S.twin?.path) return;
      S.events.push(...list);
      if (list.length < 1000) break;
      after = list[list.length - 1].seq;
    }
    S.events = S.events.slice(-50);
    renderEvents();
  } catch (e) {
    $('events').replaceChildren(h('li', { class: 'error' }, `Cannot load events: ${e.message}`));
  }
}

async function loadAlarms() {
  try {
    const r = await S.api.get('/api/alarms', { state: S.alarmFilter });
    S.alarms = new Map(r.alarms.map((a) => [a.id, a]));
    S.alarmsTruncated = !!r.truncated;
    renderAlarmList();
    if (S.twin) renderTwinAlarms();
  } catch (e) {
    $('alarm-list-note').textContent = `Cannot load alarms: ${e.message}`;
  }
}

// ---- selection --------------------------------------------------------------

function pathFromHash() {
  const m = /^#\/(.+)$/.exec(location.hash);
  return m ? decodeURIComponent(m[1]) : null;
}

function ancestors(path) {
  const parts = path.split('/');
  return parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join('/'));
}

async function select(path, { push = true } = {}) {
  S.selected = path;
  if (push) history.pushState(null, '', `#/${path}`);
  const up = ancestors(path).filter((p) => within(p, S.who.scope));
  for (const p of up) S.expanded.add(p);
  renderTree();
  await Promise.all([loadTwin(path), loadBranches(up)]);
}

// ---- rendering: the tree ----------------------------------------------------

function renderTree() {
  const root = S.nodes.get(S.who.scope);
  $('tree').replaceChildren(root ? treeItem(root) : h('li', { class: 'hint' }, 'loading…'));
}

function treeItem(node) {
  const open = S.expanded.has(node.path);
  const hasKids = (node.child_count ?? node.children?.length ?? 0) > 0;
  const li = h('li', {
    testid: 'tree-node', dataset: { path: node.path, tier: node.tier ?? '' }, role: 'treeitem',
    'aria-expanded': hasKids ? String(open) : undefined,
  });
  li.append(treeLine(node, open, hasKids));
  if (open && node.children) {
    const kids = node.children.map((p) => S.nodes.get(p)).filter(Boolean);
    li.append(h('ul', { role: 'group' }, kids.map(treeItem)));
  }
  return li;
}

function treeLine(node, open, hasKids) {
  const toggle = h('button', {
    type: 'button', class: 'toggle', testid: 'tree-toggle', 'aria-label': open ? 'collapse' : 'expand',
    disabled: !hasKids,
    onclick: () => {
      if (S.expanded.has(node.path)) {
        S.expanded.delete(node.path);
        renderTree();
      } else expand(node.path);
    },
  }, hasKids ? (open ? '▾' : '▸') : '·');
  const name = h('button', {
    type: 'button', class: 'name', testid: 'tree-select',
    onclick: () => {
      expand(node.path);
      select(node.path);
    },
  }, node.name ?? leaf(node.path));
  const kpis = pickKpis(node.kpis).map((k) => h('span', {
    class: `kpi q-${k.quality ?? 'good'}`, testid: 'tree-kpi', dataset: { kpi: k.name },
    title: `${k.name}${k.quality && k.quality !== 'good' ? ` (${k.quality}${k.reason ? `: ${k.reason}` : ''})` : ''}`,
  }, `${formatValue(k.value)}${k.unit ? ` ${k.unit}` : ''}`));
  return h('div', { class: `tree-line${node.path === S.selected ? ' selected' : ''}`, dataset: { line: node.path } },
    toggle, name, h('span', { class: 'tier', testid: 'tier' }, node.tier ?? ''),
    h('span', { class: 'kpis' }, kpis), alarmCounts(node.alarm_summary));
}

/** Redraws one tree node's line (its KPIs changed), leaving its subtree. */
function renderTreeNodeLine(path) {
  const line = $('tree').querySelector(`.tree-line[data-line="${CSS.escape(path)}"]`);
  const node = S.nodes.get(path);
  if (!line || !node) return;
  const open = S.expanded.has(path);
  line.replaceWith(treeLine(node, open, (node.child_count ?? 0) > 0));
}

/** Active alarm counts by priority; unacknowledged ones stand out. */
function alarmCounts(summary) {
  const el = h('span', { class: 'counts', testid: 'alarm-counts', dataset: { active: total(summary, 'active') } });
  for (const p of PRIORITIES) {
    const n = summary?.active?.[p] ?? 0;
    if (!n) continue;
    const un = summary?.unacked?.[p] ?? 0;
    el.append(h('span', {
      class: `count p-${p}${un ? ' unacked' : ''}`, testid: 'alarm-count', dataset: { priority: p },
      title: `${n} ${p} active, ${un} unacknowledged`,
    }, String(n)));
  }
  return el;
}

// ---- rendering: the twin ----------------------------------------------------

function renderTwin() {
  const t = S.twin;
  $('twin-name').textContent = leaf(t.path);
  $('twin-tier').textContent = t.tier ?? '';
  $('twin-class').textContent = t.class ?? '';
  $('twin-counts').replaceChildren(alarmCounts(t.alarm_summary));
  renderBreadcrumb(t.path);
  $('props').replaceChildren(...t.properties.map(propRow));
  renderTwinAlarms();
  const kids = t.children ?? [];
  $('children-card').hidden = kids.length === 0;
  $('children').replaceChildren(...kids.map((p) => h('li', {},
    h('a', { href: `#/${p}`, testid: 'child-link', dataset: { path: p } }, leaf(p)))));
}

function renderBreadcrumb(path) {
  const parts = path.split('/');
  const items = parts.map((seg, i) => {
    const p = parts.slice(0, i + 1).join('/');
    const reachable = within(p, S.who.scope);
    const last = i === parts.length - 1;
    return h('li', {},
      reachable && !last
        ? h('a', { href: `#/${p}`, testid: 'crumb', dataset: { path: p } }, seg)
        : h('span', { testid: 'crumb', dataset: { path: p }, class: reachable ? 'current' : 'outside' }, seg));
  });
  $('breadcrumb').replaceChildren(...items);
}

function propRow(p) {
  const tr = h('tr', {
    testid: 'prop-row', dataset: { prop: p.name, kind: p.kind ?? '' },
    class: p.name === S.trendProp ? 'chosen' : '', tabindex: '0',
    onclick: () => loadTrend(p.name),
    onkeydown: (e) => { if (e.key === 'Enter') loadTrend(p.name); },
  });
  fillPropRow(tr, p);
  return tr;
}

function fillPropRow(tr, p) {
  const contributors = p.contributors
    ? h('div', { class: 'contrib', testid: 'prop-contributors' },
      `${p.contributors.good ?? 0}/${p.contributors.total ?? 0} good`
      + `${p.contributors.uncertain ? `, ${p.contributors.uncertain} uncertain` : ''}`
      + `${p.contributors.bad ? `, ${p.contributors.bad} bad` : ''}`)
    : null;
  const q = p.quality ?? 'good';
  tr.replaceChildren(
    h('td', { class: 'pname' }, p.name, p.kind && p.kind !== 'sourced' ? h('span', { class: 'kind' }, p.kind) : null),
    h('td', { class: 'num value', testid: 'prop-value' }, formatValue(p.value), contributors),
    h('td', { class: 'unit' }, p.unit ?? ''),
    h('td', {},
      h('span', { class: `quality q-${q}`, testid: 'prop-quality', dataset: { quality: q } },
        q, p.reason ? ` · ${p.reason.replace(/_/g, ' ')}` : '')),
    h('td', { class: 'ts', title: p.ts ?? '' }, formatTime(p.ts)),
  );
}

function updatePropRow(p) {
  const tr = [...$('props').rows].find((r) => r.dataset.prop === p.name);
  if (!tr) return;
  fillPropRow(tr, p);
  tr.classList.remove('flash');
  void tr.offsetWidth; // restart the animation
  tr.classList.add('flash');
}

/** The twin's own alarms, then (for a container) those of its subtree in the scope list. */
function renderTwinAlarms() {
  const t = S.twin;
  const own = [...(t?.alarms ?? [])].sort((a, b) =>
    Number(b.state !== 'normal') - Number(a.state !== 'normal') || compareAlarms(a, b));
  const rows = own.map((a) => alarmRow(a, { showTwin: false }));
  if (t?.children?.length) {
    const below = [...S.alarms.values()]
      .filter((a) => a.twin !== t.path && within(a.twin, t.path)).sort(compareAlarms);
    rows.push(below.length
      ? h('tr', { class: 'subhead' }, h('td', { colspan: '3' }, `Below ${leaf(t.path)} (${S.alarmFilter})`))
      : h('tr', {}, h('td', { class: 'hint', colspan: '3' }, `No ${S.alarmFilter} alarms below ${leaf(t.path)}.`)));
    rows.push(...below.slice(0, 50).map((a) => alarmRow(a, { showTwin: true })));
  } else if (!own.length) {
    rows.push(h('tr', {}, h('td', { class: 'hint' }, 'No alarms are configured for this twin.')));
  }
  $('twin-alarms').replaceChildren(...rows);
}

function renderEvents() {
  const list = [...S.events].reverse();
  $('events').replaceChildren(...(list.length
    ? list.map((e) => h('li', { testid: 'event', dataset: { kind: e.kind } },
      h('span', { class: 'ts', title: e.at ?? '' }, formatTime(e.at)),
      h('span', { class: 'kind' }, (e.kind ?? '').replace(/_/g, ' ')),
      h('span', {}, eventText(e))))
    : [h('li', { class: 'hint' }, 'Nothing recorded yet.')]));
}

// ---- rendering: alarms -------------------------------------------------------

function renderAlarmList() {
  const list = [...S.alarms.values()].sort(compareAlarms);
  $('alarm-list').replaceChildren(...(list.length
    ? list.map((a) => alarmRow(a, { showTwin: true }))
    : [h('tr', {}, h('td', { class: 'hint' }, `No ${S.alarmFilter === 'all' ? '' : `${S.alarmFilter} `}alarms.`))]));
  $('alarm-list-note').textContent = S.alarmsTruncated ? 'More alarms than shown: narrow the filter.' : '';
}

const mayOperate = () => ['operator', 'engineer', 'admin'].includes(S.who?.role);

function alarmRow(a, { showTwin }) {
  const canAck = isUnacked(a);
  const shelved = a.mode === 'shelved';
  const buttons = mayOperate() ? [
    canAck && h('button', { type: 'button', testid: 'ack', onclick: () => command('acknowledge', a) }, 'Ack'),
    !shelved && a.mode !== 'out_of_service'
      && h('button', { type: 'button', testid: 'shelve', onclick: () => askShelve(a) }, 'Shelve'),
    shelved && h('button', { type: 'button', testid: 'unshelve', onclick: () => command('unshelve', a) }, 'Unshelve'),
  ] : [];
  return h('tr', {
    testid: 'alarm-row',
    dataset: { alarm: a.id, state: a.state, mode: a.mode ?? 'enabled', priority: a.priority },
    class: `alarm p-${a.priority} s-${a.state} m-${a.mode ?? 'enabled'}`,
  },
  h('td', { class: 'prio' }, h('span', { class: `badge p-${a.priority}` }, a.priority)),
  h('td', { class: 'what' },
    h('div', { class: 'aname' }, a.name,
      showTwin ? h('a', { href: `#/${a.twin}`, class: 'twinlink', testid: 'alarm-twin' }, ` ${a.twin}`) : null),
    h('div', { class: 'astate', testid: 'alarm-state' }, stateText(a),
      a.since && Date.parse(a.since) > 0 ? ` · since ${formatTime(a.since)}` : ''),
    a.guidance && a.state !== 'normal' ? h('div', { class: 'guidance' }, a.guidance) : null),
  h('td', { class: 'actions' }, buttons));
}

async function command(verb, alarm, extra = {}) {
  try {
    const after = await S.api.post(`/api/alarms/${verb}`, { alarm: alarm.id, ...extra });
    if (after && after.id) upsertAlarm(after);
    toast(`${alarm.name}: ${verb === 'acknowledge' ? 'acknowledged' : `${verb}d`}`);
    refreshTreeSoon();
    if (S.twin && alarm.twin === S.twin.path) loadEventsSoon();
  } catch (e) {
    const why = e instanceof ApiError && e.code === 'conflict' ? 'not possible in its state' : e.message;
    toast(`${alarm.name}: cannot ${verb}: ${why}`, true);
    if (e.status === 409) loadAlarms();
  }
}

function askShelve(alarm) {
  const dialog = $('shelve-dialog');
  $('shelve-name').textContent = alarm.name;
  $('shelve-for').value = '1h';
  $('shelve-comment').value = '';
  dialog.onclose = () => {
    if (dialog.returnValue !== 'ok') return;
    const extra = { for: $('shelve-for').value.replace(/\s+/g, '') };
    const comment = $('shelve-comment').value.trim();
    if (comment) extra.comment = comment;
    command('shelve', alarm, extra);
  };
  dialog.returnValue = '';
  dialog.showModal();
}

// ---- the trend ----------------------------------------------------------------

async function loadTrend(prop) {
  const twin = S.twin;
  if (!twin) return;
  S.trendProp = prop;
  for (const tr of $('props').rows) tr.classList.toggle('chosen', tr.dataset.prop === prop);
  const meta = twin.properties.find((p) => p.name === prop);
  $('trend-title').textContent = `${prop}${meta?.unit ? ` (${meta.unit})` : ''}`;
  if (meta && meta.value !== null && numeric(meta.value) === null) {
    clearTrend(`${prop} is not a number: no trend.`);
    return;
  }
  try {
    const r = await S.api.get(`/api/history/${pathUrl(twin.path)}`, { prop, from: '-15m', points: 300 });
    if (S.twin !== twin || S.trendProp !== prop) return;
    S.trend = { xs: [], ys: [] };
    for (const p of r.points ?? []) {
      S.trend.xs.push(Date.parse(p.ts) / 1000);
      S.trend.ys.push(p.avg ?? null);
    }
    drawTrend(meta?.unit ?? r.unit);
  } catch (e) {
    clearTrend(`Cannot load the history of ${prop}: ${e.message}`);
  }
}

function appendTrend(p) {
  const y = numeric(p.value);
  const x = Date.parse(p.ts) / 1000;
  if (!chart || Number.isNaN(x)) return;
  const { xs, ys } = S.trend;
  if (xs.length && x <= xs[xs.length - 1]) return;
  xs.push(x);
  ys.push(p.quality === 'bad' ? null : y);
  const cut = x - TREND_WINDOW_S;
  while (xs.length && xs[0] < cut) { xs.shift(); ys.shift(); }
  chart.setData([xs, ys]);
  $('trend').dataset.points = String(xs.length);
}

function clearTrend(message = '') {
  chart?.destroy();
  chart = null;
  $('trend').replaceChildren(h('p', { class: 'hint', testid: 'trend-empty' }, message || 'No property chosen.'));
}

function drawTrend(unit) {
  chart?.destroy();
  const el = $('trend');
  el.replaceChildren();
  const width = Math.max(el.clientWidth, 300);
  chart = new window.uPlot({
    width, height: 220,
    legend: { show: false },
    cursor: { drag: { x: false, y: false } },
    // The x axis always spans the last 15 minutes, sliding as values arrive.
    scales: { x: { time: true, range: () => { const now = Date.now() / 1000; return [now - TREND_WINDOW_S, now]; } } },
    axes: [
      {
        stroke: '#333', grid: { stroke: '#d6d6d6' },
        values: (u, ticks) => ticks.map((t) => new Date(t * 1000).toLocaleTimeString('en-GB', { hour12: false, hour: '2-digit', minute: '2-digit' })),
      },
      { stroke: '#333', grid: { stroke: '#d6d6d6' }, label: unit ?? '', size: 60 },
    ],
    series: [{}, { label: S.trendProp, stroke: '#1f4e79', width: 1.5, spanGaps: false, points: { show: false } }],
  }, [S.trend.xs, S.trend.ys], el);
  el.dataset.points = String(S.trend.xs.length);
}

new ResizeObserver(() => {
  if (chart) chart.setSize({ width: Math.max($('trend').clientWidth, 300), height: 220 });
}).observe($('trend'));

// ---- toasts -------------------------------------------------------------------

let toastTimer = null;
function toast(message, error = false) {
  const el = $('toast');
  el.textContent = message;
  el.className = `toast show${error ? ' error' : ''}`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.className = 'toast'; }, 4000);
}

start();
