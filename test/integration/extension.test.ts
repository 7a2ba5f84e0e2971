// Runs inside the real extension host (code-server = VS Code 1.100.3) through
// test/vscode/run.mjs, against the INSTALLED .vsix, with the real `vscode` API. The
// session (test/vscode/session.config.mjs) made a demo ai-memory database with a live
// -wal in the host's home and named it in the workspace's .vscode/mcp.json.
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, createPrivateKey, createPublicKey } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { AiMemoryBackupApi } from '../../src/extension';
import { deleteSnapshot } from '../../src/core/store/catalog';
import { nativeChecks, readMemories, seedMemory } from '../support/aiMemoryDb';
import { eventually, EXTENSION_ID } from './host';



const sha = (f: string) => createHash('sha256').update(fs.readFileSync(f)).digest('hex');

function folderPrint(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of fs.readdirSync(dir)) {
    const p = path.join(dir, n);
    if (fs.statSync(p).isFile()) out[n] = sha(p);
  }
  return out;
}

describe('AI Memory Backup in a real VS Code', function () {
  this.timeout(120_000);
  const db = process.env.AI_MEMORY_TEST_DB as string;
  let ext: vscode.Extension<AiMemoryBackupApi>;
  let api: AiMemoryBackupApi;
  // Where the discovered database's backups go: fixed here, so that a failed discovery test
  // fails the tests after it rather than sending their CLI backups to "./undefined".
  const folder = path.join(path.dirname(db ?? ''), 'backups');

  before(async function () {
    assert.ok(db, 'the session exports AI_MEMORY_TEST_DB');
    const found = vscode.extensions.getExtension<AiMemoryBackupApi>(EXTENSION_ID);
    assert.ok(found, `${EXTENSION_ID} is installed`);
    ext = found;
    await eventually(() => ext.isActive, 'activation');
    api = ext.exports;
    await api.ready;
  });

  /** The test seams: the harness starts the extension host with AI_MEMORY_BACKUP_TEST_API=1. */
  const testing = () => {
    assert.ok(api.testing, 'the test API is present (AI_MEMORY_BACKUP_TEST_API=1)');
    return api.testing;
  };

  afterEach(() => testing().setConfirmationHandler(undefined));

  it('exposes its test seams only in a test host: no other extension can answer a restore confirmation', () => {
    // The seam exists here because the harness asked for it; a user's VS Code never sets the variable.
    assert.equal(process.env.AI_MEMORY_BACKUP_TEST_API, '1');
    assert.deepEqual(Object.keys(api).filter((k) => /confirm/i.test(k)), [], 'no confirmation hook on the public API');
  });

  it('activates quickly and without I/O: the engine (sql.js) never loads in the extension host', function () {
    assert.ok(api.activationMs < 200, `activation took ${api.activationMs} ms`);
    const loaded = Object.keys(require.cache).filter((k) => /sql-wasm/.test(k));
    assert.deepEqual(loaded, []);
  });

  it('discovers the database named in .vscode/mcp.json, and says where it came from', function () {
    const d = api.database();
    assert.ok(d, 'a database was found');
    assert.equal(d.path, db);
    assert.match(d.source, /\.vscode\/mcp\.json/);
    assert.match(d.source, /server "memory"/);
    assert.equal(api.backupFolder(), folder);
  });

  it('contributes every command under "AI Memory", and hides item-only ones from the palette', async function () {
    const pj = ext.packageJSON as { contributes: { commands: { command: string; category: string }[]; menus: { commandPalette: { command: string; when: string }[] } } };
    const registered = await vscode.commands.getCommands(true);
    for (const c of pj.contributes.commands) {
      assert.equal(c.category, 'AI Memory', c.command);
      assert.ok(registered.includes(c.command), `${c.command} is registered`);
    }
    assert.ok(pj.contributes.menus.commandPalette.some((m) => m.command === 'aiMemory.restoreSnapshot' && m.when === 'false'));
  });

  it('shows the status bar before any backup, saying there is none yet', function () {
    const s = api.statusBar();
    assert.equal(s.visible, true);
    assert.equal(s.text, '$(database) AI Memory: no backup yet', 'the item says what it is (issue 15 #10)');
    assert.match(s.tooltip, /memories\.db/);
  });

  it('"AI Memory: Backup" makes a verified snapshot that appears in the tree, and the status bar says "just now"', async function () {
    await vscode.commands.executeCommand('aiMemory.backup');
    const rows = api.snapshots();
    assert.equal(rows.length, 1);
    const [row] = rows;
    assert.equal(row.contextValue, 'aiMemory.snapshot.verified');
    assert.match(path.basename(row.path), /^ai-memory-\d{4}-\d\d-\d\dT\d{6}Z\.db$/);
    assert.match(row.description, /^150 memories · (just now|= now)$/);
    // Short rows (issue 15 #9): grouped by day, the label is the local time only.
    assert.equal(row.group, 'today');
    assert.doesNotMatch(row.label, /\d{4}/, `no year in the label: ${row.label}`);
    assert.ok(row.label.length <= 11, `a short label: ${row.label}`);
    assert.match(row.tooltip, /SHA-256/);
    assert.match(row.tooltip, /Memories: 150/);
    assert.equal(api.statusBar().text, '$(database) AI Memory just now');
    const native = nativeChecks(row.path);
    assert.equal(native.integrity, 'ok');
    assert.equal(native.fts, 'ok');
    assert.equal(native.memories, 150, 'the commits that were only in the -wal are in the snapshot');
  });

  it('a second backup of an unchanged database adds nothing', async function () {
    await vscode.commands.executeCommand('aiMemory.backup');
    assert.equal(api.snapshots().length, 1);
  });

  it('the view redraws only what changed: a row in place, the whole tree only when rows come or go (a whole redraw drops the row a right-click is about to reach)', async function () {
    const settle = () => new Promise((r) => setTimeout(r, 400));
    await settle();
    const before = testing().treeRedraws();
    await api.refresh(); // the same files: nothing to redraw
    await vscode.commands.executeCommand('aiMemory.refresh');
    await settle();
    assert.deepEqual(testing().treeRedraws(), before, 'no redraw for a reload that found the same snapshots');
    // A change of a row's look: its manifest goes missing, then comes back. The row is redrawn in place.
    const manifest = api.snapshots()[0].path.replace(/\.db$/, '.manifest.json');
    const aside = `${manifest}.aside`;
    fs.renameSync(manifest, aside);
    try {
      await api.refresh();
      await eventually(() => testing().treeRedraws().rows > before.rows, 'the row redrawn for its missing manifest');
      assert.match(api.snapshots()[0].contextValue ?? '', /noManifest/);
    } finally {
      fs.renameSync(aside, manifest);
    }
    await api.refresh();
    await eventually(() => testing().treeRedraws().rows > before.rows + 1, 'the row redrawn for its manifest back');
    assert.equal(testing().treeRedraws().whole, before.whole, 'the tree itself was not redrawn');
  });

  it('picks up a snapshot written by another process (ai-memory\'s CLI or its timer) by itself', async function () {
    seedMemory(db, 'proj/a', 'written by the CLI', 'a change so the next snapshot differs');
    const cli = path.join(ext.extensionPath, 'dist', 'cli.js');
    const r = spawnSync(process.execPath, [cli, 'backup', '--db', db, '--to', folder, '--json'], { encoding: 'utf8', env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' } });
    assert.equal(r.status, 0, r.stderr);
    const rows = await eventually(() => api.snapshots().length === 2 && api.snapshots(), 'the watcher to show the new snapshot');
    assert.equal(path.basename(rows[0].path), JSON.parse(r.stdout).snapshot, 'newest first');
  });

  it('shows "manifest missing" when a manifest vanishes, and "verified" again when it returns', async function () {
    const oldest = api.snapshots()[1];
    const manifest = oldest.path.replace(/\.db$/, '.manifest.json');
    const text = fs.readFileSync(manifest, 'utf8');
    fs.rmSync(manifest);
    await eventually(() => api.snapshots().find((r) => r.path === oldest.path)?.contextValue === 'aiMemory.snapshot.noManifest', 'noManifest state');
    fs.writeFileSync(manifest, text);
    await eventually(() => api.snapshots().find((r) => r.path === oldest.path)?.contextValue === 'aiMemory.snapshot.verified', 'verified state again');
  });

  it('"Verify Snapshot" on a damaged snapshot marks it as not matching its manifest', async function () {
    const oldest = api.snapshots()[1];
    const bytes = fs.readFileSync(oldest.path);
    bytes[Math.floor(bytes.length / 2)] ^= 0xff;
    fs.writeFileSync(oldest.path, bytes);
    await vscode.commands.executeCommand('aiMemory.verifySnapshot', oldest.path);
    const row = await eventually(() => api.snapshots().find((r) => r.path === oldest.path && r.contextValue === 'aiMemory.snapshot.mismatch'), 'mismatch state');
    assert.match(row.tooltip, /sha256 mismatch/);
  });

  it('"Delete Snapshot" asks first, then removes the snapshot and its manifest', async function () {
    const damaged = api.snapshots()[1];
    const asked: string[] = [];
    testing().setConfirmationHandler((message) => {
      asked.push(message);
      return true;
    });
    await vscode.commands.executeCommand('aiMemory.deleteSnapshot', damaged.path);
    assert.match(asked[0], /^Delete the snapshot of /);
    assert.ok(!fs.existsSync(damaged.path) && !fs.existsSync(damaged.path.replace(/\.db$/, '.manifest.json')));
    await eventually(() => api.snapshots().length === 1, 'one snapshot left');
  });

  it('restore through the command replaces the database with the snapshot; the previous one is kept, complete', async function () {
    const snap = api.snapshots()[0];
    const expected = readMemories(snap.path);
    seedMemory(db, 'proj/a', 'after the backup', 'this must be gone after the restore, and kept in the pre-restore copy');
    const before = readMemories(db);
    const asked: { message: string; detail: string }[] = [];
    testing().setConfirmationHandler(async (message, detail) => {
      asked.push({ message, detail });
      // A person reads the dialog for a while: the name it gives must still be right then (issue 15 #1).
      await new Promise((r) => setTimeout(r, 1_500));
      return true;
    });
    await vscode.commands.executeCommand('aiMemory.restoreSnapshot', snap.path);
    assert.equal(asked.length, 1);
    assert.match(asked[0].message, /^Restore the snapshot of /);
    assert.match(asked[0].detail, /kept beside it as memories\.pre-restore-/);
    assert.deepEqual(readMemories(db), expected);
    const kept = fs.readdirSync(path.dirname(db)).filter((n) => /^memories\.pre-restore-.*\.db$/.test(n));
    assert.equal(kept.length, 1);
    assert.deepEqual(readMemories(path.join(path.dirname(db), kept[0])), before);
    const named = asked[0].detail.match(/memories\.pre-restore-\d{4}-\d\d-\d\dT\d{6}Z(?:_\d+)?\.db/);
    if (named) assert.equal(named[0], kept[0], 'the dialog named the file that was created');

    // Backing up right after the restore adds no byte-identical copy of the restored snapshot (issue 15 #12).
    const count = api.snapshots().length;
    await vscode.commands.executeCommand('aiMemory.backup');
    assert.equal(api.snapshots().length, count, 'no duplicate of the restored snapshot');
  });

  it('aiMemory.backup.plain and retention: older snapshots move into the archive, the row says so and why it is kept, and Verify and Restore take it', async function () {
    const config = vscode.workspace.getConfiguration('aiMemory');
    await config.update('backup.plain', 1, vscode.ConfigurationTarget.Workspace);
    await config.update('backup.retention', '48 hourly, 14 daily, 8 weekly, 24 monthly', vscode.ConfigurationTarget.Workspace);
    try {
      const newest = api.snapshots()[0];
      const expected = readMemories(newest.path);
      const manifestSha = (JSON.parse(fs.readFileSync(newest.path.replace(/\.db$/, '.manifest.json'), 'utf8')) as { sha256: string }).sha256;
      seedMemory(db, 'proj/a', 'before the archiving backup', 'a change so the next snapshot differs');
      await vscode.commands.executeCommand('aiMemory.backup');
      // The one that was newest is archived now: no plain file, a row that says "archived" and why it is kept.
      const row = await eventually(() => api.snapshots().find((r) => r.path === newest.path && /archived/.test(r.description)), 'the archived row');
      assert.ok(!fs.existsSync(newest.path), 'its plain file went into the archive');
      assert.ok(fs.existsSync(path.join(folder, '.ai-memory-archive', 'snapshots', path.basename(newest.path).replace(/\.db$/, '.manifest.json'))));
      assert.match(row.tooltip, /Stored: in the page-dedup archive/);
      assert.match(row.tooltip, /Kept: (hourly|daily|weekly|monthly) \d+ of \d+/);
      assert.equal(api.snapshots()[0].description.includes('archived'), false, 'the newest stays plain');

      await vscode.commands.executeCommand('aiMemory.verifySnapshot', row.path);
      await eventually(() => api.snapshots().find((r) => r.path === row.path && r.contextValue === 'aiMemory.snapshot.verified'), 'verified (rebuilt) state');

      testing().setConfirmationHandler(() => true);
      await vscode.commands.executeCommand('aiMemory.restoreSnapshot', row.path);
      assert.equal(sha(db), manifestSha, 'the archived snapshot\'s exact bytes are in place');
      assert.deepEqual(readMemories(db), expected);
      // The copy this restore kept goes again, so the "Before restore" test below counts only its own (aiMemory.backup.keepPreRestore caps them).
      await api.refresh();
      await vscode.commands.executeCommand('aiMemory.deletePreRestore', api.beforeRestore()[0].path);
    } finally {
      await config.update('backup.plain', undefined, vscode.ConfigurationTarget.Workspace);
      await config.update('backup.retention', undefined, vscode.ConfigurationTarget.Workspace);
    }
  });

  it('a retention setting it cannot read (a misspelt custom tier) deletes nothing, where dropping the tier would have', async function () {
    const config = vscode.workspace.getConfiguration('aiMemory');
    await config.update('backup.retention', 'custom', vscode.ConfigurationTarget.Workspace);
    await config.update('backup.retentionCustom', { last: 1, dayly: 14 }, vscode.ConfigurationTarget.Workspace);
    try {
      await api.refresh();
      const before = api.snapshots().map((r) => r.path);
      assert.ok(before.length >= 2, 'snapshots that keep-last 1 would delete');
      seedMemory(db, 'proj/a', 'after a misspelt retention', 'a change so the next snapshot differs');
      await vscode.commands.executeCommand('aiMemory.backup');
      await api.refresh();
      const after = api.snapshots().map((r) => r.path);
      assert.equal(after.length, before.length + 1);
      for (const p of before) assert.ok(after.includes(p), `${path.basename(p)} is kept`);
    } finally {
      await config.update('backup.retention', undefined, vscode.ConfigurationTarget.Workspace);
      await config.update('backup.retentionCustom', undefined, vscode.ConfigurationTarget.Workspace);
    }
  });

  it('with an ai-memory 1.0 operator key configured, an unsigned snapshot is restored only when the modal says so', async function () {
    // The snapshots here are unsigned (no operator key in this session's HOME). Configure a
    // public key the way ai-memory reads it; the engine (a child process) inherits it.
    const pub = createPublicKey(createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), Buffer.alloc(32, 7)]), format: 'der', type: 'pkcs8' }))
      .export({ format: 'der', type: 'spki' })
      .subarray(12);
    process.env.AI_MEMORY_OPERATOR_PUBKEY = pub.toString('base64url');
    try {
      const snap = api.snapshots()[0];
      const dir = path.dirname(db);
      const before = folderPrint(dir);
      const asked: string[] = [];
      testing().setConfirmationHandler((message: string) => {
        asked.push(message);
        return !/is not signed/.test(message); // first: decline the unsigned one
      });
      await vscode.commands.executeCommand('aiMemory.restoreSnapshot', snap.path);
      assert.equal(asked.length, 2, asked.join(' | '));
      assert.match(asked[1], /^The snapshot of .* is not signed\.$/);
      assert.deepEqual(folderPrint(dir), before, 'declined: nothing changed');
      const expected = readMemories(snap.path);
      testing().setConfirmationHandler((message: string) => {
        asked.push(message);
        return true;
      });
      await vscode.commands.executeCommand('aiMemory.restoreSnapshot', snap.path);
      assert.equal(asked.length, 4);
      assert.deepEqual(readMemories(db), expected, 'accepted: restored');
    } finally {
      delete process.env.AI_MEMORY_OPERATOR_PUBKEY;
    }
  });

  it('restore refuses while a process has the database open, names it, and changes nothing when declined', async function () {
    const holder = spawn(process.execPath, ['-e', `
      const D = require(${JSON.stringify(require.resolve('better-sqlite3'))});
      const d = new D(${JSON.stringify(db)}); d.pragma('journal_mode = WAL'); d.prepare('select count(*) from memories').get();
      globalThis.keep = d; process.stdout.write('ready\\n'); setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' } });
    try {
      await new Promise<void>((res, rej) => {
        holder.stdout?.once('data', () => res());
        holder.once('exit', (c) => rej(new Error(`holder exited ${c}`)));
      });
      const dir = path.dirname(db);
      const before = folderPrint(dir);
      const asked: { message: string; detail: string; buttons: readonly string[] }[] = [];
      testing().setConfirmationHandler((message, detail, _confirm, buttons) => {
        asked.push({ message, detail, buttons });
        // First "Check Again" (the default button), then Cancel.
        return asked.length === 1 ? 'Check Again' : false;
      });
      await vscode.commands.executeCommand('aiMemory.restoreSnapshot', api.snapshots()[0].path);
      assert.equal(asked.length, 2, 'Check Again looked again and asked again');
      // Issue 15 #5: a short headline (program and pid), the full command in the detail;
      // the safe choice is the first button, the one Enter presses.
      assert.match(asked[0].message, new RegExp(`^The database is in use by \\S+ \\(pid ${holder.pid}\\)\\.$`));
      assert.ok(asked[0].message.length < 80, asked[0].message);
      assert.match(asked[0].detail, new RegExp(`pid ${holder.pid} \\(.* -e `));
      assert.deepEqual(asked[0].buttons, ['Check Again', 'Restore Anyway…']);
      assert.deepEqual(folderPrint(dir), before, 'nothing changed');
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('"Before restore" lists the copies restores kept; Restore undoes the last restore (the copy\'s -wal included); Delete removes a copy with its sidecars', async function () {
    await api.refresh();
    const rows = api.beforeRestore();
    assert.ok(rows.length >= 1, 'the restores above kept copies');
    assert.match(rows[0].description, /^(just now|\d+ \w+ ago) · [\d.]+ [KMG]?B/);
    const expected = readMemories(rows[0].path); // what the database held right before the last restore
    const asked: string[] = [];
    testing().setConfirmationHandler((message) => {
      asked.push(message);
      return true;
    });
    await vscode.commands.executeCommand('aiMemory.restorePreRestore', rows[0].path);
    assert.match(asked[0] ?? '', /^Restore the database as it was before the restore of /);
    assert.deepEqual(readMemories(db), expected, 'the database is back as it was before that restore');
    await api.refresh();
    const after = api.beforeRestore();
    assert.equal(after.length, rows.length + 1, 'undoing a restore keeps the database it replaced, too');
    const oldest = after[after.length - 1];
    await vscode.commands.executeCommand('aiMemory.deletePreRestore', oldest.path);
    assert.match(asked[1] ?? '', /^Delete the database as it was before the restore of /);
    for (const x of ['', '-wal', '-shm']) assert.ok(!fs.existsSync(oldest.path + x), `${path.basename(oldest.path)}${x} is gone`);
    await api.refresh();
    assert.equal(api.beforeRestore().length, after.length - 1);
  });

  it('Restore on a kept copy, while another database beside this one has the same name but its extension (memories.sqlite): the dialog says the copy may be that one\'s', async function () {
    const other = path.join(path.dirname(db), 'memories.sqlite');
    seedMemory(other, 'elsewhere', 'another database', 'named memories.sqlite beside memories.db');
    try {
      await api.refresh();
      const rows = api.beforeRestore();
      assert.ok(rows.length >= 1);
      const dir = path.dirname(db);
      const before = folderPrint(dir);
      const asked: { message: string; detail: string }[] = [];
      testing().setConfirmationHandler((message, detail) => {
        asked.push({ message, detail });
        return false;
      });
      await vscode.commands.executeCommand('aiMemory.restorePreRestore', rows[0].path);
      assert.match(asked[0]?.detail ?? '', /may have been kept by a restore of memories\.sqlite, not of this database/);
      assert.deepEqual(folderPrint(dir), before, 'cancelled: nothing changed');
    } finally {
      for (const x of ['', '-wal', '-shm']) fs.rmSync(other + x, { force: true });
    }
  });

  it('scheduled backups run when due, and the status bar tells the next run', async function () {
    const count = api.snapshots().length;
    seedMemory(db, 'proj/b', 'for the schedule', 'a change the scheduled backup must capture');
    const config = vscode.workspace.getConfiguration('aiMemory');
    await config.update('backup.intervalMinutes', 0.1, vscode.ConfigurationTarget.Global); // every 6 s
    try {
      await eventually(() => api.nextScheduledRun() !== undefined, 'a planned run');
      await eventually(() => api.snapshots().length === count + 1, 'the scheduled snapshot', 45_000);
      assert.match(api.statusBar().tooltip, /Next scheduled backup/);
    } finally {
      await config.update('backup.intervalMinutes', undefined, vscode.ConfigurationTarget.Global);
      await config.update('backup.intervalMinutes', 0, vscode.ConfigurationTarget.Global);
    }
    await eventually(() => api.nextScheduledRun() === undefined, 'the schedule off');
  });

  it('a backup made while the clock was a year ahead does not stop the schedule: the next run is due now, and the status bar does not say "in the future"', async function () {
    const libfaketime = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
    if (!fs.existsSync(libfaketime)) this.skip(); // Debian's faketime package
    // A real CLI backup under a clock a year ahead (libfaketime): its snapshot's name, its
    // manifest's created_at and the folder's state file (last_run) are all a year ahead.
    seedMemory(db, 'proj/b', 'while the clock was ahead', 'a change backed up under a clock a year ahead');
    const cli = path.join(ext.extensionPath, 'dist', 'cli.js');
    const r = spawnSync(process.execPath, [cli, 'backup', '--db', db, '--to', folder, '--json'], { encoding: 'utf8', env: { ...process.env, ELECTRON_RUN_AS_NODE: '1', LD_PRELOAD: libfaketime, FAKETIME: '+365d' } });
    assert.equal(r.status, 0, r.stderr);
    const ahead = path.join(folder, (JSON.parse(r.stdout) as { snapshot: string }).snapshot);
    assert.ok(Date.parse((JSON.parse(fs.readFileSync(path.join(folder, '.ai-memory-backup.state.json'), 'utf8')) as { last_run: string }).last_run) > Date.now() + 300 * 86_400_000, 'the state file says the last run was a year ahead');
    // The clock is right again (this process's never was wrong): the schedule must still run.
    seedMemory(db, 'proj/b', 'after the clock was put right', 'a change the next scheduled backup must capture');
    await api.refresh();
    const count = api.snapshots().length;
    const config = vscode.workspace.getConfiguration('aiMemory');
    await config.update('backup.intervalMinutes', 0.1, vscode.ConfigurationTarget.Global); // every 6 s
    try {
      await eventually(() => api.nextScheduledRun() !== undefined, 'a planned run');
      const next = api.nextScheduledRun() as number;
      assert.ok(next < Date.now() + 60_000, `the next scheduled backup is planned for ${new Date(next).toISOString()}`);
      await eventually(() => api.snapshots().length === count + 1, 'the scheduled snapshot', 45_000);
      assert.doesNotMatch(api.statusBar().text, /future/);
    } finally {
      await config.update('backup.intervalMinutes', undefined, vscode.ConfigurationTarget.Global);
      await config.update('backup.intervalMinutes', 0, vscode.ConfigurationTarget.Global);
      // Gone for the suites after this one (the UI tests restore the newest by name), plain or
      // archived meanwhile (the scheduled backups' retention may have archived it).
      await deleteSnapshot(folder, path.basename(ahead));
      await api.refresh();
    }
  });

  describe('a wrong aiMemory.databasePath, then corrected (issue 15 #2, #3, #8, #11, #16)', function () {
    const config = () => vscode.workspace.getConfiguration('aiMemory');
    const missing = () => path.join(path.dirname(db), 'nowhere', 'memories.db');
    afterEach(async () => {
      await config().update('databasePath', undefined, vscode.ConfigurationTarget.Global);
      await eventually(() => api.database()?.path === db, 'the discovered database again');
    });

    it('says the database is missing, speaks of the setting (not --db), and the red status bar goes with the database', async function () {
      await config().update('databasePath', missing(), vscode.ConfigurationTarget.Global);
      const d = await eventually(() => api.database()?.path === missing() && api.database(), 'the setting to apply');
      assert.equal(d.exists, false);
      assert.equal(d.via, 'setting');
      assert.match(d.source, /^setting aiMemory\.databasePath \(User\)$/);
      assert.equal(api.statusBar().text, '$(database) AI Memory: database not found');
      await vscode.commands.executeCommand('aiMemory.backup');
      const s = api.statusBar();
      assert.equal(s.error, true, 'the failed backup shows');
      assert.match(s.tooltip, /Last backup failed/);
      assert.match(s.tooltip, /nowhere\/memories\.db\. The path is the setting aiMemory\.databasePath \(User\)/, 'a sentence ends before the hint, which names the setting');
      assert.doesNotMatch(s.tooltip, /--db|\$AI_MEMORY_DB/);

      await config().update('databasePath', undefined, vscode.ConfigurationTarget.Global);
      await eventually(() => api.database()?.path === db, 'the discovered database again');
      const after = api.statusBar();
      assert.equal(after.error, false, `a failure on another database does not colour this one: ${after.text}`);
      assert.doesNotMatch(after.tooltip, /Last backup failed/);
    });

    it('"Select Database…" while the setting decides offers to clear it and use the choice', async function () {
      await config().update('databasePath', missing(), vscode.ConfigurationTarget.Global);
      await eventually(() => api.database()?.path === missing(), 'the setting to apply');
      const offered: { message: string; buttons: readonly string[] }[] = [];
      testing().setConfirmationHandler((message, _detail, _confirm, buttons) => {
        offered.push({ message, buttons });
        return 'Clear the Setting and Use This';
      });
      await vscode.commands.executeCommand('aiMemory.selectDatabase', db);
      assert.equal(offered.length, 1);
      assert.match(offered[0].message, /aiMemory\.databasePath/);
      assert.equal(config().inspect<string>('databasePath')?.globalValue, undefined, 'the setting was cleared');
      const d = await eventually(() => api.database()?.path === db && api.database(), 'the chosen database');
      assert.equal(d.via, 'remembered');
      // One level of parentheses at most: "your choice, also in .vscode/mcp.json (server "memory")".
      assert.doesNotMatch(d.source, /\([^)]*\(/, d.source);
    });
  });
});
