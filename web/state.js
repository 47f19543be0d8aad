// The views of the shared-state demos: /run/counter and /run/deadlock.
//
// counter: the expected count against the final one (what was lost), per
// run, per mode of a comparison, and per mode and sync when the form's
// "Compare every mode and sync" runs one /run/compare per sync (compare
// runs the modes of one set of parameters; the syncs are a second axis the
// page sweeps itself, so the service needs no second axis). Beside it the
// cost of one increment per sync and mode.
//
// deadlock: the lock segments of each task drawn over its bar on the
// timeline (holding solid, waiting hatched), from the segments' offsets
// in the task (timeline.js records its scale on the svg), and the wait-for
// cycle named under the figure.
//
// Nothing here talks to the network: app.js hands the bodies over.
// Test hooks: #state-view holds <figure class="counter-view" data-kind>
// with rows <tr data-mode data-sync data-expected data-final data-lost>
// and bars <rect class="count-bar" data-mode data-sync data-what>; cost
// bars <rect class="cost-bar" data-mode data-sync data-ns>; deadlock
// overlays <rect class="lock-seg" data-task data-lock data-state> inside
// the timeline's lane, and <p class="wait-cycle" data-cycle>.

const SVG_NS = 'http://www.w3.org/2000/svg';
export const SYNCS = ['none', 'lock', 'atomic'];

const fmtN = (n) => Number(n).toLocaleString('en-US');

function html(tag, attrs, parent, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  }
  if (text !== undefined) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
}

function svg(tag, attrs, parent) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  }
  if (parent) parent.appendChild(node);
  return node;
}

// ---- counter -------------------------------------------------------------------

// One row per run: [{ mode, sync, result }].
function countRows(runs) {
  return runs.map((r) => ({ mode: r.mode, sync: r.result.sync || r.params.sync, result: r.result }));
}

// Expected against final, one pair of bars per row; lost named.
function countChart(parent, rows, width) {
  const labelW = 150;
  const right = 150;
  const rowH = 30;
  const top = 24;
  const height = top + rows.length * rowH + 8;
  const plotW = Math.max(80, width - labelW - right);
  const max = Math.max(1, ...rows.map((r) => r.result.expected));
  const root = svg('svg', {
    width, height, viewBox: `0 0 ${width} ${height}`, class: 'cmp-svg count-svg', role: 'img',
    'aria-label': 'Expected and final count: ' + rows.map((r) =>
      `${r.mode} ${r.sync}: ${fmtN(r.result.final)} of ${fmtN(r.result.expected)}`).join(', '),
  }, parent);
  const title = svg('text', { class: 'cmp-title', x: 0, y: 14 }, root);
  title.textContent = 'Final count against expected (faint: expected)';
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    const g = svg('g', { class: 'cmp-row', 'data-mode': r.mode, 'data-sync': r.sync }, root);
    const label = svg('text', { class: 'lane-label', x: labelW - 8, y: y + rowH / 2 + 4, 'text-anchor': 'end' }, g);
    label.textContent = `${r.mode} · ${r.sync}`;
    const we = (r.result.expected / max) * plotW;
    const wf = (r.result.final / max) * plotW;
    svg('rect', {
      class: 'count-bar expected', x: labelW, y: y + 4, width: Math.max(1, we), height: rowH - 8,
      'data-mode': r.mode, 'data-sync': r.sync, 'data-what': 'expected', 'data-value': r.result.expected,
    }, g);
    const separate = r.result.shared_memory === 'none';
    svg('rect', {
      class: `count-bar final${separate ? ' separate' : r.result.lost ? ' lost' : ''}`, x: labelW, y: y + 8,
      width: Math.max(r.result.final ? 1 : 0, wf), height: rowH - 16,
      'data-mode': r.mode, 'data-sync': r.sync, 'data-what': 'final', 'data-value': r.result.final,
    }, g);
    const v = svg('text', { class: 'cmp-value', x: labelW + Math.max(we, wf) + 6, y: y + rowH / 2 + 4 }, g);
    v.textContent = separate ? 'separate memory: the counter stayed 0'
      : r.result.lost ? `lost ${fmtN(r.result.lost)}` : 'none lost';
  });
  return root;
}

