// The demo picker and one form per demo, read from the service's own OpenAPI
// document (GET /openapi.json), so that a demo added to the service's
// registry appears here with its bounds and modes and nothing in web/ changes.
//
// What is read, per demo D of components.parameters["compare.demo"].schema.enum
// (in that order):
//   paths["/run/D"].get                      the operation
//   paths["/run/D"].post, paths["/run/compare"].post
//                                            with an application/json
//                                            requestBody: long lists go
//                                            there as a JSON body (jsonBody())
//     .summary                               the form's heading
//     ["x-conlab-lesson"]                    what to look for (plain text;
//                                            blank lines split paragraphs);
//                                            else the operation's description
//     ["x-conlab-label"]                     short tag in the picker, or none
//     ["x-conlab-exclusive"]                 groups of parameters that exclude
//                                            each other; the first is the one
//                                            the form starts with, the others
//                                            are offered "instead"
//     .parameters (and the path item's)      $refs resolved; only in: query
//   per query parameter: name, description, schema (integer: minimum,
//   maximum, default; string: enum, default; array: minItems, maxItems,
//   items.minimum/maximum, with explode true = repeated, false = comma list),
//   example, and the extensions x-conlab-form-value (the value the form starts
//   with), x-conlab-default-from (the default is a server option),
//   x-conlab-max-by-mode (mode -> maximum), x-conlab-max-count-of (at most the
//   number of items of another parameter), x-conlab-scales-time, and
//   x-conlab-max-from (the maximum is the server's, e.g. its online CPUs:
//   the field starts empty, the API default, and has no max of its own); a
//   parameter with x-conlab-not-in-form (the form of the answer: format,
//   stream) gets no field (the page asks for its event stream by the Accept
//   header).
// The parameter named "mode" is the demo's list of modes (schema.enum) and its
// default mode (schema.default).
//
// Nothing here talks to the network: app.js fetches the document and hands it
// over. Test hooks: #demo-D radios, #form-D forms (data-demo, data-modes),
// inputs #D-NAME with their hint #D-NAME-hint, data-default (the API's
// default, a list comma-joined, absent when there is none) and data-default-from.

const REF_HOPS_MAX = 16;

const fmt = (n) => Number(n).toLocaleString('en-US');

// ---- Reading the document ---------------------------------------------------

// Follows local $refs ("#/components/parameters/x") until a real object.
function deref(doc, node) {
  for (let hops = 0; node && typeof node === 'object' && typeof node.$ref === 'string'; hops++) {
    if (hops >= REF_HOPS_MAX || !node.$ref.startsWith('#/')) throw new Error(`cannot resolve ${node.$ref}`);
    const ref = node.$ref;
    node = ref.slice(2).split('/')
      .map((s) => decodeURIComponent(s).replace(/~1/g, '/').replace(/~0/g, '~'))
      .reduce((at, key) => (at && typeof at === 'object' ? at[key] : undefined), doc);
    if (node === undefined) throw new Error(`${ref} is not in the document`);
  }
  return node;
}

function has(obj, key) {
  return obj !== null && typeof obj === 'object' && Object.prototype.hasOwnProperty.call(obj, key);
}

// The operation's query parameters, the path item's merged under the
// operation's (the operation wins on the same name and location).
function queryParams(doc, pathItem, op) {
  const byKey = new Map();
  for (const raw of [...(pathItem.parameters || []), ...(op.parameters || [])]) {
    const p = deref(doc, raw);
    if (p && p.name) byKey.set(`${p.in}:${p.name}`, p);
  }
  return [...byKey.values()].filter((p) => p.in === 'query' && p['x-conlab-not-in-form'] !== true);
}

function inputKind(schema, param) {
  switch (schema.type) {
    case 'integer': return 'integer';
    case 'number': return 'number';
    case 'boolean': return 'boolean';
    case 'array': return param.explode === false ? 'list' : 'lines';
    default: return Array.isArray(schema.enum) ? 'enum' : 'string';
  }
}

// The text a field starts with, for its kind.
function asFieldText(value, kind) {
  if (value === undefined || value === null) return '';
  if (Array.isArray(value)) return value.join(kind === 'lines' ? '\n' : ',');
  return String(value);
}

