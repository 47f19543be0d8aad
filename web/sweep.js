// The io_ratio sweep: on the form of a demo that has a real `io_ratio`
// parameter and several modes (work), a "Sweep io_ratio" button runs
// /run/compare at io_ratio 0, 0.25, 0.5, 0.75 and 1, one after another, with
// the form's other parameters, and draws each mode's speedup against io_ratio
// as a line chart (SVG built here, redrawn as each comparison comes back), so
// the crossover shows: where processes win, where the GIL stops mattering,
// where async catches up.
//
// app.js hands over a host: begin(label) -> AbortController (the request in
// flight is aborted, the page's results cleared), status(text),
// fail(status, message), show(path, body) (the curl line and the JSON of the
// last comparison), end(ctl). Nothing else of the page is touched but
// #compare (the chart) and #timelines (emptied).
//
// Test hooks: the button is <button data-action="sweep">; the chart is
// <figure class="sweep" data-demo data-points data-cores>, one <polyline
// class="sweep-line" data-mode> per mode, one <circle class="sweep-point"
// data-mode data-ratio data-speedup> per comparison and mode, and a <g
// class="cores-marker" data-cores>.

import { queryPairs } from './forms.js';
import { niceMax } from './timeline.js';

export const SWEEP_RATIOS = [0, 0.25, 0.5, 0.75, 1];

const SVG_NS = 'http://www.w3.org/2000/svg';
const CHART_H = 260;
const PAD = { left: 44, right: 96, top: 14, bottom: 36 };

const MODE_CLASS = {
  sequential: 'm-sequential', threads: 'm-threads', processes: 'm-processes',
  gil: 'm-gil', async: 'm-async',
};

function svg(tag, attrs, parent) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  }
  if (parent) parent.appendChild(node);
  return node;
}

function text(parent, attrs, content) {
  const t = svg('text', attrs, parent);
  t.textContent = content;
  return t;
}

// The sweep's parameter, when the form's demo has one.
function sweepParam(demo) {
  if (!demo || !demo.modes || demo.modes.length < 2) return null;
  return demo.params.find((p) => p.name === 'io_ratio' && p.kind === 'number') || null;
}

// Adds the button to the form of a demo that can be swept; returns it, or
// null for the other demos.
export function attachSweep(form, host) {
  if (!sweepParam(form.demo)) return null;
  const actions = form.querySelector('.actions');
  const button = document.createElement('button');
  button.type = 'button';
  button.dataset.action = 'sweep';
  button.textContent = 'Sweep io_ratio';
  button.title = `Compare every mode at io_ratio ${SWEEP_RATIOS.join(', ')}, one after another`;
  actions.appendChild(button);
  button.addEventListener('click', () => runSweep(form, host));
  return button;
}

function enc(v) {
  return encodeURIComponent(v).replace(/%2C/g, ',');
}

// The comparison of one point: the form's compare query at that io_ratio.
export function sweepPath(form, ratio) {
  const pairs = queryPairs(form, 'compare').filter(([k]) => k !== 'io_ratio');
  pairs.push(['io_ratio', String(ratio)]);
  return `/run/compare?${pairs.map(([k, v]) => `${enc(k)}=${enc(v)}`).join('&')}`;
}

async function runSweep(form, host) {
  if (!form.reportValidity()) return;
  const demo = form.demo.name;
  const ctl = host.begin(`Sweeping ${demo}'s io_ratio`);
  const points = [];
  const out = document.querySelector('#compare');
  document.querySelector('#timelines').textContent = '';
  const t0 = performance.now();
  for (const [i, ratio] of SWEEP_RATIOS.entries()) {
    const path = sweepPath(form, ratio);
    host.status(`Sweeping io_ratio: ${i + 1} of ${SWEEP_RATIOS.length} (io_ratio ${ratio})…`);
    let res;
    let body;
    try {
      res = await fetch(path, { signal: ctl.signal, cache: 'no-store', headers: { Accept: 'application/json' } });
      body = await res.json().catch(() => undefined);
    } catch (e) {
      host.end(ctl);
      if (e.name === 'AbortError') host.status('Cancelled the sweep.');
      else host.fail(0, `could not reach the service: ${e.message}`);
      return;
    }
    if (ctl.signal.aborted) return;
    host.show(path, body);
    if (!res.ok || !body || body.error || !Array.isArray(body.runs)) {
      host.end(ctl);
      const msg = body && body.error && body.error.message ? body.error.message : `HTTP ${res.status}`;
      host.fail(res.status, `at io_ratio ${ratio}: ${msg}`);
      host.status(`The sweep stopped at io_ratio ${ratio}.`);
      return;
    }
    points.push({ ratio, body });
    out.textContent = '';
    renderSweepChart(out, demo, points, { width: out.clientWidth || 640 });
  }
  host.end(ctl);
  host.status(`Done: swept io_ratio in ${((performance.now() - t0) / 1000).toFixed(1)} s.`);
}

