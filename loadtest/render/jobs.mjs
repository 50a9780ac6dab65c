// loadtest/render/jobs.mjs: the tintype side of bench_render.sh, a client of
// a running `tintype up` (API + render workers).
//
// Signs up a fresh user (so the job list holds this run's jobs only), runs
// WARMUP jobs to completion untimed (Chromium started, first contexts made),
// then submits all N jobs at once (a queue benchmark: N POST /api/jobs in
// parallel) and waits for every one to succeed. Completion is seen by
// polling GET /api/jobs?limit=1000 (one request per POLL_MS, default 20),
// but the times come from the job records: latency = finished_at (server)
// - the client's clock just before its POST (same machine, same clock, ms
// resolution), so polling adds no error to the figures; it costs ~50
// small list requests a second of API CPU on the shared cores.
// jobs/s = N / (last finished_at - first submit).
//
// Checks, any failing exits 1: every POST answers 202, every job ends
// `succeeded` (a `failed` or `canceled` one fails the run at once, with its
// error), each result says png 1280x800 and page status 200, and one result
// fetched with GET /api/jobs/{id}/result is a 1280x800 PNG. TIMEOUT_S without
// progress also fails, naming how many are still queued or running.
//
// With --cpu-pid, also the CPU time tintype up's whole process tree (API,
// worker, Chromium) used for the timed jobs (cpu.mjs).
//
// Prints one JSON object: jobs/s, latency (submit -> succeeded, "through the
// queue"), service time (started_at -> finished_at, as recorded by the
// server), the medians of every numeric field of result.timings, attempts.
//
// Usage: node jobs.mjs --base http://127.0.0.1:PORT --url PAGE_URL [--n 60]
//        [--warmup 4] [--poll-ms 20] [--timeout-s 60] [--width 1280]
//        [--height 800] [--save FILE.png] [--cpu-pid TINTYPE_UP_PID]

import { writeFileSync } from 'node:fs';
import { treeCpu } from './cpu.mjs';

function parseArgs(argv) {
  const o = {
    base: '',
    url: '',
    n: 60,
    warmup: 4,
    'poll-ms': 20,
    'timeout-s': 60,
    width: 1280,
    height: 800,
    save: '',
    'cpu-pid': 0,
  };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '');
    const v = argv[i + 1];
    if (!(k in o) || v === undefined) throw new Error(`bad argument ${argv[i]}`);
    o[k] = typeof o[k] === 'number' ? Number(v) : v;
  }
  for (const k of ['base', 'url']) {
    if (!/^http:\/\/127\.0\.0\.1:\d+(\/|$)/.test(o[k])) {
      throw new Error(`--${k} must be http://127.0.0.1:PORT...: ${o[k]}`);
    }
  }
  if (!Number.isInteger(o.n) || o.n < 1 || o.n > 1000) throw new Error('--n must be 1..1000');
  if (!Number.isInteger(o.warmup) || o.warmup < 0 || o.warmup > 1000) {
    throw new Error('--warmup must be 0..1000');
  }
  o.base = o.base.replace(/\/$/, '');
  return o;
}

class BenchError extends Error {}

async function api(o, method, path, { key, body, expect } = {}) {
  const headers = {};
  if (key) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(o.base + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const buf = Buffer.from(await res.arrayBuffer());
  if (expect && res.status !== expect) {
    throw new BenchError(`${method} ${path} answered ${res.status}, not ${expect}: ${buf.toString().slice(0, 500)}`);
  }
  return { status: res.status, headers: res.headers, buf };
}

const json = (r) => JSON.parse(r.buf.toString());

function pngSize(buf) {
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (buf.length < 24 || sig.some((b, i) => buf[i] !== b)) return null;
  if (buf.toString('latin1', 12, 16) !== 'IHDR') return null;
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
}

function percentile(sorted, p) {
  if (!sorted.length) return null;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1];
}

