// The window reloaded ("Developer: Reload Window") while a restore runs. Session `reload`
// (session.config.mjs): a 4 GiB database and its snapshot, so the restore takes ~20 s.
//
// What VS Code does: the reload ends the window's extension host at once; the engine it ran
// (a child process, src/features/engineClient.ts) is not killed, it goes on as an orphan
// (parent pid 1) to its end — its output errors are ignored (src/cli.ts). So:
//  - the restore completes: the database is the snapshot, what it held is kept beside it;
//  - the reloaded window must say so: that a restore started before the reload still runs,
//    and then how it ended, from what the database holds — before, nothing was said at all
//    (the "Restored" of the old window went with its host);
//  - a second Restore from there, while the first still runs, must be refused (the engine's
//    restore lock), not run over it — before the lock both ran;
//  - nothing is left behind: no lock, no temp file beside the database.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { contextMenuAction, currentSession, openViewContainer, runCommand, waitFor } from '../harness.mjs';

/** The engine processes restoring `db`: pid, parent pid. */
function restoreChildren(db) {
  return execFileSync('ps', ['-eo', 'pid=,ppid=,args='], { encoding: 'utf8' })
    .split('\n')
    .map((l) => /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(l))
    .filter((m) => m && /dist\/cli\.js restore /.test(m[3]) && m[3].includes(`--db ${db}`))
    .map((m) => ({ pid: Number(m[1]), ppid: Number(m[2]) }));
}

const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Rows of the marker table: the sparse database's `t(x)` (sqlite3, Debian's). */
const liveRows = (file) => Number(execFileSync('sqlite3', [file, "SELECT count(*) FROM t WHERE x = 'written after the snapshot'"], { encoding: 'utf8' }).trim());

/** Answers the restore dialog (or, should the engine be seen holding the database, the in-use one) with "restore". */
async function confirmRestore(page) {
  const dialog = page.locator('.monaco-dialog-box');
  await dialog.waitFor({ state: 'visible', timeout: 15_000 });
  for (const name of ['Restore', 'Restore Anyway…', 'Restore Anyway']) {
    const button = dialog.getByRole('button', { name, exact: true });
    if (await button.count()) {
      await button.click();
      if (name === 'Restore Anyway…') await confirmRestore(page);
      return;
    }
  }
  throw new Error(`no restore button in the dialog: ${await dialog.innerText()}`);
}

/** The Snapshots view's rows. */
const snapshotRows = (page) => page.locator('.monaco-list[aria-label="Snapshots"] .monaco-list-row[aria-label^="Snapshot of"]');

/**
 * Writes a row only the live database holds (gone after a restore, kept in the copy), starts
 * Restore of the one snapshot from the view, and reloads the window once the engine runs;
 * returns that engine, which has outlived its extension host.
 */
async function restoreThenReload(page, db) {
  const rows = snapshotRows(page);
  execFileSync('sqlite3', [db, "INSERT INTO t VALUES ('written after the snapshot')"]);
  assert.equal(liveRows(db), 1);
  await openViewContainer(page, 'AI Memory');
  await waitFor(async () => (await rows.count()) === 1, { timeoutMs: 20_000, message: 'the view to list the snapshot' });
  await contextMenuAction(page, rows.first(), 'Restore');
  await confirmRestore(page);
  const [child] = await waitFor(() => (restoreChildren(db).length ? restoreChildren(db) : undefined), { timeoutMs: 15_000, message: 'the engine to start restoring' });
  await runCommand(page, 'Developer: Reload Window');
  // The old extension host is gone; its engine goes on, an orphan.
  await waitFor(() => restoreChildren(db).some((c) => c.pid === child.pid && c.ppid !== child.ppid), { timeoutMs: 20_000, message: `the restore (pid ${child.pid}) to outlive its extension host` });
  return child;
}

