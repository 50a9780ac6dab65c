// history.js — the #/history view: the user's jobs, newest first
// (GET /api/jobs with limit and cursor), each with its state, address,
// options and, once succeeded, its picture scaled down by CSS (the signed
// links.result). "Run again" posts the same request as a new job and follows
// it in the shot view. Jobs still queued or running update live while the
// view is open: the newest LIVE of them follow their Server-Sent Events
// (api.followJob; a browser gives one origin ~6 connections, so not all of
// them), the others are read again every two seconds.

import { FINAL_JOB_STATES, api, followJob } from './api.js';
import { currentUser } from './account.js';
import { rerun } from './shot.js';
import { $, describeRequest, el, formatBytes, formatWhen, say, visitorError } from './ui.js';

const PAGE = 20;
const LIVE = 3;
let nextCursor = null;
let active = false;
let timer = 0;
let loading = 0;
const live = new Map(); // job id -> AbortController of its event stream

function item(job) {
  const url = job.request ? job.request.url : '';
  const open = `#/shot?job=${encodeURIComponent(job.id)}`;
  const link = job.links && job.links.result;
  const thumb = job.state === 'succeeded' && link
    ? el('a', { class: 'thumb', href: open, 'aria-label': `Open the screenshot of ${url}` },
      el('img', { src: link, alt: '', loading: 'lazy', decoding: 'async' }))
    : el('a', { class: 'thumb placeholder', href: open, 'aria-label': `Open the job for ${url}` },
      el('span', { text: job.state }));
  const meta = [describeRequest(job.request), formatWhen(job.created_at)];
  if (job.phase && job.phase !== job.state) meta.unshift(job.phase);
  if (job.result) meta.push(`${job.result.width}×${job.result.height}`, formatBytes(job.result.bytes));
  const info = el('div', { class: 'info' },
    el('p', { class: 'url', text: url, title: url }),
    el('p', { class: 'meta' },
      el('span', { class: 'state', dataset: { state: job.state }, text: job.state }),
      ` · ${meta.filter(Boolean).join(' · ')}`),
    job.error ? el('p', { class: 'error-text', text: visitorError(job.error) }) : null);
  const again = el('button', { type: 'button', class: 'rerun', text: 'Run again',
    'aria-label': `Run again: ${url}` });
  again.addEventListener('click', async () => {
    again.disabled = true;
    say($('#history-error'), '');
    try {
      await rerun(job.request);
    } catch (e) {
      say($('#history-error'), `Could not run it again: ${e.message}`);
    } finally {
      again.disabled = false;
    }
  });
  return el('li', { class: 'history-item', dataset: { id: job.id, state: job.state, version: String(job.version) } },
    thumb, info, again);
}

function moreButton() {
  const old = $('#history-more');
  if (old) old.remove();
  if (!nextCursor) return;
  const b = el('button', { id: 'history-more', type: 'button', text: 'More' });
  b.addEventListener('click', () => load(false));
  $('#history-list').after(b);
}

async function load(first) {
  if (!currentUser()) return;
  const ticket = ++loading;
  const q = new URLSearchParams({ limit: String(PAGE) });
  if (!first && nextCursor) q.set('cursor', nextCursor);
  const more = $('#history-more');
  if (more) more.disabled = true;
  try {
    const page = await api(`/api/jobs?${q}`);
    if (ticket !== loading) return;
    const list = $('#history-list');
    if (first) {
      stopLive();
      list.replaceChildren();
    }
    for (const job of page.items) list.append(item(job));
    nextCursor = page.next_cursor;
    moreButton();
    say($('#history-error'), '');
    $('#history-empty').hidden = list.children.length > 0;
    schedule();
  } catch (e) {
    if (ticket === loading) say($('#history-error'), `Could not list your screenshots: ${e.message}`);
    if (more) more.disabled = false;
  }
}

function replaceItem(job) {
  const li = document.querySelector(`#history-list .history-item[data-id="${CSS.escape(job.id)}"]`);
  if (!active || !li || (li.dataset.state === job.state && li.dataset.version === String(job.version))) return;
  li.replaceWith(item(job));
}

function stopLive() {
  for (const a of live.values()) a.abort();
  live.clear();
}

// Keeps the jobs on screen that are not finished yet up to date: the
// newest LIVE by their event streams, the rest by reading them again.
function schedule() {
  clearTimeout(timer);
  if (!active) return;
  const pending = Array.from(document.querySelectorAll('#history-list .history-item'))
    .filter((li) => !FINAL_JOB_STATES.has(li.dataset.state));
  for (const li of pending.slice(0, LIVE)) {
    const id = li.dataset.id;
    if (live.has(id) || live.size >= LIVE) continue;
    const abort = new AbortController();
    live.set(id, abort);
    followJob(id, replaceItem, abort.signal).catch(() => {}).finally(() => {
      if (live.get(id) === abort) live.delete(id);
      if (!abort.signal.aborted) schedule(); // a slot is free for the next one
    });
  }
  const polled = pending.filter((li) => !live.has(li.dataset.id));
  if (!polled.length) return;
  timer = setTimeout(async () => {
    for (const li of polled) {
      try {
        const job = await api(`/api/jobs/${encodeURIComponent(li.dataset.id)}`);
        if (li.isConnected) replaceItem(job);
      } catch (e) {
        // shown again at the next refresh
      }
    }
    schedule();
  }, 2000);
}

export function show() {
  active = true;
  if (!currentUser()) {
    $('#history-list').replaceChildren();
    say($('#history-error'), 'You are signed out: make a new account or paste a key at the top of the page.');
    return;
  }
  load(true);
}

export function hide() {
  active = false;
  clearTimeout(timer);
  stopLive();
}

export function accountChanged() {
  stopLive();
  $('#history-list').replaceChildren();
  nextCursor = null;
  moreButton();
  $('#history-empty').hidden = true;
  say($('#history-error'), '');
  if (active) show();
}

export function init() {
  $('#history-refresh').addEventListener('click', () => load(true));
}
