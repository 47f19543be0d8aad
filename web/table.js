// The Table view: the tutorials' comparison table (threading, multiprocessing,
// asyncio), every cell measured on this service by one GET /run/table, drawn
// beside the tutorials' own words. Each cell shows its figure, whether the
// tutorials' claim holds here (and the rule that decided it), and the request
// that reproduces it, with a button that runs that request again and shows
// the new figure beside the table's.
//
// Cells the service could not measure in this build (a demo or a mode it
// lacks) come back "available": false with the reason, and are drawn so.
// Nothing here is computed that the answer does not say, except the figure
// of a rerun, read from the rerun's own answer the way the service reads it.

const COLUMN_TITLES = {
  threads: 'threading',
  processes: 'multiprocessing (pool)',
  spawn: 'multiprocessing (Process per task)',
  async: 'asyncio',
};

const el = (tag, attrs = {}, parent = null, text = null) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else if (k.startsWith('data-')) node.setAttribute(k, v);
    else node[k] = v;
  }
  if (text !== null) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
};

function fmtBytes(n) {
  if (n >= 1024 * 1024) return `${(n / (1024 * 1024)).toFixed(2)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${Math.round(n)} B`;
}

// A figure with its unit, as a reader wants it.
export function fmtFigure(value, unit) {
  if (value === null || value === undefined) return '–';
  switch (unit) {
    case 'x': return `${value.toFixed(2)}x`;
    case 'us': return value >= 1000 ? `${(value / 1000).toFixed(2)} ms` : `${value.toFixed(1)} µs`;
    case 'bytes': return fmtBytes(value);
    default: return `${value.toFixed(2)} ${unit}`;
  }
}

function markOf(cell) {
  if (!cell.available) return { key: 'na', text: 'not measured' };
  if (cell.holds === true) return { key: 'holds', text: '✓ holds here' };
  if (cell.holds === false) return { key: 'fails', text: '✗ does not hold here' };
  return { key: 'none', text: 'no claim to check' };
}

// The figure a rerun's answer gives for a cell, read as the service reads it:
// a comparison's speedup of the cell's mode, an overhead measurement's
// median, or a run's tasks on a CPU at once (cpu_ms over wall time).
export function rerunFigure(rowId, cell, body) {
  if (!body || body.error) return null;
  if (cell.request.startsWith('/run/compare')) {
    const run = (body.runs || []).find((r) => r.mode === cell.measured);
    return run ? run.speedup : null;
  }
  if (cell.request.startsWith('/run/overhead')) {
    const fig = rowId === 'memory' ? body.memory_bytes : body.startup_us;
    return fig ? fig.median : null;
  }
  const tasks = body.tasks || [];
  if (!tasks.length || tasks.some((t) => typeof t.cpu_ms !== 'number') || !body.wall_ms) return null;
  return tasks.reduce((s, t) => s + t.cpu_ms, 0) / body.wall_ms;
}

function drawCell(tr, row, cell, hooks) {
  const mark = markOf(cell);
  const td = el('td', { class: `claim-cell ${mark.key}`, 'data-row': row.id, 'data-column': cell.column, 'data-holds': mark.key }, tr);
  const fig = el('p', { class: 'figure' }, td);
  el('b', { class: 'fig-value' }, fig, cell.available ? fmtFigure(cell.figure, cell.unit) : 'n/a');
  if (cell.measured && cell.measured !== cell.column) el('span', { class: 'small muted' }, fig, ` (mode ${cell.measured})`);
  el('p', { class: `mark ${mark.key}` }, td, mark.text);
  el('p', { class: 'small claim' }, td, `Claim: ${cell.claim}`);
  if (cell.available) el('p', { class: 'small muted rule' }, td, `Rule: ${cell.rule}`);
  else el('p', { class: 'small muted reason' }, td, cell.reason || 'not available');
  if (cell.note) el('p', { class: 'small muted note' }, td, cell.note);
  const again = el('p', { class: 'small rerun-row' }, td);
  const link = el('a', { href: cell.request, class: 'request' }, again);
  el('code', {}, link, cell.request);
  const btn = el('button', { type: 'button', class: 'rerun' }, again, 'Rerun');
  btn.setAttribute('aria-label', `Rerun ${row.id} ${cell.column}: ${cell.request}`);
  const out = el('span', { class: 'rerun-figure small', 'aria-live': 'polite' }, again);
  btn.addEventListener('click', async () => {
    btn.disabled = true;
    out.textContent = ' running…';
    try {
      const res = await fetch(cell.request, { headers: { Accept: 'application/json' }, cache: 'no-store' });
      const text = await res.text();
      let body;
      try { body = JSON.parse(text); } catch { body = undefined; }
      if (hooks.show) hooks.show(cell.request, body, text);
      const value = res.ok ? rerunFigure(row.id, cell, body) : null;
      out.dataset.value = value === null ? '' : String(value);
      out.textContent = value === null
        ? ` rerun: ${body && body.error ? `${res.status} ${body.error.message}` : 'no figure in the answer'}`
        : ` rerun: ${fmtFigure(value, cell.unit)}`;
    } catch (e) {
      out.textContent = ` rerun failed: ${e.message}`;
    } finally {
      btn.disabled = false;
    }
  });
}

