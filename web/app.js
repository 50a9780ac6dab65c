// app.js — the front-end's entry module (loaded by index.html; no build step).
//
// A single page with three views, chosen by the address's hash:
// #/shot (the default; #/shot?job=ID follows one job), #/gallery, #/history.
// Exactly one <section data-view> is visible. The account (js/account.js)
// is settled before the first view is drawn; when it changes, every view
// forgets what it showed for the previous account.

import * as account from './js/account.js';
import * as gallery from './js/gallery.js';
import * as history from './js/history.js';
import * as shot from './js/shot.js';

const views = { shot, gallery, history };
const titles = { shot: 'Screenshot', gallery: 'Gallery', history: 'History' };
let currentView = '';
let ready = false; // the account is settled

function parseHash() {
  const m = /^#\/([a-z]+)(?:\?(.*))?$/.exec(location.hash);
  const name = m && views[m[1]] ? m[1] : 'shot';
  return { name, params: new URLSearchParams(m && m[2] ? m[2] : '') };
}

function route(moveFocus) {
  const { name, params } = parseHash();
  const changed = name !== currentView;
  if (changed && currentView && views[currentView].hide) views[currentView].hide();
  currentView = name;
  for (const s of document.querySelectorAll('section[data-view]')) s.hidden = s.dataset.view !== name;
  for (const a of document.querySelectorAll('nav a')) {
    if (a.getAttribute('href') === `#/${name}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${titles[name]} — tintype`;
  if (ready) views[name].show(params);
  // after a click on the navigation, keyboard and screen-reader users land on the new view's heading
  if (changed && moveFocus) {
    window.scrollTo(0, 0);
    const h = document.querySelector(`section[data-view="${name}"] h1`);
    if (h) h.focus({ preventScroll: true });
  }
}

async function main() {
  shot.init();
  gallery.init();
  history.init();
  account.onChange(() => {
    shot.accountChanged();
    gallery.accountChanged();
    history.accountChanged();
  });
  window.addEventListener('hashchange', () => route(true));
  route(false); // the right section at once; its content once the account is known
  await account.init();
  ready = true;
  route(false);
}

main();
