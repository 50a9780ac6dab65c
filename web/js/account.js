// account.js — who this browser is to the API.
//
// The first visit signs up a user (POST /api/users, a generated name and a
// unique address under the reserved .invalid domain) and keeps the API key
// in localStorage. The header shows the account and lets the person sign
// out (after a dialog that warns the account lives only in this browser and
// offers to show or copy the key; forgetting the key, the page stays signed out, even after a reload,
// until they make a new account or paste a key) or paste another key, which
// is checked with GET /api/users/me before it replaces the current one.
// Other modules subscribe with onChange(fn(user)); user is null when signed out.

import { api, onUnauthorized, setKey } from './api.js';
import { $, say } from './ui.js';

const KEY = 'tintype.key';
const SIGNED_OUT = 'tintype.signedOut';

let user = null;
const subscribers = new Set();

export function currentUser() {
  return user;
}

export function onChange(fn) {
  subscribers.add(fn);
}

function store(k, v) {
  try {
    if (v === null) localStorage.removeItem(k);
    else localStorage.setItem(k, v);
  } catch (e) {
    // storage disabled (private mode, quota): the key lives for this page only
  }
}

function load(k) {
  try {
    return localStorage.getItem(k);
  } catch (e) {
    return null;
  }
}

function render() {
  const signedIn = !!user;
  $('#account').textContent = signedIn ? `Signed in as ${user.name}` : 'signed out';
  $('#account').title = signedIn ? user.email : '';
  $('#sign-out').hidden = !signedIn;
  $('#new-account').hidden = signedIn;
  $('#my-key-box').hidden = !signedIn;
  if (!signedIn) $('#my-key-box').open = false;
}

function set(newUser, key) {
  const changed = (user && user.id) !== (newUser && newUser.id);
  user = newUser;
  setKey(key);
  $('#my-key').textContent = key || '';
  render();
  if (changed) for (const fn of subscribers) fn(user);
}

function randomToken() {
  const b = new Uint8Array(8);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

async function signUp() {
  for (let attempt = 0; ; attempt++) {
    try {
      const u = await api('/api/users', {
        method: 'POST',
        key: null,
        body: { name: 'web visitor', email: `visitor-${randomToken()}@tintype.invalid` },
      });
      store(KEY, u.api_key);
      store(SIGNED_OUT, null);
      const key = u.api_key;
      delete u.api_key;
      set(u, key);
      return;
    } catch (e) {
      if (e.status === 409 && attempt < 3) continue; // that address exists: draw another
      throw e;
    }
  }
}

async function newAccount(note) {
  say($('#account-error'), '');
  $('#account').textContent = 'Making an account…';
  try {
    await signUp();
    if (note) say($('#account-error'), note);
  } catch (e) {
    render();
    say($('#account-error'), `Could not make an account: ${e.message}`);
  }
}

// Sign out asks first: the account exists only as the key in this browser,
// so the dialog says so and offers to show or copy the key before it goes.
function askSignOut() {
  const d = $('#sign-out-dialog');
  $('#sign-out-key').textContent = $('#my-key').textContent;
  $('#sign-out-key').hidden = true;
  $('#sign-out-show').textContent = 'Show the key';
  $('#sign-out-copied').textContent = '';
  if (typeof d.showModal === 'function') d.showModal();
  else if (window.confirm('This account lives only in this browser. Sign out and forget its key?')) signOut();
}

async function copyKey() {
  const key = $('#my-key').textContent;
  try {
    await navigator.clipboard.writeText(key);
    $('#sign-out-copied').textContent = 'Copied.';
  } catch (e) {
    // no clipboard here (permissions, an old browser): show it, selected
    $('#sign-out-key').hidden = false;
    const r = document.createRange();
    r.selectNodeContents($('#sign-out-key'));
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(r);
    $('#sign-out-copied').textContent = 'Select and copy the key shown below.';
  }
}

function signOut() {
  store(KEY, null);
  store(SIGNED_OUT, '1');
  say($('#account-error'), '');
  set(null, null);
}

async function useKey(ev) {
  ev.preventDefault();
  const input = $('#paste-key');
  const key = input.value.trim();
  if (!key) {
    say($('#account-error'), 'Paste an API key first (it starts with tt_).');
    input.focus();
    return;
  }
  $('#use-key').disabled = true;
  try {
    const u = await api('/api/users/me', { key });
    store(KEY, key);
    store(SIGNED_OUT, null);
    input.value = '';
    say($('#account-error'), '');
    set(u, key);
  } catch (e) {
    say($('#account-error'), e.status === 401 ? 'That key was not accepted: check that it was copied whole.'
      : `Could not check the key: ${e.message}`);
  } finally {
    $('#use-key').disabled = false;
  }
}

// Reads the stored key (or makes an account) at start-up and whenever
// another tab changes it.
async function restore() {
  const key = load(KEY);
  if (!key) {
    if (load(SIGNED_OUT)) set(null, null);
    else await newAccount();
    return;
  }
  try {
    set(await api('/api/users/me', { key }), key);
  } catch (e) {
    if (e.status === 401) {
      // the account is gone (deleted, or a fresh data folder): start over
      store(KEY, null);
      set(null, null);
      await newAccount('The saved key no longer worked, so this browser has a new account.');
    } else {
      setKey(key); // keep it: the server may just be away for a moment
      $('#account').textContent = 'Account unknown (server unreachable)';
      say($('#account-error'), e.message);
    }
  }
}

export async function init() {
  $('#sign-out').addEventListener('click', askSignOut);
  $('#sign-out-show').addEventListener('click', () => {
    const k = $('#sign-out-key');
    k.hidden = !k.hidden;
    $('#sign-out-show').textContent = k.hidden ? 'Show the key' : 'Hide the key';
  });
  $('#sign-out-copy').addEventListener('click', copyKey);
  $('#sign-out-stay').addEventListener('click', () => $('#sign-out-dialog').close());
  $('#sign-out-confirm').addEventListener('click', () => {
    $('#sign-out-dialog').close();
    signOut();
  });
  $('#new-account').addEventListener('click', () => newAccount());
  $('#key-form').addEventListener('submit', useKey);
  onUnauthorized(() => {
    say($('#account-error'), 'The API no longer accepts this key. Paste another key, or sign out and make a new account.');
  });
  window.addEventListener('storage', (ev) => {
    if (ev.key === KEY && ev.newValue !== (user ? $('#my-key').textContent : null)) restore();
  });
  await restore();
}
