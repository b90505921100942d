// The review page in a real browser: headless Chromium (Debian's package,
// never a download) driven by playwright-core. Usage:
//   node review.test.mjs BASE_URL REVIEWER_TOKEN
// Opens /review, enters the key, checks the cluster is shown with its
// thumbnails and metadata, presses "c" (confirm), waits for the decision to be
// saved. The caller then checks the catalogue (run-review-test.sh).
import { chromium } from "playwright-core";

const [base, token] = process.argv.slice(2);
if (!base || !token) {
  console.error("usage: node review.test.mjs BASE_URL REVIEWER_TOKEN");
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-gpu"] });
let failed = false;
try {
  // bypassCSP: playwright evaluates its own waiting code, which the page's
  // strict Content-Security-Policy (no eval) would otherwise refuse.
  const page = await browser.newPage({ bypassCSP: true });
  const problems = [];
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  page.on("console", (m) => { if (m.type() === "error") problems.push("console: " + m.text()); });
  await page.goto(base + "/review");
  // A wrong key is refused with a message, and the form stays.
  await page.fill("#key", "dpl_wrong");
  await page.click("#login button[type=submit]");
  await page.waitForSelector("#loginerr:has-text('not accepted')");
  // The reviewer key.
  await page.fill("#key", token);
  await page.click("#login button[type=submit]");
  await page.waitForSelector(".member", { timeout: 15000 });
  const cards = await page.locator(".member").count();
  if (cards < 2) throw new Error("expected at least 2 pictures side by side, got " + cards);
  // Thumbnails load (blob: URLs fetched with the key).
  await page.waitForFunction(() => [...document.querySelectorAll(".member img")].every((i) => i.complete && i.naturalWidth > 0),
                             null, { timeout: 15000 });
  // Metadata differences are highlighted (the two files differ at least in source and size).
  const diffs = await page.locator("td.diff").count();
  if (diffs === 0) throw new Error("no metadata difference highlighted");
  // The key is kept for this tab only.
  const stored = await page.evaluate(() => sessionStorage.getItem("doppel-key"));
  if (stored !== token) throw new Error("the key is not kept in sessionStorage");
  // Confirm with the keyboard shortcut.
  await page.keyboard.press("c");
  await page.waitForSelector("#status:has-text('saved: confirm')", { timeout: 15000 });
  await page.waitForSelector("#decision:has-text('confirm')", { timeout: 15000 });
  // A reload keeps the session (sessionStorage) and shows the decision in force.
  await page.reload();
  await page.waitForSelector("#decision:has-text('confirm')", { timeout: 15000 });
  // Ignore the expected 401 of the wrong key.
  const real = problems.filter((p) => !p.includes("401"));
  if (real.length) throw new Error(real.join("\n"));
  console.log("review page: cluster shown with " + cards + " pictures, " + diffs + " differences highlighted, confirmed");
} catch (e) {
  failed = true;
  console.error("review page test failed: " + (e && e.stack || e));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
