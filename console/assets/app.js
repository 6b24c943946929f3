'use strict';
// Hookline console: a hash-routed page over the console's /api/v1.
// Bodies and headers shown here are untrusted input from the internet, so every node is
// built with createElement / textContent, never from HTML strings.

const API = '/api/v1';
const SVG_NS = 'http://www.w3.org/2000/svg';
const SERIES = [
  { key: 'accepted', label: 'Accepted' },
  { key: 'stored', label: 'Stored' },
  { key: 'dead_lettered', label: 'Dead-lettered' },
];
const EVENT_FILTERS = ['webhook_id', 'event_type', 'event_id', 'since', 'until', 'q'];
const DEAD_LETTER_FILTERS = ['webhook_id', 'reason', 'since', 'until', 'replayed'];
const REPLAY_SELECTION = ['webhook_id', 'reason', 'since', 'until'];
const LIVE_SECONDS = 60;
const LIVE_LIST_SIZE = 50;

const state = { session: null, webhooks: [] };
let page = null; // the page on screen (a Page)

const view = document.getElementById('view');
const navBar = document.querySelector('.nav');
const userBox = document.querySelector('.user');
const errorBanner = document.querySelector('[data-testid="error"]');
const dialog = document.querySelector('[data-testid="confirm-dialog"]');

// ---------- DOM helpers ----------

function build(node, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value == null || value === false) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    node.append(child instanceof Node ? child : String(child)); // strings become text nodes
  }
  return node;
}

const el = (tag, attrs, ...children) => build(document.createElement(tag), attrs, children);
const put = (parent, ...children) => build(parent, null, children); // append, skipping null/false
const svg = (tag, attrs, ...children) => build(document.createElementNS(SVG_NS, tag), attrs, children);

const enc = encodeURIComponent;
const fmt = (n, digits = 0) => Number(n).toLocaleString(undefined, { maximumFractionDigits: digits });
const plural = (n, one, many) => `${fmt(n)} ${n === 1 ? one : many}`;
const dash = () => el('span', { class: 'muted' }, '—');
const orDash = (value) => (value == null || value === '' ? dash() : value);
const code = (value) => (value == null || value === '' ? dash() : el('code', {}, value));

function localTime(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

// Local time on screen, the ISO value from the API on hover; `clock`: the time of day only.
function timeEl(iso, clock = false) {
  if (!iso) return dash();
  const date = new Date(iso);
  const text = clock && !Number.isNaN(date.getTime()) ? date.toLocaleTimeString() : localTime(iso);
  return el('time', { datetime: iso, title: iso }, text);
}

function formatBytes(n) {
  if (n < 1024) return `${fmt(n)} B`;
  if (n < 1024 * 1024) return `${fmt(n / 1024, 1)} KiB`;
  return `${fmt(n / (1024 * 1024), 1)} MiB`;
}

function qs(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value != null && value !== '') search.set(key, value);
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

function pick(source, keys) {
  const out = {};
  for (const key of keys) if (source[key]) out[key] = source[key];
  return out;
}

// datetime-local inputs speak the browser's local time; the API and the hash speak RFC 3339 UTC.
function toLocalInput(iso) {
  const date = new Date(iso || '');
  if (Number.isNaN(date.getTime())) return '';
  const p = (n) => String(n).padStart(2, '0');
  const seconds = date.getSeconds() ? `:${p(date.getSeconds())}` : '';
  const day = `${date.getFullYear()}-${p(date.getMonth() + 1)}-${p(date.getDate())}`;
  return `${day}T${p(date.getHours())}:${p(date.getMinutes())}${seconds}`;
}

function fromLocalInput(value) {
  const date = new Date(value); // a date-time without offset is read as local time
  return value && !Number.isNaN(date.getTime()) ? date.toISOString().replace('.000Z', 'Z') : '';
}

// ---------- API ----------

class ApiError extends Error {
  constructor(status, errorCode, message) {
    super(message);
    this.status = status;
    this.code = errorCode;
  }
}

async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin' };
  if (method !== 'GET') {
    headers['Content-Type'] = 'application/json';
    if (state.session) headers['X-CSRF-Token'] = state.session.csrf_token;
    if (body !== undefined) init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(API + path, init);
  } catch {
    throw new ApiError(0, 'network', 'The console server did not answer: check the connection and try again.');
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    throw new ApiError(response.status, data?.error || `http_${response.status}`,
      data?.message || `The server answered ${response.status} ${response.statusText}.`);
  }
  return data;
}

async function fetchWebhooks() {
  state.webhooks = (await api('GET', '/webhooks')).items;
  return state.webhooks;
}

function webhookLabel(webhookId) {
  const hook = state.webhooks.find((w) => w.webhook_id === webhookId);
  return hook ? `${hook.namespace}/${hook.name}` : webhookId;
}

const isOperator = () => state.session?.role === 'operator';

// ---------- error banner, dialog, clipboard ----------

function showError(message) {
  errorBanner.querySelector('.error-text').textContent = message;
  errorBanner.hidden = false;
}

function hideError() {
  errorBanner.hidden = true;
}

// A 401 on a signed-in page means the session ended: back to the login form, same route.
function fail(err) {
  if (err.status === 401 && state.session) {
    showLogin();
    showError('Your session has ended: sign in again.');
    return;
  }
  showError(err.message || String(err));
}

// The one confirmation dialog (a <dialog>, not window.confirm): true only on its confirm button.
function confirmDialog(text) {
  if (dialog.open) return Promise.resolve(false);
  dialog.querySelector('[data-testid="confirm-text"]').textContent = text;
  dialog.returnValue = ''; // Escape keeps the previous value otherwise
  dialog.showModal();
  dialog.querySelector('[data-testid="confirm-cancel"]').focus();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
  });
}

