// Backup and restore the way a user does it, with real clicks in the real workbench
// (code-server 1.100.3 in chromium, the INSTALLED .vsix): the AI Memory view from the
// activity bar, "AI Memory: Backup" from the Command Palette, the snapshot's context menu,
// the real modal confirmation. Outcomes are checked on disk with native SQLite.
//
// Runs in the `main` session after the integration suites, which leave snapshots, a restored
// database and a pre-restore copy behind: everything here is counted before/after.
// Writes snapshots-tree.png, memory-compare.png, memory-diff.png and restore-dialog.png into test-results/vscode/screenshots/
// (`npm run screenshots` copies them to docs/screenshots/).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import {
  clearNotifications,
  contextMenuAction,
  hoverText,
  currentSession,
  openViewContainer,
  repoRoot,
  runCommand,
  screenshotsDir,
  setSidebarWidth,
  statusBarItem,
  waitFor,
  windowScreenshot,
} from '../harness.mjs';

const require = createRequire(import.meta.url);
const { openLikeServer, readMemories, seedMemory } = require('../../../out/test/support/aiMemoryDb.js');
const { edit, forget } = require('../../../out/test/support/aiMemoryOps.js');

const EXTENSION_ID = 'ai-memory-tools.ai-memory-backup';
const SHOTS = screenshotsDir;
/** Docs screenshots: big enough to read, small enough for a README. */
const DOC_SIZE = { width: 1200, height: 750 };
const SNAPSHOT_NAME = /^ai-memory-\d{4}-\d\d-\d\dT\d{6}Z(?:_\d+)?\.db$/;

/** Snapshot file names in `dir`, newest first (the names sort by time). */
/** Snapshot names in the folder, newest first: plain files and those in the page-dedup archive (a manifest beside its index). */
function snapshotsOnDisk(dir) {
  if (!existsSync(dir)) return [];
  const plain = readdirSync(dir).filter((n) => SNAPSHOT_NAME.test(n));
  const archive = join(dir, '.ai-memory-archive', 'snapshots');
  const inArchive = existsSync(archive) ? readdirSync(archive) : [];
  const archived = inArchive
    .filter((n) => n.endsWith('.manifest.json') && inArchive.includes(n.replace(/\.manifest\.json$/, '.idx')))
    .map((n) => n.replace(/\.manifest\.json$/, '.db'))
    .filter((n) => SNAPSHOT_NAME.test(n) && !plain.includes(n));
  return [...plain, ...archived].sort().reverse();
}

function preRestoreCopies(dir) {
  return readdirSync(dir).filter((n) => /^memories\.pre-restore-.*\.db$/.test(n));
}

