/* The AffTok dashboard: reads GET /v1/stats and GET /v1/conversions with the API key the
   user pasted, and shows what the API returns for it (a measure the key may not see is
   absent from the answers, so it is absent from the page).

   No framework and no build step: ES modules, and uPlot (vendored, see vendor/README.md)
   for the chart. Every number element has a data-testid and carries the API's raw value
   in data-value, so a test can compare the page with the API. */

import { apiClient } from "./api.js";
import { Chart } from "./chart.js";
import { formatInt, formatRate } from "./format.js";
import { Names } from "./names.js";
import { TOPS, clearTable, el, renderConversions, renderMoney, renderTop } from "./tables.js";
import { browserZone, rangeQuery, zoneNames } from "./zones.js";

const KEY_STORAGE = "afftok.apiKey";
const REFRESH_MS = 5000;
const TOP_LIMIT = 10;
const RANGE_DAYS = { today: 1, "7d": 7, "30d": 30 };

const $ = (selector) => document.querySelector(selector);
const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);

const state = {
  session: null, // { key, get, names } while signed in
  range: "7d",
  tz: browserZone(),
  generation: 0, // bumped on sign-in and sign-out: answers to an older session are dropped
  inFlight: false,
  again: false,
  timer: null,
};
const chart = new Chart(byTestId("chart"));

// ---- rendering ------------------------------------------------------------------------

function showNumber(testid, value, format) {
  const node = byTestId(testid);
  node.closest(".card").hidden = value === undefined;
  node.textContent = value === undefined ? "" : format(value);
  node.dataset.value = value == null ? "" : String(value);
}

function renderHeadline(totals) {
  const conversions = totals.conversions || {};
  showNumber("headline-clicks", totals.clicks, formatInt);
  showNumber("headline-unique-clicks", totals.unique_clicks, formatInt);
  showNumber("headline-conversions-approved", conversions.approved, formatInt);
  showNumber("headline-conversions-total", conversions.total, formatInt);
  showNumber("headline-conversion-rate", totals.conversion_rate, formatRate);
}

// The API leaves out what a key may not see; name the view after what it answered.
function renderView(measures) {
  const view = byTestId("view");
  const has = (m) => measures.includes(m);
  view.textContent = has("revenue") && has("payout") ? "Organization view"
    : has("revenue") ? "Advertiser view" : has("payout") ? "Affiliate view" : "Counts only";
  view.hidden = false;
}

function renderSeries(page, query) {
  renderView(page.query.measures);
  renderHeadline(page.totals);
  $("#money").hidden = !renderMoney(byTestId("money"), page.totals.money || [], page.query.measures);
  chart.draw(page, query);
  $("#chart-bucket").textContent = query.bucket === "day" ? "per day" : "per hour";
  Object.assign($("#report").dataset, { from: query.from, to: query.to, tz: query.tz, bucket: query.bucket });
}

function renderStatus(failures) {
  const status = byTestId("refresh-status");
  const at = new Date().toLocaleTimeString();
  if (failures.length) {
    status.textContent = `Refresh failed at ${at}: ${failures[0].message}. Showing the last numbers.`;
    status.dataset.state = "error";
  } else {
    status.textContent = `Updated ${at}; refreshes every ${REFRESH_MS / 1000} s.`;
    status.dataset.state = "ok";
  }
}

function clearReport() {
  chart.clear();
  for (const node of document.querySelectorAll('[data-testid^="headline-"]')) {
    node.textContent = "–";
    delete node.dataset.value;
  }
  for (const table of document.querySelectorAll("#report table")) clearTable(table);
  for (const section of document.querySelectorAll("#report [data-top], #conversions-panel")) section.hidden = false;
  const report = $("#report");
  for (const name of ["from", "to", "tz", "bucket"]) delete report.dataset[name];
  const status = byTestId("refresh-status");
  status.textContent = "Loading…";
  delete status.dataset.state;
}

// A 403 means this key may not see that part at all: hide it. Any other failure keeps
// the last numbers and is reported.
function show(result, section, render, failures) {
  if (result.status === "fulfilled") {
    section.hidden = false;
    render(result.value);
  } else if (result.reason.status === 403) {
    section.hidden = true;
  } else {
    failures.push(result.reason);
  }
}

// ---- one refresh ----------------------------------------------------------------------

