// The dashboard: one form per demo, a Run (one mode) or Compare (every mode)
// request, the timelines of what came back, the raw JSON and its curl line,
// and the service's live state from /health.
//
// The demos, their parameters, bounds and modes are the service's own: read
// from /openapi.json at load (forms.js builds the forms from it), so a demo
// added to the service appears here without a change to this page.
//
// Nothing here keeps state on the server; the page only issues GETs to the
// API it documents, and a POST with the same parameters as a JSON body when
// the query would be long (POST_TARGET_MAX) and the document offers a POST. The last successful body is kept so the drawings can be
// redone at a new width. A new request aborts the one in flight.
//
// Runs are read live (live.js): the request asks for an event stream, the
// timelines grow while the run goes on (drawn at most once per animation
// frame), and Stop closes the stream, which the service takes as the
// client leaving and cancels the run. The finished drawing is made from
// the final event, the very body the JSON request would have answered.

import { renderTimeline, renderCompareChart, niceMax, runExtent, fmtMs } from './timeline.js';
import { readDemos, buildDemoUi, syncForm, queryPairs, jsonBody } from './forms.js';
import { initTable } from './table.js';
import { renderStateView, addSweepButton, SYNCS, summarizeSweep } from './state.js';
import { attachSweep } from './sweep.js';
import { readEvents, LiveRun } from './live.js';

const HEALTH_EVERY_MS = 1500;
const JSON_SHOW_MAX = 200000;
const CELLS_MAX = 64;
// A request target longer than this goes as a POST with a JSON body, where
// the endpoint takes one: long targets cost the server's connection memory
// and are cut by proxies (the service's cap is 4 KiB, http.h HTTP_URI_MAX),
// and a body takes far longer lists (square's numbers: 1,000,000 in a
// body, about 1,200 in a query).
const POST_TARGET_MAX = 2048;

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

const state = {
  last: null,        // { kind: 'run'|'compare', body }
  jsonText: '',
  curlText: '',
  inFlight: null,    // AbortController
  tick: null,
  width: 0,
  live: null,        // LiveRun of the request in flight, if streamed
  tickText: null,    // the status line of the request in flight
  cores: 0,          // from /health, for the live comparison chart
};

// Live drawing: one frame at a time, and no more often than a few times
// what a drawing costs (a 10,000-task canvas may take tens of ms).
const LIVE_COST_FACTOR = 3;
let liveFrame = 0;
let liveLastDraw = 0;
let liveDrawCost = 0;

// ---- Building the request --------------------------------------------------

// encodeURIComponent leaves ' ( ) ! * alone; the curl line is single-quoted,
// so those are encoded too. , : / stay readable (they are legal in a query).
function enc(v) {
  return encodeURIComponent(v)
    .replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase())
    .replace(/%2C/g, ',').replace(/%3A/g, ':').replace(/%2F/g, '/');
}

// The request of a Run or a Compare: { path, body } where body is the JSON
// text of a POST, or null for a GET.
function buildRequest(form, action) {
  const query = queryPairs(form, action).map(([k, v]) => `${enc(k)}=${enc(v)}`).join('&');
  const base = action === 'compare' ? '/run/compare' : `/run/${enc(form.dataset.demo)}`;
  const path = query ? `${base}?${query}` : base;
  const canPost = action === 'compare' ? form.demo.comparePost : form.demo.post;
  if (path.length <= POST_TARGET_MAX || !canPost) return { path, body: null };
  return { path: base, body: jsonBody(form, action) };
}

// A shell word: single-quoted, a ' inside written as '\''.
function shellQuote(text) {
  return `'${text.replace(/'/g, "'\\''")}'`;
}

function curlFor(req) {
  const url = shellQuote(`${location.origin}${req.path}`);
  if (req.body === null) return `curl ${url}`;
  return `curl -X POST -H 'Content-Type: application/json' -d ${shellQuote(req.body)} ${url}`;
}

// ---- Form behaviour ----------------------------------------------------------

