// loadtest/render/shots.mjs: the puppeteer-core contenders of bench_render.sh.
//
// puppeteer-core (pinned in package.json, never downloads a browser) takes N
// PNG screenshots, CONCURRENCY at a time, of a list of URLs (shot i gets
// urls[i % length]), in one of three set-ups:
//
//   defaults  what a user writes first: puppeteer.launch({executablePath:
//             /usr/bin/chromium}) (new headless, puppeteer's default flags),
//             a new page per shot in the default context (each in its own
//             window: a background tab of new headless never paints, so
//             4 tabs of one window hang in captureScreenshot), setViewport,
//             goto(load), screenshot(png), page close.
//   fresh     tuned: the headless shell (headless: 'shell', puppeteer's
//             default flags), a new browser context per shot (nothing shared
//             between shots), page, setViewport, goto, screenshot, close.
//   reused    tuned: the headless shell, CONCURRENCY tabs, each in its own
//             browser context made once, reused shot after shot; after each
//             shot the tab is reset with the calls tintype's warm contexts
//             make: about:blank, Storage.clearDataForOrigin(origin, "all"),
//             Network.clearBrowserCookies, Network.clearBrowserCache,
//             Browser.resetPermissions.
//
// WARMUP shots (one round of the pool) run first and are not timed. Every
// screenshot is checked (png.mjs: 1280x800, not blank) and every navigation
// must answer 200; any failure exits 1.
//
// Prints one JSON object: shots/s over the timed shots, the CPU time this
// node process and its Chromium (every helper process) used for them
// (cpu.mjs), latency from the start of the timed run to each PNG in hand (as
// if all N were wanted at once and queued for the pool: the definition of
// tintype's submit-all-at-once latency), per-shot time, the phases, PNG bytes.
//
// Usage: node shots.mjs --urls URL[,URL...] --mode defaults|fresh|reused
//        [--n 60] [--concurrency 4] [--warmup 4] [--chromium PATH]
//        [--width 1280] [--height 800] [--save FILE.png]

import { readFileSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import puppeteer from 'puppeteer-core';
import { treeCpu } from './cpu.mjs';
import { checkShot } from './png.mjs';

function parseArgs(argv) {
  const o = {
    urls: '',
    mode: 'defaults',
    n: 60,
    concurrency: 4,
    warmup: -1,
    chromium: '',
    width: 1280,
    height: 800,
    save: '',
    seq: 0,
  };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '');
    const v = argv[i + 1];
    if (!(k in o) || v === undefined) throw new Error(`bad argument ${argv[i]}`);
    o[k] = typeof o[k] === 'number' ? Number(v) : v;
  }
  if (o.warmup < 0) o.warmup = o.concurrency;
  o.urls = o.urls.split(',').filter(Boolean);
  if (!o.urls.length || o.urls.some((u) => !/^http:\/\/127\.\d+\.\d+\.\d+:\d+\//.test(u))) {
    throw new Error(`--urls must be http://127.x.y.z:PORT/... URLs: ${o.urls}`);
  }
  if (!['defaults', 'fresh', 'reused'].includes(o.mode)) throw new Error(`--mode: ${o.mode}`);
  if (!o.chromium) o.chromium = o.mode === 'defaults' ? '/usr/bin/chromium' : '/usr/bin/chromium-headless-shell';
  for (const k of ['n', 'concurrency', 'width', 'height']) {
    if (!Number.isInteger(o[k]) || o[k] < 1) throw new Error(`--${k} must be a positive integer`);
  }
  return o;
}

function percentile(sorted, p) {
  if (!sorted.length) return null;
  // Nearest rank: the smallest value with at least p% of the values <= it.
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1];
}

function summary(values) {
  const s = [...values].sort((a, b) => a - b);
  const r = (x) => (x === null ? null : Math.round(x * 10) / 10);
  return {
    p50: r(percentile(s, 50)),
    p99: r(percentile(s, 99)),
    min: r(s[0]),
    max: r(s[s.length - 1]),
    mean: r(s.reduce((a, b) => a + b, 0) / s.length),
  };
}

async function loadAndShoot(page, o, url, t0) {
  await page.setViewport({ width: o.width, height: o.height });
  const tPage = performance.now();
  const resp = await page.goto(url, { waitUntil: 'load', timeout: 30000 });
  if (!resp || (resp.status() !== 200 && resp.status() !== 304)) throw new Error(`${url}: navigation answered ${resp ? resp.status() : 'nothing'}`);
  const tLoaded = performance.now();
  const png = Buffer.from(await page.screenshot({ type: 'png' }));
  const bytesAt = performance.now();
  return { png, bytesAt, phases: { context_ms: tPage - t0, navigate_ms: tLoaded - tPage, capture_ms: bytesAt - tLoaded } };
}

// One tab of the reused set-up: its own context, page and CDP session.
async function makeTab(browser) {
  const ctx = await browser.createBrowserContext();
  const page = await ctx.newPage();
  const cdp = await page.createCDPSession();
  return { ctx, page, cdp, id: ctx.id };
}

async function resetTab(tab, browserCdp, url) {
  await tab.page.goto('about:blank');
  await Promise.all([
    tab.cdp.send('Storage.clearDataForOrigin', { origin: new URL(url).origin, storageTypes: 'all' }),
    tab.cdp.send('Network.clearBrowserCookies'),
    tab.cdp.send('Network.clearBrowserCache'),
    browserCdp.send('Browser.resetPermissions', { browserContextId: tab.id }),
  ]);
}

