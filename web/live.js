// Live runs: a /run/ request read as an event stream (Accept:
// text/event-stream; see the README's "Live runs"), turned into the same
// shapes the finished answer has, so that timeline.js draws a run while it
// goes on: a task appears when it starts, its bar grows until it ends, a
// comparison adds a timeline per mode as the mode starts.
//
// Nothing is drawn per event: events only update the partial body and mark
// it dirty; app.js draws at most once per animation frame (and less often
// when a drawing takes long), so 10,000 tasks that start at once cost one
// drawing, not 10,000. The last event is the body the JSON request would
// have answered, which app.js then draws as it always does.

const PROGRESS_KEYS = new Set(['mode', 'index', 'of', 'tasks', 'started', 'done', 'elapsed_ms']);

// Reads an event stream from a fetch Response; calls onEvent(name, data)
// for each event as it arrives. Resolves when the stream ends.
export async function readEvents(res, onEvent) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) {
      reader.releaseLock();
      break;
    }
    buf += decoder.decode(value, { stream: true });
    // One cut of the buffer per read, not per event: a read may hold
    // 10,000 events.
    let from = 0;
    let at;
    while ((at = buf.indexOf('\n\n', from)) >= 0) {
      const block = buf.slice(from, at);
      from = at + 2;
      let name = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) name = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      onEvent(name, data.join('\n'));
    }
    buf = buf.slice(from);
  }
}

// The partial answer of one streamed request, built from its events.
export class LiveRun {
  constructor(kind, t0) {
    this.kind = kind;       // 'run' or 'compare'
    this.t0 = t0;           // performance.now() when the request was sent
    this.admitted = null;
    this.runs = [];         // one partial run body per mode started
    this.current = null;    // the run of the mode going on
    this.modeAt = t0;       // when it started (its times count from there)
    this.final = null;      // { name: 'final'|'error', body }
    this.dirty = false;
    this.events = 0;
  }

  onEvent(name, data) {
    this.events++;
    let e;
    try { e = JSON.parse(data); } catch { return; }
    switch (name) {
      case 'admitted':
        this.admitted = e;
        if (this.kind === 'run') this.startMode(e.modes[0], this.t0);
        break;
      case 'mode':
        if (e.phase === 'start') this.startMode(e.mode, performance.now());
        else if (this.current) {
          this.current.wall_ms = e.wall_ms;
          this.current.done = true;
        }
        break;
      case 'task-start':
      case 'task-end': {
        const run = this.current;
        if (!run) break;
        let t = run.byId.get(e.id);
        if (!t) {
          t = { id: e.id, worker: e.worker || { kind: 'main', id: 0 }, start_ms: e.start_ms, end_ms: e.start_ms };
          run.byId.set(e.id, t);
          run.tasks.push(t);
          run.started++;
        }
        if (name === 'task-end') {
          Object.assign(t, e);
          delete t.mode;
          if (!t.ended) run.ended++;
          t.ended = true;
        }
        run.seenMs = Math.max(run.seenMs, e.end_ms || e.start_ms || 0);
        break;
      }
      case 'progress':
        if (this.current) {
          this.current.started = Math.max(this.current.started, e.started);
          this.current.ended = Math.max(this.current.ended, e.done);
          // The demo's own figure, if any (prime: numbers checked).
          const own = Object.keys(e).filter((k) => !PROGRESS_KEYS.has(k));
          this.current.own = own.map((k) => `${Number(e[k]).toLocaleString('en-US')} ${k}`).join(', ');
        }
        break;
      case 'coalesced':
        break; // the counts come with the progress event that follows
      case 'final':
      case 'error':
        this.final = { name, body: e };
        break;
      default:
        return;
    }
    this.dirty = true;
  }

  startMode(mode, at) {
    const a = this.admitted || {};
    const k = (a.modes || []).indexOf(mode);
    this.current = {
      estimateMs: k >= 0 && a.estimate_ms ? a.estimate_ms[k] : 0,
      demo: a.demo, mode, params: a.params, result: {}, wall_ms: 0, tasks: [],
      byId: new Map(), started: 0, ended: 0, total: a.tasks || 0, seenMs: 0, done: false,
    };
    this.modeAt = at;
    this.runs.push(this.current);
  }

  // The current mode's clock, in the server's ms (never behind what the
  // events already said).
  nowMs(now = performance.now()) {
    const run = this.current;
    return Math.max(now - this.modeAt, run ? run.seenMs : 0);
  }

  // What timeline.js draws now: { kind, body } in the finished answer's
  // shape, running tasks reaching to the present.
  // The time axis of a live drawing: the run's estimate while it holds,
  // so that bars grow across a still axis.
  axisMs() {
    const now = this.nowMs();
    const est = Math.max(0, ...this.runs.map((r) => r.estimateMs || 0));
    const ends = this.runs.map((r) => (r.done ? r.wall_ms : now));
    return Math.max(est * 1.1, now, ...ends);
  }

  snapshot(cores) {
    const now = this.nowMs();
    const runs = this.runs.map((run) => {
      const live = run === this.current && !run.done;
      const wall = live ? now : run.wall_ms;
      const tasks = run.tasks.map((t) => (t.ended ? t : { ...t, end_ms: Math.max(t.start_ms, wall) }));
      return { demo: run.demo, mode: run.mode, params: run.params, result: run.result, wall_ms: wall, tasks };
    });
    this.dirty = false;
    const axisMs = this.axisMs();
    if (this.kind === 'run') return { kind: 'run', axisMs, body: runs[0] ? { ...runs[0], live: true } : null };
    const seq = runs.length && this.runs[0].done ? runs[0].wall_ms : 0;
    for (const r of runs) r.speedup = seq && r.wall_ms > 0 ? seq / r.wall_ms : 0;
    const total = performance.now() - this.t0;
    return {
      kind: 'compare',
      axisMs,
      body: { demo: (this.admitted || {}).demo, cores, wall_ms: total, runs, live: true },
    };
  }

  // "mode 2 of 4, 37 of 64 tasks done" (or the tasks alone for one run).
  progressText() {
    const run = this.current;
    if (!run) return 'admitted, starting…';
    const tasks = `${run.ended.toLocaleString('en-US')} of ${run.total.toLocaleString('en-US')} tasks done` +
      (run.own ? ` (${run.own})` : '');
    if (this.kind !== 'compare') return tasks;
    const modes = (this.admitted && this.admitted.modes) || [];
    return `mode ${this.runs.length} of ${modes.length} (${run.mode}), ${tasks}`;
  }
}
