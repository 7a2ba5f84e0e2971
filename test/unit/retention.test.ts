/**
 * Tiered retention against a table of cases written from restic's rules
 * (internal/restic/snapshot_policy.go, `restic forget` docs): newest of each period kept,
 * buckets independent and OR'ed, counts used up per bucket, -1 = unlimited, the oldest
 * snapshot kept while a bucket has counts left, ISO weeks from Monday, local time.
 */
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { runBackup } from '../../src/core/ops/backup';
import { manifestNameFor } from '../../src/core/store/naming';
import { pinSnapshot } from '../../src/core/store/pins';
import { createAiMemoryDb, seedMemory } from '../support/aiMemoryDb';
import { cli } from '../support/cliRun';
import { useTempDir } from '../support/tmp';
import { applyRetention, describePolicy, isoWeek, reasonsText, type RetentionPolicy } from '../../src/core/store/retention';

interface Case {
  name: string;
  /** UTC times, any order. */
  snaps: string[];
  policy: RetentionPolicy;
  zone?: string;
  protect?: Record<string, string>;
  /** Times kept, newest first. */
  keep: string[];
  /** Expected reason text for some snapshots. */
  reasons?: Record<string, string>;
}

const CASES: Case[] = [
  { name: 'no snapshots', snaps: [], policy: { last: 3 }, keep: [] },
  {
    name: 'empty policy keeps everything (restic: "policy is empty")',
    snaps: ['2026-11-29T10:00:00Z', '2026-11-29T11:00:00Z'],
    policy: {},
    keep: ['2026-11-29T11:00:00Z', '2026-11-29T10:00:00Z'],
  },
  {
    name: 'keep-last 3 of 5: the newest three',
    snaps: ['2026-11-29T10:00:00Z', '2026-11-29T11:00:00Z', '2026-11-29T12:00:00Z', '2026-11-29T13:00:00Z', '2026-11-29T14:00:00Z'],
    policy: { last: 3 },
    keep: ['2026-11-29T14:00:00Z', '2026-11-29T13:00:00Z', '2026-11-29T12:00:00Z'],
    reasons: { '2026-11-29T12:00:00Z': 'last 3 of 3' },
  },
  {
    name: 'hourly: the newest snapshot of each hour (oldest rule off: counts used up)',
    snaps: ['2026-11-29T09:10:00Z', '2026-11-29T09:50:00Z', '2026-11-29T10:05:00Z', '2026-11-29T10:30:00Z', '2026-11-29T10:59:59Z'],
    policy: { hourly: 2 },
    zone: 'UTC',
    keep: ['2026-11-29T10:59:59Z', '2026-11-29T09:50:00Z'],
    reasons: { '2026-11-29T10:59:59Z': 'hourly 1 of 2 (2026-11-29 10h)', '2026-11-29T09:50:00Z': 'hourly 2 of 2 (2026-11-29 09h)' },
  },
  {
    name: 'oldest snapshot: kept while the bucket has counts left, even in an already kept period',
    snaps: ['2026-11-29T08:00:00Z', '2026-11-29T12:00:00Z', '2026-11-29T18:00:00Z'],
    policy: { daily: 5 },
    zone: 'UTC',
    keep: ['2026-11-29T18:00:00Z', '2026-11-29T08:00:00Z'],
    reasons: { '2026-11-29T08:00:00Z': 'daily 2 of 5 (2026-11-29, oldest snapshot)' },
  },
  {
    name: 'oldest snapshot: not kept once the bucket is used up',
    snaps: ['2026-11-29T08:00:00Z', '2026-11-29T12:00:00Z', '2026-11-29T18:00:00Z'],
    policy: { daily: 1 },
    zone: 'UTC',
    keep: ['2026-11-29T18:00:00Z'],
  },
  {
    name: 'oldest snapshot in its own period: one count, no "oldest" note',
    snaps: ['2026-11-27T08:00:00Z', '2026-11-29T12:00:00Z'],
    policy: { daily: 3 },
    zone: 'UTC',
    keep: ['2026-11-29T12:00:00Z', '2026-11-27T08:00:00Z'],
    reasons: { '2026-11-27T08:00:00Z': 'daily 2 of 3 (2026-11-27)' },
  },
  {
    name: 'week boundary: Sunday 23:59 and Monday 00:00 are different ISO weeks; Saturday shares Sunday\'s',
    snaps: ['2026-11-28T12:00:00Z', '2026-11-29T23:59:59Z', '2026-11-30T00:00:00Z'],
    policy: { weekly: 2 },
    zone: 'UTC',
    keep: ['2026-11-30T00:00:00Z', '2026-11-29T23:59:59Z'],
    reasons: { '2026-11-30T00:00:00Z': 'weekly 1 of 2 (2026-W49)', '2026-11-29T23:59:59Z': 'weekly 2 of 2 (2026-W48)' },
  },
  {
    name: 'ISO week-year: 2027-01-02 and 2026-12-28 are both 2026-W53',
    snaps: ['2026-12-20T12:00:00Z', '2026-12-28T00:30:00Z', '2027-01-02T12:00:00Z', '2027-01-04T09:00:00Z'],
    policy: { weekly: 3 },
    zone: 'UTC',
    keep: ['2027-01-04T09:00:00Z', '2027-01-02T12:00:00Z', '2026-12-20T12:00:00Z'],
    reasons: { '2027-01-02T12:00:00Z': 'weekly 2 of 3 (2026-W53)', '2027-01-04T09:00:00Z': 'weekly 1 of 3 (2027-W01)', '2026-12-20T12:00:00Z': 'weekly 3 of 3 (2026-W51)' },
  },
  {
    name: 'buckets are independent and OR\'ed; each keeping bucket uses a count',
    snaps: ['2026-09-15T10:00:00Z', '2026-10-01T10:00:00Z', '2026-10-20T10:00:00Z', '2026-11-28T10:00:00Z', '2026-11-29T10:00:00Z', '2026-11-29T11:00:00Z'],
    policy: { last: 2, daily: 2, monthly: 3 },
    zone: 'UTC',
    keep: ['2026-11-29T11:00:00Z', '2026-11-29T10:00:00Z', '2026-11-28T10:00:00Z', '2026-10-20T10:00:00Z', '2026-09-15T10:00:00Z'],
    reasons: {
      '2026-11-29T11:00:00Z': 'last 1 of 2; daily 1 of 2 (2026-11-29); monthly 1 of 3 (2026-11)',
      '2026-11-29T10:00:00Z': 'last 2 of 2',
      '2026-11-28T10:00:00Z': 'daily 2 of 2 (2026-11-28)',
      '2026-10-20T10:00:00Z': 'monthly 2 of 3 (2026-10)',
      '2026-09-15T10:00:00Z': 'monthly 3 of 3 (2026-09)',
    },
  },
  {
    name: 'unlimited (-1): every period\'s newest, and the oldest snapshot',
    snaps: ['2025-06-01T00:00:00Z', '2025-06-20T00:00:00Z', '2026-01-01T00:00:00Z', '2026-03-03T00:00:00Z', '2026-03-30T00:00:00Z'],
    policy: { monthly: -1 },
    zone: 'UTC',
    keep: ['2026-03-30T00:00:00Z', '2026-01-01T00:00:00Z', '2025-06-20T00:00:00Z', '2025-06-01T00:00:00Z'],
    reasons: { '2026-01-01T00:00:00Z': 'monthly (all) (2026-01)' },
  },
  {
    name: 'yearly',
    snaps: ['2024-12-31T23:00:00Z', '2025-01-01T01:00:00Z', '2025-07-01T00:00:00Z', '2026-02-01T00:00:00Z'],
    policy: { yearly: 2 },
    zone: 'UTC',
    keep: ['2026-02-01T00:00:00Z', '2025-07-01T00:00:00Z'],
  },
  {
    name: 'local time: 03:00 UTC on the 30th is still the 29th in New York',
    snaps: ['2026-11-29T20:00:00Z', '2026-11-30T03:00:00Z'],
    policy: { daily: 1 },
    zone: 'America/New_York',
    keep: ['2026-11-30T03:00:00Z'],
    reasons: { '2026-11-30T03:00:00Z': 'daily 1 of 1 (2026-11-29)' },
  },
  {
    name: 'local time: the same two snapshots are two days in UTC',
    snaps: ['2026-11-29T20:00:00Z', '2026-11-30T03:00:00Z'],
    policy: { daily: 2 },
    zone: 'UTC',
    keep: ['2026-11-30T03:00:00Z', '2026-11-29T20:00:00Z'],
  },
  {
    name: 'local time: a Monday in UTC can be Sunday in Los Angeles (week boundary moves)',
    snaps: ['2026-11-29T18:00:00Z', '2026-11-30T05:00:00Z'],
    policy: { weekly: 1 },
    zone: 'America/Los_Angeles',
    keep: ['2026-11-30T05:00:00Z'],
    reasons: { '2026-11-30T05:00:00Z': 'weekly 1 of 1 (2026-W48)' },
  },
  {
    name: 'protected snapshots are kept whatever the policy and use no count',
    snaps: ['2026-11-29T10:00:00Z', '2026-11-29T11:00:00Z', '2026-11-29T12:00:00Z'],
    policy: { last: 1 },
    protect: { '2026-11-29T10:00:00Z': 'pinned by a restore' },
    keep: ['2026-11-29T12:00:00Z', '2026-11-29T10:00:00Z'],
    reasons: { '2026-11-29T10:00:00Z': 'pinned by a restore' },
  },
  {
    name: 'a 48-hour day of hourly snapshots under "48 hourly, 14 daily" keeps 48 + the daily ones before',
    snaps: Array.from({ length: 72 }, (_, i) => new Date(Date.UTC(2026, 10, 27, 0) + i * 3600_000).toISOString().replace('.000', '')),
    policy: { hourly: 48, daily: 14 },
    zone: 'UTC',
    keep: [
      ...Array.from({ length: 48 }, (_, i) => new Date(Date.UTC(2026, 10, 29, 23) - i * 3600_000).toISOString().replace('.000', '')),
      '2026-11-27T23:00:00Z',
      '2026-11-27T00:00:00Z', // the oldest: daily has counts left
    ],
  },
];