function showDemo(demo) {
  for (const f of $$('.demo-form')) f.hidden = f.dataset.demo !== demo;
}

// ---- The demos, from the service's OpenAPI document -------------------------

function loadState(stateName, text) {
  const box = $('#demo-load');
  box.dataset.state = stateName;
  box.hidden = stateName === 'ready';
  box.classList.toggle('error', stateName === 'failed');
  const p = $('#demo-load-text');
  p.setAttribute('role', stateName === 'failed' ? 'alert' : 'status');
  if (text !== undefined) p.textContent = text;
  $('#demo-load-retry').hidden = stateName !== 'failed';
}

function onFormSubmit(e) {
  e.preventDefault();
  const form = e.target;
  if (e.submitter && e.submitter.value === 'syncs') {
    runSweep(form);
    return;
  }
  const action = e.submitter && e.submitter.value === 'compare' ? 'compare' : 'run';
  const demo = form.dataset.demo;
  const mode = form.elements.namedItem('mode');
  const label = action === 'compare' ? `${demo} in every mode`
    : mode && mode.value ? `${demo} (${mode.value})` : demo;
  runRequest(buildRequest(form, action), action, label);
}

// Reads the document and builds the picker and the forms; on failure the
// page says why and offers to try again (the rest of the page still works).
async function loadDemos() {
  loadState('loading', 'Reading the demos from /openapi.json…');
  let demos;
  let skipped;
  try {
    const res = await fetch('/openapi.json', { headers: { Accept: 'application/json' } });
    if (!res.ok) throw new Error(`HTTP ${res.status} ${res.statusText}`.trim());
    ({ demos, skipped } = readDemos(await res.json()));
    if (!demos.length) throw new Error('it describes no /run/<demo> for any of its demos');
  } catch (e) {
    loadState('failed', `Could not read the demos from /openapi.json: ${e.message}.`);
    return;
  }
  buildDemoUi($('#demo-picker'), $('#demo-forms'), demos);
  for (const radio of $$('input[name="demo"]')) {
    radio.addEventListener('change', () => { if (radio.checked) showDemo(radio.value); });
  }
  for (const form of $$('.demo-form')) {
    addSweepButton(form);
    const sync = () => syncForm(form);
    form.addEventListener('input', sync);
    form.addEventListener('change', sync);
    form.addEventListener('submit', onFormSubmit);
    attachSweep(form, sweepHost);
  }
  if (skipped.length) {
    loadState('partial', `Not offered: ${skipped.join(', ')} (the API document has no GET /run/ path for ` +
      `${skipped.length === 1 ? 'it' : 'them'}).`);
  } else {
    loadState('ready');
  }
}

// ---- Running ----------------------------------------------------------------

function setStatus(text) {
  $('#status').textContent = text;
}

function showError(status, message) {
  $('#error-status').textContent = status ? `Error ${status}:` : 'Error:';
  $('#error-message').textContent = message;
  $('#error').hidden = false;
}

function clearError() {
  $('#error').hidden = true;
  $('#error-status').textContent = '';
  $('#error-message').textContent = '';
}

function showJson(body, rawText) {
  const text = body !== undefined ? JSON.stringify(body, null, 2) : rawText;
  state.jsonText = text;
  const pre = $('#json');
  if (text.length > JSON_SHOW_MAX) {
    pre.textContent = text.slice(0, JSON_SHOW_MAX) +
      `\n… (${(text.length - JSON_SHOW_MAX).toLocaleString('en-US')} more characters; Copy JSON copies all of it)`;
  } else {
    pre.textContent = text;
  }
}