describe('UI: back up and restore from the AI Memory view', function () {
  this.timeout(120_000);
  let page;
  let db;
  let backups;
  let rows;

  before(async function () {
    const session = currentSession();
    page = session.page;
    db = join(session.dirs.home, '.local', 'share', 'ai-memory', 'memories.db');
    backups = join(dirname(db), 'backups');
    assert.ok(existsSync(db), `the session's database exists: ${db}`);
    await clearNotifications(page);
    // The integration suites leave the log open in the panel: a clean window for the screenshots.
    if (await page.locator('.part.panel').isVisible()) {
      await runCommand(page, 'View: Hide Panel');
      await page.locator('.part.panel').waitFor({ state: 'hidden', timeout: 10_000 });
    }
    // Snapshot rows (the day groups are rows too: "Today: 3 snapshots").
    rows = page.locator('.monaco-list[aria-label="Snapshots"] .monaco-list-row[aria-label^="Snapshot of"]');
  });

  it('opens the AI Memory view from the activity bar; it lists the snapshots on disk', async function () {
    const sidebar = await openViewContainer(page, 'AI Memory');
    await sidebar.locator('.title-label', { hasText: /AI Memory/i }).waitFor({ state: 'visible', timeout: 10_000 });
    const onDisk = snapshotsOnDisk(backups).length;
    await waitFor(async () => (await rows.count()) === onDisk, { timeoutMs: 15_000, message: `the view to show the ${onDisk} snapshot(s) on disk` });
  });

  it('Command Palette → "AI Memory: Backup" adds a verified row; the status bar says "just now"', async function () {
    // First a snapshot made outside VS Code (our CLI, like a cron job, without a check), so
    // the view shows two states; the view must pick it up by itself.
    seedMemory(db, 'ui/demo', 'written before the CLI backup', 'so the CLI backup differs from the last snapshot');
    const before = await rows.count();
    const cli = spawnSync(process.execPath, [join(repoRoot, 'dist', 'cli.js'), 'backup', '--db', db, '--to', backups, '--verify', 'off', '--json'], { encoding: 'utf8' });
    assert.equal(cli.status, 0, cli.stderr);
    assert.equal(JSON.parse(cli.stdout).status, 'created');
    await waitFor(async () => (await rows.count()) === before + 1, { timeoutMs: 15_000, message: 'the view to show the snapshot the CLI made' });
    await waitFor(async () => /Not verified/.test((await rows.first().getAttribute('aria-label')) ?? ''), { timeoutMs: 10_000, message: 'the CLI snapshot shown as not verified' });

    seedMemory(db, 'ui/demo', 'written before the UI backup', 'so the backup from the Command Palette makes a new snapshot');
    const onDiskBefore = snapshotsOnDisk(backups);
    await runCommand(page, 'AI Memory: Backup');
    await waitFor(async () => (await rows.count()) === before + 2, { timeoutMs: 30_000, message: 'a new row after "AI Memory: Backup"' });
    const created = snapshotsOnDisk(backups).filter((n) => !onDiskBefore.includes(n));
    assert.equal(created.length, 1, `one new snapshot file: ${created}`);
    const newest = rows.first();
    assert.match((await newest.getAttribute('aria-label')) ?? '', /Verified$/);
    assert.match(await newest.locator('.label-description').innerText(), /^((just now|= now) · [\d.]+ [KM]B|[\d,]+ memories · (= now|just now|no change|[+\u2212~\d ]+))$/);
    assert.equal((await newest.locator('.codicon-pass-filled').count()), 1, 'the verified icon');
    assert.equal((await rows.nth(1).locator('.codicon-circle-large-outline').count()), 1, 'the not-verified icon on the CLI snapshot');

    const item = statusBarItem(page, { extensionId: EXTENSION_ID, id: 'aiMemory.status' });
    await waitFor(async () => /AI Memory just now/.test(await item.innerText()), { timeoutMs: 10_000, message: 'the status bar to say "AI Memory just now"' });
    assert.equal(await item.locator('.codicon-database').count(), 1, 'the database icon');
  });

  it('rows fit the default sidebar width: label, age and size all visible (issue 15 #9)', async function () {
    const width = Math.round((await page.locator('.part.sidebar').boundingBox()).width);
    assert.ok(width <= 320, `the side bar has its default width (${width}px)`);
    for (let i = 0; i < Math.min(3, await rows.count()); i++) {
      const fit = await rows.nth(i).evaluate((row) => {
        const box = row.querySelector('.monaco-icon-label-container');
        const desc = row.querySelector('.label-description');
        const r = row.getBoundingClientRect();
        const d = desc.getBoundingClientRect();
        return { scroll: box.scrollWidth, client: box.clientWidth, descRight: d.right, rowRight: r.right, text: row.innerText };
      });
      assert.ok(fit.scroll <= fit.client + 1 && fit.descRight <= fit.rowRight, `row ${i} is cut off at ${width}px: ${JSON.stringify(fit)}`);
    }
    const group = page.locator('.monaco-list[aria-label="Snapshots"] .monaco-list-row[aria-label^="Today"]');
    assert.equal(await group.count(), 1, 'a "Today" group');
  });

  it('screenshot: the Snapshots view with a snapshot tooltip (snapshots-tree.png)', async function () {
    await clearNotifications(page);
    await windowScreenshot(page, join(SHOTS, 'snapshots-tree.png'), {
      ...DOC_SIZE,
      before: async () => {
        await setSidebarWidth(page, 470);
        // No focus outline around the list.
        await page.evaluate(() => document.activeElement instanceof HTMLElement && document.activeElement.blur());
        // The tooltip of the oldest row opens below the list and covers no other row.
        // (hoverText hovers again when a hover does not come up: a loaded machine can miss one.)
        await hoverText(page, rows.last().locator('.label-name'), { timeoutMs: 30_000 });
      },
    });
    await page.mouse.move(700, 400);
  });

  it('right-click → Compare with Current Database: the report and its changes; an edited memory opens as a diff (memory-compare.png, memory-diff.png)', async function () {
    // The agent forgets one memory and rewrites another after the newest backup.
    const n = openLikeServer(db);
    let edited;
    try {
      const [victim, target] = n.prepare("SELECT id FROM memories ORDER BY id LIMIT 2 OFFSET 3").pluck().all().map(String);
      edited = String(n.prepare('SELECT title FROM memories WHERE id = ?').pluck().get(target));
      forget(n, victim);
      edit(n, target, { content: 'Rewritten by the agent: the deploy now goes through the staging cluster first, then production after a manual approval.' }, new Date().toISOString());
    } finally {
      n.close();
    }
    await clearNotifications(page);
    await contextMenuAction(page, rows.first(), 'Compare with Current Database');
    // The report opens in an editor, and a quick pick offers the changes.
    const picker = page.locator('.quick-input-widget');
    await picker.waitFor({ state: 'visible', timeout: 30_000 });
    assert.match(await picker.locator('.quick-input-title').innerText(), /^\d+ added, 1 removed, 1 edited$/);
    await page.locator('.monaco-editor .view-lines', { hasText: 'Removed (1)' }).first().waitFor({ state: 'visible', timeout: 15_000 });
    await windowScreenshot(page, join(SHOTS, 'memory-compare.png'), DOC_SIZE);
    // The edited memory: a diff of two read-only documents.
    await picker.locator('input').fill(edited);
    await page.keyboard.press('Enter');
    const diff = page.locator('.monaco-diff-editor');
    await diff.waitFor({ state: 'visible', timeout: 15_000 });
    await page.locator('.monaco-diff-editor .modified .view-lines', { hasText: 'staging cluster' }).waitFor({ state: 'visible', timeout: 15_000 });
    await windowScreenshot(page, join(SHOTS, 'memory-diff.png'), DOC_SIZE);
    await runCommand(page, 'View: Close All Editors');
  });

  it('right-click → Restore → the modal dialog → "Restore" puts the snapshot back; the current database is kept', async function () {
    const [newestName] = snapshotsOnDisk(backups);
    const snapshot = join(backups, newestName);
    const expected = readMemories(snapshot);
    seedMemory(db, 'ui/demo', 'written after the backup', 'must be gone after the restore, and kept in the pre-restore copy');
    const current = readMemories(db);
    assert.ok(current.some((m) => m.title === 'written after the backup'));
    const keptBefore = preRestoreCopies(dirname(db));

    const labels = await contextMenuAction(page, rows.first(), 'Restore');
    assert.deepEqual(labels, ['Open Snapshot', 'Compare with Current Database', 'Compare with Previous', 'Restore', 'Restore Selected Memories…', 'Verify Snapshot', 'Reveal in File Explorer', 'Copy SHA-256', 'Delete Snapshot']);

    const dialog = page.locator('.monaco-dialog-box');
    await dialog.waitFor({ state: 'visible', timeout: 15_000 });
    assert.match(await dialog.locator('.dialog-message-text').innerText(), /^Restore the snapshot of .+\?$/);
    const detail = await dialog.locator('.dialog-message-detail').innerText();
    assert.ok(detail.includes(newestName), `the dialog names ${newestName}: ${detail}`);
    assert.match(detail, /kept beside it as memories\.pre-restore-<time of the restore>\.db/);
    await windowScreenshot(page, join(SHOTS, 'restore-dialog.png'), DOC_SIZE);

    await dialog.getByRole('button', { name: 'Restore', exact: true }).click();
    await dialog.waitFor({ state: 'hidden', timeout: 10_000 });
    const toast = page.locator('.notifications-toasts .notification-toast', { hasText: 'Restored the snapshot of' });
    await toast.first().waitFor({ state: 'visible', timeout: 30_000 });
    // The progress notification is gone once "Restored" shows (issue 15 #15).
    const progress = page.locator('.notifications-toasts .notification-toast', { hasText: 'restoring the snapshot of' });
    await waitFor(async () => (await progress.count()) === 0, { timeoutMs: 3_000, message: 'the restore progress notification to close' });

    // On disk: the database holds exactly the snapshot's memories…
    const after = readMemories(db);
    assert.deepEqual(after, expected);
    assert.ok(!after.some((m) => m.title === 'written after the backup'), 'the change made after the backup is gone');
    // …and what it held before is kept, complete, as memories.pre-restore-*.db.
    const kept = preRestoreCopies(dirname(db)).filter((n) => !keptBefore.includes(n));
    assert.equal(kept.length, 1, `one new pre-restore copy: ${kept}`);
    assert.deepEqual(readMemories(join(dirname(db), kept[0])), current);
    await clearNotifications(page);
  });
});
