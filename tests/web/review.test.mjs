// The review page in a real browser: headless Chromium (Debian's package,
// never a download) driven by playwright-core. Usage:
//   node review.test.mjs BASE_URL REVIEWER_TOKEN
// Opens /review, enters the key, checks the cluster is shown with its
// thumbnails and metadata, presses "c" (confirm), waits for the decision to be
// saved; then resolves the title conflict of the two copies (after checking
// that the API refuses malformed decisions with a 4xx and records nothing).
// The caller then checks the catalogue (run-review-test.sh).
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
  // Metadata decisions: malformed ones are refused over real HTTP (Node's
  // fetch, so the browser console stays clean) before anything is written.
  const clusterId = await page.evaluate(() => state.detail.id);
  const post = async (cluster, body, auth = true) => {
    const headers = { "Content-Type": "application/json" };
    if (auth) headers.Authorization = "Bearer " + token;
    const r = await fetch(base + "/api/v1/clusters/" + cluster + "/metadata-decisions",
                          { method: "POST", headers, body });
    return r.status;
  };
  const refusals = [
    [clusterId, "not json", 400],
    [clusterId, JSON.stringify({ field: "title" }), 400],
    [clusterId, JSON.stringify({ field: "title", value: "x", from: 1 }), 400],
    [clusterId, JSON.stringify({ field: "title", from: -3 }), 400],
    [clusterId, JSON.stringify({ field: "title", value: "x", note: "?" }), 400],
    [clusterId, JSON.stringify({ field: "colour", value: "red" }), 422],
    [clusterId, JSON.stringify({ field: "artist", value: "x" }), 422],
    [clusterId, JSON.stringify({ field: "title", from: 999999 }), 422],
    [clusterId, JSON.stringify({ field: "capture_time", value: "yesterday" }), 422],
    [999999, JSON.stringify({ field: "title", value: "x" }), 404],
  ];
  for (const [cluster, body, want] of refusals) {
    const got = await post(cluster, body);
    if (got !== want) throw new Error("POST " + body + " to cluster " + cluster + ": " + got + ", expected " + want);
  }
  if (await post(clusterId, JSON.stringify({ field: "title", value: "x" }), false) !== 401)
    throw new Error("a metadata decision without a key was not refused");
  // The conflict on the page: choose the smaller copy's title and resolve.
  const row = "#conflicts .conflict[data-field=title]";
  await page.waitForSelector(row, { timeout: 15000 });
  const option = await page.evaluate((sel) =>
    [...document.querySelectorAll(sel + " option")].find((o) => o.textContent.endsWith("Dune du Pilat")).value, row);
  await page.selectOption(row + " select", option);
  await page.click(row + " button");
  await page.waitForSelector("#status:has-text('resolved: title = Dune du Pilat')", { timeout: 15000 });
  await page.waitForSelector(row + " .decided:has-text('Dune du Pilat')", { timeout: 15000 });
  await page.waitForSelector(row + ":has-text('decided by key')", { timeout: 15000 });
  await page.waitForSelector("#conflicts h2:has-text('0 open')", { timeout: 15000 });
  // Ignore the expected 401 of the wrong key.
  const real = problems.filter((p) => !p.includes("401"));
  if (real.length) throw new Error(real.join("\n"));
  console.log("review page: cluster shown with " + cards + " pictures, " + diffs + " differences highlighted, confirmed, title conflict resolved");
} catch (e) {
  failed = true;
  console.error("review page test failed: " + (e && e.stack || e));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