async function runRequest(req, action, label) {
  if (state.inFlight) state.inFlight.abort();
  const ctl = new AbortController();
  state.inFlight = ctl;
  clearError();
  state.curlText = curlFor(req);
  $('#curl').textContent = state.curlText;
  $('#cancel').hidden = false;
  document.body.classList.add('busy');
  const t0 = performance.now();
  state.live = null;
  const tickText = () => `Running ${label}… ${((performance.now() - t0) / 1000).toFixed(1)} s` +
    (state.live ? ` · ${state.live.progressText()}` : '');
  state.tickText = tickText;
  setStatus(tickText());
  clearInterval(state.tick);
  state.tick = setInterval(() => { $('#status').textContent = tickText(); }, 250);

  let res;
  let text;
  let status;
  try {
    const headers = { Accept: 'text/event-stream, application/json;q=0.9' };
    const init = { signal: ctl.signal, headers, cache: 'no-store' };
    if (req.body !== null) {
      init.method = 'POST';
      headers['Content-Type'] = 'application/json';
      init.body = req.body;
    }
    res = await fetch(req.path, init);
    status = res.status;
    if (res.ok && (res.headers.get('Content-Type') || '').startsWith('text/event-stream')) {
      const live = new LiveRun(action, t0);
      state.live = live;
      await readEvents(res, (name, data) => {
        live.onEvent(name, data);
        if (state.inFlight === ctl && !liveFrame) liveFrame = requestAnimationFrame((ts) => drawLive(ts, ctl));
      });
      if (!live.final) throw new Error('the event stream ended before its final event');
      text = JSON.stringify(live.final.body);
      if (live.final.name === 'error') status = (live.final.body.error || {}).status || 500;
    } else {
      text = await res.text();
    }
  } catch (e) {
    if (state.inFlight === ctl) {
      finishRequest();
      if (e.name === 'AbortError') setStatus(`Stopped ${label}: the service cancels the run.`);
      else { setStatus(`${label}: no answer.`); showError(0, `could not reach the service: ${e.message}`); }
    }
    return;
  }
  if (state.inFlight !== ctl) return;
  finishRequest();

  let body;
  try { body = JSON.parse(text); } catch { body = undefined; }
  showJson(body, text);
  const took = ((performance.now() - t0) / 1000).toFixed(2);
  if (status !== 200 || !body || body.error) {
    const msg = body && body.error && body.error.message ? body.error.message : `HTTP ${status} ${res.statusText}`;
    showError(status, msg);
    setStatus(`${label} failed with status ${status}.`);
    state.last = null;
    renderResults();
    $('#summary').textContent = 'No result: the last request failed (the error is above, its JSON below).';
    return;
  }
  state.last = { kind: action, body };
  renderResults();
  setStatus(`Done: ${label} in ${took} s.`);
}

