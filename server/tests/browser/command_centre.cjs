// The command centre in a real browser: headless Chromium driven by Playwright against the
// demo server (`cargo xtask ci` starts it and passes the address and sign-ins).
//
// Path: sign in (after a refused wrong password), filter the case list, open a case, accept
// it and dispatch it to a department, see the event in the timeline and the case counted at
// the department level in the statistics; the map and the charts render; a town's operator
// sees only their town. Screenshots go to $SCREENSHOTS. Any failed check exits non-zero.
"use strict";
const { chromium } = require("playwright-core");
const path = require("path");
const fs = require("fs");

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const BASE = env("BASE_URL").replace(/\/$/, "");
const OUT = env("SCREENSHOTS");
fs.mkdirSync(OUT, { recursive: true });

// Never hang: the whole run is bounded.
setTimeout(() => {
  console.error("browser test: timed out after 240 s");
  process.exit(2);
}, 240_000).unref();

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
  console.log(`  ok  ${message}`);
}

async function shot(page, name) {
  const file = path.join(OUT, name);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`  screenshot ${file}`);
}

async function signIn(page, user, password) {
  await page.goto(`${BASE}/web/login`);
  await page.fill("input[name=user]", user);
  await page.fill("input[name=password]", password);
  await Promise.all([page.waitForLoadState("load"), page.click("form button[type=submit]")]);
}

async function openLevelCount(page, level) {
  await page.goto(`${BASE}/web/stats`);
  const cell = page.locator(`#table-open-levels tr[data-level=${level}] td.num`);
  return Number((await cell.textContent()).trim());
}

