// harness — shared helpers of tintype's browser tests (issue 6).
//
// Each tests/e2e/test_*.mjs is one ctest test (e2e.NAME, and asan.e2e.NAME
// for the ASan+UBSan binary). A file calls main(name, steps): it starts the
// real `tintype up` (TINTYPE_BIN) on 127.0.0.1 and a free port with its own
// --data dir, one API process and one worker (whose Chromium renders the
// jobs), a page server of its own on 127.0.0.1 (the pages the worker
// shoots), and Debian's /usr/bin/chromium driven by playwright-core (the
// browser a person would use; it never downloads one). Then it runs the
// steps in order, each a named async function of a Ctx. A step that throws
// ends the run (later steps build on the page it left); check()/eq() record
// a failure and go on.
//
// Every page made with ctx.newPage() fails the test on a console error, an
// uncaught page error, a request to any origin but the app's own (the
// front-end works offline: no CDN), a failed request or an HTTP error
// answer from the app's origin — except what a step declares it expects
// with ctx.expecting(). Screenshots of each view go to TT_E2E_ARTIFACTS
// (the build tree's e2e-artifacts/<variant>/), paths printed. After the
// browser closes, tintype is stopped with SIGTERM and must exit 0 in time,
// with no child process that died while the test ran, every stdout line a
// JSON log object, and no sanitizer report on stderr.
//
// Node's standard library and playwright-core only. Every wait has a
// deadline; every process started here is killed on the way out.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import zlib from 'node:zlib';

let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  console.log(`playwright-core is not installed in tests/e2e/node_modules (${e.code || e.message}): ` +
    'run scripts/install-deps.sh (it runs npm ci there)');
  process.exit(1);
}

export const BIN = process.env.TINTYPE_BIN || '';
export const SANITIZED = process.env.TT_SANITIZED || '';
// timing margins grow under ASan+UBSan; what is checked does not
export const SLOW = SANITIZED ? 2 : 1;
export const HOST = '127.0.0.1';
export const CHROMIUM = process.env.TT_E2E_CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = process.env.TT_E2E_ARTIFACTS ||
  path.join(os.tmpdir(), 'tintype-e2e-artifacts', SANITIZED ? 'asan' : 'plain');
// The flags the brief of issue 6 names, and one more: no host name resolves
// (only 127.0.0.1 literals are used), so the browser cannot send a packet
// off this machine even if something in it tried.
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',
];
const SANITIZER_MARKS = ['ERROR: AddressSanitizer', 'AddressSanitizer', 'LeakSanitizer',
  'UndefinedBehaviorSanitizer', 'runtime error:'];
const REQUIRED_LOG_KEYS = ['time', 'level', 'pid', 'role', 'msg'];
export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

// ------------------------------------------------------------------ checks

const state = { failures: [], step: '-', checks: 0 };

function short(v, n = 400) {
  let s;
  try { s = typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v); } catch { s = String(v); }
  if (s === undefined) s = String(v);
  return s.length <= n ? s : s.slice(0, n) + `...(${s.length} chars)`;
}

/** Soft assertion: records a failure (with expected/actual) and goes on. */
export function check(cond, what, expected, actual) {
  state.checks++;
  if (!cond) {
    let msg = `[${state.step}] ${what}`;
    if (expected !== undefined || actual !== undefined) {
      msg += `\n      expected: ${short(expected)}\n      actual:   ${short(actual)}`;
    }
    state.failures.push(msg);
    console.log('  FAIL ' + msg);
  }
  return !!cond;
}

export function eq(actual, expected, what) {
  return check(actual === expected, what, expected, actual);
}

export function fail(what, expected, actual) {
  return check(false, what, expected, actual);
}

/** Colours within tol per channel (PNG round trips are exact; JPEG is not). */
export function near(c, want, tol = 8) {
  return Array.isArray(c) && c.length >= 3 && [0, 1, 2].every((i) => Math.abs(c[i] - want[i]) <= tol);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls fn() (sync or async) until it returns a truthy value; throws with
 * what (and the last value, via describe) when the deadline passes. */
export async function until(fn, timeoutMs, what, describe) {
  const deadline = Date.now() + timeoutMs * SLOW;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) {
      const extra = describe ? await describe(last) : '';
      throw new Error(`timed out after ${(timeoutMs * SLOW / 1000).toFixed(0)}s waiting for ${what}` +
        (extra ? `: ${extra}` : ''));
    }
    await sleep(50);
  }
}

