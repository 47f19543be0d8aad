// Browser tests of the dashboard (web/).
//
// Starts the real conlab binary on a free loopback port (--port 0, two
// workers), drives Debian's chromium through playwright-core (no browser is
// ever downloaded), and checks that what the page draws matches the JSON the
// page itself received: one lane per worker, one bar per task, the gil
// slices, spawn start-ups and CPU shading, the comparison chart and its
// cores marker, the server's error message shown verbatim with the inputs
// kept, the curl line, the live
// /health panel, the phone width and the keyboard path. The demo forms are
// built from the service's /openapi.json: their bounds, defaults and modes
// are checked against the live document, and a demo added to a (rewritten)
// document must appear with no change to web/.
//
//   cd tests/browser && npm ci          # once: playwright-core, pinned
//   node tests/browser/dashboard.test.mjs --binary build/conlab --web-root web
//
// Options: --binary PATH (default build/conlab), --web-root DIR (default
// web), --chromium PATH (default $CHROMIUM or /usr/bin/chromium), --only
// TEXT (run the cases whose name contains TEXT). Screenshots go to
// tests/browser/artifacts/. Prints one line per case and "N passed, M
// failed"; exits 1 when a case fails. Only 127.0.0.1 is contacted; the
// server and the browser are stopped by this script even when a case fails.

import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, resolve, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';

// playwright-core comes from tests/browser/node_modules (npm ci there).
let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  console.log(`FAIL setup: cannot load playwright-core (${e.message}); run \`npm ci\` in tests/browser`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..', '..');
const ARTIFACTS = join(HERE, 'artifacts');
const CASE_TIMEOUT_MS = 25000;
const START_TIMEOUT_MS = 10000;
const STOP_GRACE_MS = 5000;

const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

// ---- Arguments ------------------------------------------------------------

function parseArgs(argv) {
  const opts = {
    binary: join(ROOT, 'build', 'conlab'),
    webRoot: join(ROOT, 'web'),
    chromium: process.env.CHROMIUM || '/usr/bin/chromium',
    only: '',
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--binary') opts.binary = resolve(next());
    else if (a === '--web-root') opts.webRoot = resolve(next());
    else if (a === '--chromium') opts.chromium = resolve(next());
    else if (a === '--only') opts.only = next();
    else throw new Error(`unknown argument ${a} (accepted: --binary, --web-root, --chromium, --only)`);
  }
  return opts;
}

// ---- The server ----------------------------------------------------------

let server = null;
const serverLog = [];

function startServer(binary, webRoot) {
  return new Promise((resolveStart, rejectStart) => {
    const child = spawn(binary, [
      '--bind', '127.0.0.1', '--port', '0', '--workers', '2', '--web-root', webRoot,
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    server = child;
    let buffered = '';
    let settled = false;
    const timer = setTimeout(() => {
      if (!settled) {
        settled = true;
        rejectStart(new Error(`no "listening on" line within ${START_TIMEOUT_MS} ms:\n${serverLog.join('\n')}`));
      }
    }, START_TIMEOUT_MS);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop();
      for (const line of lines) {
        serverLog.push(line);
        if (serverLog.length > 400) serverLog.shift();
        const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(line);
        if (m && !settled) {
          settled = true;
          clearTimeout(timer);
          resolveStart(m[1]);
        }
      }
    });
    child.on('error', (e) => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        rejectStart(e);
      }
    });
    child.on('exit', (code, signal) => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        rejectStart(new Error(`server exited before listening (code ${code}, signal ${signal}):\n${serverLog.join('\n')}`));
      }
    });
  });
}

function running(child) {
  return child && child.exitCode === null && child.signalCode === null;
}

// SIGTERM, then SIGKILL after the grace period; resolves once it has exited.
async function stopServer() {
  const child = server;
  if (!running(child)) return null;
  const exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  try { process.kill(child.pid, 'SIGTERM'); } catch { /* already gone */ }
  const timer = setTimeout(() => {
    try { process.kill(child.pid, 'SIGKILL'); } catch { /* already gone */ }
  }, STOP_GRACE_MS);
  const how = await exited;
  clearTimeout(timer);
  return how;
}

function killServerNow() {
  if (running(server)) {
    try { process.kill(server.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
}

// ---- Pages -------------------------------------------------------------------

let browser = null;
let origin = '';

// A fresh context and page, recording everything that went wrong on it.
// opts.before(page) runs before the page loads (to install routes);
// opts.demos: the state the demo picker must reach before the case starts
// ('ready' by default; null waits for nothing).
async function openPage(width = 1280, height = 900, opts = {}) {
  const { before = null, demos = 'ready' } = opts;
  const context = await browser.newContext({ viewport: { width, height } });
  const page = await context.newPage();
  if (before) await before(page);
  const log = { consoleErrors: [], pageErrors: [], failed: [], badStatus: [], foreign: [], healthRequests: 0 };
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') log.consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => log.pageErrors.push(e.message));
  page.on('requestfailed', (r) => log.failed.push(`${r.url()} ${r.failure() ? r.failure().errorText : ''}`));
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(origin + '/') && !u.startsWith('data:')) log.foreign.push(u);
    if (u === `${origin}/health`) log.healthRequests += 1;
  });
  page.on('response', (r) => { if (r.status() >= 400) log.badStatus.push(`${r.status()} ${r.url()}`); });
  page.setDefaultTimeout(10000);
  await page.goto(`${origin}/`);
  await page.waitForSelector('#live-pill[data-state="ok"]');
  if (demos) await page.waitForSelector(`#demo-load[data-state="${demos}"]`, { state: 'attached' });
  return { page, context, log };
}

// allow: statuses expected in this case (their console line is expected too).
function assertClean(log, allow = []) {
  assert.deepEqual(log.pageErrors, [], 'uncaught errors on the page');
  assert.deepEqual(log.foreign, [], 'requests to anything but the server');
  assert.deepEqual(log.failed, [], 'failed requests');
  const bad = log.badStatus.filter((s) => !allow.some((code) => s.startsWith(`${code} `)));
  assert.deepEqual(bad, [], 'responses with an error status');
  const errors = log.consoleErrors.filter((t) =>
    !(allow.length && /Failed to load resource: the server responded with a status of (\d+)/.test(t) &&
      allow.includes(Number(/status of (\d+)/.exec(t)[1]))));
  assert.deepEqual(errors, [], 'console errors or warnings');
}

async function pickDemo(page, demo) {
  await page.click(`label[for="demo-${demo}"]`);
  await page.waitForSelector(`#form-${demo}:not([hidden])`);
}

async function fillForm(page, demo, fields) {
  for (const [name, value] of Object.entries(fields)) {
    const sel = `#${demo}-${name}`;
    const tag = await page.$eval(sel, (e) => e.tagName);
    if (tag === 'SELECT') await page.selectOption(sel, String(value));
    else await page.fill(sel, String(value));
  }
}

// The answer's JSON body: the response's, or, when the page read the run
// as an event stream, its last event's (final or error), which is the
// same body.
async function answerOf(resp, page = null) {
  let text;
  try {
    text = await resp.text();
  } catch (e) {
    // Chromium may keep no copy of a body the page read as a stream: the
    // page shows the body it drew (whole below JSON_SHOW_MAX).
    if (!page) throw e;
    await page.waitForFunction(() => !document.body.classList.contains('busy'));
    return JSON.parse(await page.textContent('#json'));
  }
  if (!(resp.headers()['content-type'] || '').startsWith('text/event-stream')) return JSON.parse(text);
  const blocks = text.split('\n\n').filter((b) => b.trim());
  const last = blocks[blocks.length - 1].split('\n');
  assert.match(last[0], /^event: (final|error)$/, 'the stream ends with its final event');
  return JSON.parse(last.filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n'));
}

// Clicks Run or Compare and returns the response the page got and its body,
// once the page has finished drawing it.
async function submit(page, demo, action = 'run') {
  const path = action === 'compare' ? '/run/compare?' : `/run/${demo}`;
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.url().startsWith(`${origin}${path}`)),
    page.click(`#form-${demo} button[value="${action}"]`),
  ]);
  const body = await answerOf(resp, page);
  await page.waitForFunction(() => !document.body.classList.contains('busy'));
  return { resp, body };
}

async function runDemo(page, demo, fields, action = 'run') {
  await pickDemo(page, demo);
  await fillForm(page, demo, fields);
  const out = await submit(page, demo, action);
  assert.equal(out.resp.status(), 200, `status of ${out.resp.url()}: ${JSON.stringify(out.body)}`);
  return out;
}

// What a timeline figure drew, read back from the DOM.
function readTimeline(page, figSel) {
  return page.$eval(figSel, (fig) => ({
    mode: fig.dataset.mode,
    demo: fig.dataset.demo,
    tasks: Number(fig.dataset.tasks),
    lanes: Number(fig.dataset.lanes),
    laneKeys: [...fig.querySelectorAll('g.lane')].map((g) => g.dataset.lane),
    laneLabels: [...fig.querySelectorAll('g.lane .lane-label')].map((t) => t.textContent),
    bars: [...fig.querySelectorAll('rect.bar')].map((r) => ({
      task: Number(r.dataset.task), lane: r.dataset.lane, inLane: r.closest('g.lane').dataset.lane,
      x: Number(r.getAttribute('x')), y: Number(r.getAttribute('y')), w: Number(r.getAttribute('width')),
    })),
    slices: fig.querySelectorAll('rect.slice').length,
    raster: fig.querySelector('image.bars-raster') ? Number(fig.querySelector('image.bars-raster').dataset.bars) : null,
  }));
}

const laneOf = (t) => `${t.worker.kind}:${t.worker.id}`;