// ns per increment, one bar per row, on a log-free linear axis.
function costChart(parent, rows, width) {
  const labelW = 150;
  const right = 90;
  const rowH = 24;
  const top = 24;
  const height = top + rows.length * rowH + 8;
  const plotW = Math.max(80, width - labelW - right);
  const max = Math.max(0.001, ...rows.map((r) => r.result.ns_per_increment));
  const root = svg('svg', {
    width, height, viewBox: `0 0 ${width} ${height}`, class: 'cmp-svg cost-svg', role: 'img',
    'aria-label': 'Nanoseconds per increment: ' + rows.map((r) =>
      `${r.mode} ${r.sync} ${r.result.ns_per_increment.toFixed(2)}`).join(', '),
  }, parent);
  const title = svg('text', { class: 'cmp-title', x: 0, y: 14 }, root);
  title.textContent = 'Cost of one increment (ns, as each task paid it)';
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    const g = svg('g', { class: 'cmp-row', 'data-mode': r.mode, 'data-sync': r.sync }, root);
    const label = svg('text', { class: 'lane-label', x: labelW - 8, y: y + rowH / 2 + 4, 'text-anchor': 'end' }, g);
    label.textContent = `${r.mode} · ${r.sync}`;
    const w = Math.max(2, (r.result.ns_per_increment / max) * plotW);
    svg('rect', {
      class: `cost-bar s-${r.sync}`, x: labelW, y: y + 4, width: w, height: rowH - 8,
      'data-mode': r.mode, 'data-sync': r.sync, 'data-ns': r.result.ns_per_increment,
    }, g);
    const v = svg('text', { class: 'cmp-value', x: labelW + w + 6, y: y + rowH / 2 + 4 }, g);
    v.textContent = `${r.result.ns_per_increment.toFixed(2)} ns`;
  });
  return root;
}

function countTable(parent, rows) {
  const wrap = html('div', { class: 'table-wrap' }, parent);
  const table = html('table', { class: 'count-table' }, wrap);
  const head = html('tr', {}, html('thead', {}, table));
  for (const h of ['mode', 'sync', 'expected', 'final', 'lost', 'ns / increment', 'lock wait ms']) {
    html('th', { scope: 'col' }, head, h);
  }
  const body = html('tbody', {}, table);
  for (const r of rows) {
    const x = r.result;
    const tr = html('tr', {
      'data-mode': r.mode, 'data-sync': r.sync, 'data-expected': x.expected, 'data-final': x.final, 'data-lost': x.lost,
    }, body);
    html('td', {}, tr, r.mode);
    html('td', {}, tr, r.sync);
    html('td', { class: 'num' }, tr, fmtN(x.expected));
    html('td', { class: 'num' }, tr, fmtN(x.final));
    html('td', { class: x.lost && x.shared_memory !== 'none' ? 'num lost' : 'num' }, tr, fmtN(x.lost));
    html('td', { class: 'num' }, tr, x.ns_per_increment.toFixed(2));
    html('td', { class: 'num' }, tr, x.sync === 'lock' ? String(x.lock_wait_ms) : '–');
  }
}

// A figure for runs of the counter: kind 'run', 'compare' or 'syncs'.
function counterView(parent, kind, runs, width, notes) {
  const rows = countRows(runs);
  const fig = html('figure', { class: 'counter-view', 'data-kind': kind, 'data-rows': rows.length }, parent);
  const cap = html('figcaption', {}, fig);
  html('strong', {}, cap, kind === 'syncs' ? 'Every mode and sync' : 'Shared counter');
  const separate = rows.filter((r) => r.result.shared_memory === 'none');
  const lost = rows.filter((r) => r.result.lost > 0 && r.result.shared_memory !== 'none');
  const parts = [lost.length ? `updates lost in ${lost.map((r) => `${r.mode} · ${r.sync}`).join(', ')}`
    : 'no update lost'];
  if (separate.length) parts.push(`${separate.map((r) => `${r.mode} · ${r.sync}`).join(', ')}: separate memory`);
  html('span', { class: 'tl-stats' }, cap, parts.join('; '));
  countChart(fig, rows, width);
  costChart(fig, rows, width);
  countTable(fig, rows);
  for (const n of notes) html('p', { class: 'small muted state-note' }, fig, n);
  return fig;
}

// ---- deadlock --------------------------------------------------------------------

// "task 0 holds A, waits for B → task 1 holds B, waits for A → task 0"
export function cycleText(cycle) {
  if (!cycle || !cycle.length) return '';
  const steps = cycle.map((e) => `task ${e.task} holds ${e.holds} and waits for ${e.waits_for}`);
  return `Wait-for cycle: ${steps.join(' → ')} → back to task ${cycle[0].task}.`;
}

