// api.js — the one way this page talks to tintype's HTTP API (docs/API.md).
//
// api() sends JSON with the current key as a Bearer token and answers the
// parsed body, or throws an ApiError whose message is a sentence a person
// can read: the problem's `detail` (RFC 9457 bodies, which every API error
// has), or words for the few failures that never reach the API (no network,
// a load balancer's HTML page). followJob() reads a job's Server-Sent Events
// with fetch(), because EventSource cannot send an Authorization header.

let currentKey = null;
const listeners = new Set();

export function setKey(key) {
  currentKey = key || null;
}

export function getKey() {
  return currentKey;
}

// fn(error) runs when the API refuses the stored key (401) on any call.
export function onUnauthorized(fn) {
  listeners.add(fn);
}

export class ApiError extends Error {
  constructor(message, status = 0, type = '') {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.type = type;
  }
}

const WORDS = {
  0: 'Could not reach the tintype server. Is it running, and is this machine online?',
  401: 'The API key was not accepted.',
  404: 'Not found.',
  408: 'The server stopped waiting: the connection was too slow.',
  413: 'That is too large for the server.',
  429: 'Too many requests: wait a moment and try again.',
  500: 'The server had an internal error. Try again; if it keeps happening, its log says why.',
  502: 'The server behind the load balancer did not answer.',
  503: 'The server is busy or shutting down. Try again in a moment.',
  504: 'The server took too long to answer.',
};

// The API's details are phrases ("url must use http or https"); the page
// shows them after a lead-in ("The screenshot was not started: …").
function sentence(s) {
  const t = String(s).trim();
  return !t || /[.!?]$/.test(t) ? t : `${t}.`;
}

export function wordsForStatus(status) {
  return WORDS[status] || `The server answered ${status}.`;
}

// Turns a non-2xx answer (a fetch Response, or an XMLHttpRequest) into an ApiError.
export function problemToError(status, bodyText, contentType) {
  let detail = '';
  let type = '';
  if (/json/.test(contentType || '')) {
    try {
      const p = JSON.parse(bodyText);
      detail = p.detail || '';
      type = p.type || '';
    } catch (e) {
      detail = '';
    }
  }
  return new ApiError(detail ? sentence(detail) : wordsForStatus(status), status, type);
}

async function errorFromResponse(res) {
  let text = '';
  try {
    text = await res.text();
  } catch (e) {
    text = '';
  }
  return problemToError(res.status, text, res.headers.get('Content-Type'));
}

function unauthorized(err, key) {
  if (key && key === currentKey) for (const fn of listeners) fn(err);
}

function headers(key, extra) {
  const h = { Accept: 'application/json', ...extra };
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

// api('/api/jobs', {method: 'POST', body: {...}}) → parsed JSON (null for 204).
// opts.key overrides the stored key (checking a pasted key); opts.signal aborts.
export async function api(path, opts = {}) {
  const key = opts.key !== undefined ? opts.key : currentKey;
  const init = { method: opts.method || 'GET', headers: headers(key), signal: opts.signal, cache: 'no-store' };
  if (opts.body !== undefined) {
    init.body = JSON.stringify(opts.body);
    init.headers['Content-Type'] = 'application/json';
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(WORDS[0], 0);
  }
  if (!res.ok) {
    const err = await errorFromResponse(res);
    if (res.status === 401) unauthorized(err, key);
    throw err;
  }
  if (res.status === 204) return null;
  try {
    return await res.json();
  } catch (e) {
    throw new ApiError('The server sent an answer this page cannot read.', res.status);
  }
}

export const FINAL_JOB_STATES = new Set(['succeeded', 'failed', 'canceled']);

const sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    if (signal && signal.aborted) {
      reject(new DOMException('aborted', 'AbortError'));
      return;
    }
    const t = setTimeout(resolve, ms);
    if (signal) {
      signal.addEventListener(
        'abort',
        () => {
          clearTimeout(t);
          reject(new DOMException('aborted', 'AbortError'));
        },
        { once: true },
      );
    }
  });

export { sleep };

// Reads one text/event-stream body; calls onEvent(type, data) per event.
async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  let type = '';
  let data = [];
  const line = (l) => {
    if (l === '') {
      if (data.length) onEvent(type || 'message', data.join('\n'));
      type = '';
      data = [];
      return;
    }
    if (l[0] === ':') return; // a comment (keep-alive)
    const colon = l.indexOf(':');
    const field = colon < 0 ? l : l.slice(0, colon);
    let value = colon < 0 ? '' : l.slice(colon + 1);
    if (value[0] === ' ') value = value.slice(1);
    if (field === 'event') type = value;
    else if (field === 'data') data.push(value);
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let m;
    // a lone \r at the very end may be the first half of \r\n: wait for more
    while ((m = /\r\n|\r(?!$)|\n/.exec(buf))) {
      line(buf.slice(0, m.index));
      buf = buf.slice(m.index + m[0].length);
    }
  }
  if (buf) line(buf.replace(/\r$/, ''));
  line(''); // an event not ended by a blank line still counts at the end of the stream
}

// Follows a job until it reaches a final state: onJob(job) for each state the
// stream (GET /api/jobs/{id}/events) reports. If the stream ends early (a
// proxy cut it, the server's 15-minute limit), the job is read again and the
// stream reopened. Answers the final job; rejects with AbortError when
// `signal` fires, or an ApiError.
export async function followJob(id, onJob, signal) {
  const path = `/api/jobs/${encodeURIComponent(id)}`;
  let last = null;
  let failures = 0;
  for (;;) {
    const key = currentKey;
    let res;
    try {
      res = await fetch(`${path}/events`, {
        headers: { ...headers(key), Accept: 'text/event-stream' },
        signal,
        cache: 'no-store',
      });
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      res = null;
    }
    if (res && !res.ok) {
      const err = await errorFromResponse(res);
      if (res.status === 401) unauthorized(err, key);
      if (res.status !== 503) throw err;
      res = null;
    }
    if (res) {
      try {
        await readEvents(res.body, (type, data) => {
          if (type !== 'state') return;
          let job;
          try {
            job = JSON.parse(data);
          } catch (e) {
            return;
          }
          if (!last || job.version >= last.version) {
            last = job;
            onJob(job);
          }
        });
      } catch (e) {
        if (e.name === 'AbortError' || (signal && signal.aborted)) throw e;
        // the connection dropped mid-stream: fall through and read the job
      }
      if (last && FINAL_JOB_STATES.has(last.state)) return last;
    }
    // no final state yet: read the record once (it may have finished while
    // the stream was down), then reopen the stream after a pause
    try {
      const job = await api(path, { signal });
      if (!last || job.version >= last.version) {
        last = job;
        onJob(job);
      }
      if (FINAL_JOB_STATES.has(job.state)) return job;
      failures = 0;
    } catch (e) {
      if (e.name === 'AbortError' || (e.status && e.status !== 503)) throw e;
      failures += 1;
      if (failures > 8) throw e;
    }
    await sleep(Math.min(1000 * 2 ** failures, 15000), signal);
  }
}
