// shot.js — the #/shot view: the form that submits a screenshot job
// (POST /api/jobs) and the panel that follows one job through its states
// (GET /api/jobs/{id}/events, read by api.followJob), with its phase and the
// time since it was submitted while it runs, to its picture, shown
// from the job's signed links.result so a plain <img src> can load it.
//
// The followed job is in the address (#/shot?job=ID), so a reload, the
// history's links and "Run again" all land here on the same job.

import { FINAL_JOB_STATES, api, followJob } from './api.js';
import { currentUser } from './account.js';
import { $, PRESETS, formatBytes, formatSeconds, presetOf, say, visitorError } from './ui.js';

let current = null; // {id, abort: AbortController}
let submitting = false;
let ticker = 0; // the elapsed-time clock of the job on screen

// what a job is doing, from its record's phase (the worker writes it)
const PHASES = {
  queued: 'waiting in the queue',
  opening: 'opening a browser tab',
  loading: 'loading the page',
  waiting: 'waiting for the page',
  capturing: 'capturing',
};

function showPhase(job) {
  clearInterval(ticker);
  const out = $('#shot-phase');
  if (FINAL_JOB_STATES.has(job.state) || !job.created_at) {
    out.textContent = '';
    delete out.dataset.phase;
    return;
  }
  const words = PHASES[job.phase] || job.phase || '';
  out.dataset.phase = job.phase || '';
  const tick = () => {
    out.textContent = `${words}${words ? ' · ' : ''}${formatSeconds(Math.max(0, Date.now() - job.created_at))}`;
  };
  tick();
  ticker = setInterval(tick, 200);
}

const form = () => $('#shot-form');

function readForm() {
  const f = form().elements;
  let url = f.url.value.trim();
  // an address typed without a scheme ("example.com", "127.0.0.1:8765/page")
  // means http://, as a browser's address bar reads it; the field shows it
  if (url && !/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    url = `http://${url}`;
    f.url.value = url;
  }
  const p = PRESETS[f.preset.value] || PRESETS.desktop;
  const pdf = f.format.value === 'pdf';
  const req = {
    url,
    viewport: { width: p.width, height: p.height, scale: p.scale, mobile: p.mobile },
    format: f.format.value,
    dark_mode: f.dark_mode.checked,
    wait_until: f.wait_until.value,
  };
  // a PDF has every page: full_page is for pictures only
  if (pdf) {
    req.pdf = { paper: f.paper.value, landscape: f.landscape.checked, print_background: f.print_background.checked };
  } else {
    req.full_page = f.full_page.checked;
  }
  // the Advanced page controls: only what was filled in
  const lines = (v) => v.split('\n').map((x) => x.trim()).filter(Boolean);
  if (lines(f.hide_selectors.value).length) req.hide_selectors = lines(f.hide_selectors.value);
  if (lines(f.click_selectors.value).length) req.click_selectors = lines(f.click_selectors.value);
  if (f.css.value.trim()) req.css = f.css.value;
  if (f.locale.value.trim()) req.locale = f.locale.value.trim();
  if (f.timezone.value.trim()) req.timezone = f.timezone.value.trim();
  return req;
}

function fillForm(req) {
  if (!req) return;
  const f = form().elements;
  f.url.value = req.url || '';
  const preset = presetOf(req.viewport);
  if (preset) f.preset.value = preset;
  f.full_page.checked = !!req.full_page;
  f.dark_mode.checked = !!req.dark_mode;
  if (req.format) f.format.value = req.format;
  if (req.wait_until) f.wait_until.value = req.wait_until;
  f.hide_selectors.value = (req.hide_selectors || []).join('\n');
  f.click_selectors.value = (req.click_selectors || []).join('\n');
  f.css.value = req.css || '';
  f.locale.value = req.locale || '';
  f.timezone.value = req.timezone || '';
  if (req.pdf) {
    if (req.pdf.paper) f.paper.value = req.pdf.paper;
    f.landscape.checked = !!req.pdf.landscape;
    f.print_background.checked = !!req.pdf.print_background;
  }
}

function resetPanel() {
  $('#shot-job').hidden = true;
  $('#shot-figure').hidden = true;
  const img = $('#shot-result');
  img.removeAttribute('src');
  img.removeAttribute('data-job');
  $('#shot-cancel').hidden = true;
  say($('#shot-error'), '');
  say($('#shot-note'), '');
}

function stopFollowing() {
  if (current) current.abort.abort();
  current = null;
  clearInterval(ticker);
  $('#shot-phase').textContent = '';
}

function hostOf(url) {
  try {
    return new URL(url).host;
  } catch (e) {
    return '';
  }
}

