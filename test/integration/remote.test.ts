// Off-machine copies in the real extension host: a target set up through the command (the
// secret goes to SecretStorage, nothing to settings.json), a backup, "copied" in the tree,
// against a real S3 protocol server on 127.0.0.1 that this suite starts and stops by PID.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { AiMemoryBackupApi } from '../../src/extension';
import { nativeVacuumInto, readMemories, seedMemory } from '../support/aiMemoryDb';
import { spawnSync } from 'node:child_process';
import { S3_KEY, S3_SECRET, startS3Server, type S3Server } from '../support/s3server';
import { eventually, EXTENSION_ID } from './host';

/** Uploads to the S3 server take longer than the other suites' waits. */
const eventuallyLong = <T>(check: () => T | undefined | false | Promise<T | undefined | false>, what: string, timeoutMs = 60_000) => eventually(check, what, timeoutMs, 200);



function settingsFiles(dir: string, out: string[] = []): string[] {
  for (const d of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, d.name);
    if (d.isDirectory() && d.name !== 'extensions' && d.name !== 'node_modules') settingsFiles(p, out);
    else if (d.isFile() && d.name === 'settings.json') out.push(p);
  }
  return out;
}

function allFiles(dir: string, out: string[] = []): string[] {
  for (const d of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, d.name);
    if (d.isDirectory()) allFiles(p, out);
    else if (d.isFile()) out.push(p);
  }
  return out;
}

