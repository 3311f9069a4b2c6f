// Pure helpers: formatting, ordering and small DOM building. No I/O.

export const PRIORITIES = ['urgent', 'high', 'medium', 'low'];
const RANK = { urgent: 4, high: 3, medium: 2, low: 1 };

/** Builds an element: h('td', { class: 'num', dataset: { x: 1 } }, 'text', child). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'testid') el.setAttribute('data-testid', v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** A property value for display: numbers to a sensible precision. */
export function formatValue(v) {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(3);
    const digits = a >= 1000 ? 0 : a >= 100 ? 1 : a >= 1 ? 2 : 3;
    return v.toLocaleString('en-GB', { maximumFractionDigits: digits, useGrouping: a >= 10000 });
  }
  return String(v);
}

/** A value as a number for the trend, or null (strings and enums have none). */
export function numeric(v) {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  return null;
}

/** Local wall-clock time of an RFC 3339 timestamp, seconds precision. */
export function formatTime(ts) {
  if (!ts) return '';
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return String(ts);
  if (d.getTime() <= 0) return '—'; // never: parameters, alarms that never changed
  const now = new Date();
  const time = d.toLocaleTimeString('en-GB', { hour12: false });
  return d.toDateString() === now.toDateString() ? time : `${d.toISOString().slice(0, 10)} ${time}`;
}

export function rank(priority) {
  return RANK[priority] ?? 0;
}

/** Most urgent first, then newest. */
export function compareAlarms(a, b) {
  return rank(b.priority) - rank(a.priority) || String(b.since ?? '').localeCompare(String(a.since ?? ''));
}

export function isActive(alarm) {
  return alarm.state === 'active_unacked' || alarm.state === 'active_acked';
}

export function isUnacked(alarm) {
  return alarm.state === 'active_unacked' || alarm.state === 'returned_unacked';
}

/** Whether an alarm belongs in the scope list under `filter` (as /api/alarms?state=). */
export function matchesFilter(alarm, filter) {
  switch (filter) {
    case 'all': return true;
    case 'unacked': return isUnacked(alarm);
    case 'shelved': return alarm.mode === 'shelved';
    default: return isActive(alarm);
  }
}

/** Human text of an alarm state and mode. */
export function stateText(alarm) {
  const state = {
    normal: 'normal',
    active_unacked: 'active, unacknowledged',
    active_acked: 'active, acknowledged',
    returned_unacked: 'cleared, unacknowledged',
  }[alarm.state] ?? alarm.state;
  if (alarm.mode === 'shelved') {
    return `${state} · shelved${alarm.shelved_until ? ` until ${formatTime(alarm.shelved_until)}` : ''}`;
  }
  if (alarm.mode && alarm.mode !== 'enabled') return `${state} · ${alarm.mode.replace(/_/g, ' ')}`;
  return state;
}

/** Whether a path lies in the subtree rooted at `root`. */
export function within(path, root) {
  return path === root || path.startsWith(`${root}/`);
}

/** The last segment of a path. */
export function leaf(path) {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** A twin path as URL path segments (each segment encoded, slashes kept). */
export function pathUrl(path) {
  return path.split('/').map(encodeURIComponent).join('/');
}

/** Sum of an alarm_summary's counts of one kind ('active' or 'unacked'). */
export function total(summary, kind) {
  const c = summary?.[kind] ?? {};
  return PRIORITIES.reduce((n, p) => n + (c[p] ?? 0), 0);
}

/** The roll-ups worth showing on a tree node, at most `n`. */
export function pickKpis(kpis, n = 2) {
  const preferred = ['throughput', 'availability', 'power', 'running_devices'];
  const list = kpis ?? [];
  const chosen = preferred.map((name) => list.find((k) => k.name === name)).filter(Boolean);
  for (const k of list) if (!chosen.includes(k)) chosen.push(k);
  return chosen.slice(0, n);
}

/** One line of text for a journal entry, whatever its kind carries. */
export function eventText(e) {
  if (typeof e.text === 'string' && e.text) return e.text; // the node words it (docs/api.md)
  const skip = new Set(['seq', 'at', 'kind', 'twin']);
  const t = e.transition;
  if (e.kind === 'alarm' && t) {
    const to = t.to_state ?? t.state;
    const mode = typeof t.to_mode === 'string' ? t.to_mode : t.to_mode ? Object.keys(t.to_mode)[0] : undefined;
    return [e.alarm, to && `→ ${to}`, mode && mode !== 'enabled' && `(${mode})`, t.cause && `· ${t.cause}`]
      .filter(Boolean).join(' ');
  }
  if (e.kind === 'mode') return `${e.from ?? '?'} → ${e.to ?? '?'}${e.reason ? ` · ${e.reason}` : ''}`;
  if (e.kind === 'operator_action') return `${e.who ?? ''}: ${e.action ?? ''}`;
  if (typeof e.text === 'string') return e.text;
  if (typeof e.note === 'string') return e.note;
  if (typeof e.reason === 'string') return e.reason;
  const rest = Object.fromEntries(Object.entries(e).filter(([k]) => !skip.has(k)));
  return Object.keys(rest).length ? JSON.stringify(rest) : '';
}