// navigator.clipboard exists only in secure contexts; plain-HTTP consoles get execCommand.
async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // permission refused: try the old way
    }
  }
  const area = el('textarea', { class: 'offscreen', readonly: true });
  area.value = text;
  document.body.append(area);
  area.select();
  let copied;
  try {
    copied = document.execCommand('copy');
  } catch {
    copied = false;
  }
  area.remove();
  return copied;
}

function copyButton(text) {
  const button = el('button', { type: 'button', class: 'secondary small', 'data-testid': 'copy' }, 'Copy');
  button.addEventListener('click', async () => {
    button.textContent = (await copyText(text)) ? 'Copied' : 'Copy failed';
    setTimeout(() => { button.textContent = 'Copy'; }, 1500);
  });
  return button;
}

// ---------- building blocks ----------

// What one route shows; leave() undoes its side effects (EventSource, observers).
class Page {
  constructor() {
    this.root = el('div', { class: 'page' });
    this.cleanups = [];
    this.left = false;
  }

  get current() {
    return page === this;
  }

  onLeave(fn) {
    if (this.left) fn();
    else this.cleanups.push(fn);
  }

  leave() {
    this.left = true;
    for (const fn of this.cleanups.splice(0)) fn();
  }

  // Wraps an async handler: its API failures land in the banner unless the page was left.
  act(fn) {
    return (...args) => fn(...args).catch((err) => { if (this.current) fail(err); });
  }
}

function heading(pg, title, ...extra) {
  document.title = `${title} · Hookline`;
  put(pg.root, el('h1', {}, title, extra.length ? ' ' : '', extra));
}

async function loading(parent, promise) {
  const note = el('p', { class: 'loading', role: 'status' }, 'Loading…');
  parent.append(note);
  try {
    return await promise;
  } finally {
    note.remove();
  }
}

// Tables live in a wrapper that scrolls sideways, so a wide table never widens a phone's page.
function dataTable(testid, headRows) {
  const headCell = (cell) => {
    const [label, attrs] = Array.isArray(cell) ? cell : [cell, {}];
    return el('th', { scope: 'col', ...attrs }, label);
  };
  const tbody = el('tbody');
  const thead = el('thead', {}, headRows.map((cells) => el('tr', {}, cells.filter(Boolean).map(headCell))));
  const wrap = el('div', { class: 'table-wrap' }, el('table', { 'data-testid': testid }, thead, tbody));
  return { wrap, tbody };
}

// The whole row opens `href`, except clicks on its own links/buttons or while selecting text.
function clickable(row, href) {
  row.classList.add('clickable');
  row.addEventListener('click', (event) => {
    const selection = window.getSelection();
    if (event.target.closest('a, button') || (!selection.isCollapsed && row.contains(selection.anchorNode))) return;
    location.hash = href;
  });
  return row;
}

function facts(pairs) {
  return el('dl', { class: 'facts' }, pairs.map(([term, value]) => [el('dt', {}, term), el('dd', {}, orDash(value))]));
}

function section(title, ...content) {
  return el('section', {}, el('h2', {}, title), content);
}

function headersTable(testid, headers) {
  const { wrap, tbody } = dataTable(testid, [[['Name', { class: 'key' }], 'Value']]);
  const names = Object.keys(headers || {}).sort();
  for (const name of names) {
    tbody.append(el('tr', {},
      el('th', { scope: 'row' }, el('code', {}, name)),
      el('td', { class: 'wrap' }, String(headers[name]))));
  }
  if (!names.length) tbody.append(el('tr', {}, el('td', { colspan: 2, class: 'muted' }, 'No headers')));
  return wrap;
}

function redactedNote(names) {
  if (!names || !names.length) return null;
  return el('p', { class: 'note' }, 'Redacted, never shown: ', names.map((n, i) => [i ? ', ' : '', el('code', {}, n)]));
}

function bodyText(record) {
  if (record.body_is_json) {
    try {
      return JSON.stringify(JSON.parse(record.body), null, 2);
    } catch {
      // not JSON after all: show it as received
    }
  }
  return record.body;
}

function bodyBlock(testid, record) {
  const text = bodyText(record);
  return el('pre', { class: 'body', 'data-testid': testid }, text === '' ? '(empty body)' : text);
}

function statusBadge(status) {
  const labels = { ready: 'Ready', not_ready: 'Not ready', suspended: 'Suspended', pending: 'Pending' };
  return el('span', { class: `badge badge-${status}` }, labels[status] || status);
}

// Line breaks are allowed after each slash, so a long URL wraps where it reads well.
function endpointView(url) {
  if (!url) return dash();
  const pieces = url.split(/(?<=\/)(?=[^/])/);
  return el('span', { class: 'endpoint' },
    el('code', {}, pieces.map((piece, i) => [i ? el('wbr') : null, piece])), copyButton(url));
}

function webhookOptions(webhooks) {
  return [['', 'All webhooks'], ...webhooks.filter((w) => w.webhook_id).map((w) => [w.webhook_id, `${w.namespace}/${w.name}`])];
}

// A filter form whose values go to the hash query (so a link reproduces the view).
function filterForm(fields, values, onApply, clearHref) {
  const inputs = {};
  const form = el('form', { class: 'filters', role: 'search' });
  for (const field of fields) {
    let input;
    if (field.options) {
      const options = [...field.options];
      const current = values[field.name];
      if (current && !options.some(([value]) => value === current)) options.push([current, current]);
      input = el('select', { name: field.name, 'data-testid': field.testid },
        options.map(([value, label]) => el('option', { value }, label)));
      input.value = current || '';
    } else {
      const isTime = field.type === 'datetime-local';
      input = el('input', { name: field.name, type: field.type || 'text', step: isTime ? 1 : null, 'data-testid': field.testid });
      input.value = isTime ? toLocalInput(values[field.name]) : values[field.name] || '';
    }
    inputs[field.name] = input;
    form.append(el('label', { class: 'field' }, el('span', {}, field.label), input));
  }
  form.append(el('div', { class: 'form-actions' },
    el('button', { type: 'submit', 'data-testid': 'filter-apply' }, 'Apply'),
    el('a', { href: clearHref, class: 'button secondary' }, 'Clear')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const out = {};
    for (const field of fields) {
      const value = inputs[field.name].value.trim();
      out[field.name] = field.type === 'datetime-local' ? fromLocalInput(value) : value;
    }
    onApply(out);
  });
  return form;
}

