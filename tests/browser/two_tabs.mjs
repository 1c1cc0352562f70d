// Two tabs of one headless Chromium as two employees, ann and bob, on a running alert
// center. Run by tests/it/browser.rs:
//
//   node tests/browser/two_tabs.mjs BASE_URL SCREENSHOT_DIR
//
// Talks to the Rust side by lines: prints `STEP name` as it goes; after the crash button,
// once both tabs show the offline banner, prints `CRASHED` and waits for `BACK` on stdin
// (the Rust side has seen the supervisor start the app again on the same database and
// port); prints `OK` at the end. On any failure it saves `failure-*.png`, prints the
// error and exits 1. Every wait is bounded: nothing here can hang the test.

import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';

import { chromium } from 'playwright-core';

const [baseUrl, shotDir] = process.argv.slice(2);
if (!baseUrl || !shotDir) {
  console.error('usage: node two_tabs.mjs BASE_URL SCREENSHOT_DIR');
  process.exit(2);
}
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--no-first-run',
  '--disable-quic',
  '--disable-component-update',
  '--disable-sync',
];
/** The longest any one expected change may take to show. */
const WAIT_MS = 15_000;
/** The longest the Rust side may take to see the app back. */
const RESTART_WAIT_MS = 60_000;
const MESSAGE = 'Disk full on db-1 <script>alert("xss")</script>';
const SECOND_MESSAGE = 'CPU hot on web-2, after the restart';

const problems = [];
const stdinLines = [];
let onStdinLine = null;
createInterface({ input: process.stdin }).on('line', (line) => {
  stdinLines.push(line);
  if (onStdinLine) onStdinLine();
});

function step(name) {
  console.log(`STEP ${name}`);
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function nextStdinLine(timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (stdinLines.length === 0) {
    const left = deadline - Date.now();
    check(left > 0, `no line on stdin within ${timeoutMs} ms`);
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, left);
      onStdinLine = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    onStdinLine = null;
  }
  return stdinLines.shift();
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(shotDir, `${name}.png`), fullPage: true });
}

const state = (page) => page.locator('#assignment').getAttribute('data-state');

async function waitForState(page, wanted) {
  await page.waitForSelector(`#assignment[data-state="${wanted}"]`, { timeout: WAIT_MS });
}

async function countdown(page) {
  const text = await page.locator('#countdown').textContent();
  const seconds = Number(text);
  check(Number.isFinite(seconds), `#countdown shows ${JSON.stringify(text)}`);
  return seconds;
}

/** True when a colour (as getComputedStyle gives it) is clearly green. */
function isGreen(color) {
  const [r, g, b] = (color.match(/\d+(\.\d+)?/g) || []).map(Number);
  return g > r + 40 && g > b + 20;
}