// ------------------------------------------------------------------ pictures

const CRC_TABLE = (() => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();

function crc32(buf) {
  let c = -1;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

/** An 8-bit RGB PNG (filter 0 rows) whose pixel (x, y) is fn(x, y) -> [r, g, b]. */
export function makePng(w, h, fn) {
  const raw = Buffer.alloc((w * 3 + 1) * h);
  let o = 0;
  for (let y = 0; y < h; y++) {
    raw[o++] = 0;
    for (let x = 0; x < w; x++) {
      const [r, g, b] = fn(x, y);
      raw[o++] = r; raw[o++] = g; raw[o++] = b;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; ihdr[9] = 2; ihdr[10] = 0; ihdr[11] = 0; ihdr[12] = 0;
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw, { level: 6 })), chunk('IEND', Buffer.alloc(0))]);
}

// ------------------------------------------------------------------ page server

export const RED = [255, 0, 0];
export const BLUE = [0, 0, 255];
export const WHITE = [255, 255, 255];
const css = (c) => `rgb(${c[0]},${c[1]},${c[2]})`;
const box = (id, x, y, w, h, c) =>
  `<div id="${id}" style="position:absolute;left:${x}px;top:${y}px;width:${w}px;height:${h}px;background:${css(c)}"></div>`;

/** The page the worker shoots, in CSS pixels: WHITE, a RED 300x200 block at
 * (0,0), a BLUE 200x200 block at (600,300). Its title is "e2e blocks". */
export const BLOCKS = { red: [100, 100], blue: [700, 400], white: [1000, 700] };

/** The pages the worker's Chromium renders, on 127.0.0.1 and a free port. */
export class PageServer {
  constructor() {
    this.counts = new Map();
    this.server = http.createServer((req, res) => {
      const u = new URL(req.url, 'http://x');
      this.counts.set(u.pathname, (this.counts.get(u.pathname) || 0) + 1);
      const blocks = () => {
        const body = '<!doctype html><html><head><meta charset="utf-8"><title>e2e blocks</title>' +
          `<style>html,body{margin:0;padding:0;background:${css(WHITE)}}</style></head><body>` +
          box('r', 0, 0, 300, 200, RED) + box('b', 600, 300, 200, 200, BLUE) + '</body></html>';
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store',
          'Content-Length': Buffer.byteLength(body) });
        res.end(body);
      };
      if (u.pathname === '/blocks') {
        blocks();
        return;
      }
      if (u.pathname === '/slow') { // /blocks after ?ms= milliseconds: a job that stays running a while
        const t = setTimeout(blocks, Math.min(Number(u.searchParams.get('ms')) || 1000, 30000));
        res.on('close', () => clearTimeout(t));
        return;
      }
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('no such page\n');
    });
  }

  async start() {
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, HOST, resolve);
    });
    this.port = this.server.address().port;
  }

  url(p) { return `http://${HOST}:${this.port}${p}`; }
  count(p) { return this.counts.get(p) || 0; }

  async stop() {
    this.server.closeAllConnections?.();
    await new Promise((r) => this.server.close(() => r()));
  }
}

// ------------------------------------------------------------------ tintype up

function cleanEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('TINTYPE_')) env[k] = v;
  }
  if (SANITIZED) {
    // sanitizer reports go to stderr, which stop() scans
    env.ASAN_OPTIONS ??= 'abort_on_error=0:detect_leaks=1';
    env.UBSAN_OPTIONS ??= 'print_stacktrace=1:halt_on_error=1';
  }
  // the page server is on loopback, which the worker's SSRF policy denies
  env.TINTYPE_ALLOW_NETWORKS = '127.0.0.1/32';
  env.TINTYPE_SIGNUP_RATE = '0'; // the abuse limits have tests of their own (it.api_abuse)
  env.TINTYPE_AUTH_FAILURE_RATE = '0';
  return env;
}