// The drawing matches the run: same lanes, one bar per task in its lane,
// every gil slice drawn.
function checkTimeline(dom, run) {
  const lanes = [...new Set(run.tasks.map(laneOf))];
  assert.equal(dom.mode, run.mode);
  assert.equal(dom.tasks, run.tasks.length);
  assert.equal(dom.laneKeys.length, lanes.length, 'one lane per worker');
  assert.deepEqual([...dom.laneKeys].sort(), [...lanes].sort(), 'lanes are the workers of the JSON');
  if (dom.raster !== null) {
    assert.equal(dom.raster, run.tasks.length, 'raster image covers every task');
    return;
  }
  assert.equal(dom.bars.length, run.tasks.length, 'one bar per task');
  const byId = new Map(dom.bars.map((b) => [b.task, b]));
  for (const t of run.tasks) {
    const bar = byId.get(t.id);
    assert.ok(bar, `a bar for task ${t.id}`);
    assert.equal(bar.lane, laneOf(t), `task ${t.id} in its worker's lane`);
    assert.equal(bar.inLane, laneOf(t), `task ${t.id} drawn inside its lane`);
  }
  const slices = run.tasks.reduce((n, t) => n + (t.slices ? t.slices.length : 0), 0);
  assert.equal(dom.slices, slices, 'every gil slice drawn');
}

// The service's OpenAPI document, and what the dashboard must make of it,
// read here independently of web/forms.js.
async function openapiOf() {
  const r = await fetch(`${origin}/openapi.json`);
  assert.equal(r.status, 200);
  return r.json();
}

function resolve$ref(doc, node) {
  while (node && node.$ref) {
    assert.ok(node.$ref.startsWith('#/'), `local $ref: ${node.$ref}`);
    node = node.$ref.slice(2).split('/').reduce((at, k) => at[k.replace(/~1/g, '/').replace(/~0/g, '~')], doc);
    assert.ok(node, 'the $ref resolves');
  }
  return node;
}

function demoSpecs(doc) {
  const names = doc.components.parameters['compare.demo'].schema.enum;
  return names.filter((d) => doc.paths[`/run/${d}`] && doc.paths[`/run/${d}`].get).map((d) => {
    const op = doc.paths[`/run/${d}`].get;
    const params = op.parameters.map((p) => resolve$ref(doc, p))
      .filter((p) => p.in === 'query' && p['x-conlab-not-in-form'] !== true);
    const mode = params.find((p) => p.name === 'mode');
    return { name: d, op, params, modes: mode ? mode.schema.enum : null, mode };
  });
}

const fmtN = (n) => Number(n).toLocaleString('en-US');

async function healthOf() {
  const r = await fetch(`${origin}/health`);
  return r.json();
}

async function noHorizontalScroll(page) {
  const m = await page.evaluate(() => ({
    doc: document.documentElement.scrollWidth, body: document.body.scrollWidth, view: document.documentElement.clientWidth,
  }));
  assert.ok(m.doc <= m.view && m.body <= m.view, `page scrolls sideways: ${JSON.stringify(m)}`);
}

// ---- Cases -------------------------------------------------------------------

const cases = [];
const test = (name, fn) => cases.push({ name, fn });

test('page loads with no console errors and no failed requests', async () => {
  const { page, log } = await openPage();
  await page.waitForTimeout(300);
  assert.equal(await page.title(), 'Concurrency Lab');
  for (const demo of ['prime', 'square', 'sleep', 'fetch']) {
    assert.ok(await page.isVisible(`label[for="demo-${demo}"]`), `demo ${demo} offered`);
  }
  assert.ok(await page.isVisible('#form-prime'), 'the first demo\'s form is shown');
  assert.equal(await page.locator('.demo-form:not([hidden])').count(), 1, 'one form at a time');
  assert.ok(await page.isHidden('#demo-load'), 'no loading or error note once the demos are read');
  assertClean(log);
});

test('live /health state is shown and refreshed, and paused in a hidden tab', async () => {
  const { page, log } = await openPage();
  const h = await healthOf();
  const text = async (key) => (await page.textContent(`[data-health="${key}"]`)).trim();
  assert.equal(await text('process.configured'), String(h.pools.process.configured));
  assert.equal(await text('threads.configured'), String(h.pools.threads.configured));
  assert.equal(await text('version'), h.version);
  assert.equal(await text('process.pids'), h.pools.process.pids.join(', '));
  if (h.cores !== undefined) assert.equal(await text('cores'), String(h.cores));
  const before = log.healthRequests;
  await page.waitForTimeout(1800);
  assert.ok(log.healthRequests >= before + 1, 'polled again within 1.8 s');
  await page.evaluate(() => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
    document.dispatchEvent(new Event('visibilitychange'));
  });
  await page.waitForTimeout(200);
  const hidden = log.healthRequests;
  await page.waitForTimeout(3100);
  assert.equal(log.healthRequests, hidden, 'no polling while the tab is hidden');
  await page.evaluate(() => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => false });
    document.dispatchEvent(new Event('visibilitychange'));
  });
  await page.waitForTimeout(300);
  assert.ok(log.healthRequests >= hidden + 1, 'resumed polling when visible');
  assertClean(log);
});

test('prime threads, tasks 2: 2 bars in 2 lanes', async () => {
  const { page, log } = await openPage();
  const { body } = await runDemo(page, 'prime', { limit: 400000, tasks: 2, mode: 'threads' });
  const dom = await readTimeline(page, 'figure.timeline[data-mode="threads"]');
  checkTimeline(dom, body);
  assert.equal(dom.bars.length, 2);
  assert.equal(dom.laneKeys.length, 2);
  assert.ok(dom.laneKeys.every((k) => k.startsWith('thread:')));
  assertClean(log);
});

test('prime sequential, tasks 3: 3 bars in 1 lane, as a staircase', async () => {
  const { page, log } = await openPage();
  const { body } = await runDemo(page, 'prime', { limit: 300000, tasks: 3, mode: 'sequential' });
  const dom = await readTimeline(page, 'figure.timeline[data-mode="sequential"]');
  checkTimeline(dom, body);
  assert.deepEqual(dom.laneKeys, ['main:0']);
  assert.equal(dom.bars.length, 3);
  const bars = [...dom.bars].sort((a, b) => a.x - b.x);
  for (let i = 1; i < bars.length; i++) {
    assert.ok(bars[i].y > bars[i - 1].y, 'each task one row lower');
    assert.ok(bars[i].x >= bars[i - 1].x + bars[i - 1].w - 1.5, 'each task starts after the previous one ends');
  }
  assertClean(log);
});

test('prime processes: lanes named by the workers\' pids', async () => {
  const { page, log } = await openPage();
  const { body } = await runDemo(page, 'prime', { limit: 300000, tasks: 4, mode: 'processes' });
  const dom = await readTimeline(page, 'figure.timeline[data-mode="processes"]');
  checkTimeline(dom, body);
  const pids = (await healthOf()).pools.process.pids.map(String);
  for (const key of dom.laneKeys) {
    assert.match(key, /^process:\d+$/);
    assert.ok(pids.includes(key.split(':')[1]), `${key} is a live worker (${pids})`);
  }
  for (const label of dom.laneLabels) assert.match(label, /^pid \d+$/);
  assertClean(log);
});

test('prime gil: the lock slices are drawn', async () => {
  const { page, log } = await openPage();
  const { body } = await runDemo(page, 'prime', { limit: 1500000, tasks: 2, mode: 'gil' });
  const dom = await readTimeline(page, 'figure.timeline[data-mode="gil"]');
  checkTimeline(dom, body);
  assert.ok(dom.slices >= 2, `slices drawn: ${dom.slices}`);
  assert.equal(await page.locator('figure.timeline[data-mode="gil"] rect.bar.waiting').count(), 2);
  assertClean(log);
});

// The shading read back: per task, the bar, its CPU part and its start-up.
function readShading(page, figSel) {
  return page.$eval(figSel, (fig) => {
    const num = (r, a) => Number(r.getAttribute(a));
    const byTask = (sel) => new Map([...fig.querySelectorAll(sel)].map((r) => [Number(r.dataset.task), r]));
    const bars = byTask('rect.bar');
    const cpu = byTask('rect.cpu');
    const startup = byTask('rect.startup');
    return {
      cpuMs: Number(fig.dataset.cpuMs),
      legend: fig.querySelector('.tl-legend') ? fig.querySelector('.tl-legend').textContent : '',
      tasks: [...bars.keys()].map((id) => {
        const b = bars.get(id);
        const c = cpu.get(id);
        const s = startup.get(id);
        return {
          id, waiting: b.classList.contains('waiting'), bx: num(b, 'x'), bw: num(b, 'width'),
          cx: c ? num(c, 'x') : null, cw: c ? num(c, 'width') : null, cpuMs: c ? Number(c.dataset.cpuMs) : null,
          sx: s ? num(s, 'x') : null, sw: s ? num(s, 'width') : null, ready: s ? Number(s.dataset.ready) : null,
          hatch: s ? s.getAttribute('fill') : null,
          hatchDefined: s ? Boolean(fig.querySelector(`pattern${s.getAttribute('fill').slice(4, -1)}`)) : null,
        };
      }),
    };
  });
}