// Navigate, re-rendering even when the hash is unchanged (Apply twice reloads the list).
function go(hash) {
  const before = location.href;
  location.hash = hash;
  if (location.href === before) route();
}

// Keyset pagination: append each page's rows, keep "Load more" while a cursor is left.
function pagedList(pg, { tbody, row, emptyText, fetchPage }) {
  let cursor = null;
  const more = el('button', { type: 'button', class: 'secondary', 'data-testid': 'load-more', hidden: true }, 'Load more');
  const empty = el('p', { class: 'empty', hidden: true }, emptyText);
  async function load() {
    more.disabled = true;
    try {
      const data = await fetchPage(cursor);
      tbody.append(...data.items.map(row));
      cursor = data.next_cursor;
      more.hidden = !cursor;
      empty.hidden = tbody.rows.length > 0;
    } finally {
      more.disabled = false;
    }
  }
  more.addEventListener('click', pg.act(load));
  return {
    controls: el('div', { class: 'list-controls' }, empty, more),
    load,
    reload() {
      cursor = null;
      tbody.replaceChildren();
      return load();
    },
  };
}

// ---------- charts ----------

function niceCeiling(value) {
  if (value <= 0) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  const step = [1, 2, 5, 10].find((s) => value <= s * magnitude);
  return step * magnitude;
}

// A line chart in inline SVG, drawn for the pixel width it gets so labels stay legible.
// series: [{key, points: [[timeMs, value]]}], xTicks: [{at: timeMs, label}].
function lineChart({ width, height = 240, title, xMin, xMax, xTicks, xTitle, yTitle, series }) {
  const m = { left: 58, right: 18, top: 14, bottom: 46 };
  const w = width - m.left - m.right;
  const h = height - m.top - m.bottom;
  const yMax = niceCeiling(Math.max(0, ...series.flatMap((s) => s.points.map(([, v]) => v))));
  const x = (t) => m.left + (xMax > xMin ? ((t - xMin) / (xMax - xMin)) * w : w);
  const y = (v) => m.top + h - (v / yMax) * h;
  const chart = svg('svg', {
    class: 'chart-svg', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': title,
  }, svg('title', {}, title));
  for (const v of [0, yMax / 2, yMax]) {
    chart.append(
      svg('line', { class: 'grid', x1: m.left, x2: m.left + w, y1: y(v), y2: y(v) }),
      svg('text', { class: 'tick', x: m.left - 8, y: y(v) + 4, 'text-anchor': 'end' }, fmt(v, 1)));
  }
  xTicks.forEach((tick, i) => {
    const anchor = i === 0 ? 'start' : i === xTicks.length - 1 ? 'end' : 'middle';
    chart.append(
      svg('line', { class: 'axis', x1: x(tick.at), x2: x(tick.at), y1: m.top + h, y2: m.top + h + 4 }),
      svg('text', { class: 'tick', x: x(tick.at), y: m.top + h + 18, 'text-anchor': anchor }, tick.label));
  });
  chart.append(
    svg('line', { class: 'axis', x1: m.left, x2: m.left + w, y1: m.top + h, y2: m.top + h }),
    svg('line', { class: 'axis', x1: m.left, x2: m.left, y1: m.top, y2: m.top + h }),
    svg('text', { class: 'axis-title', x: m.left + w / 2, y: height - 6, 'text-anchor': 'middle' }, xTitle),
    svg('text', { class: 'axis-title', transform: `translate(14 ${m.top + h / 2}) rotate(-90)`, 'text-anchor': 'middle' }, yTitle));
  for (const s of series) {
    const coords = s.points.map(([t, v]) => [x(t).toFixed(1), y(v).toFixed(1)]);
    chart.append(svg('polyline', { class: `line series-${s.key}`, points: coords.map((c) => c.join(',')).join(' ') }));
    const last = coords[coords.length - 1];
    if (last) chart.append(svg('circle', { class: `dot series-${s.key}`, cx: last[0], cy: last[1], r: 3 }));
  }
  return chart;
}

function legend(items) {
  return el('ul', { class: 'legend' }, items.map((item) =>
    el('li', {}, el('span', { class: `swatch series-${item.key}` }), item.label,
      item.value == null ? null : [' ', el('strong', {}, item.value)])));
}

// A box holding a chart redrawn whenever its width changes (phone rotation, window resize).
function chartBox(pg, attrs) {
  const box = el('div', { class: 'chart', ...attrs });
  let draw = null;
  let width = 0;
  const paint = () => {
    if (draw) box.replaceChildren(draw(Math.max(280, box.clientWidth)));
  };
  const observer = new ResizeObserver(() => {
    if (box.clientWidth !== width) {
      width = box.clientWidth;
      paint();
    }
  });
  observer.observe(box);
  pg.onLeave(() => observer.disconnect());
  return {
    box,
    show(fn) {
      draw = fn;
      paint();
    },
  };
}

function bucketName(seconds) {
  if (seconds === 60) return 'minute';
  if (seconds === 3600) return 'hour';
  return seconds % 60 ? `${fmt(seconds)} s` : `${fmt(seconds / 60)} min`;
}

function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function statsChart(stats, width) {
  const times = stats.points.map((p) => Date.parse(p.at));
  const first = times[0];
  const last = times[times.length - 1];
  const count = Math.min(5, Math.max(2, Math.floor(width / 100))); // labels must not overlap on a phone
  const ticks = Array.from({ length: count }, (_, i) => first + ((last - first) * i) / (count - 1));
  return lineChart({
    width,
    title: `Events per ${bucketName(stats.bucket_seconds)} over ${stats.window === '24h' ? 'the last day' : 'the last hour'}`,
    xMin: first,
    xMax: last,
    xTicks: ticks.map((t) => ({ at: t, label: clock(t) })),
    xTitle: 'Local time',
    yTitle: `Events per ${bucketName(stats.bucket_seconds)}`,
    series: SERIES.map((s) => ({ key: s.key, points: stats.points.map((p, i) => [times[i], p[s.key]]) })),
  });
}

