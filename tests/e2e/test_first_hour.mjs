// e2e.first_hour — the rough edges a newcomer found in the pages (issue 14).
//
// An address typed without a scheme (127.0.0.1:PORT/slow?ms=1500) is posted
// as http:// and the field shows it; while that job runs, span#shot-phase
// shows its phase in words and the time since it was submitted ("loading
// the page · 1.2 s"). A page the network policy refuses (127.0.0.2) fails
// with words for a visitor, not the operator's setting; https:// to an
// HTTP-only server fails in words, not a bare net::ERR_ code. A canceled
// job is a note (p#shot-note), not an alert, and its state is not styled as
// a failure. History lists every option of a job and follows an unfinished
// one live (Server-Sent Events), without its Refresh button. The gallery
// never hands the browser the bytes of an upload the worker refused (a PNG
// that says 20000 x 20000: no request for its /raw, no img#img-original).
import {
  SLOW, check, eq, goView, history, main, openApp, until, waitShot,
} from './harness.mjs';

let page;
let user;
let failedColour = null;

/** Fills the URL field with text, presses Enter; the posted job. */
async function submitAddress(page, text) {
  await page.selectOption('form#shot-form select[name=preset]', 'desktop');
  await page.fill('form#shot-form input[name=url]', text);
  const posted = page.waitForResponse((r) => r.request().method() === 'POST' &&
    new URL(r.url()).pathname === '/api/jobs', { timeout: 10000 * SLOW });
  await page.press('form#shot-form input[name=url]', 'Enter');
  const resp = await posted;
  eq(resp.status(), 202, `posting ${text}: 202`);
  return resp.json();
}

async function waitState(page, want, timeout = 30000) {
  let last = null;
  await until(async () => {
    last = await page.evaluate(() => document.querySelector('#shot-state')?.textContent.trim() ?? null);
    return last === want;
  }, timeout, `#shot-state to read ${want}`, () => `it reads ${JSON.stringify(last)}`);
}

/** A PNG whose header says w x h, with a few bytes of pixel data: sniffed as
 * a PNG by the API, refused by the worker before any pixel is decoded. */
function hugePngHeader(w, h) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b) => {
    let c = 0xffffffff;
    for (const x of b) c = crcTable[(c ^ x) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr),
    chunk('IDAT', Buffer.from([0x78, 0x9c, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01])), chunk('IEND', Buffer.alloc(0))]);
}

