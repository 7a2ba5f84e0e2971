// Two VS Code windows on one workspace, one backup schedule. Session `two-hosts`
// (session.config.mjs): aiMemory.backup.intervalMinutes = 0.1 (6 s) from the start.
//
// A second workbench page on the same code-server is a second window with its own extension
// host, so two schedulers watch the same backup folder. A native writer process (ai-memory's
// server, as far as SQLite can tell) changes the database all the time, so every backup that
// runs makes a new snapshot. Over a fixed window of observation the folder must gain about
// one snapshot per interval, not one per window per interval: each scheduler plans from the
// folder's last backup and runs `backup --skip-if-recent` under the folder lock
// (src/features/scheduler.ts, src/core/ops/backup.ts).
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { answerTrustPrompt, currentSession, extensionLogFiles, openWorkbench, waitFor } from '../harness.mjs';
import { TWO_HOSTS_INTERVAL_MINUTES } from '../session.config.mjs';

const require = createRequire(import.meta.url);
const { startWriter } = require('../../../out/test/support/nativeWriter.js');

const EXTENSION_ID = 'ai-memory-tools.ai-memory-backup';
const INTERVAL_MS = TWO_HOSTS_INTERVAL_MINUTES * 60_000;
/** How long both windows are watched: 5 intervals. */
const OBSERVE_MS = 5 * INTERVAL_MS;
const SNAPSHOT_NAME = /^ai-memory-\d{4}-\d\d-\d\dT\d{6}Z(?:_\d+)?\.db$/;

const snapshots = (dir) => (existsSync(dir) ? readdirSync(dir).filter((n) => SNAPSHOT_NAME.test(n)) : []);

/** The lines of an "AI Memory" log file with their time (the log's local time). */
function logLines(file) {
  return readFileSync(file, 'utf8')
    .split('\n')
    .map((line) => {
      const m = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d\.\d{3}) \[(\w+)\] (.*)$/.exec(line);
      return m ? { at: new Date(`${m[1]}T${m[2]}`).getTime(), level: m[3], text: m[4] } : undefined;
    })
    .filter(Boolean);
}

describe('UI: two windows (two extension hosts), one backup schedule', function () {
  this.timeout(OBSERVE_MS + 120_000);
  let writer;
  let page2;

  after(async function () {
    if (writer?.running()) await writer.stop().catch(() => writer.kill());
    await page2?.close().catch(() => {});
  });

  it(`backs up about once per ${INTERVAL_MS / 1000} s interval while a writer changes the database, not once per window`, async function () {
    const session = currentSession();
    const db = join(session.dirs.home, '.local', 'share', 'ai-memory', 'memories.db');
    const backups = join(session.dirs.home, '.local', 'share', 'ai-memory', 'backups');
    const logs = () => extensionLogFiles(session.dirs, EXTENSION_ID, 'AI Memory');

    // ai-memory's server, busy: a few commits a second, checkpoints now and then.
    writer = await startWriter({ dbPath: db, txPerSecond: 4, checkpointEveryMs: 1500, embeddingDim: 0, maxLifetimeMs: OBSERVE_MS + 90_000 });
    await writer.waitForCommits(3);

    // The second window: same workspace, a new page → a new extension host.
    page2 = await session.browser.context.newPage();
    await openWorkbench(page2, session.codeServer.folderUrl());
    await answerTrustPrompt(page2, 'trust', { waitMs: 3_000 });
    await waitFor(() => logs().length === 2 && logs().every((f) => /AI Memory Backup .* activated/.test(readFileSync(f, 'utf8'))), {
      timeoutMs: 60_000,
      message: 'the extension activated in two extension hosts',
    });
    // From here on both schedulers run (the new window's first check comes within ~7 s).
    const before = new Set(snapshots(backups));
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, OBSERVE_MS)); // the observation window itself
    const t1 = Date.now();
    const created = snapshots(backups).filter((n) => !before.has(n));
    const writes = writer.commits();

    // Which window made each new snapshot: its log names it ("backup: <name> (…"), a moment
    // after the file appears.
    const madeBy = (f) => logLines(f).map((l) => /^backup: (ai-memory-\S+\.db) \(/.exec(l.text)?.[1]).filter(Boolean);
    await waitFor(() => created.every((n) => logs().some((f) => madeBy(f).includes(n))), { timeoutMs: 10_000, message: `the logs to name every new snapshot (${created})` });
    // What each window did in [t0, t1], from its own log.
    const perWindow = logs().map((f) => {
      const lines = logLines(f).filter((l) => l.at >= t0 && l.at <= t1);
      return {
        host: f.match(/exthost\d+/)?.[0],
        due: lines.filter((l) => l.text.startsWith('schedule: backup due')).length,
        created: madeBy(f).filter((n) => created.includes(n)).length,
        skipped: lines.filter((l) => l.text.startsWith('backup: skipped, another window')).length,
        unchanged: lines.filter((l) => l.text.startsWith('backup: unchanged')).length,
        failed: lines.filter((l) => l.level === 'error').map((l) => l.text),
      };
    });
    const state = JSON.parse(readFileSync(join(backups, '.ai-memory-backup.state.json'), 'utf8'));
    const intervals = OBSERVE_MS / INTERVAL_MS;
    const report = `${created.length} snapshot(s) in ${((t1 - t0) / 1000).toFixed(1)} s (${intervals} intervals), writer commits ${writes}; per window: ${JSON.stringify(perWindow)}; state: ${JSON.stringify(state)}`;
    this.test.title += ` [${created.length} snapshots / ${intervals} intervals]`;
    process.stdout.write(`      ${report}\n`);

    assert.ok(writes > intervals * 4, `the writer kept changing the database (${writes} commits)`);
    assert.deepEqual(perWindow.flatMap((w) => w.failed), [], 'no backup failed');
    // Not one per window per interval: at most one per interval (+1 for a boundary).
    assert.ok(created.length <= intervals + 1, `too many snapshots — the windows did not share the schedule: ${report}`);
    // …and the schedule did run: a backup takes about a second, so a cycle is 6–8 s.
    assert.ok(created.length >= intervals / 2, `too few snapshots — the schedule stalled: ${report}`);
    // Both windows took part: each decided backups were due, and the loser of a race skipped.
    for (const w of perWindow) assert.ok(w.due >= 2, `${w.host} ran its schedule: ${report}`);
    assert.ok(perWindow.reduce((n, w) => n + w.skipped, 0) >= 1, `a window skipped because the other had just backed up: ${report}`);
    assert.equal(perWindow.reduce((n, w) => n + w.created, 0), created.length, `each new snapshot was made by exactly one window: ${report}`);
  });
});