test('prime spawn: each bar starts with its process start-up, then its work on a CPU', async () => {
  const { page, log } = await openPage();
  const { body } = await runDemo(page, 'prime', { limit: 2000000, tasks: 2, mode: 'spawn' });
  const fig = 'figure.timeline[data-mode="spawn"]';
  const dom = await readTimeline(page, fig);
  checkTimeline(dom, body);
  for (const key of dom.laneKeys) assert.match(key, /^spawn:\d+$/);
  for (const label of dom.laneLabels) assert.match(label, /^new pid \d+$/);
  const shade = await readShading(page, fig);
  assert.match(shade.legend, /process start-up/);
  assert.match(shade.legend, /on a CPU/);
  const byId = new Map(body.tasks.map((t) => [t.id, t]));
  for (const s of shade.tasks) {
    const t = byId.get(s.id);
    assert.ok(t.spawn_ms > 0, `task ${s.id}: spawn_ms ${t.spawn_ms}`);
    assert.equal(s.ready, t.ready_ms, `task ${s.id}: the start-up ends at ready_ms`);
    assert.ok(Math.abs(s.sx - s.bx) < 0.01, `task ${s.id}: the start-up starts the bar`);
    assert.ok(s.sw >= 1 && s.sw < s.bw, `task ${s.id}: start-up ${s.sw} px within the bar ${s.bw} px`);
    assert.match(s.hatch, /^url\(#startup-hatch-\d+\)$/);
    assert.ok(s.hatchDefined, `task ${s.id}: its hatch pattern is in the figure`);
    // The CPU part begins where the start-up ends and covers its share.
    assert.ok(s.waiting, `task ${s.id}: the bar is pale under its CPU part`);
    assert.ok(Math.abs(s.cx - (s.sx + s.sw)) < 1.01, `task ${s.id}: work drawn from the greeting on`);
    const share = t.cpu_ms / (t.end_ms - t.ready_ms);
    const workPx = s.bx + s.bw - s.cx;
    assert.ok(Math.abs(s.cw - Math.min(1, share) * workPx) < 1.01,
      `task ${s.id}: CPU part ${s.cw} px for ${Math.round(share * 100)}% of ${workPx} px`);
    assert.equal(s.cpuMs, t.cpu_ms);
  }
  const total = body.tasks.reduce((n, t) => n + t.cpu_ms, 0);
  assert.ok(Math.abs(shade.cpuMs - total) < 1e-6, 'the figure states the CPU time in all');
  assertClean(log);
});

test('sleep threads: the bars stay pale (waiting is not on a CPU)', async () => {
  const { page, log } = await openPage();
  const { body } = await runDemo(page, 'sleep', { tasks: 2, ms: 300, mode: 'threads' });
  const shade = await readShading(page, 'figure.timeline[data-mode="threads"]');
  assert.equal(shade.tasks.length, 2);
  for (const s of shade.tasks) {
    assert.ok(s.waiting, `task ${s.id}: pale`);
    assert.equal(s.sx, null, 'no start-up outside spawn');
    // A sleep is ~0 ms of CPU: its solid part, if any, is a sliver.
    assert.ok(s.cw === null || s.cw <= Math.max(1, 0.05 * s.bw), `task ${s.id}: CPU part ${s.cw} px of ${s.bw}`);
  }
  for (const t of body.tasks) assert.ok(t.cpu_ms < 0.05 * (t.end_ms - t.start_ms), `cpu_ms ${t.cpu_ms}`);
  assert.doesNotMatch(shade.legend, /start-up/);
  assertClean(log);
});

test('square threads: one bar per batch, squares in the summary', async () => {
  const { page, log } = await openPage();
  const { body } = await runDemo(page, 'square', { numbers: '1,2,3,4,5,6', tasks: 3, mode: 'threads' });
  checkTimeline(await readTimeline(page, 'figure.timeline[data-mode="threads"]'), body);
  assert.deepEqual(body.result.squares, [1, 4, 9, 16, 25, 36]);
  assert.match(await page.textContent('#summary'), /Squares 1, 4, 9, 16, 25, 36/);
  assertClean(log);
});

test('sleep async, 20 tasks of 50 ms: 20 bars in the one loop lane', async () => {
  const { page, log } = await openPage();
  const { body } = await runDemo(page, 'sleep', { tasks: 20, ms: 50, mode: 'async' });
  const dom = await readTimeline(page, 'figure.timeline[data-mode="async"]');
  checkTimeline(dom, body);
  assert.deepEqual(dom.laneKeys, ['loop:0']);
  assert.equal(dom.bars.length, 20);
  assertClean(log);
});

test('sleep threads, 4 tasks: one bar per task in thread lanes', async () => {
  const { page, log } = await openPage();
  const { body } = await runDemo(page, 'sleep', { tasks: 4, ms: 40, mode: 'threads' });
  const dom = await readTimeline(page, 'figure.timeline[data-mode="threads"]');
  checkTimeline(dom, body);
  assert.ok(dom.laneKeys.every((k) => k.startsWith('thread:')));
  assertClean(log);
});

test('sleep async, 10,000 tasks: drawn as one image, quickly', async () => {
  const { page, log } = await openPage();
  await pickDemo(page, 'sleep');
  await fillForm(page, 'sleep', { tasks: 10000, ms: 20, mode: 'async' });
  const t0 = Date.now();
  const { resp, body } = await submit(page, 'sleep');
  const took = Date.now() - t0;
  assert.equal(resp.status(), 200);
  const dom = await readTimeline(page, 'figure.timeline[data-mode="async"]');
  checkTimeline(dom, body);
  assert.equal(dom.raster, 10000);
  assert.ok(took < 5000, `request and drawing took ${took} ms`);
  assertClean(log);
});

// ---- Live runs (web/live.js) ---------------------------------------------

// Frame times of the page, measured with requestAnimationFrame deltas from
// now until stopFrames() (max and 95th percentile, ms).
async function startFrames(page) {
  await page.evaluate(() => {
    window.__frames = [];
    let last = performance.now();
    const tick = (ts) => {
      window.__frames.push([ts - last, document.body.classList.contains('busy')]);
      last = ts;
      if (window.__framesOn) requestAnimationFrame(tick);
    };
    window.__framesOn = true;
    requestAnimationFrame(tick);
  });
}

// Frames while the request was in flight (the live drawing), and the
// longest after it (the finished answer: its JSON shown and drawn once).
async function stopFrames(page) {
  const all = await page.evaluate(() => { window.__framesOn = false; return window.__frames; });
  const f = all.filter(([, busy]) => busy).map(([d]) => d);
  const after = all.filter(([, busy]) => !busy).map(([d]) => d);
  const sorted = [...f].sort((a, b) => a - b);
  return {
    n: f.length, max: sorted[sorted.length - 1] || 0, p95: sorted[Math.floor(sorted.length * 0.95)] || 0,
    finish: Math.max(0, ...after),
  };
}

test('live: the timeline grows while a run goes (screenshots mid-run and at the end)', async () => {
  const { page, log } = await openPage();
  await pickDemo(page, 'sleep');
  await fillForm(page, 'sleep', { tasks: 6, ms: 700, mode: 'threads' });
  const done = submit(page, 'sleep');
  // Bars appear before the answer: the run is drawn while it goes.
  await page.waitForSelector('figure.timeline[data-mode="threads"]', { timeout: 3000 });
  const mid = await page.evaluate(() => ({
    busy: document.body.classList.contains('busy'),
    tasks: Number(document.querySelector('figure.timeline').dataset.tasks),
    status: document.querySelector('#status').textContent,
  }));
  assert.ok(mid.busy, 'the first drawing comes while the request is in flight');
  assert.ok(mid.tasks >= 1, `tasks drawn mid-run: ${mid.tasks}`);
  assert.match(mid.status, /of 6 tasks done/);
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, 'live-mid-run.png'), fullPage: false });
  const widthMid = await page.evaluate(() => {
    const bars = [...document.querySelectorAll('figure.timeline rect.bar, figure.timeline rect.task')];
    return bars.length ? Math.max(...bars.map((b) => Number(b.getAttribute('width')) || 0)) : 0;
  });
  await page.waitForTimeout(300);
  const widthLater = await page.evaluate(() => {
    const bars = [...document.querySelectorAll('figure.timeline rect.bar, figure.timeline rect.task')];
    return bars.length ? Math.max(...bars.map((b) => Number(b.getAttribute('width')) || 0)) : 0;
  });
  const { resp, body } = await done;
  assert.equal(resp.status(), 200);
  assert.ok(widthLater > widthMid, `running bars grow: ${widthMid} then ${widthLater} px`);
  // The finished picture is the one the final body draws.
  checkTimeline(await readTimeline(page, 'figure.timeline[data-mode="threads"]'), body);
  await page.screenshot({ path: join(ARTIFACTS, 'live-end.png'), fullPage: false });
  assertClean(log);
  return `${mid.tasks} tasks drawn mid-run; bars ${widthMid} then ${widthLater} px`;
});

test('live: a counter drawn mid-run waits for its answer to draw its own view', async () => {
  const { page, log } = await openPage();
  await pickDemo(page, 'counter');
  // About 0.5 to 1 s: many live frames before the answer.
  await fillForm(page, 'counter', { tasks: 4, increments: 10000000, mode: 'threads', sync: 'lock' });
  const done = submit(page, 'counter');
  // A live drawing, read in the same frame as the check that the request
  // is still in flight.
  const mid = await (await page.waitForFunction(() => {
    const busy = document.body.classList.contains('busy');
    const fig = document.querySelector('figure.timeline[data-mode="threads"]');
    return busy && fig ? { view: document.querySelector('#state-view').childElementCount } : null;
  }, null, { timeout: 5000 })).jsonValue();
  const { resp, body } = await done;
  assert.equal(resp.status(), 200);
  await page.waitForSelector('#state-view figure.counter-view[data-kind="run"]');
  const view = await readCounterView(page);
  assert.deepEqual(view.rows, [{ mode: 'threads', sync: 'lock', expected: body.result.expected,
    final: body.result.final, lost: 0 }]);
  assertClean(log);
  assert.equal(mid.view, 0, 'no counter view before the answer');
  return `final ${body.result.final.toLocaleString('en-US')} of ${body.result.expected.toLocaleString('en-US')}`;
});

