// e2e.phone — the pages on a phone-sized screen (issue 6).
//
// A 390x844 mobile viewport (isMobile, touch, device scale 2). Every view
// (shot, gallery, history) fits: no sideways scroll (scrollWidth <=
// clientWidth, and innerWidth stays 390: a mobile browser widens its layout
// viewport for content wider than the screen, so scrollWidth <= innerWidth
// alone would always hold), before and after
// it shows pictures wider than the screen (a 1280 wide desktop shot, a
// 1200 wide processed upload). The form is usable: its URL field and
// submit button are on screen, a tap on submit shoots with the phone preset
// (the job asks for a mobile viewport), the desktop preset with Enter.
import {
  SLOW, check, eq, history, main, makePng, openApp, overflowX, shootViaForm, until, visibleViews, waitImage,
} from './harness.mjs';

const PHONE = { width: 390, height: 844 };
let page;
let user;

/** Shows view by its nav link (a tap when the link is on screen; a phone
 * layout may fold the links into a menu, so else by the address). */
async function show(page, view) {
  const link = page.locator(`a[href="#/${view}"]`).first();
  if (await link.isVisible()) await link.tap();
  else {
    console.log(`  (a[href="#/${view}"] is not on screen: going by the address)`);
    await page.evaluate((v) => { location.hash = '#/' + v; }, view);
  }
  await until(async () => {
    const v = await visibleViews(page);
    return v.length === 1 && v[0] === view;
  }, 10000, `section[data-view=${view}] to be the only visible view`);
}

async function fits(page, what) {
  const over = await overflowX(page);
  check(over <= 0, `${what}: no sideways scroll (scrollWidth <= clientWidth)`, '<= 0 px over', `${over} px over`);
  // content wider than the screen also makes a mobile browser lay the page
  // out wider than the screen (and show it zoomed out)
  const inner = await page.evaluate(() => window.innerWidth);
  eq(inner, PHONE.width, `${what}: laid out ${PHONE.width} CSS pixels wide (innerWidth), not zoomed out`);
}

/** Every element's box on screen horizontally? Names those that stick out. */
async function sticksOut(page, sel) {
  return page.$$eval(sel, (es) => es.filter((e) => e.checkVisibility())
    .map((e) => ({ e, r: e.getBoundingClientRect() }))
    .filter(({ r }) => r.left < -0.5 || r.right > window.innerWidth + 0.5)
    .map(({ e, r }) => `${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''}${e.name ? '[name=' + e.name + ']' : ''} ${Math.round(r.left)}..${Math.round(r.right)}`));
}

await main('phone', [
  ['every view fits', async (ctx) => {
    page = await ctx.newPage({ label: 'phone', viewport: PHONE, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    user = await openApp(ctx, page);
    eq(await page.evaluate(() => window.innerWidth), PHONE.width, 'the page is laid out 390 CSS pixels wide');
    for (const v of ['shot', 'gallery', 'history']) {
      await show(page, v);
      await fits(page, `#/${v}, empty`);
      await ctx.snap(page, `phone-${v}-empty`);
    }
  }],
  ['the form on a phone', async (ctx) => {
    await show(page, 'shot');
    const form = 'form#shot-form';
    for (const sel of ['input[name=url]', 'select[name=preset]', 'select[name=format]', 'button[type=submit]']) {
      check(await page.isVisible(`${form} ${sel}`), `${sel} is visible`);
    }
    const out = await sticksOut(page, `${form} input, ${form} select, ${form} button, ${form} label`);
    eq(out.length, 0, 'every control of the form is inside the screen\'s width');
    if (out.length) console.log('  sticking out: ' + out.join(', '));
    const url = ctx.pages.url('/blocks');
    const phone = await shootViaForm(ctx, page, url, { preset: 'phone', tap: true });
    const job = (await ctx.api('GET', '/api/jobs/' + phone.id, user.api_key)).json || {};
    eq(job.request?.viewport?.mobile, true, 'the phone preset asks for a mobile viewport');
    check(job.request?.viewport?.width < 600, 'the phone preset asks for a phone-wide viewport', '< 600',
      job.request?.viewport?.width);
    await fits(page, '#/shot with a phone shot');
    await ctx.snap(page, 'phone-shot-phone-preset');
    const desk = await shootViaForm(ctx, page, url, { preset: 'desktop' });
    eq(desk.img.w, 1280, 'the desktop shot is 1280 wide');
    await fits(page, '#/shot with a 1280 wide shot');
    const box = await page.locator('img#shot-result').boundingBox();
    check(box && box.x >= 0 && box.x + box.width <= PHONE.width + 0.5, 'the 1280 wide shot is shown within the screen',
      `0..${PHONE.width}`, box);
    await ctx.snap(page, 'phone-shot-desktop-preset');
  }],
  ['the gallery on a phone', async (ctx) => {
    await show(page, 'gallery');
    const since = (await history(page, '#upload-state')).length;
    const png = makePng(1200, 900, (x, y) => (x < 600 ? [128, 128, 128] : [40, 90, 200]));
    await page.setInputFiles('input#upload-input', { name: 'e2e-phone.png', mimeType: 'image/png', buffer: png });
    await until(async () => {
      const h = (await history(page, '#upload-state')).slice(since);
      if (h.includes('failed')) throw new Error(`#upload-state became "failed": ${JSON.stringify(h)}`);
      return h[h.length - 1] === 'processed';
    }, 45000, '#upload-state to read "processed"');
    for (const k of ['original', 'processed', 'thumbnail']) await waitImage(page, `img#img-${k}`);
    await fits(page, '#/gallery with a 1200 wide picture');
    const out = await sticksOut(page, 'section[data-view=gallery] img');
    eq(out.length, 0, 'every picture of the gallery is inside the screen\'s width');
    if (out.length) console.log('  sticking out: ' + out.join(', '));
    await ctx.snap(page, 'phone-gallery');
  }],
  ['history on a phone', async (ctx) => {
    await show(page, 'history');
    await page.waitForSelector('#history-list .history-item[data-state="succeeded"]', { timeout: 10000 * SLOW });
    await until(async () => (await page.locator('#history-list .history-item').count()) === 2, 10000,
      'two jobs in #history-list');
    await fits(page, '#/history with two jobs');
    const out = await sticksOut(page, '#history-list .history-item, #history-list button');
    eq(out.length, 0, 'every history item and button is inside the screen\'s width');
    if (out.length) console.log('  sticking out: ' + out.join(', '));
    await ctx.snap(page, 'phone-history');
  }],
]);
