// The citizen portal in a real browser: Debian's Chromium driven by playwright-core, every page
// checked by axe-core against WCAG 2.1 A and AA. Run with `bash tests/browser/run.sh`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { chromium } from 'playwright-core';
import AxeBuilder from '@axe-core/playwright';
import { startServer, repoRoot } from './server.mjs';
import { startIdp } from './idp.mjs';

const TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];
const ARTIFACTS = path.join(repoRoot, 'target', 'browser-artifacts');
const REFERENCE = /^MUSTERSTADT-\d{4}-\d{6}$/;

let server;
let idp;
let browser;
/** Contexts made with JavaScript disabled. */
const withoutJs = new WeakSet();

before(async () => {
  idp = await startIdp();
  server = await startServer({ idp });
  browser = await chromium.launch({
    executablePath: process.env.AMTSPLATZ_CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox'],
    headless: true,
  });
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await idp?.stop();
});

const url = (p) => `${server.url}${p}`;

/** Readable axe violations: rule, impact, help, and the elements concerned. */
function describe(violations) {
  return violations
    .map((v) => {
      const nodes = v.nodes
        .map((n) => `    ${n.target.join(' ')}\n      ${(n.failureSummary || '').replace(/\n/g, '\n      ')}`)
        .join('\n');
      return `  ${v.id} [${v.impact}]: ${v.help} (${v.helpUrl})\n${nodes}`;
    })
    .join('\n');
}

/**
 * One scenario: its own artefact folder, a numbered full-page screenshot and an axe run on
 * every page it visits. The folder is removed when the scenario passes.
 */
function scenario(name, fn) {
  test(name, async (t) => {
    const dir = path.join(ARTIFACTS, name);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    const contexts = [];
    let n = 0;
    const s = {
      /** A fresh browser context (axe needs contexts made by browser.newContext()). */
      async newPage(options = {}) {
        // A browser set to German, as a citizen's here usually is (the portal follows Accept-Language).
        const context = await browser.newContext({ locale: 'de-DE', ...options });
        contexts.push(context);
        if (options.javaScriptEnabled === false) withoutJs.add(context);
        return context.newPage();
      },
      /** Screenshot of the page as it is now, then the accessibility check. */
      async check(page, label) {
        n += 1;
        const file = path.join(dir, `${String(n).padStart(2, '0')}-${label}.png`);
        await page.screenshot({ path: file, fullPage: true });
        const violations = await axe(page, contexts);
        t.diagnostic(`${label}: ${new URL(page.url()).pathname}, axe: ${violations.length} violations`);
        assert.equal(
          violations.length,
          0,
          `axe (WCAG 2.1 A/AA) on ${label} (${page.url()}):\n${describe(violations)}`,
        );
      },
      /** A screenshot only (for the moment just before a failure). */
      async shot(page, label) {
        n += 1;
        await page
          .screenshot({ path: path.join(dir, `${String(n).padStart(2, '0')}-${label}.png`), fullPage: true })
          .catch(() => {});
      },
      diagnostic: (msg) => t.diagnostic(msg),
    };
    try {
      await fn(s);
    } catch (e) {
      for (const c of contexts) {
        for (const p of c.pages()) await s.shot(p, 'at-failure');
      }
      e.message += `\n(screenshots: ${path.relative(repoRoot, dir)}/)`;
      throw e;
    } finally {
      for (const c of contexts) await c.close().catch(() => {});
    }
    // Passed: the screenshots are kept only when asked for (AMTSPLATZ_KEEP_SCREENSHOTS=1).
    if (!process.env.AMTSPLATZ_KEEP_SCREENSHOTS) await rm(dir, { recursive: true, force: true });
  });
}

/** The violations of an axe run that did check the page (some rules passed). */
function ran(results) {
  assert.ok(results.passes.length > 0, `axe checked nothing on ${results.url}`);
  return results.violations;
}

/**
 * axe on the page. In a context with JavaScript off, Chromium runs no timers, and axe needs them:
 * there the very HTML the page shows is served at its own URL to a twin context with JavaScript on,
 * the same cookies and portal.js blocked (so the DOM stays the one a browser without JS has).
 */