test('live: a comparison adds a timeline per mode as it goes', async () => {
  const { page, log } = await openPage();
  await pickDemo(page, 'sleep');
  await fillForm(page, 'sleep', { tasks: 3, ms: 300 });
  // The answer is read from the page: Chromium's copy of a long streamed
  // body read by the page is not reliable (playwright's resp.text() then
  // shows the request as aborted).
  await page.click('#form-sleep button[value="compare"]');
  await page.waitForFunction(() => document.querySelectorAll('figure.timeline').length >= 2 &&
    document.body.classList.contains('busy'), null, { timeout: 5000 });
  const status = await page.textContent('#status');
  assert.match(status, /mode \d of 6/);
  await page.waitForFunction(() => !document.body.classList.contains('busy'), null, { timeout: 10000 });
  const body = JSON.parse(await page.textContent('#json'));
  assert.equal(body.runs.length, 6);
  assert.equal(await page.locator('figure.timeline').count(), body.runs.length);
  assertClean(log);
  return status;
});

test('live: Stop cancels the run on the service (the pool is free again)', async () => {
  const { page, log } = await openPage();
  await pickDemo(page, 'sleep');
  await fillForm(page, 'sleep', { tasks: 4, ms: 8000, mode: 'threads' });
  await page.click('#form-sleep button[value="run"]');
  await page.waitForSelector('figure.timeline[data-mode="threads"]', { timeout: 3000 });
  let h = await healthOf();
  assert.ok(h.pools.threads.busy >= 4, `threads busy while running: ${h.pools.threads.busy}`);
  const t0 = Date.now();
  await page.click('#cancel');
  let freed = false;
  while (Date.now() - t0 < 3000) {
    h = await healthOf();
    if (h.pools.threads.busy === 0 && h.budgets.tasks.used === 0) { freed = true; break; }
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(freed, `the pool is not free 3 s after Stop: ${JSON.stringify(h.pools.threads)}`);
  assert.match(await page.textContent('#status'), /Stopped/);
  // The aborted stream is the one failed request expected here.
  log.failed = log.failed.filter((f) => !/\/run\/sleep.*ERR_ABORTED/.test(f));
  assertClean(log);
  return `pool free ${Date.now() - t0} ms after Stop`;
});

test('live: 10,000 async sleeps render live without freezing the page (frame times)', async () => {
  const { page, log } = await openPage();
  await pickDemo(page, 'sleep');
  await fillForm(page, 'sleep', { tasks: 10000, ms: 1500, mode: 'async' });
  await startFrames(page);
  const done = submit(page, 'sleep');
  await page.waitForFunction(() => {
    const f = document.querySelector('figure.timeline[data-mode="async"]');
    return f && document.body.classList.contains('busy') && Number(f.dataset.tasks) > 0;
  }, null, { timeout: 5000 });
  const midTasks = await page.evaluate(() => Number(document.querySelector('figure.timeline').dataset.tasks));
  const { resp, body } = await done;
  await page.waitForTimeout(200); // a few frames after the answer
  const frames = await stopFrames(page);
  assert.equal(resp.status(), 200);
  const dom = await readTimeline(page, 'figure.timeline[data-mode="async"]');
  checkTimeline(dom, body);
  assert.ok(frames.n > 10, `only ${frames.n} frames in the run`);
  // Generous: a frozen page shows frames of seconds.
  assert.ok(frames.max < 1000, `a frame took ${frames.max.toFixed(0)} ms`);
  assert.ok(frames.p95 < 250, `95% of frames within ${frames.p95.toFixed(0)} ms`);
  assertClean(log);
  return `${midTasks} tasks drawn mid-run; ${frames.n} live frames, max ${frames.max.toFixed(0)} ms, ` +
    `p95 ${frames.p95.toFixed(0)} ms; the finished answer's frame ${frames.finish.toFixed(0)} ms`;
});

test('fetch async, count 3 of 50 ms: 3 bars', async () => {
  const { page, log } = await openPage();
  const { body } = await runDemo(page, 'fetch', { count: 3, ms: 50, mode: 'async' });
  const dom = await readTimeline(page, 'figure.timeline[data-mode="async"]');
  checkTimeline(dom, body);
  assert.equal(dom.bars.length, 3);
  assert.equal(body.result.ok, 3);
  assert.match(await page.textContent('#summary'), /3 ok, 0 failed/);
  assertClean(log);
});

test('fetch with a URL that fails: the failure is a result, drawn in red', async () => {
  const { page, log } = await openPage();
  await pickDemo(page, 'fetch');
  await page.fill('#fetch-url', `${origin}/delay?ms=20\n${origin}/no-such-file`);
  const { resp, body } = await submit(page, 'fetch');
  assert.equal(resp.status(), 200);
  assert.deepEqual([body.result.ok, body.result.failed], [1, 1]);
  const dom = await readTimeline(page, 'figure.timeline[data-mode="async"]');
  checkTimeline(dom, body);
  const failedIds = await page.$$eval('rect.bar.failed', (rs) => rs.map((r) => Number(r.dataset.task)));
  assert.deepEqual(failedIds, body.tasks.filter((t) => t.status >= 400 || t.error).map((t) => t.id));
  assert.match(await page.textContent('figure.timeline figcaption'), /1 failed/);
  assertClean(log);
});

test('compare prime: one timeline per mode, the chart and the cores marker', async () => {
  const { page, log } = await openPage();
  const { body } = await runDemo(page, 'prime', { limit: 1500000, tasks: 2 }, 'compare');
  assert.deepEqual(body.runs.map((r) => r.mode), ['sequential', 'threads', 'processes', 'gil', 'spawn']);
  const figs = await page.$$eval('#timelines figure.timeline', (fs) => fs.map((f) => f.dataset.mode));
  assert.deepEqual(figs, body.runs.map((r) => r.mode), 'one timeline per mode, in order');
  for (const run of body.runs) {
    checkTimeline(await readTimeline(page, `#timelines figure.timeline[data-mode="${run.mode}"]`), run);
  }
  const chart = await page.$eval('figure.compare-chart', (f) => ({
    wall: [...f.querySelectorAll('rect.cmp-bar[data-metric="wall"]')].map((r) => [r.dataset.mode, Number(r.dataset.value)]),
    speedup: [...f.querySelectorAll('rect.cmp-bar[data-metric="speedup"]')].map((r) => [r.dataset.mode, Number(r.dataset.value)]),
    cores: f.querySelector('.cores-marker') ? Number(f.querySelector('.cores-marker').dataset.cores) : null,
    coresLabel: f.querySelector('.cores-marker text') ? f.querySelector('.cores-marker text').textContent : '',
  }));
  assert.deepEqual(chart.wall, body.runs.map((r) => [r.mode, r.wall_ms]), 'a wall-time bar per mode');
  assert.deepEqual(chart.speedup, body.runs.map((r) => [r.mode, r.speedup]), 'a speedup bar per mode');
  assert.equal(chart.cores, body.cores, 'cores marker at the number of cores');
  assert.match(chart.coresLabel, new RegExp(`^${body.cores} cores?$`));
  assert.equal(await page.textContent('#curl'), `curl '${origin}/run/compare?demo=prime&limit=1500000&tasks=2'`);
  await page.screenshot({ path: join(ARTIFACTS, 'compare-desktop.png'), fullPage: true });
  assertClean(log);
});

test('work async: computing drawn solid, the late ends of waits (the stall) marked', async () => {
  const { page, log } = await openPage();
  const { body } = await runDemo(page, 'work', { tasks: 2, ms: 200, io_ratio: '0.25', mode: 'async' });
  const fig = '#timelines figure.timeline[data-mode="async"]';
  const dom = await page.$eval(fig, (f) => ({
    bars: f.querySelectorAll('rect.bar.waiting').length,
    slices: f.querySelectorAll('rect.slice').length,
    stalls: [...f.querySelectorAll('rect.stall')].map((r) => Number(r.dataset.task)),
  }));
  assert.equal(dom.bars, 2, 'both bars drawn faint (waiting), phases on top');
  const phases = body.tasks.reduce((n, t) => n + t.computing.length, 0);
  assert.equal(dom.slices, phases, 'one solid rect per computing phase');
  const late = body.tasks.flatMap((t) => t.waiting.filter((w) => w[2] - w[1] > 0.05).map(() => t.id));
  assert.ok(late.length > 0, `a coroutine computing makes another wake late: ${JSON.stringify(body.tasks.map((t) => t.waiting))}`);
  assert.deepEqual(dom.stalls.sort(), late.sort(), 'one stall mark per late wait');
  assert.ok(body.result.stall_ms > 0);
  await page.$eval(fig, (f) => f.scrollIntoView());
  await page.screenshot({ path: join(ARTIFACTS, 'work-async.png') });
  assertClean(log);
});

test('work: Sweep io_ratio runs 5 comparisons in order and draws speedup per mode', async () => {
  const { page, log } = await openPage();
  await pickDemo(page, 'work');
  assert.equal(await page.$$eval('button[data-action="sweep"]', (b) => b.map((x) => x.closest('form').dataset.demo).join()),
    'work', 'only the work form can sweep');
  await fillForm(page, 'work', { tasks: 2, ms: 20, io_ratio: '0.5' });
  const pending = [];
  page.on('response', (r) => {
    if (r.url().startsWith(`${origin}/run/compare?`)) pending.push(r.json().then((body) => ({ url: r.url(), body })));
  });
  await page.click('#form-work button[data-action="sweep"]');
  await page.waitForFunction(() => {
    const f = document.querySelector('#compare figure.sweep');
    return f && f.dataset.points === '5' && !document.body.classList.contains('busy');
  }, null, { timeout: 20000 });
  const answers = await Promise.all(pending);
  assert.equal(answers.length, 5, 'five comparisons');
  const ratios = answers.map((a) => new URL(a.url).searchParams.get('io_ratio'));
  assert.deepEqual(ratios, ['0', '0.25', '0.5', '0.75', '1'], 'one after another, io_ratio rising');
  for (const a of answers) {
    const q = new URL(a.url).searchParams;
    assert.equal(q.get('demo'), 'work');
    assert.equal(q.get('tasks'), '2', 'the form\'s other parameters are kept');
    assert.equal(q.get('ms'), '20');
  }
  const chart = await page.$eval('#compare figure.sweep', (f) => ({
    cores: Number(f.dataset.cores),
    lines: [...f.querySelectorAll('polyline.sweep-line')].map((l) => [l.dataset.mode, l.getAttribute('points').split(' ').length]),
    points: [...f.querySelectorAll('circle.sweep-point')].map((c) => [c.dataset.mode, Number(c.dataset.ratio), Number(c.dataset.speedup)]),
    marker: f.querySelector('.cores-marker') ? Number(f.querySelector('.cores-marker').dataset.cores) : null,
  }));
  const modes = answers[0].body.modes;
  assert.deepEqual(chart.lines, modes.map((m) => [m, 5]), 'a line of 5 points per mode');
  const want = answers.flatMap((a, i) => a.body.runs.map((r) => [r.mode, [0, 0.25, 0.5, 0.75, 1][i], r.speedup]));
  assert.deepEqual([...chart.points].sort(), [...want].sort(), 'each dot is a speedup of the JSON');
  assert.equal(chart.cores, answers[0].body.cores);
  assert.equal(chart.marker, answers[0].body.cores, 'the cores marker');
  assert.match(await page.textContent('#status'), /^Done: swept io_ratio/);
  assert.equal(await page.textContent('#curl'), `curl '${answers[4].url}'`, 'the last comparison\'s curl line');
  await page.screenshot({ path: join(ARTIFACTS, 'sweep-desktop.png'), fullPage: true });
  assertClean(log);
});

test('compare over the budget: the server\'s message is shown', async () => {
  const { page, log } = await openPage();
  await pickDemo(page, 'sleep');
  await fillForm(page, 'sleep', { tasks: 1000, ms: 10000, mode: 'async' });
  const { resp, body } = await submit(page, 'sleep', 'compare');
  assert.equal(resp.status(), 400);
  assert.equal((await page.textContent('#error-message')), body.error.message);
  assert.equal(await page.inputValue('#sleep-tasks'), '1000');
  assertClean(log, [400]);
});

test('a value the server refuses: its 400 message verbatim, inputs kept', async () => {
  const { page, log } = await openPage();
  await pickDemo(page, 'prime');
  // The input's max would stop the browser from sending it: remove it.
  await page.evaluate(() => document.querySelector('#prime-limit').removeAttribute('max'));
  await fillForm(page, 'prime', { limit: 60000000, tasks: 3, mode: 'threads' });
  const { resp, body } = await submit(page, 'prime');
  assert.equal(resp.status(), 400);
  assert.match(body.error.message, /limit/);
  assert.ok(await page.isVisible('#error'));
  assert.equal(await page.textContent('#error-message'), body.error.message);
  assert.equal(await page.getAttribute('#error', 'role'), 'alert');
  assert.equal(await page.inputValue('#prime-limit'), '60000000');
  assert.equal(await page.inputValue('#prime-tasks'), '3');
  assert.equal(await page.inputValue('#prime-mode'), 'threads');
  assert.equal(JSON.parse(await page.textContent('#json')).error.status, 400, 'the error body is shown');
  assert.equal(await page.locator('figure.timeline').count(), 0, 'no stale timeline');
  assertClean(log, [400]);
});

test('the curl command is the request made, and copy works', async () => {
  const { page, log, context } = await openPage();
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin });
  const target = `${origin}/delay?ms=1`;
  await pickDemo(page, 'fetch');
  await page.fill('#fetch-url', target);
  await page.selectOption('#fetch-mode', 'threads');
  const { resp, body } = await submit(page, 'fetch');
  assert.equal(resp.status(), 200);
  const curl = await page.textContent('#curl');
  assert.equal(curl, `curl '${resp.url()}'`);
  assert.equal(new URL(resp.url()).searchParams.get('url'), target);
  assert.equal(new URL(resp.url()).searchParams.get('count'), null, 'count not sent with URLs');
  assert.deepEqual(body.params.url, [target]);
  if (existsSync('/usr/bin/curl')) {
    const out = execFileSync('sh', ['-c', `${curl} -s`], { encoding: 'utf8', timeout: 5000 });
    const viaShell = JSON.parse(out);
    assert.equal(viaShell.mode, 'threads');
    assert.deepEqual(viaShell.params, body.params, 'the shell runs the same request');
  }
  await page.click('#copy-json');
  await page.waitForFunction(() => /Copied|failed/.test(document.querySelector('#copy-status').textContent));
  assert.match(await page.textContent('#copy-status'), /Copied the JSON/);
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  assert.deepEqual(JSON.parse(copied), body);
  await page.click('#copy-curl');
  await page.waitForFunction(() => /curl command/.test(document.querySelector('#copy-status').textContent));
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), curl);
  assertClean(log);
});

