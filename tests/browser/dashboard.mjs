// Drives the dashboard in the system's headless Chromium, as an HQ analyst
// would: open the page with a token, drill down from HQ to a pump, watch a
// live value change, see an alarm come in, acknowledge and shelve it.
//
//   node tests/browser/dashboard.mjs URL TOKEN SCREENSHOT_DIR
//
// The node must run tests/fixtures/dashboard-model (or a model shaped like
// it); the script publishes readings to the node's embedded MQTT broker with
// `mosquitto_pub`. Environment:
//
//   TWINRT_MQTT_PORT  the broker's port (required)
//   TWINRT_PUMP       the pump's path (default acme/gulf/baytown/crude/pump-1)
//   TWINRT_TOPIC      its telemetry topic (default baytown/pump-1/telemetry)
//   TWINRT_EAST_TOKEN a viewer token scoped to acme/east (optional: if set,
//                     checks that it sees only the east region, and no buttons)
//   CHROMIUM          the browser (default /usr/bin/chromium)
//
// Every step asserts what the user would see and fails with a message
// saying what it waited for and what it saw. Exit 0 only if all passed, the
// page threw nothing, and it requested nothing from another host.

import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [url, token, shots] = process.argv.slice(2);
if (!url || !token || !shots) {
  console.error('usage: node dashboard.mjs URL TOKEN SCREENSHOT_DIR');
  process.exit(2);
}
const mqttPort = process.env.TWINRT_MQTT_PORT;
if (!mqttPort) {
  console.error('TWINRT_MQTT_PORT is not set: the port of the node\'s embedded MQTT broker');
  process.exit(2);
}
const pump = process.env.TWINRT_PUMP ?? 'acme/gulf/baytown/crude/pump-1';
const topic = process.env.TWINRT_TOPIC ?? 'baytown/pump-1/telemetry';
const alarmId = `${pump}:high_flow`;
mkdirSync(shots, { recursive: true });

const origin = new URL(url);
const isLocal = (u) => {
  try {
    const { protocol, hostname } = new URL(u);
    if (protocol === 'data:' || protocol === 'blob:' || protocol === 'about:') return true;
    return ['127.0.0.1', 'localhost', '[::1]', origin.hostname].includes(hostname);
  } catch {
    return false;
  }
};

const foreign = [];
const pageErrors = [];
let step = 'start';

function log(message) {
  console.log(`dashboard test: ${message}`);
}