async function refresh(session, generation) {
  const query = rangeQuery(RANGE_DAYS[state.range], state.tz);
  const range = { from: query.from, to: query.to, tz: query.tz };
  const requests = {
    series: session.get("/v1/stats", { ...range, group_by: query.bucket, limit: 100 }),
    conversions: session.get("/v1/conversions", { limit: 10 }),
  };
  for (const top of TOPS) {
    const params = { ...range, group_by: top.dimension, sort: "-clicks", limit: TOP_LIMIT };
    requests[top.dimension] = session.get("/v1/stats", params);
  }
  const settled = await Promise.allSettled(Object.values(requests));
  if (generation !== state.generation) return;
  const unauthorized = settled.find((r) => r.status === "rejected" && r.reason.status === 401);
  if (unauthorized) {
    signOut(unauthorized.reason.message);
    return;
  }
  const results = Object.fromEntries(Object.keys(requests).map((name, i) => [name, settled[i]]));
  const rowsOf = (name) => (results[name].status === "fulfilled" ? results[name].value.data : []);
  const offerIds = rowsOf("offer").map((r) => r.key.offer_id).concat(rowsOf("conversions").map((c) => c.offer_id));
  await Promise.all([
    session.names.learn("offer", offerIds),
    session.names.learn("affiliate", rowsOf("affiliate").map((r) => r.key.affiliate_id)),
  ]);
  if (generation !== state.generation) return;

  const failures = [];
  if (results.series.status === "fulfilled") renderSeries(results.series.value, query);
  else failures.push(results.series.reason);
  for (const top of TOPS) {
    show(results[top.dimension], $(`[data-top="${top.dimension}"]`),
      (page) => renderTop(byTestId(top.testid), top, page, session.names), failures);
  }
  show(results.conversions, $("#conversions-panel"),
    (page) => renderConversions(byTestId("recent-conversions"), page, session.names, query.tz), failures);
  renderStatus(failures);
}

// ---- the refresh loop: one set of requests at a time ------------------------------------

function refreshSoon() {
  clearTimeout(state.timer);
  if (state.inFlight) {
    state.again = true; // the running refresh is followed at once by another
    return;
  }
  run();
}

async function run() {
  state.inFlight = true;
  state.again = false;
  const generation = state.generation;
  try {
    if (state.session && !document.hidden) await refresh(state.session, generation);
  } catch (error) {
    if (generation === state.generation) renderStatus([error]);
  } finally {
    state.inFlight = false;
  }
  if (!state.session) return;
  if (state.again) run();
  else state.timer = setTimeout(run, REFRESH_MS);
}

// ---- signing in and out -----------------------------------------------------------------

function startSession(key) {
  const get = apiClient(key);
  state.session = { get, names: new Names(get) };
  state.generation += 1;
  $("#sign-in").hidden = true;
  $("#controls").hidden = false;
  $("#report").hidden = false;
  clearReport();
  refreshSoon();
}

function signOut(message) {
  sessionStorage.removeItem(KEY_STORAGE);
  state.session = null;
  state.generation += 1;
  state.again = false;
  clearTimeout(state.timer);
  clearReport();
  $("#report").hidden = true;
  $("#controls").hidden = true;
  byTestId("view").hidden = true;
  $("#sign-in").hidden = false;
  const error = $("#sign-in-error");
  error.textContent = message || "";
  error.hidden = !message;
  const input = $("#api-key");
  input.value = "";
  input.focus();
}

function setUp() {
  const select = $("#tz");
  select.replaceChildren(...zoneNames().map((name) => el("option", { value: name }, name)));
  select.value = state.tz;
  select.addEventListener("change", () => {
    state.tz = select.value;
    refreshSoon();
  });
  for (const button of document.querySelectorAll("[data-range]")) {
    button.addEventListener("click", () => {
      state.range = button.dataset.range;
      for (const other of document.querySelectorAll("[data-range]")) {
        other.setAttribute("aria-pressed", String(other === button));
      }
      refreshSoon();
    });
  }
  $("#sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("#api-key").value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_STORAGE, key);
    startSession(key);
  });
  $("#sign-out").addEventListener("click", () => signOut(""));
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && state.session) refreshSoon();
  });
  window.addEventListener("resize", () => chart.resize());
  const saved = sessionStorage.getItem(KEY_STORAGE);
  if (saved) startSession(saved);
  else signOut("");
}

setUp();
