// Opens Gregor's console in headless chromium, waits until it has rendered what the test
// expects to find, and prints one JSON object of what the page shows (tables, charts, errors),
// after saving a screenshot. Settings come as one JSON argument:
//   {url, chromium, screenshot, topic, group, minUpdates, timeoutMs}
// where group may be null: then the page need not show one, and "group" is null.
// playwright-core comes from NODE_PATH (test_console.py installs it into a cache dir).
"use strict";

const { chromium } = require("playwright-core");

async function main() {
  const cfg = JSON.parse(process.argv[2]);
  const browser = await chromium.launch({ executablePath: cfg.chromium, headless: true, timeout: cfg.timeoutMs });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors = [];
    page.on("pageerror", e => errors.push(`pageerror: ${e.message}`));
    page.on("console", m => m.type() === "error" && errors.push(`console: ${m.text()}`));
    page.on("requestfailed", r => errors.push(`request failed: ${r.url()} ${r.failure() && r.failure().errorText}`));
    await page.goto(cfg.url, { timeout: cfg.timeoutMs });
    // Enough polls for the rate charts to have points, and the topic and group on the page.
    await page.waitForFunction(({ topic, group, minUpdates }) =>
      Number(document.body.dataset.updates || 0) >= minUpdates
        && document.querySelector(`.topic[data-topic="${topic}"]`)
        && (group == null || document.querySelector(`.group[data-group="${group}"] tbody tr`)),
      { topic: cfg.topic, group: cfg.group, minUpdates: cfg.minUpdates }, { timeout: cfg.timeoutMs, polling: 200 });

    const shown = await page.evaluate(({ topic, group }) => {
      const text = (row, selector) => row.querySelector(selector).textContent;
      const cells = row => [...row.querySelectorAll("td")].map(td => td.textContent);
      // Pixels of a chart's first series colour (#2f6fdf), and pixels drawn at all.
      const pixels = id => {
        const canvas = document.getElementById(id);
        const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
        let painted = 0, series = 0;
        for (let i = 0; i < data.length; i += 4) {
          if (data[i + 3] > 0) painted++;
          if (data[i + 3] > 200 && Math.abs(data[i] - 0x2f) < 24 && Math.abs(data[i + 1] - 0x6f) < 24 && Math.abs(data[i + 2] - 0xdf) < 24) series++;
        }
        return { points: Number(canvas.dataset.points), painted, series };
      };
      /* global chartData */
      const maxOf = series => Math.max(0, ...(series || []).map(p => p[1]));
      return {
        status: document.getElementById("status").textContent,
        brokers: [...document.querySelectorAll("#brokers tbody tr")].map(cells),
        partitions: [...document.querySelectorAll(`tr[data-topic="${topic}"][data-partition]`)].filter(r => !r.dataset.group).map(r => ({
          partition: Number(r.dataset.partition),
          leader: text(r, ".leader"),
          replicas: text(r, ".replicas"),
          isr: text(r, ".isr"),
          isrMarked: r.querySelector(".isr").classList.contains("bad"),
          logStart: text(r, ".log-start"),
          logEnd: text(r, ".log-end"),
        })),
        group: group == null ? null : {
          heading: document.querySelector(`.group[data-group="${group}"] h3`).textContent,
          totalLag: document.querySelector(`.group[data-group="${group}"] .total-lag`).textContent,
          members: [...document.querySelectorAll(`.group[data-group="${group}"] .members li`)].map(li => li.textContent),
          offsets: [...document.querySelectorAll(`tr[data-group="${group}"]`)].map(r => ({
            topic: r.dataset.topic, partition: Number(r.dataset.partition), committed: text(r, ".committed"), lag: text(r, ".lag"), owner: text(r, ".owner"),
          })),
        },
        charts: { bytes: pixels("chart-bytes"), records: pixels("chart-records"), lag: pixels("chart-lag") },
        maxRates: { bytesIn: maxOf(chartData.bytes.in), recordsIn: maxOf(chartData.records.in) },
      };
    }, { topic: cfg.topic, group: cfg.group });
    await page.screenshot({ path: cfg.screenshot, fullPage: true });
    console.log(JSON.stringify({ ...shown, errors }));
  } finally {
    await browser.close();
  }
}

main().catch(e => {
  console.error(e && e.stack || String(e));
  process.exit(1);
});