const nameOf = (iso: string) => `ai-memory-${iso.replace(/[-:]/g, '').replace(/^(\d{4})(\d{2})(\d{2})/, '$1-$2-$3')}.db`;

describe('retention: restic forget semantics', () => {
  for (const c of CASES) {
    it(c.name, () => {
      const items = c.snaps.map((t) => ({ name: nameOf(t), time: Date.parse(t), iso: t }));
      const protect = new Map(Object.entries(c.protect ?? {}).map(([t, why]) => [nameOf(t), why]));
      const out = applyRetention(items, c.policy, { zone: c.zone, protect });
      assert.deepStrictEqual(
        out.filter((d) => d.keep).map((d) => d.item.iso),
        c.keep,
      );
      assert.strictEqual(out.length, items.length);
      for (const d of out) if (!d.keep) assert.deepStrictEqual(d.reasons, []);
      for (const [t, text] of Object.entries(c.reasons ?? {})) {
        const d = out.find((x) => x.item.iso === t);
        assert.ok(d, t);
        assert.strictEqual(reasonsText(d.reasons), text, t);
      }
    });
  }

  it('ISO weeks match Go\'s time.ISOWeek on the year boundaries', () => {
    const table: [number, number, number, string][] = [
      [2026, 1, 1, '2026-1'], // Thursday: week 1
      [2025, 12, 29, '2026-1'], // Monday of 2026-W01
      [2027, 1, 1, '2026-53'], // Friday
      [2027, 1, 3, '2026-53'], // Sunday
      [2027, 1, 4, '2027-1'], // Monday
      [2021, 1, 3, '2020-53'],
      [2024, 12, 30, '2025-1'],
      [2026, 11, 29, '2026-48'],
      [2026, 11, 30, '2026-49'],
    ];
    for (const [y, m, d, want] of table) {
      const w = isoWeek(y, m, d);
      assert.strictEqual(`${w.year}-${w.week}`, want, `${y}-${m}-${d}`);
    }
  });

  it('same-second snapshots order by sequence; the newest wins the period', () => {
    const t = Date.parse('2026-11-29T10:00:00Z');
    const out = applyRetention(
      [
        { name: 'ai-memory-2026-11-29T100000Z.db', time: t, seq: 1 },
        { name: 'ai-memory-2026-11-29T100000Z_2.db', time: t, seq: 2 },
      ],
      { hourly: 1 },
      { zone: 'UTC' },
    );
    assert.deepStrictEqual(out.filter((d) => d.keep).map((d) => d.item.name), ['ai-memory-2026-11-29T100000Z_2.db']);
  });

  it('a future-dated snapshot never outranks one taken now: it ranks last, so it goes first', () => {
    const t = Date.parse('2026-11-29T10:00:00Z');
    const items = [
      { name: 'ai-memory-2099-01-01T000000Z.db', time: Date.parse('2099-01-01T00:00:00Z'), future: true },
      { name: 'ai-memory-2026-11-29T100000Z.db', time: t },
      { name: 'ai-memory-2026-11-29T090000Z.db', time: t - 3600_000 },
    ];
    const out = applyRetention(items, { last: 2 }, { zone: 'UTC' });
    assert.deepStrictEqual(out.map((d) => [d.item.name, d.keep]), [
      ['ai-memory-2026-11-29T100000Z.db', true],
      ['ai-memory-2026-11-29T090000Z.db', true],
      ['ai-memory-2099-01-01T000000Z.db', false],
    ]);
  });

  it('restic\'s oldest-snapshot rule keeps the oldest snapshot, not a future-dated one ranked after it', () => {
    const day = 86_400_000;
    const t = Date.parse('2026-11-29T12:00:00Z');
    // Two a day for three days, and one dated in the future (a clock that was ahead).
    const real = [0, 1, 2].flatMap((d) => [0, 6].map((h) => ({ name: `d${d}h${h}`, time: t - d * day - h * 3600_000 })));
    const items = [...real, { name: 'future', time: Date.parse('2099-01-01T00:00:00Z'), future: true }];
    const kept = (xs: typeof items) => applyRetention(xs, { daily: 7 }, { zone: 'UTC' }).filter((d) => d.keep).map((d) => d.item.name);
    assert.deepStrictEqual(kept(real), ['d0h0', 'd1h0', 'd2h0', 'd2h6'], 'without it, the oldest (d2h6) is kept by the rule');
    assert.deepStrictEqual(kept(items), ['d0h0', 'd1h0', 'd2h0', 'd2h6', 'future'], 'the future-dated one does not take the rule from the oldest');
    const reason = applyRetention(items, { daily: 7 }, { zone: 'UTC' }).find((d) => d.item.name === 'd2h6')?.reasons[0];
    assert.strictEqual(reason?.oldest, true);
  });

  it('refuses counts below -1 and fractions; describes policies', () => {
    assert.throws(() => applyRetention([], { daily: -2 }), /keep-daily/);
    assert.throws(() => applyRetention([], { hourly: 1.5 }), /keep-hourly/);
    assert.strictEqual(describePolicy({ hourly: 48, daily: 14, yearly: -1 }), '48 hourly, 14 daily, all yearly');
    assert.strictEqual(describePolicy({}), 'keep all');
  });

  it('local time by default (TZ of the process)', () => {
    const d = new Date(2026, 10, 29, 23, 30); // local 23:30 on the 29th
    const out = applyRetention([{ name: 'a', time: d.getTime() }], { daily: 1 });
    assert.strictEqual(reasonsText(out[0].reasons), 'daily 1 of 1 (2026-11-29)');
  });
});