// The counter's "Compare every mode and sync": one /run/compare per sync,
// one after another (each runs every mode), drawn together by state.js.
async function runSweep(form) {
  if (state.inFlight) state.inFlight.abort();
  const ctl = new AbortController();
  state.inFlight = ctl;
  clearError();
  const bodies = [];
  const reqs = SYNCS.map((sync) => {
    const req = buildRequest(form, 'compare');
    req.path = req.path.replace(/([?&])sync=[^&]*/, `$1sync=${sync}`);
    return req;
  });
  state.curlText = reqs.map(curlFor).join('\n');
  $('#curl').textContent = state.curlText;
  $('#cancel').hidden = false;
  document.body.classList.add('busy');
  for (const [i, req] of reqs.entries()) {
    setStatus(`Running counter in every mode, sync ${SYNCS[i]} (${i + 1} of ${reqs.length})…`);
    let res;
    let body;
    try {
      res = await fetch(req.path, { signal: ctl.signal, headers: { Accept: 'application/json' }, cache: 'no-store' });
      body = await res.json();
    } catch (e) {
      if (state.inFlight === ctl) {
        finishRequest();
        setStatus(e.name === 'AbortError' ? 'Cancelled the sweep.' : 'The sweep got no answer.');
        if (e.name !== 'AbortError') showError(0, `could not reach the service: ${e.message}`);
      }
      return;
    }
    if (state.inFlight !== ctl) return;
    if (!res.ok || body.error) {
      finishRequest();
      showJson(body);
      showError(res.status, body.error ? body.error.message : `HTTP ${res.status}`);
      setStatus(`The sweep failed at sync ${SYNCS[i]}.`);
      return;
    }
    bodies.push(body);
  }
  finishRequest();
  showJson(bodies);
  state.last = { kind: 'syncs', body: bodies };
  renderResults();
  setStatus(`Done: counter in every mode and sync. ${summarizeSweep(bodies)}.`);
}
// What sweep.js may do to the page: one request in flight at a time, the
// page's status, error, curl line and JSON.
const sweepHost = {
  begin(label) {
    if (state.inFlight) state.inFlight.abort();
    const ctl = new AbortController();
    state.inFlight = ctl;
    state.last = null;
    clearError();
    renderResults();
    $('#summary').textContent = `${label}: the chart fills in as each comparison comes back.`;
    $('#cancel').hidden = false;
    document.body.classList.add('busy');
    setStatus(`${label}…`);
    return ctl;
  },
  status: setStatus,
  fail: showError,
  show(path, body) {
    state.curlText = curlFor({ path, body: null });
    $('#curl').textContent = state.curlText;
    showJson(body, '');
  },
  end(ctl) { if (state.inFlight === ctl) finishRequest(); },
};
// One live drawing (an animation frame); asks for the next while the run
// goes on, since running bars grow with the clock.
function drawLive(ts, ctl) {
  liveFrame = 0;
  const live = state.live;
  if (!live || state.inFlight !== ctl || live.final) return;
  if (ts - liveLastDraw >= LIVE_COST_FACTOR * liveDrawCost) {
    const start = performance.now();
    renderResults(live.snapshot(state.cores));
    if (state.tickText) setStatus(state.tickText());
    liveDrawCost = performance.now() - start;
    liveLastDraw = ts;
  }
  liveFrame = requestAnimationFrame((next) => drawLive(next, ctl));
}

function finishRequest() {
  clearInterval(state.tick);
  if (liveFrame) cancelAnimationFrame(liveFrame);
  liveFrame = 0;
  state.live = null;
  state.inFlight = null;
  $('#cancel').hidden = true;
  document.body.classList.remove('busy');
}

// ---- Results ----------------------------------------------------------------

function plotWidth() {
  return $('#timelines').clientWidth || $('#results').clientWidth - 32;
}

function sentence(text) {
  return text ? text.charAt(0).toUpperCase() + text.slice(1) + '.' : '';
}

function resultText(demo, r, acrossModes) {
  if (!r) return '';
  switch (demo) {
    case 'prime': return `${r.primes.toLocaleString('en-US')} primes among ${r.checked.toLocaleString('en-US')} numbers`;
    case 'square': {
      const sq = r.squares || [];
      const head = sq.slice(0, 12).join(', ');
      return `squares ${head}${sq.length > 12 ? `, … (${sq.length} in all)` : ''}`;
    }
    case 'sleep':
      if (acrossModes) return `each task slept ${r.slept_ms} ms`;
      return `each slept ${r.slept_ms} ms; model ${r.waves} wave${r.waves === 1 ? '' : 's'} of ` +
        `${r.lanes} lane${r.lanes === 1 ? '' : 's'} = ${fmtMs(r.model_ms)} ms`;
    case 'fetch': return `${r.ok} ok, ${r.failed} failed, ${r.bytes.toLocaleString('en-US')} bytes`;
    case 'counter':
      if (acrossModes) return `sync ${r.sync}, ${r.expected.toLocaleString('en-US')} increments expected`;
      return `sync ${r.sync}: final ${r.final.toLocaleString('en-US')} of ${r.expected.toLocaleString('en-US')} ` +
        `expected, ${r.lost.toLocaleString('en-US')} lost, ${r.ns_per_increment.toFixed(2)} ns per increment`;
    case 'deadlock':
      if (acrossModes) return `order ${r.order}, hold ${r.hold_ms} ms`;
      return r.deadlocked ? `order ${r.order}: deadlocked, caught and undone` : `order ${r.order}: both finished`;
    case 'work':
      if (acrossModes) return `${r.units.toLocaleString('en-US')} units of computing, checksum ${r.checksum}`;
      return `${r.units.toLocaleString('en-US')} units computed, waits ${fmtMs(r.stall_ms)} ms late in all ` +
        '(red: a task ready while another held the loop or the lock)';
    default: return JSON.stringify(r);
  }
}