describe('UI: the window reloaded in the middle of a restore', function () {
  this.timeout(240_000);

  it('the restore goes on to its end and the reloaded window says so; a Restore from there meanwhile is refused, not run over it; nothing is left behind', async function () {
    const session = currentSession();
    const { page } = session;
    const db = join(session.dirs.home, '.local', 'share', 'ai-memory', 'memories.db');
    const dir = dirname(db);
    const rows = snapshotRows(page);
    const kept = () => readdirSync(dir).filter((n) => /^memories\.pre-restore-.*\.db$/.test(n));
    const child = await restoreThenReload(page, db);

    // The reloaded window says that the restore still runs…
    const toasts = page.locator('.notifications-toasts .notification-toast');
    const running = toasts.filter({ hasText: `(started in another window, or before this one was reloaded; pid ${child.pid})` });
    await running.first().waitFor({ state: 'visible', timeout: 30_000 });
    assert.match(await running.first().innerText(), /AI Memory: restoring the snapshot of /);

    // …and Restore again while it runs is refused.
    await openViewContainer(page, 'AI Memory');
    await waitFor(async () => (await rows.count()) === 1, { timeoutMs: 30_000, message: 'the reloaded window to list the snapshot' });
    assert.ok(alive(child.pid), 'the first restore still runs (the machine was too fast for this test: make the database larger)');
    await contextMenuAction(page, rows.first(), 'Restore');
    await confirmRestore(page);
    const refusal = page.locator('.notifications-toasts .notification-toast', { hasText: 'Restore failed' });
    await refusal.first().waitFor({ state: 'visible', timeout: 30_000 });
    const text = await refusal.first().innerText();
    assert.match(text, new RegExp(`Another restore of .*memories\\.db is running \\(restore by pid ${child.pid} on this machine`), text);
    assert.match(text, /Nothing was changed/);
    assert.ok(alive(child.pid), 'refused while the first one ran');

    await waitFor(() => !alive(child.pid), { timeoutMs: 120_000, message: `the first restore (pid ${child.pid}) to finish` });
    // How it ended, in the reloaded window (from the database's sha256 against the snapshot's).
    const told = toasts.filter({ hasText: 'the restore went on while the window was reloaded' });
    await told.first().waitFor({ state: 'visible', timeout: 60_000 });
    const said = await told.first().innerText();
    assert.match(said, /Restored the snapshot of .*: the restore went on while the window was reloaded\. The previous database is kept as memories\.pre-restore-.*\.db\. Restart your agent to use it\./, said);
    await running.first().waitFor({ state: 'detached', timeout: 5_000 });
    // One restore happened: the database is the snapshot, and what it held is kept, once.
    assert.equal(liveRows(db), 0, 'the database is the snapshot');
    const copies = kept();
    assert.equal(copies.length, 1, `one kept copy: ${copies}`);
    assert.ok(said.includes(copies[0]), `the notice names ${copies[0]}: ${said}`);
    assert.equal(liveRows(join(dir, copies[0])), 1, 'the kept copy holds what the database held');
    const snapshot = readdirSync(join(dir, 'backups')).find((n) => n.endsWith('.db'));
    assert.equal(statSync(db).size, statSync(join(dir, 'backups', snapshot)).size);
    // Nothing left behind: no restore lock, no temp file (the engine's are dot-files).
    assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith('.')), []);
    assert.ok(existsSync(db));
  });
});

describe('UI: the window reloaded in the middle of a restore, whose engine is then killed', function () {
  this.timeout(240_000);

  it('the reloaded window says the snapshot was not put in place, and the database is as it was', async function () {
    const session = currentSession();
    const { page } = session;
    const db = join(session.dirs.home, '.local', 'share', 'ai-memory', 'memories.db');
    const child = await restoreThenReload(page, db);
    // The engine dies too (the machine's OOM killer, a logout): at once, no clean-up.
    process.kill(child.pid, 'SIGKILL');
    await waitFor(() => !alive(child.pid), { timeoutMs: 10_000, message: `pid ${child.pid} to be gone` });

    const toasts = page.locator('.notifications-toasts .notification-toast');
    const told = toasts.filter({ hasText: 'running when the window was reloaded, did not put the snapshot in place' });
    await told.first().waitFor({ state: 'visible', timeout: 60_000 });
    const said = await told.first().innerText();
    assert.match(said, /The restore of the snapshot of .*, running when the window was reloaded, did not put the snapshot in place: the database is not the snapshot\./, said);
    assert.equal(liveRows(db), 1, 'the database is as it was');
    assert.equal(await toasts.filter({ hasText: /Restored the snapshot/ }).count(), 0, 'no "Restored"');
  });
});