await main('first_hour', [
  ['open the app', async (ctx) => {
    page = await ctx.newPage({ label: 'desktop' });
    user = await openApp(ctx, page);
    await goView(page, 'shot');
  }],
  ['an address without a scheme, and the phase while it runs', async (ctx) => {
    const bare = ctx.pages.url('/slow?ms=1500').replace(/^http:\/\//, '');
    const since = (await history(page, '#shot-state')).length;
    const job = await submitAddress(page, bare);
    eq(job.request?.url, 'http://' + bare, 'an address without a scheme is posted as http://');
    eq(await page.inputValue('form#shot-form input[name=url]'), 'http://' + bare, 'the field shows the http:// it got');
    await waitShot(ctx, page, job.id, since);
    const phases = await history(page, '#shot-phase');
    console.log(`  #shot-phase showed ${JSON.stringify(phases)}`);
    check(phases.some((p) => /^loading the page · \d[\d.]* (ms|s)$/.test(p)),
      'span#shot-phase showed "loading the page" with the time since submit', 'loading the page · 1.2 s', phases);
    check(phases.every((p) => p === '' || /^(waiting in the queue|opening a browser tab|loading the page|waiting for the page|capturing)( · |$)/.test(p)),
      'every phase shown is one of the known ones, in words', 'known phases', phases);
    eq((await page.textContent('#shot-phase')).trim(), '', 'no phase once it succeeded');
  }],
  ['a refused address reads for a visitor', async (ctx) => {
    const job = await submitAddress(page, `http://127.0.0.2:${ctx.pages.port}/private`);
    await waitState(page, 'failed');
    const text = (await page.textContent('#shot-error')).trim();
    check(/does not take screenshots of that address/.test(text) && /127\.0\.0\.2/.test(text),
      '#shot-error says, for a visitor, that the address is out of reach', 'This server does not take ...', text);
    check(!/TINTYPE_ALLOW_NETWORKS/.test(text), "#shot-error does not show the operator's setting", 'no TINTYPE_*', text);
    const rec = (await ctx.api('GET', '/api/jobs/' + job.id, user.api_key)).json || {};
    check(/TINTYPE_ALLOW_NETWORKS=127\.0\.0\.2\/32/.test(rec.error || ''), "the API's error keeps the exact setting",
      'TINTYPE_ALLOW_NETWORKS=127.0.0.2/32', rec.error);
    failedColour = await page.$eval('#shot-state', (e) => getComputedStyle(e).color);
    await ctx.snap(page, 'refused-for-a-visitor');
  }],
  ['a network error in words', async (ctx) => {
    await submitAddress(page, ctx.pages.url('/blocks').replace(/^http:/, 'https:'));
    await waitState(page, 'failed');
    const text = (await page.textContent('#shot-error')).trim();
    check(/does not speak HTTPS/.test(text), '#shot-error says the server does not speak HTTPS', 'does not speak HTTPS', text);
    check(!/^The screenshot failed: the page did not load: net::/.test(text), 'not a bare net::ERR_ code', 'words', text);
  }],
  ['canceled is not failed', async (ctx) => {
    const job = await submitAddress(page, ctx.pages.url('/slow?ms=20000'));
    await until(async () => !(await page.isHidden('#shot-cancel')), 10000, 'button#shot-cancel to show');
    await page.click('#shot-cancel');
    await waitState(page, 'canceled');
    check(await page.isHidden('#shot-error'), 'no alert (#shot-error) for a canceled job');
    check(await page.isVisible('#shot-note'), 'p#shot-note says it was canceled');
    const colour = await page.$eval('#shot-state', (e) => getComputedStyle(e).color);
    check(failedColour && colour !== failedColour, '"canceled" is not styled as "failed"', `not ${failedColour}`, colour);
    eq((await ctx.api('GET', '/api/jobs/' + job.id, user.api_key)).json?.state, 'canceled', 'the job is canceled (API)');
    await ctx.snap(page, 'canceled');
  }],
  ['history shows every option and follows a job live', async (ctx) => {
    const r = await ctx.api('POST', '/api/jobs', user.api_key, {
      url: ctx.pages.url('/slow?ms=2500'), format: 'jpeg', quality: 70, viewport: { width: 800, height: 600 },
      wait_for: '#r', delay_ms: 800, timeout_ms: 20000, full_page: true,
    });
    eq(r.status, 202, 'a job with many options (posted by the test)');
    const id = r.json?.id;
    await goView(page, 'history');
    const sel = `#history-list .history-item[data-id="${id}"]`;
    await page.waitForSelector(sel, { timeout: 10000 * SLOW });
    const first = await page.$eval(sel, (e) => e.dataset.state);
    check(first === 'queued' || first === 'running', 'the job is listed unfinished', 'queued|running', first);
    const meta = await page.textContent(`${sel} .meta`);
    for (const want of ['800 × 600', 'JPEG quality 70', 'full page', 'wait until load', 'wait for #r', 'delay 800 ms',
      'timeout 20.0 s']) {
      check(meta.includes(want), `the history item shows "${want}"`, want, meta);
    }
    // no click on Refresh: the item turns succeeded by itself
    await page.waitForSelector(`${sel}[data-state="succeeded"]`, { timeout: 30000 * SLOW });
    check(await page.isVisible(`${sel} img`), 'the finished item shows its picture');
    await ctx.snap(page, 'history-live');
  }],
  ['the gallery does not load a refused upload', async (ctx) => {
    await goView(page, 'gallery');
    const raws = [];
    page.on('request', (q) => { if (/\/api\/images\/[^/]+\/raw/.test(new URL(q.url()).pathname) && q.method() === 'GET') raws.push(q.url()); });
    await page.setInputFiles('input#upload-input', { name: 'huge.png', mimeType: 'image/png', buffer: hugePngHeader(20000, 20000) });
    let last = null;
    await until(async () => {
      last = await page.evaluate(() => document.querySelector('#upload-state')?.textContent.trim() ?? null);
      return last === 'failed';
    }, 30000, '#upload-state to read failed', () => `it reads ${JSON.stringify(last)}`);
    const err = (await page.textContent('#upload-error')).trim();
    check(/pixels|decompression|too large|limit/i.test(err), '#upload-error says why', 'too many pixels', err);
    eq(raws.length, 0, 'the page never asked for the refused picture\'s bytes');
    check(await page.isHidden('img#img-original'), 'img#img-original stays hidden');
    eq(await page.getAttribute('img#img-original', 'src'), null, 'img#img-original has no src');
    await ctx.snap(page, 'gallery-refused');
  }],
]);
