/* The page's tables: money per currency, the top offers, affiliates and countries, the
   latest conversions. A column is shown only for a measure the API answered with; every
   cell carries a data-testid and the API's raw value in data-value. */

import { countryName, formatEpc, formatInt, formatMoney, formatRate, formatTime } from "./format.js";

const MONEY_MEASURES = [["revenue", "Revenue"], ["payout", "Payout"], ["profit", "Profit"]];

export const TOPS = [
  { dimension: "offer", key: "offer_id", attribute: "data-offer-id", testid: "top-offers", title: "Offer",
    label: (id, names) => names.of("offer", id, "(no offer)") },
  { dimension: "affiliate", key: "affiliate_id", attribute: "data-affiliate-id", testid: "top-affiliates",
    title: "Affiliate", label: (id, names) => names.of("affiliate", id, "(no affiliate)") },
  { dimension: "country", key: "country", attribute: "data-country", testid: "top-countries", title: "Country",
    label: (code) => countryName(code) },
];

export function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value != null) node.setAttribute(name, value);
  }
  node.append(...children); // strings become text nodes, never markup
  return node;
}

// columns: [{ title, numeric, testid: string | (row) => string, cell: (row) => [text, value] }]
function fillTable(table, columns, rows, rowAttributes, emptyText) {
  const heads = columns.map((c) => el("th", { class: c.numeric ? "num" : null, scope: "col" }, c.title));
  table.tHead.replaceChildren(el("tr", null, ...heads));
  const body = rows.map((row) => el("tr", rowAttributes(row), ...columns.map((c) => {
    const [text, value] = c.cell(row);
    const testid = typeof c.testid === "function" ? c.testid(row) : c.testid;
    return el("td", { class: c.numeric ? "num" : null, "data-testid": testid, "data-value": value }, text);
  })));
  if (!rows.length) body.push(el("tr", { class: "empty" }, el("td", { colspan: columns.length }, emptyText)));
  table.tBodies[0].replaceChildren(...body);
}

export function clearTable(table) {
  table.tHead.replaceChildren();
  table.tBodies[0].replaceChildren();
}

// The totals' money, one row per currency; false when the key sees no money measure.
export function renderMoney(table, money, measures) {
  const shown = MONEY_MEASURES.concat([["epc", "EPC"]]).filter(([measure]) => measures.includes(measure));
  const cell = (measure) => (m) => (measure === "epc" ? [formatEpc(m.epc, m.currency), m.epc]
    : [formatMoney(m[`${measure}_minor`], m.currency), m[`${measure}_minor`]]);
  const columns = [{ title: "Currency", testid: "currency", cell: (m) => [m.currency, m.currency] }].concat(
    shown.map(([measure, title]) => ({
      title, numeric: true, testid: (m) => `money-${m.currency}-${measure}`, cell: cell(measure),
    })));
  fillTable(table, columns, money, (m) => ({ "data-testid": `money-${m.currency}`, "data-currency": m.currency }),
    "No money in this range.");
  return shown.length > 0;
}

// One measure's amounts in one row, per currency: "$25.00 · €9.00"; data-value "EUR:900 USD:2500".
function rowMoney(measure) {
  return (row) => {
    const money = (row.money || []).filter((m) => m[`${measure}_minor`] !== undefined);
    if (!money.length) return ["–", ""];
    return [money.map((m) => formatMoney(m[`${measure}_minor`], m.currency)).join(" · "),
      money.map((m) => `${m.currency}:${m[`${measure}_minor`]}`).join(" ")];
  };
}

function statsColumns(measures) {
  const counts = [
    { measure: "clicks", title: "Clicks", testid: "clicks", cell: (r) => [formatInt(r.clicks), r.clicks] },
    { measure: "unique_clicks", title: "Unique", testid: "unique-clicks",
      cell: (r) => [formatInt(r.unique_clicks), r.unique_clicks] },
    { measure: "conversions", title: "Approved", testid: "conversions-approved",
      cell: (r) => [formatInt(r.conversions.approved), r.conversions.approved] },
    { measure: "conversions", title: "Conversions", testid: "conversions-total",
      cell: (r) => [formatInt(r.conversions.total), r.conversions.total] },
    { measure: "conversion_rate", title: "CR", testid: "conversion-rate",
      cell: (r) => [formatRate(r.conversion_rate), r.conversion_rate == null ? "" : r.conversion_rate] },
  ];
  const money = MONEY_MEASURES.map(([measure, title]) => ({
    measure, title, testid: measure, cell: rowMoney(measure),
  }));
  return counts.concat(money).filter((c) => measures.includes(c.measure)).map((c) => ({ ...c, numeric: true }));
}

export function renderTop(table, top, page, names) {
  const label = { title: top.title, testid: "label",
    cell: (r) => [top.label(r.key[top.key], names), r.key[top.key] || ""] };
  fillTable(table, [label].concat(statsColumns(page.query.measures)), page.data,
    (r) => ({ [top.attribute]: r.key[top.key] || "" }), "Nothing in this range.");
}

// The reason, unless it only repeats a fraud flag shown in its own column.
function statusText(conversion) {
  const reason = conversion.reason;
  return reason && !conversion.fraud_flags.includes(reason) ? `${conversion.status} (${reason})` : conversion.status;
}

export function renderConversions(table, page, names, tz) {
  const rows = page.data;
  const columns = [
    { title: "Received", testid: "received-at", cell: (c) => [formatTime(c.received_at, tz), c.received_at] },
    { title: "Offer", testid: "offer",
      cell: (c) => [names.of("offer", c.offer_id, "(no click matched)"), c.offer_id || ""] },
    { title: "Status", testid: "status", cell: (c) => [statusText(c), c.status] },
  ];
  for (const [measure, title] of MONEY_MEASURES.slice(0, 2)) {
    if (rows.some((c) => c[`${measure}_minor`] !== undefined)) {
      columns.push({ title, numeric: true, testid: measure, cell: (c) => (c.currency == null ? ["–", ""]
        : [formatMoney(c[`${measure}_minor`], c.currency), `${c.currency}:${c[`${measure}_minor`]}`]) });
    }
  }
  columns.push({ title: "Fraud flags", testid: "fraud-flags",
    cell: (c) => [c.fraud_flags.length ? c.fraud_flags.join(", ") : "–", c.fraud_flags.join(",")] });
  fillTable(table, columns, rows, (c) => ({ "data-conversion-id": c.id, "data-status": c.status }),
    "No conversions yet.");
}