// 5,000 numbers make a query of about 30 KB: the page sends them as a POST
// with a JSON body instead (the request and its curl line checked).
function squareList(n, scale) {
  return Array.from({ length: n }, (_, i) => (i % 2 ? -1 : 1) * ((i * scale) % 3037000499));
}

async function submitPost(page, demo, path) {
  const [req, resp] = await Promise.all([
    page.waitForRequest((r) => r.url() === `${origin}${path}`),
    page.waitForResponse((r) => r.url() === `${origin}${path}`),
    page.click(`#form-${demo} button[value="run"]`),
  ]);
  const body = await answerOf(resp, page);
  await page.waitForFunction(() => !document.body.classList.contains('busy'));
  return { req, resp, body };
}

test('square, 5,000 numbers: sent by POST as JSON, its timeline drawn', async () => {
  const { page, log } = await openPage();
  const numbers = squareList(5000, 7919);
  await pickDemo(page, 'square');
  await fillForm(page, 'square', { numbers: numbers.join(','), tasks: 4, mode: 'threads' });
  const { req, resp, body } = await submitPost(page, 'square', '/run/square');
  assert.equal(req.method(), 'POST');
  assert.match(req.headers()['content-type'], /^application\/json/);
  assert.deepEqual(req.postDataJSON(), { numbers, tasks: 4, mode: 'threads' });
  assert.equal(resp.status(), 200, JSON.stringify(body).slice(0, 300));
  assert.equal(body.mode, 'threads');
  assert.deepEqual(body.params.numbers, numbers);
  assert.deepEqual(body.result.squares, numbers.map((n) => n * n));
  assert.equal(body.tasks.length, 4);
  checkTimeline(await readTimeline(page, 'figure.timeline[data-mode="threads"]'), body);
  assert.match(await page.textContent('#summary'), /square in threads mode/);
  assert.match(await page.textContent('#summary'), /\(5000 in all\)/);
  const curl = await page.textContent('#curl');
  const want = `curl -X POST -H 'Content-Type: application/json' -d '${req.postData()}' '${origin}/run/square'`;
  assert.equal(curl, want, 'the curl line is the POST made');
  if (existsSync('/usr/bin/curl')) {
    const out = execFileSync('sh', ['-c', `${curl} -s`], { encoding: 'utf8', timeout: 10000, maxBuffer: 1 << 24 });
    assert.deepEqual(JSON.parse(out).result, body.result, 'the shell runs the same request');
  }
  // A short list still goes as a GET.
  await fillForm(page, 'square', { numbers: '2,3', tasks: 1 });
  const { resp: short } = await submit(page, 'square');
  assert.equal(short.request().method(), 'GET');
  assert.equal(new URL(short.url()).searchParams.get('numbers'), '2,3');
  assert.equal(await page.textContent('#curl'), `curl '${short.url()}'`);
  assertClean(log);
});

test('a long list the server refuses by POST: its 400 message, inputs kept', async () => {
  const { page, log } = await openPage();
  const numbers = squareList(5000, 13);
  const text = `${numbers.join(',')},3037000500`;
  await pickDemo(page, 'square');
  await fillForm(page, 'square', { numbers: text, tasks: 2, mode: 'processes' });
  const { req, resp, body } = await submitPost(page, 'square', '/run/square');
  assert.equal(req.method(), 'POST');
  assert.equal(resp.status(), 400);
  assert.match(body.error.message, /^parameter 'numbers': item 5001 \('3037000500'\)/);
  assert.ok(await page.isVisible('#error'));
  assert.equal(await page.textContent('#error-message'), body.error.message);
  assert.equal(await page.inputValue('#square-numbers'), text);
  assert.equal(await page.inputValue('#square-tasks'), '2');
  assert.equal(await page.inputValue('#square-mode'), 'processes');
  assert.equal(await page.locator('figure.timeline').count(), 0, 'no stale timeline');
  assertClean(log, [400]);
});