// The page in use, for a screenshot and its text when a check fails.
let current = null;

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
  });
  try {
    const context = await browser.newContext({ locale: "zh-CN", viewport: { width: 1366, height: 900 } });
    const page = await context.newPage();
    page.setDefaultTimeout(20_000);
    current = page;

    console.log("sign-in");
    await page.goto(`${BASE}/web/cases`);
    check(page.url().includes("/web/login"), "an unsigned visitor is sent to the sign-in page");
    await shot(page, "01-login.png");
    await signIn(page, env("OPERATOR"), "wrong password!");
    check((await page.locator("[role=alert]").textContent()).includes("账号或密码不正确"), "a wrong password is refused with one generic message");
    await signIn(page, env("OPERATOR"), env("OPERATOR_PASSWORD"));
    check(page.url().endsWith("/web/cases"), "the district operator lands on the case list");
    const rows = await page.locator("table.cases tbody tr").count();
    check(rows > 0, `the list shows the demo district's cases (${rows} on the first page)`);
    await shot(page, "02-case-list.png");

    console.log("filter");
    await page.selectOption("select[name=status]", "reported");
    await Promise.all([page.waitForURL(/status=reported/), page.click("form.filters button[type=submit]")]);
    const statuses = await page.locator("table.cases tbody td span.status").allTextContents();
    check(statuses.length > 0 && statuses.every((s) => s.trim() === "待受理"), `the filter keeps only reported cases (${statuses.length})`);
    await shot(page, "03-filtered.png");

    console.log("statistics before");
    const before = await openLevelCount(page, "department");

    console.log("open a case, accept and dispatch it");
    await page.goto(`${BASE}/web/cases?status=reported`);
    await Promise.all([page.waitForURL(/\/web\/cases\/[0-9a-f-]{36}$/), page.locator("table.cases tbody a").first().click()]);
    check(await page.locator("figure.case-map svg").isVisible(), "the case page draws its location");
    await Promise.all([page.waitForURL(/#timeline$/), page.click("form[data-action=accept] button")]);
    check(await page.locator("ol.timeline li[data-kind=accepted]").count() === 1, "the acceptance is in the timeline");
    const unit = await page.locator("form[data-action=dispatch] select[name=unit] option[value^=dept-]").first().getAttribute("value");
    await page.selectOption("form[data-action=dispatch] select[name=unit]", unit);
    await page.fill("form[data-action=dispatch] input[name=due_days]", "5");
    const note = "请尽快处置（浏览器测试）";
    await page.fill("form[data-action=dispatch] input[name=note]", note);
    await Promise.all([page.waitForLoadState("load"), page.click("form[data-action=dispatch] button")]);
    const dispatched = page.locator("ol.timeline li[data-kind=dispatched]");
    check(await dispatched.count() === 1, "the dispatch is in the timeline");
    check((await dispatched.textContent()).includes(note), "with its note, who and which device");
    check((await page.locator("dl.facts").textContent()).includes("已派遣"), "the case shows as dispatched");
    await shot(page, "04-case-dispatched.png");

    console.log("statistics after");
    const after = await openLevelCount(page, "department");
    check(after === before + 1, `the statistics count the case at the department level (${before} → ${after})`);
    const bars = await page.locator("#chart-per-day rect.reported").count();
    const box = await page.locator("#chart-per-day").boundingBox();
    check(bars >= 7 && box && box.width > 300 && box.height > 50, `the cases-per-day chart renders (${bars} bars)`);
    check(await page.locator("#chart-721 rect").count() === 3, "the 721 chart renders");
    await shot(page, "05-statistics.png");

    console.log("map");
    await page.goto(`${BASE}/web/map`);
    const grids = await page.locator("#district-map path.grid").count();
    const points = await page.locator("#district-map circle.case-point").count();
    const mapBox = await page.locator("#district-map").boundingBox();
    check(grids > 10 && points > 0 && mapBox.width > 500, `the map draws ${grids} grids and ${points} open cases`);
    await shot(page, "06-map.png");

    console.log("english");
    await page.goto(`${BASE}/web/cases`);
    await Promise.all([page.waitForLoadState("load"), page.click("header a[href^='/web/lang/en']")]);
    check((await page.locator("h1").textContent()).trim() === "Cases", "the pages switch to English");
    await page.click("header a[href^='/web/lang/zh']");

    console.log("a town's operator");
    const townScope = env("TOWN_SCOPE");
    const myTown = townScope.replace(/^town:/, "");
    const towns = await page.locator("select[name=town] option").evaluateAll((os) => os.map((o) => o.value).filter((v) => v));
    const otherTown = towns.find((t) => t !== myTown);
    await page.goto(`${BASE}/web/cases?town=${otherTown}`);
    const foreign = await page.locator("table.cases tbody a").first().getAttribute("href");
    const townContext = await browser.newContext({ locale: "zh-CN", viewport: { width: 1366, height: 900 } });
    const townPage = await townContext.newPage();
    townPage.setDefaultTimeout(20_000);
    current = townPage;
    await signIn(townPage, env("TOWN_OPERATOR"), env("TOWN_OPERATOR_PASSWORD"));
    check(townPage.url().endsWith("/web/cases"), "the town operator lands on the case list");
    const townOptions = await townPage.locator("select[name=town] option").evaluateAll((os) => os.map((o) => o.value).filter((v) => v));
    check(townOptions.length === 1 && townOptions[0] === myTown, "the town filter offers only their town");
    await shot(townPage, "07-town-operator.png");
    const mine = await townPage.locator("table.cases tbody a").first().getAttribute("href");
    const own = await townPage.goto(`${BASE}${mine}`);
    check(own.status() === 200, "a case of their own town opens");
    const response = await townPage.goto(`${BASE}${foreign}`);
    check(response.status() === 404, "another town's case is not found for them");
    await townContext.close();
    current = page;

    console.log("sign out");
    await page.goto(`${BASE}/web/cases`);
    await Promise.all([page.waitForURL(/\/web\/login/), page.click("header form button")]);
    await page.goto(`${BASE}/web/stats`);
    check(page.url().includes("/web/login"), "after signing out the pages need a sign-in again");
  } catch (e) {
    if (current) {
      await current.screenshot({ path: path.join(OUT, "failure.png"), fullPage: true }).catch(() => {});
      console.error(`at ${current.url()}:\n${(await current.locator("body").innerText().catch(() => "")).slice(0, 2000)}`);
    }
    throw e;
  } finally {
    await browser.close();
  }
}

main().then(
  () => console.log("browser test: all checks passed"),
  (e) => {
    console.error(`browser test FAILED: ${e.stack || e}`);
    process.exit(1);
  },
);
