// e2e.render_link — a signed render link in an <img src> (issue 15 item 2).
//
// A user makes a render secret (POST /api/users/me/render-secrets) and signs
// a link with the JavaScript of docs/API.md ("Render links"), copied here
// as it is written there. A page of the app's origin that holds
// <img src=LINK> (and the link as its og:image) shows the screenshot: the
// image loads at the link's width x height and the page server's blocks are
// where they belong. A second <img> with the same link loads from the
// result cache: the page server is not asked again. A link with a wrong
// signature does not load (403).
import { createHmac } from 'node:crypto';

import { BLUE, RED, WHITE, check, eq, imagePixels, main, near, waitImage } from './harness.mjs';

// ---- docs/API.md, "Signing in JavaScript (Node.js)" ----
const enc = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());

function renderLink(base, userId, secret, params, ext = 'png') {
  const path = `/api/render/${userId}.${ext}`;
  const query = Object.entries(params)
    .map(([k, v]) => [enc(k), enc(String(v))])
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const sig = createHmac('sha256', secret).update(`${path}?${query}`).digest('hex');
  return `${base}${path}?${query}&sig=${sig}`;
}
// ----

let user;
let secret;
let link;
let page;

async function pageWithImage(ctx, src, id) {
  await page.evaluate(([s, i]) => {
    const meta = document.createElement('meta');
    meta.setAttribute('property', 'og:image');
    meta.content = s;
    document.head.appendChild(meta);
    const img = document.createElement('img');
    img.id = i;
    img.alt = 'a screenshot by render link';
    img.src = s;
    document.body.prepend(img);
  }, [src, id]);
}

await main('render_link', [
  ['a user and a render secret', async (ctx) => {
    const r = await ctx.api('POST', '/api/users', null, { name: 'og', email: `og${Date.now()}@example.com` });
    eq(r.status, 201, 'sign-up: 201');
    user = r.json;
    const s = await ctx.api('POST', '/api/users/me/render-secrets', user.api_key, { name: 'og images' });
    eq(s.status, 201, 'a render secret: 201');
    secret = s.json.secret;
    check(/^ttrs_[0-9a-f]{64}$/.test(secret || ''), 'the secret is shown', 'ttrs_...', secret);
    link = renderLink(ctx.app, user.id, secret, { url: ctx.pages.url('/blocks'), width: 800, height: 500 });
  }],
  ['the link in an <img> shows the screenshot', async (ctx) => {
    page = await ctx.newPage({ label: 'og' });
    await page.goto(ctx.app + '/index.html');
    await pageWithImage(ctx, link, 'shot');
    const img = await waitImage(page, '#shot', 60000);
    eq(img.w, 800, 'the image is the link\'s width (naturalWidth)');
    eq(img.h, 500, 'the image is the link\'s height (naturalHeight)');
    const [red, blue, white] = await imagePixels(page, '#shot', [[100, 100], [700, 400], [450, 100]]);
    check(near(red, RED), 'red where the page has its red block', RED, red);
    check(near(blue, BLUE), 'blue where the page has its blue block', BLUE, blue);
    check(near(white, WHITE), 'white elsewhere', WHITE, white);
    eq(ctx.pages.count('/blocks'), 1, 'the page was rendered once');
    await ctx.snap(page, 'render-link-img');
  }],
  ['a second <img> comes from the cache', async (ctx) => {
    await pageWithImage(ctx, link + '&', 'again'); // another URL for the browser, the same signed query
    const img = await waitImage(page, '#again', 20000);
    eq(img.w, 800, 'the second image loads too');
    eq(ctx.pages.count('/blocks'), 1, 'no second render: the page server was not asked again');
  }],
  ['a wrong signature does not load', async (ctx) => {
    const bad = link.replace(/sig=[0-9a-f]+$/, 'sig=' + '0'.repeat(64));
    await ctx.expecting({ console: /403|Failed to load resource/, response: /^403 GET \/api\/render\// }, async () => {
      await pageWithImage(ctx, bad, 'bad');
      await page.waitForFunction(() => {
        const i = document.querySelector('#bad');
        return i && i.complete;
      }, null, { timeout: 15000 });
    });
    eq(await page.evaluate(() => document.querySelector('#bad').naturalWidth), 0, 'a bad link shows no image');
  }],
]);