async function shot(env, o, i, tab) {
  const url = o.urls[i % o.urls.length];
  const t0 = performance.now();
  let r;
  if (o.mode === 'defaults') {
    // a window per page: new headless paints only the front tab of a window, so
    // 4 tabs in one window hang in captureScreenshot (measured: 3 of 3 runs)
    const page = await env.browser.newPage({ type: 'window' });
    try {
      r = await loadAndShoot(page, o, url, t0);
    } finally {
      await page.close();
    }
  } else if (o.mode === 'fresh') {
    const ctx = await env.browser.createBrowserContext();
    try {
      r = await loadAndShoot(await ctx.newPage(), o, url, t0);
    } finally {
      await ctx.close();
    }
  } else {
    r = await loadAndShoot(tab.page, o, url, t0);
    await resetTab(tab, env.browserCdp, url);
  }
  r.phases.close_ms = performance.now() - r.bytesAt; // page/context close, or the reset
  checkShot(r.png, o.width, o.height, `shot ${i} of ${url}`);
  return { t0, ...r };
}

// Runs n shots over a pool of `concurrency` loops; returns per-shot records.
async function pool(env, o, n, first) {
  const out = [];
  let next = 0;
  const loop = async (k) => {
    while (next < n) {
      const i = first + next++;
      out.push(await shot(env, o, i, env.tabs[k]));
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.concurrency, n) }, (_, k) => loop(k)));
  return out;
}

// Idle latency: one shot at a time on a page kept open (goto + screenshot).
async function sequential(env, o) {
  const page = await env.browser.newPage();
  const times = [];
  for (let i = 0; i < o.warmup + o.n; i++) {
    const t0 = performance.now();
    const r = await loadAndShoot(page, o, o.urls[i % o.urls.length], t0);
    checkShot(r.png, o.width, o.height, `shot ${i}`);
    if (i >= o.warmup) times.push(r.bytesAt - t0);
  }
  await page.close();
  return times;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const tLaunch = performance.now();
  const browser = await puppeteer.launch({
    executablePath: o.chromium,
    headless: o.mode === 'defaults' ? true : 'shell',
    // the one flag added to puppeteer's defaults: root in a container has no sandbox (tintype runs so too)
    args: ['--no-sandbox'],
    defaultViewport: null,
    dumpio: !!process.env.DUMPIO,
    protocolTimeout: 60000, // a capture that never returns fails the run in a minute, not three
  });
  browser.process()?.on('exit', (code, sig) => {
    if (!closing) process.stderr.write(`shots.mjs: the browser exited (code ${code}, signal ${sig})\n`);
  });
  try {
    const env = { browser, tabs: [], browserCdp: await browser.target().createCDPSession() };
    const launchMs = performance.now() - tLaunch;
    const version = await browser.version();
    const base = {
      contender: `puppeteer-core ${o.mode}`,
      puppeteer_core: JSON.parse(readFileSync(new URL('./node_modules/puppeteer-core/package.json', import.meta.url)))
        .version,
      browser: version,
      chromium: o.chromium,
      flags: o.mode === 'defaults' ? 'puppeteer defaults + --no-sandbox (new headless), a window per page' : "puppeteer defaults + --no-sandbox, headless: 'shell'",
      mode: o.mode,
      launch_ms: Math.round(launchMs),
    };
    if (o.seq) {
      const times = await sequential(env, o);
      process.stdout.write(JSON.stringify({ ...base, n: o.n, navigate_capture_ms: summary(times) }) + '\n');
      return;
    }
    if (o.mode === 'reused') {
      for (let k = 0; k < o.concurrency; k++) env.tabs.push(await makeTab(browser));
    }
    if (o.warmup > 0) await pool(env, o, o.warmup, 0);
    const cpu0 = treeCpu(process.pid);
    const tStart = performance.now();
    const shots = await pool(env, o, o.n, o.warmup);
    const tEnd = performance.now();
    const cpu1 = treeCpu(process.pid);
    if (o.save) writeFileSync(o.save, shots[0].png);
    const wallS = (tEnd - tStart) / 1000;
    const result = {
      ...base,
      n: o.n,
      concurrency: o.concurrency,
      warmup: o.warmup,
      urls: o.urls.length,
      wall_s: Math.round(wallS * 1000) / 1000,
      per_s: Math.round((o.n / wallS) * 100) / 100,
      // node (this driver) + Chromium and all its processes, timed shots only
      cpu_s: Math.round((cpu1.total - cpu0.total) * 100) / 100,
      cpu_ms_per_shot: Math.round(((cpu1.total - cpu0.total) * 1000) / o.n),
      driver_cpu_ms_per_shot: Math.round(((cpu1.driver - cpu0.driver) * 1000) / o.n),
      shot_ms: summary(shots.map((s) => s.bytesAt - s.t0)),
      latency_ms: summary(shots.map((s) => s.bytesAt - tStart)),
      timings_p50_ms: Object.fromEntries(
        Object.keys(shots[0].phases).map((k) => [k, summary(shots.map((s) => s.phases[k])).p50]),
      ),
      png_bytes_mean: Math.round(shots.reduce((a, s) => a + s.png.length, 0) / shots.length),
      images_checked: shots.length,
    };
    process.stdout.write(JSON.stringify(result) + '\n');
  } finally {
    closing = true;
    await browser.close();
  }
}

let closing = false;

main().catch((e) => {
  process.stderr.write(`shots.mjs: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
