// The live stream (`GET /api/stream`, Server-Sent Events), read with fetch.
//
// Why not EventSource: it cannot send the Authorization header, so the token
// would travel in the query string (`?access_token=`), where it lands in
// access logs and proxies; and it hides the status of a failed connection,
// so a revoked token would look like a network fault and be retried for
// ever. fetch with a streaming reader sends the header, sees 401/403, and
// does what EventSource does otherwise: parses the stream per the HTML
// standard, remembers the last event id and reconnects with `Last-Event-ID`
// so the node replays what was missed (or says `reset`).

const HEARTBEAT_TIMEOUT_MS = 45_000; // the node sends `: heartbeat` every 15 s

/**
 * Opens the stream and keeps it open until `close()`.
 * onEvent({ event, data, id }); onStatus(state, detail) with state one of
 * 'connecting', 'live', 'down', 'denied'; onOpen({ resumed }) after each
 * successful (re)connection.
 */
export function openStream({ url, token, onEvent, onStatus, onOpen }) {
  let lastId = null;
  let closed = false;
  let controller = null;
  let retryMs = 1000;

  async function run() {
    let backoff = 500;
    while (!closed) {
      controller = new AbortController();
      onStatus('connecting');
      let watchdog = null;
      const pet = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => controller.abort(), HEARTBEAT_TIMEOUT_MS);
      };
      try {
        const headers = { Authorization: `Bearer ${token}`, Accept: 'text/event-stream' };
        const resumed = lastId !== null;
        if (resumed) headers['Last-Event-ID'] = lastId;
        pet();
        const res = await fetch(url, { headers, cache: 'no-store', signal: controller.signal });
        if (res.status === 401 || res.status === 403) {
          clearTimeout(watchdog);
          let message = `HTTP ${res.status}`;
          try { message = (await res.json()).error.message; } catch { /* keep the status */ }
          onStatus('denied', message);
          return;
        }
        if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
        onStatus('live');
        onOpen?.({ resumed });
        backoff = 500;
        await read(res.body, (ev) => {
          if (ev.id !== undefined) lastId = ev.id;
          if (ev.retry !== undefined) retryMs = ev.retry;
          if (ev.event !== undefined) onEvent(ev);
        }, pet);
      } catch (e) {
        if (closed) return;
        onStatus('down', e.name === 'AbortError' ? 'no heartbeat' : e.message);
      } finally {
        clearTimeout(watchdog);
      }
      if (closed) return;
      onStatus('down', 'reconnecting');
      await new Promise((r) => setTimeout(r, Math.max(retryMs, backoff) * (0.8 + 0.4 * Math.random())));
      backoff = Math.min(backoff * 2, 15_000);
    }
  }

  run();
  return {
    close() {
      closed = true;
      controller?.abort();
    },
  };
}

/** Parses an event stream (HTML standard, "event stream interpretation"). */
async function read(body, dispatch, onBytes) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  let data = [];
  let event = '';
  let sawData = false;
  let id;
  const line = (l) => {
    if (l === '') {
      // The last event id is set at the end of an event, with or without data.
      if (sawData) dispatch({ id, event: event || 'message', data: data.join('\n') });
      else if (id !== undefined) dispatch({ id });
      data = []; event = ''; sawData = false; id = undefined;
      return;
    }
    if (l.startsWith(':')) return; // a comment: the heartbeat
    const colon = l.indexOf(':');
    const field = colon < 0 ? l : l.slice(0, colon);
    let value = colon < 0 ? '' : l.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') { data.push(value); sawData = true; }
    else if (field === 'event') event = value;
    else if (field === 'id' && !value.includes('\0')) id = value;
    else if (field === 'retry' && /^\d+$/.test(value)) dispatch({ retry: Number(value) });
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    onBytes();
    buf += value;
    // Lines end in CRLF, LF or CR; a trailing CR may be the first half of a CRLF.
    let m;
    const re = /\r\n|\n|\r(?!$)/g;
    let start = 0;
    while ((m = re.exec(buf)) !== null) {
      line(buf.slice(start, m.index));
      start = m.index + m[0].length;
    }
    buf = buf.slice(start);
  }
}