function readParam(doc, demo, raw, groupOf) {
  const schema = deref(doc, raw.schema) || {};
  const items = deref(doc, schema.items) || {};
  const kind = inputKind(schema, raw);
  const group = groupOf.has(raw.name) ? groupOf.get(raw.name) : -1;
  const p = {
    name: raw.name,
    description: raw.description || '',
    kind,
    schema,
    items,
    min: schema.minimum,
    // A maximum the server sets (its CPUs) is not the schema's.
    max: raw['x-conlab-max-from'] ? undefined : schema.maximum,
    hasDefault: has(schema, 'default'),
    apiDefault: schema.default,
    defaultFrom: raw['x-conlab-default-from'] || null,
    maxFrom: raw['x-conlab-max-from'] || null,
    maxByMode: raw['x-conlab-max-by-mode'] || null,
    maxCountOf: raw['x-conlab-max-count-of'] || null,
    scalesTime: raw['x-conlab-scales-time'] === true,
    enum: Array.isArray(schema.enum) ? schema.enum.map(String) : null,
    group,
    alternative: group > 0,
  };
  // An alternative starts empty (filling it is the choice), unless the
  // document says otherwise.
  let start;
  if (has(raw, 'x-conlab-form-value')) start = raw['x-conlab-form-value'];
  else if (p.alternative || p.maxFrom) start = undefined;
  else if (p.hasDefault) start = schema.default;
  else if (has(raw, 'example')) start = raw.example;
  else if (has(schema, 'example')) start = schema.example;
  else if (kind === 'integer' || kind === 'number') start = schema.minimum;
  else if (p.enum) start = p.enum[0];
  p.formValue = asFieldText(start, kind);
  p.example = has(raw, 'example') ? raw.example : schema.example;
  return p;
}

// True when the path item has a POST that takes an application/json body.
function takesJson(doc, pathItem) {
  const op = pathItem && deref(doc, pathItem.post);
  const body = op && deref(doc, op.requestBody);
  return Boolean(body && body.content && has(body.content, 'application/json'));
}

// Reads the demos out of an OpenAPI document. Returns { demos, skipped }:
// demos in the order of compare.demo's enum; skipped names the enum entries
// that have no GET /run/<demo> (the page says so instead of failing).
// Throws when the document has no list of demos at all.
export function readDemos(doc) {
  const list = doc && doc.components && doc.components.parameters &&
    deref(doc, doc.components.parameters['compare.demo']);
  const names = list && deref(doc, list.schema) && deref(doc, list.schema).enum;
  if (!Array.isArray(names) || !names.length) {
    throw new Error('the document lists no demos (components.parameters["compare.demo"].schema.enum)');
  }
  const demos = [];
  const skipped = [];
  for (const name of names.map(String)) {
    const pathItem = doc.paths && deref(doc, doc.paths[`/run/${name}`]);
    const op = pathItem && deref(doc, pathItem.get);
    if (!op) { skipped.push(name); continue; }
    const exclusive = Array.isArray(op['x-conlab-exclusive'])
      ? op['x-conlab-exclusive'].filter(Array.isArray).map((g) => g.map(String)) : [];
    const groupOf = new Map();
    exclusive.forEach((g, i) => g.forEach((n) => { if (!groupOf.has(n)) groupOf.set(n, i); }));
    const params = queryParams(doc, pathItem, op).map((raw) => readParam(doc, name, raw, groupOf));
    const mode = params.find((p) => p.name === 'mode' && p.enum && p.enum.length);
    const lesson = typeof op['x-conlab-lesson'] === 'string' && op['x-conlab-lesson'].trim()
      ? op['x-conlab-lesson'] : (op.description || pathItem.description || '');
    demos.push({
      name,
      summary: op.summary || pathItem.summary || '',
      lesson,
      label: typeof op['x-conlab-label'] === 'string' ? op['x-conlab-label'] : '',
      params,
      modes: mode ? mode.enum : null,
      defaultMode: mode ? mode.formValue || mode.enum[0] : null,
      exclusive,
      // A POST with a JSON body, for lists too long for a query.
      post: takesJson(doc, pathItem),
      comparePost: takesJson(doc, doc.paths && deref(doc, doc.paths['/run/compare'])),
    });
  }
  return { demos, skipped };
}

// ---- Text -------------------------------------------------------------------

// OpenAPI descriptions are CommonMark; the only markup drawn here is
// `code`, the rest stays plain text (never innerHTML).
function inlineText(parent, text) {
  text.split('`').forEach((part, i) => {
    if (!part) return;
    if (i % 2) el('code', {}, parent, part);
    else parent.appendChild(document.createTextNode(part));
  });
}

function range(min, max) {
  if (min !== undefined && max !== undefined) return `${fmt(min)} – ${fmt(max)}`;
  if (min !== undefined) return `${fmt(min)} or more`;
  if (max !== undefined) return `at most ${fmt(max)}`;
  return '';
}

function pluralOf(items) {
  if (items.format === 'uri') return 'URLs';
  if (items.type === 'integer') return 'integers';
  if (items.type === 'number') return 'numbers';
  return 'values';
}