describe('retention: backup, prune and list in a real folder', () => {
  const tmp = useTempDir();
  // Periods are local time; these cases are written in UTC.
  let tz: string | undefined;
  before(() => {
    tz = process.env.TZ;
    process.env.TZ = 'UTC';
  });
  after(() => {
    if (tz === undefined) delete process.env.TZ;
    else process.env.TZ = tz;
  });
  let db: string;
  let dir: string;
  /** Hourly snapshots, each of a changed database, with the clock set to `times`. */
  async function snapshotsAt(times: string[]): Promise<string[]> {
    const names: string[] = [];
    for (const [i, t] of times.entries()) {
      seedMemory(db, 'ns', `m${i}`, `memory ${i}`);
      const r = await runBackup({ dbPath: db, backupDir: dir, keep: 0, now: () => new Date(t) });
      names.push(path.basename(r.snapshotPath));
    }
    return names;
  }
  beforeEach(() => {
    db = tmp.join('ai-memory.db');
    dir = tmp.join('backups');
    createAiMemoryDb(db, { memories: 3 });
  });

  it('prune --dry-run deletes nothing and says why each is kept; prune then deletes exactly the rest', async () => {
    const names = await snapshotsAt(['2026-11-27T10:00:00Z', '2026-11-28T09:00:00Z', '2026-11-28T10:00:00Z', '2026-11-29T09:00:00Z', '2026-11-29T10:00:00Z']);
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'mine');
    fs.writeFileSync(path.join(dir, 'ai-memory.pre-restore-2026-11-01T000000Z.db'), 'old');
    const before = fs.readdirSync(dir).sort();
    const dry = await cli(['prune', '--to', dir, '--keep-daily', '2', '--dry-run', '--json'], { cwd: tmp.path });
    assert.strictEqual(dry.code, 0, dry.stderr);
    const o = dry.json<{ status: string; kept: { name: string; reasons: string[] }[]; would_delete: string[] }>();
    assert.strictEqual(o.status, 'dry-run');
    assert.deepStrictEqual(fs.readdirSync(dir).sort(), before);
    assert.deepStrictEqual(o.kept.map((k) => k.name), [names[4], names[2]]);
    assert.deepStrictEqual(o.would_delete, [names[3], names[1], names[0]]);
    assert.ok(o.kept[0].reasons.includes('newest'));
    const text = await cli(['prune', '--to', dir, '--keep-daily', '2', '--dry-run'], { cwd: tmp.path });
    assert.match(text.stdout, /Dry run: nothing was deleted/);
    assert.match(text.stdout, /daily 2 of 2 \(2026-11-28\)/);

    const real = await cli(['prune', '--to', dir, '--keep-daily', '2', '--json'], { cwd: tmp.path });
    assert.strictEqual(real.code, 0, real.stderr);
    assert.deepStrictEqual(real.json<{ deleted: string[] }>().deleted, [names[3], names[1], names[0]]);
    const after = fs.readdirSync(dir);
    for (const n of [names[4], names[2]]) assert.ok(after.includes(n) && after.includes(manifestNameFor(n)), n);
    for (const n of [names[3], names[1], names[0]]) assert.ok(!after.includes(n) && !after.includes(manifestNameFor(n)), n);
    assert.ok(after.includes('notes.txt') && after.includes('ai-memory.pre-restore-2026-11-01T000000Z.db'), 'foreign files and pre-restore copies stay');

    const list = await cli(['list', '--to', dir, '--keep-daily', '2'], { cwd: tmp.path });
    assert.match(list.stdout, new RegExp(`${names[2].replace(/\./g, '\\.')}.*\\[daily 2 of 2 \\(2026-11-28\\)\\]`));
  });

  it('list: a snapshot the policy lets go, of a database not on this machine, is not said to go at the next backup here', async () => {
    const names = await snapshotsAt(['2026-11-29T08:00:00Z', '2026-11-29T09:00:00Z']);
    const here = await cli(['list', '--to', dir, '--keep-last', '1'], { cwd: tmp.path });
    assert.match(here.stdout, new RegExp(`${names[0].replace(/\./g, '\\.')}.*\\[not kept by the policy: the next backup or prune deletes it\\]`));
    fs.renameSync(db, `${db}.moved`); // the database is gone from this machine (its folder copied elsewhere)
    const away = await cli(['list', '--to', dir, '--keep-last', '1'], { cwd: tmp.path });
    assert.match(away.stdout, new RegExp(`${names[0].replace(/\./g, '\\.')}.*\\[not kept by the policy: a backup or prune of its database \\(not on this machine\\) would delete it\\]`));
    assert.doesNotMatch(away.stdout, /the next backup or prune deletes it/);
  });

  it('a snapshot pinned by a restore, and the newest, survive any policy', async () => {
    const names = await snapshotsAt(['2026-11-29T08:00:00Z', '2026-11-29T09:00:00Z', '2026-11-29T10:00:00Z']);
    const unpin = await pinSnapshot(dir, names[0]);
    try {
      const r = await cli(['prune', '--to', dir, '--keep-monthly', '1', '--json'], { cwd: tmp.path });
      assert.strictEqual(r.code, 0, r.stderr);
      const o = r.json<{ kept: { name: string; reasons: string[] }[]; deleted: string[] }>();
      assert.deepStrictEqual(o.deleted, [names[1]]);
      assert.deepStrictEqual(o.kept.find((k) => k.name === names[0])?.reasons, ['pinned by a restore']);
    } finally {
      await unpin();
    }
  });

  it('backup applies a tiered policy after writing; --keep N is --keep-last N; refusals are usage errors', async () => {
    const names = await snapshotsAt(['2026-11-28T10:00:00Z', '2026-11-29T09:00:00Z']);
    seedMemory(db, 'ns', 'late', 'late');
    const r = await runBackup({ dbPath: db, backupDir: dir, policy: { daily: 1 }, now: () => new Date('2026-11-29T10:00:00Z') });
    assert.deepStrictEqual(r.pruned.sort(), [names[0], names[1]].sort());
    const both = await cli(['backup', '--db', db, '--to', dir, '--keep', '3', '--keep-last', '2'], { cwd: tmp.path });
    assert.strictEqual(both.code, 2);
    assert.match(both.stderr, /--keep is --keep-last/);
    const bad = await cli(['prune', '--to', dir, '--keep-daily', 'x'], { cwd: tmp.path });
    assert.strictEqual(bad.code, 2);
    assert.match(bad.stderr, /--keep-daily must be a whole number/);
  });
});
