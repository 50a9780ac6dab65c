// loadtest/render/jobs.mjs: the tintype side of bench_render.sh, a client of
// a running `tintype up` (API + render workers).
//
// Signs up USERS fresh users (so the job lists hold this run's jobs only;
// job i belongs to user i % USERS and renders urls[i % length]), runs
// WARMUP jobs to completion untimed (Chromium started, first contexts made),
// then submits all N jobs at once (a queue benchmark: N POST /api/jobs in
// parallel) and waits for every one to succeed. --client wait (default):
// each POST is a one-call capture (`?wait=60s`): the API holds it until the
// job ends and answers 200 with the PNG, as a user who wants the image
// would ask (the puppeteer contenders also end with the PNG in the client);
// a 202 (the wait ran out) is then polled. --client poll: plain POSTs, and
// completion seen by polling GET /api/jobs?limit=1000 every POLL_MS (20), a
// full list 50 times a second (~10 ms of API CPU per shot measured here).
// Either way the times come from the job records: latency = finished_at
// (server) - the client's clock just before its POST (same machine, same
// clock, ms resolution); jobs/s = N / (last finished_at - first submit).
//
// Checks, any failing exits 1: every POST answers 202, every job ends
// `succeeded` (a `failed` or `canceled` one fails the run at once, with its
// error), each result says png 1280x800 and page status 200, and every
// result, fetched after the timed run with GET /api/jobs/{id}/result, is a
// 1280x800 PNG that is not blank (png.mjs): the bytes of the one-call
// answer, or (--client poll) fetched after the timed run. TIMEOUT_S without progress also
// fails, naming how many are still queued or running.
//
// --seq 1: the idle latency instead: WARMUP jobs, then N jobs one at a time
// (each submitted once the last one is seen succeeded), POST -> succeeded.
//
// With --cpu-pid, also the CPU time tintype up's whole process tree (API,
// worker, Chromium) used for the timed jobs (cpu.mjs).
//
// Prints one JSON object: jobs/s, latency (submit -> succeeded, "through the
// queue"), service time (started_at -> finished_at, as recorded by the
// server), the medians of every numeric field of result.timings, attempts.
//
// Usage: node jobs.mjs --base http://127.0.0.1:PORT --urls URL[,URL...]
//        [--n 60] [--users 1] [--warmup 4] [--poll-ms 20] [--timeout-s 60]
//        [--width 1280] [--height 800] [--save FILE.png] [--seq 0] [--client wait|poll]
//        [--cpu-pid TINTYPE_UP_PID]

import { writeFileSync } from 'node:fs';
import { treeCpu } from './cpu.mjs';
import { checkShot } from './png.mjs';

function parseArgs(argv) {
  const o = {
    base: '',
    urls: '',
    n: 60,
    users: 1,
    seq: 0,
    warmup: 4,
    'poll-ms': 20,
    'timeout-s': 60,
    width: 1280,
    height: 800,
    save: '',
    'cpu-pid': 0,
    client: 'wait',
  };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '');
    const v = argv[i + 1];
    if (!(k in o) || v === undefined) throw new Error(`bad argument ${argv[i]}`);
    o[k] = typeof o[k] === 'number' ? Number(v) : v;
  }
  o.urls = o.urls.split(',').filter(Boolean);
  for (const u of [o.base, ...o.urls]) {
    if (!/^http:\/\/127\.\d+\.\d+\.\d+:\d+(\/|$)/.test(u)) throw new Error(`not an http://127.x.y.z:PORT URL: ${u}`);
  }
  if (!o.urls.length) throw new Error('--urls is required');
  if (!['wait', 'poll'].includes(o.client)) throw new Error('--client must be wait or poll');
  if (!Number.isInteger(o.users) || o.users < 1 || o.users > 100) throw new Error('--users must be 1..100');
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

// Submits `count` jobs at once, job i (from `first`) by keys[i % users] for
// urls[i % length]; returns [{id, key, submitAt, png}] (submitAt: epoch ms;
// png: the image when wait is set and the one-call capture answered 200).
async function submit(o, keys, count, first = 0, wait = false) {
  return Promise.all(
    Array.from({ length: count }, async (_, k) => {
      const i = first + k;
      const key = keys[i % keys.length];
      const body = { url: o.urls[i % o.urls.length], viewport: { width: o.width, height: o.height }, format: 'png' };
      const submitAt = Date.now();
      if (!wait) {
        const r = await api(o, 'POST', '/api/jobs', { key, body, expect: 202 });
        return { id: json(r).id, key, submitAt, png: null };
      }
      const r = await api(o, 'POST', '/api/jobs?wait=60s', { key, body });
      if (r.status === 200) return { id: r.headers.get('x-tintype-job-id'), key, submitAt, png: r.buf };
      if (r.status !== 202) {
        throw new BenchError(`POST /api/jobs?wait=60s answered ${r.status}: ${r.buf.toString().slice(0, 500)}`);
      }
      return { id: json(r).id, key, submitAt, png: null };
    }),
  );
}