async function axe(page, contexts) {
  if (!withoutJs.has(page.context())) {
    return ran(await new AxeBuilder({ page }).withTags(TAGS).analyze());
  }
  const html = await page.content();
  const here = page.url().split('#')[0];
  const twinContext = await browser.newContext({ locale: 'de-DE' });
  contexts.push(twinContext);
  await twinContext.addCookies(await page.context().cookies());
  const twin = await twinContext.newPage();
  await twin.route((u) => u.pathname === '/static/portal.js', (r) => r.abort());
  await twin.route(
    (u) => u.href === here,
    (r) => r.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: html }),
  );
  await twin.goto(here);
  try {
    return ran(await new AxeBuilder({ page: twin }).withTags(TAGS).analyze());
  } finally {
    await twinContext.close();
  }
}

const OWNER = {
  name: 'Erika Mustermann',
  street: 'Hauptstraße 1',
  postcode: '12345',
  city: 'Musterstadt',
  email: 'erika@example.org',
};

const h1 = (page) => page.locator('h1').innerText();

/** The start page with its search, when it answers; else straight to the service page. */
async function openDogTaxService(s, page) {
  const start = await fetch(url('/t/musterstadt/'));
  if (start.status === 200) {
    await page.goto(url('/t/musterstadt/'));
    assert.match(await h1(page), /Stadt Musterstadt/);
    await s.check(page, 'start');
    await page.getByLabel('Leistung suchen').fill('Hund');
    await page.getByRole('button', { name: 'Suchen' }).click();
    await page.waitForURL(/[?&]q=Hund/);
    const hits = page.locator('.ap-services a');
    assert.ok((await hits.allInnerTexts()).includes('Hund zur Hundesteuer anmelden'));
    await s.check(page, 'search-hund');
    await hits.filter({ hasText: 'Hund zur Hundesteuer anmelden' }).click();
  } else {
    s.diagnostic(`GET /t/musterstadt/ answered ${start.status}: start page and search skipped, beginning at the service page`);
    await page.goto(url('/t/musterstadt/services/hundesteuer'));
  }
  await page.waitForURL(/\/t\/musterstadt\/services\/hundesteuer$/);
  assert.equal(await h1(page), 'Hund zur Hundesteuer anmelden');
  assert.deepEqual(await page.locator('.ap-fees td').allInnerTexts(), ['120,00 €', '600,00 €']);
  await s.check(page, 'service');
}

