// Alert Center front end: one tab is one employee (`?user=NAME`).
//
// Map of this file:
//   config and DOM       constants, element handles
//   server calls         api(), the offline banner and the /healthz loop
//   live events          leader election: one EventSource per browser, relayed to the other tabs
//   history panel        keyed rendering of /alert_history
//   employee panel       login, the /assignment poll, the countdown, fixed / more time / log out
//   tools panel          send (idempotent) and crash
//
// Invariants:
//   * Server data reaches the page only through textContent, title and data-* properties,
//     never through innerHTML, so a `<script>` in a name or message stays text.
//   * One tab never asks for /assignment more often than every MIN_GAP_MS.
//   * At most one EventSource per browser while navigator.locks and BroadcastChannel exist.
'use strict';

(() => {
  // ---------------------------------------------------------------- config and DOM

  const STATUS_NAMES = ['ACTIVE', 'ASSIGNED', 'RESOLVED'];
  const STATUS_LABELS = { ACTIVE: 'Active', ASSIGNED: 'Assigned', RESOLVED: 'Resolved', UNKNOWN: 'Unknown' };
  const NAME_MAX_CHARS = 64;
  const MESSAGE_MAX_CHARS = 1000;
  // Mirrors Rust's `char::is_alphanumeric` (Alphabetic or Numeric) plus space, '.', '-', '_'.
  const NAME_CHAR = /^[\p{Alphabetic}\p{N} ._-]$/u;

  const POLL_MS = 3000;
  const MIN_GAP_MS = 500;
  const HEALTH_EVERY_MS = 500;
  const HISTORY_SAFETY_MS = 20000;
  const NOTICE_MS = 8000;
  const URGENT_S = 10;
  const NEW_BADGE_MS = 6000;
  const REQUEST_TIMEOUT_MS = 10000;
  const HEALTH_TIMEOUT_MS = 2000;
  const STREAM_RETRY_MAX_MS = 15000;
  const LOCK_NAME = 'alert-center-events';
  const CHANNEL_NAME = 'alert-center';

  const $ = (id) => document.getElementById(id);
  const el = {
    banner: $('banner-offline'),
    connStatus: $('conn-status'),
    connText: $('conn-text'),
    history: $('history'),
    historyEmpty: $('history-empty'),
    historySummary: $('history-summary'),
    btnClear: $('btn-clear'),
    notice: $('notice'),
    noticeText: $('notice-text'),
    noticeClose: $('notice-close'),
    loginForm: $('login-form'),
    loginName: $('login-name'),
    loginButton: $('login-button'),
    duty: $('duty'),
    employeeName: $('employee-name'),
    assignment: $('assignment'),
    alertId: $('alert-id'),
    alertNew: $('alert-new'),
    alertMessage: $('alert-message'),
    timer: $('timer'),
    countdown: $('countdown'),
    countdownBar: $('countdown-bar'),
    btnFixed: $('btn-fixed'),
    btnMoreTime: $('btn-more-time'),
    btnLogout: $('btn-logout'),
    srStatus: $('sr-status'),
    sendForm: $('send-form'),
    sendMessage: $('send-message'),
    sendCount: $('send-count'),
    sendStatus: $('send-status'),
    btnSend: $('btn-send'),
    btnCrash: $('btn-crash'),
  };
  const panels = {
    history: $('panel-history'),
    employee: $('panel-employee'),
    tools: $('panel-tools'),
  };

  // ---------------------------------------------------------------- state

  let offline = false;
  /** The logged-in employee of this tab, or null while the login box shows. */
  let session = null;
  const busy = { employee: false, send: false, crash: false, clear: false };
  /** The last send that failed on the network: retrying the same message reuses its key. */
  let pendingSend = null;

  class NetworkError extends Error {}

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const charCount = (s) => [...s].length;

  // ---------------------------------------------------------------- server calls

  /**
   * One JSON request. Resolves with `{ok, status, data, error}` for any HTTP answer, 4xx and
   * 5xx included; rejects with NetworkError (after raising the offline banner) when no answer
   * arrived at all.
   */
  async function api(method, path, body, headers = {}) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    const init = {
      method,
      headers: { Accept: 'application/json', ...headers },
      cache: 'no-store',
      signal: controller.signal,
    };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    let text;
    try {
      res = await fetch(path, init);
      text = await res.text();
    } catch (err) {
      goOffline();
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
    return { ok: res.ok, status: res.status, data, error: errorMessage(res, data) };
  }

  function errorMessage(res, data) {
    if (res.ok) return null;
    if (data && typeof data.error === 'string' && data.error) return data.error;
    return `The server answered ${res.status}${res.statusText ? ` ${res.statusText}` : ''}.`;
  }

  /** Swallows NetworkError (the banner already tells the story); anything else is a bug. */
  function onlyNetwork(err) {
    if (!(err instanceof NetworkError)) throw err;
  }

  async function healthy() {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), HEALTH_TIMEOUT_MS);
    try {
      const res = await fetch('/healthz', { cache: 'no-store', signal: controller.signal });
      return res.status === 200;
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  function goOffline() {
    if (offline) return;
    offline = true;
    el.banner.hidden = false;
    document.body.classList.add('is-offline');
    setConn('offline');
    stopAssignmentPoll();
    closeStream();
    if (role === 'leader') post({ type: 'offline' });
    updateButtons();
    waitForServer();
  }

  let healthLoop = 0;

  /** Polls /healthz every HEALTH_EVERY_MS until it answers 200, then resumes everything. */
  async function waitForServer() {
    healthLoop += 1;
    const loop = healthLoop;
    // Wait first: right after a crash click the dying process may still answer once.
    await sleep(HEALTH_EVERY_MS);
    while (offline && loop === healthLoop) {
      const startedMs = performance.now();
      if (await healthy()) {
        if (loop === healthLoop) goOnline();
        return;
      }
      await sleep(Math.max(0, HEALTH_EVERY_MS - (performance.now() - startedMs)));
    }
  }

  function goOnline() {
    if (!offline) return;
    offline = false;
    el.banner.hidden = true;
    document.body.classList.remove('is-offline');
    updateButtons();
    fetchHistory();
    if (session) refreshAssignmentSoon();
    if (role === 'leader' || role === 'solo') openStream();
    else if (role === 'polling') setConn('polling');
    else {
      setConn('connecting');
      channel.postMessage({ type: 'hello' });
    }
  }

  // ---------------------------------------------------------------- live events

  // Browsers allow about six HTTP/1.1 connections per host across all tabs, so one tab (the
  // holder of a Web Lock) keeps the only EventSource and relays each event on a
  // BroadcastChannel. The lock is released when that tab closes, and the next waiting tab
  // becomes the leader. Without those APIs every tab streams for itself ("solo").
  const channel = 'BroadcastChannel' in window ? new BroadcastChannel(CHANNEL_NAME) : null;
  let role = 'starting'; // 'leader' | 'follower' | 'solo' | 'polling'
  let stream = null;
  let streamRetryTimer = null;
  let streamRetryMs = 1000;

  function post(message) {
    if (channel && role === 'leader') channel.postMessage(message);
  }

  function startEvents() {
    if (!('EventSource' in window)) {
      role = 'polling';
      setConn('polling');
      return;
    }
    const canElect = channel && navigator.locks && typeof navigator.locks.request === 'function';
    if (!canElect) {
      becomeSolo();
      return;
    }
    role = 'follower';
    channel.onmessage = (event) => onRelay(event.data);
    try {
      navigator.locks
        .request(LOCK_NAME, () => {
          role = 'leader';
          openStream();
          return new Promise(() => {}); // Held for the life of the tab.
        })
        .catch(becomeSolo);
    } catch {
      becomeSolo();
      return;
    }
    channel.postMessage({ type: 'hello' });
  }

  function becomeSolo() {
    role = 'solo';
    openStream();
  }

  function openStream() {
    closeStream();
    if (offline) return;
    setConn('connecting');
    const source = new EventSource('/events');
    stream = source;
    source.onopen = () => {
      streamRetryMs = 1000;
      setConn(role === 'solo' ? 'solo' : 'live');
      post({ type: 'stream', open: true });
    };
    source.addEventListener('history', (event) => {
      post({ type: 'history', data: event.data });
      onHistoryEvent(event.data);
    });
    source.addEventListener('assignment', (event) => {
      post({ type: 'assignment', data: event.data });
      onAssignmentEvent(event.data);
    });
    source.onerror = () => onStreamError(source);
  }

  function closeStream() {
    clearTimeout(streamRetryTimer);
    if (stream) stream.close();
    stream = null;
  }

  /** A dropped stream means a dead server, unless /healthz says otherwise: then retry slowly. */
  async function onStreamError(source) {
    if (source !== stream) return;
    closeStream();
    post({ type: 'stream', open: false });
    if (offline) return;
    setConn('connecting');
    if (!(await healthy())) {
      goOffline();
      return;
    }
    if (offline) return;
    streamRetryTimer = setTimeout(openStream, streamRetryMs);
    streamRetryMs = Math.min(streamRetryMs * 2, STREAM_RETRY_MAX_MS);
  }

  function onRelay(message) {
    if (!message || typeof message !== 'object') return;
    switch (message.type) {
      case 'history':
        if (!offline) setConn('relay');
        onHistoryEvent(message.data);
        break;
      case 'assignment':
        if (!offline) setConn('relay');
        onAssignmentEvent(message.data);
        break;
      case 'offline':
        goOffline();
        break;
      case 'stream':
        if (!offline) setConn(message.open ? 'relay' : 'connecting');
        break;
      case 'hello':
        if (role === 'leader') post({ type: 'stream', open: !!stream && stream.readyState === 1 });
        break;
      default:
        break;
    }
  }

  const CONN_TEXT = {
    connecting: ['Connecting…', 'Opening the live event stream'],
    live: ['Live', 'This tab holds the live event stream and shares it with your other tabs'],
    relay: ['Live', 'Live updates arrive through another open tab'],
    solo: ['Live', 'This tab has its own live event stream (this browser cannot share one)'],
    polling: ['Polling', 'This browser has no EventSource; the page refreshes by polling'],
    offline: ['Offline', 'The alert center cannot be reached'],
  };

  function setConn(state) {
    const [text, title] = CONN_TEXT[state];
    el.connStatus.dataset.state = state;
    el.connText.textContent = text;
    el.connStatus.title = title;
  }

  function parseJson(raw) {
    try {
      return typeof raw === 'string' ? JSON.parse(raw) : raw;
    } catch {
      return null;
    }
  }

  function onHistoryEvent(raw) {
    const list = parseJson(raw);
    if (!Array.isArray(list)) return;
    renderHistory(list);
    if (session && session.state !== 'none' && historyConcernsMe(list)) refreshAssignmentSoon();
  }

  function onAssignmentEvent(raw) {
    const change = parseJson(raw);
    if (!change || typeof change !== 'object' || !session || session.state === 'none') return;
    if (change.employee_name === session.name) {
      const alertId = change.alert_id ?? null;
      const expiration = change.expiration ?? null;
      if (alertId !== session.alertId || expiration !== session.expiration) refreshAssignmentSoon();
    } else if (session.state === 'clear' && historyCache.some(isFree)) {
      refreshAssignmentSoon();
    }
  }

  // ---------------------------------------------------------------- history panel

  const rows = new Map(); // alert_id -> <li>
  const rowSignatures = new WeakMap(); // <li> -> string of what it shows
  let historyCache = [];
  let historyVersion = 0;
  let historyShownOnce = false;
  let lastHistoryAtMs = 0;

  const statusName = (code) => STATUS_NAMES[code] ?? 'UNKNOWN';

  function isFree(alert) {
    const status = statusName(alert.alert_status);
    return status !== 'RESOLVED' && (alert.employee_name == null || status === 'ACTIVE');
  }

  /** True when the history shows something this tab's assignment has not caught up with. */
  function historyConcernsMe(list) {
    if (session.state === 'clear') return list.some(isFree);
    const mine = list.find((a) => a.alert_id === session.alertId);
    return !mine || mine.employee_name !== session.name || statusName(mine.alert_status) === 'RESOLVED';
  }

  async function fetchHistory() {
    const version = historyVersion;
    try {
      const res = await api('GET', '/alert_history');
      // A live event that landed meanwhile is newer than this answer.
      if (version !== historyVersion) return;
      if (res.ok && Array.isArray(res.data)) renderHistory(res.data);
      else if (!res.ok) showNotice('history', res.error);
    } catch (err) {
      onlyNetwork(err);
    }
  }

  /** New data from the server: newer than any /alert_history answer still on its way. */
  function renderHistory(list) {
    historyVersion += 1;
    lastHistoryAtMs = performance.now();
    historyCache = list.filter((a) => a && Number.isFinite(a.alert_id));
    drawHistory();
  }

  function drawHistory() {
    const sorted = [...historyCache].sort((a, b) => b.alert_id - a.alert_id);
    const ordered = [];
    for (const alert of sorted) {
      let row = rows.get(alert.alert_id);
      if (!row) {
        row = createRow();
        rows.set(alert.alert_id, row);
        if (historyShownOnce) flash(row, 'is-fresh');
      }
      fillRow(row, alert);
      ordered.push(row);
    }
    const keep = new Set(sorted.map((a) => a.alert_id));
    for (const id of rows.keys()) if (!keep.has(id)) rows.delete(id);
    if (!sameChildren(el.history, ordered)) {
      const fragment = document.createDocumentFragment();
      for (const row of ordered) fragment.append(row);
      el.history.replaceChildren(fragment);
    }
    historyShownOnce = true;
    renderSummary(sorted);
  }

  function createRow() {
    const row = document.createElement('li');
    row.className = 'h-row';
    const id = document.createElement('span');
    id.className = 'h-id';
    const body = document.createElement('div');
    body.className = 'h-body';
    const message = document.createElement('p');
    message.className = 'h-msg';
    const who = document.createElement('p');
    who.className = 'h-who';
    body.append(message, who);
    const pill = document.createElement('span');
    pill.className = 'pill';
    row.append(id, body, pill);
    return row;
  }

  function fillRow(row, alert) {
    const status = statusName(alert.alert_status);
    const message = String(alert.message ?? '');
    const name = alert.employee_name == null ? null : String(alert.employee_name);
    const mine = !!session && name === session.name;
    const signature = JSON.stringify([alert.alert_id, status, message, name, mine]);
    if (rowSignatures.get(row) === signature) return;
    const statusChanged = row.dataset.status !== undefined && row.dataset.status !== status;
    rowSignatures.set(row, signature);
    const [idEl, body, pill] = row.children;
    const [messageEl, whoEl] = body.children;
    row.dataset.alertId = String(alert.alert_id);
    row.dataset.status = status;
    row.classList.toggle('is-mine', mine);
    idEl.textContent = `#${alert.alert_id}`;
    messageEl.textContent = message;
    messageEl.title = message;
    whoEl.textContent = name === null ? 'Unassigned' : mine ? `${name} (you)` : name;
    whoEl.classList.toggle('is-unassigned', name === null);
    pill.textContent = STATUS_LABELS[status];
    if (statusChanged) flash(row, 'is-changed');
  }

  function sameChildren(parent, ordered) {
    const children = parent.children;
    if (children.length !== ordered.length) return false;
    for (let i = 0; i < ordered.length; i += 1) if (children[i] !== ordered[i]) return false;
    return true;
  }

  function flash(node, className) {
    node.classList.remove(className);
    void node.offsetWidth; // Restarts the CSS animation.
    node.classList.add(className);
    node.addEventListener('animationend', () => node.classList.remove(className), { once: true });
  }

  function renderSummary(list) {
    const counts = { ACTIVE: 0, ASSIGNED: 0, RESOLVED: 0 };
    for (const alert of list) {
      const status = statusName(alert.alert_status);
      if (status in counts) counts[status] += 1;
    }
    el.historyEmpty.hidden = list.length > 0;
    el.historySummary.textContent = list.length
      ? `${counts.ACTIVE} active · ${counts.ASSIGNED} assigned · ${counts.RESOLVED} resolved`
      : '';
  }

  async function onClear() {
    if (busy.clear || offline) return;
    busy.clear = true;
    updateButtons();
    try {
      const res = await api('POST', '/dashboard/cleanalerts');
      if (!res.ok) showNotice('history', res.error);
    } catch (err) {
      onlyNetwork(err);
    } finally {
      busy.clear = false;
      updateButtons();
    }
    if (!offline) fetchHistory();
  }

  // ---------------------------------------------------------------- employee panel: login

  /** Returns `{name}` or `{error}` with a reason a person can act on. */
  function checkName(raw) {
    const name = String(raw ?? '').trim();
    const length = charCount(name);
    if (length === 0) return { error: 'Please enter your name.' };
    if (length > NAME_MAX_CHARS) {
      return { error: `That name is ${length} characters long; the limit is ${NAME_MAX_CHARS}.` };
    }
    const bad = [...name].find((ch) => !NAME_CHAR.test(ch));
    if (bad !== undefined) {
      const shown = /\s/u.test(bad) ? 'that kind of space' : `“${bad}”`;
      return {
        error: `Names may use letters, digits, spaces, “.”, “-” and “_”, but not ${shown}.`,
      };
    }
    return { name };
  }

  function onLoginSubmit(event) {
    event.preventDefault();
    if (offline) return;
    const checked = checkName(el.loginName.value);
    if (checked.error) {
      el.loginName.setAttribute('aria-invalid', 'true');
      showNotice('employee', checked.error);
      el.loginName.focus();
      return;
    }
    el.loginName.removeAttribute('aria-invalid');
    hideNotice();
    setUserParam(checked.name);
    startSession(checked.name);
  }

  function setUserParam(name) {
    const url = new URL(window.location.href);
    if (name === null) url.searchParams.delete('user');
    else url.searchParams.set('user', name);
    window.history.replaceState(null, '', url);
  }

  function startSession(name) {
    stopAssignmentPoll();
    session = {
      name,
      state: 'none', // 'none' until the first answer, then 'assigned' | 'clear'
      alertId: null,
      expiration: null,
      deadlineMs: null, // performance.now() based, re-synced on every answer
      leaseTotalS: 30,
      shownS: null,
      expiryRefetched: false,
      gen: 0, // bumped around every action so older poll answers are dropped
    };
    el.loginForm.hidden = true;
    el.assignment.hidden = false;
    el.duty.hidden = false;
    el.employeeName.textContent = name;
    setAssignmentState('none');
    drawHistory(); // Marks this employee's rows.
    refreshAssignmentSoon();
    // Not the logout button: a second Enter must not log straight out again.
    el.assignment.focus({ preventScroll: true });
  }

  function endSession() {
    stopAssignmentPoll();
    stopCountdown();
    session = null;
    setUserParam(null);
    el.assignment.hidden = true;
    el.assignment.dataset.state = 'none';
    el.duty.hidden = true;
    el.loginForm.hidden = false;
    el.loginName.value = '';
    document.title = 'Alert Center';
    drawHistory();
    updateButtons();
    el.loginName.focus();
  }

  // ---------------------------------------------------------------- employee panel: assignment

  const poll = { timer: null, dueMs: 0, inFlight: false, again: false, lastStartMs: -Infinity };

  /** Asks for the assignment after `delayMs`, never sooner than MIN_GAP_MS after the last ask. */
  function scheduleAssignment(delayMs) {
    if (!session || offline) return;
    if (poll.inFlight) {
      if (delayMs === 0) poll.again = true;
      return;
    }
    const now = performance.now();
    const waitMs = Math.max(delayMs, poll.lastStartMs + MIN_GAP_MS - now, 0);
    if (poll.timer !== null && poll.dueMs <= now + waitMs) return;
    clearTimeout(poll.timer);
    poll.dueMs = now + waitMs;
    poll.timer = setTimeout(fetchAssignment, waitMs);
  }

  function refreshAssignmentSoon() {
    scheduleAssignment(0);
  }

  function stopAssignmentPoll() {
    clearTimeout(poll.timer);
    poll.timer = null;
    poll.again = false;
  }

  async function fetchAssignment() {
    poll.timer = null;
    const s = session;
    // An action in flight re-arms the poll when it finishes.
    if (!s || offline || busy.employee) return;
    poll.inFlight = true;
    poll.lastStartMs = performance.now();
    const gen = s.gen;
    try {
      const res = await api('GET', `/assignment?name=${encodeURIComponent(s.name)}`);
      if (session !== s || gen !== s.gen) return;
      if (res.ok) renderAssignment(res.data);
      else if (res.status === 400) {
        endSession();
        el.loginName.value = s.name;
        el.loginName.setAttribute('aria-invalid', 'true');
        showNotice('employee', res.error);
      } else showNotice('employee', res.error);
    } catch (err) {
      onlyNetwork(err);
    } finally {
      poll.inFlight = false;
      // A login as someone else while this ask was out must still get its first ask.
      if (session && !offline) {
        const again = poll.again || session !== s;
        poll.again = false;
        scheduleAssignment(again ? 0 : POLL_MS);
      }
    }
  }

  function renderAssignment(data) {
    const s = session;
    if (!s || !data || typeof data !== 'object') return;
    const alert = Array.isArray(data.alert) && data.alert.length ? data.alert[0] : null;
    const employee = data.employee && typeof data.employee === 'object' ? data.employee : {};
    if (!alert) {
      s.alertId = null;
      s.expiration = null;
      s.deadlineMs = null;
      setAssignmentState('clear');
      stopCountdown();
      document.title = `${s.name} · Alert Center`;
      return;
    }
    const isNew = s.alertId !== alert.alert_id;
    const secondsLeft = secondsFrom(data, employee);
    s.alertId = alert.alert_id;
    s.expiration = employee.expiration ?? null;
    s.deadlineMs = secondsLeft === null ? null : performance.now() + secondsLeft * 1000;
    // An answer that is already expired must not trigger another immediate refetch.
    s.expiryRefetched = !(secondsLeft > 0);
    if (isNew) s.leaseTotalS = Math.max(secondsLeft ?? 30, 1);
    else if (secondsLeft > s.leaseTotalS) s.leaseTotalS = secondsLeft;
    el.alertId.textContent = String(alert.alert_id);
    el.alertMessage.textContent = String(alert.message ?? '');
    setAssignmentState('assigned');
    if (isNew) {
      el.alertNew.hidden = !data.newAssignment;
      clearTimeout(newBadgeTimer);
      newBadgeTimer = setTimeout(() => { el.alertNew.hidden = true; }, NEW_BADGE_MS);
      flash(el.assignment.querySelector('.alert-card'), 'is-new');
      el.srStatus.textContent = `Alert ${alert.alert_id} is yours: ${alert.message ?? ''}`;
    }
    s.shownS = null;
    startCountdown();
  }

  function secondsFrom(data, employee) {
    if (typeof data.expirationSecs === 'number' && Number.isFinite(data.expirationSecs)) {
      return data.expirationSecs;
    }
    const at = employee.expiration ? Date.parse(employee.expiration) : NaN;
    return Number.isFinite(at) ? (at - Date.now()) / 1000 : null;
  }

  function setAssignmentState(state) {
    session.state = state;
    el.assignment.dataset.state = state;
    updateButtons();
  }

  let countdownTimer = null;
  let newBadgeTimer = null;

  function startCountdown() {
    if (countdownTimer === null) countdownTimer = setInterval(tick, 200);
    tick();
  }

  function stopCountdown() {
    clearInterval(countdownTimer);
    countdownTimer = null;
  }

  function tick() {
    const s = session;
    if (!s || s.state !== 'assigned') return;
    if (s.deadlineMs === null) {
      el.countdown.textContent = '–';
      el.countdownBar.style.width = '100%';
      return;
    }
    const leftS = (s.deadlineMs - performance.now()) / 1000;
    const shown = Math.max(0, Math.ceil(leftS));
    el.timer.dataset.urgent = String(leftS < URGENT_S);
    el.countdownBar.style.width = `${Math.min(1, Math.max(0, leftS / s.leaseTotalS)) * 100}%`;
    if (shown !== s.shownS) {
      s.shownS = shown;
      el.countdown.textContent = String(shown);
      document.title = `${shown}s · ${s.name} · Alert Center`;
      if (shown === URGENT_S) el.srStatus.textContent = `${URGENT_S} seconds left on alert ${s.alertId}`;
    }
    if (leftS <= 0 && !s.expiryRefetched && !offline) {
      s.expiryRefetched = true;
      refreshAssignmentSoon();
    }
  }

  /** POSTs `{name}` to an employee action; resolves with the answer when it is 2xx. */
  async function employeeAction(path) {
    const s = session;
    if (!s || busy.employee || offline) return null;
    busy.employee = true;
    s.gen += 1;
    updateButtons();
    let res = null;
    try {
      res = await api('POST', path, { name: s.name });
    } catch (err) {
      onlyNetwork(err);
    } finally {
      busy.employee = false;
      s.gen += 1;
      updateButtons();
    }
    if (session !== s) return null;
    if (res && !res.ok) {
      showNotice('employee', res.error);
      refreshAssignmentSoon();
      return null;
    }
    scheduleAssignment(POLL_MS);
    return res;
  }

  async function onFixed() {
    if (await employeeAction('/respond/fixed')) {
      el.srStatus.textContent = 'Marked as fixed. Thank you!';
      refreshAssignmentSoon();
      fetchHistory();
    }
  }

  async function onMoreTime() {
    const res = await employeeAction('/respond/more_time');
    if (!res) return;
    if (res.data && Array.isArray(res.data.alert)) renderAssignment(res.data);
    else refreshAssignmentSoon();
  }

  async function onLogout() {
    const s = session;
    if (!s || busy.employee || offline) return;
    busy.employee = true;
    s.gen += 1;
    updateButtons();
    let res = null;
    try {
      res = await api('POST', '/respond/cancel', { name: s.name });
    } catch (err) {
      onlyNetwork(err);
    } finally {
      busy.employee = false;
    }
    if (session !== s) return;
    endSession();
    // 409 only means there was nothing to give back.
    if (res === null) {
      showNotice('employee', 'Logged out here, but the server did not hear it: your alert is freed when its time runs out.');
    } else if (!res.ok && res.status !== 409) {
      showNotice('employee', res.error);
    }
  }

  // ---------------------------------------------------------------- tools panel

  function newIdempotencyKey() {
    if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
    // randomUUID exists only in secure contexts; getRandomValues exists everywhere.
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  function checkMessage(raw) {
    const message = raw.trim();
    const length = charCount(message);
    if (length === 0) return { error: 'Write a message for the alert first.' };
    if (length > MESSAGE_MAX_CHARS) {
      return { error: `That message is ${length} characters long; the limit is ${MESSAGE_MAX_CHARS}.` };
    }
    return { message };
  }

  function updateCount() {
    const length = charCount(el.sendMessage.value.trim());
    el.sendCount.textContent = `${length} / ${MESSAGE_MAX_CHARS}`;
    el.sendCount.classList.toggle('is-over', length > MESSAGE_MAX_CHARS);
  }

  async function onSend(event) {
    event.preventDefault();
    if (busy.send || offline) return;
    const checked = checkMessage(el.sendMessage.value);
    if (checked.error) {
      showNotice('tools', checked.error);
      el.sendMessage.focus();
      return;
    }
    // One key per click, except a retry of the very send that never got an answer.
    if (!pendingSend || pendingSend.message !== checked.message) {
      pendingSend = { message: checked.message, key: newIdempotencyKey() };
    }
    const attempt = pendingSend;
    busy.send = true;
    updateButtons();
    el.sendStatus.textContent = 'Sending…';
    try {
      const res = await api('POST', '/do_send', { message: attempt.message }, { 'Idempotency-Key': attempt.key });
      pendingSend = null;
      if (res.ok) {
        const id = res.data && res.data.alert_id;
        el.sendStatus.textContent = id == null ? 'Alert sent.' : `Alert #${id} sent.`;
        if (el.sendMessage.value.trim() === attempt.message) el.sendMessage.value = '';
        updateCount();
      } else {
        el.sendStatus.textContent = '';
        showNotice('tools', res.error);
      }
    } catch (err) {
      onlyNetwork(err);
      el.sendStatus.textContent = 'Not confirmed. Press Send again once reconnected; it will not be sent twice.';
    } finally {
      busy.send = false;
      updateButtons();
    }
  }

  function onSendKeydown(event) {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      el.sendForm.requestSubmit();
    }
  }

  async function onCrash() {
    if (busy.crash || offline) return;
    busy.crash = true;
    updateButtons();
    try {
      // The process dies, so the connection usually drops: that is the point.
      await api('POST', '/crash_application');
    } catch (err) {
      onlyNetwork(err);
    } finally {
      busy.crash = false;
    }
    goOffline();
  }

  // ---------------------------------------------------------------- shared UI

  let noticeTimer = null;

  /** A small, non-blocking error note placed in the panel it is about. */
  function showNotice(panel, text) {
    const slot = panels[panel].querySelector('.notice-slot');
    if (el.notice.parentElement !== slot) slot.append(el.notice);
    el.notice.dataset.panel = panel;
    el.noticeText.textContent = text;
    el.notice.hidden = false;
    flash(el.notice, 'is-shown');
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(hideNotice, NOTICE_MS);
  }

  function hideNotice() {
    clearTimeout(noticeTimer);
    el.notice.hidden = true;
    el.noticeText.textContent = '';
  }

  function updateButtons() {
    const assigned = !!session && session.state === 'assigned';
    el.loginButton.disabled = offline;
    el.btnFixed.disabled = offline || busy.employee || !assigned;
    el.btnMoreTime.disabled = offline || busy.employee || !assigned;
    el.btnLogout.disabled = offline || busy.employee || !session;
    el.btnSend.disabled = offline || busy.send;
    el.btnCrash.disabled = offline || busy.crash;
    el.btnClear.disabled = offline || busy.clear;
  }

  // ---------------------------------------------------------------- start

  function boot() {
    el.loginForm.addEventListener('submit', onLoginSubmit);
    el.loginName.addEventListener('input', () => el.loginName.removeAttribute('aria-invalid'));
    el.btnFixed.addEventListener('click', onFixed);
    el.btnMoreTime.addEventListener('click', onMoreTime);
    el.btnLogout.addEventListener('click', onLogout);
    el.btnClear.addEventListener('click', onClear);
    el.sendForm.addEventListener('submit', onSend);
    el.sendMessage.addEventListener('keydown', onSendKeydown);
    el.sendMessage.addEventListener('input', updateCount);
    el.btnCrash.addEventListener('click', onCrash);
    el.noticeClose.addEventListener('click', hideNotice);
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible' && session && !offline) refreshAssignmentSoon();
    });
    // A safety net for a stalled stream; live events normally keep the history fresh.
    setInterval(() => {
      if (!offline && performance.now() - lastHistoryAtMs >= HISTORY_SAFETY_MS) fetchHistory();
    }, HISTORY_SAFETY_MS / 2);

    updateButtons();
    updateCount();
    startEvents();
    fetchHistory();

    const user = new URLSearchParams(window.location.search).get('user');
    if (user === null) {
      el.loginName.focus();
      return;
    }
    const checked = checkName(user);
    if (checked.error) {
      el.loginName.value = user;
      el.loginName.setAttribute('aria-invalid', 'true');
      showNotice('employee', checked.error);
      return;
    }
    if (checked.name !== user) setUserParam(checked.name);
    startSession(checked.name);
  }

  boot();
})();
