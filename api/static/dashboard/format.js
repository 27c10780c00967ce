/* Numbers, money and times, written the way the reader's locale writes them. */

const integerFormat = new Intl.NumberFormat();
const percentFormat = new Intl.NumberFormat(undefined, {
  style: "percent", minimumFractionDigits: 2, maximumFractionDigits: 2,
});
const exponents = new Map();
let regionNames = null;
try {
  regionNames = new Intl.DisplayNames(undefined, { type: "region" });
} catch (error) {
  regionNames = null; // an old browser: show the codes
}

export const formatInt = (n) => integerFormat.format(n);

// The API's rates are decimal strings ("0.160000"); null when there were no clicks.
export const formatRate = (rate) => (rate == null ? "–" : percentFormat.format(rate));

// The currency's exponent (2 for USD, 0 for JPY, 3 for KWD), as Intl knows it.
function exponentOf(currency) {
  if (!exponents.has(currency)) {
    let digits = 2;
    try {
      digits = new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
    } catch (error) {
      digits = 2; // a code this browser does not know
    }
    exponents.set(currency, digits);
  }
  return exponents.get(currency);
}

function currencyFormat(currency, places) {
  return new Intl.NumberFormat(undefined, {
    style: "currency", currency, minimumFractionDigits: places, maximumFractionDigits: places,
  });
}

// Minor units as a decimal string, so an amount never passes through a binary fraction.
function decimalOf(minor, exponent) {
  const digits = String(Math.abs(minor)).padStart(exponent + 1, "0");
  const unsigned = exponent ? `${digits.slice(0, -exponent)}.${digits.slice(-exponent)}` : digits;
  return (minor < 0 ? "-" : "") + unsigned;
}

export function formatMoney(minor, currency) {
  const exponent = exponentOf(currency);
  try {
    return currencyFormat(currency, exponent).format(decimalOf(minor, exponent));
  } catch (error) {
    return `${currency} ${decimalOf(minor, exponent)}`;
  }
}

// Earnings per click: the API gives major units with the exponent + 2 places.
export function formatEpc(epc, currency) {
  if (epc == null) return "–";
  try {
    return currencyFormat(currency, exponentOf(currency) + 2).format(epc);
  } catch (error) {
    return `${currency} ${epc}`;
  }
}

export function formatTime(iso, tz) {
  return new Date(iso).toLocaleString(undefined, { timeZone: tz, dateStyle: "medium", timeStyle: "medium" });
}

export function countryName(code) {
  if (code == null) return "Unknown";
  try {
    return `${regionNames ? regionNames.of(code) : code} (${code})`;
  } catch (error) {
    return code;
  }
}
