// loadtest/render/shots.mjs: the reference contender of bench_render.sh.
//
// puppeteer-core (pinned in package.json) launches Debian's /usr/bin/chromium
// with the flag set below and nothing else (ignoreDefaultArgs; puppeteer adds
// only --remote-debugging-port=0), a fresh --user-data-dir, and takes N PNG
// screenshots of one URL, CONCURRENCY at a time. Each shot, like a tintype
// job: a new browser context (no shared cookies, storage or cache), a new
// page, setViewport 1280x800, goto(url, {waitUntil: 'load'}), screenshot
// (png, the viewport), close the context. WARMUP shots (one round of the
// pool) run first and are not timed. Every screenshot is checked to be a
// 1280x800 PNG and every navigation to answer 200; any failure exits 1.
//
// Prints one JSON object: shots/s over the timed shots, the CPU time this
// node process and its Chromium (every helper process) used for them
// (cpu.mjs), and two latency
// distributions (ms): "shot" (context created -> PNG bytes in hand; the
// context close that follows is in the wall time but not in the latency)
// and "from_start" (the start of the timed run -> PNG in hand: as if all N
// were wanted at once and queued for the pool of CONCURRENCY, the same
// definition as tintype's submit-all-at-once queue latency).
//
// Usage: node shots.mjs --url URL [--n 60] [--concurrency 4] [--warmup 4]
//        [--chromium /usr/bin/chromium] [--width 1280] [--height 800]
//        [--save FILE.png]

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import puppeteer from 'puppeteer-core';
import { treeCpu } from './cpu.mjs';

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

function parseArgs(argv) {
  const o = {
    url: '',
    n: 60,
    concurrency: 4,
    warmup: -1,
    chromium: '/usr/bin/chromium',
    width: 1280,
    height: 800,
    save: '',
  };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '');
    const v = argv[i + 1];
    if (!(k in o) || v === undefined) throw new Error(`bad argument ${argv[i]}`);
    o[k] = typeof o[k] === 'number' ? Number(v) : v;
  }
  if (o.warmup < 0) o.warmup = o.concurrency;
  if (!/^http:\/\/127\.0\.0\.1:\d+\//.test(o.url)) {
    throw new Error(`--url must be http://127.0.0.1:PORT/...: ${o.url}`);
  }
  for (const k of ['n', 'concurrency', 'width', 'height']) {
    if (!Number.isInteger(o[k]) || o[k] < 1) throw new Error(`--${k} must be a positive integer`);
  }
  return o;
}

// Width and height from a PNG's IHDR, or null if it is not a PNG.
function pngSize(buf) {
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (buf.length < 24 || sig.some((b, i) => buf[i] !== b)) return null;
  if (buf.toString('latin1', 12, 16) !== 'IHDR') return null;
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
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

async function shot(browser, o) {
  const t0 = performance.now();
  const ctx = await browser.createBrowserContext();
  let png;
  let tPage;
  let tLoaded;
  let bytesAt;
  try {
    const page = await ctx.newPage();
    await page.setViewport({ width: o.width, height: o.height });
    tPage = performance.now();
    const resp = await page.goto(o.url, { waitUntil: 'load', timeout: 30000 });
    if (!resp || resp.status() !== 200) {
      throw new Error(`navigation answered ${resp ? resp.status() : 'nothing'}`);
    }
    tLoaded = performance.now();
    png = Buffer.from(await page.screenshot({ type: 'png' }));
    bytesAt = performance.now();
  } finally {
    await ctx.close();
  }
  const tClosed = performance.now();
  const size = pngSize(png);
  if (!size || size.width !== o.width || size.height !== o.height) {
    throw new Error(`screenshot is not a ${o.width}x${o.height} PNG: ${JSON.stringify(size)}`);
  }
  // Phases named like tintype's result.timings, for the report.
  const phases = {
    context_ms: tPage - t0, // createBrowserContext + newPage + setViewport
    navigate_ms: tLoaded - tPage, // goto until the load event
    capture_ms: bytesAt - tLoaded, // screenshot
    close_ms: tClosed - bytesAt, // context close
  };
  return { t0, bytesAt, png, phases };
}

// Runs n shots over a pool of `concurrency` loops; returns per-shot records.
async function pool(browser, o, n) {
  const out = [];
  let next = 0;
  const loop = async () => {
    while (next < n) {
      next++;
      out.push(await shot(browser, o));
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.concurrency, n) }, loop));
  return out;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const profile = mkdtempSync(join(tmpdir(), 'tintype-bench-puppeteer-'));
  const tLaunch = performance.now();
  const browser = await puppeteer.launch({
    executablePath: o.chromium,
    ignoreDefaultArgs: true,
    args: [...FLAGS, `--user-data-dir=${profile}`],
    defaultViewport: null,
    pipe: false,
  });
  try {
    const launchMs = performance.now() - tLaunch;
    const version = await browser.version();
    if (o.warmup > 0) await pool(browser, o, o.warmup);
    const cpu0 = treeCpu(process.pid);
    const tStart = performance.now();
    const shots = await pool(browser, o, o.n);
    const tEnd = performance.now();
    const cpu1 = treeCpu(process.pid);
    if (o.save) writeFileSync(o.save, shots[0].png);
    const wallS = (tEnd - tStart) / 1000;
    const result = {
      contender: 'puppeteer-core',
      puppeteer_core: JSON.parse(
        readFileSync(new URL('./node_modules/puppeteer-core/package.json', import.meta.url)),
      ).version,
      browser: version,
      flags: FLAGS,
      n: o.n,
      concurrency: o.concurrency,
      warmup: o.warmup,
      launch_ms: Math.round(launchMs),
      wall_s: Math.round(wallS * 1000) / 1000,
      per_s: Math.round((o.n / wallS) * 100) / 100,
      // node (this driver) + Chromium and all its processes, timed shots only
      cpu_s: Math.round((cpu1.total - cpu0.total) * 100) / 100,
      cpu_ms_per_shot: Math.round(((cpu1.total - cpu0.total) * 1000) / o.n),
      driver_cpu_ms_per_shot: Math.round(((cpu1.driver - cpu0.driver) * 1000) / o.n),
      shot_ms: summary(shots.map((s) => s.bytesAt - s.t0)),
      from_start_ms: summary(shots.map((s) => s.bytesAt - tStart)),
      timings_p50_ms: Object.fromEntries(
        Object.keys(shots[0].phases).map((k) => [k, summary(shots.map((s) => s.phases[k])).p50]),
      ),
      png_bytes: shots[0].png.length,
    };
    process.stdout.write(JSON.stringify(result) + '\n');
  } finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`shots.mjs: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