// Draws last ({ kind, body }: the finished answer, or a live snapshot with
// body.live set) in place of what was drawn.
function renderResults(last = state.last) {
  const tl = $('#timelines');
  const cmp = $('#compare');
  tl.textContent = '';
  cmp.textContent = '';
  $('#state-view').textContent = '';
  if (!last) return;
  const width = plotWidth();
  state.width = width;
  const b = last.body;
  const summary = $('#summary');
  if (!b) return;
  if (b.live && state.live) {
    summary.textContent = `Live: ${b.demo}, ${state.live.progressText()}.`;
  }
  if (last.kind === 'syncs') {
    summary.textContent = `counter in ${b.length} syncs x every mode: ${summarizeSweep(b)}.`;
  } else if (last.kind === 'compare') {
    const runs = b.runs || [];
    const xMax = niceMax(Math.max(...runs.map(runExtent), last.axisMs || 0, 0.001));
    const agree = b.results_agree === false
      ? ` Results differ in: ${(b.differing_modes || []).join(', ')}.` : ' Every mode gave the same result.';
    if (!b.live) {
      summary.textContent = `${b.demo} in ${runs.length} modes, ${fmtMs(b.wall_ms)} ms in all on ` +
        `${b.cores} core${b.cores === 1 ? '' : 's'}. ${runs.length ? sentence(resultText(b.demo, runs[0].result, true)) : ''}${agree}`;
    }
    renderCompareChart(cmp, b, { width });
    const note = document.createElement('p');
    note.className = 'small muted';
    note.textContent = 'The dashed line marks the number of cores: computing cannot go faster than that many ' +
      'times sequential, while waiting can. The timelines below share one time axis.';
    cmp.querySelector('figure').appendChild(note);
    for (const run of runs) renderTimeline(tl, run, { width, xMax });
  } else {
    if (!b.live) {
      summary.textContent = `${b.demo} in ${b.mode} mode: wall ${fmtMs(b.wall_ms)} ms, ` +
        `${(b.tasks || []).length} tasks. ${sentence(resultText(b.demo, b.result))}`;
    }
    renderTimeline(tl, b, last.axisMs ? { width, xMax: niceMax(last.axisMs) } : { width });
  }
  renderStateView($('#state-view'), tl, last, width);
}

// ---- Copy buttons -----------------------------------------------------------

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const ta = document.createElement('textarea');
    ta.value = text;
    ta.setAttribute('readonly', '');
    ta.style.position = 'fixed';
    ta.style.opacity = '0';
    document.body.appendChild(ta);
    ta.select();
    let ok = false;
    try { ok = document.execCommand('copy'); } catch { ok = false; }
    ta.remove();
    return ok;
  }
}

async function onCopy(e) {
  const what = e.currentTarget.dataset.copy;
  const text = what === 'curl' ? state.curlText : state.jsonText;
  const out = $('#copy-status');
  if (!text) { out.textContent = 'Nothing to copy yet.'; return; }
  const ok = await copyText(text);
  out.textContent = ok ? `Copied the ${what === 'curl' ? 'curl command' : 'JSON'}.`
    : 'Copy failed: select the text and copy it by hand.';
}

// ---- Live state -------------------------------------------------------------

// One poll at a time; the next is scheduled when it ends, and only while the
// tab is visible (a hidden tab costs the service nothing).
let healthTimer = null;
let healthInFlight = false;

function put(key, value) {
  for (const el of $$(`[data-health="${key}"]`)) el.textContent = value;
}