/** From the service page to the confirmation; the reference and the status link. */
async function applyForDogTax(s, page, { js }) {
  await openDogTaxService(s, page);
  await page.getByRole('button', { name: 'Antrag starten' }).click();
  await page.waitForURL(/\/drafts\/[^/]+\/steps\/halter$/);
  assert.equal(await h1(page), 'Halterin oder Halter');
  assert.match(await page.locator('.kern-preline').innerText(), /Schritt 1 von 3/);
  await s.check(page, 'step1');

  // Step 1 without a postcode: the summary names it and links to the field.
  for (const [key, value] of Object.entries(OWNER)) {
    if (key !== 'postcode') await page.locator(`#f-${key}`).fill(value);
  }
  await page.getByRole('button', { name: 'Weiter' }).click();
  const summary = page.locator('#error-summary');
  await summary.waitFor();
  assert.match(await page.title(), /^Fehler:/);
  assert.equal(await page.locator('#f-postcode').getAttribute('aria-invalid'), 'true');
  assert.equal(await page.locator('#f-name').inputValue(), OWNER.name, 'what was typed is kept');
  const link = summary.getByRole('link', { name: 'Bitte geben Sie „Postleitzahl“ an.' });
  assert.equal(await link.getAttribute('href'), '#f-postcode');
  if (js) {
    // portal.js moves the focus to the summary, so screen readers announce it first.
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'error-summary');
  }
  await s.check(page, 'step1-errors');
  await link.click();
  await page.waitForURL(/#f-postcode$/);
  if (js) {
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'f-postcode');
  }
  await page.locator('#f-postcode').fill(OWNER.postcode);
  await page.getByRole('button', { name: 'Weiter' }).click();

  // Step 2: two dogs, no listed breed.
  await page.waitForURL(/\/steps\/hund$/);
  await s.check(page, 'step2');
  await page.locator('#f-dog_count').fill('2');
  await page.locator('#f-breed').fill('Dackel');
  await page.locator('fieldset', { has: page.locator('#f-listed_breed') }).getByLabel('Nein').check();
  await page.locator('#f-date_acquired').fill('2026-11-01');
  await page.locator('#f-hund_name').fill('Waldi');
  await page.getByRole('button', { name: 'Weiter' }).click();

  // Step 3: bank details.
  await page.waitForURL(/\/steps\/bankverbindung$/);
  await s.check(page, 'step3');
  await page.locator('#f-iban').fill('DE02120300000000202051');
  await page.locator('#f-account_holder').fill(OWNER.name);
  await page.getByRole('button', { name: 'Weiter' }).click();

  // The review: the answers and the fees the server computes for them.
  await page.waitForURL(/\/review$/);
  assert.equal(await h1(page), 'Angaben prüfen');
  const values = await page.locator('.kern-description-list-item__value').allInnerTexts();
  assert.ok(values.some((v) => v.startsWith('01.11.2026')), JSON.stringify(values));
  assert.ok(values.some((v) => v.startsWith('Nein')), JSON.stringify(values));
  assert.equal(await page.locator('.ap-total').innerText(), '240,00 €');
  await s.check(page, 'review');
  await page.getByRole('button', { name: 'Antrag verbindlich absenden' }).click();

  await page.waitForURL(/\/applications\/[^/]+\/submitted$/);
  assert.equal(await h1(page), 'Antrag eingegangen');
  const reference = (await page.locator('.ap-reference').innerText()).trim();
  assert.match(reference, REFERENCE);
  const statusLink = await page.locator('#status-link').inputValue();
  assert.ok(statusLink.startsWith(server.url) && statusLink.includes('/access?token='), statusLink);
  await s.check(page, 'submitted');
  return { reference, statusLink };
}

scenario('a-apply-with-javascript', async (s) => {
  const page = await s.newPage();
  const { reference, statusLink } = await applyForDogTax(s, page, { js: true });

  // The status link works in another browser.
  const other = await s.newPage();
  await other.goto(statusLink);
  await other.waitForURL((u) => !u.search.includes('token'));
  assert.equal(await h1(other), 'Stand Ihres Antrags');
  assert.equal((await other.locator('dd.ap-reference').innerText()).trim(), reference);
  await s.check(other, 'status');
});

scenario('b-save-and-resume', async (s) => {
  const page = await s.newPage();
  await page.goto(url('/t/musterstadt/services/hundesteuer'));
  await s.check(page, 'service');
  await page.getByRole('button', { name: 'Antrag starten' }).click();
  await page.waitForURL(/\/steps\/halter$/);
  await page.locator('#f-name').fill(OWNER.name);
  await page.locator('#f-city').fill(OWNER.city);
  await s.check(page, 'step1-partly');
  await page.getByRole('button', { name: 'Speichern und später fortsetzen' }).click();
  await page.waitForURL(/\/saved$/);
  const resume = await page.locator('#resume-link').inputValue();
  assert.ok(resume.startsWith(server.url) && resume.includes('/resume?token='), resume);
  await s.check(page, 'saved');

  const other = await s.newPage();
  await other.goto(resume);
  await other.waitForURL(/\/steps\/halter$/);
  assert.equal(await h1(other), 'Halterin oder Halter');
  assert.equal(await other.locator('#f-name').inputValue(), OWNER.name);
  assert.equal(await other.locator('#f-city').inputValue(), OWNER.city);
  assert.equal(await other.locator('#f-postcode').inputValue(), '');
  await s.check(other, 'resumed');
});