// ---------- login, header, router ----------

function renderHeader(active) {
  const signedIn = Boolean(state.session);
  navBar.hidden = !signedIn;
  userBox.hidden = !signedIn;
  if (signedIn) userBox.querySelector('.whoami').textContent = `${state.session.username} · ${state.session.role}`;
  for (const link of navBar.querySelectorAll('a')) {
    if (link.dataset.route === active) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

async function loadSession() {
  try {
    state.session = await api('GET', '/session');
    return true;
  } catch (err) {
    if (err.status === 401) return false;
    throw err;
  }
}

// The login form keeps the hash: once signed in, the route asked for is shown.
function showLogin() {
  if (page) page.leave();
  state.session = null;
  renderHeader();
  const pg = new Page();
  page = pg;
  view.replaceChildren(pg.root);
  document.title = 'Sign in · Hookline';
  const username = el('input', { name: 'username', autocomplete: 'username', required: true, 'data-testid': 'login-username' });
  const password = el('input', {
    name: 'password', type: 'password', autocomplete: 'current-password', required: true, 'data-testid': 'login-password',
  });
  const submit = el('button', { type: 'submit', 'data-testid': 'login-submit' }, 'Sign in');
  const form = el('form', { class: 'login' },
    el('h1', {}, 'Sign in'),
    el('label', { class: 'field' }, el('span', {}, 'Username'), username),
    el('label', { class: 'field' }, el('span', {}, 'Password'), password),
    submit);
  form.addEventListener('submit', pg.act(async (event) => {
    event.preventDefault();
    submit.disabled = true;
    try {
      state.session = await api('POST', '/session', { username: username.value, password: password.value });
    } finally {
      submit.disabled = false;
    }
    route();
  }));
  put(pg.root, form);
  username.focus();
}

async function logout() {
  try {
    await api('DELETE', '/session');
  } catch (err) {
    if (err.status !== 401) {
      showError(err.message);
      return;
    }
  }
  showLogin();
}

const ROUTES = [
  { pattern: /^\/webhooks$/, nav: 'webhooks', render: webhooksPage },
  { pattern: /^\/webhooks\/([^/]+)\/([^/]+)$/, nav: 'webhooks', render: webhookPage },
  { pattern: /^\/events$/, nav: 'events', render: eventsPage },
  { pattern: /^\/events\/([^/]+)\/([^/]+)$/, nav: 'events', render: eventPage },
  { pattern: /^\/dead-letters$/, nav: 'dead-letters', render: deadLettersPage },
  { pattern: /^\/dead-letters\/([^/]+)$/, nav: 'dead-letters', render: deadLetterPage },
  { pattern: /^\/replays$/, nav: 'replays', render: replaysPage },
  { pattern: /^\/live$/, nav: 'live', render: livePage },
];

function parseHash() {
  const raw = location.hash.replace(/^#/, '');
  const mark = raw.indexOf('?');
  const path = mark < 0 ? raw : raw.slice(0, mark);
  const query = Object.fromEntries(new URLSearchParams(mark < 0 ? '' : raw.slice(mark + 1)));
  return { path, query };
}

// data-hash / data-state on the page root let a test know which route finished rendering.
async function route() {
  if (page) page.leave();
  if (dialog.open) dialog.close();
  hideError();
  const { path, query } = parseHash();
  if (path === '' || path === '/') {
    history.replaceState(null, '', '#/webhooks');
    route();
    return;
  }
  const pg = new Page();
  page = pg;
  pg.root.dataset.hash = location.hash;
  pg.root.dataset.state = 'loading';
  view.replaceChildren(pg.root);
  try {
    if (!state.session && !(await loadSession())) {
      if (pg.current) showLogin();
      return;
    }
    await render(pg, path, query);
    pg.root.dataset.state = 'ready';
  } catch (err) {
    pg.root.dataset.state = 'failed';
    if (pg.current) fail(err);
  }
}

async function render(pg, path, query) {
  const match = ROUTES.map((r) => ({ r, m: r.pattern.exec(path) })).find((x) => x.m);
  renderHeader(match?.r.nav);
  if (!match) {
    heading(pg, 'Page not found');
    put(pg.root, el('p', {}, el('a', { href: '#/webhooks' }, 'Back to the webhooks')));
    return;
  }
  await match.r.render(pg, match.m.slice(1).map(decodeURIComponent), query);
}

// Records a view change (the chart window) in the hash without re-rendering the page.
function replaceHash(pg, hash) {
  history.replaceState(null, '', hash);
  pg.root.dataset.hash = location.hash;
}

// ---------- webhooks ----------

function countCells(counts) {
  return SERIES.map((s) => el('td', { class: 'num' }, fmt(counts?.[s.key] ?? 0)));
}

const webhookHref = (w) => `#/webhooks/${enc(w.namespace)}/${enc(w.name)}`;

// Accepted / stored / dead-lettered in one cell per window keeps the table within a laptop's width.
function countsCell(counts) {
  return el('td', { class: 'num counts' }, SERIES.map((s, i) => {
    const n = counts?.[s.key] ?? 0;
    const alarming = s.key === 'dead_lettered' && n > 0;
    return [i ? el('span', { class: 'sep' }, ' / ') : null, el('span', { title: s.label, class: alarming ? 'bad' : null }, fmt(n))];
  }));
}

function webhookRow(w) {
  const row = el('tr', { 'data-testid': 'webhook-row', 'data-webhook-id': w.webhook_id },
    el('td', {}, w.namespace),
    el('td', {}, el('a', { href: webhookHref(w) }, w.name)),
    el('td', {}, orDash(w.customer_id)),
    el('td', {}, orDash(w.scheme)),
    el('td', {}, statusBadge(w.status)),
    el('td', {}, endpointView(w.endpoint)),
    countsCell(w.counts?.last_hour),
    countsCell(w.counts?.last_day));
  return clickable(row, webhookHref(w));
}

async function webhooksPage(pg) {
  heading(pg, 'Webhooks');
  const webhooks = await loading(pg.root, fetchWebhooks());
  const windowHead = (label) => [[label, el('span', { class: 'sub' }, 'accepted / stored / dead')], { class: 'num' }];
  const { wrap, tbody } = dataTable('webhooks-table', [[
    'Namespace', 'Name', 'Customer', 'Scheme', 'Status', 'Endpoint', windowHead('Last hour'), windowHead('Last day'),
  ]]);
  tbody.append(...webhooks.map(webhookRow));
  put(pg.root, wrap);
  if (!webhooks.length) put(pg.root, el('p', { class: 'empty' }, 'No Webhook resources yet.'));
}

function countsTable(counts) {
  const { wrap, tbody } = dataTable('webhook-counts', [['Window', ...SERIES.map((s) => [s.label, { class: 'num' }])]]);
  wrap.classList.add('compact');
  tbody.append(
    el('tr', {}, el('th', { scope: 'row' }, 'Last hour'), countCells(counts?.last_hour)),
    el('tr', {}, el('th', { scope: 'row' }, 'Last day'), countCells(counts?.last_day)));
  return wrap;
}

function conditionsTable(conditions) {
  const { wrap, tbody } = dataTable('webhook-conditions', [['Type', 'Status', 'Reason', 'Message', 'Last transition']]);
  for (const c of conditions || []) {
    tbody.append(el('tr', {},
      el('td', {}, c.type),
      el('td', {}, c.status),
      el('td', {}, orDash(c.reason)),
      el('td', { class: 'wrap' }, orDash(c.message)),
      el('td', {}, timeEl(c.last_transition_time))));
  }
  if (!conditions?.length) tbody.append(el('tr', {}, el('td', { colspan: 5, class: 'muted' }, 'No conditions reported yet')));
  return wrap;
}

// The traffic chart with its 1h / 24h switch; the window is kept in the hash query.
function trafficSection(pg, hook, initialWindow) {
  if (!hook.webhook_id) return section('Traffic', el('p', { class: 'muted' }, 'No traffic: the webhook has no id yet.'));
  const chart = chartBox(pg, { 'data-testid': 'webhook-chart' });
  const legendBox = el('div');
  let ticket = 0; // a later click wins over a slower earlier answer
  const show = pg.act(async (windowName) => {
    const mine = ++ticket;
    for (const b of buttons) b.setAttribute('aria-pressed', String(b.dataset.window === windowName));
    replaceHash(pg, webhookHref(hook) + qs({ window: windowName === '1h' ? '' : windowName }));
    const stats = await api('GET', `/stats${qs({ webhook_id: hook.webhook_id, window: windowName })}`);
    if (mine !== ticket) return;
    if (!stats.points.length) {
      chart.box.replaceChildren(el('p', { class: 'muted' }, 'No data for this window.'));
      return;
    }
    chart.show((width) => statsChart(stats, width));
    legendBox.replaceChildren(legend(SERIES.map((s) => ({
      ...s, value: fmt(stats.points.reduce((sum, p) => sum + p[s.key], 0)),
    }))));
  });
  const buttons = [['1h', 'Last hour'], ['24h', 'Last day']].map(([name, label]) =>
    el('button', { type: 'button', class: 'segment', 'data-window': name, onclick: () => show(name) }, label));
  show(initialWindow === '24h' ? '24h' : '1h');
  return section('Traffic',
    el('div', { class: 'segmented', role: 'group', 'aria-label': 'Window' }, buttons),
    el('figure', { class: 'chart-figure' }, chart.box, legendBox));
}

async function webhookPage(pg, [namespace, name], query) {
  const hook = await loading(pg.root, api('GET', `/webhooks/${enc(namespace)}/${enc(name)}`));
  heading(pg, `${hook.namespace}/${hook.name}`, statusBadge(hook.status));
  const links = hook.webhook_id && el('p', { class: 'links' },
    el('a', { href: `#/events${qs({ webhook_id: hook.webhook_id })}` }, 'Events of this webhook'),
    el('a', { href: `#/dead-letters${qs({ webhook_id: hook.webhook_id })}` }, 'Dead letters of this webhook'));
  put(pg.root,
    facts([
      ['Webhook id', code(hook.webhook_id)],
      ['Customer', hook.customer_id],
      ['Scheme', hook.scheme],
      ['Suspended', hook.suspended ? 'yes' : 'no'],
      ['Endpoint', endpointView(hook.endpoint)],
    ]),
    links,
    section('Counts', countsTable(hook.counts)),
    trafficSection(pg, hook, query.window),
    section('Conditions', conditionsTable(hook.conditions)));
}

// ---------- events ----------

const eventHref = (webhookId, messageId) => `#/events/${enc(webhookId)}/${enc(messageId)}`;

function eventRow(ev) {
  const href = eventHref(ev.webhook_id, ev.message_id);
  const row = el('tr', { 'data-testid': 'event-row', 'data-message-id': ev.message_id },
    el('td', {}, timeEl(ev.received_at)),
    el('td', {}, webhookLabel(ev.webhook_id)),
    el('td', { 'data-testid': 'event-type' }, orDash(ev.event_type)),
    el('td', {}, code(ev.event_id)),
    el('td', {}, el('a', { href }, el('code', {}, ev.message_id))),
    el('td', { class: 'num' }, fmt(ev.attempts)),
    el('td', { class: 'num' }, formatBytes(ev.size_bytes)));
  return clickable(row, href);
}

async function eventsPage(pg, _params, query) {
  heading(pg, 'Events');
  const filter = pick(query, EVENT_FILTERS);
  const webhooks = await loading(pg.root, fetchWebhooks());
  const form = filterForm([
    { name: 'webhook_id', label: 'Webhook', testid: 'filter-webhook', options: webhookOptions(webhooks) },
    { name: 'event_type', label: 'Event type', testid: 'filter-event-type' },
    { name: 'event_id', label: 'Event id', testid: 'filter-event-id' },
    { name: 'since', label: 'Received since', type: 'datetime-local', testid: 'filter-since' },
    { name: 'until', label: 'Received until', type: 'datetime-local', testid: 'filter-until' },
    { name: 'q', label: 'Body contains', type: 'search', testid: 'filter-q' },
  ], filter, (values) => go(`#/events${qs(values)}`), '#/events');
  const { wrap, tbody } = dataTable('events-table', [[
    'Received', 'Webhook', 'Event type', 'Event id', 'Message id', ['Attempts', { class: 'num' }], ['Size', { class: 'num' }],
  ]]);
  const list = pagedList(pg, {
    tbody,
    row: eventRow,
    emptyText: 'No events match this filter.',
    fetchPage: (cursor) => api('GET', `/events${qs({ ...filter, limit: 50, cursor })}`),
  });
  put(pg.root, form, wrap, list.controls);
  await loading(pg.root, list.load());
}

function pathStep(step) {
  const name = String(step.step).replace(/_/g, ' ');
  const meta = [
    step.topic && el('code', {}, step.topic),
    step.attempt != null && `attempt ${fmt(step.attempt)}`,
  ].filter(Boolean);
  return el('li', { class: `step step-${step.step}` },
    el('div', { class: 'step-head' },
      el('strong', {}, name[0].toUpperCase() + name.slice(1)), ' ', step.at ? timeEl(step.at) : null),
    meta.length ? el('div', { class: 'step-meta' }, meta.map((m, i) => [i ? ' · ' : '', m])) : null,
    step.detail ? el('div', { class: 'step-detail' }, step.detail) : null);
}

async function eventPage(pg, [webhookId, messageId]) {
  const [ev] = await loading(pg.root, Promise.all([
    api('GET', `/events/${enc(webhookId)}/${enc(messageId)}`),
    fetchWebhooks(),
  ]));
  heading(pg, ev.event_type ? `Event ${ev.event_type}` : 'Event');
  put(pg.root,
    facts([
      ['Message id', code(ev.message_id)],
      ['Event id', code(ev.event_id)],
      ['Event type', ev.event_type],
      ['Webhook', el('a', { href: `#/events${qs({ webhook_id: ev.webhook_id })}` }, webhookLabel(ev.webhook_id))],
      ['Received', timeEl(ev.received_at)],
      ['Stored', timeEl(ev.stored_at)],
      ['Source timestamp', ev.source_timestamp ? timeEl(ev.source_timestamp) : null],
      ['Attempts', fmt(ev.attempts)],
      ['Content type', code(ev.content_type)],
      ['Size', formatBytes(ev.size_bytes)],
    ]),
    section('Request headers', headersTable('event-headers', ev.request_headers), redactedNote(ev.redacted_headers)),
    section('Body', bodyBlock('event-body', ev)),
    section('Path', el('ol', { class: 'timeline', 'data-testid': 'event-path' }, (ev.path || []).map(pathStep))));
}

// ---------- dead letters ----------

function replayStatus(replay) {
  if (!replay) return ['not replayed'];
  const by = replay.replayed_by ? `replayed by ${replay.replayed_by} at ` : 'replayed at '; // older replays lack a name
  return [by, timeEl(replay.replayed_at), replay.stored ? ' — stored' : ' — not stored yet'];
}

function replayState(replay) {
  if (!replay) return 'none';
  return replay.stored ? 'stored' : 'pending';
}

function replayedText(replay) {
  return `Replayed ${plural(replay.replayed, 'dead letter', 'dead letters')} (replay #${replay.id})`;
}

// One dead letter, confirmed in the dialog; resolves to the Replay, or null when cancelled.
async function replayOne(id) {
  if (!(await confirmDialog('Replay 1 dead letter?'))) return null;
  return api('POST', '/dead-letters/replay', { ids: [id] });
}

function deadLetterRow(dl, onReplay) {
  const href = `#/dead-letters/${enc(dl.id)}`;
  const row = el('tr', { 'data-testid': 'dead-letter-row', 'data-dead-letter-id': dl.id, 'data-message-id': dl.message_id },
    el('td', {}, timeEl(dl.dead_at)),
    el('td', {}, webhookLabel(dl.webhook_id)),
    el('td', {}, el('a', { href }, el('code', {}, dl.message_id))),
    el('td', { class: 'wrap' }, dl.reason),
    el('td', { class: 'num' }, fmt(dl.attempts)),
    el('td', { class: 'wrap', 'data-testid': 'replay-status', 'data-replay-state': replayState(dl.replay) },
      replayStatus(dl.replay)),
    onReplay && el('td', {}, el('button', {
      type: 'button', class: 'secondary small', 'data-testid': 'replay-one', onclick: () => onReplay(dl),
    }, dl.replay ? 'Replay again' : 'Replay')));
  return clickable(row, href);
}

async function deadLettersPage(pg, _params, query) {
  heading(pg, 'Dead letters');
  const filter = pick(query, DEAD_LETTER_FILTERS);
  const [webhooks, reasons] = await loading(pg.root, Promise.all([fetchWebhooks(), api('GET', '/dead-letters/reasons')]));
  const form = filterForm([
    { name: 'webhook_id', label: 'Webhook', testid: 'filter-webhook', options: webhookOptions(webhooks) },
    {
      name: 'reason', label: 'Reason', testid: 'filter-reason',
      options: [['', 'Any reason'], ...reasons.items.map((r) => [r, r])],
    },
    { name: 'since', label: 'Dead since', type: 'datetime-local', testid: 'filter-since' },
    { name: 'until', label: 'Dead until', type: 'datetime-local', testid: 'filter-until' },
    { name: 'replayed', label: 'Replayed', testid: 'filter-replayed', options: [['', 'Any'], ['false', 'No'], ['true', 'Yes']] },
  ], filter, (values) => go(`#/dead-letters${qs(values)}`), '#/dead-letters');

  const operator = isOperator();
  const result = el('p', { class: 'notice', role: 'status', 'data-testid': 'replay-result', hidden: true });
  const { wrap, tbody } = dataTable('dead-letters-table', [[
    'Dead at', 'Webhook', 'Message id', 'Reason', ['Attempts', { class: 'num' }], 'Replay status',
    operator && ['', { 'aria-label': 'Actions' }],
  ]]);
  const list = pagedList(pg, {
    tbody,
    row: (dl) => deadLetterRow(dl, operator && pg.act(async (one) => replayed(await replayOne(one.id)))),
    emptyText: 'No dead letters match this filter.',
    fetchPage: (cursor) => api('GET', `/dead-letters${qs({ ...filter, limit: 50, cursor })}`),
  });

  function say(...content) {
    result.replaceChildren(...content);
    result.hidden = false;
  }

  async function replayed(replay) {
    if (!replay) return;
    say(replayedText(replay), ' ', el('a', { href: '#/replays' }, 'See replays'));
    await list.reload();
  }

  // The count shown is the count confirmed: the server refuses (409) if it changed meanwhile.
  const waiting = async (selection) => (await api('GET', `/dead-letters/count${qs({ ...selection, replayed: 'false' })}`)).count;
  const replayAll = pg.act(async () => {
    const selection = pick(filter, REPLAY_SELECTION);
    const count = await waiting(selection);
    if (count === 0) {
      say('No dead letter matching this filter is waiting for a replay.');
      return;
    }
    if (!(await confirmDialog(`Replay ${plural(count, 'dead letter', 'dead letters')}?`))) return;
    try {
      await replayed(await api('POST', '/dead-letters/replay', { filter: selection, expected_count: count }));
    } catch (err) {
      if (err.status !== 409) throw err;
      showError(`${err.message} Now ${plural(await waiting(selection), 'dead letter matches', 'dead letters match')}.`);
      await list.reload();
    }
  });

  const toolbar = operator && el('div', { class: 'toolbar' },
    el('button', { type: 'button', 'data-testid': 'replay-all', onclick: replayAll }, 'Replay all matching'),
    el('span', { class: 'muted' }, 'Replays the dead letters of this filter that were not replayed yet.'));
  put(pg.root, form, toolbar, result, wrap, list.controls);
  await loading(pg.root, list.load());
}

function originText(origin) {
  if (!origin) return null;
  return el('span', {}, el('code', {}, origin.topic), ` · partition ${origin.partition} · offset ${origin.offset}`);
}

function replayInfo(dl) {
  return el('span', {}, replayStatus(dl.replay),
    dl.replay?.stored ? [' · ', el('a', { href: eventHref(dl.webhook_id, dl.message_id) }, 'the stored event')] : null);
}

async function deadLetterPage(pg, [id]) {
  const [dl] = await loading(pg.root, Promise.all([api('GET', `/dead-letters/${enc(id)}`), fetchWebhooks()]));
  heading(pg, `Dead letter #${dl.id}`);
  const status = el('dd', { 'data-testid': 'replay-status', 'data-replay-state': replayState(dl.replay) }, replayInfo(dl));
  const result = el('p', { class: 'notice', role: 'status', 'data-testid': 'replay-result', hidden: true });
  const replayButton = isOperator() && el('button', {
    type: 'button',
    'data-testid': 'replay-one',
    onclick: pg.act(async () => {
      const replay = await replayOne(dl.id);
      if (!replay) return;
      result.textContent = replayedText(replay);
      result.hidden = false;
      const fresh = await api('GET', `/dead-letters/${enc(dl.id)}`);
      status.dataset.replayState = replayState(fresh.replay);
      status.replaceChildren(replayInfo(fresh));
    }),
  }, dl.replay ? 'Replay again' : 'Replay');
  put(pg.root,
    el('dl', { class: 'facts' },
      el('dt', {}, 'Webhook'),
      el('dd', {}, el('a', { href: `#/dead-letters${qs({ webhook_id: dl.webhook_id })}` }, webhookLabel(dl.webhook_id))),
      el('dt', {}, 'Message id'), el('dd', {}, code(dl.message_id)),
      el('dt', {}, 'Reason'), el('dd', {}, dl.reason),
      el('dt', {}, 'Attempts'), el('dd', {}, fmt(dl.attempts)),
      el('dt', {}, 'Dead at'), el('dd', {}, timeEl(dl.dead_at)),
      el('dt', {}, 'Origin'), el('dd', {}, orDash(originText(dl.origin))),
      el('dt', {}, 'Replay'), status),
    replayButton && el('div', { class: 'toolbar' }, replayButton),
    result,
    section('Headers', headersTable('dead-letter-headers', dl.headers), redactedNote(dl.redacted_headers)),
    section('Body', bodyBlock('dead-letter-body', dl)));
}

// ---------- replays ----------

function selectionText(selection) {
  if (Array.isArray(selection?.ids)) {
    const shown = selection.ids.slice(0, 5).map((id) => `#${id}`).join(', ');
    const rest = selection.ids.length > 5 ? ` and ${fmt(selection.ids.length - 5)} more` : '';
    return `${selection.ids.length === 1 ? 'dead letter' : 'dead letters'} ${shown}${rest}`;
  }
  const parts = [];
  if (selection?.webhook_id) parts.push(`webhook ${webhookLabel(selection.webhook_id)}`);
  if (selection?.reason) parts.push(`reason “${selection.reason}”`);
  if (selection?.since) parts.push(`since ${localTime(selection.since)}`);
  if (selection?.until) parts.push(`until ${localTime(selection.until)}`);
  return parts.length ? `not replayed, ${parts.join(', ')}` : 'every dead letter not replayed yet';
}

function replayRow(replay) {
  return el('tr', { 'data-testid': 'replay-row', 'data-requested-by': replay.requested_by },
    el('td', {}, `#${replay.id}`),
    el('td', {}, replay.requested_by),
    el('td', {}, timeEl(replay.requested_at)),
    el('td', {}, replay.finished_at ? timeEl(replay.finished_at) : el('span', { class: 'badge badge-pending' }, 'running')),
    el('td', { class: 'wrap' }, selectionText(replay.selection)),
    el('td', { class: 'num' }, fmt(replay.replayed)));
}

async function replaysPage(pg) {
  heading(pg, 'Replays');
  await loading(pg.root, fetchWebhooks());
  const { wrap, tbody } = dataTable('replays-table', [[
    'Id', 'Requested by', 'Requested at', 'Finished', 'Selection', ['Replayed', { class: 'num' }],
  ]]);
  const list = pagedList(pg, {
    tbody,
    row: replayRow,
    emptyText: 'No replays yet.',
    fetchPage: (cursor) => api('GET', `/replays${qs({ limit: 50, cursor })}`),
  });
  put(pg.root, wrap, list.controls);
  await loading(pg.root, list.load());
}

// ---------- live ----------

function liveChart(samples, width) {
  const end = samples.length ? samples[samples.length - 1].at : Date.now();
  const start = end - LIVE_SECONDS * 1000;
  return lineChart({
    width,
    height: 220,
    title: `Stored events per second over the last ${LIVE_SECONDS} seconds`,
    xMin: start,
    xMax: end,
    xTicks: [60, 45, 30, 15, 0].map((ago) => ({ at: end - ago * 1000, label: ago ? `−${ago} s` : 'now' })),
    xTitle: 'Seconds ago',
    yTitle: 'Stored per second',
    series: [{ key: 'stored', points: samples.map((s) => [s.at, s.value]) }],
  });
}

function liveItem(ev) {
  return el('li', {},
    el('a', { href: eventHref(ev.webhook_id, ev.message_id) },
      el('span', { class: 'live-time' }, timeEl(ev.stored_at || ev.received_at, true)),
      el('span', {}, webhookLabel(ev.webhook_id)),
      el('span', { class: 'live-type' }, orDash(ev.event_type)),
      el('code', {}, ev.event_id || ev.message_id)));
}

function parseData(message) {
  try {
    return JSON.parse(message.data);
  } catch {
    return null; // a malformed message is skipped, the stream goes on
  }
}

async function livePage(pg, _params, query) {
  heading(pg, 'Live');
  const webhooks = await loading(pg.root, fetchWebhooks());
  const select = el('select', { 'data-testid': 'live-webhook', 'aria-label': 'Webhook' },
    webhookOptions(webhooks).map(([value, label]) => el('option', { value }, label)));
  select.value = query.webhook_id || '';
  select.addEventListener('change', () => { location.hash = `#/live${qs({ webhook_id: select.value })}`; });

  const status = el('span', { class: 'badge badge-pending', 'data-testid': 'live-status' }, 'connecting');
  const rate = el('strong', {}, '—');
  const skippedNote = el('span', { class: 'muted', hidden: true });
  const chart = chartBox(pg, { 'data-testid': 'live-chart', 'data-samples': 0 });
  const list = el('ol', { class: 'live-list', 'data-testid': 'live-list' });
  const empty = el('p', { class: 'empty' }, 'Waiting for stored events…');
  put(pg.root,
    el('div', { class: 'toolbar' }, el('label', { class: 'inline' }, 'Webhook ', select), status,
      el('span', {}, rate, ' stored/s'), skippedNote),
    el('figure', { class: 'chart-figure' }, chart.box, legend([{ key: 'stored', label: 'Stored per second' }])),
    section('Newest stored events', empty, list));

  const samples = [];
  let received = 0;
  let skipped = 0;
  chart.show((width) => liveChart(samples, width));

  const source = new EventSource(`${API}/live${qs({ webhook_id: query.webhook_id })}`);
  pg.onLeave(() => source.close());
  source.addEventListener('open', () => {
    status.textContent = 'connected';
    status.className = 'badge badge-ready';
  });
  source.addEventListener('error', () => {
    const closed = source.readyState === EventSource.CLOSED;
    status.textContent = closed ? 'disconnected' : 'reconnecting';
    status.className = `badge ${closed ? 'badge-not_ready' : 'badge-pending'}`;
    // The browser gives up on a refusal (e.g. 401): find out whether the session ended.
    if (closed) pg.act(() => api('GET', '/session'))();
  });
  source.addEventListener('rate', (message) => {
    const data = parseData(message);
    if (!data) return;
    const at = Date.parse(data.at) || Date.now();
    samples.push({ at, value: Number(data.stored_per_second) || 0 });
    while (samples.length && samples[0].at < at - LIVE_SECONDS * 1000) samples.shift();
    received += 1;
    chart.box.dataset.samples = String(received);
    rate.textContent = fmt(data.stored_per_second, 1);
    chart.show((width) => liveChart(samples, width));
  });
  source.addEventListener('stored', (message) => {
    const ev = parseData(message);
    if (!ev) return;
    empty.hidden = true;
    list.prepend(liveItem(ev));
    while (list.children.length > LIVE_LIST_SIZE) list.lastElementChild.remove();
  });
  source.addEventListener('skipped', (message) => {
    skipped += Number(parseData(message)?.count) || 0;
    skippedNote.textContent = `${fmt(skipped)} not listed (over 100 per second)`;
    skippedNote.hidden = false;
  });
}

// ---------- start ----------

userBox.querySelector('[data-testid="logout"]').addEventListener('click', logout);
errorBanner.querySelector('.dismiss').addEventListener('click', hideError);
window.addEventListener('hashchange', route);
route();