// The bounds of one item of a list: "each within ±N" when symmetric.
function itemRange(items) {
  if (items.minimum !== undefined && items.maximum !== undefined && items.minimum === -items.maximum) {
    return `each within ±${fmt(items.maximum)}`;
  }
  const r = range(items.minimum, items.maximum);
  return r ? `each ${r}` : '';
}

// "1 – 10,000 in async, 1 – 1,000 otherwise": the most common maximum is
// "otherwise" (on a tie, the schema's maximum), the others are named by their
// modes.
function byModeText(p, modes) {
  const counts = new Map();
  const maxOf = (m) => (p.maxByMode[m] !== undefined ? p.maxByMode[m] : p.max);
  for (const m of modes) counts.set(maxOf(m), (counts.get(maxOf(m)) || 0) + 1);
  if (counts.size <= 1) return range(p.min, maxOf(modes[0]));
  const common = [...counts.entries()]
    .sort((a, b) => b[1] - a[1] || (b[0] === p.max) - (a[0] === p.max))[0][0];
  const parts = [...counts.keys()].filter((v) => v !== common).map((v) =>
    `${range(p.min, v)} in ${modes.filter((m) => maxOf(m) === v).join(', ')}`);
  return `${parts.join('; ')}, ${range(p.min, common)} otherwise`;
}

function hintText(p, demo, currentMax) {
  let text = '';
  switch (p.kind) {
    case 'integer':
    case 'number':
      text = p.maxByMode && demo.modes ? byModeText(p, demo.modes) : range(p.min, currentMax);
      if (p.maxFrom) text = `${fmt(p.min)} – the server's ${p.maxFrom}; empty: all of them`;
      if (p.maxCountOf) text = `${range(p.min, currentMax)} (at most the count of ${p.maxCountOf})`;
      break;
    case 'list': {
      const n = range(p.schema.minItems, p.schema.maxItems);
      text = [`comma list of ${n ? `${n} ` : ''}${pluralOf(p.items)}`, itemRange(p.items)].join(', ');
      if (text.endsWith(', ')) text = text.slice(0, -2);
      break;
    }
    case 'lines': {
      const n = range(p.schema.minItems, p.schema.maxItems);
      text = `one per line, ${n ? `${n} ` : ''}${pluralOf(p.items)}`;
      break;
    }
    case 'string':
      if (p.schema.minLength !== undefined || p.schema.maxLength !== undefined) {
        text = `${range(p.schema.minLength, p.schema.maxLength)} characters`;
      }
      break;
    default:
      break;
  }
  if (p.name === 'mode' && demo.modes) text = 'for Run only';
  if (p.alternative) {
    const others = demo.params.filter((q) => q.group >= 0 && q.group !== p.group).map((q) => q.name);
    if (others.length) text += `${text ? '; ' : ''}when set, ${others.join(' and ')} ${others.length > 1 ? 'are' : 'is'} not sent`;
  }
  return text;
}

// ---- Building the forms --------------------------------------------------------

function el(tag, attrs, parent, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    node.setAttribute(k, v === true ? '' : String(v));
  }
  if (text !== undefined) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
}

function exampleText(p) {
  let ex = Array.isArray(p.example) ? p.example[0] : p.example;
  if (ex === undefined) return '';
  // A self URL in the document names the port it was written for; show this
  // server's instead, so the placeholder is a target that works.
  if (p.items.format === 'uri') {
    try {
      const u = new URL(String(ex));
      if (u.hostname === '127.0.0.1' || u.hostname === 'localhost') ex = location.origin + u.pathname + u.search;
    } catch { /* not a URL: show it as it is */ }
  }
  return String(ex);
}