// Draws each task's lock segments over its bar in a drawn timeline figure.
function overlaySegments(fig, run) {
  const root = fig.querySelector('svg.tl-svg');
  if (!root || root.dataset.x0 === undefined) return 0;
  const x0 = Number(root.dataset.x0);
  const plotW = Number(root.dataset.plotW);
  const xMax = Number(root.dataset.xMax);
  const xOf = (ms) => x0 + (Math.max(0, ms) / xMax) * plotW;
  let drawn = 0;
  for (const t of run.tasks || []) {
    const bar = root.querySelector(`rect.bar[data-task="${t.id}"]`);
    if (!bar || !t.segments) continue;
    const g = bar.parentNode;
    const y = Number(bar.getAttribute('y'));
    const h = Number(bar.getAttribute('height'));
    const half = h / 2;
    for (const s of t.segments) {
      const from = t.start_ms + s.from_ms;
      const to = t.start_ms + s.to_ms;
      const x = xOf(from);
      // Lock A on the upper half of the bar, B on the lower: both show
      // while a task holds one and waits for the other.
      const seg = svg('rect', {
        class: `lock-seg ${s.state} lock-${s.lock}`, x, y: s.lock === 'A' ? y : y + half,
        width: Math.max(1.5, xOf(to) - x), height: half,
        'data-task': t.id, 'data-lock': s.lock, 'data-state': s.state,
      }, g);
      svg('title', {}, seg).textContent =
        `task ${t.id} ${s.state} ${s.lock}: ${from.toFixed(1)} → ${to.toFixed(1)} ms`;
      drawn++;
    }
  }
  return drawn;
}

function deadlockNote(parent, run) {
  const r = run.result || {};
  const p = html('p', {
    class: r.deadlocked ? 'wait-cycle deadlocked' : 'wait-cycle', 'data-mode': run.mode,
    'data-deadlocked': String(Boolean(r.deadlocked)),
    'data-cycle': (r.cycle || []).map((e) => `${e.task}:${e.holds}>${e.waits_for}`).join(' '),
  }, parent);
  if (r.deadlocked) {
    p.textContent = `${cycleText(r.cycle)} Caught ${Number(r.detected_ms).toFixed(1)} ms into task ` +
      `${r.detected_by}; both tasks let go.`;
  } else {
    p.textContent = `No deadlock: ${r.finished} of 2 tasks took both locks.`;
  }
  html('span', { class: 'legend' }, p, ' Upper half: lock A, lower half: lock B; solid holding, hatched waiting.');
}

// ---- entry points ------------------------------------------------------------------

// Draws the demo's own view for the last result (app.js's state.last) into
// container, after the timelines were drawn into timelines. Does nothing for
// other demos, nor for a live snapshot: its runs have no result yet (the
// counter's bars and the deadlock's cycle come with the final answer).
export function renderStateView(container, timelines, last, width) {
  container.textContent = '';
  if (!last || (last.body && last.body.live)) return;
  if (last.kind === 'syncs') {
    const runs = last.body.flatMap((b) => b.runs || []);
    counterView(container, 'syncs', runs, width,
      ['One /run/compare per sync, every mode each: the service compares modes; the page sweeps the syncs.']);
    return;
  }
  const b = last.body;
  if (b.demo === 'counter') {
    const runs = last.kind === 'compare' ? b.runs || [] : [b];
    const notes = [...new Set(runs.map((r) => r.result.note).filter(Boolean))];
    counterView(container, last.kind, runs, width, notes);
  } else if (b.demo === 'deadlock') {
    const runs = last.kind === 'compare' ? b.runs || [] : [b];
    const figs = [...timelines.querySelectorAll('figure.timeline[data-demo="deadlock"]')];
    runs.forEach((run, i) => {
      const fig = figs[i];
      if (!fig) return;
      overlaySegments(fig, run);
      deadlockNote(fig, run);
    });
  }
}

// The form of the counter gets a button that compares every mode and sync.
export function addSweepButton(form) {
  if (form.dataset.demo !== 'counter' || form.querySelector('button[value="syncs"]')) return;
  const actions = form.querySelector('.actions');
  const button = html('button', { type: 'submit', name: 'action', value: 'syncs' }, null, 'Compare every mode and sync');
  const docs = actions.querySelector('details');
  actions.insertBefore(button, docs || null);
}

// The three comparisons' bodies, one per sync, as the view wants them.
export function summarizeSweep(bodies) {
  return bodies.map((b) => `${b.params.sync}: ${(b.runs || []).map((r) =>
    `${r.mode} lost ${fmtN(r.result.lost)}`).join(', ')}`).join('; ');
}
