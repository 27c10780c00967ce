/* Clicks and approved conversions over the range, per day or per hour, drawn by uPlot
   (the vendored global). The chart's element carries what it drew in data-* attributes. */

import { addDays } from "./zones.js";
import { formatInt } from "./format.js";

const HEIGHT = 260;
const HOUR_S = 3600;
const DAY_S = 86400;
const TIME_STEPS = {
  hour: [HOUR_S, 2 * HOUR_S, 3 * HOUR_S, 6 * HOUR_S, 12 * HOUR_S],
  day: [DAY_S, 2 * DAY_S, 7 * DAY_S, 14 * DAY_S, 28 * DAY_S],
};
const WHOLE_STEPS = [];
for (let power = 1; power <= 1e12; power *= 10) WHOLE_STEPS.push(power, 2 * power, 5 * power);

// Every bucket of the range, empty ones as zeros. Days are placed at the UTC midnight of
// their local date and labelled in UTC, so a day's label is its date in the chosen zone
// whatever the browser's zone; hours are real instants labelled in the chosen zone.
function seriesPoints(page, query) {
  const points = new Map(); // x (unix seconds) -> [clicks, approved conversions]
  const dayX = (day) => Date.parse(`${day}T00:00:00Z`) / 1000;
  if (query.bucket === "day") {
    for (let day = query.from; day <= query.to; day = addDays(day, 1)) points.set(dayX(day), [0, 0]);
  } else {
    const end = Date.parse(page.query.to) / 1000;
    for (let x = Date.parse(page.query.from) / 1000; x < end; x += HOUR_S) points.set(x, [0, 0]);
  }
  for (const row of page.data) {
    const x = query.bucket === "day" ? dayX(row.key.day) : Date.parse(row.key.hour) / 1000;
    points.set(x, [row.clicks || 0, row.conversions ? row.conversions.approved : 0]);
  }
  const xs = [...points.keys()].sort((a, b) => a - b);
  return [xs, xs.map((x) => points.get(x)[0]), xs.map((x) => points.get(x)[1])];
}

function chartOptions(width, bucket, tz) {
  const zone = bucket === "day" ? "UTC" : tz; // see seriesPoints
  const tick = new Intl.DateTimeFormat(undefined, bucket === "day"
    ? { timeZone: zone, month: "short", day: "numeric" } : { timeZone: zone, hour: "numeric" });
  const legend = new Intl.DateTimeFormat(undefined, bucket === "day"
    ? { timeZone: zone, dateStyle: "medium" } : { timeZone: zone, dateStyle: "medium", timeStyle: "short" });
  const at = (ts) => new Date(ts * 1000);
  const fromZero = (u, min, max) => [0, Math.max(1, max)];
  const count = (u, value) => (value == null ? "–" : formatInt(value));
  const counts = (u, splits) => splits.map(formatInt);
  return {
    width, height: HEIGHT,
    tzDate: (ts) => uPlot.tzDate(at(ts), zone),
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true }, y: { range: fromZero }, conversions: { range: fromZero } },
    series: [
      { label: bucket === "day" ? "Day" : "Hour", value: (u, ts) => (ts == null ? "–" : legend.format(at(ts))) },
      { label: "Clicks", stroke: "#2563eb", fill: "rgba(37, 99, 235, 0.08)", width: 2, value: count },
      { label: "Approved conversions", scale: "conversions", stroke: "#16a34a", width: 2, value: count },
    ],
    axes: [
      { incrs: TIME_STEPS[bucket], space: 60, values: (u, splits) => splits.map((ts) => tick.format(at(ts))) },
      { incrs: WHOLE_STEPS, values: counts },
      { scale: "conversions", side: 1, grid: { show: false }, incrs: WHOLE_STEPS, values: counts },
    ],
  };
}

export class Chart {
  constructor(box) {
    this.box = box;
    this.plot = null;
    this.shape = "";
  }

  draw(page, query) {
    const data = seriesPoints(page, query);
    const shape = `${query.bucket} ${query.tz}`;
    if (this.plot && this.shape === shape) {
      this.plot.setData(data);
    } else {
      this.clear();
      this.plot = new uPlot(chartOptions(this.width(), query.bucket, query.tz), data, this.box);
      this.shape = shape;
    }
    const sum = (values) => values.reduce((a, b) => a + b, 0);
    Object.assign(this.box.dataset, {
      bucket: query.bucket, points: data[0].length, clicks: sum(data[1]), approved: sum(data[2]),
    });
  }

  resize() {
    if (this.plot) this.plot.setSize({ width: this.width(), height: HEIGHT });
  }

  clear() {
    if (this.plot) this.plot.destroy();
    this.plot = null;
    this.shape = "";
    for (const name of ["bucket", "points", "clicks", "approved"]) delete this.box.dataset[name];
  }

  width() {
    return Math.max(300, this.box.clientWidth);
  }
}
