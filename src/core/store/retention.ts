/**
 * Tiered retention with restic's `forget` semantics (internal/restic/snapshot_policy.go,
 * ApplyPolicy), written from its rules:
 *
 * - Snapshots are taken newest first. Each bucket (last, hourly, daily, weekly, monthly,
 *   yearly) keeps the newest snapshot of every period it has not kept one for yet, until its
 *   count is used up. The buckets are independent: a snapshot is kept when any bucket keeps it
 *   (OR), and it uses up one count in every bucket that keeps it.
 * - A count of -1 means "unlimited" (restic's `--keep-daily -1`); 0 (or absent) turns the
 *   bucket off.
 * - The oldest snapshot is kept by every bucket that still has counts left even when its
 *   period already has a kept snapshot: restic does this to keep the longest history the
 *   counts allow.
 * - Periods are in local time (or the given IANA zone); weeks are ISO weeks (Monday to
 *   Sunday, the week-year of ISO 8601: 2026-12-31 is in 2026-W53, 2027-01-03 too).
 * - A snapshot's time is the one in its name.
 * - An empty policy keeps everything (restic: "policy is empty").
 *
 * Unlike restic, `protect` names snapshots kept whatever the policy (the one just written,
 * the newest, those pinned by a restore); they are kept with that reason, and they take
 * their place in the tiers as any snapshot does (the newest is also "last 1 of 48").
 */

export type Bucket = 'last' | 'hourly' | 'daily' | 'weekly' | 'monthly' | 'yearly';
export const BUCKETS: readonly Bucket[] = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'];

/** Counts per bucket: N > 0 keeps N periods, -1 keeps every period, 0/undefined is off. */
export type RetentionPolicy = Partial<Record<Bucket, number>>;

export interface RetentionItem {
  name: string;
  /** UTC ms (from the name). */
  time: number;
  seq?: number;
  /**
   * Dated later than now (catalog.ts FUTURE_SKEW_MS): a clock that was wrong, a file copied
   * in. It never outranks a snapshot taken now: it ranks after all others (so it is the first
   * to go when retention is due) — issue 8's rule, which restic does not have.
   */
  future?: boolean;
}

export interface KeepReason {
  bucket: Bucket | 'protected';
  /** Which count of the bucket this snapshot used (1 = the newest kept by it). */
  n?: number;
  /** The bucket's count (-1 = unlimited). */
  of?: number;
  /** The period, e.g. "2026-11-29 14h", "2026-11-29", "2026-W48", "2026-10", "2026". */
  period?: string;
  /** restic's oldest-snapshot rule kept it (its period already had a kept snapshot). */
  oldest?: boolean;
  /** For 'protected': why ("just written", "newest", "pinned by a restore"). */
  why?: string;
  /** Human text: "hourly 3 of 48 (2026-11-29 14h)", "monthly (all) (2026-10)". */
  text: string;
}

export interface RetentionDecision<T extends RetentionItem = RetentionItem> {
  item: T;
  keep: boolean;
  reasons: KeepReason[];
}

/** The default when no tier is given: ai-memory's `--keep 48`. */
export const DEFAULT_POLICY: RetentionPolicy = { last: 48 };

/** `--keep N` (or a number from the settings): 0 keeps all, N keeps the newest N. */
export function policyFromKeep(keep: number): RetentionPolicy {
  return keep === 0 ? {} : { last: keep };
}

export function isEmptyPolicy(p: RetentionPolicy): boolean {
  return BUCKETS.every((b) => !p[b]);
}

/** "48 last, 14 daily" — for messages and the settings preset. */
export function describePolicy(p: RetentionPolicy): string {
  const parts = BUCKETS.filter((b) => p[b]).map((b) => (p[b] === -1 ? `all ${b}` : `${p[b]} ${b}`));
  return parts.length ? parts.join(', ') : 'keep all';
}

/** Throws a plain Error naming the bad bucket; callers turn it into a usage error. */
export function validatePolicy(p: RetentionPolicy): void {
  for (const b of BUCKETS) {
    const v = p[b];
    if (v === undefined) continue;
    if (!Number.isInteger(v) || v < -1) throw new Error(`keep-${b} must be a whole number ≥ 0, or -1 for unlimited; got ${v}`);
  }
}