/** Polls `probe` until it returns a truthy value; fails saying what it waited for. */
async function until(what, probe, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (last && last.ok !== false) return last;
    } catch (e) {
      last = `error: ${e.message.split('\n')[0]}`;
    }
    if (Date.now() > deadline) {
      const seen = typeof last === 'object' && last !== null ? JSON.stringify(last.seen ?? last) : String(last);
      throw new Error(`[${step}] timed out after ${timeoutMs / 1000}s waiting for ${what}; last seen: ${seen}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

function publish(payload) {
  const message = JSON.stringify(payload);
  return new Promise((resolve, reject) => {
    const p = spawn('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(mqttPort), '-q', '1', '-t', topic, '-m', message],
      { stdio: ['ignore', 'inherit', 'inherit'] });
    p.on('error', (e) => reject(new Error(`[${step}] cannot run mosquitto_pub: ${e.message}`)));
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`[${step}] mosquitto_pub ${message} exited ${code}`))));
  });
}

const profile = mkdtempSync(join(tmpdir(), 'twinrt-dashboard-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1600, height: 1000 },
});

let failed = null;
try {
  // Nothing may leave the node: every other host is refused and recorded.
  context.on('request', (r) => { if (!isLocal(r.url())) foreign.push(r.url()); });
  await context.route((u) => !isLocal(u.href), (route) => route.abort('blockedbyclient'));

  const page = context.pages()[0] ?? await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') log(`browser console: ${m.text()}`); });
  const shot = async (name) => {
    const path = join(shots, name);
    await page.screenshot({ path, fullPage: true });
    log(`screenshot ${path}`);
  };
  const attr = (sel, name) => page.locator(sel).first().getAttribute(name, { timeout: 500 });
  const text = async (sel) => ((await page.locator(sel).first().textContent({ timeout: 500 })) ?? '').trim();
  const treeNode = (path) => `[data-testid="tree-node"][data-path="${path}"]`;
  const lineOf = (path) => `${treeNode(path)} > .tree-line`;
  const hq = pump.split('/')[0];

  // 1. Load with the token in the address; the tree starts at HQ.
  step = 'load';
  await page.goto(new URL(`/#token=${encodeURIComponent(token)}`, url).href);
  await until(`the tree's root ${hq}`, async () => (await page.locator(lineOf(hq)).isVisible()) || { ok: false, seen: await page.locator('body').innerText() });
  await until('the live status "live"', async () => (await attr('[data-testid="live-status"]', 'data-state')) === 'live'
    || { ok: false, seen: await attr('[data-testid="live-status"]', 'data-state') });
  if (page.url().includes('token=')) throw new Error(`[load] the token stays in the address bar: ${page.url()}`);
  const who = await text('[data-testid="whoami"]');
  if (!who.includes('admin')) throw new Error(`[load] the header does not show the token's role: "${who}"`);
  const rootTier = await text(`${lineOf(hq)} [data-testid="tier"]`);
  if (rootTier !== 'enterprise') throw new Error(`[load] HQ's tier badge says "${rootTier}", not "enterprise"`);
  await until('HQ\'s KPIs in the tree', async () => (await page.locator(`${lineOf(hq)} [data-testid="tree-kpi"]`).count()) > 0);
  await shot('01-tree.png');

  // 2. Drill down HQ → region → plant → line → pump, by clicking the tree.
  step = 'drill down';
  const parts = pump.split('/');
  for (let i = 1; i <= parts.length; i += 1) {
    const path = parts.slice(0, i).join('/');
    await until(`${path} in the tree`, () => page.locator(lineOf(path)).isVisible());
    await page.locator(`${lineOf(path)} [data-testid="tree-select"]`).click();
    await until(`${path} shown in the main pane`, async () => {
      const name = await text('[data-testid="twin-name"]');
      const crumb = await attr('[data-testid="breadcrumb"] li:last-child [data-testid="crumb"]', 'data-path');
      return (name === parts[i - 1] && crumb === path) || { ok: false, seen: { name, crumb } };
    });
    log(`selected ${path}`);
  }
  const tier = await text('[data-testid="twin-tier"]');
  if (tier !== 'device') throw new Error(`[drill down] the pump's tier shows "${tier}", not "device"`);
  const flowRow = '[data-testid="prop-row"][data-prop="flow"]';
  await until('the pump\'s flow property', () => page.locator(flowRow).isVisible());
  await shot('02-device.png');

  // 3. A live value: publish a reading, see it in the table and the trend.
  step = 'live value';
  await page.locator(flowRow).click();
  await until('the trend of flow', async () => (await text('[data-testid="trend-title"]')).startsWith('flow'));
  await until('the chart', () => page.locator('[data-testid="trend"] canvas').count());
  const pointsBefore = Number(await attr('[data-testid="trend"]', 'data-points'));
  await publish({ flow: 123.4, speed: 2950, running: true });
  await until('flow = 123.4 in the property table', async () => {
    const v = await text(`${flowRow} [data-testid="prop-value"]`);
    return v.startsWith('123.4') || { ok: false, seen: v };
  });
  const q = await attr(`${flowRow} [data-testid="prop-quality"]`, 'data-quality');
  if (q !== 'good') throw new Error(`[live value] a fresh reading's quality shows "${q}", not "good"`);
  await until('the trend to gain a point', async () => {
    const n = Number(await attr('[data-testid="trend"]', 'data-points'));
    return n > pointsBefore || { ok: false, seen: `${n} points, ${pointsBefore} before` };
  });
  await shot('03-live-value.png');

  // 4. An alarm: flow over 300 raises high_flow at once.
  step = 'alarm';
  await publish({ flow: 400, speed: 2950, running: true });
  const row = (where) => `${where} [data-testid="alarm-row"][data-alarm="${alarmId}"]`;
  const twinRow = row('[data-testid="twin-alarms"]');
  await until('high_flow active and unacknowledged on the pump', async () => {
    const s = await attr(twinRow, 'data-state');
    return s === 'active_unacked' || { ok: false, seen: s };
  });
  await until('high_flow in the scope\'s alarm list', async () => (await attr(row('[data-testid="alarm-list"]'), 'data-state')) === 'active_unacked');
  await until('an alarm count on HQ in the tree', async () => {
    const n = await attr(`${lineOf(hq)} [data-testid="alarm-counts"]`, 'data-active');
    return Number(n) > 0 || { ok: false, seen: n };
  });
  await until('an Ack button on the alarm', () => page.locator(`${twinRow} [data-testid="ack"]`).isVisible());
  await shot('04-alarm.png');

  // 5. Acknowledge it.
  step = 'acknowledge';
  await page.locator(`${twinRow} [data-testid="ack"]`).click();
  await until('high_flow acknowledged', async () => {
    const s = await attr(twinRow, 'data-state');
    return s === 'active_acked' || { ok: false, seen: s };
  });
  await until('the Ack button gone', async () => (await page.locator(`${twinRow} [data-testid="ack"]`).count()) === 0);
  await until('the alarm list to agree', async () => (await attr(row('[data-testid="alarm-list"]'), 'data-state')) === 'active_acked');
  await shot('05-acked.png');

  // 6. Shelve it for the default hour, then unshelve it.
  step = 'shelve';
  await page.locator(`${twinRow} [data-testid="shelve"]`).click();
  await until('the shelve dialog', () => page.locator('[data-testid="shelve-dialog"]').isVisible());
  const duration = await page.locator('[data-testid="shelve-for"]').inputValue();
  if (duration !== '1h') throw new Error(`[shelve] the duration defaults to "${duration}", not "1h"`);
  await page.locator('[data-testid="shelve-confirm"]').click();
  await until('high_flow shelved', async () => {
    const m = await attr(twinRow, 'data-mode');
    return m === 'shelved' || { ok: false, seen: m };
  });
  await until('the state to say "shelved"', async () => (await text(`${twinRow} [data-testid="alarm-state"]`)).includes('shelved'));
  await shot('06-shelved.png');
  step = 'unshelve';
  await page.locator(`${twinRow} [data-testid="unshelve"]`).click();
  await until('high_flow enabled again', async () => {
    const m = await attr(twinRow, 'data-mode');
    return m === 'enabled' || { ok: false, seen: m };
  });

  // 7. A viewer scoped to the east region sees only that region.
  const eastToken = process.env.TWINRT_EAST_TOKEN;
  if (eastToken) {
    step = 'east scope';
    const east = await context.newPage(); // a new tab: its own sessionStorage
    east.on('pageerror', (e) => pageErrors.push(e.message));
    await east.goto(new URL(`/#token=${encodeURIComponent(eastToken)}`, url).href);
    const eastRoot = `${hq}/east`;
    await until(`${eastRoot} as the root of the tree`, async () => {
      const root = await east.locator('[data-testid="tree"] > [data-testid="tree-node"]').first().getAttribute('data-path', { timeout: 500 });
      return root === eastRoot || { ok: false, seen: root };
    });
    await until('the east region\'s plants', async () => (await east.locator(`[data-testid="tree-node"][data-path^="${eastRoot}/"]`).count()) > 0);
    const outside = await east.locator('[data-testid="tree-node"]').evaluateAll(
      (els, r) => els.map((e) => e.dataset.path).filter((p) => p !== r && !p.startsWith(`${r}/`)), eastRoot);
    if (outside.length) throw new Error(`[east scope] the east viewer sees ${outside.join(', ')}`);
    const buttons = await east.locator('[data-testid="ack"], [data-testid="shelve"], [data-testid="unshelve"]').count();
    if (buttons) throw new Error(`[east scope] a viewer is offered ${buttons} alarm buttons`);
    await east.screenshot({ path: join(shots, '07-east-viewer.png'), fullPage: true });
    log(`screenshot ${join(shots, '07-east-viewer.png')}`);
    await east.close();
  }

  step = 'finish';
  if (pageErrors.length) throw new Error(`the page threw: ${pageErrors.join('; ')}`);
  if (foreign.length) throw new Error(`the page requested other hosts: ${foreign.join(', ')}`);
  log('all steps passed');
} catch (e) {
  failed = e;
  try {
    const page = context.pages()[0];
    if (page) await page.screenshot({ path: join(shots, 'failure.png'), fullPage: true });
    log(`failure screenshot ${join(shots, 'failure.png')}`);
  } catch { /* the browser is gone */ }
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
if (failed) {
  console.error(`dashboard test FAILED: ${failed.message}`);
  if (pageErrors.length) console.error(`page errors: ${pageErrors.join('; ')}`);
  if (foreign.length) console.error(`requests to other hosts: ${foreign.join(', ')}`);
  process.exit(1);
}