export class Tintype {
  constructor() {
    this.lines = [];
    this.bad = [];
    this.stderr = '';
    this.exit = null;
  }

  async start() {
    this.data = fs.mkdtempSync(path.join(os.tmpdir(), 'tt-e2e-'));
    this.args = ['up', '--worker-processes', '1', '--processes', '1', '--host', HOST, '--port', '0',
      '--data', this.data];
    // its own process group (detached), so stop() can end Chromium and all
    this.proc = spawn(BIN, this.args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv() });
    this.exited = new Promise((resolve) => this.proc.on('exit', (code, sig) => {
      this.exit = { code, sig };
      resolve(this.exit);
    }));
    this.proc.on('error', (e) => { this.spawnError = e; });
    readline.createInterface({ input: this.proc.stdout }).on('line', (s) => {
      let obj;
      try { obj = JSON.parse(s); } catch { obj = null; }
      if (!obj || typeof obj !== 'object' || Array.isArray(obj)) this.bad.push(s);
      else this.lines.push(obj);
    });
    this.proc.stderr.setEncoding('utf8');
    this.proc.stderr.on('data', (d) => { this.stderr += d; });
    const listening = await until(() => this.spawnError ? { error: this.spawnError } :
      this.lines.find((l) => l.msg === 'listening' && Number.isInteger(l.port)) || (this.exit && { exit: this.exit }),
    10000, `a "listening" line from ${BIN} ${this.args.join(' ')}`,
    () => `stdout=${short(this.lines, 1000)} stderr=${short(this.stderr.slice(-1000))}`);
    if (!listening.port) {
      throw new Error(`tintype up did not start: ${short(listening)}; stderr=${short(this.stderr.slice(-2000), 2000)}`);
    }
    this.port = listening.port;
    this.origin = `http://${HOST}:${this.port}`;
    await until(async () => {
      try { return (await fetch(this.origin + '/index.html')).status === 200; } catch { return false; }
    }, 10000, `GET ${this.origin}/index.html to answer 200`);
    // the API process and the worker
    await until(() => this.logs('child started').length >= 2, 10000, 'two "child started" lines',
      () => short(this.lines.map((l) => l.msg)));
  }

  logs(msg) { return this.lines.filter((l) => l.msg === msg); }

  groupKill() {
    if (!this.proc || !this.proc.pid) return;
    try { process.kill(-this.proc.pid, 'SIGKILL'); } catch { /* gone */ }
  }

  /** SIGTERM; checks it drained and exited 0, then what it wrote. */
  async stop() {
    if (!this.proc || this.stopped) return;
    this.stopped = true;
    const died = this.logs('child exited');
    check(died.length === 0, 'no child process died while the test ran (crash?)', [], died);
    if (this.exit === null) {
      process.kill(this.proc.pid, 'SIGTERM');
      const res = await Promise.race([this.exited, sleep(15000 * SLOW).then(() => null)]);
      check(res !== null, `tintype up exited within ${15 * SLOW}s of SIGTERM`, 'exit', 'still running');
      if (res) check(res.code === 0, 'tintype up exits 0 after SIGTERM', { code: 0, sig: null }, res);
    } else {
      fail('tintype up was still running at the end of the test', 'running', this.exit);
    }
    this.groupKill();
    await Promise.race([this.exited, sleep(5000)]);
    const marks = SANITIZER_MARKS.filter((m) => this.stderr.includes(m));
    check(marks.length === 0, 'no sanitizer report on tintype\'s stderr', '', this.stderr.slice(-4000));
    check(this.bad.length === 0, 'every stdout line of tintype is a JSON object', [], this.bad.slice(0, 5));
    const missing = this.lines.filter((l) => REQUIRED_LOG_KEYS.some((k) => !(k in l)));
    check(missing.length === 0, `every log line has keys ${REQUIRED_LOG_KEYS}`, [], missing.slice(0, 3));
    fs.rmSync(this.data, { recursive: true, force: true });
  }

  /** The last log lines, for a failure's context. */
  tail(n = 30) {
    return this.lines.slice(-n).map((l) => JSON.stringify(l)).join('\n');
  }
}

// ------------------------------------------------------------------ the test context