scenario('c-apply-without-javascript', async (s) => {
  const page = await s.newPage({ javaScriptEnabled: false });
  const { reference } = await applyForDogTax(s, page, { js: false });
  assert.match(reference, REFERENCE);
});

scenario('d-english', async (s) => {
  const page = await s.newPage();
  await page.goto(url('/t/musterstadt/services/hundesteuer?lang=en'));
  assert.equal(await page.locator('html').getAttribute('lang'), 'en');
  assert.equal(await h1(page), 'Register a dog for dog tax');
  assert.deepEqual(await page.locator('.ap-fees td').allInnerTexts(), ['€120.00', '€600.00']);
  await s.check(page, 'service-en');
  await page.getByRole('button', { name: 'Start application' }).click();
  await page.waitForURL(/\/steps\/halter$/);
  // The choice is remembered (cookie): the step is English without ?lang.
  assert.equal(await page.locator('html').getAttribute('lang'), 'en');
  assert.equal(await h1(page), 'Dog owner');
  assert.equal(await page.getByLabel('First and last name').count(), 1);
  assert.equal(await page.getByRole('button', { name: 'Continue', exact: true }).count(), 1);
  assert.equal(await page.getByRole('button', { name: 'Save and continue later' }).count(), 1);
  await s.check(page, 'step1-en');
});