// waitAll over several users' lists
async function waitUsers(o, keys, want, label) {
  const jobs = new Map();
  let polls = 0;
  await Promise.all(
    keys.map(async (key) => {
      const mine = want.filter((j) => j.key === key);
      if (!mine.length) return;
      const r = await waitAll(o, key, mine, label);
      polls += r.polls;
      for (const [id, j] of r.jobs) jobs.set(id, j);
    }),
  );
  return { jobs, polls };
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
  const keys = [];
  for (let u = 0; u < o.users; u++) {
    const user = json(
      await api(o, 'POST', '/api/users', {
        body: { name: 'bench-render', email: `bench-render-${tag}-${u}@example.com` },
        expect: 201,
      }),
    );
    if (!user.api_key) throw new BenchError('POST /api/users gave no api_key');
    keys.push(user.api_key);
  }

  if (o.seq) {
    const lat = [];
    for (let i = 0; i < o.warmup + o.n; i++) {
      const [s] = await submit(o, keys, 1, i);
      const { jobs } = await waitAll(o, s.key, [s], `job ${i}`);
      const j = jobs.get(s.id);
      checkResult(o, j);
      if (i >= o.warmup) lat.push(j.finished_at - s.submitAt);
      if (i === o.warmup + o.n - 1) {
        const r = await api(o, 'GET', `/api/jobs/${s.id}/result`, { key: s.key, expect: 200 });
        checkShot(r.buf, o.width, o.height, `job ${s.id}`);
        process.stdout.write(
          JSON.stringify({ contender: 'tintype', n: o.n, mode: 'one job at a time', latency_ms: summary(lat),
            sample_result: j.result }) + '\n',
        );
      }
    }
    return;
  }

  if (o.warmup > 0) {
    const w = await submit(o, keys, o.warmup);
    const { jobs } = await waitUsers(o, keys, w, 'warm-up');
    for (const j of jobs.values()) checkResult(o, j);
  }

  const cpu0 = o['cpu-pid'] ? treeCpu(o['cpu-pid']) : null;
  const t0 = Date.now();
  const wait = o.client === 'wait';
  const sub = await submit(o, keys, o.n, o.warmup, wait);
  const tSubmitted = Date.now(); // poll: all accepted; wait: all answered
  // jobs a one-call capture gave back unfinished (202) are polled
  const { polls } = await waitUsers(o, keys, sub.filter((s) => !s.png), 'timed run');
  const tSeen = Date.now();
  const cpu1 = o['cpu-pid'] ? treeCpu(o['cpu-pid']) : null;
  // the records (finished_at, timings), after the CPU window
  const { jobs } = await waitUsers(o, keys, sub, 'timed run (records)');

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

  // Every result's bytes (after the timed run): a painted 1280x800 PNG.
  const first = sub[0].id;
  let bytes = 0;
  const contexts = [];
  let oneCall = 0;
  for (const s of sub) {
    let buf = s.png;
    if (buf) oneCall++;
    else buf = (await api(o, 'GET', `/api/jobs/${s.id}/result`, { key: s.key, expect: 200 })).buf;
    try {
      checkShot(buf, o.width, o.height, s.png ? `POST ?wait= of job ${s.id}` : `GET /api/jobs/${s.id}/result`);
    } catch (e) {
      throw new BenchError(e.message);
    }
    bytes += buf.length;
    contexts.push(jobs.get(s.id).result.context_jobs || 1);
    if (o.save && s.id === first) writeFileSync(o.save, buf);
  }

  const wallS = (lastFinish - t0) / 1000;
  const med = (xs) => summary(xs).p50;
  const out = {
    contender: 'tintype',
    n: o.n,
    warmup: o.warmup,
    mode: 'all N submitted at once',
    client: o.client,
    one_call_answers: oneCall,
    latency_from: 'submit',
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
    seen_after_last_finish_ms: Math.max(tSeen, tSubmitted) - lastFinish,
    users: o.users,
    png_bytes_mean: Math.round(bytes / sub.length),
    images_checked: sub.length,
    // jobs that ran in a context that had served an earlier job
    warm_share: Math.round((contexts.filter((c) => c > 1).length / sub.length) * 100) / 100,
    sample_result: jobs.get(first).result,
  };
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  process.stderr.write(`jobs.mjs: ${e instanceof BenchError ? e.message : e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
