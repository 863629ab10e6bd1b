// Drives the execution browser in Debian's Chromium (playwright-core) and prints what a user
// would see as one JSON report on stdout; tests/it/ui.rs starts the demo, runs this and judges
// the report. Usage: node browser.mjs BASE_URL [SCREENSHOT_DIR]
import { chromium } from "playwright-core";

const base = process.argv[2];
const shots = process.argv[3] || null;
if (!base) {
  console.error("usage: node browser.mjs BASE_URL [SCREENSHOT_DIR]");
  process.exit(2);
}
const origin = new URL(base).origin;
const report = { outside: [], consoleErrors: [] };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  page.on("request", (r) => {
    const u = r.url();
    if (!u.startsWith(origin) && !u.startsWith("data:")) report.outside.push(u);
  });
  page.on("console", (m) => { if (m.type() === "error") report.consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => report.consoleErrors.push(String(e)));

  await page.goto(base);
  // The list fills.
  await page.waitForSelector("tr[data-arn]", { timeout: 30000 });
  const snapshot = () => page.$$eval("tr[data-arn]", (rows) => rows.map((r) => `${r.dataset.arn} ${r.dataset.status}`).sort().join("\n"));
  const first = await snapshot();
  report.firstRows = first.split("\n").length;
  // It refreshes without a reload: the "updated" time moves, and (given time) a row is added or
  // changes status.
  const live = await page.textContent("#live");
  await page.waitForFunction((before) => document.querySelector("#live").textContent !== before, live, { timeout: 30000, polling: 200 });
  report.liveRefreshed = true;
  try {
    await page.waitForFunction((before) => {
      const now = [...document.querySelectorAll("tr[data-arn]")].map((r) => `${r.dataset.arn} ${r.dataset.status}`).sort().join("\n");
      return now !== before;
    }, first, { timeout: 45000, polling: 500 });
    report.rowsChanged = true;
  } catch (_) {
    report.rowsChanged = false;
  }
  report.updatedRows = (await snapshot()).split("\n").length;
  report.navigations = 1;
  if (shots) await page.screenshot({ path: `${shots}/ui-executions.png` });

  // Filtering by status.
  await page.selectOption("select[name=status]", "FAILED");
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll("tr[data-arn]")];
    return rows.length > 0 && rows.every((r) => r.dataset.status === "FAILED");
  }, null, { timeout: 60000, polling: 500 });
  report.failedRows = await page.$$eval("tr[data-arn]", (rows) => rows.map((r) => ({ arn: r.dataset.arn, status: r.dataset.status })));
  // What the API says at the same moment, from inside the page.
  report.failedInApi = await page.evaluate(async () => {
    const r = await fetch("v1/executions");
    return (await r.json()).Executions.filter((x) => x.Status === "FAILED").length;
  });
  report.failedShown = await page.$$eval("tr[data-arn]", (rows) => rows.length);

  // One failed execution: its timeline and its error.
  const arn = report.failedRows[0].arn;
  report.arn = arn;
  await page.click(`tr[data-arn="${arn.replace(/"/g, '\\"')}"] a`);
  await page.waitForSelector("rect[data-span-id]", { timeout: 30000 });
  await page.waitForFunction(() => !document.querySelector("#exec-error").hidden, null, { timeout: 30000 });
  report.bars = await page.$$eval("rect[data-span-id]", (bars) => bars.map((b) => ({ id: b.dataset.spanId, name: b.dataset.spanName, cls: b.getAttribute("class") })));
  report.errorText = await page.textContent("#exec-error");
  report.operationsRows = await page.$$eval("#operations tbody tr", (rows) => rows.length);
  // Selecting a failed bar shows its error.
  const failedBar = report.bars.find((b) => b.cls.includes("error") && b.name !== "Workflow");
  if (failedBar) {
    await page.click(`rect[data-span-id="${failedBar.id}"]`);
    await page.waitForSelector("#detail h3");
    report.selected = { name: await page.textContent("#detail h3"), exception: await page.textContent("#detail").then((t) => t.includes("exception") || t.includes("Error")) };
  }
  await page.evaluate(() => window.scrollTo(0, 0));
  if (shots) await page.screenshot({ path: `${shots}/ui-execution.png`, fullPage: false });
  // Zoom into a range by dragging across the bars.
  const box = await page.locator("#timeline svg").boundingBox();
  const before = await page.$$eval("text.ticktext", (t) => t.map((x) => x.textContent).join(","));
  await page.mouse.move(box.x + box.width * 0.55, box.y + 40);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.75, box.y + 60, { steps: 5 });
  await page.mouse.up();
  const ticks = () => page.$$eval("text.ticktext", (t) => t.map((x) => x.textContent).join(","));
  report.zoomChangedAxis = before !== (await ticks());
  // "Whole execution" draws the whole range again.
  await page.click("#zoom-reset");
  report.zoomResetRestored = before === (await ticks());

  // Aggregates.
  await page.goto(`${base}#/aggregates`);
  await page.selectOption("#agg-filters select[name=window]", "all");
  await page.waitForSelector("#agg-cards .card[data-key=total]", { timeout: 30000 });
  report.aggregates = await page.evaluate(async () => (await (await fetch("v1/ui/aggregates?window=all")).json()).Aggregate);
  report.aggregateTotal = Number(await page.textContent("#agg-cards .card[data-key=total] b"));
  if (shots) await page.screenshot({ path: `${shots}/ui-aggregates.png` });
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