function buildField(demo, p, parent) {
  const id = `${demo.name}-${p.name}`;
  const hint = hintText(p, demo, p.max);
  const wide = p.kind === 'list' || p.kind === 'lines';
  const box = el('div', { class: wide ? 'field wide' : 'field', 'data-param': p.name }, parent);
  const label = el('label', { for: id }, box, p.alternative ? `${p.name} instead ` : p.name);
  if (p.alternative) el('span', { class: 'optional' }, label, '(optional)');
  const common = {
    id, name: p.name, 'aria-describedby': hint ? `${id}-hint` : null,
    'data-default': p.hasDefault ? asFieldText(p.apiDefault, 'list') : null,
    'data-default-from': p.defaultFrom,
  };
  let input;
  if (p.enum || p.kind === 'boolean') {
    input = el('select', common, box);
    for (const v of p.enum || ['true', 'false']) {
      el('option', { selected: v === p.formValue }, input, v);
    }
  } else if (p.kind === 'lines') {
    const ex = exampleText(p);
    input = el('textarea', {
      ...common, rows: 2, spellcheck: 'false', autocomplete: 'off',
      placeholder: ex ? `one per line, e.g. ${ex}` : 'one per line',
    }, box);
    input.value = p.formValue;
  } else if (p.kind === 'integer' || p.kind === 'number') {
    input = el('input', {
      ...common, type: 'number', inputmode: p.kind === 'integer' ? 'numeric' : 'decimal',
      min: p.min, max: p.max, step: p.kind === 'integer' ? 1 : 'any', value: p.formValue,
    }, box);
  } else {
    input = el('input', {
      ...common, type: 'text', spellcheck: 'false', autocomplete: 'off', value: p.formValue,
      minlength: p.schema.minLength, maxlength: p.schema.maxLength,
    }, box);
  }
  if (hint) el('small', { id: `${id}-hint` }, box, hint);
  return input;
}

function buildDocs(demo, parent) {
  const details = el('details', { class: 'param-docs' }, parent);
  el('summary', {}, details, 'What the parameters mean');
  const dl = el('dl', {}, details);
  for (const p of demo.params) {
    el('code', {}, el('dt', {}, dl), p.name);
    const dd = el('dd', {}, dl);
    inlineText(dd, p.description);
    const notes = [];
    if (p.hasDefault) notes.push(`API default: ${asFieldText(p.apiDefault, 'list')}.`);
    else if (p.defaultFrom) notes.push(`API default: the server's ${p.defaultFrom}.`);
    if (p.scalesTime) notes.push('The run takes longer as it grows.');
    if (notes.length) dd.appendChild(document.createTextNode(`${p.description ? ' ' : ''}${notes.join(' ')}`));
  }
}

function buildForm(demo, parent) {
  const form = el('form', {
    id: `form-${demo.name}`, class: 'demo-form', 'data-demo': demo.name,
    'data-modes': demo.modes ? demo.modes.join(' ') : '', 'aria-labelledby': `form-${demo.name}-h`,
  }, parent);
  el('h3', { id: `form-${demo.name}-h`, class: 'demo-title' }, form, demo.summary || demo.name);
  for (const para of demo.lesson.split(/\n\s*\n/).map((s) => s.trim()).filter(Boolean)) {
    inlineText(el('p', { class: 'explain' }, form), para);
  }
  const fields = el('div', { class: 'fields' }, form);
  // Alternatives come last, as the "instead" they are.
  const ordered = [...demo.params.filter((p) => !p.alternative), ...demo.params.filter((p) => p.alternative)];
  for (const p of ordered) buildField(demo, p, fields);
  const actions = el('div', { class: 'actions' }, form);
  el('button', { type: 'submit', class: 'primary', name: 'action', value: 'run' }, actions, 'Run');
  if (demo.modes && demo.modes.length > 1) {
    el('button', { type: 'submit', name: 'action', value: 'compare' }, actions, 'Compare all modes');
  }
  if (demo.params.length) buildDocs(demo, form);
  form.demo = demo;
  syncForm(form);
  return form;
}

// Builds the picker (radios in `picker`) and the forms (in `forms`); the
// first demo is shown. Replaces whatever they held.
export function buildDemoUi(picker, forms, demos) {
  picker.textContent = '';
  forms.textContent = '';
  demos.forEach((demo, i) => {
    el('input', { type: 'radio', name: 'demo', id: `demo-${demo.name}`, value: demo.name, checked: i === 0 }, picker);
    const label = el('label', { for: `demo-${demo.name}` }, picker, demo.name);
    if (demo.label) {
      label.appendChild(document.createTextNode(' '));
      el('small', {}, label, demo.label);
    }
    const form = buildForm(demo, forms);
    form.hidden = i !== 0;
  });
}

// ---- Behaviour -----------------------------------------------------------------

function itemsOf(p, text) {
  const parts = p.kind === 'lines' ? text.split(/\s+/) : text.split(',');
  return parts.map((s) => s.trim()).filter(Boolean);
}

function fieldOf(form, name) {
  const f = form.elements.namedItem(name);
  return f && f.name === name ? f : null;
}

// The exclusive group in use: an alternative that holds a value wins over
// the first group (the form's starting choice).
function chosenGroup(form) {
  const demo = form.demo;
  for (const p of demo.params) {
    if (!p.alternative) continue;
    const f = fieldOf(form, p.name);
    if (f && f.value.trim() !== '') return p.group;
  }
  return demo.exclusive.length ? 0 : -1;
}

