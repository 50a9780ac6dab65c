// e2e.shoot — a person shoots a page through the form (issue 6).
//
// The first visit makes an account by itself (#account shows its name).
// On the screenshot view, the URL of a page this test serves on 127.0.0.1
// (white, a red and a blue block at known places) is typed into the URL
// field and Enter pressed: #shot-state reads "succeeded", img#shot-result
// shows the shot — 1280 pixels wide for the desktop preset, red, blue and
// white where the page has them — the job the form posted asked for that
// URL at 1280 wide as PNG, #shot-meta tells the size, and a#shot-download
// (with a download attribute) fetches the same PNG.
import {
  BLOCKS, BLUE, RED, WHITE, check, eq, goView, imagePixels, main, near, openApp, shootViaForm, visibleViews,
} from './harness.mjs';

let page;
let user;
let shot;

await main('shoot', [
  ['account made on the first visit', async (ctx) => {
    page = await ctx.newPage({ label: 'desktop' });
    user = await openApp(ctx, page);
    const views = await visibleViews(page);
    eq(views.length, 1, 'one view is visible at first');
    await ctx.snap(page, 'first-visit');
  }],
  ['shot view', async (ctx) => {
    await goView(page, 'shot');
    eq(await page.isVisible('form#shot-form input[name=url]'), true, 'the URL field is visible');
    for (const [sel, want] of [['select[name=preset]', ['desktop', 'tablet', 'phone']],
      ['select[name=format]', ['png', 'jpeg', 'webp', 'pdf']]]) {
      const opts = await page.$$eval(`form#shot-form ${sel} option`, (os) => os.map((o) => o.value));
      check(want.every((w) => opts.includes(w)), `${sel} offers ${want}`, want, opts);
    }
    for (const sel of ['input[name=full_page]', 'input[name=dark_mode]', 'select[name=wait_until]',
      'button[type=submit]']) {
      eq(await page.locator(`form#shot-form ${sel}`).count(), 1, `the form has ${sel}`);
    }
    await ctx.snap(page, 'shot-form');
  }],
  ['shoot a page with Enter', async (ctx) => {
    const url = ctx.pages.url('/blocks');
    const seenBefore = ctx.pages.count('/blocks');
    shot = await shootViaForm(ctx, page, url, { preset: 'desktop', format: 'png' });
    check(ctx.pages.count('/blocks') > seenBefore, 'the worker fetched the page', '> ' + seenBefore,
      ctx.pages.count('/blocks'));
    eq(shot.img.w, 1280, 'img#shot-result naturalWidth is 1280 (desktop preset)');
    const job = (await ctx.api('GET', '/api/jobs/' + shot.id, user.api_key)).json || {};
    eq(job.state, 'succeeded', 'the API says the job succeeded');
    eq(job.request?.url, url, 'the job asked for the typed URL');
    eq(job.request?.viewport?.width, 1280, 'the desktop preset asks for a 1280 wide viewport');
    eq(job.request?.format, 'png', 'the job asked for png');
    eq(job.result?.width, shot.img.w, 'the image shown is as wide as the result');
    eq(job.result?.height, shot.img.h, 'the image shown is as tall as the result');
    const [r, b, w] = await imagePixels(page, 'img#shot-result', [BLOCKS.red, BLOCKS.blue, BLOCKS.white]);
    check(near(r, RED), `pixel ${BLOCKS.red} of the shot is the page's red block`, RED, r);
    check(near(b, BLUE), `pixel ${BLOCKS.blue} of the shot is the page's blue block`, BLUE, b);
    check(near(w, WHITE), `pixel ${BLOCKS.white} of the shot is the page's white`, WHITE, w);
    const meta = ((await page.textContent('#shot-meta')) || '').trim();
    check(meta.includes('1280'), '#shot-meta tells the size', '... 1280 ...', meta);
    await ctx.snap(page, 'shot-result');
  }],
  ['download link', async (ctx) => {
    const a = page.locator('a#shot-download');
    eq(await a.count(), 1, 'a#shot-download exists');
    check(await a.isVisible(), 'a#shot-download is visible');
    check((await a.getAttribute('download')) !== null, 'a#shot-download has a download attribute');
    const href = await a.getAttribute('href');
    check(href, 'a#shot-download has an href', 'a link', href);
    // what the link gives (fetched in the page: it may be a blob: URL)
    const got = await page.evaluate(async (h) => {
      const r = await fetch(h);
      const b = new Uint8Array(await r.arrayBuffer());
      return { status: r.status, type: r.headers.get('content-type'), head: Array.from(b.slice(0, 24)) };
    }, href);
    eq(got.status, 200, 'the download link answers 200');
    check(got.type === 'image/png' || href.startsWith('blob:'), 'the download is served as image/png', 'image/png', got.type);
    const head = Buffer.from(got.head);
    eq(head.subarray(1, 4).toString('latin1'), 'PNG', 'the download starts with the PNG signature');
    eq(head.length === 24 ? head.readUInt32BE(16) : -1, 1280, 'the downloaded PNG is 1280 wide');
  }],
]);
