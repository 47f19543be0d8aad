// Drawing for the dashboard: the per-run timeline and the comparison chart.
//
// Both are SVG built by hand at the container's pixel width (so text keeps
// its size on a phone), and are redrawn by the caller when that width
// changes. A timeline has one lane per worker ("main", a thread, a process
// pid, the event "loop") and, inside a lane, one row per task in start order:
// a sequential run reads as a staircase, parallel work as bars side by side.
// Past SVG_MAX_ELEMENTS bars and slices, or when rows get thinner than
// MIN_SVG_ROW_PX (10,000 async sleeps on one loop lane), the bars are
// painted on a canvas and embedded as one <image>, so the page stays fast;
// lanes, axis and labels stay SVG either way.
//
// Test hooks: one <figure class="timeline" data-mode data-demo data-tasks
// data-lanes> per run; lanes are <g class="lane" data-lane="kind:id">; bars
// are <rect class="bar" data-task data-lane> (the whole task); the part of a
// bar spent on a CPU is <rect class="cpu" data-task data-cpu-ms> drawn solid
// over the pale bar (its width: cpu_ms over the task's work time, from the
// work's start: when exactly it ran is not known, how much is); a spawned
// process's start-up is <rect class="startup" data-task data-start
// data-ready> (hatched, from start_ms to ready_ms); gil slices <rect
// class="slice"> (holding the lock: its CPU; also a work task's computing
// phases, which say when it ran); the late end of a work task's wait (its
// stall) <rect class="stall" data-task>; the raster fallback is <image
// class="bars-raster" data-bars>. The figure's data-cpu-ms is the run's CPU
// time in all. The comparison chart has <rect class="cmp-bar" data-mode
// data-metric> and a <g class="cores-marker" data-cores>.

const SVG_NS = 'http://www.w3.org/2000/svg';
const SVG_MAX_ELEMENTS = 2000;
const MIN_SVG_ROW_PX = 2;
const LANE_MAX_PX = 168;
const ROW_PX = 16;
const DENSE_ROW_PX = 10;
const LANE_PAD = 5;
const MIN_BAR_PX = 1.5;
const TASK_TABLE_MAX = 200;

let hatchCount = 0;

// Modes and worker kinds share one palette (sequential runs on "main",
// threads on "thread", processes on "process", async on "loop"); gil runs
// on threads but gets its own colour so it never reads as plain threads.
const MODE_CLASS = {
  sequential: 'm-sequential', threads: 'm-threads', processes: 'm-processes',
  gil: 'm-gil', async: 'm-async', spawn: 'm-spawn',
};

const MODE_NOTES = {
  sequential: 'one task after another on one thread',
  threads: 'one lane per demo thread',
  processes: 'one lane per worker process, named by its pid',
  gil: 'solid: holding the global lock; faint: waiting for it',
  async: 'every task waits on the single event-loop thread',
  spawn: 'a fresh process per task, named by its pid; hatched: its start-up',
};

function svg(tag, attrs, parent) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  }
  if (parent) parent.appendChild(node);
  return node;
}

function html(tag, attrs, parent, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  }
  if (text !== undefined) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
}