// Runs in every page before the app's own scripts: keeps the history of
// what the live elements showed (the state texts, the upload progress), so
// a test sees a state the page showed only briefly, and can tell a fresh
// "succeeded" from the last job's.
const RECORDER = `(() => {
  const watch = {
    '#shot-state': (e) => e.textContent.trim(),
    '#shot-phase': (e) => e.textContent.trim(),
    '#upload-state': (e) => e.textContent.trim(),
    'progress#upload-progress': (e) => e.value + '/' + e.max,
  };
  const h = window.__ttHistory = {};
  for (const k in watch) h[k] = [];
  const rec = () => {
    for (const k in watch) {
      const e = document.querySelector(k);
      if (!e) continue;
      const v = watch[k](e);
      const a = h[k];
      if (a.length === 0 || a[a.length - 1] !== v) a.push(v);
    }
  };
  const start = () => {
    rec();
    new MutationObserver(rec).observe(document.documentElement,
      { subtree: true, childList: true, characterData: true, attributes: true });
  };
  if (document.documentElement) start(); else document.addEventListener('DOMContentLoaded', start);
})();`;

/** What the element sel showed so far in page (see RECORDER), oldest first. */
export async function history(page, sel) {
  return page.evaluate((s) => (window.__ttHistory && window.__ttHistory[s]) || [], sel);
}

export class Ctx {
  constructor(name, server, pages, browser) {
    this.name = name;
    this.server = server;
    this.pages = pages;
    this.browser = browser;
    this.app = server.origin;
    this.openPages = [];
    this.users = []; // every POST /api/users a page made: {id, name, api_key, ...}
    this.allowances = [];
    this.snaps = 0;
  }

  /** A page in a fresh browser context (no storage shared with another). */
  async newPage(opts = {}) {
    const { label = 'page', ...ctxOpts } = opts;
    const context = await this.browser.newContext({ viewport: { width: 1280, height: 800 }, ...ctxOpts });
    context.setDefaultTimeout(15000 * SLOW);
    await context.addInitScript(RECORDER);
    const page = await context.newPage();
    page.label = label;
    this.watch(page);
    this.openPages.push(page);
    return page;
  }

  allowed(kind, text) {
    return this.allowances.some((a) => a[kind] && a[kind].test(text));
  }

  /** Runs fn while the errors it is expected to cause are allowed: each of
   * kinds (console, response) is a RegExp that the console text or the
   * response's "STATUS METHOD PATH" must match. The allowance outlives fn
   * by settleMs, for messages that arrive late. */
  async expecting(kinds, fn, settleMs = 500) {
    const a = { ...kinds };
    this.allowances.push(a);
    try {
      return await fn();
    } finally {
      await sleep(settleMs);
      this.allowances.splice(this.allowances.indexOf(a), 1);
    }
  }