describe('Off-machine copies in a real VS Code', function () {
  this.timeout(180_000);
  let api: AiMemoryBackupApi;
  let s3: S3Server;
  let dataDir: string;

  before(async function () {
    const ext = vscode.extensions.getExtension<AiMemoryBackupApi>(EXTENSION_ID);
    assert.ok(ext);
    await eventuallyLong(() => ext.isActive, 'activation');
    api = ext.exports;
    await api.ready;
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'aimb-s3-'));
    s3 = await startS3Server(dataDir, ['vscode-backups']);
  });

  /** Snapshots this suite brought into the local folder from "another machine". */
  const pulledHere: string[] = [];

  after(async function () {
    // Leave the session as we found it: no target left behind, no other database's snapshot in the folder.
    await api?.testing?.removeCopyTargets();
    const folder = api?.backupFolder();
    for (const name of pulledHere) {
      if (!folder) break;
      fs.rmSync(path.join(folder, name), { force: true });
      fs.rmSync(path.join(folder, name.replace(/\.db$/, '.manifest.json')), { force: true });
    }
    await api?.refresh();
    await s3?.kill();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('set up through the command (secret stored, nothing in settings.json), back up, see "copied"', async function () {
    const secret = S3_SECRET;
    const cfg = await vscode.commands.executeCommand<{ remote: string } | undefined>('aiMemory.setUpRemote', {
      remote: 's3://vscode-backups/laptop',
      endpoint: s3.endpoint,
      region: 'us-east-1',
      pathStyle: true,
      accessKeyId: S3_KEY,
      secretAccessKey: secret,
    });
    assert.equal(cfg?.remote, 's3://vscode-backups/laptop/', 'the connection test passed and the target was saved');
    assert.deepEqual(api.copies().targets, ['s3://vscode-backups/laptop/']);

    // Nothing about the target, and never the secret, in any settings.json of this VS Code.
    const root = path.dirname(os.homedir());
    const files = [...settingsFiles(path.join(root, 'user-data')), ...settingsFiles(path.join(root, 'workspace'))];
    for (const f of files) {
      const text = fs.readFileSync(f, 'utf8');
      assert.ok(!text.includes(secret) && !text.includes(S3_KEY) && !text.includes('vscode-backups'), `${f} mentions the target or its credentials`);
    }

    const db = process.env.AI_MEMORY_TEST_DB as string;
    seedMemory(db, 'remote', `copied ${Date.now()}`, 'goes off the machine');
    await vscode.commands.executeCommand('aiMemory.backup');
    const newest = await eventuallyLong(() => {
      const rows = api.snapshots();
      return rows.length && / · copied$/.test(rows[0].description) ? rows[0] : undefined;
    }, '"copied" on the newest snapshot in the tree');
    const name = path.basename(newest.path);
    assert.equal(api.copies().states[name], 'copied');
    assert.match(newest.tooltip, /Off-machine: .*copied/);
    assert.deepEqual(api.copies().failures, []);

    // Neither does any log of this VS Code (the output channel included).
    for (const f of allFiles(path.join(root, 'user-data', 'logs'))) {
      assert.ok(!fs.readFileSync(f, 'utf8').includes(secret), `${f} holds the secret`);
    }
    // The state file beside the snapshots never holds the secret.
    const state = fs.readFileSync(path.join(path.dirname(newest.path), '.ai-memory-backup.remote.json'), 'utf8');
    assert.ok(!state.includes(secret));
  });

  it('a mirror folder that is the backup folder itself (typed, or through a link) or a folder inside it is refused at set-up: nothing saved, no snapshot touched', async function () {
    await vscode.commands.executeCommand('aiMemory.backup'); // the folder exists, with a snapshot
    const folder = await eventuallyLong(() => {
      const f = api.backupFolder();
      return f && fs.existsSync(f) && fs.readdirSync(f).some((n) => n.endsWith('.db')) ? f : undefined;
    }, 'a snapshot in the backup folder');
    const before = fs.readdirSync(folder).sort();
    const targets = api.copies().targets;
    const linkDir = fs.mkdtempSync(path.join(os.tmpdir(), 'aimb-mirror-link-'));
    const inside = path.join(folder, 'offsite');
    try {
      fs.symlinkSync(folder, path.join(linkDir, 'backups'));
      fs.mkdirSync(inside);
      for (const remote of [folder, path.join(linkDir, 'backups'), inside]) {
        const cfg = await vscode.commands.executeCommand<{ remote: string } | undefined>('aiMemory.setUpRemote', { remote });
        assert.equal(cfg, undefined, `${remote}: refused`);
        assert.deepEqual(api.copies().targets, targets, `${remote}: no target saved`);
      }
      assert.deepEqual(fs.readdirSync(inside), [], 'no probe or copy written inside the folder');
    } finally {
      fs.rmSync(linkDir, { recursive: true, force: true });
      fs.rmSync(inside, { recursive: true, force: true });
    }
    assert.deepEqual(fs.readdirSync(folder).sort(), before, 'the backup folder is as it was');
  });

  it('a failed copy shows in the tree and the status bar; the local backup still succeeds; Retry completes it', async function () {
    const port = s3.port;
    await s3.kill();
    const db = process.env.AI_MEMORY_TEST_DB as string;
    seedMemory(db, 'remote', `pending ${Date.now()}`, 'waits for the server');
    await vscode.commands.executeCommand('aiMemory.backup');
    await eventuallyLong(() => api.copies().failures.length > 0, 'the failed copy');
    const rows = api.snapshots();
    assert.match(rows[0].description, / · failed$/);
    assert.match(api.statusBar().text, /cloud-offline/);
    assert.equal(api.statusBar().warning, true);

    s3 = await startS3Server(dataDir, ['vscode-backups'], port);
    await vscode.commands.executeCommand('aiMemory.retryCopy');
    await eventuallyLong(() => api.copies().failures.length === 0 && / · copied$/.test(api.snapshots()[0].description), 'the retried copy');
  });

  it('a snapshot only on the target is listed under Remote and restores: downloaded, checked, then the usual restore', async function () {
    const db = process.env.AI_MEMORY_TEST_DB as string;
    // "Another machine": a copy of this database with one more memory, backed up and pushed to the same prefix.
    const other = fs.mkdtempSync(path.join(os.tmpdir(), 'aimb-other-'));
    try {
      const otherDb = path.join(other, 'ai-memory.db');
      nativeVacuumInto(db, otherDb);
      seedMemory(otherDb, 'remote', 'only on the other machine', 'comes back through the Remote group');
      await new Promise((r) => setTimeout(r, 1100)); // a later second than this machine's newest snapshot
      const env = { AWS_ACCESS_KEY_ID: S3_KEY, AWS_SECRET_ACCESS_KEY: S3_SECRET, AWS_ENDPOINT_URL: s3.endpoint };
      // The installed CLI in its own process: the engine (sql.js) never loads in the extension host, not even for a test.
      const cliJs = path.join(vscode.extensions.getExtension(EXTENSION_ID)?.extensionPath ?? '', 'dist', 'cli.js');
      const b = spawnSync(process.execPath, [cliJs, 'backup', '--db', otherDb, '--to', path.join(other, 'backups'), '--remote', 's3://vscode-backups/laptop', '--path-style', '--keep', '0', '--json'], {
        cwd: other,
        encoding: 'utf8',
        env: { ...process.env, ...env, ELECTRON_RUN_AS_NODE: '1' },
      });
      assert.equal(b.status, 0, b.stderr);
      const name = (JSON.parse(b.stdout.trim().split('\n').pop() as string) as { snapshot: string }).snapshot;
      pulledHere.push(name);

      await vscode.commands.executeCommand('aiMemory.retryCopy');
      await eventuallyLong(() => api.copies().remoteOnly.includes(name), `${name} in the Remote group`);
      const asked: string[] = [];
      assert.ok(api.testing, 'the test API is present (AI_MEMORY_BACKUP_TEST_API=1)');
      const testing = api.testing;
      testing.setConfirmationHandler((message) => {
        asked.push(message);
        return true;
      });
      try {
        await vscode.commands.executeCommand('aiMemory.restoreRemoteSnapshot', { kind: 'remoteSnapshot', name });
      } finally {
        testing.setConfirmationHandler(undefined);
      }
      assert.equal(asked.length, 1, 'the usual restore confirmation');
      assert.deepEqual(readMemories(db), readMemories(otherDb));
      // Downloaded into the backup folder, with its manifest; no longer "remote only".
      const folder = api.backupFolder() as string;
      assert.ok(fs.existsSync(path.join(folder, name)) && fs.existsSync(path.join(folder, name.replace(/\.db$/, '.manifest.json'))));
      await eventuallyLong(() => !api.copies().remoteOnly.includes(name), 'the Remote group without it');
    } finally {
      fs.rmSync(other, { recursive: true, force: true });
    }
  });
});
