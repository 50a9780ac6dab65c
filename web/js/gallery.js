// gallery.js — the #/gallery view: upload a picture and watch it processed.
//
// A picked or dropped file becomes an image record (POST /api/images), its
// bytes go up with XMLHttpRequest (PUT /api/images/{id}/raw; fetch() has no
// upload progress, XHR's upload.onprogress drives the <progress> bar), then
// GET /api/images/{id} is polled until the worker has made the sepia picture
// and the thumbnail (uploaded → processing → processed | failed). Below, a
// grid of the user's pictures (GET /api/images; records without bytes left
// out); choosing one shows it above. The original is shown from the server
// only once processed: a picture the worker refused is never decoded here.

import { ApiError, api, getKey, problemToError, sleep, wordsForStatus } from './api.js';
import { currentUser } from './account.js';
import { $, el, formatBytes, formatWhen, say } from './ui.js';

const FINAL = new Set(['processed', 'failed']);
const TYPES = new Set(['image/png', 'image/jpeg', 'image/webp', 'image/gif']);
const PAGE = 24;

let shown = null; // {id, kind: 'upload'|'view', abort} of the picture in the panel
let queue = Promise.resolve();
let nextCursor = null;
let active = false;

function setImage(img, link) {
  if (!link) {
    img.hidden = true;
    img.removeAttribute('src');
    return;
  }
  if (img.getAttribute('src') !== link) img.src = link;
  img.hidden = false;
}

// Stops the polling of a picture only looked at; an upload goes on (and is
// polled to its end) even when the panel turns to another picture.
function release() {
  if (shown && shown.kind === 'view') shown.abort.abort();
  shown = null;
}

function clearPanel() {
  release();
  $('#upload-panel').hidden = true;
  $('#upload-progress').value = 0;
  $('#upload-state').textContent = '';
  $('#upload-note').textContent = '';
  say($('#upload-error'), '');
  for (const id of ['#img-original', '#img-processed', '#img-thumbnail']) setImage($(id), null);
}

function render(rec) {
  if (!shown || shown.id !== rec.id) return;
  $('#upload-panel').hidden = false;
  $('#upload-state').textContent = rec.state;
  $('#upload-state').dataset.state = rec.state;
  const links = rec.links || {};
  // the upload itself is shown only once the worker has decoded it within
  // the server's limits: a refused picture (a 400-megapixel "decompression
  // bomb", a corrupt file) must not be handed to this browser to decode
  const processed = rec.state === 'processed';
  setImage($('#img-original'), processed ? links.raw : null);
  setImage($('#img-processed'), processed ? links.processed : null);
  setImage($('#img-thumbnail'), rec.state === 'processed' ? links.thumbnail : null);
  const note = [];
  if (rec.width && rec.height) note.push(`${rec.width} × ${rec.height} px`);
  if (rec.bytes) note.push(formatBytes(rec.bytes));
  if (rec.state === 'uploaded' || rec.state === 'processing') note.push('the worker is making the sepia picture…');
  $('#upload-note').textContent = note.join(' · ');
  if (rec.state === 'failed') {
    say($('#upload-error'), `The picture could not be processed: ${rec.error || 'the worker gave no reason.'}`);
  } else {
    say($('#upload-error'), '');
  }
}

// Polls the record until it is processed or failed.
async function watch(me, rec) {
  let wait = 300;
  const started = Date.now();
  while (!FINAL.has(rec.state) && !me.abort.signal.aborted) {
    if (Date.now() - started > 5 * 60 * 1000) {
      say($('#upload-error'), 'The picture is still not processed after 5 minutes; is a worker running?');
      return rec;
    }
    await sleep(wait, me.abort.signal);
    wait = Math.min(wait * 1.5, 2000);
    rec = await api(`/api/images/${encodeURIComponent(rec.id)}`, { signal: me.abort.signal });
    render(rec);
  }
  return rec;
}

function showRecord(rec) {
  release();
  const me = { id: rec.id, kind: 'view', abort: new AbortController() };
  shown = me;
  $('#upload-progress').value = rec.state === 'created' ? 0 : 1;
  render(rec);
  if (!FINAL.has(rec.state) && rec.state !== 'created') {
    watch(me, rec).catch((e) => {
      if (e.name !== 'AbortError' && shown === me) say($('#upload-error'), e.message);
    });
  }
}

function put(rec, file, me) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    const path = (rec.links && rec.links.upload) || `/api/images/${encodeURIComponent(rec.id)}/raw`;
    xhr.open('PUT', path);
    xhr.setRequestHeader('Authorization', `Bearer ${getKey()}`);
    xhr.setRequestHeader('Accept', 'application/json');
    if (file.type) xhr.setRequestHeader('Content-Type', file.type);
    const bar = $('#upload-progress');
    xhr.upload.addEventListener('progress', (ev) => {
      if (shown !== me) return;
      if (ev.lengthComputable) {
        bar.max = 1;
        bar.value = ev.loaded / ev.total;
        $('#upload-note').textContent = `sending ${formatBytes(ev.loaded)} of ${formatBytes(ev.total)}`;
      }
    });
    xhr.addEventListener('load', () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        try {
          resolve(JSON.parse(xhr.responseText));
        } catch (e) {
          reject(new ApiError('The server sent an answer this page cannot read.', xhr.status));
        }
      } else {
        reject(problemToError(xhr.status, xhr.responseText, xhr.getResponseHeader('Content-Type')));
      }
    });
    xhr.addEventListener('error', () => {
      // a server that refuses a body too large may close before the browser
      // has read its answer: that looks like a network error here
      reject(new ApiError(file.size > 20 * 1024 * 1024
        ? `The connection was cut. At ${formatBytes(file.size)} the picture is probably over the server's upload limit (20 MB unless configured otherwise).`
        : wordsForStatus(0), 0));
    });
    xhr.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
    xhr.send(file);
  });
}