  watch(page) {
    const where = () => `${page.label} ${safeUrl(page)}`;
    page.on('console', (m) => {
      if (m.type() !== 'error') return;
      const loc = m.location();
      const text = m.text();
      if (this.allowed('console', text)) {
        console.log(`  (expected console error on ${where()}: ${text})`);
        return;
      }
      fail(`console error on ${where()}: ${text}` + (loc && loc.url ? ` (at ${loc.url}:${loc.lineNumber})` : ''));
    });
    page.on('pageerror', (e) => fail(`uncaught error on ${where()}: ${e.message}\n${e.stack || ''}`));
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (u.protocol === 'data:' || u.protocol === 'blob:') return;
      if (u.origin !== this.app) fail(`${where()}: a request outside the app's origin (no CDN, works offline)`, this.app, r.url());
    });
    page.on('requestfailed', (r) => {
      const u = new URL(r.url());
      if (u.origin !== this.app) return;
      const why = r.failure()?.errorText || '?';
      // an aborted request is one the page itself (or a navigation) canceled
      if (why === 'net::ERR_ABORTED') return;
      fail(`${where()}: a request to the app failed: ${r.method()} ${u.pathname}${u.search}: ${why}`);
    });
    page.on('response', async (r) => {
      const u = new URL(r.url());
      if (u.origin !== this.app) return;
      const desc = `${r.status()} ${r.request().method()} ${u.pathname}`;
      if (r.status() >= 400) {
        if (this.allowed('response', desc)) {
          console.log(`  (expected answer on ${where()}: ${desc})`);
        } else {
          let body = '';
          try { body = (await r.text()).slice(0, 300); } catch { /* gone */ }
          fail(`${where()}: the app answered ${desc}`, '< 400', body);
        }
      }
      if (r.request().method() === 'POST' && u.pathname === '/api/users' && r.status() === 201) {
        try { this.users.push(await r.json()); } catch (e) { fail('POST /api/users answered JSON', 'json', String(e)); }
      }
    });
  }

  /** A full-page screenshot of page as an artifact; prints its path. */
  async snap(page, what) {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    this.snaps++;
    const slug = what.replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/^-|-$/g, '');
    const file = path.join(ARTIFACTS, `${this.name}-${String(this.snaps).padStart(2, '0')}-${slug}.png`);
    await page.screenshot({ path: file, fullPage: true, timeout: 15000 * SLOW });
    console.log(`  screenshot: ${file}`);
    return file;
  }

  /** A call to the API from the test itself (not the page): {status, json}. */
  async api(method, p, key, body) {
    const headers = {};
    if (key) headers.Authorization = 'Bearer ' + key;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const r = await fetch(this.app + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: r.status, json, text };
  }

  /** Polls GET /api/jobs/ID until a final state; returns the job. */
  async waitJob(key, id, timeoutMs = 40000) {
    let j = null;
    await until(async () => {
      j = (await this.api('GET', '/api/jobs/' + id, key)).json;
      return j && ['succeeded', 'failed', 'canceled'].includes(j.state);
    }, timeoutMs, `job ${id} to finish`, () => short(j));
    return j;
  }
}

function safeUrl(page) {
  try { return page.url(); } catch { return '?'; }
}

// ------------------------------------------------------------------ DOM helpers

/** Waits for the element's trimmed text to be one of want (a string or a
 * list); throws naming what it was instead. A text in failOn ends the wait
 * at once, with the text of failEl (the view's error element) in the message. */
export async function waitText(page, sel, want, { timeout = 15000, failOn = [], failEl = null } = {}) {
  const wants = Array.isArray(want) ? want : [want];
  let last = null;
  await until(async () => {
    last = await page.evaluate((s) => {
      const e = document.querySelector(s);
      return e ? e.textContent.trim() : null;
    }, sel);
    if (failOn.includes(last)) {
      const err = failEl ? await page.evaluate((s) => document.querySelector(s)?.textContent.trim() ?? null, failEl) : null;
      throw new Error(`${sel} became "${last}" (want ${wants.join('|')})` + (failEl ? `; ${failEl}: ${JSON.stringify(err)}` : ''));
    }
    return wants.includes(last);
  }, timeout, `${sel} to read ${wants.join('|')}`, () => `it reads ${JSON.stringify(last)}`);
  return last;
}

/** Waits until img (a selector) has loaded a picture; returns its facts. */
export async function waitImage(page, sel, timeout = 15000) {
  let last = null;
  await until(async () => {
    last = await page.evaluate((s) => {
      const i = document.querySelector(s);
      if (!i) return { missing: true };
      return { complete: i.complete, w: i.naturalWidth, h: i.naturalHeight, src: i.currentSrc || i.src };
    }, sel);
    return last.complete && last.w > 0 && last.src;
  }, timeout, `${sel} to load a picture`, () => short(last));
  return last;
}

/** Colours [[r,g,b]] of the loaded img at natural-size pixel points [[x,y]],
 * read by drawing it on a canvas in the page. */
export async function imagePixels(page, sel, points) {
  return page.evaluate(([s, pts]) => {
    const i = document.querySelector(s);
    const c = document.createElement('canvas');
    c.width = i.naturalWidth;
    c.height = i.naturalHeight;
    const g = c.getContext('2d', { willReadFrequently: true });
    g.drawImage(i, 0, 0);
    return pts.map(([x, y]) => Array.from(g.getImageData(x, y, 1, 1).data.slice(0, 3)));
  }, [sel, points]);
}

