// Loads the neongrid dashboard in headless Chromium and prints what it shows as one
// JSON line, for the e2e test to compare with the API; saves a screenshot.
//
//   node dashboard.mjs <url> <screenshot.png> [--expect-devices N] [--timeout-ms T]
//
// Exits non-zero, with the reason on stderr, when Chromium can't start, the page throws,
// or the devices don't appear in time. Chromium comes from Debian (apt-get install
// chromium); CHROMIUM overrides its path.
import { chromium } from "playwright-core";

function usage(message) {
  console.error(`${message}\nusage: node dashboard.mjs <url> <screenshot.png> [--expect-devices N] [--timeout-ms T]`);
  process.exit(2);
}

const args = process.argv.slice(2);
const [url, screenshot] = args;
if (!url || !screenshot) usage("missing <url> or <screenshot.png>");
const option = (name, fallback) => {
  const i = args.indexOf(name);
  if (i < 0) return fallback;
  const value = Number(args[i + 1]);
  if (!Number.isInteger(value) || value < 0) usage(`${name} needs a whole number`);
  return value;
};
const expectDevices = option("--expect-devices", 1);
const timeoutMs = option("--timeout-ms", 30000);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

let browser;
try {
  browser = await chromium.launch({ executablePath, headless: true, args: ["--no-sandbox"] });
} catch (err) {
  console.error(`cannot launch Chromium at ${executablePath} (apt-get install chromium, or set CHROMIUM): ${err.message}`);
  process.exit(1);
}

const pageErrors = [];
const consoleErrors = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on("pageerror", (err) => pageErrors.push(err.message));
  page.on("console", (msg) => { if (msg.type() === "error") consoleErrors.push(msg.text()); });
  await page.goto(url, { timeout: timeoutMs });
  await page.waitForFunction(
    (n) => Number(document.body.dataset.refreshes) >= 1
      && document.querySelectorAll('[data-testid="device"]').length >= n,
    expectDevices, { timeout: timeoutMs });
  // One more refresh, so what is read below is a settled, complete render.
  const seen = await page.evaluate(() => Number(document.body.dataset.refreshes));
  await page.waitForFunction((n) => Number(document.body.dataset.refreshes) > n, seen,
                             { timeout: timeoutMs });
  if (pageErrors.length) throw new Error(`page errors: ${pageErrors.join("; ")}`);

  const view = await page.evaluate(() => ({
    title: document.title,
    refreshes: Number(document.body.dataset.refreshes),
    status: document.getElementById("status").textContent,
    devices: [...document.querySelectorAll('[data-testid="device"]')].map((d) => ({
      device: d.dataset.device,
      count: Number(d.querySelector('[data-testid="count"]').textContent),
      metrics: [...d.querySelectorAll('[data-testid="metric"]')].map((m) => ({
        metric: m.dataset.metric,
        latest: m.querySelector('[data-testid="latest-value"]').textContent,
        chart_points: Number(m.querySelector('[data-testid="chart"]').dataset.points),
      })),
    })),
  }));
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ ...view, console_errors: consoleErrors }));
} catch (err) {
  console.error(`dashboard check failed: ${err.message}`);
  if (consoleErrors.length) console.error(`console errors: ${consoleErrors.join("; ")}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
