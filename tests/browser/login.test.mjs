// The login workflow in a real browser (Debian's Chromium through
// playwright-core), against the servers tests/browser/run starts: the dev IdP
// (5 s access tokens, one-time-use refresh tokens), the store and forums demo
// apps, and the gateway in front of them on store.localhost / forums.localhost.
//
// The tests run in order and share one browser context (one user's browser):
// each step starts from the state the previous one left.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { chromium } from 'playwright-core';

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the tests with tests/browser/run`);
  return value;
}

const STORE = env('BROWSER_STORE_URL');
const FORUMS = env('BROWSER_FORUMS_URL');
const ARTIFACTS = env('BROWSER_ARTIFACTS');
const CHROMIUM = env('BROWSER_CHROMIUM');
const ACCESS_TTL_SECONDS = Number(env('BROWSER_ACCESS_TTL_SECONDS'));

// examples/users.toml
const USER = {
  login: 'richard@example.com',
  password: 'password',
  sub: '00000000-0000-0000-0000-000000000001',
  email: 'richard@example.com',
  name: 'Richard Hendricks',
};

const LOGIN_PATH = '/.gateway/login';
const LOGOUT_PATH = '/.gateway/logout';
const CART = '/shopping-cart';

mkdirSync(ARTIFACTS, { recursive: true });
const shot = (name) => join(ARTIFACTS, name);

let browser;
let context;
let page;
/** Every URL a page got a 404 for, documents and assets alike (the browser's
 * own favicon requests are not reported here; test 3 checks the forums icon). */
const notFound = [];

before(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--no-proxy-server',
      '--host-resolver-rules=MAP *.localhost 127.0.0.1',
    ],
  });
  context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-US' });
  context.setDefaultTimeout(15_000);
  context.setDefaultNavigationTimeout(15_000);
  context.on('response', (r) => {
    if (r.status() === 404) notFound.push(r.url());
  });
  page = await context.newPage();
});

after(async () => {
  await browser?.close();
});

/** The gateway's session cookies (JWT, sealed refresh token) for `origin`, by name. */
const SESSION_COOKIES = ['gw_jwt', 'gw_refresh'];
async function gatewayCookies(origin) {
  const cookies = await context.cookies(origin);
  return Object.fromEntries(
    cookies.filter((c) => SESSION_COOKIES.includes(c.name)).map((c) => [c.name, c]),
  );
}

/** The claims of a JWT (not verified: the gateway does that). */
function claims(jwt) {
  const [, payload] = jwt.split('.');
  return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
}

/** The value of a row of the demo apps' "What the gateway sent" panel. */
async function panelValue(p, header) {
  const row = p.locator('section.gateway tr', { has: p.locator(`th:text-is("${header}")`) });
  return (await row.locator('td').textContent())?.trim();
}

/** Asserts `p` is the demo app page of a signed-in USER. */
async function assertSignedIn(p) {
  await assert.doesNotReject(p.locator('p.signed-in').waitFor());
  assert.equal(
    (await p.locator('p.signed-in').textContent()).trim(),
    `Signed in as ${USER.email}`,
  );
  assert.equal(await panelValue(p, 'x-auth-request-user'), USER.sub);
  assert.equal(await panelValue(p, 'x-auth-request-email'), USER.email);
  assert.equal(await panelValue(p, 'x-auth-request-name'), USER.name);
  assert.equal(await panelValue(p, 'x-auth-request-roles'), 'customer');
  // The gateway's cookies never reach the app.
  const cookie = (await panelValue(p, 'cookie')) ?? '';
  assert.doesNotMatch(cookie, /gw_/);
}

/** Asserts `p` shows the gateway's sign-in page for `title` returning to `returnTo`. */
async function assertLoginPage(p, origin, title, returnTo) {
  const url = new URL(p.url());
  assert.equal(url.origin, origin);
  assert.equal(url.pathname, LOGIN_PATH);
  assert.equal(url.searchParams.get('return_to'), returnTo);
  assert.equal((await p.locator('h1').textContent()).trim(), `Sign in to ${title}`);
  assert.equal(await p.locator('form input[name=return_to]').inputValue(), returnTo);
}

/** Fills and submits the sign-in form; resolves to the POST's response. */
async function submitLogin(p, login, password) {
  await p.fill('#username', login);
  await p.fill('#password', password);
  const posted = p.waitForResponse(
    (r) => r.request().method() === 'POST' && new URL(r.url()).pathname === LOGIN_PATH,
  );
  await p.click('button[type=submit]');
  const response = await posted;
  await p.waitForLoadState('load');
  return response;
}

test('1. the cart redirects to the login page; signing in returns to the cart', async () => {
  const response = await page.goto(`${STORE}${CART}`);
  assert.equal(response.status(), 200);
  const redirect = response.request().redirectedFrom();
  assert.ok(redirect, 'the cart was answered with a redirect');
  assert.equal(redirect.url(), `${STORE}${CART}`);
  assert.equal((await redirect.response()).status(), 302);
  assert.match(page.url(), /\/\.gateway\/login\?.*return_to=%2Fshopping-cart/);
  await assertLoginPage(page, STORE, 'Store', CART);
  assert.equal(await page.title(), 'Sign in · Store');
  assert.deepEqual(await gatewayCookies(STORE), {});
  await page.screenshot({ path: shot('login.png'), fullPage: true });

  // The same page at phone width: nothing sticks out sideways, the card is
  // centred and the inputs are big enough not to make a phone zoom in.
  const phone = await browser.newContext({
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
    locale: 'en-US',
  });
  try {
    const phonePage = await phone.newPage();
    await phonePage.goto(`${STORE}${CART}`);
    await assertLoginPage(phonePage, STORE, 'Store', CART);
    await phonePage.screenshot({ path: shot('login-phone.png'), fullPage: true });
    const layout = await phonePage.evaluate(() => {
      const box = document.querySelector('main').getBoundingClientRect();
      const input = getComputedStyle(document.querySelector('#username'));
      const button = document.querySelector('button[type=submit]').getBoundingClientRect();
      return {
        viewport: window.innerWidth,
        scrollWidth: document.documentElement.scrollWidth,
        left: box.left,
        right: window.innerWidth - box.right,
        inputFontPx: parseFloat(input.fontSize),
        buttonHeight: button.height,
        buttonWidth: button.width,
      };
    });
    assert.equal(layout.viewport, 390);
    assert.ok(layout.scrollWidth <= layout.viewport, `no horizontal scroll: ${JSON.stringify(layout)}`);
    assert.ok(Math.abs(layout.left - layout.right) <= 1, `card centred: ${JSON.stringify(layout)}`);
    assert.ok(layout.left >= 8, `card has a margin: ${JSON.stringify(layout)}`);
    assert.ok(layout.inputFontPx >= 16, `inputs at least 16px: ${JSON.stringify(layout)}`);
    assert.ok(layout.buttonHeight >= 44, `button tap target: ${JSON.stringify(layout)}`);
  } finally {
    await phone.close();
  }

  const posted = await submitLogin(page, USER.login, USER.password);
  assert.equal(posted.status(), 302);
  assert.equal(page.url(), `${STORE}${CART}`);
  assert.equal((await page.locator('h1').textContent()).trim(), 'Shopping cart');
  await assertSignedIn(page);

  const cookies = await gatewayCookies(STORE);
  assert.deepEqual(Object.keys(cookies).sort(), SESSION_COOKIES);
  for (const cookie of Object.values(cookies)) {
    assert.equal(cookie.domain, 'store.localhost', `${cookie.name} is host-only`);
    assert.equal(cookie.path, '/');
    assert.equal(cookie.httpOnly, true, `${cookie.name} is HttpOnly`);
    assert.equal(cookie.sameSite, 'Lax');
  }
  const jwt = claims(cookies.gw_jwt.value);
  assert.equal(jwt.sub, USER.sub);
  assert.equal(jwt.exp - jwt.iat, ACCESS_TTL_SECONDS, 'the IdP issues short-lived JWTs');
  await page.screenshot({ path: shot('cart.png'), fullPage: true });
});

test('2. after the JWT expires the gateway refreshes it inline', async () => {
  const before = await gatewayCookies(STORE);
  assert.ok(before.gw_jwt, 'signed in to the store');
  const { exp } = claims(before.gw_jwt.value);
  const wait = exp * 1000 + 1500 - Date.now();
  assert.ok(wait <= (ACCESS_TTL_SECONDS + 2) * 1000, `JWT lives ${ACCESS_TTL_SECONDS} s`);
  if (wait > 0) await sleep(wait);
  assert.ok(Date.now() / 1000 > exp + 1, 'the JWT has expired');

  const response = await page.goto(`${STORE}${CART}`);
  assert.equal(response.status(), 200);
  assert.equal(response.request().redirectedFrom(), null, 'refreshed inline, no redirect');
  assert.equal(page.url(), `${STORE}${CART}`);
  await assertSignedIn(page);

  const afterRefresh = await gatewayCookies(STORE);
  assert.ok(afterRefresh.gw_jwt, 'a JWT cookie after the refresh');
  assert.notEqual(afterRefresh.gw_jwt.value, before.gw_jwt.value, 'the JWT cookie changed');
  const fresh = claims(afterRefresh.gw_jwt.value);
  assert.equal(fresh.sub, USER.sub);
  assert.ok(fresh.exp > Date.now() / 1000, 'the new JWT is valid');
  assert.ok(afterRefresh.gw_refresh, 'a refresh cookie after the refresh');
  assert.notEqual(
    afterRefresh.gw_refresh.value,
    before.gw_refresh.value,
    'the rotated refresh token was stored',
  );
});

test('3. the forums have their own login', async () => {
  assert.deepEqual(await gatewayCookies(FORUMS), {}, 'no forums cookies yet');
  await page.goto(`${FORUMS}/`);
  await assertLoginPage(page, FORUMS, 'Forums', '/');
  const posted = await submitLogin(page, USER.login, USER.password);
  assert.equal(posted.status(), 302);
  assert.equal(page.url(), `${FORUMS}/`);
  assert.equal((await page.locator('h1').textContent()).trim(), 'Welcome to the Forums');
  await assertSignedIn(page);
  const forums = await gatewayCookies(FORUMS);
  const store = await gatewayCookies(STORE);
  assert.deepEqual(Object.keys(forums).sort(), SESSION_COOKIES);
  assert.equal(forums.gw_jwt.domain, 'forums.localhost');
  assert.notEqual(forums.gw_jwt.value, store.gw_jwt.value, 'separate sessions');
  assert.equal(claims(forums.gw_jwt.value).aud, 'forums');
  // Its icon is inline: no request for a /favicon.ico it does not have.
  assert.match(await page.locator('link[rel=icon]').getAttribute('href'), /^data:image\/svg\+xml,/);
  await page.screenshot({ path: shot('forums.png'), fullPage: true });
});

test('4. signing out of the store keeps the forums session', async () => {
  const storeBefore = await gatewayCookies(STORE);
  assert.ok(storeBefore.gw_refresh, 'signed in to the store');

  await page.goto(`${STORE}${LOGOUT_PATH}`);
  assert.equal((await page.locator('h1').textContent()).trim(), 'Sign out of Store?');
  await page.screenshot({ path: shot('logout.png'), fullPage: true });
  const posted = page.waitForResponse(
    (r) => r.request().method() === 'POST' && new URL(r.url()).pathname === LOGOUT_PATH,
  );
  await page.getByRole('button', { name: 'Sign out' }).click();
  assert.equal((await posted).status(), 302);
  await page.waitForURL((url) => url.pathname === LOGIN_PATH);
  assert.deepEqual(await gatewayCookies(STORE), {}, 'the store cookies are cleared');

  const response = await page.goto(`${STORE}${CART}`);
  assert.equal((await response.request().redirectedFrom()?.response())?.status(), 302);
  await assertLoginPage(page, STORE, 'Store', CART);

  await page.goto(`${FORUMS}/`);
  assert.equal(page.url(), `${FORUMS}/`);
  await assertSignedIn(page);

  // The refresh token was revoked at the IdP: putting the old cookies back
  // once their JWT has expired gets the login page, not a new session.
  const { exp } = claims(storeBefore.gw_jwt.value);
  const wait = exp * 1000 + 1500 - Date.now();
  if (wait > 0) await sleep(wait);
  await context.addCookies(Object.values(storeBefore));
  await page.goto(`${STORE}${CART}`);
  await assertLoginPage(page, STORE, 'Store', CART);
  assert.deepEqual(await gatewayCookies(STORE), {}, 'the stale cookies are cleared');
});

test('5. a wrong password shows the form again with an error and 401', async () => {
  await page.goto(`${STORE}${CART}`);
  await assertLoginPage(page, STORE, 'Store', CART);
  const posted = await submitLogin(page, USER.login, 'not-the-password');
  assert.equal(posted.status(), 401);
  assert.equal(new URL(page.url()).pathname, LOGIN_PATH);
  assert.equal((await page.locator('h1').textContent()).trim(), 'Sign in to Store');
  const error = page.getByRole('alert');
  assert.ok(await error.isVisible(), 'an error message is shown');
  assert.match((await error.textContent()).trim(), /\S/);
  assert.equal(await page.inputValue('#username'), USER.login, 'the username is kept');
  assert.equal(await page.inputValue('#password'), '', 'the password is not');
  assert.equal(await page.locator('form input[name=return_to]').inputValue(), CART);
  assert.deepEqual(await gatewayCookies(STORE), {}, 'no session cookies');
  await page.screenshot({ path: shot('login-error.png'), fullPage: true });

  // The form still works, and still returns to the cart.
  const retried = await submitLogin(page, USER.login, USER.password);
  assert.equal(retried.status(), 302);
  assert.equal(page.url(), `${STORE}${CART}`);
  await assertSignedIn(page);
});

test('6. nothing the pages asked for was missing', () => {
  assert.deepEqual(notFound, []);
});