test('the Table view: /run/table drawn beside the tutorials\' words, a mark and a rerun per cell', async () => {
  const { page, log } = await openPage();
  assert.ok(await page.isVisible('#table-run'), 'the Table view offers its button');
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${origin}/run/table`, { timeout: 20000 }),
    page.click('#table-run'),
  ]);
  assert.equal(resp.status(), 200);
  const body = await resp.json();
  await page.waitForSelector('table.claims tbody tr');
  // One row per row of the answer, the tutorials' words beside each.
  const rows = await page.$$eval('table.claims tbody tr', (trs) => trs.map((tr) => ({
    id: tr.dataset.row,
    words: tr.querySelector('blockquote.tutorials').textContent,
    cells: [...tr.querySelectorAll('td')].map((td) => ({
      column: td.dataset.column,
      holds: td.dataset.holds,
      figure: td.querySelector('.fig-value').textContent,
      request: td.querySelector('a.request').getAttribute('href'),
      reason: td.querySelector('.reason') ? td.querySelector('.reason').textContent : null,
      rerun: !!td.querySelector('button.rerun'),
    })),
  })));
  assert.deepEqual(rows.map((r) => r.id), body.rows.map((r) => r.id), 'a row per row, in order');
  const heads = await page.$$eval('table.claims thead th[data-column]', (ths) => ths.map((th) => th.dataset.column));
  assert.deepEqual(heads, body.columns, 'a column per column');
  const want = { true: 'holds', false: 'fails', null: 'none' };
  body.rows.forEach((row, i) => {
    assert.equal(rows[i].words, row.tutorials, `${row.id}: the tutorials' words`);
    row.cells.forEach((cell, k) => {
      const dom = rows[i].cells[k];
      const where = `${row.id}/${cell.column}`;
      assert.equal(dom.column, cell.column, where);
      assert.equal(dom.request, cell.request, `${where}: its reproducing request`);
      assert.ok(dom.rerun, `${where}: a rerun button`);
      if (cell.available) {
        assert.equal(dom.holds, want[String(cell.holds)], `${where}: its mark`);
        assert.notEqual(dom.figure, 'n/a', `${where}: its figure`);
      } else {
        assert.equal(dom.holds, 'na', `${where}: marked not measured`);
        assert.equal(dom.reason, cell.reason, `${where}: the reason shown`);
      }
    });
  });
  // A rerun of the threads start-up cell: the same request, a new figure.
  const sel = 'td[data-row="startup"][data-column="threads"]';
  const cell = body.rows.find((r) => r.id === 'startup').cells.find((c) => c.column === 'threads');
  const [again] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${origin}${cell.request}`),
    page.click(`${sel} button.rerun`),
  ]);
  const againBody = await again.json();
  await page.waitForFunction((s) => document.querySelector(`${s} .rerun-figure`).dataset.value !== undefined &&
    document.querySelector(`${s} .rerun-figure`).dataset.value !== '', sel);
  const shown = Number(await page.$eval(`${sel} .rerun-figure`, (e) => e.dataset.value));
  assert.equal(shown, againBody.startup_us.median, 'the rerun\'s figure is its answer\'s median');
  assert.equal(await page.textContent('#curl'), `curl '${origin}${cell.request}'`);
  await page.screenshot({ path: join(ARTIFACTS, 'table-desktop.png'), fullPage: true });
  assertClean(log);
});

test('at 375 px wide the page does not scroll sideways', async () => {
  const { page, log } = await openPage(375, 812);
  await noHorizontalScroll(page);
  const { body } = await runDemo(page, 'prime', { limit: 1500000, tasks: 2 }, 'compare');
  assert.equal(await page.locator('#timelines figure.timeline').count(), body.runs.length);
  await noHorizontalScroll(page);
  const svgWidths = await page.$$eval('svg', (s) => s.map((e) => e.getBoundingClientRect().right));
  assert.ok(svgWidths.every((r) => r <= 375), `an SVG overflows: ${svgWidths}`);
  await page.screenshot({ path: join(ARTIFACTS, 'phone.png'), fullPage: true });
  // Turning the phone: the drawings are redone at the new width.
  const svgWidth = () => page.$eval('#timelines svg', (e) => e.getBoundingClientRect().width);
  const narrow = await svgWidth();
  await page.setViewportSize({ width: 812, height: 375 });
  await page.waitForFunction((w) => document.querySelector('#timelines svg').getBoundingClientRect().width > w + 100, narrow);
  await page.setViewportSize({ width: 375, height: 812 });
  await page.waitForFunction((w) => Math.abs(document.querySelector('#timelines svg').getBoundingClientRect().width - w) < 2, narrow);
  await noHorizontalScroll(page);
  assertClean(log);
});

test('keyboard: pick a demo with arrows, Tab to Run, Enter runs it', async () => {
  const { page, log } = await openPage();
  await page.focus('#demo-prime');
  await page.keyboard.press('ArrowRight');
  assert.ok(await page.isVisible('#form-square'), 'ArrowRight picks the next demo');
  await page.keyboard.press('ArrowLeft');
  assert.ok(await page.isVisible('#form-prime'));
  await page.fill('#prime-limit', '100000');
  await page.fill('#prime-tasks', '2');
  await page.focus('#demo-prime');
  let onRun = false;
  for (let i = 0; i < 12 && !onRun; i++) {
    await page.keyboard.press('Tab');
    onRun = await page.evaluate(() =>
      document.activeElement === document.querySelector('#form-prime button[value="run"]'));
  }
  assert.ok(onRun, 'Tab reaches the Run button');
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(outline, 'none', 'focused button shows a focus ring');
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.url().startsWith(`${origin}/run/prime`)),
    page.keyboard.press('Enter'),
  ]);
  assert.equal(resp.status(), 200);
  await page.waitForFunction(() => !document.body.classList.contains('busy'));
  checkTimeline(await readTimeline(page, 'figure.timeline'), await answerOf(resp));
  assert.match(await page.textContent('#status'), /^Done/);
  assertClean(log);
});

test('every demo\'s form follows the live /openapi.json: demos, bounds, defaults, modes', async () => {
  const { page, log } = await openPage();
  const doc = await openapiOf();
  const specs = demoSpecs(doc);
  const picker = await page.$$eval('#demo-picker input[name="demo"]', (rs) => rs.map((r) => r.value));
  assert.deepEqual(picker, specs.map((d) => d.name), 'the picker lists compare.demo\'s enum, in order');
  for (const d of specs) {
    await pickDemo(page, d.name);
    const form = `#form-${d.name}`;
    const label = d.op['x-conlab-label'];
    assert.equal(await page.textContent(`label[for="demo-${d.name}"]`), label ? `${d.name} ${label}` : d.name);
    const lesson = (d.op['x-conlab-lesson'] || d.op.description).trim().replace(/`/g, '').replace(/\s*\n\s*\n\s*/g, '');
    assert.equal((await page.$$eval(`${form} .explain`, (ps) => ps.map((p) => p.textContent).join(''))), lesson,
      `${d.name}: the lesson is the document's`);
    // Only the query parameters become fields, and all of them do.
    const names = await page.$$eval(`${form} [name]:not(button)`, (els) => els.map((e) => e.name));
    assert.deepEqual([...names].sort(), d.params.map((p) => p.name).sort(), `${d.name}: one field per query parameter`);
    assert.equal(await page.getAttribute(form, 'data-modes'), d.modes ? d.modes.join(' ') : '');
    assert.equal(await page.locator(`${form} button[value="compare"]`).count(), d.modes && d.modes.length > 1 ? 1 : 0);
    for (const p of d.params) {
      const sel = `#${d.name}-${p.name}`;
      const f = await page.$eval(sel, (e) => ({
        tag: e.tagName.toLowerCase(), type: e.type, min: e.getAttribute('min'), max: e.getAttribute('max'),
        value: e.value, dflt: e.getAttribute('data-default'), from: e.getAttribute('data-default-from'),
        options: e.tagName === 'SELECT' ? [...e.options].map((o) => o.value) : null,
        label: document.querySelector(`label[for="${e.id}"]`) ? document.querySelector(`label[for="${e.id}"]`).textContent : null,
        hint: e.getAttribute('aria-describedby') ? document.getElementById(e.getAttribute('aria-describedby')).textContent : '',
      }));
      const what = `${d.name}.${p.name}`;
      const s = p.schema;
      assert.ok(f.label && f.label.startsWith(p.name), `${what}: labelled by its name (${f.label})`);
      const dflt = s.default === undefined ? null : Array.isArray(s.default) ? s.default.join(',') : String(s.default);
      assert.equal(f.dflt, dflt, `${what}: data-default is the schema's default`);
      assert.equal(f.from, p['x-conlab-default-from'] || null, `${what}: data-default-from`);
      if (p['x-conlab-form-value'] !== undefined) {
        const fv = p['x-conlab-form-value'];
        assert.equal(f.value, Array.isArray(fv) ? fv.join(s.type === 'array' && p.explode !== false ? '\n' : ',') : String(fv),
          `${what}: starts with x-conlab-form-value`);
      }
      if (s.enum) {
        assert.equal(f.tag, 'select');
        assert.deepEqual(f.options, s.enum, `${what}: the options are the enum`);
        assert.equal(f.value, p['x-conlab-form-value'] !== undefined ? String(p['x-conlab-form-value']) : String(s.default ?? s.enum[0]),
          `${what}: the default is selected`);
      } else if (s.type === 'integer' && p['x-conlab-max-from']) {
        // cores: the server's CPUs bound it; empty asks for the API default.
        assert.equal(f.type, 'number');
        assert.equal(f.min, String(s.minimum), `${what}: min`);
        assert.equal(f.max, null, `${what}: no max of its own`);
        assert.equal(f.value, '', `${what}: starts empty (the API default: all)`);
        assert.ok(f.hint.includes(p['x-conlab-max-from']), `${what}: the hint names the bound (${f.hint})`);
      } else if (s.type === 'integer') {
        assert.equal(f.type, 'number');
        assert.equal(f.min, String(s.minimum), `${what}: min`);
        const modeNow = d.mode ? await page.inputValue(`#${d.name}-mode`) : null;
        const byMode = p['x-conlab-max-by-mode'];
        let max = byMode && byMode[modeNow] !== undefined ? byMode[modeNow] : s.maximum;
        if (p['x-conlab-max-count-of']) {
          const of = await page.inputValue(`#${d.name}-${p['x-conlab-max-count-of']}`);
          max = Math.max(s.minimum, Math.min(max, of.split(',').filter((x) => x.trim()).length));
        }
        assert.equal(f.max, String(max), `${what}: max`);
        assert.ok(f.hint.includes(`${fmtN(s.minimum)} – ${fmtN(max)}`), `${what}: the hint shows the range (${f.hint})`);
        const v = Number(f.value);
        assert.ok(Number.isInteger(v) && v >= s.minimum && v <= max, `${what}: starts within its bounds (${f.value})`);
        if (byMode) {
          for (const m of d.modes) {
            await page.selectOption(`#${d.name}-mode`, m);
            const want = byMode[m] !== undefined ? byMode[m] : s.maximum;
            assert.equal(await page.getAttribute(sel, 'max'), String(want), `${what}: max in mode ${m}`);
            assert.ok(f.hint.includes(`${fmtN(s.minimum)} – ${fmtN(want)}`), `${what}: the hint names ${m}'s range`);
          }
          await page.selectOption(`#${d.name}-mode`, modeNow);
        }
      } else if (s.type === 'array') {
        assert.equal(f.tag, p.explode === false ? 'input' : 'textarea', `${what}: comma list or one per line`);
        assert.ok(f.hint.includes(`${fmtN(s.minItems)} – ${fmtN(s.maxItems)}`), `${what}: the hint shows the count (${f.hint})`);
        if (s.items && s.items.maximum !== undefined) {
          assert.ok(f.hint.includes(fmtN(s.items.maximum)), `${what}: the hint shows the items' bound (${f.hint})`);
        }
      }
    }
  }
  assertClean(log);
});