/** Which section[data-view] elements are visible. */
export async function visibleViews(page) {
  return page.evaluate(() => Array.from(document.querySelectorAll('section[data-view]'))
    .filter((s) => s.checkVisibility ? s.checkVisibility() : s.offsetParent !== null)
    .map((s) => s.dataset.view));
}

/** Clicks the nav link to view (shot|gallery|history) and waits until its
 * section is the only one visible. */
export async function goView(page, view) {
  await page.click(`a[href="#/${view}"]`);
  let seen = null;
  await until(async () => {
    seen = await visibleViews(page);
    return seen.length === 1 && seen[0] === view;
  }, 10000, `section[data-view=${view}] to be the only visible view`, () => `visible: ${short(seen)}`);
}

/** How far the page is wider than the screen, in CSS pixels (<= 0 is good):
 * scrollWidth - clientWidth. Not innerWidth: a mobile browser widens its
 * layout viewport (and innerWidth with it) to take in content wider than
 * the screen, so scrollWidth <= innerWidth holds even when a phone would
 * scroll sideways or zoom out. */
export async function overflowX(page) {
  return page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
}

/** Opens the app at its origin and waits for the account the first visit
 * makes (POST /api/users) to show in #account; returns that user. */
export async function openApp(ctx, page, hash = '') {
  const before = ctx.users.length;
  await page.goto(ctx.app + '/' + hash, { waitUntil: 'load' });
  await until(() => ctx.users.length > before, 20000, 'the first visit to make a user (POST /api/users 201)');
  const user = ctx.users[ctx.users.length - 1];
  check(typeof user.api_key === 'string' && user.api_key.length > 0, 'the new user has an api_key', 'a key', user);
  await until(async () => (await page.textContent('#account') || '').includes(user.name), 20000,
    `#account to show the user's name ${JSON.stringify(user.name)}`,
    async () => `#account reads ${JSON.stringify(await page.textContent('#account').catch(() => null))}`);
  return user;
}

/** Shoots url through the form: picks options, types the URL, presses
 * Enter (or taps the submit button); waits for #shot-state "succeeded" with img#shot-result showing
 * this job's picture. Returns {id, img, states}. */
export async function shootViaForm(ctx, page, url, { preset = 'desktop', format = 'png', timeout = 45000, tap = false } = {}) {
  const form = 'form#shot-form';
  await page.selectOption(`${form} select[name=preset]`, preset);
  await page.selectOption(`${form} select[name=format]`, format);
  const input = page.locator(`${form} input[name=url]`);
  eq(await input.getAttribute('type'), 'url', 'the URL field is <input type=url>');
  await input.fill(url);
  const since = (await history(page, '#shot-state')).length;
  const posted = page.waitForResponse((r) => r.request().method() === 'POST' &&
    new URL(r.url()).pathname === '/api/jobs', { timeout: 10000 * SLOW });
  if (tap) await page.tap(`${form} button[type=submit]`);
  else await input.press('Enter');
  const resp = await posted;
  eq(resp.status(), 202, `${tap ? 'tapping the submit button' : 'pressing Enter in the URL field'} posts the job: 202`);
  const job = await resp.json();
  check(UUID_RE.test(job.id || ''), 'the posted job has an id', 'uuid', job.id);
  return { ...(await waitShot(ctx, page, job.id, since, timeout)), request: job.request };
}

/** Waits until the shot view shows job id succeeded: #shot-state reads
 * "succeeded" and img#shot-result (data-job = id) has loaded. since: the
 * length of #shot-state's history before the job was posted. */
export async function waitShot(ctx, page, id, since, timeout = 45000) {
  let last = null;
  await until(async () => {
    last = await page.evaluate(() => ({
      state: document.querySelector('#shot-state')?.textContent.trim() ?? null,
      job: document.querySelector('img#shot-result')?.getAttribute('data-job') ?? null,
      error: document.querySelector('#shot-error')?.textContent.trim() ?? null,
    }));
    if (['failed', 'canceled'].includes(last.state) && last.job !== id) {
      throw new Error(`#shot-state became "${last.state}" (want succeeded); #shot-error: ${JSON.stringify(last.error)}`);
    }
    return last.state === 'succeeded' && last.job === id;
  }, timeout, `#shot-state "succeeded" and img#shot-result[data-job=${id}]`, () => short(last));
  const img = await waitImage(page, 'img#shot-result');
  const states = (await history(page, '#shot-state')).slice(since);
  console.log(`  #shot-state showed ${JSON.stringify(states)} for job ${id}`);
  check(states.some((s) => s === 'queued' || s === 'running'),
    '#shot-state showed the job live (queued or running) before succeeded', 'queued|running, succeeded', states);
  return { id, img, states };
}

