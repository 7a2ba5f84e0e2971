/**
 * Reliability: months of history (test/support/longHistory.ts). The real CLI, its clock moved
 * hour by hour with libfaketime, backs up a real ai-memory database written by native SQLite
 * between runs, with a tiered policy and `--plain 3`; a VACUUM now and then, a schema
 * migration, a page-size change, a restore of an old archived snapshot, a second database in
 * the same folder, a prune by hand and a pull from a mirror along the way. Every kept snapshot
 * must come back byte for byte, nothing may go that the policy keeps, `verify --all` must pass.
 *
 * Out of CI: it runs only with `AI_MEMORY_LONG_HOURS=<n>` (240 is a 4-minute week;
 * 2400, a hundred days, took about an hour on 2 shared cores), printing the growth figures
 * as it goes (more than 240 hours: every problem is collected, the run goes on).
 */
import * as assert from 'assert';
import * as fs from 'fs';
import { GNU_TIME, LIBFAKETIME, runLongHistory } from '../support/longHistory';
import { useTempDir } from '../support/tmp';

// Opt-in: tens of minutes for months of hours, minutes even for a week (every run a process).
const HOURS = Number(process.env.AI_MEMORY_LONG_HOURS ?? 0);
const LONG_RUN = HOURS > 240;

describe('reliability: months of hourly backups, archived and pruned', function () {
  this.timeout(LONG_RUN ? 24 * 3600_000 : 300_000);
  const tmp = useTempDir('aimb-long-');

  it(`${HOURS || 'AI_MEMORY_LONG_HOURS='} hourly backups: every kept snapshot rebuilds to the bytes it was made with, none the policy keeps goes missing`, async function () {
    if (!HOURS) this.skip(); // opt-in: AI_MEMORY_LONG_HOURS=<n>
    if (!fs.existsSync(LIBFAKETIME) || !fs.existsSync(GNU_TIME)) this.skip(); // Debian's faketime and time packages
    const report = await runLongHistory({
      dir: tmp.path,
      hours: HOURS,
      checkEvery: LONG_RUN ? 300 : 60,
      stopAtFirst: !LONG_RUN,
      memories: LONG_RUN ? 600 : 300,
      log: LONG_RUN || process.env.AI_MEMORY_LONG_LOG ? (s) => console.log(s) : undefined,
    });
    if (LONG_RUN) {
      // Backup time and peak RSS per 250 runs: median and max.
      const buckets = [];
      for (let i = 0; i < report.backupMs.length; i += 250) {
        const ms = report.backupMs.slice(i, i + 250).sort((a, b) => a - b);
        const rss = report.backupRssKb.slice(i, i + 250).sort((a, b) => a - b);
        buckets.push({ runs: `${i}-${i + ms.length - 1}`, msMedian: Math.round(ms[ms.length >> 1]), msMax: Math.round(ms[ms.length - 1]), rssMedianKb: rss[rss.length >> 1], rssMaxKb: rss[rss.length - 1] });
      }
      console.log(JSON.stringify({ ...report, backupMs: undefined, backupRssKb: undefined, backupBuckets: buckets }, null, 1));
    }
    assert.deepStrictEqual(report.problems, []);
    assert.ok(report.materialized > 0, 'archived snapshots were rebuilt');
    assert.ok(report.events.some((e) => /restored db1/.test(e)));
  });
});
