/**
 * The CLI's errors in the CLI's words: what was wrong, named by its flag, and what to do —
 * never a VS Code setting (aiMemory.*), and never a wrong account of what was given.
 */
import * as assert from 'assert';
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import { devNull } from 'os';
import { loadAwsSettings } from '../../src/core/remote/awsConfig';
import * as path from 'path';
import { createAiMemoryDb } from '../support/aiMemoryDb';
import { cli } from '../support/cliRun';
import { cliBundle } from '../support/reliability';
import { useTempDir } from '../support/tmp';

describe('CLI errors: in the CLI\'s words, true to what was given', () => {
  const tmp = useTempDir();

  it('no error names a VS Code setting; each names the flag to change', async () => {
    const db = tmp.join('ai-memory.db');
    createAiMemoryDb(db, { memories: 5 });
    fs.writeFileSync(tmp.join('afile'), 'x');
    const dir = tmp.join('backups');
    const b = await cli(['backup', '--db', db, '--to', dir], { cwd: tmp.path });
    assert.strictEqual(b.code, 0, b.stderr);
    const snap = path.join(dir, fs.readdirSync(dir).filter((n) => n.endsWith('.db'))[0]);
    const cases: [string[], RegExp][] = [
      [['backup', '--db', db, '--to', tmp.join('afile')], /--to/],
      [['backup', '--db', db, '--to', tmp.join('afile', 'sub')], /--to/],
      [['backup', '--db', db, '--to', path.join(dir, '.ai-memory-archive', 'x')], new RegExp(`backup folder itself, ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`)],
      [['restore', '--db', tmp.join('afile', 'sub', 'new.db'), '--from', snap], /--db/],
      [['restore', '--from', snap], /--db PATH/],
    ];
    for (const [args, want] of cases) {
      const r = await cli(args, { cwd: tmp.path, env: { AI_MEMORY_DB: tmp.join('missing.db') } });
      assert.notStrictEqual(r.code, 0, args.join(' '));
      assert.doesNotMatch(r.stderr, /aiMemory\./, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, want, `${args.join(' ')}: ${r.stderr}`);
    }
  });

  it('says what was given: a folder is not "a plain file", a file is not "missing", quick or full', async () => {
    fs.mkdirSync(tmp.join('dir'));
    fs.writeFileSync(tmp.join('afile'), 'x');
    const m = await cli(['materialize', '--from', tmp.join('dir'), '--out', tmp.join('x.db')], { cwd: tmp.path });
    assert.strictEqual(m.code, 2);
    assert.match(m.stderr, /is a folder; materialize takes one archived snapshot/);
    const p = await cli(['prune', '--to', tmp.join('afile'), '--db', tmp.join('afile')], { cwd: tmp.path });
    assert.strictEqual(p.code, 1);
    assert.match(p.stderr, /is a file, not a folder/);
    const v = await cli(['verify', '--from', tmp.join('dir'), '--verify', 'off'], { cwd: tmp.path });
    assert.strictEqual(v.code, 2);
    assert.match(v.stderr, /--verify must be quick or full; got "off"/);
  });

  it('a FIFO where a config or key file is read (config.toml, operator.key.pub, AWS credentials) never hangs a command', async function () {
    if (process.platform === 'win32') this.skip();
    this.timeout(60_000);
    const home = tmp.join('home');
    const cfg = path.join(home, '.config', 'ai-memory');
    fs.mkdirSync(cfg, { recursive: true });
    const db = tmp.join('ai-memory.db');
    createAiMemoryDb(db, { memories: 5 });
    const fifo = (p: string) => execFileSync('mkfifo', [p]);
    fifo(path.join(cfg, 'config.toml'));
    fifo(path.join(cfg, 'operator.key.pub'));
    fifo(tmp.join('credentials'));
    const within = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
      let timer: NodeJS.Timeout | undefined;
      const hung = new Promise<'hung'>((r) => (timer = setTimeout(() => r('hung'), 15_000)));
      const r = await Promise.race([cli(args, { cwd: tmp.path, home, env }), hung]).finally(() => clearTimeout(timer));
      assert.notStrictEqual(r, 'hung', `${args.join(' ')} hung on a FIFO`);
      return r as Exclude<typeof r, 'hung'>;
    };
    const b = await within(['backup', '--to', tmp.join('bk')]); // config.toml (where the database may be named): a FIFO
    assert.match(b.stderr, /config\.toml.*not a regular file/, b.stderr); // said, then ai-memory.db in the working directory
    const l = await within(['list', '--to', tmp.join('bk2'), '--db', db]); // the operator public key: a FIFO
    assert.match(l.stdout + l.stderr, /operator\.key\.pub|No snapshots|no snapshots/i);
    const r = await within(['list', '--remote', 's3://bucket/p'], { AWS_SHARED_CREDENTIALS_FILE: tmp.join('credentials'), AWS_CONFIG_FILE: tmp.join('credentials') });
    assert.notStrictEqual(r.code, 0);
    assert.match(r.stderr, /credentials/);
    // The null device is no file at all (the extension points both there): read as empty, not refused.
    const settings = await loadAwsSettings({ AWS_CONFIG_FILE: devNull, AWS_SHARED_CREDENTIALS_FILE: devNull, AWS_ACCESS_KEY_ID: 'k', AWS_SECRET_ACCESS_KEY: 's' }, home);
    assert.strictEqual(settings.credentials?.accessKeyId, 'k');
  });

  it('says what is wrong with a path in plain words: a loop of links, a database it may not read, a database path from $AI_MEMORY_DB', async function () {
    if (process.platform === 'win32') this.skip();
    const db = tmp.join('ai-memory.db');
    createAiMemoryDb(db, { memories: 5 });
    fs.symlinkSync(tmp.join('loop2'), tmp.join('loop1'));
    fs.symlinkSync(tmp.join('loop1'), tmp.join('loop2'));
    for (const args of [['list', '--to', tmp.join('loop1')], ['restore', '--db', db, '--from', tmp.join('loop1')], ['backup', '--db', db, '--to', tmp.join('loop1')]]) {
      const r = await cli(args, { cwd: tmp.path });
      assert.notStrictEqual(r.code, 0, args.join(' '));
      assert.match(r.stderr, /a loop of symbolic links/, `${args.join(' ')}: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /ELOOP|does not exist/, `${args.join(' ')}: ${r.stderr}`);
    }
    // inspect of a folder holding only another database's snapshots: advice inspect can take.
    const bk = tmp.join('bk-other');
    assert.strictEqual((await cli(['backup', '--db', db, '--to', bk], { cwd: tmp.path })).code, 0);
    const i = await cli(['inspect', '--from', bk], { cwd: tmp.path, env: { AI_MEMORY_DB: tmp.join('other.db') } });
    assert.notStrictEqual(i.code, 0);
    assert.match(i.stderr, /Pass the snapshot file itself with --from .*or set \$AI_MEMORY_DB/, i.stderr);
    assert.doesNotMatch(i.stderr, /to restore one of them|point --db/, i.stderr);
    // The path came from $AI_MEMORY_DB: that is what to correct, not --db alone.
    fs.mkdirSync(tmp.join('folder'));
    const e = await cli(['backup', '--to', tmp.join('bk')], { cwd: tmp.path, env: { AI_MEMORY_DB: tmp.join('folder') } });
    assert.notStrictEqual(e.code, 0);
    assert.match(e.stderr, /Set \$AI_MEMORY_DB to the ai-memory \.db file, or pass --db PATH/, e.stderr);
    // A database this user may not read: advice about reading it, not "choose another folder".
    if (process.getuid?.() === 0) {
      fs.chmodSync(tmp.path, 0o755);
      fs.chmodSync(db, 0o600);
      // Another user: the CLI as its own process (a private bundle of this source).
      const bundle = await cliBundle();
      fs.chmodSync(path.dirname(bundle), 0o755);
      fs.chmodSync(bundle, 0o755);
      const never = tmp.join('never');
      const r = spawnSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, bundle, 'backup', '--db', db, '--to', never], { encoding: 'utf8' });
      assert.strictEqual(r.error, undefined, String(r.error));
      assert.notStrictEqual(r.status, 0);
      assert.match(r.stderr, /Permission denied while opening .*\n.*Check that you may read it/, r.stderr);
      assert.doesNotMatch(r.stderr, /choose another folder/, r.stderr);
      assert.ok(!fs.existsSync(never), 'nothing made');
      // A manifest this user may not read: advice about reading it, not --skip-verify.
      const bk2 = tmp.join('bk-private-manifest');
      assert.strictEqual((await cli(['backup', '--db', db, '--to', bk2], { cwd: tmp.path })).code, 0);
      fs.chmodSync(bk2, 0o755);
      const snapName = fs.readdirSync(bk2).find((n) => n.endsWith('.db')) as string;
      fs.chmodSync(path.join(bk2, snapName), 0o644);
      fs.chmodSync(path.join(bk2, snapName.replace(/\.db$/, '.manifest.json')), 0o000);
      const m = spawnSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, bundle, 'restore', '--db', tmp.join('elsewhere.db'), '--from', path.join(bk2, snapName), '--dry-run'], { encoding: 'utf8' });
      assert.notStrictEqual(m.status, 0);
      assert.match(m.stderr, /Check that you may read the manifest/, m.stderr);
      assert.doesNotMatch(m.stderr, /--skip-verify/, m.stderr);
    }
  });
});
