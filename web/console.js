// Workflow console: what an operator of the durable engine looks at.
//
// Map of this file:
//   config and DOM       constants, element handles
//   server calls         api(), the ok / offline state
//   refresh loop         one cycle every REFRESH_MS at most, paused while the tab is hidden
//   formatting           times, durations, sizes, Prometheus text
//   workflow tables      keyed rendering of the pending and recent lists, the filter
//   selected workflow    details, steps with timings, input / output, cancel and resume
//   intake               metric tiles, lag per partition, dead letters
//
// Invariants:
//   * Server data reaches the page only through textContent, title, value and data-*
//     properties, never through innerHTML, so a `<script>` in a name or message stays text.
//   * Automatic refreshes start at least REFRESH_MS apart and never overlap; none run while
//     the tab is hidden. Only a click (select a workflow, cancel, resume) asks sooner.
'use strict';

(() => {
  // ---------------------------------------------------------------- config and DOM

  const REFRESH_MS = 2000;
  const REQUEST_TIMEOUT_MS = 8000;
  const PENDING_LIMIT = 200;
  const RECENT_LIMIT = 50;
  const DEAD_LIMIT = 50;
  const STATUS_LABELS = {
    PENDING: 'Pending',
    SUCCEEDED: 'Succeeded',
    FAILED: 'Failed',
    CANCELLED: 'Cancelled',
  };
  const METRIC = {
    messages: 'alert_center_intake_messages_total',
    dead: 'alert_center_dead_letters_total',
    pending: 'alert_center_workflows_pending',
    recovery: 'alert_center_recovery_seconds',
    lag: 'alert_center_intake_lag_messages',
  };

  const $ = (id) => document.getElementById(id);
  const el = {
    banner: $('banner-offline'),
    status: $('console-status'),
    statusText: $('console-status-text'),
    metricsSummary: $('metrics-summary'),
    mMessages: $('m-messages'),
    mDead: $('m-dead'),
    mPending: $('m-pending'),
    mRecovery: $('m-recovery'),
    lagBody: $('lag-body'),
    lagEmpty: $('lag-empty'),
    pendingBody: $('pending-body'),
    pendingEmpty: $('pending-empty'),
    pendingSummary: $('pending-summary'),
    recentBody: $('recent-body'),
    recentEmpty: $('recent-empty'),
    recentSummary: $('recent-summary'),
    filter: $('filter'),
    filterName: $('filter-name'),
    filterNames: $('filter-names'),
    filterStatus: $('filter-status'),
    detailNone: $('detail-none'),
    detail: $('detail'),
    detailClose: $('detail-close'),
    detailId: $('detail-id'),
    detailName: $('detail-name'),
    detailStatus: $('detail-status'),
    detailCreated: $('detail-created'),
    detailUpdated: $('detail-updated'),
    detailRecovery: $('detail-recovery'),
    detailTook: $('detail-took'),
    detailError: $('detail-error'),
    detailInput: $('detail-input'),
    detailOutput: $('detail-output'),
    btnCancel: $('btn-cancel'),
    btnResume: $('btn-resume'),
    actionStatus: $('action-status'),
    steps: $('steps'),
    stepsBody: $('steps-body'),
    stepsEmpty: $('steps-empty'),
    deadBody: $('dead-body'),
    deadEmpty: $('dead-empty'),
    deadSummary: $('dead-summary'),
  };
  const slots = {
    intake: $('panel-intake').querySelector('.notice-slot'),
    pending: $('panel-pending').querySelector('.notice-slot'),
    recent: $('panel-recent').querySelector('.notice-slot'),
    dead: $('panel-dead').querySelector('.notice-slot'),
    detail: $('detail-notice'),
    action: $('action-notice'),
  };

  // ---------------------------------------------------------------- state

  let offline = false;
  let answeredOnce = false;
  let pendingList = [];
  let recentList = [];
  /** The workflow shown in the detail panel: {id, info (WorkflowInfo or null), gone}. */
  let selected = null;
  let busyAction = false;

  class NetworkError extends Error {}

  // ---------------------------------------------------------------- server calls

  /**
   * One request. Resolves with `{ok, status, text, data, error}` for any HTTP answer (4xx and
   * 5xx included; `data` is the parsed JSON or null); rejects with NetworkError when no answer
   * arrived at all.
   */
  async function api(method, path) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    let res;
    let text;
    try {
      res = await fetch(path, {
        method,
        headers: { Accept: 'application/json, text/plain' },
        cache: 'no-store',
        signal: controller.signal,
      });
      text = await res.text();
    } catch (err) {
      throw new NetworkError(String(err));
    } finally {
      clearTimeout(timer);
    }
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    let error = null;
    if (!res.ok) {
      error = data && typeof data.error === 'string' && data.error
        ? data.error
        : `The server answered ${res.status}${res.statusText ? ` ${res.statusText}` : ''}.`;
    }
    answered();
    return { ok: res.ok, status: res.status, text, data, error };
  }

  /** Any HTTP answer means the server is up. */
  function answered() {
    answeredOnce = true;
    if (offline || el.status.dataset.state !== 'ok') setOnline(true);
  }

  function setOnline(up) {
    offline = !up;
    el.status.dataset.state = up ? 'ok' : 'offline';
    el.banner.hidden = up;
    document.body.classList.toggle('is-offline', !up);
    if (!up) {
      el.statusText.textContent = 'Offline';
      el.status.title = 'The alert center cannot be reached; retrying every 2 seconds';
    }
    updateButtons();
  }

  /** Shows (or, with text null, removes) an error note at the top of a panel. */
  function setNotice(slotName, text, { dismissible = false } = {}) {
    const slot = slots[slotName];
    let note = slot.querySelector('.notice');
    if (text == null) {
      if (note) note.remove();
      return;
    }
    if (!note) {
      note = document.createElement('div');
      note.className = 'notice is-shown';
      note.setAttribute('role', 'alert');
      const span = document.createElement('span');
      note.append(span);
      slot.append(note);
    }
    note.firstChild.textContent = text;
    let close = note.querySelector('.notice-close');
    if (dismissible && !close) {
      close = document.createElement('button');
      close.type = 'button';
      close.className = 'notice-close';
      close.setAttribute('aria-label', 'Dismiss');
      close.addEventListener('click', () => note.remove());
      note.append(close);
    } else if (!dismissible && close) {
      close.remove();
    }
  }

  // ---------------------------------------------------------------- refresh loop

  const loop = { timer: null, inFlight: false, lastStartMs: -Infinity };

  /** Arms the next cycle: REFRESH_MS after the last one started, never while hidden. */
  function schedule() {
    clearTimeout(loop.timer);
    loop.timer = null;
    if (document.hidden || loop.inFlight) return;
    const waitMs = Math.max(0, loop.lastStartMs + REFRESH_MS - performance.now());
    loop.timer = setTimeout(cycle, waitMs);
  }

  async function cycle() {
    loop.timer = null;
    if (document.hidden || loop.inFlight) return;
    loop.inFlight = true;
    loop.lastStartMs = performance.now();
    try {
      await refreshAll();
    } finally {
      loop.inFlight = false;
      schedule();
    }
  }

  function onVisibility() {
    if (document.hidden) {
      clearTimeout(loop.timer);
      loop.timer = null;
    } else {
      schedule();
    }
  }

  async function refreshAll() {
    const results = await Promise.allSettled([
      refreshWorkflows(),
      refreshDeadLetters(),
      refreshMetrics(),
    ]);
    let network = false;
    for (const result of results) {
      if (result.status !== 'rejected') continue;
      if (result.reason instanceof NetworkError) network = true;
      else console.error(result.reason); // A bug: show it to whoever opens the dev tools.
    }
    if (network) {
      setOnline(false);
      return;
    }
    if (!answeredOnce) return;
    const at = new Date();
    el.statusText.textContent = `Live · ${fmtClock(at.getTime())}`;
    el.status.title = `Refreshes every ${REFRESH_MS / 1000} s while this tab is visible; last at ${at.toLocaleString()}`;
  }

  async function refreshWorkflows() {
    const [pending, recent] = await Promise.all([
      api('GET', `/workflows?status=PENDING&limit=${PENDING_LIMIT}`),
      api('GET', `/workflows?limit=${RECENT_LIMIT}`),
    ]);
    if (pending.ok && Array.isArray(pending.data)) {
      pendingList = pending.data.filter(isWorkflow);
      setNotice('pending', null);
    } else if (!pending.ok) {
      setNotice('pending', `Could not load pending workflows: ${pending.error}`);
    }
    if (recent.ok && Array.isArray(recent.data)) {
      recentList = recent.data.filter(isWorkflow);
      setNotice('recent', null);
    } else if (!recent.ok) {
      setNotice('recent', `Could not load recent workflows: ${recent.error}`);
    }
    drawPending();
    drawRecent();
    updateNames();
    if (selected) await refreshSelected(selected);
  }

  const isWorkflow = (w) => w && typeof w === 'object' && typeof w.id === 'string';

  // ---------------------------------------------------------------- formatting

  function sameDay(a, b) {
    return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
  }

  function fmtClock(ms) {
    return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }

  /** Local time: the clock alone for today, with the date otherwise. */
  function fmtTime(ms) {
    if (!Number.isFinite(ms) || ms <= 0) return '—';
    const date = new Date(ms);
    if (sameDay(date, new Date())) return fmtClock(ms);
    return date.toLocaleString([], {
      year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
    });
  }

  function fmtTimeTitle(ms) {
    if (!Number.isFinite(ms) || ms <= 0) return '';
    const date = new Date(ms);
    return `${date.toLocaleString()} (${date.toISOString()})`;
  }

  function fmtDuration(ms) {
    if (!Number.isFinite(ms)) return '—';
    const v = Math.max(0, ms);
    if (v < 1000) return `${Math.round(v)} ms`;
    if (v < 10_000) return `${(v / 1000).toFixed(2)} s`;
    if (v < 60_000) return `${(v / 1000).toFixed(1)} s`;
    const s = Math.floor(v / 1000);
    if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
    if (s < 86_400) return `${Math.floor(s / 3600)} h ${String(Math.floor(s / 60) % 60).padStart(2, '0')} min`;
    return `${Math.floor(s / 86_400)} d ${Math.floor(s / 3600) % 24} h`;
  }

  function fmtBytes(n) {
    if (!Number.isFinite(n)) return '—';
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
    return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  }

  function fmtCount(v) {
    return Number.isFinite(v) ? Math.round(v).toLocaleString() : '—';
  }

  function fmtSeconds(v) {
    if (!Number.isFinite(v)) return '—';
    return v < 1 ? `${(v * 1000).toFixed(1)} ms` : `${v.toFixed(2)} s`;
  }

  function fmtJson(value) {
    if (value === undefined || value === null) return 'null';
    try {
      return JSON.stringify(value, null, 2);
    } catch {
      return String(value);
    }
  }

  /** Prometheus text exposition format → [{name, labels, value}]. Comments are skipped. */
  function parseMetrics(text) {
    const series = [];
    const lineRe = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/;
    const labelRe = /\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?/y;
    for (const raw of String(text).split('\n')) {
      const line = raw.trim();
      if (!line || line.startsWith('#')) continue;
      const m = lineRe.exec(line);
      if (!m) continue;
      const labels = {};
      if (m[2]) {
        labelRe.lastIndex = 0;
        let lm;
        while (labelRe.lastIndex < m[2].length && (lm = labelRe.exec(m[2]))) {
          labels[lm[1]] = lm[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
        }
      }
      series.push({ name: m[1], labels, value: parseSample(m[3]) });
    }
    return series;
  }

  function parseSample(s) {
    if (s === '+Inf' || s === 'Inf') return Infinity;
    if (s === '-Inf') return -Infinity;
    return Number(s); // NaN stays NaN
  }

  /** The sum over every series of `name`, or null when it was not reported at all. */
  function total(series, name) {
    let sum = null;
    for (const s of series) if (s.name === name) sum = (sum ?? 0) + s.value;
    return sum;
  }

  // ---------------------------------------------------------------- workflow tables

  /** One keyed table: rows are kept and refilled, so selection and focus survive refreshes. */
  function keyedTable(body) {
    return { body, rows: new Map(), signatures: new WeakMap() };
  }
  const tables = { pending: keyedTable(el.pendingBody), recent: keyedTable(el.recentBody) };

  function drawWorkflows(table, list) {
    const ordered = [];
    for (const wf of list) {
      let row = table.rows.get(wf.id);
      if (!row) {
        row = createWorkflowRow();
        table.rows.set(wf.id, row);
      }
      fillWorkflowRow(table, row, wf);
      ordered.push(row);
    }
    const keep = new Set(list.map((w) => w.id));
    for (const id of table.rows.keys()) if (!keep.has(id)) table.rows.delete(id);
    if (!sameChildren(table.body, ordered)) {
      const fragment = document.createDocumentFragment();
      for (const row of ordered) fragment.append(row);
      table.body.replaceChildren(fragment);
    }
  }

  function createWorkflowRow() {
    const row = document.createElement('tr');
    row.className = 'c-row';
    row.tabIndex = 0;
    const cells = [];
    for (const className of ['c-wf', 'c-status', 'c-time', 'c-time', 'num', 'c-err']) {
      const td = document.createElement('td');
      td.className = className;
      cells.push(td);
    }
    const name = document.createElement('span');
    name.className = 'c-wf-name';
    const id = document.createElement('code');
    id.className = 'c-wf-id';
    cells[0].append(name, id);
    const pill = document.createElement('span');
    pill.className = 'pill c-wf-pill';
    cells[1].append(pill);
    row.append(...cells);
    return row;
  }

  function fillWorkflowRow(table, row, wf) {
    const isSelected = !!selected && selected.id === wf.id;
    const signature = JSON.stringify([
      wf.id, wf.name, wf.status, wf.created_at_ms, wf.updated_at_ms, wf.recovery_attempts, wf.error,
      isSelected, fmtTime(wf.created_at_ms),
    ]);
    if (table.signatures.get(row) === signature) return;
    table.signatures.set(row, signature);
    const [wfCell, statusCell, createdCell, updatedCell, recoveryCell, errorCell] = row.children;
    const status = String(wf.status ?? 'UNKNOWN');
    row.dataset.workflowId = wf.id;
    row.dataset.status = status;
    row.classList.toggle('is-selected', isSelected);
    row.setAttribute('aria-current', String(isSelected));
    wfCell.firstChild.textContent = String(wf.name ?? '');
    wfCell.lastChild.textContent = wf.id;
    wfCell.title = wf.id;
    setPill(statusCell.firstChild, status);
    createdCell.textContent = fmtTime(wf.created_at_ms);
    createdCell.title = fmtTimeTitle(wf.created_at_ms);
    updatedCell.textContent = fmtTime(wf.updated_at_ms);
    updatedCell.title = fmtTimeTitle(wf.updated_at_ms);
    const attempts = Number(wf.recovery_attempts ?? 0);
    recoveryCell.textContent = String(attempts);
    recoveryCell.classList.toggle('is-warn', attempts > 0);
    const error = wf.error == null ? '' : String(wf.error);
    errorCell.textContent = error;
    errorCell.title = error;
  }

  function setPill(pill, status) {
    pill.dataset.status = status;
    pill.textContent = STATUS_LABELS[status] ?? status;
  }

  function sameChildren(parent, ordered) {
    const children = parent.children;
    if (children.length !== ordered.length) return false;
    for (let i = 0; i < ordered.length; i += 1) if (children[i] !== ordered[i]) return false;
    return true;
  }

  function drawPending() {
    drawWorkflows(tables.pending, pendingList);
    el.pendingEmpty.hidden = pendingList.length > 0;
    el.pendingSummary.textContent = pendingList.length >= PENDING_LIMIT
      ? `the ${PENDING_LIMIT} newest shown`
      : `${pendingList.length} pending`;
  }

  function filterValues() {
    return { name: el.filterName.value.trim().toLowerCase(), status: el.filterStatus.value };
  }

  function drawRecent() {
    const f = filterValues();
    const shown = recentList.filter((wf) => (
      (!f.status || wf.status === f.status)
      && (!f.name || String(wf.name ?? '').toLowerCase().includes(f.name) || wf.id.toLowerCase().includes(f.name))
    ));
    drawWorkflows(tables.recent, shown);
    const filtered = !!(f.name || f.status);
    el.recentEmpty.hidden = shown.length > 0;
    el.recentEmpty.textContent = filtered && recentList.length
      ? 'No recent workflow matches the filter.'
      : 'No workflows yet.';
    el.recentSummary.textContent = filtered
      ? `${shown.length} of the ${recentList.length} newest match`
      : `the ${recentList.length} newest`;
  }

  /** Offers the workflow names seen so far as suggestions in the filter box. */
  function updateNames() {
    const names = [...new Set([...pendingList, ...recentList].map((w) => String(w.name ?? '')))]
      .filter(Boolean)
      .sort();
    const current = [...el.filterNames.options].map((o) => o.value);
    if (JSON.stringify(current) === JSON.stringify(names)) return;
    el.filterNames.replaceChildren(...names.map((name) => {
      const option = document.createElement('option');
      option.value = name;
      return option;
    }));
  }

  /** Keeps the filter and the selection in the address, so a reload or a shared link keeps them. */
  function saveToUrl() {
    const url = new URL(window.location.href);
    const f = { name: el.filterName.value.trim(), status: el.filterStatus.value, workflow: selected ? selected.id : '' };
    for (const [key, value] of Object.entries(f)) {
      if (value) url.searchParams.set(key, value);
      else url.searchParams.delete(key);
    }
    window.history.replaceState(null, '', url);
  }

  function onFilter() {
    drawRecent();
    saveToUrl();
  }

  // ---------------------------------------------------------------- selected workflow

  function findListed(id) {
    return pendingList.find((w) => w.id === id) ?? recentList.find((w) => w.id === id) ?? null;
  }

  function onRowActivate(event) {
    if (event.type === 'keydown' && event.key !== 'Enter' && event.key !== ' ') return;
    const row = event.target.closest('tr[data-workflow-id]');
    if (!row) return;
    if (event.type === 'keydown') event.preventDefault();
    select(row.dataset.workflowId);
  }

  /** Shows a workflow at once from the row data, then asks for its steps. */
  function select(id) {
    if (selected && selected.id === id) return;
    selected = { id, info: findListed(id), gone: false, steps: null, stepsSig: null };
    el.actionStatus.textContent = '';
    setNotice('detail', null);
    setNotice('action', null);
    el.stepsBody.replaceChildren();
    el.stepsEmpty.hidden = true;
    el.steps.setAttribute('aria-busy', 'true');
    drawPending();
    drawRecent();
    drawDetail();
    saveToUrl();
    if (!offline) refreshSelected(selected).catch(onlyNetwork);
  }

  function closeDetail() {
    selected = null;
    drawPending();
    drawRecent();
    drawDetail();
    saveToUrl();
  }

  function onlyNetwork(err) {
    if (err instanceof NetworkError) setOnline(false);
    else throw err;
  }

  /** Steps for `sel`, and its details when no list holds it (it is older than both). */
  async function refreshSelected(sel) {
    const path = `/workflows/${encodeURIComponent(sel.id)}`;
    const listed = findListed(sel.id);
    const [steps, info] = await Promise.all([
      api('GET', `${path}/steps`),
      listed ? Promise.resolve(null) : api('GET', path),
    ]);
    if (selected !== sel) return;
    if (listed) {
      sel.info = listed;
      sel.gone = false;
    } else if (info && info.ok && isWorkflow(info.data)) {
      sel.info = info.data;
      sel.gone = false;
    } else if (info && info.status === 404) {
      sel.gone = true;
    }
    if (steps.ok && Array.isArray(steps.data)) {
      sel.steps = steps.data;
      if (!sel.gone) setNotice('detail', null);
    } else if (steps.status === 404) {
      sel.gone = true;
      sel.steps = [];
    } else {
      setNotice('detail', `Could not load the steps: ${steps.error}`);
    }
    drawDetail();
  }

  function drawDetail() {
    const sel = selected;
    el.detailNone.hidden = !!sel;
    el.detail.hidden = !sel;
    el.detailClose.hidden = !sel;
    if (!sel) return;
    const wf = sel.info;
    el.detail.dataset.workflowId = sel.id;
    el.detailId.textContent = sel.id;
    if (sel.gone) {
      setNotice('detail', 'This workflow no longer exists (the retention sweep removes finished workflows).');
    }
    const status = wf ? String(wf.status ?? 'UNKNOWN') : 'UNKNOWN';
    el.detail.dataset.status = status;
    el.detailName.textContent = wf ? String(wf.name ?? '') : '…';
    setPill(el.detailStatus, status);
    el.detailStatus.hidden = !wf;
    el.detailCreated.textContent = wf ? fmtTime(wf.created_at_ms) : '…';
    el.detailCreated.title = wf ? fmtTimeTitle(wf.created_at_ms) : '';
    el.detailUpdated.textContent = wf ? fmtTime(wf.updated_at_ms) : '…';
    el.detailUpdated.title = wf ? fmtTimeTitle(wf.updated_at_ms) : '';
    el.detailRecovery.textContent = wf ? String(wf.recovery_attempts ?? 0) : '…';
    if (!wf) el.detailTook.textContent = '…';
    else if (status === 'PENDING') el.detailTook.textContent = `${fmtDuration(Date.now() - wf.created_at_ms)} so far`;
    else el.detailTook.textContent = fmtDuration(wf.updated_at_ms - wf.created_at_ms);
    const error = wf && wf.error != null ? String(wf.error) : '';
    el.detailError.hidden = !error;
    el.detailError.textContent = error;
    setText(el.detailInput, wf ? fmtJson(wf.input) : '…');
    setText(el.detailOutput, wf ? fmtJson(wf.output) : '…');
    drawSteps(sel);
    updateButtons();
  }

  /** Writes only on change, so a selection the operator is copying is not lost every 2 s. */
  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  function drawSteps(sel) {
    if (sel.steps === null) return;
    el.steps.setAttribute('aria-busy', 'false');
    const steps = sel.steps.filter((s) => s && typeof s === 'object');
    const wf = sel.info;
    const signature = JSON.stringify([steps, wf && wf.created_at_ms, wf && wf.updated_at_ms, wf && wf.status]);
    el.stepsEmpty.hidden = steps.length > 0;
    if (sel.stepsSig === signature && el.stepsBody.children.length === steps.length) return;
    sel.stepsSig = signature;
    // The timeline spans from the workflow's start to its last known moment.
    const starts = steps.map((s) => Number(s.started_at_ms)).filter(Number.isFinite);
    const ends = steps.map((s) => Number(s.finished_at_ms)).filter(Number.isFinite);
    const t0 = Math.min(wf ? wf.created_at_ms : Infinity, ...starts);
    const t1 = Math.max(wf && wf.status !== 'PENDING' ? wf.updated_at_ms : -Infinity, ...ends);
    const span = Math.max(1, t1 - t0);
    const rows = steps.map((step) => {
      const row = document.createElement('tr');
      row.dataset.kind = String(step.kind ?? '');
      const started = Number(step.started_at_ms);
      const finished = Number(step.finished_at_ms);
      const duration = finished - started;
      const cells = [
        [String(step.index ?? ''), 'num'],
        ['', 'c-step'],
        [Number.isFinite(t0) ? `+${fmtDuration(started - t0)}` : '—', 'num'],
        [fmtDuration(duration), 'num'],
        ['', 'c-timeline-col'],
        [fmtBytes(Number(step.output_bytes)), 'num'],
      ].map(([text, className]) => {
        const td = document.createElement('td');
        td.className = className;
        td.textContent = text;
        return td;
      });
      const name = document.createElement('span');
      name.className = 'c-step-name';
      name.textContent = String(step.name ?? '');
      const kind = document.createElement('span');
      kind.className = 'c-kind';
      kind.textContent = String(step.kind ?? '');
      cells[1].append(name, kind);
      cells[2].title = `Started at ${fmtTimeTitle(started)}`;
      cells[3].title = `${fmtTimeTitle(started)} → ${fmtTimeTitle(finished)}`;
      const track = document.createElement('span');
      track.className = 'c-track';
      const bar = document.createElement('span');
      bar.className = 'c-bar';
      if (Number.isFinite(started) && Number.isFinite(finished) && Number.isFinite(t0)) {
        const left = Math.min(100, Math.max(0, ((started - t0) / span) * 100));
        const width = Math.min(100 - left, Math.max(0.8, (duration / span) * 100));
        bar.style.left = `${left}%`;
        bar.style.width = `${width}%`;
      }
      track.append(bar);
      cells[4].append(track);
      cells[4].title = `+${fmtDuration(started - t0)} after the start, for ${fmtDuration(duration)}`;
      row.append(...cells);
      return row;
    });
    el.stepsBody.replaceChildren(...rows);
  }

  async function workflowAction(verb) {
    const sel = selected;
    if (!sel || busyAction || offline) return;
    busyAction = true;
    updateButtons();
    setNotice('action', null);
    el.actionStatus.textContent = verb === 'cancel' ? 'Cancelling…' : 'Resuming…';
    let res = null;
    try {
      res = await api('POST', `/workflows/${encodeURIComponent(sel.id)}/${verb}`);
    } catch (err) {
      onlyNetwork(err);
    } finally {
      busyAction = false;
    }
    if (selected === sel) {
      if (res === null) {
        el.actionStatus.textContent = '';
        setNotice('action', `No answer to ${verb}: the server may or may not have done it. Check the status once reconnected.`, { dismissible: true });
      } else if (!res.ok) {
        el.actionStatus.textContent = '';
        setNotice('action', res.error, { dismissible: true });
      } else {
        const status = res.data && typeof res.data.status === 'string' ? res.data.status : null;
        const label = status ? (STATUS_LABELS[status] ?? status) : 'done';
        el.actionStatus.textContent = verb === 'cancel'
          ? `Cancel sent: the workflow is now ${label.toLowerCase()}.`
          : `Resume sent: the workflow is now ${label.toLowerCase()}.`;
        if (status && sel.info) sel.info = { ...sel.info, status };
        drawDetail();
      }
    }
    updateButtons();
    // Show the effect soon, but keep the automatic refresh at its pace.
    schedule();
  }

  /** Both stay usable whatever the status: the server decides, and says why when it refuses. */
  function updateButtons() {
    const blocked = offline || busyAction || !selected || (selected && selected.gone);
    el.btnCancel.disabled = blocked;
    el.btnResume.disabled = blocked;
  }

  // ---------------------------------------------------------------- intake

  async function refreshMetrics() {
    const res = await api('GET', '/metrics');
    if (!res.ok) {
      setNotice('intake', `Could not load /metrics: ${res.error}`);
      return;
    }
    setNotice('intake', null);
    const series = parseMetrics(res.text);
    setTile(el.mMessages, total(series, METRIC.messages), fmtCount);
    setTile(el.mDead, total(series, METRIC.dead), fmtCount);
    setTile(el.mPending, total(series, METRIC.pending), fmtCount);
    setTile(el.mRecovery, total(series, METRIC.recovery), fmtSeconds);
    el.mDead.classList.toggle('is-bad', (total(series, METRIC.dead) ?? 0) > 0);
    el.metricsSummary.textContent = series.length ? '' : 'This server reports no metrics.';
    drawLag(series.filter((s) => s.name === METRIC.lag));
  }

  function setTile(node, value, format) {
    const text = value === null ? '—' : format(value);
    setText(node, text);
    node.title = value === null ? 'Not reported yet' : `${node.dataset.metric} = ${value}`;
  }

  let lagSignature = '';

  function drawLag(series) {
    const rows = series
      .map((s) => ({ topic: s.labels.topic ?? '', partition: s.labels.partition ?? '', lag: s.value }))
      .sort((a, b) => a.topic.localeCompare(b.topic) || Number(a.partition) - Number(b.partition)
        || a.partition.localeCompare(b.partition));
    el.lagEmpty.hidden = rows.length > 0;
    const signature = JSON.stringify(rows);
    if (signature === lagSignature) return;
    lagSignature = signature;
    el.lagBody.replaceChildren(...rows.map((r) => {
      const tr = document.createElement('tr');
      tr.dataset.topic = r.topic;
      tr.dataset.partition = r.partition;
      const cells = [[r.topic, ''], [r.partition, 'num'], [fmtCount(r.lag), 'num c-lag-value']];
      for (const [text, className] of cells) {
        const td = document.createElement('td');
        td.className = className;
        td.textContent = text;
        tr.append(td);
      }
      tr.classList.toggle('is-behind', r.lag > 0);
      return tr;
    }));
  }

  const deadTable = keyedTable(el.deadBody);

  async function refreshDeadLetters() {
    const res = await api('GET', `/dead_letters?limit=${DEAD_LIMIT}`);
    if (!res.ok || !Array.isArray(res.data)) {
      if (!res.ok) setNotice('dead', `Could not load dead letters: ${res.error}`);
      return;
    }
    setNotice('dead', null);
    const list = res.data.filter((d) => d && typeof d === 'object' && Number.isFinite(d.id));
    const ordered = list.map((letter) => {
      let row = deadTable.rows.get(letter.id);
      if (!row) {
        row = document.createElement('tr');
        for (const className of ['num c-mono', 'c-time', '', 'num', 'num', 'c-reason', 'c-raw']) {
          const td = document.createElement('td');
          td.className = className;
          row.append(td);
        }
        deadTable.rows.set(letter.id, row);
      }
      fillDeadRow(row, letter);
      return row;
    });
    const keep = new Set(list.map((d) => d.id));
    for (const id of deadTable.rows.keys()) if (!keep.has(id)) deadTable.rows.delete(id);
    if (!sameChildren(el.deadBody, ordered)) el.deadBody.replaceChildren(...ordered);
    el.deadEmpty.hidden = list.length > 0;
    el.deadSummary.textContent = list.length >= DEAD_LIMIT ? `the ${DEAD_LIMIT} newest` : `${list.length} in all`;
  }

  function fillDeadRow(row, d) {
    const atMs = Date.parse(d.at);
    const signature = JSON.stringify([d, fmtTime(atMs)]);
    if (deadTable.signatures.get(row) === signature) return;
    deadTable.signatures.set(row, signature);
    const [idCell, atCell, topicCell, partCell, offsetCell, reasonCell, rawCell] = row.children;
    row.dataset.deadLetterId = String(d.id);
    idCell.textContent = String(d.id);
    atCell.textContent = Number.isFinite(atMs) ? fmtTime(atMs) : String(d.at ?? '');
    atCell.title = Number.isFinite(atMs) ? fmtTimeTitle(atMs) : '';
    topicCell.textContent = String(d.topic ?? '');
    partCell.textContent = String(d.partition ?? '');
    offsetCell.textContent = String(d.offset ?? '');
    reasonCell.textContent = String(d.reason ?? '');
    reasonCell.title = String(d.reason ?? '');
    const raw = String(d.raw ?? '');
    const code = document.createElement('code');
    code.textContent = raw;
    const size = document.createElement('span');
    size.className = 'c-size';
    const shownBytes = new TextEncoder().encode(raw).length;
    const rawBytes = Number(d.raw_bytes);
    size.textContent = Number.isFinite(rawBytes) && rawBytes > shownBytes
      ? `${fmtBytes(rawBytes)}, first ${fmtBytes(shownBytes)} shown`
      : fmtBytes(Number.isFinite(rawBytes) ? rawBytes : shownBytes);
    rawCell.replaceChildren(code, size);
    rawCell.title = raw;
  }

  // ---------------------------------------------------------------- start

  function boot() {
    const params = new URLSearchParams(window.location.search);
    el.filterName.value = params.get('name') ?? '';
    const status = params.get('status') ?? '';
    if ([...el.filterStatus.options].some((o) => o.value === status)) el.filterStatus.value = status;
    el.filter.addEventListener('submit', (event) => event.preventDefault());
    el.filterName.addEventListener('input', onFilter);
    el.filterStatus.addEventListener('change', onFilter);
    for (const body of [el.pendingBody, el.recentBody]) {
      body.addEventListener('click', onRowActivate);
      body.addEventListener('keydown', onRowActivate);
    }
    el.detailClose.addEventListener('click', closeDetail);
    el.btnCancel.addEventListener('click', () => workflowAction('cancel'));
    el.btnResume.addEventListener('click', () => workflowAction('resume'));
    document.addEventListener('visibilitychange', onVisibility);
    const workflow = params.get('workflow');
    if (workflow) {
      selected = { id: workflow, info: null, gone: false, steps: null, stepsSig: null };
    }
    drawDetail();
    updateButtons();
    schedule();
  }

  boot();
})();
