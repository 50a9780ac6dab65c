// ui.js — small helpers shared by the views: building elements without
// innerHTML (so nothing a server or a user typed is ever parsed as markup),
// showing and hiding messages, and numbers in words.

export const $ = (sel, root = document) => root.querySelector(sel);

// el('li', {class: 'x', dataset: {id}}, child, 'text', ...)
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k === 'text') e.textContent = v;
    else if (k in e && typeof v !== 'string') e[k] = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) e.append(c);
  return e;
}

// Shows `text` in a message element, or hides it when text is empty.
export function say(node, text) {
  node.textContent = text || '';
  node.hidden = !text;
}

export function formatBytes(n) {
  if (!Number.isFinite(n)) return '';
  if (n < 1024) return `${n} bytes`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}

export function formatSeconds(ms) {
  if (!Number.isFinite(ms) || ms < 0) return '';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)} min ${s % 60} s`;
}

export function formatWhen(ms) {
  if (!Number.isFinite(ms)) return '';
  const ago = Date.now() - ms;
  if (ago < 45000) return 'just now';
  if (ago < 3600000) return `${Math.round(ago / 60000)} min ago`;
  const d = new Date(ms);
  const today = new Date();
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  if (d.toDateString() === today.toDateString()) return `today ${time}`;
  return `${d.toLocaleDateString()} ${time}`;
}

// The viewport presets of the screenshot form. Phone is a mobile viewport at
// device scale 2 (a 780 × 1688 picture), as a phone's screen really is.
export const PRESETS = {
  desktop: { width: 1280, height: 800, scale: 1, mobile: false },
  tablet: { width: 768, height: 1024, scale: 1, mobile: false },
  phone: { width: 390, height: 844, scale: 2, mobile: true },
};

// The preset a job's viewport matches, or '' when it matches none.
export function presetOf(viewport) {
  if (!viewport) return '';
  for (const [name, p] of Object.entries(PRESETS)) {
    if (p.width === viewport.width && p.height === viewport.height && p.mobile === !!viewport.mobile &&
        Math.abs(p.scale - (viewport.scale ?? 1)) < 1e-6) return name;
  }
  return '';
}

// A job's error as a visitor should read it. The network policy's refusal
// names the setting an operator changes; a visitor learns what it means.
export function visitorError(error) {
  const e = error || '';
  const m = /^blocked by the network policy: (.*?)(?:;|, never allowed|$)/.exec(e);
  if (m) {
    return `This server does not take screenshots of that address: ${m[1]} is on a private or local network, ` +
      'which it keeps out of reach of the pages it opens. Whoever runs this tintype can allow it.';
  }
  return e;
}

// Every option a job had, in words (History shows them all, defaults too,
// so a job can be told from another that differs in one option).
export function describeRequest(r) {
  if (!r) return '';
  const v = r.viewport || {};
  const preset = presetOf(v);
  const scale = v.scale && v.scale !== 1 ? ` @${v.scale}×` : '';
  const size = `${v.width} × ${v.height}${scale}${v.mobile ? ' mobile' : ''}`;
  const parts = [preset ? `${preset[0].toUpperCase()}${preset.slice(1)} ${size}` : size];
  parts.push((r.format || 'png').toUpperCase() + (r.quality ? ` quality ${r.quality}` : ''));
  if (r.full_page) parts.push('full page');
  if (r.dark_mode) parts.push('dark mode');
  parts.push(`wait until ${r.wait_until || 'load'}`);
  if (r.wait_for) parts.push(`wait for ${r.wait_for}`);
  if (r.selector) parts.push(`only ${r.selector}`);
  if (r.delay_ms) parts.push(`delay ${formatSeconds(r.delay_ms)}`);
  if (r.timeout_ms) parts.push(`timeout ${formatSeconds(r.timeout_ms)}`);
  return parts.join(' · ');
}