async function upload(file) {
  clearPanel();
  $('#upload-panel').hidden = false;
  if (!currentUser()) {
    say($('#upload-error'), 'You are signed out: make a new account or paste a key at the top of the page.');
    return;
  }
  if (file.type && !TYPES.has(file.type)) {
    say($('#upload-error'), `“${file.name}” is not a PNG, JPEG, WebP or GIF picture.`);
    return;
  }
  if (file.size === 0) {
    say($('#upload-error'), `“${file.name}” is empty.`);
    return;
  }
  const me = { id: null, kind: 'upload', abort: new AbortController() };
  shown = me;
  $('#upload-note').textContent = `preparing ${file.name}`;
  try {
    let rec = await api('/api/images', { method: 'POST', signal: me.abort.signal });
    me.id = rec.id;
    render(rec);
    $('#upload-note').textContent = `sending ${file.name}`;
    rec = await put(rec, file, me);
    $('#upload-progress').value = 1;
    render(rec);
    refreshGrid();
    rec = await watch(me, rec);
    refreshGrid();
  } catch (e) {
    refreshGrid();
    if (e.name === 'AbortError' || shown !== me) return;
    say($('#upload-error'), `The upload did not work: ${e.message}`);
  }
}

function enqueue(files) {
  for (const f of files) queue = queue.then(() => upload(f));
}

function gridItem(rec) {
  const links = rec.links || {};
  const label = `Picture from ${formatWhen(rec.created_at)}, ${rec.state}`;
  const face = rec.state === 'processed' && links.thumbnail
    ? el('img', { src: links.thumbnail, alt: '', loading: 'lazy', decoding: 'async' })
    : el('span', { class: 'placeholder', text: rec.state });
  const button = el('button', { type: 'button', class: 'pick', 'aria-label': label, title: label }, face);
  button.addEventListener('click', () => {
    showRecord(rec);
    $('#upload-panel').scrollIntoView({ block: 'nearest', behavior: 'smooth' });
  });
  const caption = [];
  if (rec.width && rec.height) caption.push(`${rec.width}×${rec.height}`);
  if (rec.bytes) caption.push(formatBytes(rec.bytes));
  return el('li', { class: 'gallery-item', dataset: { id: rec.id, state: rec.state } }, button,
    el('span', { class: 'caption', text: caption.join(' · ') || rec.state }));
}

function moreButton() {
  const old = $('#gallery-more');
  if (old) old.remove();
  if (!nextCursor) return;
  const b = el('button', { id: 'gallery-more', type: 'button', text: 'More pictures' });
  b.addEventListener('click', () => loadPage(false));
  $('#gallery-grid').after(b);
}

let loading = 0;
async function loadPage(first) {
  if (!currentUser()) return;
  const ticket = ++loading;
  const q = new URLSearchParams({ limit: String(PAGE) });
  if (!first && nextCursor) q.set('cursor', nextCursor);
  try {
    const page = await api(`/api/images?${q}`);
    if (ticket !== loading) return;
    const grid = $('#gallery-grid');
    if (first) grid.replaceChildren();
    // a record still "created" has no bytes (an upload refused or cut off): not a picture
    for (const rec of page.items) if (rec.state !== 'created') grid.append(gridItem(rec));
    nextCursor = page.next_cursor;
    moreButton();
    say($('#gallery-error'), '');
    $('#gallery-empty').hidden = grid.children.length > 0;
  } catch (e) {
    if (ticket === loading) say($('#gallery-error'), `Could not list your pictures: ${e.message}`);
  }
}

function refreshGrid() {
  if (active) loadPage(true);
}

export function show() {
  active = true;
  if (!currentUser()) {
    say($('#gallery-error'), 'You are signed out: make a new account or paste a key at the top of the page.');
    return;
  }
  loadPage(true);
}

export function hide() {
  active = false;
}

export function accountChanged() {
  clearPanel();
  $('#gallery-grid').replaceChildren();
  nextCursor = null;
  moreButton();
  $('#gallery-empty').hidden = true;
  say($('#gallery-error'), '');
  if (active) show();
}

export function init() {
  const input = $('#upload-input');
  input.addEventListener('change', () => {
    enqueue(Array.from(input.files));
    input.value = ''; // choosing the same file again still uploads it
  });
  const zone = $('#dropzone');
  const over = (on) => zone.classList.toggle('over', on);
  zone.addEventListener('dragenter', (ev) => {
    ev.preventDefault();
    over(true);
  });
  zone.addEventListener('dragover', (ev) => {
    ev.preventDefault();
    ev.dataTransfer.dropEffect = 'copy';
    over(true);
  });
  zone.addEventListener('dragleave', (ev) => {
    if (!zone.contains(ev.relatedTarget)) over(false);
  });
  zone.addEventListener('drop', (ev) => {
    ev.preventDefault();
    over(false);
    const files = Array.from(ev.dataTransfer.files || []);
    if (files.length) enqueue(files);
  });
  // a file dropped beside the zone must not replace this page with the file
  for (const t of ['dragover', 'drop']) {
    window.addEventListener(t, (ev) => {
      if (!zone.contains(ev.target)) ev.preventDefault();
    });
  }
}