// ------------------------------------------------------------------ main

let cleanups = [];

function cleanupSync() {
  for (const f of cleanups) {
    try { f(); } catch { /* best effort */ }
  }
  cleanups = [];
}

/** Runs steps ([name, async fn(ctx)]) in order against a fresh tintype up
 * and browser; prints one line per step and a summary; exits 0 only when
 * every check passed. */
export async function main(name, steps) {
  const label = `${SANITIZED}e2e.${name}`;
  const t0 = Date.now();
  process.on('exit', cleanupSync);
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, () => {
      console.log(`${label}: ${sig}: stopping`);
      cleanupSync();
      process.exit(1);
    });
  }
  if (!BIN || !fs.existsSync(BIN)) {
    console.log(`${label}: TINTYPE_BIN is not set to an executable (${JSON.stringify(BIN)})`);
    process.exit(1);
  }
  // this run's screenshots replace the last run's
  if (fs.existsSync(ARTIFACTS)) {
    for (const f of fs.readdirSync(ARTIFACTS)) {
      if (f.startsWith(name + '-') && f.endsWith('.png')) fs.rmSync(path.join(ARTIFACTS, f), { force: true });
    }
  }
  const counts = { pass: 0, fail: 0 };
  const server = new Tintype();
  const pages = new PageServer();
  let browser = null;
  let ctx = null;
  cleanups.push(() => server.groupKill());

  async function step(stepName, fn) {
    state.step = stepName;
    const before = state.failures.length;
    const t = Date.now();
    let threw = false;
    try {
      await fn();
    } catch (e) {
      threw = true;
      state.failures.push(`[${stepName}] ${e.message}`);
      console.log(`  FAIL [${stepName}] ${e.stack || e}`);
    }
    const ok = state.failures.length === before;
    if (!ok && ctx) {
      for (const p of ctx.openPages) {
        if (!p.isClosed()) await ctx.snap(p, `FAILED-${stepName}-${p.label}`).catch(() => {});
      }
    }
    console.log(`${ok ? 'PASS' : 'FAIL'} ${stepName} (${((Date.now() - t) / 1000).toFixed(2)}s)`);
    counts[ok ? 'pass' : 'fail']++;
    return !threw;
  }

  const started = await step('start', async () => {
    const launched = chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30000 * SLOW })
      .then((b) => { browser = b; });
    await Promise.all([pages.start(), server.start(), launched]);
    ctx = new Ctx(name, server, pages, browser);
    console.log(`  tintype up on ${server.origin} (data ${server.data}); pages on ${pages.url('/')}; ` +
      `browser ${CHROMIUM} ${browser.version()}; artifacts in ${ARTIFACTS}`);
  });
  if (started) {
    for (const [stepName, fn] of steps) {
      if (!await step(stepName, () => fn(ctx))) break;
    }
  }
  await step('stop', async () => {
    if (browser) await browser.close();
    await pages.stop();
    await server.stop();
  });
  if (state.failures.length && server.lines.length) {
    console.log('\nlast log lines of tintype:\n' + server.tail(25));
    if (server.stderr.trim()) console.log('\nstderr of tintype (end):\n' + server.stderr.slice(-3000));
  }
  console.log(`${label}: ${counts.pass} passed, ${counts.fail} failed, ${state.checks} checks, ` +
    `${((Date.now() - t0) / 1000).toFixed(1)}s`);
  if (state.failures.length) {
    console.log('\nfailures:');
    for (const f of state.failures) console.log('  ' + f);
  }
  console.log(`screenshots: ${ARTIFACTS}`);
  cleanupSync();
  process.exit(state.failures.length ? 1 : 0);
}