function unused(p, chosen) {
  return p.group >= 0 && chosen >= 0 && p.group !== chosen;
}

// Bounds that depend on other fields (the mode, the count of a list) and the
// exclusive groups: run on every input and change of the form.
export function syncForm(form) {
  const demo = form.demo;
  const mode = demo.modes ? (fieldOf(form, 'mode') || {}).value : null;
  const chosen = chosenGroup(form);
  for (const p of demo.params) {
    const f = fieldOf(form, p.name);
    if (!f) continue;
    // Only a bound that moves is written again: the others stay as built.
    if ((p.kind === 'integer' || p.kind === 'number') && (p.maxByMode || p.maxCountOf)) {
      let max = p.max;
      if (p.maxByMode && mode && p.maxByMode[mode] !== undefined) max = p.maxByMode[mode];
      if (p.maxCountOf) {
        const other = demo.params.find((q) => q.name === p.maxCountOf);
        const of = other && fieldOf(form, other.name);
        if (of) {
          const n = itemsOf(other, of.value).length;
          max = Math.max(p.min !== undefined ? p.min : 1, max !== undefined ? Math.min(max, n || 1) : n || 1);
          const hint = form.querySelector(`#${CSS.escape(`${demo.name}-${p.name}-hint`)}`);
          if (hint) hint.textContent = hintText(p, demo, max);
        }
      }
      if (max !== undefined) f.max = String(max);
    }
    // Greyed out: what an alternative in use replaces. An empty alternative
    // is not greyed, it is the choice on offer.
    const off = unused(p, chosen) && !p.alternative;
    f.closest('.field').classList.toggle('unused', off);
    f.required = !off && !p.alternative && p.formValue !== '' && p.kind !== 'boolean' && !p.enum;
  }
}

// The query of a Run (action "run") or a Compare ("compare") of this form, as
// [name, value] pairs in the order they are sent: compare's demo first, mode
// last; unused alternatives and empty fields left out; a repeated parameter
// once per line.
export function queryPairs(form, action) {
  const demo = form.demo;
  const pairs = [];
  if (action === 'compare') pairs.push(['demo', demo.name]);
  const chosen = chosenGroup(form);
  for (const p of demo.params) {
    const f = fieldOf(form, p.name);
    if (!f || f.disabled || unused(p, chosen)) continue;
    if (p.name === 'mode' && demo.modes && action === 'compare') continue;
    if (p.kind === 'lines') {
      for (const v of itemsOf(p, f.value)) pairs.push([p.name, v]);
      continue;
    }
    const v = fieldValue(f);
    if (v !== '') pairs.push([p.name, v]);
  }
  // mode last reads best: /run/prime?limit=..&tasks=..&mode=threads
  pairs.sort((a, b) => (a[0] === 'mode') - (b[0] === 'mode'));
  return pairs;
}

function fieldValue(f) {
  if (f.type === 'number' && f.value !== '' && Number.isFinite(f.valueAsNumber) &&
      Number.isInteger(f.valueAsNumber)) {
    return String(f.valueAsNumber);
  }
  return f.value.trim();
}

// The same parameters as queryPairs(), as the text of one JSON object (a POST
// body): an integer or a list item that reads as an integer is written as its
// digits (exactly as typed, so no precision is lost), a real (a `number`
// parameter) that reads as a JSON number as its text, a list is an array, a
// repeated parameter an array of strings, anything else a string. What does
// not read as its type is sent as a string, so the server's 400 names it.
export function jsonBody(form, action) {
  const demo = form.demo;
  const byName = new Map(demo.params.map((p) => [p.name, p]));
  const number = (v) => (/^-?(0|[1-9][0-9]*)$/.test(v) ? v : JSON.stringify(v));
  const real = (v) => (/^-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?$/.test(v) ? v : JSON.stringify(v));
  const members = new Map();
  for (const [name, v] of queryPairs(form, action)) {
    const p = byName.get(name);
    const kind = name === 'demo' && action === 'compare' ? 'string' : p ? p.kind : 'string';
    if (kind === 'lines') {
      if (!members.has(name)) members.set(name, []);
      members.get(name).push(JSON.stringify(v));
    } else if (kind === 'list') {
      members.set(name, `[${itemsOf(p, v).map(number).join(',')}]`);
    } else if (kind === 'integer') {
      members.set(name, number(v));
    } else if (kind === 'number') {
      members.set(name, real(v));
    } else {
      members.set(name, JSON.stringify(v));
    }
  }
  const text = [...members].map(([k, v]) => `${JSON.stringify(k)}:${Array.isArray(v) ? `[${v.join(',')}]` : v}`);
  return `{${text.join(',')}}`;
}