// Milliseconds with as many decimals as their size deserves.
export function fmtMs(v) {
  if (!Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  if (a >= 1000) return Math.round(v).toLocaleString('en-US');
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  return v.toFixed(3);
}

function niceStep(raw) {
  if (!(raw > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

export function niceMax(v) {
  if (!(v > 0)) return 1;
  const step = niceStep(v / 8);
  return Math.ceil(v / step - 1e-9) * step;
}

function tickLabel(v, step) {
  const decimals = step >= 1 ? 0 : Math.min(4, Math.ceil(-Math.log10(step)));
  return v.toFixed(decimals);
}

export function laneKey(worker) {
  return `${worker.kind}:${worker.id}`;
}

function laneLabel(worker) {
  switch (worker.kind) {
    case 'main': return 'main';
    case 'loop': return worker.id ? `loop ${worker.id}` : 'loop';
    case 'process': return `pid ${worker.id}`;
    case 'spawn': return `new pid ${worker.id}`;
    case 'thread': return `thread ${worker.id}`;
    default: return `${worker.kind} ${worker.id}`;
  }
}

// Groups tasks by worker; lanes in order of their first start, tasks in a
// lane in start order (ties by id).
export function buildLanes(tasks) {
  const byKey = new Map();
  for (const t of tasks) {
    const key = laneKey(t.worker);
    if (!byKey.has(key)) {
      byKey.set(key, { key, label: laneLabel(t.worker), worker: t.worker, tasks: [] });
    }
    byKey.get(key).tasks.push(t);
  }
  const lanes = [...byKey.values()];
  for (const lane of lanes) {
    lane.tasks.sort((a, b) => a.start_ms - b.start_ms || a.id - b.id);
    lane.first = lane.tasks[0].start_ms;
  }
  lanes.sort((a, b) => a.first - b.first || a.key.localeCompare(b.key));
  return lanes;
}

// The right end of a run's time axis, before rounding.
export function runExtent(run) {
  let end = Number(run.wall_ms) || 0;
  for (const t of run.tasks || []) end = Math.max(end, t.end_ms);
  return end;
}

// Where a task's work starts: after its process's start-up in spawn mode.
function workStart(t) {
  return typeof t.ready_ms === 'number' ? t.ready_ms : t.start_ms;
}

// The share of the task's work time it spent on a CPU, 0..1 (null: not
// reported).
export function cpuShare(t) {
  if (typeof t.cpu_ms !== 'number') return null;
  const work = t.end_ms - workStart(t);
  if (!(work > 0)) return t.cpu_ms > 0 ? 1 : 0;
  return Math.max(0, Math.min(1, t.cpu_ms / work));
}

function taskDetail(t) {
  const parts = [];
  if (typeof t.spawn_ms === 'number') parts.push(`process start-up ${fmtMs(t.spawn_ms)} ms`);
  if (typeof t.cpu_ms === 'number') {
    parts.push(`on a CPU ${fmtMs(t.cpu_ms)} ms of ${fmtMs(t.end_ms - workStart(t))} ms ` +
      `(${Math.round(100 * cpuShare(t))}%)`);
  }
  if (t.primes !== undefined) parts.push(`${t.primes} primes of ${t.checked} checked`);
  if (t.items) parts.push(`items ${t.items.from}..${t.items.to - 1}`);
  if (t.url !== undefined) {
    parts.push(t.url);
    parts.push(t.error ? `error: ${t.error}` : `status ${t.status}, ${t.bytes} bytes`);
  }
  if (t.slices) parts.push(`${t.slices.length} lock slices`);
  if (t.stall_ms !== undefined) parts.push(`woke ${fmtMs(t.stall_ms)} ms late in all (stall)`);
  return parts.join('\n');
}

// The solid parts of a bar: a gil task's lock slices, or the computing
// phases of a task that reports them (work: [from, to] from its start).
function solidSpans(t) {
  if (t.slices) return t.slices;
  if (Array.isArray(t.computing)) return t.computing.map(([s, e]) => [t.start_ms + s, t.start_ms + e]);
  return null;
}

// The late ends of a task's waits ([from, due, to] from its start): due → to.
function stallSpans(t) {
  if (!Array.isArray(t.waiting)) return [];
  return t.waiting.filter((w) => w[2] - w[1] > 0.05).map((w) => [t.start_ms + w[1], t.start_ms + w[2]]);
}

function taskFailed(t) {
  return (t.error !== undefined && t.error !== null) || (t.status !== undefined && t.status >= 400);
}

function cssVar(name, fallback) {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

// Renders one run (a /run/<demo> body or a compare "runs" element) into a new
// <figure> appended to parent. opts.width: pixel width; opts.xMax: shared
// axis end (compare), else the run's own.
export function renderTimeline(parent, run, opts = {}) {
  const tasks = run.tasks || [];
  const lanes = buildLanes(tasks);
  const width = Math.max(280, Math.floor(opts.width || parent.clientWidth || 640));
  const xMax = opts.xMax || niceMax(runExtent(run));
  const mode = run.mode || '';
  const modeClass = MODE_CLASS[mode] || 'm-other';

  const fig = html('figure', {
    class: `timeline ${modeClass}`,
    'data-mode': mode,
    'data-demo': run.demo || '',
    'data-tasks': tasks.length,
    'data-lanes': lanes.length,
  }, parent);

  const cap = html('figcaption', {}, fig);
  const title = html('span', { class: 'tl-title' }, cap);
  html('span', { class: `swatch ${modeClass}`, 'aria-hidden': 'true' }, title);
  html('strong', {}, title, mode);
  const speed = run.speedup !== undefined ? ` · ${Number(run.speedup).toFixed(2)}× vs sequential` : '';
  const r = run.result || {};
  const model = r.model_ms !== undefined
    ? ` · model ${fmtMs(r.model_ms)} ms (${r.waves} wave${r.waves === 1 ? '' : 's'} of ${r.lanes})` : '';
  const cpuMs = tasks.reduce((sum, t) => sum + (Number(t.cpu_ms) || 0), 0);
  fig.setAttribute('data-cpu-ms', String(cpuMs));
  const busy = run.wall_ms > 0 && tasks.some((t) => typeof t.cpu_ms === 'number')
    ? ` · CPU ${fmtMs(cpuMs)} ms (${(cpuMs / run.wall_ms).toFixed(2)} cores busy on average)` : '';
  const pinned = run.cores !== undefined ? ` · cores ${run.cores}` : '';
  html('span', { class: 'tl-stats' }, cap,
    `wall ${fmtMs(run.wall_ms)} ms · ${tasks.length} task${tasks.length === 1 ? '' : 's'} on ` +
    `${lanes.length} lane${lanes.length === 1 ? '' : 's'}${model}${speed}${busy}${pinned}`);
  const failures = tasks.filter(taskFailed).length;
  if (failures) html('span', { class: 'tl-warn' }, cap, `${failures} failed (red)`);
  if (run.same_result === false) {
    html('span', { class: 'tl-warn' }, cap, 'result differs from sequential');
  }
  let note = MODE_NOTES[mode];
  if (mode === 'gil' && run.demo === 'sleep') note = 'solid: holding the global lock; faint: asleep, lock given up';
  if (note) html('span', { class: 'tl-note' }, cap, note);
  renderLegend(cap, mode, modeClass, tasks);

  // Geometry.
  const labelW = width < 480 ? 74 : 108;
  const top = 22;
  const bottom = 28;
  const right = 16;
  const x0 = labelW;
  const plotW = width - labelW - right;
  const xOf = (ms) => x0 + (Math.max(0, ms) / xMax) * plotW;

  let elements = 0;
  let minRow = Infinity;
  let y = top;
  for (const lane of lanes) {
    const n = lane.tasks.length;
    let row = n <= 6 ? ROW_PX : DENSE_ROW_PX;
    if (n * row > LANE_MAX_PX) row = LANE_MAX_PX / n;
    lane.row = row;
    lane.y = y;
    lane.h = n * row + 2 * LANE_PAD;
    y += lane.h;
    minRow = Math.min(minRow, row);
    for (const t of lane.tasks) elements += 1 + (t.slices ? t.slices.length : 0);
  }
  const plotBottom = y;
  const height = plotBottom + bottom;
  const raster = elements > SVG_MAX_ELEMENTS || minRow < MIN_SVG_ROW_PX;

  const root = svg('svg', {
    width, height, viewBox: `0 0 ${width} ${height}`,
    class: 'tl-svg', role: 'img',
    // The scale, for views that draw over the bars (state.js).
    'data-x0': x0, 'data-plot-w': plotW, 'data-x-max': xMax,
    'aria-label': `Timeline of ${run.demo || 'the'} demo in ${mode} mode: ${tasks.length} tasks ` +
      `on ${lanes.length} lanes, wall time ${fmtMs(run.wall_ms)} ms`,
  });
  fig.insertBefore(root, cap.nextSibling);

  // The hatch of spawn start-ups, one per figure (ids are page-wide).
  let hatch = null;
  if (tasks.some((t) => typeof t.ready_ms === 'number')) {
    hatch = `startup-hatch-${++hatchCount}`;
    const pat = svg('pattern', {
      id: hatch, width: 4, height: 4, patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)',
    }, svg('defs', {}, root));
    svg('rect', { class: 'hatch-bg', width: 4, height: 4 }, pat);
    svg('rect', { class: 'hatch-line', width: 2, height: 4 }, pat);
  }

  // Layers, bottom to top: lane bands, grid and axis, lanes (labels, bars).
  const bands = svg('g', { class: 'bands' }, root);
  const axis = svg('g', { class: 'axis' }, root);
  lanes.forEach((lane, i) => {
    svg('rect', {
      class: i % 2 ? 'lane-bg odd' : 'lane-bg', x: 0, y: lane.y, width, height: lane.h,
    }, bands);
    const g = svg('g', { class: 'lane', 'data-lane': lane.key, 'data-tasks': lane.tasks.length }, root);
    lane.g = g;
    const mid = lane.y + lane.h / 2;
    const label = svg('text', {
      class: 'lane-label', x: labelW - 8, y: lane.tasks.length > 1 && lane.h >= 34 ? mid - 2 : mid + 4,
      'text-anchor': 'end',
    }, g);
    label.textContent = lane.label;
    if (lane.tasks.length > 1 && lane.h >= 34) {
      const sub = svg('text', { class: 'lane-sub', x: labelW - 8, y: mid + 11, 'text-anchor': 'end' }, g);
      sub.textContent = `${lane.tasks.length} tasks`;
    }
  });

  // Grid and axis.
  const step = niceStep(xMax / Math.max(2, Math.floor(plotW / (width < 480 ? 60 : 84))));
  for (let v = 0; v <= xMax + step * 1e-6; v += step) {
    const x = xOf(v);
    svg('line', { class: 'grid', x1: x, x2: x, y1: top, y2: plotBottom }, axis);
    svg('line', { class: 'tick', x1: x, x2: x, y1: plotBottom, y2: plotBottom + 4 }, axis);
    const t = svg('text', { x, y: plotBottom + 16, 'text-anchor': v === 0 ? 'start' : 'middle' }, axis);
    t.textContent = tickLabel(v, step);
  }
  const unit = svg('text', { class: 'axis-unit', x: labelW - 8, y: plotBottom + 16, 'text-anchor': 'end' }, axis);
  unit.textContent = 'ms';
  svg('line', { class: 'axis-line', x1: x0, x2: x0 + plotW, y1: plotBottom, y2: plotBottom }, axis);

  // Bars.
  if (!raster) {
    for (const lane of lanes) {
      const g = lane.g;
      const gap = lane.row >= 6 ? 2 : lane.row >= 3 ? 1 : 0;
      lane.tasks.forEach((t, i) => {
        const x = xOf(t.start_ms);
        const w = Math.max(MIN_BAR_PX, xOf(t.end_ms) - x);
        const by = lane.y + LANE_PAD + i * lane.row + gap / 2;
        const bh = Math.max(1, lane.row - gap);
        const cls = ['bar', modeClass];
        const solid = solidSpans(t);
        const share = solid ? null : cpuShare(t);
        // Pale: waiting; the CPU part (gil slices, work's computing phases,
        // else the cpu_ms share) solid on top.
        if (solid || share !== null) cls.push('waiting');
        if (taskFailed(t)) cls.push('failed');
        const bar = svg('rect', {
          class: cls.join(' '), x, y: by, width: w, height: bh,
          'data-task': t.id, 'data-lane': lane.key,
          'data-start': t.start_ms, 'data-end': t.end_ms,
        }, g);
        if (typeof t.ready_ms === 'number') {
          const rx = xOf(t.ready_ms);
          svg('rect', {
            class: 'startup', x, y: by, width: Math.max(1, rx - x), height: bh, fill: `url(#${hatch})`,
            'data-task': t.id, 'data-lane': lane.key, 'data-start': t.start_ms, 'data-ready': t.ready_ms,
          }, g);
        }
        if (share !== null && share > 0 && !taskFailed(t)) {
          const cx = xOf(workStart(t));
          svg('rect', {
            class: `cpu ${modeClass}`, x: cx, y: by, width: Math.max(1, share * (xOf(t.end_ms) - cx)),
            height: bh, 'data-task': t.id, 'data-lane': lane.key, 'data-cpu-ms': t.cpu_ms,
          }, g);
        }
        const tip = svg('title', {}, bar);
        const detail = taskDetail(t);
        tip.textContent = `task ${t.id} on ${lane.label}\n${fmtMs(t.start_ms)} → ${fmtMs(t.end_ms)} ms ` +
          `(${fmtMs(t.end_ms - t.start_ms)} ms)${detail ? '\n' + detail : ''}`;
        for (const [s, e] of solid || []) {
          const sx = xOf(s);
          svg('rect', {
            class: `slice ${modeClass}`, x: sx, y: by, width: Math.max(1, xOf(e) - sx), height: bh,
            'data-task': t.id, 'data-lane': lane.key,
          }, g);
        }
        for (const [s, e] of stallSpans(t)) {
          const sx = xOf(s);
          svg('rect', {
            class: 'stall', x: sx, y: by + bh / 2, width: Math.max(1, xOf(e) - sx), height: Math.max(1, bh / 2),
            'data-task': t.id, 'data-lane': lane.key,
          }, g);
        }
      });
    }
  } else {
    drawRaster(root, lanes, { x0, top, plotW, plotBottom, xMax, modeClass, count: tasks.length });
    html('p', { class: 'tl-raster-note' }, fig,
      `${tasks.length.toLocaleString('en-US')} tasks: too many to draw one by one, so the bars are ` +
      'painted as one image (rows thinner than a pixel blend into a block).');
  }

  // Wall time marker, drawn last so it sits on top.
  const wx = xOf(run.wall_ms);
  const wall = svg('g', { class: 'wall-marker' }, root);
  svg('line', { x1: wx, x2: wx, y1: top - 6, y2: plotBottom }, wall);
  const nearEnd = wx > x0 + plotW - 90;
  const wt = svg('text', { x: nearEnd ? wx - 4 : wx + 4, y: top - 9, 'text-anchor': nearEnd ? 'end' : 'start' }, wall);
  wt.textContent = `wall ${fmtMs(run.wall_ms)} ms`;

  if (opts.taskTable !== false) renderTaskTable(fig, run, lanes);
  return fig;
}

function drawRaster(root, lanes, g) {
  const dpr = Math.min(2, window.devicePixelRatio || 1);
  const h = g.plotBottom - g.top;
  const canvas = document.createElement('canvas');
  canvas.width = Math.max(1, Math.round(g.plotW * dpr));
  canvas.height = Math.max(1, Math.round(h * dpr));
  const ctx = canvas.getContext('2d');
  ctx.scale(dpr, dpr);
  const name = g.modeClass.replace(/^m-/, '');
  const solid = cssVar(`--mode-${name}`, '#0969da');
  const failed = cssVar('--failed', '#cf222e');
  const startup = cssVar('--startup', '#8c959f');
  const minH = 1 / dpr;
  const xOf = (ms) => (Math.max(0, ms) / g.xMax) * g.plotW;
  for (const lane of lanes) {
    const gap = lane.row >= 6 ? 2 : lane.row >= 3 ? 1 : 0;
    lane.tasks.forEach((t, i) => {
      const x = xOf(t.start_ms);
      const w = Math.max(MIN_BAR_PX, xOf(t.end_ms) - x);
      const y = lane.y - g.top + LANE_PAD + i * lane.row + gap / 2;
      const bh = Math.max(minH, lane.row - gap);
      if (t.slices) {
        ctx.globalAlpha = 0.22;
        ctx.fillStyle = solid;
        ctx.fillRect(x, y, w, bh);
        ctx.globalAlpha = 1;
        for (const [s, e] of t.slices) {
          const sx = xOf(s);
          ctx.fillRect(sx, y, Math.max(minH, xOf(e) - sx), bh);
        }
      } else if (taskFailed(t) || cpuShare(t) === null) {
        ctx.fillStyle = taskFailed(t) ? failed : solid;
        ctx.fillRect(x, y, w, bh);
      } else {
        ctx.fillStyle = solid;
        ctx.globalAlpha = 0.22;
        ctx.fillRect(x, y, w, bh);
        ctx.globalAlpha = 1;
        const cx = xOf(workStart(t));
        ctx.fillRect(cx, y, Math.max(minH, cpuShare(t) * (xOf(t.end_ms) - cx)), bh);
        if (typeof t.ready_ms === 'number') {
          ctx.fillStyle = startup;
          ctx.fillRect(x, y, Math.max(minH, xOf(t.ready_ms) - x), bh);
        }
      }
    });
  }
  svg('image', {
    class: 'bars-raster', x: g.x0, y: g.top, width: g.plotW, height: h,
    preserveAspectRatio: 'none', href: canvas.toDataURL('image/png'), 'data-bars': g.count,
  }, root);
}

// What the shades of a bar mean, for this run's mode.
function renderLegend(cap, mode, modeClass, tasks) {
  const legend = html('span', { class: 'tl-legend', 'aria-label': 'legend' }, cap);
  const item = (cls, text) => {
    const it = html('span', { class: 'legend-item' }, legend);
    html('span', { class: `key ${cls}`, 'aria-hidden': 'true' }, it);
    html('span', {}, it, text);
  };
  if (mode === 'gil') {
    item(`solid ${modeClass}`, 'holding the lock (its CPU time)');
    item(`pale ${modeClass}`, 'waiting');
  } else if (tasks.some((t) => typeof t.cpu_ms === 'number')) {
    item(`solid ${modeClass}`, 'on a CPU (cpu_ms)');
    item(`pale ${modeClass}`, 'waiting');
  }
  if (tasks.some((t) => typeof t.ready_ms === 'number')) item('startup', 'process start-up (spawn_ms)');
}

function renderTaskTable(fig, run, lanes) {
  const tasks = run.tasks || [];
  if (!tasks.length) return;
  const det = html('details', { class: 'task-table' }, fig);
  const shown = Math.min(tasks.length, TASK_TABLE_MAX);
  html('summary', {}, det, shown < tasks.length
    ? `Task table (first ${shown} of ${tasks.length.toLocaleString('en-US')})`
    : `Task table (${tasks.length})`);
  const wrap = html('div', { class: 'table-wrap' }, det);
  const table = html('table', {}, wrap);
  const head = html('tr', {}, html('thead', {}, table));
  const extra = tasks[0].primes !== undefined ? 'primes' : tasks[0].url !== undefined ? 'status' :
    tasks[0].items ? 'items' : tasks[0].slices ? 'slices' : null;
  const spawned = tasks.some((t) => typeof t.spawn_ms === 'number');
  const cpu = tasks.some((t) => typeof t.cpu_ms === 'number');
  for (const h of ['task', 'worker', 'start ms', 'end ms', 'ms', spawned ? 'start-up ms' : null,
    cpu ? 'cpu ms' : null, extra]) {
    if (h) html('th', { scope: 'col' }, head, h);
  }
  const body = html('tbody', {}, table);
  const labelOf = new Map(lanes.map((l) => [l.key, l.label]));
  const sorted = [...tasks].sort((a, b) => a.id - b.id).slice(0, shown);
  for (const t of sorted) {
    const tr = html('tr', {}, body);
    html('td', {}, tr, String(t.id));
    html('td', {}, tr, labelOf.get(laneKey(t.worker)));
    html('td', { class: 'num' }, tr, fmtMs(t.start_ms));
    html('td', { class: 'num' }, tr, fmtMs(t.end_ms));
    html('td', { class: 'num' }, tr, fmtMs(t.end_ms - t.start_ms));
    if (spawned) html('td', { class: 'num' }, tr, typeof t.spawn_ms === 'number' ? fmtMs(t.spawn_ms) : '–');
    if (cpu) html('td', { class: 'num' }, tr, fmtMs(t.cpu_ms));
    if (extra === 'primes') html('td', { class: 'num' }, tr, String(t.primes));
    if (extra === 'status') html('td', {}, tr, t.error ? `error: ${t.error}` : String(t.status));
    if (extra === 'items') html('td', {}, tr, `${t.items.from}..${t.items.to - 1}`);
    if (extra === 'slices') html('td', { class: 'num' }, tr, String((t.slices || []).length));
  }
}

// One horizontal bar panel: rows [{mode, value, label}], opts {title,
// metric, max, marker: {value, label, cls, data}, width}.
function barPanel(parent, rows, opts) {
  const width = Math.max(260, Math.floor(opts.width));
  const labelW = 92;
  const right = 64;
  // Room for the marker's label (opts.top keeps side-by-side panels aligned).
  const top = opts.top || (opts.marker ? 44 : 30);
  const rowH = 26;
  const bottom = 26;
  const plotW = width - labelW - right;
  const height = top + rows.length * rowH + bottom;
  const max = opts.max;
  const xOf = (v) => labelW + (Math.max(0, v) / max) * plotW;

  const root = svg('svg', {
    width, height, viewBox: `0 0 ${width} ${height}`, class: `cmp-svg cmp-${opts.metric}`,
    role: 'img', 'aria-label': opts.aria,
  }, parent);
  const t = svg('text', { class: 'cmp-title', x: 0, y: 14 }, root);
  t.textContent = opts.title;

  const step = niceStep(max / Math.max(2, Math.floor(plotW / 56)));
  const axis = svg('g', { class: 'axis' }, root);
  const axisY = top + rows.length * rowH;
  for (let v = 0; v <= max + step * 1e-6; v += step) {
    const x = xOf(v);
    svg('line', { class: 'grid', x1: x, x2: x, y1: top - 4, y2: axisY }, axis);
    const tx = svg('text', { x, y: axisY + 16, 'text-anchor': 'middle' }, axis);
    tx.textContent = tickLabel(v, step) + (opts.metric === 'speedup' ? '×' : '');
  }
  svg('line', { class: 'axis-line', x1: labelW, x2: labelW + plotW, y1: axisY, y2: axisY }, axis);

  rows.forEach((r, i) => {
    const y = top + i * rowH;
    const g = svg('g', { class: 'cmp-row', 'data-mode': r.mode }, root);
    const lt = svg('text', { class: 'lane-label', x: labelW - 8, y: y + rowH / 2 + 4, 'text-anchor': 'end' }, g);
    lt.textContent = r.mode;
    const w = Math.max(2, xOf(r.value) - labelW);
    const bar = svg('rect', {
      class: `cmp-bar ${MODE_CLASS[r.mode] || 'm-other'}`, x: labelW, y: y + 4, width: w, height: rowH - 8,
      'data-mode': r.mode, 'data-metric': opts.metric, 'data-value': r.value,
    }, g);
    svg('title', {}, bar).textContent = `${r.mode}: ${r.label}`;
  });

  // The marker crosses the bars but not their value labels (drawn last, with
  // a halo).
  if (opts.marker) {
    const m = opts.marker;
    const mx = xOf(m.value);
    const g = svg('g', { class: m.cls, ...m.data }, root);
    svg('line', { x1: mx, x2: mx, y1: top - 20, y2: axisY }, g);
    const anchorEnd = mx > labelW + plotW - 40;
    const mt = svg('text', { x: anchorEnd ? mx - 3 : mx + 3, y: top - 11, 'text-anchor': anchorEnd ? 'end' : 'start' }, g);
    mt.textContent = m.label;
  }
  const values = svg('g', { class: 'cmp-values' }, root);
  rows.forEach((r, i) => {
    const w = Math.max(2, xOf(r.value) - labelW);
    const vt = svg('text', { class: 'cmp-value', x: labelW + w + 5, y: top + i * rowH + rowH / 2 + 4 }, values);
    vt.textContent = r.label;
  });

  return root;
}

// The comparison of a /run/compare body: wall time and speedup per mode, the
// speedup panel marked at speedup = cores (the ceiling for CPU work).
export function renderCompareChart(parent, cmp, opts = {}) {
  const runs = cmp.runs || [];
  const fig = html('figure', {
    class: 'compare-chart', 'data-demo': cmp.demo || '', 'data-modes': runs.length,
    'data-cores': cmp.cores,
  }, parent);
  const cap = html('figcaption', {}, fig);
  html('strong', {}, cap, 'All modes compared');
  html('span', { class: 'tl-stats' }, cap,
    `${cmp.demo} · total ${fmtMs(cmp.wall_ms)} ms · ${cmp.cores} core${cmp.cores === 1 ? '' : 's'}`);

  const width = opts.width || parent.clientWidth || 640;
  const sideBySide = width >= 700;
  const grid = html('div', { class: sideBySide ? 'cmp-grid two' : 'cmp-grid' }, fig);
  const panelW = sideBySide ? Math.floor((width - 24) / 2) : width;
  const top = sideBySide ? 44 : undefined;

  const wallMax = niceMax(Math.max(...runs.map((r) => r.wall_ms), 0.001));
  barPanel(html('div', { class: 'cmp-panel' }, grid),
    runs.map((r) => ({ mode: r.mode, value: r.wall_ms, label: `${fmtMs(r.wall_ms)} ms` })), {
      title: 'Wall time (ms, shorter is faster)', metric: 'wall', max: wallMax, width: panelW, top,
      aria: 'Wall time per mode: ' + runs.map((r) => `${r.mode} ${fmtMs(r.wall_ms)} ms`).join(', '),
    });

  const cores = Number(cmp.cores) || 0;
  const spMax = niceMax(Math.max(cores * 1.15, ...runs.map((r) => Number(r.speedup) || 0), 1.2));
  barPanel(html('div', { class: 'cmp-panel' }, grid),
    runs.map((r) => ({ mode: r.mode, value: Number(r.speedup) || 0, label: `${(Number(r.speedup) || 0).toFixed(2)}×` })), {
      title: 'Speedup vs sequential (longer is faster)', metric: 'speedup', max: spMax, width: panelW, top,
      aria: `Speedup per mode, ${cores} cores: ` + runs.map((r) => `${r.mode} ${Number(r.speedup).toFixed(2)}×`).join(', '),
      marker: cores > 0 ? {
        value: cores, label: `${cores} core${cores === 1 ? '' : 's'}`, cls: 'cores-marker',
        data: { 'data-cores': cores },
      } : null,
    });
  return fig;
}