/** Waits until exactly one of `pages` holds an alert; returns [holder, other]. */
async function exactlyOneAssigned(pages) {
  const deadline = Date.now() + WAIT_MS;
  let states = [];
  while (Date.now() < deadline) {
    states = await Promise.all(pages.map(state));
    if (states.includes('assigned')) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  check(states.includes('assigned'), `no tab got the alert: ${states}`);
  // Give a wrong second assignment the time to show up, then look again.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  states = await Promise.all(pages.map(state));
  check(
    states.filter((s) => s === 'assigned').length === 1 && states.includes('clear'),
    `expected one assigned and one clear tab, got ${states}`,
  );
  const holder = pages[states.indexOf('assigned')];
  return [holder, pages.find((p) => p !== holder)];
}

const historyRows = (page, status) => page.locator(`#history li[data-status="${status}"]`);

async function buttonsEnabled(page) {
  await page.waitForFunction(
    () => ['btn-send', 'btn-crash', 'btn-logout', 'btn-clear'].every((id) => !document.getElementById(id).disabled),
    null,
    { timeout: WAIT_MS },
  );
}

async function run(context) {
  const open = async (user) => {
    const page = await context.newPage();
    page.user = user;
    page.on('pageerror', (e) => problems.push(`${user}: uncaught error: ${e.message}`));
    page.on('dialog', (dialog) => {
      problems.push(`${user}: a dialog opened (unescaped text?): ${dialog.message()}`);
      dialog.dismiss().catch(() => {});
    });
    page.on('console', (m) => {
      if (m.type() === 'error') console.error(`[${user} console] ${m.text()}`);
    });
    await page.goto(`${baseUrl}/?user=${user}`, { timeout: WAIT_MS });
    return page;
  };
  const ann = await open('ann');
  const bob = await open('bob');
  const tabs = [ann, bob];

  step('both tabs log in');
  for (const page of tabs) {
    await waitForState(page, 'clear');
    check((await page.locator('#employee-name').textContent()) === page.user, `${page.user}: wrong name on duty`);
    await buttonsEnabled(page);
    await shot(page, `01-logged-in-${page.user}`);
  }

  step('ann sends an alert from the page');
  await ann.fill('#send-message', MESSAGE);
  await ann.click('#btn-send');
  await ann.waitForFunction(
    () => /Alert #\d+ sent/.test(document.getElementById('send-status').textContent),
    null,
    { timeout: WAIT_MS },
  );

  step('exactly one tab gets it');
  const [holder, other] = await exactlyOneAssigned(tabs);
  console.log(`STEP ${holder.user} holds the alert`);
  check((await holder.locator('#alert-message').textContent()) === MESSAGE, 'the message is not shown as text');
  for (const page of tabs) {
    const rows = historyRows(page, 'ASSIGNED');
    await rows.first().waitFor({ timeout: WAIT_MS });
    check((await rows.count()) === 1, `${page.user}: not one assigned row`);
    check((await rows.first().locator('.h-msg').textContent()) === MESSAGE, `${page.user}: history message`);
    await shot(page, `02-assigned-${page.user}`);
  }

  step('the countdown runs');
  const first = await countdown(holder);
  check(first >= 25 && first <= 30, `countdown starts at ${first}, not near 30`);
  await holder.waitForTimeout(2500);
  const later = await countdown(holder);
  check(later <= first - 2, `countdown went from ${first} to ${later} in 2.5 s`);
  await shot(holder, `03-countdown-${holder.user}`);

  step('more time extends it');
  await holder.click('#btn-more-time');
  await holder.waitForFunction(
    (min) => Number(document.getElementById('countdown').textContent) >= min,
    later + 2,
    { timeout: WAIT_MS },
  );
  check((await state(holder)) === 'assigned', 'more time lost the alert');
  await shot(holder, `04-more-time-${holder.user}`);

  step('I fixed it resolves it, and the history shows it green');
  await holder.click('#btn-fixed');
  await waitForState(holder, 'clear');
  for (const page of tabs) {
    const row = historyRows(page, 'RESOLVED').first();
    await row.waitFor({ timeout: WAIT_MS });
    const colors = await row.evaluate((li) => [
      getComputedStyle(li).borderLeftColor,
      getComputedStyle(li.querySelector('.pill')).color,
    ]);
    check(colors.every(isGreen), `${page.user}: the resolved row is not green: ${colors}`);
    check((await row.locator('.pill').textContent()).trim().toLowerCase() === 'resolved', 'pill text');
  }
  check((await state(other)) === 'clear', `${other.user} got something after the fix`);
  for (const page of tabs) await shot(page, `05-fixed-${page.user}`);

  step('the crash button: both tabs show the offline banner');
  // The supervisor brings the app back in well under a second, before the tabs' first
  // health check: holding /healthz back keeps them offline long enough to check and
  // photograph. Nothing else is faked: the process really dies and really comes back.
  await context.route('**/healthz', (route) => route.abort('connectionrefused'));
  await ann.click('#btn-crash');
  await Promise.all(
    tabs.map(async (page) => {
      await page.waitForSelector('#banner-offline', { state: 'visible', timeout: WAIT_MS });
      await page.waitForFunction(() => document.getElementById('btn-send').disabled, null, { timeout: WAIT_MS });
      check(await page.locator('#btn-crash').isDisabled(), `${page.user}: crash button still enabled`);
    }),
  );
  for (const page of tabs) await shot(page, `06-offline-${page.user}`);
  console.log('CRASHED');
  const answer = await nextStdinLine(RESTART_WAIT_MS);
  check(answer === 'BACK', `expected BACK on stdin, got ${JSON.stringify(answer)}`);
  await context.unroute('**/healthz');

  step('the tabs recover');
  for (const page of tabs) {
    await page.waitForSelector('#banner-offline', { state: 'hidden', timeout: WAIT_MS });
    await buttonsEnabled(page);
    await waitForState(page, 'clear');
    await historyRows(page, 'RESOLVED').first().waitFor({ timeout: WAIT_MS });
    await shot(page, `07-recovered-${page.user}`);
  }

  step('after the restart, a new alert still reaches exactly one tab');
  await bob.fill('#send-message', SECOND_MESSAGE);
  await bob.click('#btn-send');
  const [secondHolder] = await exactlyOneAssigned(tabs);
  check((await secondHolder.locator('#alert-message').textContent()) === SECOND_MESSAGE, 'second message');
  for (const page of tabs) await shot(page, `08-after-restart-${page.user}`);

  step('the same tabs at phone size');
  for (const page of tabs) {
    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 0, `${page.user}: the page is ${overflow}px wider than a phone`);
    await shot(page, `09-phone-${page.user}`);
  }

  step('the workflow console shows the lease watchers and their steps');
  const console_ = await context.newPage();
  console_.user = 'console';
  await console_.goto(`${baseUrl}/console`, { timeout: WAIT_MS });
  await console_.waitForSelector('#console-status[data-state="ok"]', { timeout: WAIT_MS });
  const row = console_.locator('#recent [data-workflow-id^="assign-"]').first();
  await row.waitFor({ timeout: WAIT_MS });
  await row.click();
  await console_.waitForFunction(() => (document.querySelector('#steps')?.textContent || '').includes('transaction'), null, { timeout: WAIT_MS });
  await shot(console_, '10-console');

  check(problems.length === 0, `problems in the page:\n${problems.join('\n')}`);
}

mkdirSync(shotDir, { recursive: true });
const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'light' });
let failed = false;
try {
  await run(context);
} catch (error) {
  failed = true;
  console.error(`FAILED: ${error.stack || error}`);
  for (const [i, page] of context.pages().entries()) {
    await shot(page, `failure-${page.user || i}`).catch(() => {});
  }
} finally {
  await browser.close().catch(() => {});
}
if (failed) process.exit(1);
console.log('OK');
process.exit(0);