function cells(name, busy, configured) {
  const box = $(`[data-meter="${name}"]`);
  if (!box) return;
  const n = Math.min(configured, CELLS_MAX);
  if (box.childElementCount !== n) {
    box.textContent = '';
    for (let i = 0; i < n; i++) box.appendChild(document.createElement('span'));
  }
  const lit = configured > CELLS_MAX ? Math.round((busy / configured) * n) : busy;
  [...box.children].forEach((c, i) => c.classList.toggle('on', i < lit));
}

function renderHealth(h) {
  const pill = $('#live-pill');
  pill.dataset.state = h.status === 'ok' ? 'ok' : 'warn';
  pill.textContent = h.status;
  put('version', h.version);
  put('uptime', h.uptime_s >= 120 ? `${(h.uptime_s / 60).toFixed(1)} min` : `${h.uptime_s.toFixed(1)} s`);
  put('cores', h.cores !== undefined ? String(h.cores) : '–');
  if (h.cores !== undefined) state.cores = h.cores;
  $('#live-cores').hidden = h.cores === undefined;
  const p = h.pools || {};
  for (const [pool, fields] of Object.entries({
    process: ['configured', 'alive', 'busy', 'queued', 'completed'],
    threads: ['configured', 'alive', 'busy', 'queued', 'completed'],
    loop: ['timers', 'transfers', 'timers_fired', 'transfers_done'],
    http: ['configured', 'alive', 'connections', 'in_flight', 'completed'],
  })) {
    for (const f of fields) {
      if (p[pool] && p[pool][f] !== undefined) put(`${pool}.${f}`, Number(p[pool][f]).toLocaleString('en-US'));
    }
  }
  if (p.process) {
    const r = p.process.restarts || {};
    const total = (r.crash || 0) + (r.timeout || 0) + (r.recycle || 0);
    put('process.restarts', total ? `${total} (crash ${r.crash}, timeout ${r.timeout}, recycle ${r.recycle})` : '0');
    put('process.pids', (p.process.pids || []).join(', ') || '–');
    cells('process', p.process.busy, p.process.configured);
  }
  if (p.threads) cells('threads', p.threads.busy, p.threads.configured);
}

function scheduleHealth() {
  clearTimeout(healthTimer);
  healthTimer = document.hidden ? null : setTimeout(pollHealth, HEALTH_EVERY_MS);
}

async function pollHealth() {
  if (healthInFlight) return;
  healthInFlight = true;
  clearTimeout(healthTimer);
  healthTimer = null;
  try {
    const res = await fetch('/health', { cache: 'no-store' });
    const h = await res.json();
    if (!res.ok) throw new Error(h.error ? h.error.message : `status ${res.status}`);
    renderHealth(h);
    $('.live').classList.remove('stale');
  } catch (e) {
    const pill = $('#live-pill');
    pill.dataset.state = 'down';
    pill.textContent = 'unreachable';
    $('.live').classList.add('stale');
  } finally {
    healthInFlight = false;
  }
  scheduleHealth();
}

document.addEventListener('visibilitychange', () => {
  if (document.hidden) {
    clearTimeout(healthTimer);
    healthTimer = null;
  } else {
    pollHealth();
  }
});

// ---- Wiring -----------------------------------------------------------------

$('#demo-load-retry').addEventListener('click', loadDemos);
$('#cancel').addEventListener('click', () => { if (state.inFlight) state.inFlight.abort(); });
$('#copy-curl').addEventListener('click', onCopy);
$('#copy-json').addEventListener('click', onCopy);

let resizeTimer = null;
window.addEventListener('resize', () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    if (state.last && Math.abs(plotWidth() - state.width) > 4) renderResults();
  }, 150);
});

// The Table view shows its requests in the same curl and JSON panel.
initTable({
  show(path, body, text) {
    state.curlText = curlFor({ path, body: null });
    $('#curl').textContent = state.curlText;
    showJson(body, text);
  },
});

loadDemos();
pollHealth();