test('fields that depend on each other follow the document\'s extensions', async () => {
  const { page, log } = await openPage();
  const doc = await openapiOf();
  let checked = 0;
  for (const d of demoSpecs(doc)) {
    await pickDemo(page, d.name);
    // x-conlab-max-count-of: at most as many as the other list has items.
    for (const p of d.params.filter((q) => q['x-conlab-max-count-of'])) {
      await page.fill(`#${d.name}-${p['x-conlab-max-count-of']}`, '7,8,9');
      assert.equal(await page.getAttribute(`#${d.name}-${p.name}`, 'max'), String(Math.min(3, p.schema.maximum)));
      assert.match(await page.textContent(`#${d.name}-${p.name}-hint`), new RegExp(`^${fmtN(p.schema.minimum)} – 3 `));
      checked += 1;
    }
    // x-conlab-exclusive: filling an alternative greys out the other group,
    // which is then neither required nor sent.
    const groups = d.op['x-conlab-exclusive'] || [];
    for (const alt of groups.slice(1)) {
      const first = groups[0];
      for (const n of first) {
        assert.equal(await page.$eval(`#${d.name}-${n}`, (e) => e.closest('.field').classList.contains('unused')), false);
        assert.equal(await page.$eval(`#${d.name}-${n}`, (e) => e.required), true, `${n} required at first`);
      }
      assert.match(await page.textContent(`label[for="${d.name}-${alt[0]}"]`), /instead \(optional\)/);
      await page.fill(`#${d.name}-${alt[0]}`, `${origin}/delay?ms=1`);
      for (const n of first) {
        assert.equal(await page.$eval(`#${d.name}-${n}`, (e) => e.closest('.field').classList.contains('unused')), true, `${n} greyed out`);
        assert.equal(await page.$eval(`#${d.name}-${n}`, (e) => e.required), false, `${n} no longer required`);
      }
      await page.fill(`#${d.name}-${alt[0]}`, '');
      for (const n of first) {
        assert.equal(await page.$eval(`#${d.name}-${n}`, (e) => e.closest('.field').classList.contains('unused')), false);
      }
      checked += 1;
    }
  }
  assert.ok(checked >= 2, `the live document has a max-count-of and an exclusive group (${checked} checked)`);
  assertClean(log);
});

// A copy of the live document with one more demo, as the registry would
// publish it: "extra", one integer parameter with a bound per mode, two modes;
// and "ghost", listed in compare.demo but with no path.
function withExtraDemo(doc) {
  const d = JSON.parse(JSON.stringify(doc));
  d.components.parameters['compare.demo'].schema.enum.push('extra', 'ghost');
  d.components.parameters['extra.n'] = {
    name: 'n', in: 'query', required: false, description: 'How many `things` to make.',
    schema: { type: 'integer', format: 'int64', minimum: 3, maximum: 77, default: 5 },
    example: 4, 'x-conlab-form-value': 9, 'x-conlab-max-by-mode': { one: 10, two: 77 },
  };
  d.components.parameters['extra.mode'] = {
    name: 'mode', in: 'query', required: false, description: 'One way or the other.',
    schema: { type: 'string', enum: ['one', 'two'], default: 'two' },
  };
  d.paths['/run/extra'] = {
    get: {
      summary: 'An extra demo', description: 'Not the lesson.',
      'x-conlab-lesson': 'Look for: two lanes side by side.', 'x-conlab-label': 'new',
      parameters: [
        { $ref: '#/components/parameters/extra.n' },
        { $ref: '#/components/parameters/extra.mode' },
        { $ref: '#/components/parameters/X-Request-Id' },
      ],
      responses: { 200: { description: 'The run.' } },
    },
  };
  return d;
}

test('a demo added to the document appears, with its bounds and modes, and runs', async () => {
  const extraRun = {
    demo: 'extra', mode: 'two', params: { n: 9 }, result: { things: 9 }, wall_ms: 4.5,
    tasks: [
      { id: 0, worker: { kind: 'thread', id: 0 }, start_ms: 0.1, end_ms: 2.0 },
      { id: 1, worker: { kind: 'thread', id: 1 }, start_ms: 0.2, end_ms: 4.4 },
    ],
  };
  const seen = [];
  const { page, log } = await openPage(1280, 900, {
    demos: 'partial',
    before: async (p) => {
      await p.route(`${origin}/openapi.json`, async (route) => {
        const real = await route.fetch();
        await route.fulfill({ response: real, json: withExtraDemo(await real.json()) });
      });
      await p.route((u) => u.pathname === '/run/extra', async (route) => {
        seen.push(route.request().url());
        await route.fulfill({ status: 200, contentType: 'application/json; charset=utf-8', body: JSON.stringify(extraRun) });
      });
    },
  });
  const real = demoSpecs(await openapiOf()).map((d) => d.name);
  const picker = await page.$$eval('#demo-picker input[name="demo"]', (rs) => rs.map((r) => r.value));
  assert.deepEqual(picker, [...real, 'extra'], 'the new demo comes last, as in the enum; ghost is left out');
  assert.match(await page.textContent('#demo-load-text'), /Not offered: ghost/);
  assert.equal(await page.textContent('label[for="demo-extra"]'), 'extra new');
  await pickDemo(page, 'extra');
  assert.equal(await page.textContent('#form-extra .explain'), 'Look for: two lanes side by side.');
  assert.equal(await page.textContent('#form-extra-h'), 'An extra demo');
  const n = await page.$eval('#extra-n', (e) => ({ min: e.min, max: e.max, value: e.value, dflt: e.dataset.default, type: e.type }));
  assert.deepEqual(n, { min: '3', max: '77', value: '9', dflt: '5', type: 'number' });
  assert.equal(await page.textContent('#extra-n-hint'), '3 – 10 in one, 3 – 77 otherwise');
  assert.deepEqual(await page.$$eval('#extra-mode option', (os) => os.map((o) => o.value)), ['one', 'two']);
  assert.equal(await page.inputValue('#extra-mode'), 'two');
  await page.selectOption('#extra-mode', 'one');
  assert.equal(await page.getAttribute('#extra-n', 'max'), '10', 'mode one\'s maximum');
  await page.selectOption('#extra-mode', 'two');
  assert.equal(await page.getAttribute('#extra-n', 'max'), '77');
  assert.equal(await page.locator('#form-extra [name="X-Request-Id"]').count(), 0, 'header parameters are not fields');
  assert.equal(await page.locator('#form-extra button[value="compare"]').count(), 1);
  // Its parameter is documented in the form.
  await page.click('#form-extra details.param-docs summary');
  assert.match(await page.textContent('#form-extra details.param-docs'), /How many things to make\. API default: 5\./);
  // Run: the request the page makes is the new demo's, and its run is drawn.
  const { resp, body } = await submit(page, 'extra');
  assert.equal(resp.status(), 200);
  assert.deepEqual(seen, [`${origin}/run/extra?n=9&mode=two`]);
  assert.equal(await page.textContent('#curl'), `curl '${origin}/run/extra?n=9&mode=two'`);
  const dom = await readTimeline(page, 'figure.timeline[data-mode="two"]');
  checkTimeline(dom, body);
  assert.equal(dom.demo, 'extra');
  assert.match(await page.textContent('#summary'), /^extra in two mode/);
  assertClean(log);
});

test('when /openapi.json cannot be read, the page says so and can try again', async () => {
  let refusals = 0;
  const { page, log } = await openPage(1280, 900, {
    demos: 'failed',
    before: async (p) => {
      await p.route(`${origin}/openapi.json`, async (route) => {
        if (refusals === 0) {
          refusals += 1;
          await route.fulfill({
            status: 503, contentType: 'application/json; charset=utf-8',
            body: JSON.stringify({ error: { status: 503, message: 'shutting down' } }),
          });
        } else {
          await route.continue();
        }
      });
    },
  });
  assert.equal(await page.getAttribute('#demo-load-text', 'role'), 'alert');
  assert.match(await page.textContent('#demo-load-text'), /Could not read the demos from \/openapi\.json: HTTP 503/);
  assert.equal(await page.locator('.demo-form').count(), 0, 'no form without the document');
  assert.equal(await page.getAttribute('#live-pill', 'data-state'), 'ok', 'the live state works all the same');
  await page.click('#demo-load-retry');
  await page.waitForSelector('#demo-load[data-state="ready"]', { state: 'attached' });
  assert.ok(await page.isHidden('#demo-load'));
  assert.ok(await page.isVisible('#form-prime'));
  await runDemo(page, 'prime', { limit: 100000, tasks: 2, mode: 'threads' });
  assertClean(log, [503]);
});