function summary(values) {
  const s = [...values].sort((a, b) => a - b);
  const r = (x) => (x === null || x === undefined ? null : Math.round(x * 10) / 10);
  return {
    p50: r(percentile(s, 50)),
    p99: r(percentile(s, 99)),
    min: r(s[0]),
    max: r(s[s.length - 1]),
    mean: r(s.reduce((a, b) => a + b, 0) / s.length),
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Submits `count` jobs at once; returns [{id, submitAt}] (submitAt: epoch ms).
async function submit(o, key, count) {
  const body = {
    url: o.url,
    viewport: { width: o.width, height: o.height },
    format: 'png',
  };
  return Promise.all(
    Array.from({ length: count }, async () => {
      const submitAt = Date.now();
      const r = await api(o, 'POST', '/api/jobs', { key, body, expect: 202 });
      return { id: json(r).id, submitAt };
    }),
  );
}

// Polls the user's job list until every id in `want` has succeeded; returns
// the job records by id. Fails on a failed/canceled job or on a stall.
async function waitAll(o, key, want, label) {
  const ids = new Set(want.map((j) => j.id));
  let lastProgress = Date.now();
  let lastDone = -1;
  let polls = 0;
  for (;;) {
    const r = await api(o, 'GET', '/api/jobs?limit=1000', { key, expect: 200 });
    polls++;
    const items = json(r).items.filter((j) => ids.has(j.id));
    const counts = {};
    for (const j of items) counts[j.state] = (counts[j.state] || 0) + 1;
    const bad = items.find((j) => j.state === 'failed' || j.state === 'canceled');
    if (bad) {
      throw new BenchError(`${label}: job ${bad.id} ${bad.state}: ${JSON.stringify(bad.error)}`);
    }
    const done = counts.succeeded || 0;
    if (done === ids.size) {
      return { jobs: new Map(items.map((j) => [j.id, j])), polls };
    }
    if (done !== lastDone) {
      lastDone = done;
      lastProgress = Date.now();
    } else if (Date.now() - lastProgress > o['timeout-s'] * 1000) {
      throw new BenchError(
        `${label}: no job finished in ${o['timeout-s']} s; states ${JSON.stringify(counts)} of ${ids.size} ` +
          `(jobs that stay "queued" mean no render worker is consuming the queue)`,
      );
    }
    await sleep(o['poll-ms']);
  }
}

function checkResult(o, job) {
  const res = job.result;
  if (!res) throw new BenchError(`job ${job.id} succeeded without a result`);
  if (res.format !== 'png' || res.width !== o.width || res.height !== o.height) {
    throw new BenchError(`job ${job.id} result is ${res.format} ${res.width}x${res.height}, not png ${o.width}x${o.height}`);
  }
  if (res.http_status !== 200) throw new BenchError(`job ${job.id}: the page answered ${res.http_status}`);
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const tag = `${process.pid}-${Date.now()}`;
  const user = json(
    await api(o, 'POST', '/api/users', {
      body: { name: 'bench-render', email: `bench-render-${tag}@example.com` },
      expect: 201,
    }),
  );
  const key = user.api_key;
  if (!key) throw new BenchError('POST /api/users gave no api_key');

  if (o.warmup > 0) {
    const w = await submit(o, key, o.warmup);
    const { jobs } = await waitAll(o, key, w, 'warm-up');
    for (const j of jobs.values()) checkResult(o, j);
  }

  const cpu0 = o['cpu-pid'] ? treeCpu(o['cpu-pid']) : null;
  const t0 = Date.now();
  const sub = await submit(o, key, o.n);
  const tSubmitted = Date.now();
  const { jobs, polls } = await waitAll(o, key, sub, 'timed run');
  const tSeen = Date.now();
  const cpu1 = o['cpu-pid'] ? treeCpu(o['cpu-pid']) : null;

  const lat = [];
  const service = [];
  const timings = {};
  const attempts = [];
  let lastFinish = 0;
  for (const s of sub) {
    const j = jobs.get(s.id);
    checkResult(o, j);
    if (typeof j.finished_at !== 'number') throw new BenchError(`job ${j.id} has no finished_at`);
    lat.push(j.finished_at - s.submitAt);
    if (typeof j.started_at === 'number') service.push(j.finished_at - j.started_at);
    lastFinish = Math.max(lastFinish, j.finished_at);
    attempts.push(j.attempts);
    for (const [k, v] of Object.entries(j.result.timings || {})) {
      if (typeof v === 'number') (timings[k] ||= []).push(v);
    }
  }

  // One result's bytes: a real PNG of the right size, not an error page.
  const first = sub[0].id;
  const r = await api(o, 'GET', `/api/jobs/${first}/result`, { key, expect: 200 });
  const size = pngSize(r.buf);
  if (!size || size.width !== o.width || size.height !== o.height) {
    throw new BenchError(`GET /api/jobs/${first}/result is not a ${o.width}x${o.height} PNG: ${JSON.stringify(size)}`);
  }
  if (o.save) writeFileSync(o.save, r.buf);

  const wallS = (lastFinish - t0) / 1000;
  const med = (xs) => summary(xs).p50;
  const out = {
    contender: 'tintype',
    n: o.n,
    warmup: o.warmup,
    mode: 'all N submitted at once',
    submit_ms: tSubmitted - t0,
    wall_s: wallS,
    per_s: Math.round((o.n / wallS) * 100) / 100,
    // tintype up's supervisor, API, worker, Chromium and its helpers, from
    // the first submit to the last success seen (this client not counted)
    cpu_s: cpu0 ? Math.round((cpu1.total - cpu0.total) * 100) / 100 : null,
    cpu_ms_per_shot: cpu0 ? Math.round(((cpu1.total - cpu0.total) * 1000) / o.n) : null,
    driver_cpu_ms_per_shot: cpu0 ? Math.round(((cpu1.driver - cpu0.driver) * 1000) / o.n) : null,
    latency_ms: summary(lat),
    service_ms: service.length === o.n ? summary(service) : null,
    timings_p50_ms: Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, med(v)])),
    attempts_max: Math.max(...attempts),
    polls,
    seen_after_last_finish_ms: tSeen - lastFinish,
    png_bytes: r.buf.length,
    sample_result: jobs.get(first).result,
  };
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  process.stderr.write(`jobs.mjs: ${e instanceof BenchError ? e.message : e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
