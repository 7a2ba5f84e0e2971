/**
 * Reliability 4: bad input. Each of the 18 cases of the issue runs the real CLI as a
 * process, in text and in --json mode: exit code 1, a clear `error:` line and a hint (or
 * one JSON error line with code and hint), and nothing changed — a hash fingerprint of the
 * database folder and the backup folder (every file, folder and symlink) is identical
 * before and after. (restore.test.ts covers the same refusals at API level.)
 */
import * as assert from 'assert';
import { spawn } from 'child_process';
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { runBackup } from '../../src/core/ops/backup';
import { seedMemory } from '../support/aiMemoryDb';
import { trackChild } from '../support/procs';
import { cliBundle, expectRefusal, mountTmpfs, mountUnavailable, remount, sha256File, type Mount, type Refusal } from '../support/reliability';
import { reliabilityCase } from '../support/reliabilityReport';
import { useTempDir } from '../support/tmp';

describe('reliability 4: bad input — a clear error, a non-zero exit, nothing changed', function () {
  this.timeout(120_000);
  const tmp = useTempDir('aimb-badinput-');
  let db: string;
  let dir: string;
  let snap: string;
  let manifestPath: string;
  let manifest: Record<string, unknown>;

  before(async () => {
    await cliBundle();
  });

  beforeEach(async () => {
    db = tmp.join('db', 'ai-memory.db');
    dir = tmp.join('backups');
    fs.mkdirSync(path.dirname(db));
    seedMemory(db, 'ns', 'a', 'what the snapshot holds');
    const r = await runBackup({ dbPath: db, backupDir: dir });
    snap = r.snapshotPath;
    manifestPath = r.manifestPath;
    manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8')) as Record<string, unknown>;
    seedMemory(db, 'ns', 'b', 'the live database differs from the snapshot');
  });

  const writeManifest = (m: unknown) => fs.writeFileSync(manifestPath, typeof m === 'string' ? m : JSON.stringify(m, null, 2));
  const restoreArgs = (from = snap) => ['restore', '--db', db, '--from', from];

  const refuses = (args: string[], want: Refusal, roots: string[] = [tmp.path]) => expectRefusal(args, want, { cwd: tmp.path, roots });

  const CHECKED = 'exit 1 (text and --json); `error:` line naming the problem + indented hint; the JSON line\'s `code` and `hint`; fingerprint of db folder + backup folder unchanged';

  const restoreCase = (name: string, done: string, prepare: () => void | Promise<void>, want: Refusal, from?: () => string) =>
    reliabilityCase('input', name, { done, checked: CHECKED }, async () => {
      await prepare();
      return await refuses(restoreArgs(from?.()), want);
    });

  restoreCase('snapshot bytes tampered', 'one bit of the snapshot flipped; `restore --from <snapshot>`', () => {
    const b = fs.readFileSync(snap);
    b[5000] ^= 1;
    fs.writeFileSync(snap, b);
  }, { code: 'SHA_MISMATCH', message: /sha256 mismatch/ });

  restoreCase('manifest sha256 tampered', 'the manifest\'s sha256 replaced by another valid hex digest', () => {
    writeManifest({ ...manifest, sha256: 'f'.repeat(64) });
  }, { code: 'SHA_MISMATCH', message: /sha256 mismatch/ });

  restoreCase('manifest bytes wrong', 'the manifest\'s byte count + 4096', () => {
    writeManifest({ ...manifest, bytes: (manifest.bytes as number) + 4096 });
  }, { code: 'SIZE_MISMATCH', message: /bytes but its manifest says/ });

  restoreCase('manifest missing', 'the manifest deleted', () => fs.rmSync(manifestPath), { code: 'MANIFEST_MISSING', message: /Manifest .* not found/ });

  restoreCase('manifest not JSON', 'the manifest cut mid-way (`{"snapshot": "ai-memory-`)', () => writeManifest('{"snapshot": "ai-memory-'), {
    code: 'MANIFEST_INVALID',
    message: /not valid JSON/,
  });

  reliabilityCase(
    'input',
    'manifest missing a field or with a wrong type',
    { done: 'the manifest without `version`; then with `bytes` as a string', checked: CHECKED },
    async () => {
      const { version: _v, ...noVersion } = manifest;
      writeManifest(noVersion);
      const a = await refuses(restoreArgs(), { code: 'MANIFEST_INVALID', message: /no "version" field/ });
      writeManifest({ ...manifest, bytes: String(manifest.bytes) });
      const b = await refuses(restoreArgs(), { code: 'MANIFEST_INVALID', message: /"bytes" should be a number/ });
      return `${a}; ${b}`;
    },
  );

  restoreCase('manifest naming another file', 'the manifest\'s `snapshot` names another snapshot file', () => {
    writeManifest({ ...manifest, snapshot: 'ai-memory-2020-01-01T000000Z.db' });
  }, { code: 'MANIFEST_FOREIGN', message: /describes "ai-memory-2020-01-01T000000Z\.db"/ });

  reliabilityCase(
    'input',
    'manifest naming `../` or an absolute path',
    { done: 'the manifest\'s `snapshot` = `../<its name>`; then an absolute path', checked: CHECKED },
    async () => {
      const out: string[] = [];
      for (const bad of [`../${String(manifest.snapshot)}`, path.join(tmp.path, 'elsewhere.db')]) {
        writeManifest({ ...manifest, snapshot: bad });
        out.push(await refuses(restoreArgs(), { code: 'MANIFEST_FOREIGN', message: /outside its folder/ }));
      }
      return out.join('; ');
    },
  );

  restoreCase('zero-byte snapshot', 'the snapshot emptied, its manifest updated to match (0 bytes, sha256 of nothing)', () => {
    fs.writeFileSync(snap, '');
    writeManifest({ ...manifest, bytes: 0, sha256: sha256File(snap) });
  }, { code: 'NOT_A_DATABASE', message: /is empty \(0 bytes\)/ });

  reliabilityCase(
    'input',
    'truncated snapshot',
    { done: 'the snapshot cut by one page; first with its original manifest, then with a manifest matching the cut bytes', checked: CHECKED },
    async () => {
      const b = fs.readFileSync(snap);
      fs.writeFileSync(snap, b.subarray(0, b.length - 4096));
      const a = await refuses(restoreArgs(), { code: 'SIZE_MISMATCH', message: /bytes but its manifest says/ });
      writeManifest({ ...manifest, bytes: b.length - 4096, sha256: sha256File(snap) });
      const c = await refuses(restoreArgs(), { code: 'INTEGRITY_FAILED', message: /truncated|quick_check/ });
      return `${a}; ${c}`;
    },
  );

  reliabilityCase(
    'input',
    'not an SQLite file',
    { done: 'a snapshot replaced by a zip-like file (manifest matching); and `backup --db` pointing at a text file', checked: CHECKED },
    async () => {
      fs.writeFileSync(snap, 'PK\u0003\u0004 this is a zip file, not a database'.repeat(200));
      writeManifest({ ...manifest, bytes: fs.statSync(snap).size, sha256: sha256File(snap) });
      const a = await refuses(restoreArgs(), { code: 'NOT_A_DATABASE', message: /not an SQLite database/ });
      const notes = tmp.join('db', 'notes.db');
      fs.writeFileSync(notes, 'just some notes, not a database\n'.repeat(100));
      const b = await refuses(['backup', '--db', notes, '--to', dir], { code: 'NOT_A_DATABASE', message: /not an SQLite database/ });
      return `restore: ${a}; backup: ${b}`;
    },
  );

  restoreCase('an encrypted (SQLCipher-like) file on restore', 'the snapshot replaced by 8 KiB of random bytes (what SQLCipher looks like), manifest matching', () => {
    fs.writeFileSync(snap, randomBytes(8192));
    writeManifest({ ...manifest, bytes: 8192, sha256: sha256File(snap) });
  }, { code: 'UNVERIFIABLE', message: /encrypted/ });

  reliabilityCase(
    'input',
    'snapshot that is a symlink leading outside the folder',
    { done: 'the snapshot moved outside the backup folder and replaced by a symlink to it; restore from the file, then from the folder', checked: CHECKED },
    async () => {
      const outside = tmp.join('outside.db');
      fs.renameSync(snap, outside);
      fs.symlinkSync(outside, snap);
      const a = await refuses(restoreArgs(), { code: 'UNSAFE_SNAPSHOT_PATH', message: /outside its folder/ });
      const b = await refuses(restoreArgs(dir), { code: 'UNSAFE_SNAPSHOT_PATH', message: /outside its folder/ });
      return a === b ? `${a} (from the file and from the folder)` : `file: ${a}; folder: ${b}`;
    },
  );

  reliabilityCase(
    'input',
    'database path that is a directory',
    { done: '`backup --db <a folder>` and `restore --db <a folder>`', checked: CHECKED },
    async () => {
      const folder = tmp.join('db', 'folder.db');
      fs.mkdirSync(folder);
      const a = await refuses(['backup', '--db', folder, '--to', dir], { code: 'DB_IS_DIRECTORY', message: /is a directory/ });
      const b = await refuses(['restore', '--db', folder, '--from', snap], { code: 'DB_IS_DIRECTORY', message: /is a directory/ });
      return `backup: ${a}; restore: ${b}`;
    },
  );

  reliabilityCase(
    'input',
    'database path missing',
    { done: '`backup --db <no such file> --to <a new folder>`', checked: `${CHECKED}; the database is not created and neither is the backup folder` },
    async () => {
      const r = await refuses(['backup', '--db', tmp.join('db', 'missing.db'), '--to', tmp.join('new-backups')], { code: 'DB_NOT_FOUND', message: /Database not found/ });
      assert.ok(!fs.existsSync(tmp.join('db', 'missing.db')) && !fs.existsSync(tmp.join('new-backups')));
      return r;
    },
  );

  reliabilityCase(
    'input',
    'backup folder that is a file',
    { done: '`backup --to <a regular file>`, and `--to <a path inside that file>`', checked: CHECKED },
    async () => {
      const file = tmp.join('not-a-folder');
      fs.writeFileSync(file, 'x');
      const a = await refuses(['backup', '--db', db, '--to', file], { code: 'TARGET_NOT_DIRECTORY', message: /is a file, not a folder/ });
      const b = await refuses(['backup', '--db', db, '--to', path.join(file, 'sub')], { code: 'TARGET_NOT_DIRECTORY', message: /inside a file|part of that path is a file/ });
      return `${a}; ${b}`;
    },
  );

  reliabilityCase(
    'input',
    'backup folder not writable',
    {
      done: 'as root (chmod does not stop root): a tmpfs holding an earlier snapshot, remounted read-only; not root: a folder chmod 0555',
      checked: `${CHECKED} (the read-only folder included)`,
    },
    async (ctx) => {
      const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
      if (!isRoot) {
        const ro = tmp.join('ro-backups');
        fs.mkdirSync(ro);
        fs.chmodSync(ro, 0o555);
        try {
          return await refuses(['backup', '--db', db, '--to', ro], { code: 'TARGET_NOT_WRITABLE', message: /not writable/ });
        } finally {
          fs.chmodSync(ro, 0o755);
        }
      }
      const why = mountUnavailable();
      if (why) ctx.skip(why);
      let m: Mount | undefined;
      try {
        m = mountTmpfs(16 << 20);
        await runBackup({ dbPath: db, backupDir: m.path });
        remount(m, 'ro');
        // A read-only mount is said as such (no permission change fixes it), with the same code.
        return await refuses(['backup', '--db', db, '--to', m.path], { code: 'TARGET_NOT_WRITABLE', message: /read-only file system/ }, [tmp.path, m.path]);
      } finally {
        m?.unmount();
      }
    },
  );

  reliabilityCase(
    'input',
    'restore target in use by another process',
    { done: 'a separate process holds the database open with native SQLite in WAL mode (like the ai-memory server); `restore` without --force', checked: `${CHECKED}; the message names the holder's pid` },
    async () => {
      const holder = spawn(process.execPath, ['-e', `
        const D = require(${JSON.stringify(require.resolve('better-sqlite3'))});
        const db = new D(${JSON.stringify(db)}); db.pragma('journal_mode = WAL');
        db.prepare('select count(*) from memories').get();
        globalThis.keep = db; process.stdout.write('ready\\n'); setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
      trackChild(holder, 'db holder');
      try {
        await new Promise<void>((res, rej) => {
          holder.stdout?.once('data', () => res());
          holder.once('exit', (c) => rej(new Error(`holder exited ${c}`)));
        });
        // The holder's command line spans lines (node -e '<script>'): the message keeps it on one.
        return await refuses(restoreArgs(), { code: 'IN_USE', message: new RegExp(`in use by pid ${holder.pid} \\(.*node -e .*\\)\\. Nothing was changed\\.$`) });
      } finally {
        holder.kill('SIGKILL');
        await new Promise((r) => (holder.exitCode !== null || holder.signalCode !== null ? r(undefined) : holder.once('exit', r)));
      }
    },
  );
});