interface Parts {
  year: number;
  month: number;
  day: number;
  hour: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** Calendar fields of `time` in `zone` (undefined = the process's local time). */
export function localParts(time: number, zone?: string): Parts {
  if (!zone) {
    const d = new Date(time);
    return { year: d.getFullYear(), month: d.getMonth() + 1, day: d.getDate(), hour: d.getHours() };
  }
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: zone, year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', hourCycle: 'h23' });
    formatters.set(zone, f);
  }
  const o: Record<string, number> = {};
  for (const part of f.formatToParts(new Date(time))) if (part.type !== 'literal') o[part.type] = Number(part.value);
  return { year: o.year, month: o.month, day: o.day, hour: o.hour % 24 };
}

/** ISO 8601 week-year and week of a calendar date (Go's time.ISOWeek). */
export function isoWeek(year: number, month: number, day: number): { year: number; week: number } {
  // Work on the calendar date as if it were UTC: only the date matters here.
  const d = new Date(Date.UTC(year, month - 1, day));
  const dow = (d.getUTCDay() + 6) % 7; // Monday = 0 … Sunday = 6
  d.setUTCDate(d.getUTCDate() - dow + 3); // the Thursday of this week decides the week-year
  const wy = d.getUTCFullYear();
  const jan4 = new Date(Date.UTC(wy, 0, 4));
  const jan4dow = (jan4.getUTCDay() + 6) % 7;
  const week1Thursday = Date.UTC(wy, 0, 4 - jan4dow + 3);
  return { year: wy, week: 1 + Math.round((d.getTime() - week1Thursday) / (7 * 86_400_000)) };
}

const p2 = (n: number) => String(n).padStart(2, '0');

function period(b: Bucket, parts: Parts, index: number): string {
  switch (b) {
    case 'last':
      return `#${index}`; // restic's `always`: every snapshot is its own period
    case 'hourly':
      return `${parts.year}-${p2(parts.month)}-${p2(parts.day)} ${p2(parts.hour)}h`;
    case 'daily':
      return `${parts.year}-${p2(parts.month)}-${p2(parts.day)}`;
    case 'weekly': {
      const w = isoWeek(parts.year, parts.month, parts.day);
      return `${w.year}-W${p2(w.week)}`;
    }
    case 'monthly':
      return `${parts.year}-${p2(parts.month)}`;
    case 'yearly':
      return String(parts.year);
  }
}

function reasonText(r: Omit<KeepReason, 'text'>): string {
  if (r.bucket === 'protected') return r.why ?? 'protected';
  const count = r.of === -1 ? `${r.bucket} (all)` : `${r.bucket} ${r.n} of ${r.of}`;
  const where = r.bucket === 'last' ? '' : ` (${r.period}${r.oldest ? ', oldest snapshot' : ''})`;
  return `${count}${where}`;
}

/**
 * Decides, for each snapshot, whether the policy keeps it and why. Returns the decisions
 * newest first (the input is not modified). `protect` maps names to the reason they are
 * kept whatever the policy.
 */
export function applyRetention<T extends RetentionItem>(
  items: readonly T[],
  policy: RetentionPolicy,
  opts: { zone?: string; protect?: ReadonlyMap<string, string> } = {},
): RetentionDecision<T>[] {
  validatePolicy(policy);
  const list = [...items].sort((a, b) => Number(a.future === true) - Number(b.future === true) || b.time - a.time || (b.seq ?? 1) - (a.seq ?? 1) || (a.name < b.name ? 1 : a.name > b.name ? -1 : 0));
  const empty = isEmptyPolicy(policy);
  const state = BUCKETS.map((b) => ({ bucket: b, count: policy[b] ?? 0, of: policy[b] ?? 0, used: 0, last: undefined as string | undefined }));
  // restic's oldest-snapshot rule is for the oldest snapshot: a future-dated one ranks last
  // but is not it (it took the rule from the real oldest, which then went).
  let oldestAt = list.length - 1;
  while (oldestAt > 0 && list[oldestAt].future) oldestAt--;
  return list.map((item, nr) => {
    const reasons: KeepReason[] = [];
    const why = opts.protect?.get(item.name);
    if (why) reasons.push({ bucket: 'protected', why, text: why });
    if (empty) {
      reasons.push({ bucket: 'protected', why: 'no retention policy: all kept', text: 'no retention policy: all kept' });
      return { item, keep: true, reasons };
    }
    const parts = localParts(item.time, opts.zone);
    const oldest = nr === oldestAt;
    for (const s of state) {
      if (!(s.count > 0 || s.count === -1)) continue;
      const val = period(s.bucket, parts, nr);
      if (val !== s.last || oldest) {
        const oldestRule = val === s.last;
        s.last = val;
        if (s.count > 0) s.count--;
        s.used++;
        const r: Omit<KeepReason, 'text'> = { bucket: s.bucket, n: s.used, of: s.of, period: s.bucket === 'last' ? undefined : val, oldest: oldestRule || undefined };
        reasons.push({ ...r, text: reasonText(r) });
      }
    }
    return { item, keep: reasons.length > 0, reasons };
  });
}

/** The reasons as one line: "hourly 3 of 48 (2026-11-29 14h); monthly 2 of 24 (2026-10)". */
export function reasonsText(reasons: readonly KeepReason[]): string {
  return reasons.map((r) => r.text).join('; ');
}

/** Presets of the extension's retention setting. */
export const RETENTION_PRESETS: Record<string, RetentionPolicy> = {
  '48 hourly, 14 daily, 8 weekly, 24 monthly': { hourly: 48, daily: 14, weekly: 8, monthly: 24 },
  '24 hourly, 7 daily, 4 weekly, 12 monthly': { hourly: 24, daily: 7, weekly: 4, monthly: 12 },
  '48 hourly, 30 daily, 12 weekly, 24 monthly, all yearly': { hourly: 48, daily: 30, weekly: 12, monthly: 24, yearly: -1 },
};
