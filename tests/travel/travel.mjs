// travel.mjs -- travel mode's browser half, as a person meets it: headless Chromium opens the
// router's /travel/ page, asks one question (the service worker saves the answer), the router
// process is stopped by PID, the page is reloaded and asked again: the saved answer comes back
// marked as such, and a question never asked gets the worker's JSON error.
//   node travel.mjs ROUTER_URL ROUTER_PID [SCREENSHOT.png]
// Prints "ok - ..." / "not ok - ..." lines; exit 0 when all held, 1 when one failed, 3 when
// Chromium could not start (the caller prints a skip line).
import { chromium } from 'playwright-core';

const [url, pidText, shot] = process.argv.slice(2);
const pid = Number(pidText);
let fails = 0;
function check(ok, what) {
  if (!ok) fails++;
  console.log(`${ok ? 'ok' : 'not ok'} - ${what}`);
}

let browser;
try {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    timeout: 30000,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
} catch (e) {
  console.log(`# chromium did not start: ${String(e.message).split('\n')[0]}`);
  process.exit(3);
}

async function routerDown(ms) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    try {
      await fetch(`${url}/health/liveliness`, { signal: AbortSignal.timeout(500) });
    } catch (e) {
      return true;
    }
    await new Promise((ok) => setTimeout(ok, 100));
  }
  return false;
}

const ask = (prompt) => (p) => p.evaluate((q) => window.slodrillAsk(q, 'app/chat', ''), prompt);

try {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  await page.goto(`${url}/travel/`, { waitUntil: 'load' });
  check(await page.evaluate(() => window.slodrillReady) === true,
    'the page registered /travel/sw.js and the worker controls it');

  const first = await ask('Where is my order?')(page);
  check(first.status === 200 && first.text.length > 0 && first.travel === '',
    `online, the router answered (HTTP ${first.status}, ${first.deployment}): "${first.text.slice(0, 40)}"`);
  const saved = await page.waitForFunction(async () => {
    const c = await caches.open('slodrill-travel-v1');
    return (await c.keys()).some((k) => k.url.includes('/travel/saved/'));
  }, null, { timeout: 5000 }).then(() => true, () => false);
  check(saved, 'the worker saved the answer in Cache Storage');

  process.kill(pid, 'SIGTERM');
  check(await routerDown(10000), `the router (pid ${pid}) is stopped: its port refuses connections`);

  const reloaded = await page.reload({ waitUntil: 'load' }).then(() => true, () => false);
  check(reloaded && (await page.title()) === 'slodrill travel mode',
    'the page reloads with the router stopped (the worker kept it)');
  check(await page.evaluate(() => window.slodrillReady) === true, 'and the worker controls it again');

  const second = await ask('Where is my order?')(page);
  check(second.status === 200 && second.travel === 'browser-cache' && second.text === first.text,
    `the same question offline: the saved answer (HTTP ${second.status}, x-slodrill-travel: ${second.travel})`);
  check(/^Saved answer from this browser/.test(second.source) && second.savedAt !== '',
    `marked as a saved answer for the person: "${second.source}"`);

  const third = await ask('A question nobody asked before')(page);
  check(third.status === 503 && third.travel === 'miss' && /no saved answer/.test(third.error),
    `a new question offline: the worker's JSON error (HTTP ${third.status}): "${third.error.slice(0, 60)}..."`);

  // the form, as a person uses it
  await page.fill('#prompt', 'Where is my order?');
  await page.click('button[type=submit]');
  const shown = await page.waitForFunction(
    () => document.getElementById('source').className === 'saved', null, { timeout: 5000 })
    .then(() => true, () => false);
  check(shown && (await page.textContent('#answer')) === first.text,
    'the form shows the saved answer, marked in its own colour');
  if (shot) await page.screenshot({ path: shot, fullPage: true });
} catch (e) {
  check(false, `the browser session ended early: ${String(e.message).split('\n')[0]}`);
} finally {
  await browser.close();
}
process.exit(fails ? 1 : 0);
