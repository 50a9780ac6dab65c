// e2e.upload — a person uploads pictures to the gallery (issue 6).
//
// A 1200x900 PNG made here (a grey quarter, the rest noise, so it is a few
// megabytes) is set on input#upload-input: progress#upload-progress moves
// up to full, #upload-state reads "processed" after showing the image's
// states live, img#img-original shows the PNG as uploaded (1200x900, grey
// where it is grey), img#img-processed the same size toned sepia (a grey
// pixel comes back with r > g > b) and img#img-thumbnail 256x192 (long
// side 256; grey or sepia there), and the image shows in #gallery-grid as a .gallery-item with
// its id. Then a JPEG the page draws on a canvas is dropped on #dropzone
// and goes the same way; the grid then holds both.
import {
  SLOW, check, eq, goView, history, imagePixels, main, makePng, near, openApp, until, waitImage,
} from './harness.mjs';

const W = 1200;
const H = 900;
const GREY = [128, 128, 128];
let seed = 12345;
const rnd = () => { seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff; return (seed >> 16) & 255; };
const PNG = makePng(W, H, (x, y) => (x < W / 2 && y < H / 2 ? GREY : [rnd(), rnd(), rnd()]));
const sepia = (c) => Array.isArray(c) && c[0] > c[1] && c[1] > c[2];

let page;
const ids = [];

/** The POST /api/images the page makes next (201): the image's id. */
function nextImage(page) {
  return page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/api/images',
    { timeout: 15000 * SLOW }).then(async (r) => {
    eq(r.status(), 201, 'the page made an image record: POST /api/images 201');
    return (await r.json()).id;
  });
}

/** Waits for #upload-state to show "processed" for this upload (it must
 * have moved off a previous "processed" first) and the three pictures. */
async function waitProcessed(page, since) {
  let last = null;
  await until(async () => {
    const h = (await history(page, '#upload-state')).slice(since);
    last = h;
    if (h.includes('failed')) {
      throw new Error(`#upload-state became "failed"; #upload-error: ${JSON.stringify(
        await page.textContent('#upload-error').catch(() => null))}; states ${JSON.stringify(h)}`);
    }
    return h.length > 0 && h[h.length - 1] === 'processed';
  }, 45000, '#upload-state to read "processed"', () => `it showed ${JSON.stringify(last)}`);
  console.log(`  #upload-state showed ${JSON.stringify(last)}`);
  check(last.some((s) => ['created', 'uploaded', 'processing'].includes(s)),
    '#upload-state showed the image live before processed', 'uploaded|processing, processed', last);
  const out = {};
  for (const k of ['original', 'processed', 'thumbnail']) out[k] = await waitImage(page, `img#img-${k}`);
  return out;
}

