// e2e.account — the account the page keeps, signing out and back in (issue 6).
//
// The first visit makes a user and keeps its key (the page's localStorage
// holds it; a reload is the same user). #sign-out asks first (a dialog that
// says the account lives only in this browser, shows the key on request,
// and "Stay signed in" keeps it); confirmed, it clears it: the key is
// gone from localStorage, and the page says "signed out" or makes a new
// user — after a reload too, never the old one. Pasting the old key into
// input#paste-key and pressing button#use-key brings the old user back
// (#account shows its name, #/history its job, and it survives a reload).
// A bad key shows #account-error (its 401 is the one error allowed).
import { SLOW, check, eq, goView, main, openApp, until } from './harness.mjs';

let page;
let user;
let jobId;

const accountText = async (page) => ((await page.textContent('#account').catch(() => null)) || '').trim();
const keyStored = (page, key) => page.evaluate((k) => {
  for (let i = 0; i < localStorage.length; i++) {
    if ((localStorage.getItem(localStorage.key(i)) || '').includes(k)) return true;
  }
  return false;
}, key);
const signedOut = (t) => /signed out/i.test(t);

await main('account', [
  ['first visit makes a user', async (ctx) => {
    page = await ctx.newPage({ label: 'desktop' });
    user = await openApp(ctx, page);
    eq(await keyStored(page, user.api_key), true, 'the key is kept in localStorage');
    const j = await ctx.api('POST', '/api/jobs', user.api_key, { url: ctx.pages.url('/blocks') });
    eq(j.status, 202, 'a job of this user (posted by the test)');
    jobId = j.json?.id;
    await page.reload({ waitUntil: 'load' });
    await until(async () => (await accountText(page)).includes(user.name), 10000, '#account to show the same user after a reload');
    eq(ctx.users.length, 1, 'a reload makes no new user');
    await ctx.snap(page, 'signed-in');
  }],
  ['sign out', async (ctx) => {
    const before = ctx.users.length;
    // Sign out asks first: the account lives only in this browser (issue 14)
    await page.click('button#sign-out');
    await page.waitForSelector('dialog#sign-out-dialog[open]', { timeout: 5000 * SLOW });
    const warning = await page.textContent('dialog#sign-out-dialog');
    check(/only in this browser/.test(warning), 'the sign-out dialog says the account lives only in this browser',
      'only in this browser', warning);
    await page.click('dialog#sign-out-dialog button#sign-out-show');
    eq((await page.textContent('#sign-out-key')).trim(), user.api_key, '"Show the key" shows this account\'s key');
    check(await page.isVisible('#sign-out-key'), 'the key is visible after "Show the key"');
    await ctx.snap(page, 'sign-out-dialog');
    await page.click('dialog#sign-out-dialog button#sign-out-stay');
    check(!(await page.isVisible('dialog#sign-out-dialog')), '"Stay signed in" closes the dialog');
    check((await accountText(page)).includes(user.name), '"Stay signed in" keeps the account', user.name,
      await accountText(page));
    eq(await keyStored(page, user.api_key), true, '"Stay signed in" keeps the key');
    await page.click('button#sign-out');
    await page.waitForSelector('dialog#sign-out-dialog[open]', { timeout: 5000 * SLOW });
    check(!(await page.isVisible('#sign-out-key')), 'the key is hidden again when the dialog opens again');
    await page.click('dialog#sign-out-dialog button#sign-out-confirm');
    const text = await until(async () => {
      const t = await accountText(page);
      return (signedOut(t) || ctx.users.length > before) && t;
    }, 10000, '#account to say "signed out" (or a new user to be made)', async () => `#account reads ${JSON.stringify(await accountText(page))}`);
    check(!text.includes(user.name) || ctx.users.length > before, '#account no longer shows the old user', 'signed out', text);
    eq(await keyStored(page, user.api_key), false, 'signing out removes the key from localStorage');
    await ctx.snap(page, 'signed-out');
    const mark = ctx.users.length;
    await page.reload({ waitUntil: 'load' });
    // settled: signed out, or signed in as a user made after the reload
    let after = '';
    await until(async () => {
      after = await accountText(page);
      return signedOut(after) || (ctx.users.length > mark && after.includes(ctx.users[ctx.users.length - 1].name));
    }, 10000, 'after a reload, #account to say "signed out" or show a user made after the reload (never the old one)',
    () => `#account reads ${JSON.stringify(after)}; users made after the reload: ${ctx.users.length - mark}`);
    const fresh = ctx.users.slice(before);
    check(fresh.every((u) => u.id !== user.id), 'no new user is the old one', user.id, fresh.map((u) => u.id));
    eq(await keyStored(page, user.api_key), false, 'the old key is still gone after a reload');
  }],
  ['paste the old key back', async (ctx) => {
    const before = ctx.users.length;
    await page.fill('input#paste-key', user.api_key);
    await page.click('button#use-key');
    await until(async () => (await accountText(page)).includes(user.name), 10000,
      `#account to show the old user's name ${JSON.stringify(user.name)}`, async () => `it reads ${JSON.stringify(await accountText(page))}`);
    eq(await keyStored(page, user.api_key), true, 'the pasted key is kept');
    check(!(await page.isVisible('#account-error')) || !((await page.textContent('#account-error')) || '').trim(),
      'no #account-error for a good key');
    await goView(page, 'history');
    await page.waitForSelector(`#history-list .history-item[data-id="${jobId}"]`, { timeout: 10000 * SLOW });
    await page.reload({ waitUntil: 'load' });
    await until(async () => (await accountText(page)).includes(user.name), 10000, 'the old user to stay after a reload');
    eq(ctx.users.length, before, 'pasting a key makes no new user');
    await ctx.snap(page, 'key-pasted');
  }],
  ['a bad key', async (ctx) => {
    await ctx.expecting({ console: /status of 401/, response: /^401 / }, async () => {
      await page.fill('input#paste-key', 'tt_this-is-not-a-key-0000000000000000');
      await page.click('button#use-key');
      await until(async () => (await page.isVisible('#account-error')) &&
        ((await page.textContent('#account-error')) || '').trim().length > 0, 10000, '#account-error to show');
    });
    console.log(`  #account-error: ${JSON.stringify(((await page.textContent('#account-error')) || '').trim())}`);
    await ctx.snap(page, 'bad-key');
  }],
]);
