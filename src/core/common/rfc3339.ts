/**
 * An RFC 3339 time read as ai-memory 1.0 reads a signed `created_at` for `restore --latest`:
 * chrono's `DateTime::parse_from_rfc3339` (chrono 0.4 `format/parse.rs` `parse_rfc3339`).
 *
 * Date.parse is not that reader: it takes a date alone, a time without an offset (as LOCAL
 * time, so two machines order the same folder differently), RFC 2822 dates, `24:00:00`, an
 * offset without its colon, and rolls 2026-02-30 over to March 2; chrono refuses all of them
 * (so 1.0's --latest stops with "not RFC 3339"). It also drops everything past milliseconds,
 * which chrono compares down to the nanosecond, and refuses a leap second (`:60`), which
 * chrono accepts.
 *
 * chrono's grammar: `YYYY-MM-DD` (exactly 4-2-2 digits), `T`, `t` or a space, `hh:mm:ss`,
 * optionally `.` and one or more digits (the first 9 kept, the rest skipped), then `Z`, `z`
 * or a sign (`+`, `-`, or U+2212) with `hh:mm` (minutes 00–59, at most ±23:59), and nothing
 * after. The date must exist; hours 00–23, minutes 00–59, seconds 00–60 (60: a leap second,
 * ordered after :59.999999999 and before the next minute).
 */

/** A UTC instant: seconds since the epoch and nanoseconds (≥ 1e9 only in a leap second). */
export interface Instant {
  seconds: number;
  nanos: number;
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+\-\u2212])(\d{2}):([0-5]\d))$/;

/** Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's days_from_civil). */
function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function daysInMonth(y: number, m: number): number {
  if (m === 2) return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(m) ? 30 : 31;
}

/** chrono's parse_from_rfc3339; undefined where it refuses the text. */
export function parseRfc3339(text: string): Instant | undefined {
  const g = RFC3339.exec(text);
  if (!g) return undefined;
  const [year, month, day, hour, minute, second] = g.slice(1, 7).map(Number);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
  if (hour > 23 || minute > 59 || second > 60) return undefined;
  let offset = 0;
  if (g[9]) {
    const oh = Number(g[10]);
    const om = Number(g[11]);
    if (oh > 23) return undefined; // RFC 3339's offsets run to ±23:59 (chrono checks it)
    offset = (g[9] === '+' ? 1 : -1) * (oh * 3600 + om * 60);
  }
  const nanos = (g[7] ? Number(g[7].slice(0, 9).padEnd(9, '0')) : 0) + (second === 60 ? 1e9 : 0);
  const seconds = daysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + Math.min(second, 59) - offset;
  return { seconds, nanos };
}

export function compareInstants(a: Instant, b: Instant): number {
  return a.seconds - b.seconds || a.nanos - b.nanos;
}

/** Milliseconds since the epoch (a leap second counts as :59.999). */
export function instantMs(t: Instant): number {
  return t.seconds * 1000 + Math.min(999, Math.floor(t.nanos / 1e6));
}