await main('upload', [
  ['gallery view', async (ctx) => {
    page = await ctx.newPage({ label: 'desktop' });
    await openApp(ctx, page);
    await goView(page, 'gallery');
    for (const sel of ['input#upload-input[type=file]', '#dropzone', 'progress#upload-progress', '#gallery-grid']) {
      eq(await page.locator(sel).count(), 1, `the gallery has ${sel}`);
    }
    await ctx.snap(page, 'gallery-empty');
  }],
  ['pick a PNG', async (ctx) => {
    const since = (await history(page, '#upload-state')).length;
    const progSince = (await history(page, 'progress#upload-progress')).length;
    const idp = nextImage(page);
    await page.setInputFiles('input#upload-input', { name: 'e2e-grey-noise.png', mimeType: 'image/png', buffer: PNG });
    const id = await idp;
    ids.push(id);
    console.log(`  uploading ${PNG.length} bytes as image ${id}`);
    const imgs = await waitProcessed(page, since);
    const prog = (await history(page, 'progress#upload-progress')).slice(progSince - 1 < 0 ? 0 : progSince - 1);
    console.log(`  progress#upload-progress showed ${JSON.stringify(prog)}`);
    const vals = prog.map((v) => v.split('/').map(Number));
    check(vals.length >= 2 && vals.some(([v, m]) => m > 0 && v >= m) && vals.some(([v, m]) => v < m),
      'progress#upload-progress moved up to full during the upload', '[..., "0/1", ..., "1/1"]', prog);
    eq(`${imgs.original.w}x${imgs.original.h}`, `${W}x${H}`, 'img#img-original is the upload\'s size');
    eq(`${imgs.processed.w}x${imgs.processed.h}`, `${W}x${H}`, 'img#img-processed is the upload\'s size');
    eq(`${imgs.thumbnail.w}x${imgs.thumbnail.h}`, '256x192', 'img#img-thumbnail is 256x192 (long side 256)');
    const [o] = await imagePixels(page, 'img#img-original', [[300, 225]]);
    check(near(o, GREY, 2), 'img#img-original is grey where the PNG is grey', GREY, o);
    const [p] = await imagePixels(page, 'img#img-processed', [[300, 225]]);
    check(sepia(p), 'img#img-processed is sepia where the PNG is grey (r > g > b)', 'r > g > b', p);
    const [t] = await imagePixels(page, 'img#img-thumbnail', [[64, 48]]);
    // the thumbnail may be of the original or of the sepia picture
    check(t[0] >= t[1] && t[1] >= t[2] && t[0] - t[2] < 100 && Math.abs(t[1] - 128) < 40,
      'img#img-thumbnail is grey or sepia where the PNG is grey', 'r >= g >= b, near 128', t);
    const rec = (await ctx.api('GET', '/api/images/' + id, ctx.users[0].api_key)).json || {};
    eq(rec.state, 'processed', 'the API says the image is processed');
    await until(() => page.isVisible(`#gallery-grid .gallery-item[data-id="${id}"]`), 10000,
      `#gallery-grid .gallery-item[data-id=${id}] to show`);
    await ctx.snap(page, 'gallery-processed');
  }],
  ['drop a JPEG', async (ctx) => {
    const since = (await history(page, '#upload-state')).length;
    const idp = nextImage(page);
    // a person drags a file onto the drop zone: the page makes the file (a
    // JPEG drawn on a canvas), then the drag events carry it to #dropzone
    const dt = await page.evaluateHandle(async () => {
      const c = document.createElement('canvas');
      c.width = 320;
      c.height = 200;
      const g = c.getContext('2d');
      g.fillStyle = 'rgb(128,128,128)';
      g.fillRect(0, 0, 320, 200);
      g.fillStyle = 'rgb(0,0,255)';
      g.fillRect(160, 0, 160, 200);
      const blob = await new Promise((r) => c.toBlob(r, 'image/jpeg', 0.9));
      const d = new DataTransfer();
      d.items.add(new File([blob], 'e2e-dropped.jpg', { type: 'image/jpeg' }));
      return d;
    });
    for (const type of ['dragenter', 'dragover', 'drop']) {
      await page.dispatchEvent('#dropzone', type, { dataTransfer: dt });
    }
    const id = await idp;
    ids.push(id);
    const imgs = await waitProcessed(page, since);
    eq(`${imgs.original.w}x${imgs.original.h}`, '320x200', 'the dropped JPEG: img#img-original is 320x200');
    eq(`${imgs.processed.w}x${imgs.processed.h}`, '320x200', 'the dropped JPEG: img#img-processed is 320x200');
    eq(`${imgs.thumbnail.w}x${imgs.thumbnail.h}`, '256x160', 'the dropped JPEG: img#img-thumbnail is 256x160');
    const [p] = await imagePixels(page, 'img#img-processed', [[80, 100]]);
    check(sepia(p), 'the dropped JPEG comes back sepia (r > g > b)', 'r > g > b', p);
    await until(() => page.isVisible(`#gallery-grid .gallery-item[data-id="${id}"]`), 10000,
      `#gallery-grid .gallery-item[data-id=${id}] to show`);
    const grid = await page.$$eval('#gallery-grid .gallery-item', (es) => es.map((e) => e.dataset.id));
    check(ids.every((i) => grid.includes(i)), 'the grid shows both images', ids, grid);
    // every picture in the grid has loaded
    let broken = null;
    await until(async () => {
      broken = await page.$$eval('#gallery-grid .gallery-item img',
        (es) => es.filter((i) => !(i.complete && i.naturalWidth > 0)).map((i) => i.src));
      return broken.length === 0;
    }, 10000, 'every picture in #gallery-grid to load', () => JSON.stringify(broken));
    await ctx.snap(page, 'gallery-two');
  }],
  ['the grid after a reload', async (ctx) => {
    await page.reload({ waitUntil: 'load' });
    await goView(page, 'gallery');
    await until(async () => {
      const grid = await page.$$eval('#gallery-grid .gallery-item', (es) => es.map((e) => e.dataset.id));
      return ids.every((i) => grid.includes(i));
    }, 10000, 'the grid to list both images after a reload (same account)');
    eq(ctx.users.length, 1, 'a reload keeps the account (no new user)');
  }],
]);