function render(job) {
  if (!current || current.id !== job.id) return;
  $('#shot-job').hidden = false;
  $('#shot-state').textContent = job.state;
  $('#shot-state').dataset.state = job.state;
  showPhase(job);
  const url = job.request ? job.request.url : '';
  $('#shot-target').textContent = url;
  $('#shot-target').title = url;
  $('#shot-cancel').hidden = FINAL_JOB_STATES.has(job.state);
  if (job.state === 'failed') {
    say($('#shot-error'), `The screenshot failed: ${visitorError(job.error) || 'the worker gave no reason.'}`);
  } else {
    say($('#shot-error'), '');
  }
  // canceled is something a person did, not a failure: a note, not an alert
  say($('#shot-note'), job.state === 'canceled' ? 'The job was canceled before it finished; it has no picture.' : '');
  if (job.state !== 'succeeded' || !job.result || !job.links || !job.links.result) return;

  const r = job.result;
  const img = $('#shot-result');
  const link = job.links.result;
  img.alt = `Screenshot of ${url}`;
  img.dataset.job = job.id;
  const isPdf = r.format === 'pdf';
  // a PDF is no picture: the download link is the way to it
  img.closest('.frame').hidden = isPdf;
  if (isPdf) img.removeAttribute('src');
  else if (img.getAttribute('src') !== link) img.src = link;
  const parts = isPdf
    ? [`${r.pages || '?'} page${r.pages === 1 ? '' : 's'}`, formatBytes(r.bytes), 'PDF']
    : [`${r.width} × ${r.height} px`, formatBytes(r.bytes), (r.format || '').toUpperCase()];
  const total = r.timings && Number.isFinite(r.timings.total_ms) ? r.timings.total_ms : NaN;
  const wall = job.finished_at && job.created_at ? job.finished_at - job.created_at : NaN;
  if (Number.isFinite(total)) parts.push(`rendered in ${formatSeconds(total)}`);
  if (Number.isFinite(wall)) parts.push(`${formatSeconds(wall)} from submit`);
  if (r.http_status && r.http_status >= 400) parts.push(`the page answered HTTP ${r.http_status}`);
  if (r.final_url && r.final_url !== url) parts.push(`ended at ${r.final_url}`);
  $('#shot-meta').textContent = parts.filter(Boolean).join(' · ');
  const dl = $('#shot-download');
  dl.href = link;
  const ext = r.format === 'jpeg' ? 'jpg' : r.format || 'png';
  dl.download = `tintype-${hostOf(url).replace(/[^a-z0-9.-]/gi, '_') || 'shot'}-${job.id.slice(-8)}.${ext}`;
  $('#shot-figure').hidden = false;
  if (current.reveal) {
    // on a phone the form fills the screen: bring the new picture into view
    current.reveal = false;
    if ($('#shot-job').getBoundingClientRect().top > window.innerHeight * 0.6) $('#shot-job').scrollIntoView();
  }
}

// Follows a job: `job` is a record already read, or just {id}. `reveal`:
// scroll its picture into view when it arrives (a job started from this page).
export function follow(job, reveal = false) {
  if (current && current.id === job.id) return;
  stopFollowing();
  resetPanel();
  const me = { id: job.id, reveal, abort: new AbortController() };
  current = me;
  $('#shot-job').hidden = false;
  $('#shot-state').textContent = job.state || '…';
  if (job.request) {
    fillForm(job.request);
    render(job);
  }
  followJob(job.id, (j) => {
    if (current === me) {
      if (!job.request && j.request) fillForm(j.request);
      render(j);
    }
  }, me.abort.signal).catch((e) => {
    if (e.name === 'AbortError' || current !== me) return;
    say($('#shot-error'), e.status === 404
      ? 'That job was not found: it may belong to another account.'
      : `Lost track of the job: ${e.message}`);
  });
}

async function submit(ev) {
  ev.preventDefault();
  if (submitting) return;
  say($('#shot-error'), '');
  const req = readForm();
  if (!req.url) {
    say($('#shot-error'), 'Type the address of a web page first, such as https://example.com/.');
    form().elements.url.focus();
    return;
  }
  let parsed = null;
  try {
    parsed = new URL(req.url);
  } catch (e) {
    parsed = null;
  }
  if (!parsed || !/^https?:$/.test(parsed.protocol) || !parsed.hostname) {
    say($('#shot-error'), 'That is not a web address tintype can open: it must start with http:// or https:// and name a host.');
    form().elements.url.focus();
    return;
  }
  if (!currentUser()) {
    say($('#shot-error'), 'You are signed out: make a new account or paste a key at the top of the page.');
    return;
  }
  // the previous job's state and picture go at once, so nothing on screen
  // can be mistaken for the answer to this submission
  stopFollowing();
  resetPanel();
  submitting = true;
  const button = form().querySelector('button[type=submit]');
  button.disabled = true;
  try {
    const job = await api('/api/jobs', { method: 'POST', body: req });
    follow(job, true);
    location.hash = `#/shot?job=${encodeURIComponent(job.id)}`;
  } catch (e) {
    say($('#shot-error'), `The screenshot was not started: ${e.message}`);
  } finally {
    submitting = false;
    button.disabled = false;
  }
}

async function cancel() {
  if (!current) return;
  const id = current.id;
  $('#shot-cancel').disabled = true;
  try {
    render(await api(`/api/jobs/${encodeURIComponent(id)}`, { method: 'DELETE' }));
  } catch (e) {
    if (e.type !== '/problems/job-finished') say($('#shot-error'), `Could not cancel: ${e.message}`);
  } finally {
    $('#shot-cancel').disabled = false;
  }
}

// Runs a job's request again as a new job and follows it here.
export async function rerun(request) {
  const job = await api('/api/jobs', { method: 'POST', body: request });
  fillForm(job.request);
  follow(job, true);
  location.hash = `#/shot?job=${encodeURIComponent(job.id)}`;
  return job;
}

export function show(params) {
  const id = params.get('job');
  if (id && currentUser() && (!current || current.id !== id)) follow({ id });
}

export function accountChanged() {
  stopFollowing();
  resetPanel();
}

export function init() {
  form().addEventListener('submit', submit);
  $('#shot-cancel').addEventListener('click', cancel);
  $('#shot-result').addEventListener('error', () => {
    if ($('#shot-result').getAttribute('src')) {
      say($('#shot-error'), 'The picture could not be loaded; its link may have expired. Open the job again from History.');
    }
  });
}