// ---- The shared-state views (web/state.js) ----------------------------------

// What the counter view drew: its rows and bars, read back from the DOM.
function readCounterView(page) {
  return page.$eval('#state-view figure.counter-view', (f) => ({
    kind: f.dataset.kind,
    rows: [...f.querySelectorAll('tr[data-mode]')].map((r) => ({
      mode: r.dataset.mode, sync: r.dataset.sync, expected: Number(r.dataset.expected),
      final: Number(r.dataset.final), lost: Number(r.dataset.lost),
    })),
    finals: [...f.querySelectorAll('rect.count-bar[data-what="final"]')].map((r) =>
      [r.dataset.mode, r.dataset.sync, Number(r.dataset.value), r.classList.contains('lost')]),
    costs: [...f.querySelectorAll('rect.cost-bar')].map((r) => [r.dataset.mode, r.dataset.sync, Number(r.dataset.ns)]),
  }));
}

test('counter: expected against final drawn from the JSON, then every mode and sync', async () => {
  const { page, log } = await openPage();
  const { body } = await runDemo(page, 'counter', { tasks: 2, increments: 200000, mode: 'threads', sync: 'none' });
  assert.equal(body.params.sync, 'none');
  checkTimeline(await readTimeline(page, 'figure.timeline[data-mode="threads"]'), body);
  let view = await readCounterView(page);
  assert.equal(view.kind, 'run');
  const r = body.result;
  assert.deepEqual(view.rows, [{ mode: 'threads', sync: 'none', expected: r.expected, final: r.final, lost: r.lost }]);
  assert.deepEqual(view.finals, [['threads', 'none', r.final, r.lost > 0]], 'the final bar, red when updates were lost');
  assert.equal(view.costs.length, 1);
  assert.equal(await page.textContent('#curl'),
    `curl '${origin}/run/counter?tasks=2&increments=200000&sync=none&mode=threads'`);

  // The sweep: one comparison per sync, 4 modes each, drawn together.
  const bodies = [];
  page.on('response', async (resp) => {
    if (resp.url().startsWith(`${origin}/run/compare?`)) bodies.push(await resp.json());
  });
  await page.click('#form-counter button[value="syncs"]');
  await page.waitForSelector('#state-view figure.counter-view[data-kind="syncs"]');
  await page.waitForFunction(() => !document.body.classList.contains('busy'));
  assert.equal(bodies.length, 3, 'one /run/compare per sync');
  assert.deepEqual(bodies.map((b) => b.params.sync).sort(), ['atomic', 'lock', 'none']);
  view = await readCounterView(page);
  const runs = bodies.flatMap((b) => b.runs);
  assert.equal(view.rows.length, 12, 'every mode and sync');
  for (const run of runs) {
    const row = view.rows.find((x) => x.mode === run.mode && x.sync === run.result.sync);
    assert.ok(row, `a row for ${run.mode} ${run.result.sync}`);
    assert.equal(row.final, run.result.final);
    assert.equal(row.expected, run.result.expected);
    if (run.result.sync !== 'none' || run.mode === 'sequential' || run.mode === 'async') {
      assert.equal(row.lost, 0, `${run.mode} ${run.result.sync} loses nothing`);
    }
  }
  const procNone = view.rows.find((x) => x.mode === 'processes' && x.sync === 'none');
  assert.equal(procNone.final, 0, 'separate processes: the service\'s counter stays 0');
  const procNoneBar = view.finals.find((f) => f[0] === 'processes' && f[1] === 'none');
  assert.deepEqual(procNoneBar, ['processes', 'none', 0, false], 'separate memory is not drawn as lost updates');
  assert.equal(view.costs.length, 12, 'a cost bar per mode and sync');
  assert.equal((await page.textContent('#curl')).split('\n').length, 3, 'the three curl lines');
  await page.screenshot({ path: join(ARTIFACTS, 'counter-sweep.png'), fullPage: true });
  assertClean(log);
});

test('deadlock opposite: holding and waiting drawn on the timeline, the cycle named', async () => {
  const { page, log } = await openPage();
  const { body } = await runDemo(page, 'deadlock', { order: 'opposite', hold_ms: 80, mode: 'threads' });
  assert.equal(body.result.deadlocked, true);
  checkTimeline(await readTimeline(page, 'figure.timeline[data-demo="deadlock"]'), body);
  const drawn = await page.$$eval('figure.timeline[data-demo="deadlock"] rect.lock-seg', (rs) =>
    rs.map((r) => [Number(r.dataset.task), r.dataset.lock, r.dataset.state, r.closest('g.lane').dataset.lane]));
  const want = body.tasks.flatMap((t) => t.segments.map((s) => [t.id, s.lock, s.state, `${t.worker.kind}:${t.worker.id}`]));
  assert.deepEqual(drawn.sort(), want.sort(), 'one segment per lock held or waited for, in its task\'s lane');
  assert.ok(drawn.some((d) => d[2] === 'waiting') && drawn.some((d) => d[2] === 'holding'));
  const cycle = await page.$eval('p.wait-cycle', (p) => ({ data: p.dataset.cycle, text: p.textContent, dl: p.dataset.deadlocked }));
  assert.equal(cycle.dl, 'true');
  assert.equal(cycle.data, body.result.cycle.map((e) => `${e.task}:${e.holds}>${e.waits_for}`).join(' '));
  for (const e of body.result.cycle) {
    assert.ok(cycle.text.includes(`task ${e.task} holds ${e.holds} and waits for ${e.waits_for}`), cycle.text);
  }
  await page.screenshot({ path: join(ARTIFACTS, 'deadlock.png'), fullPage: true });

  // same: both finish, no cycle; compare draws each mode's segments.
  const same = await runDemo(page, 'deadlock', { order: 'same', hold_ms: 30, mode: 'threads' });
  assert.equal(same.body.result.deadlocked, false);
  assert.equal(await page.getAttribute('p.wait-cycle', 'data-deadlocked'), 'false');
  assert.match(await page.textContent('p.wait-cycle'), /No deadlock: 2 of 2 tasks took both locks/);
  const cmp = await runDemo(page, 'deadlock', { order: 'opposite', hold_ms: 30 }, 'compare');
  assert.deepEqual(cmp.body.runs.map((r) => r.mode), ['sequential', 'threads']);
  const notes = await page.$$eval('p.wait-cycle', (ps) => ps.map((p) => [p.dataset.mode, p.dataset.deadlocked]));
  assert.deepEqual(notes, [['sequential', 'false'], ['threads', 'true']]);
  const health = await healthOf();
  assert.equal(health.pools.threads.alive, health.pools.threads.configured, 'the demo thread pool is whole');
  assertClean(log);
});

// ---- Runner ------------------------------------------------------------------

function withTimeout(promise, ms, name) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${name}: timed out after ${ms} ms`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

async function cleanup() {
  const b = browser;
  browser = null;
  if (b) {
    try { await withTimeout(b.close(), 5000, 'closing the browser'); } catch { /* the launcher kills it at exit */ }
  }
  return stopServer();
}

let stopping = false;
process.on('exit', killServerNow);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    stopping = true;
    console.error(`received ${sig}, stopping`);
    cleanup().finally(() => process.exit(130));
  });
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  for (const [what, path] of [['binary', opts.binary], ['web root', opts.webRoot], ['chromium', opts.chromium]]) {
    if (!existsSync(path)) throw new Error(`${what} not found: ${path}`);
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  const selected = cases.filter((c) => c.name.includes(opts.only));
  let passed = 0;
  let failed = 0;
  const started = Date.now();
  try {
    origin = await startServer(opts.binary, opts.webRoot);
    browser = await chromium.launch({ executablePath: opts.chromium, args: CHROMIUM_ARGS });
    for (const [i, c] of selected.entries()) {
      if (stopping) break;
      const t0 = Date.now();
      const contextsBefore = new Set(browser.contexts());
      try {
        const note = await withTimeout(c.fn(), CASE_TIMEOUT_MS, c.name);
        passed += 1;
        console.log(`ok   ${i + 1} ${c.name} (${Date.now() - t0} ms)${typeof note === 'string' ? `: ${note}` : ''}`);
      } catch (e) {
        failed += 1;
        console.log(`FAIL ${i + 1} ${c.name} (${Date.now() - t0} ms)\n     ${String(e && e.stack || e).split('\n').slice(0, 8).join('\n     ')}`);
      } finally {
        for (const ctx of browser ? browser.contexts() : []) {
          if (!contextsBefore.has(ctx)) await ctx.close().catch(() => {});
        }
      }
    }
  } catch (e) {
    failed += 1;
    console.log(`FAIL setup: ${e && e.stack || e}`);
  } finally {
    const how = await cleanup();
    if (how && how.code !== 0) {
      console.log(`note: the server exited with code ${how.code}, signal ${how.signal}`);
    }
  }
  if (failed) {
    console.log('last server log lines:');
    for (const line of serverLog.slice(-15)) console.log(`  ${line}`);
  }
  console.log(`took ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${ARTIFACTS}`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
}

main().catch((e) => {
  console.log(`FAIL ${e && e.stack || e}`);
  console.log('0 passed, 1 failed');
  cleanup().finally(() => { process.exitCode = 1; });
});
