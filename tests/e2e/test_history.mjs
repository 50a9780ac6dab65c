// e2e.history — a person's jobs, and running one again (issue 6).
//
// After a shot through the form (as e2e.shoot), #/history lists that job as
// a .history-item with its id and data-state "succeeded" (its thumbnail, if
// it shows one, loads). Its "Run again" (button.rerun) posts a second job
// with the same request, which succeeds; the list then shows both, newest
// first, both succeeded. With 25 more jobs (posted and canceled by the
// test), button#history-more pages on until the list holds every job, in
// the API's order, each once.
import {
  SLOW, check, eq, goView, main, openApp, shootViaForm, until, visibleViews, waitShot, history,
} from './harness.mjs';

let page;
let user;
let first;
let second;

async function items(page) {
  return page.$$eval('#history-list .history-item', (es) => es.map((e) => ({ id: e.dataset.id, state: e.dataset.state })));
}

async function thumbsLoad(page) {
  let broken = null;
  await until(async () => {
    broken = await page.$$eval('#history-list .history-item img',
      (es) => es.filter((i) => !(i.complete && i.naturalWidth > 0)).map((i) => i.src));
    return broken.length === 0;
  }, 10000, 'every picture in #history-list to load', () => JSON.stringify(broken));
}

await main('history', [
  ['a shot to remember', async (ctx) => {
    page = await ctx.newPage({ label: 'desktop' });
    user = await openApp(ctx, page);
    await goView(page, 'shot');
    first = await shootViaForm(ctx, page, ctx.pages.url('/blocks'));
  }],
  ['history lists it', async (ctx) => {
    await goView(page, 'history');
    await page.waitForSelector(`#history-list .history-item[data-id="${first.id}"][data-state="succeeded"]`,
      { timeout: 10000 * SLOW });
    const list = await items(page);
    eq(JSON.stringify(list), JSON.stringify([{ id: first.id, state: 'succeeded' }]), 'history lists exactly the one job');
    check(!(await page.isVisible('button#history-more')), 'no button#history-more when every job is listed');
    eq(await page.locator(`.history-item[data-id="${first.id}"] button.rerun`).count(), 1, 'the item has button.rerun');
    await thumbsLoad(page);
    await ctx.snap(page, 'history-one');
  }],
  ['run it again', async (ctx) => {
    const since = (await history(page, '#shot-state')).length;
    const posted = page.waitForResponse((r) => r.request().method() === 'POST' &&
      new URL(r.url()).pathname === '/api/jobs', { timeout: 10000 * SLOW });
    await page.click(`.history-item[data-id="${first.id}"] button.rerun`);
    const resp = await posted;
    eq(resp.status(), 202, '"Run again" posts a job: 202');
    const job = await resp.json();
    check(job.id && job.id !== first.id, '"Run again" makes a new job', 'a new id', job.id);
    const orig = (await ctx.api('GET', '/api/jobs/' + first.id, user.api_key)).json || {};
    eq(JSON.stringify(job.request), JSON.stringify(orig.request), 'the new job asks for what the first asked');
    const done = await ctx.waitJob(user.api_key, job.id);
    eq(done.state, 'succeeded', 'the job run again succeeds (API)');
    second = job.id;
    const views = await visibleViews(page);
    console.log(`  after "Run again" the page shows ${JSON.stringify(views)}`);
    if (views.includes('shot')) {
      await waitShot(ctx, page, second, since);
      await ctx.snap(page, 'rerun-shot');
    }
  }],
  ['history lists both', async (ctx) => {
    if (!(await visibleViews(page)).includes('history')) await goView(page, 'history');
    // a live list shows it by itself; otherwise a fresh visit of the view must
    const live = await until(() => page.isVisible(`.history-item[data-id="${second}"][data-state="succeeded"]`), 5000,
      'the new job in the list').catch(() => false);
    if (!live) {
      console.log('  (the list did not show the new job by itself: visiting the view again)');
      await goView(page, 'gallery');
      await goView(page, 'history');
    }
    await page.waitForSelector(`#history-list .history-item[data-id="${second}"][data-state="succeeded"]`,
      { timeout: 10000 * SLOW });
    const list = await items(page);
    eq(JSON.stringify(list), JSON.stringify([{ id: second, state: 'succeeded' }, { id: first.id, state: 'succeeded' }]),
      'history lists both jobs, newest first, both succeeded');
    await thumbsLoad(page);
    await ctx.snap(page, 'history-two');
  }],
  ['more than a page', async (ctx) => {
    for (let i = 0; i < 25; i++) {
      const r = await ctx.api('POST', '/api/jobs', user.api_key, { url: ctx.pages.url('/blocks?n=' + i) });
      eq(r.status, 202, 'a job posted by the test');
      if (r.json?.id) await ctx.api('DELETE', '/api/jobs/' + r.json.id, user.api_key); // 200, or 409 if done
    }
    const all = [];
    for (let cursor = null, n = 0; n < 10; n++) {
      const r = await ctx.api('GET', '/api/jobs?limit=10' + (cursor ? '&cursor=' + cursor : ''), user.api_key);
      all.push(...(r.json?.items || []).map((j) => j.id));
      cursor = r.json?.next_cursor;
      if (!cursor) break;
    }
    eq(all.length, 27, 'the API lists 27 jobs');
    await goView(page, 'gallery');
    await goView(page, 'history');
    await page.waitForSelector(`#history-list .history-item[data-id="${all[0]}"]`, { timeout: 10000 * SLOW });
    let clicks = 0;
    for (;;) {
      const n = await page.locator('#history-list .history-item').count();
      if (n >= all.length) break;
      check(await page.isVisible('button#history-more'), `button#history-more shows while ${n} of ${all.length} jobs are listed`);
      if (clicks++ >= 30) throw new Error('button#history-more clicked 30 times and the list is still short');
      await page.click('button#history-more');
      await until(async () => (await page.locator('#history-list .history-item').count()) > n, 10000,
        `button#history-more to list more than ${n} jobs`);
    }
    const ids = (await items(page)).map((i) => i.id);
    eq(JSON.stringify(ids), JSON.stringify(all), 'the list holds every job once, newest first, as the API lists them');
    check(!(await page.isVisible('button#history-more')), 'no button#history-more once every job is listed');
    console.log(`  ${all.length} jobs listed after ${clicks} click(s) on button#history-more`);
    await ctx.snap(page, 'history-paged');
  }],
]);