// Draws the chart of points ([{ ratio, body: a /run/compare answer }]) into
// parent. Exported for the page's own redraw and for tests.
export function renderSweepChart(parent, demo, points, opts = {}) {
  const width = Math.max(320, opts.width || 640);
  const cores = points.length ? points[0].body.cores : 1;
  const modes = points.length ? points[0].body.modes : [];
  const series = new Map(modes.map((m) => [m, []]));
  for (const { ratio, body } of points) {
    for (const run of body.runs) {
      if (series.has(run.mode)) series.get(run.mode).push({ ratio, speedup: run.speedup, note: run.note });
    }
  }
  const top = Math.max(cores, ...points.flatMap((p) => p.body.runs.map((r) => r.speedup)), 1);
  const yMax = niceMax(top * 1.05);
  const plotW = width - PAD.left - PAD.right;
  const plotH = CHART_H - PAD.top - PAD.bottom;
  const xOf = (r) => PAD.left + r * plotW;
  const yOf = (s) => PAD.top + plotH - (s / yMax) * plotH;

  const fig = document.createElement('figure');
  fig.className = 'sweep';
  fig.dataset.demo = demo;
  fig.dataset.points = String(points.length);
  fig.dataset.cores = String(cores);
  const cap = document.createElement('figcaption');
  cap.textContent = `Speedup against sequential as io_ratio moves (${points.length} of ` +
    `${SWEEP_RATIOS.length} comparisons), ${cores} core${cores === 1 ? '' : 's'}`;
  fig.appendChild(cap);
  const root = svg('svg', {
    width, height: CHART_H, viewBox: `0 0 ${width} ${CHART_H}`, role: 'img',
    'aria-label': `speedup per mode against io_ratio, ${points.length} points`,
  }, fig);

  // Axes and grid.
  const steps = 4;
  for (let i = 0; i <= steps; i++) {
    const v = (yMax / steps) * i;
    const y = yOf(v);
    svg('line', { class: 'grid', x1: PAD.left, x2: PAD.left + plotW, y1: y, y2: y }, root);
    text(root, { x: PAD.left - 6, y: y + 4, 'text-anchor': 'end' }, `${Number(v.toFixed(2))}×`);
  }
  for (const r of SWEEP_RATIOS) {
    const x = xOf(r);
    svg('line', { class: 'tick', x1: x, x2: x, y1: PAD.top + plotH, y2: PAD.top + plotH + 4 }, root);
    text(root, { x, y: PAD.top + plotH + 16, 'text-anchor': 'middle' }, String(r));
  }
  text(root, { class: 'axis-unit', x: PAD.left + plotW / 2, y: CHART_H - 4, 'text-anchor': 'middle' },
    'io_ratio (the waiting share of each task)');
  svg('line', { class: 'axis-line', x1: PAD.left, x2: PAD.left + plotW, y1: PAD.top + plotH, y2: PAD.top + plotH }, root);

  // The cores: computing cannot go past it, waiting can.
  const marker = svg('g', { class: 'cores-marker', 'data-cores': cores }, root);
  svg('line', { x1: PAD.left, x2: PAD.left + plotW, y1: yOf(cores), y2: yOf(cores) }, marker);
  text(marker, { x: PAD.left + 4, y: yOf(cores) - 4 }, `${cores} core${cores === 1 ? '' : 's'}`);

  // One line per mode, a dot per point, the mode's name at its last point
  // (pushed apart where the lines end together).
  const labels = [];
  for (const [mode, pts] of series) {
    if (!pts.length) continue;
    const cls = MODE_CLASS[mode] || '';
    svg('polyline', {
      class: `sweep-line ${cls}`, 'data-mode': mode,
      points: pts.map((p) => `${xOf(p.ratio).toFixed(1)},${yOf(p.speedup).toFixed(1)}`).join(' '),
    }, root);
    for (const p of pts) {
      const dot = svg('circle', {
        class: `sweep-point ${cls}`, 'data-mode': mode, 'data-ratio': p.ratio, 'data-speedup': p.speedup,
        cx: xOf(p.ratio), cy: yOf(p.speedup), r: 3.5,
      }, root);
      const tip = svg('title', {}, dot);
      tip.textContent = `${mode} at io_ratio ${p.ratio}: ${p.speedup.toFixed(2)}×${p.note ? `\n${p.note}` : ''}`;
    }
    const last = pts[pts.length - 1];
    labels.push({ mode, cls, x: xOf(last.ratio) + 8, y: yOf(last.speedup) + 4 });
  }
  labels.sort((a, b) => a.y - b.y);
  labels.forEach((l, i) => {
    if (i > 0 && l.x === labels[i - 1].x && l.y < labels[i - 1].y + 12) l.y = labels[i - 1].y + 12;
    text(root, { class: `sweep-label ${l.cls}`, x: l.x, y: l.y, 'data-mode': l.mode }, l.mode);
  });
  parent.appendChild(fig);
  return fig;
}