// Draws the answer of /run/table into box.
export function renderTable(box, body, hooks = {}) {
  box.textContent = '';
  const rows = body.rows || [];
  const cells = rows.flatMap((r) => r.cells);
  const holds = cells.filter((c) => c.available && c.holds === true).length;
  const fails = cells.filter((c) => c.available && c.holds === false).length;
  const na = cells.filter((c) => !c.available).length;
  el('p', { class: 'summary table-summary' }, box,
    `Measured here in ${(body.wall_ms / 1000).toFixed(1)} s on ${body.cores} core${body.cores === 1 ? '' : 's'} ` +
    `and ${body.workers} worker process${body.workers === 1 ? '' : 'es'}: ${holds} claim${holds === 1 ? '' : 's'} hold, ` +
    `${fails} do${fails === 1 ? 'es' : ''} not, ${na} cell${na === 1 ? '' : 's'} not measured in this build.`);
  if (body.note) el('p', { class: 'small table-note' }, box, body.note);
  const scroller = el('div', { class: 'table-scroll' }, box);
  const table = el('table', { class: 'claims' }, scroller);
  el('caption', { class: 'sr-only' }, table, 'The tutorials\' comparison table, measured on this machine');
  const head = el('tr', {}, el('thead', {}, table));
  el('th', { scope: 'col' }, head, 'Row, and the tutorials\' words');
  for (const c of body.columns) el('th', { scope: 'col', 'data-column': c }, head, COLUMN_TITLES[c] || c);
  const tbody = el('tbody', {}, table);
  for (const row of rows) {
    const tr = el('tr', { 'data-row': row.id }, tbody);
    const th = el('th', { scope: 'row' }, tr);
    el('p', { class: 'row-label' }, th, row.label);
    el('blockquote', { class: 'tutorials small' }, th, row.tutorials);
    for (const cell of row.cells) drawCell(tr, row, cell, hooks);
  }
}

// Wires the view's button: one GET /run/table, drawn when it answers.
// hooks.show(path, body, text) is told of every response (the page's JSON
// and curl panel); hooks.busy(on) of the request's life.
export function initTable(hooks = {}) {
  const button = document.getElementById('table-run');
  const status = document.getElementById('table-status');
  const box = document.getElementById('table-out');
  if (!button || !status || !box) return;
  let ctl = null;
  button.addEventListener('click', async () => {
    if (ctl) ctl.abort();
    ctl = new AbortController();
    const mine = ctl;
    const t0 = performance.now();
    button.disabled = true;
    status.classList.remove('error');
    status.textContent = 'Measuring every cell (up to 30 s)…';
    const tick = setInterval(() => {
      status.textContent = `Measuring every cell… ${((performance.now() - t0) / 1000).toFixed(1)} s`;
    }, 250);
    try {
      const res = await fetch('/run/table', { signal: mine.signal, headers: { Accept: 'application/json' }, cache: 'no-store' });
      const text = await res.text();
      let body;
      try { body = JSON.parse(text); } catch { body = undefined; }
      if (hooks.show) hooks.show('/run/table', body, text);
      if (!res.ok || !body || body.error) {
        status.classList.add('error');
        status.textContent = `The table failed with status ${res.status}: ` +
          `${body && body.error ? body.error.message : res.statusText}`;
        return;
      }
      renderTable(box, body, hooks);
      status.textContent = `Done in ${((performance.now() - t0) / 1000).toFixed(1)} s.`;
    } catch (e) {
      status.textContent = e.name === 'AbortError' ? 'Cancelled.' : `No answer: ${e.message}`;
    } finally {
      clearInterval(tick);
      button.disabled = false;
      if (ctl === mine) ctl = null;
    }
  });
}