/** A GraphQL call to the API as the municipality's staff would make it (not through the pages). */
async function api(query, variables = {}, token) {
  const headers = { 'content-type': 'application/json', 'x-tenant': 'musterstadt' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(url('/graphql'), { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  const body = await res.json();
  assert.equal(body.errors, undefined, JSON.stringify(body.errors));
  return body.data;
}

async function staffToken() {
  const data = await api(
    'mutation($i: LoginInput!) { login(input: $i) { accessToken } }',
    { i: { email: 'kasse@musterstadt.example', password: 'musterstadt-kasse' } },
  );
  return data.login.accessToken;
}

// A listed breed: the certificate is uploaded at its document, the fees are paid at the counter,
// the office writes and the citizen answers, and the open status page follows a status change.
scenario('e-attachment-payment-messages', async (s) => {
  const page = await s.newPage();
  await page.goto(url('/t/musterstadt/services/hundesteuer'));
  await page.getByRole('button', { name: 'Antrag starten' }).click();
  await page.waitForURL(/\/steps\/halter$/);
  for (const [key, value] of Object.entries(OWNER)) await page.locator(`#f-${key}`).fill(value);
  await page.getByRole('button', { name: 'Weiter' }).click();
  await page.waitForURL(/\/steps\/hund$/);
  await page.locator('#f-dog_count').fill('1');
  await page.locator('#f-breed').fill('American Staffordshire Terrier');
  await page.locator('fieldset', { has: page.locator('#f-listed_breed') }).getByLabel('Ja').check();
  await page.locator('#f-date_acquired').fill('2026-11-01');
  await page.getByRole('button', { name: 'Weiter' }).click();
  await page.waitForURL(/\/steps\/bankverbindung$/);
  await page.locator('#f-iban').fill('DE02120300000000202051');
  await page.locator('#f-account_holder').fill(OWNER.name);
  await page.getByRole('button', { name: 'Weiter' }).click();

  // The documents step asks for the certificate; a text file is refused at the document.
  await page.waitForURL(/\/documents$/);
  assert.equal(await h1(page), 'Unterlagen');
  await s.check(page, 'documents');
  const doc = page.locator('#doc-sachkundenachweis');
  await doc.locator('input[type=file]').setInputFiles({
    name: 'notiz.txt', mimeType: 'text/plain', buffer: Buffer.from('nur Text'),
  });
  await doc.getByRole('button', { name: 'Hochladen' }).click();
  await page.locator('#error-summary').waitFor();
  assert.match(await page.locator('#file-sachkundenachweis-error').innerText(), /kein erlaubtes Format/);
  await s.check(page, 'documents-wrong-type');
  await page.locator('#doc-sachkundenachweis input[type=file]').setInputFiles({
    name: 'sachkunde.pdf',
    mimeType: 'application/pdf',
    buffer: Buffer.from('%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n'),
  });
  await page.locator('#doc-sachkundenachweis').getByRole('button', { name: 'Hochladen' }).click();
  await page.waitForURL(/\/documents#doc-sachkundenachweis$/);
  assert.deepEqual(await page.locator('.ap-filename').allInnerTexts(), ['sachkunde.pdf']);
  await s.check(page, 'documents-uploaded');
  await page.getByRole('button', { name: 'Weiter', exact: true }).click();
  await page.waitForURL(/\/review$/);
  assert.deepEqual(await page.locator('.ap-files li').allInnerTexts(), ['Sachkundenachweis: sachkunde.pdf']);
  assert.equal(await page.locator('.ap-total').innerText(), '720,00 €');
  await s.check(page, 'review');
  await page.getByRole('button', { name: 'Antrag verbindlich absenden' }).click();
  await page.waitForURL(/\/submitted$/);
  await page.getByRole('link', { name: 'Zum Antrag' }).click();
  await page.waitForURL(/\/applications\/[^/]+$/);
  const applicationId = new URL(page.url()).pathname.split('/').pop();

  // Paying at the counter: the amount the server computed, then the open payment.
  assert.equal(await page.locator('.ap-pay-amount').innerText(), '720,00 €');
  await s.check(page, 'status-to-pay');
  await page.getByRole('button', { name: 'An der Kasse bezahlen' }).click();
  await page.waitForURL(/#payment$/);
  assert.deepEqual(await page.locator('.ap-payments li').allInnerTexts(), ['An der Kasse bezahlen: 720,00 € – offen']);
  await s.check(page, 'status-pay-at-counter');

  // The office writes; the citizen reads it and answers.
  const token = await staffToken();
  await api(
    'mutation($i: SendMessageInput!) { sendMessage(input: $i) { message { id } } }',
    { i: { applicationId, body: 'Bitte bringen Sie die Hundesteuermarke des alten Wohnorts mit.' } },
    token,
  );
  await page.reload();
  assert.ok(
    (await page.locator('.ap-message--staff p').allInnerTexts()).includes('Bitte bringen Sie die Hundesteuermarke des alten Wohnorts mit.'),
  );
  await page.getByLabel('Nachricht an die Verwaltung').fill('Mache ich, danke!');
  await page.getByRole('button', { name: 'Nachricht senden' }).click();
  await page.waitForURL(/#messages$/);
  assert.ok((await page.locator('.ap-message--citizen p').allInnerTexts()).includes('Mache ich, danke!'));
  await s.check(page, 'status-messages');
  const seen = await api(
    'query($id: ID!) { application(id: $id) { messages { sender body } attachments { filename document } } }',
    { id: applicationId },
    token,
  );
  assert.deepEqual(seen.application.messages.map((m) => m.sender), ['staff', 'citizen']);
  assert.deepEqual(seen.application.attachments, [{ filename: 'sachkunde.pdf', document: 'sachkundenachweis' }]);

  // The open page follows the office's status change by itself (server-sent events).
  assert.equal(await page.locator('.ap-state').innerText(), 'Eingereicht');
  await page.waitForTimeout(500); // the event stream is open
  await api(
    'mutation($i: TransitionApplicationInput!) { transitionApplication(input: $i) { application { state } } }',
    { i: { id: applicationId, to: 'in_review' } },
    token,
  );
  await page.locator('.ap-state', { hasText: 'In Bearbeitung' }).waitFor({ timeout: 10_000 });
  await s.check(page, 'status-live-update');
});

// An appointment for a registration certificate: booked from the status page with the slot
// picker, then moved to another slot on the booking's page.
scenario('f-appointment', async (s) => {
  const submitted = await api(
    'mutation($i: SubmitApplicationInput!) { submitApplication(input: $i) { accessToken application { id } } }',
    { i: { serviceSlug: 'meldebescheinigung', data: {
      name: 'Erika Mustermann', birth_date: '1980-02-03', street: 'Hauptstraße 1', postcode: '12345',
      city: 'Musterstadt', kind: 'einfach', delivery: 'abholung',
    } } },
  );
  const { accessToken, application } = submitted.submitApplication;
  const page = await s.newPage();
  await page.goto(url(`/t/musterstadt/applications/${application.id}/access?token=${accessToken}`));
  await page.waitForURL((u) => !u.search.includes('token'));
  await page.getByRole('link', { name: 'Termin vor Ort buchen' }).click();
  await page.waitForURL(/\/appointment$/);
  assert.equal(await h1(page), 'Termin buchen');
  assert.equal(await page.locator('#contact-name').inputValue(), 'Erika Mustermann');
  await s.check(page, 'picker');
  const slots = page.locator('input[name=start]');
  assert.ok((await slots.count()) >= 2);
  const firstTime = await page.locator('label[for=slot-1]').innerText();
  await page.getByLabel(firstTime, { exact: true }).check();
  await page.locator('#contact-email').fill('erika@example.org');
  await page.getByRole('button', { name: 'Termin verbindlich buchen' }).click();
  await page.waitForURL(/\/appointments\/[^/?]+\?booked=1$/);
  assert.match(await page.locator('.kern-alert--success').innerText(), /Ihr Termin ist gebucht/);
  const when = await page.locator('.ap-when').innerText();
  assert.ok(when.includes(firstTime), `${when} / ${firstTime}`);
  await s.check(page, 'booked');

  // Moving it: another time of the day shown, then the booking shows the new one.
  const last = await page.locator('input[name=start]').count();
  const lastTime = await page.locator(`label[for=slot-${last}]`).innerText();
  assert.notEqual(lastTime, firstTime);
  await page.locator(`#slot-${last}`).check();
  await page.getByRole('button', { name: 'Auf den gewählten Termin verschieben' }).click();
  await page.waitForURL(/\/appointments\/[^/?]+$/);
  assert.ok((await page.locator('.ap-when').innerText()).includes(lastTime));
  await s.check(page, 'moved');
});

scenario('g-sign-in-and-my-applications', async (s) => {
  const page = await s.newPage();
  await page.goto(url('/t/musterstadt/'));
  // Sign in at the municipality's provider (which signs the citizen in at once) and come back.
  await page.getByRole('link', { name: 'Anmelden', exact: true }).click();
  await page.waitForURL(url('/t/musterstadt/'));
  assert.match(await page.locator('.ap-account__name').innerText(), /Angemeldet als Erika Mustermann/);
  await s.check(page, 'signed-in-start');
  await page.getByRole('link', { name: 'Meine Anträge' }).click();
  await page.waitForURL(/\/t\/musterstadt\/my$/);
  assert.equal(await h1(page), 'Meine Anträge');
  await s.check(page, 'mine-empty');

  // A draft while signed in: no resume link to keep; it waits under "My applications".
  await page.goto(url('/t/musterstadt/services/hundesteuer'));
  await page.getByRole('button', { name: 'Antrag starten' }).click();
  await page.waitForURL(/\/steps\/halter$/);
  await page.locator('#f-name').fill(OWNER.name);
  await page.getByRole('button', { name: 'Speichern und später fortsetzen' }).click();
  await page.waitForURL(/\/saved$/);
  assert.equal(await page.locator('#resume-link').count(), 0);
  await s.check(page, 'saved-signed-in');
  await page.getByRole('link', { name: 'Meine Anträge' }).first().click();
  await page.waitForURL(/\/my$/);
  const drafts = page.locator('table a[href*="/drafts/"]');
  assert.equal(await drafts.count(), 1);
  await s.check(page, 'mine-with-draft');
  await drafts.first().click();
  await page.waitForURL(/\/steps\/halter$/);
  assert.equal(await page.locator('#f-name').inputValue(), OWNER.name);

  // Signing out: the header offers the sign-in again, and "My applications" asks for it.
  await page.getByRole('button', { name: 'Abmelden' }).click();
  await page.waitForURL(url('/t/musterstadt/'));
  assert.equal(await page.getByRole('link', { name: 'Anmelden', exact: true }).count(), 1);
  await s.check(page, 'signed-out');
});
