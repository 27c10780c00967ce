/* Time zones and local dates: what the range picker sends to the API as from, to and tz. */

// ICU, so Intl, still spells some zones the way IANA used to; offer today's names (the
// API knows both, and people look for these).
const RENAMED_ZONES = {
  "Africa/Asmera": "Africa/Asmara", "America/Buenos_Aires": "America/Argentina/Buenos_Aires",
  "America/Catamarca": "America/Argentina/Catamarca", "America/Coral_Harbour": "America/Atikokan",
  "America/Cordoba": "America/Argentina/Cordoba", "America/Godthab": "America/Nuuk",
  "America/Indianapolis": "America/Indiana/Indianapolis", "America/Jujuy": "America/Argentina/Jujuy",
  "America/Louisville": "America/Kentucky/Louisville", "America/Mendoza": "America/Argentina/Mendoza",
  "Asia/Calcutta": "Asia/Kolkata", "Asia/Katmandu": "Asia/Kathmandu", "Asia/Rangoon": "Asia/Yangon",
  "Asia/Saigon": "Asia/Ho_Chi_Minh", "Atlantic/Faeroe": "Atlantic/Faroe", "Europe/Kiev": "Europe/Kyiv",
  "Pacific/Enderbury": "Pacific/Kanton", "Pacific/Ponape": "Pacific/Pohnpei", "Pacific/Truk": "Pacific/Chuuk",
};

const currentName = (zone) => RENAMED_ZONES[zone] || zone;

export function browserZone() {
  return currentName(Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC");
}

export function zoneNames() {
  const listed = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  const names = new Set(listed.map(currentName));
  names.add("UTC");
  names.add(browserZone());
  return [...names].sort();
}

export function todayIn(tz) {
  const format = new Intl.DateTimeFormat("en-US", { timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit" });
  const parts = Object.fromEntries(format.formatToParts(new Date()).map((p) => [p.type, p.value]));
  return `${parts.year}-${parts.month}-${parts.day}`;
}

export function addDays(isoDate, days) {
  const date = new Date(`${isoDate}T00:00:00Z`);
  date.setUTCDate(date.getUTCDate() + days);
  return date.toISOString().slice(0, 10);
}

// A range of local days ending today in ``tz``; one day is drawn by hour, more by day.
export function rangeQuery(days, tz) {
  const to = todayIn(tz);
  return { from: addDays(to, 1 - days), to, tz, bucket: days === 1 ? "hour" : "day" };
}
