/**
 * Off-machine copies against a real S3 protocol server (@20minutes/s3rver, SigV4 checked)
 * started on 127.0.0.1 by the tests and stopped by PID, and against a mirror folder.
 */
import * as assert from 'assert';
import { createHash, randomBytes } from 'crypto';
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import { runBackup } from '../../src/core/ops/backup';
import { parseAwsIni, loadAwsSettings } from '../../src/core/remote/awsConfig';
import { MirrorTarget } from '../../src/core/remote/mirrorTarget';
import { parseRemote } from '../../src/core/remote/remoteSpec';
import { readRemoteState, REMOTE_STATE_NAME } from '../../src/core/remote/remoteState';
import { S3Target } from '../../src/core/remote/s3Target';
import { listRemote, pushToTarget, UNFINISHED_GRACE_MS } from '../../src/core/remote/sync';
import { serializeManifest, rfc3339 } from '../../src/core/store/manifest';
import { readMemories, seedMemory } from '../support/aiMemoryDb';
import { cli } from '../support/cliRun';
import { S3_KEY, S3_SECRET, startDenyDeleteProxy, startLoopbackProxy, startS3Server, type S3Server } from '../support/s3server';
import { useTempDir } from '../support/tmp';
import { cliBundle } from '../support/reliability';
import { spawnSync } from 'child_process';

const BUCKET = 'backups';
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const names = (dir: string) => fs.readdirSync(dir).filter((n) => n.startsWith('ai-memory-')).sort();

function s3env(endpoint: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { AWS_ACCESS_KEY_ID: S3_KEY, AWS_SECRET_ACCESS_KEY: S3_SECRET, AWS_ENDPOINT_URL: endpoint, ...extra };
}

function target(endpoint: string, prefix = 'laptop/', bucket = BUCKET): S3Target {
  return new S3Target({ endpoint, region: 'us-east-1', bucket, prefix, pathStyle: true }, { accessKeyId: S3_KEY, secretAccessKey: S3_SECRET });
}

/** `n` real backups of a real ai-memory database (each after a new memory). */
async function backups(db: string, dir: string, n: number, keep = 48, now?: () => Date): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    seedMemory(db, 'proj', `memory ${i} ${randomBytes(3).toString('hex')}`, `content ${i}`);
    const r = await runBackup({ dbPath: db, backupDir: dir, keep, now });
    out.push(path.basename(r.snapshotPath));
  }
  return out;
}

/** A snapshot-shaped file of `bytes` random bytes with a correct manifest (upload only looks at the manifest). */
function fakeSnapshot(dir: string, name: string, bytes: number): string {
  fs.mkdirSync(dir, { recursive: true });
  const data = randomBytes(bytes);
  fs.writeFileSync(path.join(dir, name), data);
  const m = { snapshot: name, sha256: sha(data), bytes, source_db: '/x/ai-memory.db', version: '0.1.0', created_at: rfc3339(new Date()), integrity: 'unverified' as const };
  fs.writeFileSync(path.join(dir, name.replace(/\.db$/, '.manifest.json')), serializeManifest(m));
  return sha(data);
}

/** A loopback proxy that records each request's method, url and header names. */
async function recordingProxy(upstream: number): Promise<{ endpoint: string; seen: { method: string; url: string; headers: http.IncomingHttpHeaders }[]; close(): Promise<void> }> {
  const seen: { method: string; url: string; headers: http.IncomingHttpHeaders }[] = [];
  const proxy = await startLoopbackProxy(upstream, (req) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    return false;
  });
  return { ...proxy, seen };
}

describe('off-machine copies: S3 (real S3 protocol server on 127.0.0.1)', function () {
  this.timeout(120_000);
  const tmp = useTempDir('aimb-remote-');
  let s3: S3Server;

  beforeEach(async () => {
    s3 = await startS3Server(tmp.join('s3data'), [BUCKET]);
  });
  afterEach(async () => {
    await s3.kill();
  });

  it('push uploads every verified snapshot with its manifest, list --remote shows them, the state says copied', async () => {
    const db = tmp.join('ai-memory.db');
    const local = tmp.join('backups');
    const made = await backups(db, local, 3);
    const r = await cli(['push', '--to', local, '--remote', `s3://${BUCKET}/laptop`, '--path-style', '--json'], { cwd: tmp.path, env: s3env(s3.endpoint) });
    assert.strictEqual(r.code, 0, r.stderr);
    const out = r.json<{ status: string; uploaded: string[] }>();
    assert.strictEqual(out.status, 'copied');
    assert.deepStrictEqual([...out.uploaded].sort(), [...made].sort());

    const l = await cli(['list', '--remote', `s3://${BUCKET}/laptop/`, '--path-style', '--json'], { cwd: tmp.path, env: s3env(s3.endpoint) });
    assert.strictEqual(l.code, 0, l.stderr);
    const listed = l.json<{ name: string; bytes: number; complete: boolean }[]>();
    assert.deepStrictEqual(listed.map((x) => x.name), [...made].reverse(), 'newest first');
    assert.ok(listed.every((x) => x.complete));
    for (const x of listed) assert.strictEqual(x.bytes, fs.statSync(path.join(local, x.name)).size);

    // What the server holds is byte for byte the local files (read back through the S3 API).
    const t = target(s3.endpoint);
    for (const n of made) {
      assert.strictEqual(sha(await t.readBytes(n)), sha(fs.readFileSync(path.join(local, n))));
      assert.strictEqual((await t.readBytes(n.replace(/\.db$/, '.manifest.json'))).toString(), fs.readFileSync(path.join(local, n.replace(/\.db$/, '.manifest.json')), 'utf8'));
    }
    const state = await readRemoteState(local);
    const ts = Object.values(state.targets)[0];
    assert.strictEqual(ts.status, 'copied');
    assert.deepStrictEqual([...ts.copied].sort(), [...made].sort());

    // A second push sends nothing again.
    const again = await cli(['push', '--to', local, '--remote', `s3://${BUCKET}/laptop`, '--path-style', '--json'], { cwd: tmp.path, env: s3env(s3.endpoint) });
    assert.strictEqual(again.code, 0, again.stderr);
    assert.deepStrictEqual(again.json<{ uploaded: string[]; present: string[] }>().uploaded, []);
  });

  it('sends no x-amz-checksum headers; x-amz-content-sha256 on every request; Content-MD5 on DeleteObjects; one LIST per sync', async () => {
    const proxy = await recordingProxy(s3.port);
    try {
      const local = tmp.join('backups');
      await backups(tmp.join('ai-memory.db'), local, 3);
      const t = target(proxy.endpoint);
      assert.strictEqual((await pushToTarget({ localDir: local, target: t, keep: 48 })).status, 'copied');
      const lists = proxy.seen.filter((s) => s.method === 'GET' && /list-type=2/.test(s.url));
      assert.strictEqual(lists.length, 1, 'one LIST per sync');
      // Retention to 1 makes a DeleteObjects request.
      proxy.seen.length = 0;
      const o = await pushToTarget({ localDir: local, target: t, keep: 1 });
      assert.strictEqual(o.status, 'copied', JSON.stringify(o.error));
      assert.strictEqual(o.report?.deleted.length, 2);
      const del = proxy.seen.filter((s) => s.method === 'POST' && /delete/.test(s.url));
      assert.ok(del.length >= 1);
      for (const d of del) assert.ok(d.headers['content-md5'], 'DeleteObjects carries Content-MD5');
      for (const s of proxy.seen) {
        assert.ok(!Object.keys(s.headers).some((h) => h.startsWith('x-amz-checksum') || h === 'x-amz-sdk-checksum-algorithm'), `${s.method} ${s.url} sent a checksum header`);
        assert.match(String(s.headers['x-amz-content-sha256']), /^[0-9a-f]{64}$/, `${s.method} ${s.url}: payload hash signed`);
      }
    } finally {
      await proxy.close();
    }
  });

  it('restores on a new machine: pull into an empty folder (checked), then restore gives back every memory', async () => {
    const db = tmp.join('old', 'ai-memory.db');
    fs.mkdirSync(path.dirname(db));
    const local = tmp.join('old', 'backups');
    const made = await backups(db, local, 2);
    assert.strictEqual((await cli(['push', '--to', local, '--remote', `s3://${BUCKET}/laptop`, '--path-style'], { cwd: tmp.path, env: s3env(s3.endpoint) })).code, 0);
    const want = readMemories(db);

    const fresh = tmp.join('new-machine');
    fs.mkdirSync(fresh);
    const p = await cli(['pull', '--remote', `s3://${BUCKET}/laptop`, '--path-style', '--to', path.join(fresh, 'backups'), '--json'], { cwd: fresh, env: s3env(s3.endpoint) });
    assert.strictEqual(p.code, 0, p.stderr);
    const pulled = p.json<{ snapshots: { name: string; status: string; integrity: string }[] }>().snapshots;
    assert.deepStrictEqual(pulled.map((x) => x.name), [made[1]], 'the newest by default');
    assert.strictEqual(pulled[0].integrity, 'ok');
    assert.deepStrictEqual(names(path.join(fresh, 'backups')), [made[1], made[1].replace(/\.db$/, '.manifest.json')].sort());
    assert.strictEqual(fs.statSync(path.join(fresh, 'backups', made[1])).mode & 0o077, 0, 'a pulled snapshot is private');
    assert.strictEqual(fs.statSync(path.join(fresh, 'backups', made[1].replace(/\.db$/, '.manifest.json'))).mode & 0o077, 0, 'and so is its manifest');

    // The old machine (and its database) is elsewhere: here its snapshots name a path that
    // does not exist, which restore-from-folder takes, saying whose they are (ownership.ts).
    fs.rmSync(tmp.join('old'), { recursive: true });
    const newDb = path.join(fresh, 'ai-memory.db');
    const r = await cli(['restore', '--db', newDb, '--from', path.join(fresh, 'backups')], { cwd: fresh });
    assert.strictEqual(r.code, 0, r.stderr);
    assert.match(r.stderr, /not on this machine/);
    assert.deepStrictEqual(readMemories(newDb), want);
    // --all brings the rest; what is already there is left alone.
    const all = await cli(['pull', '--remote', `s3://${BUCKET}/laptop`, '--path-style', '--to', path.join(fresh, 'backups'), '--all', '--json'], { cwd: fresh, env: s3env(s3.endpoint) });
    assert.strictEqual(all.code, 0, all.stderr);
    assert.deepStrictEqual(all.json<{ snapshots: { status: string }[] }>().snapshots.map((x) => x.status), ['present', 'downloaded']);
  });

  it('pull refuses a copy that does not match its manifest and keeps nothing', async () => {
    const local = tmp.join('backups');
    const [name] = await backups(tmp.join('ai-memory.db'), local, 1);
    const t = target(s3.endpoint);
    await pushToTarget({ localDir: local, target: t, keep: 48 });
    await t.uploadBytes(name, Buffer.concat([fs.readFileSync(path.join(local, name)).subarray(0, 4096), Buffer.alloc(10)]));
    const to = tmp.join('pulled');
    const p = await cli(['pull', '--remote', `s3://${BUCKET}/laptop`, '--path-style', '--to', to, '--json'], { cwd: tmp.path, env: s3env(s3.endpoint) });
    assert.strictEqual(p.code, 1);
    assert.match(p.stderr, /SHA_MISMATCH/);
    assert.deepStrictEqual(fs.readdirSync(to), [], 'nothing kept, no temp left');
  });

  it('pull --all passes over the copies that are damaged or refused, names them, and pulls every other one (exit 1)', async () => {
    // After losing the machine: newest first, one bad copy stopped the pull, and nothing
    // older than it came back.
    const local = tmp.join('backups');
    const names = await backups(tmp.join('ai-memory.db'), local, 4);
    const t = target(s3.endpoint);
    await pushToTarget({ localDir: local, target: t, keep: 48 });
    const [oldest, second, third, newest] = names;
    await t.uploadBytes(third, Buffer.concat([fs.readFileSync(path.join(local, third)).subarray(0, 4096), Buffer.alloc(10)])); // bytes not its manifest's
    await t.uploadBytes(newest.replace(/\.db$/, '.manifest.json'), Buffer.from('{"snapshot": "ai-memory-')); // a manifest cut short
    const to = tmp.join('pulled');
    const p = await cli(['pull', '--remote', `s3://${BUCKET}/laptop`, '--path-style', '--to', to, '--all', '--json'], { cwd: tmp.path, env: s3env(s3.endpoint) });
    assert.strictEqual(p.code, 1, p.stderr);
    const out = p.json<{ snapshots: { name: string; status: string }[]; refused: { name: string; code: string; error: string }[] }>();
    assert.deepStrictEqual(out.snapshots.map((x) => [x.name, x.status]).sort(), [[oldest, 'downloaded'], [second, 'downloaded']].sort());
    assert.deepStrictEqual(out.refused.map((x) => [x.name, x.code]), [[newest, 'MANIFEST_INVALID'], [third, 'SHA_MISMATCH']]);
    for (const n of [oldest, second]) assert.strictEqual((await cli(['verify', '--from', path.join(to, n)], { cwd: tmp.path })).code, 0, `${n} pulled whole`);
    assert.deepStrictEqual(fs.readdirSync(to).filter((n) => n.endsWith('.db')).sort(), [oldest, second].sort(), 'nothing of the refused ones kept');
    // In words: each named with why, and how many did not come.
    const text = await cli(['pull', '--remote', `s3://${BUCKET}/laptop`, '--path-style', '--to', tmp.join('pulled2'), '--all'], { cwd: tmp.path, env: s3env(s3.endpoint) });
    assert.strictEqual(text.code, 1);
    assert.match(text.stderr, new RegExp(`Refused : ${third.replace(/\./g, '\\.')}: .*does not match its manifest`));
    assert.match(text.stderr, /error: 2 of 4 snapshots on .* were not pulled/);
    assert.match(text.stdout, /Restore with: /);
    // Without --all (the newest), a refused copy still stops the pull: never an older one in its place.
    const one = await cli(['pull', '--remote', `s3://${BUCKET}/laptop`, '--path-style', '--to', tmp.join('pulled3'), '--json'], { cwd: tmp.path, env: s3env(s3.endpoint) });
    assert.strictEqual(one.code, 1);
    assert.match(one.stderr, /MANIFEST_INVALID/);
  });

  it('pull --all where every copy is refused says none was pulled, not "the others were" (a mirror folder, --json and words)', async () => {
    const local = tmp.join('backups');
    const names = await backups(tmp.join('ai-memory.db'), local, 2, 48, (() => { let t = Date.parse('2026-11-20T10:00:00Z'); return () => new Date((t += 60_000)); })());
    const mirror = tmp.join('mirror');
    fs.mkdirSync(mirror);
    const pushed = await cli(['push', '--to', local, '--remote', mirror, '--json'], { cwd: tmp.path });
    assert.strictEqual(pushed.code, 0, pushed.stderr);
    for (const n of names) {
      const fd = fs.openSync(path.join(mirror, n), 'r+');
      fs.writeSync(fd, Buffer.from('X'), 0, 1, 100); // bytes not their manifests'
      fs.closeSync(fd);
    }
    const p = await cli(['pull', '--remote', mirror, '--to', tmp.join('pulled'), '--all', '--json'], { cwd: tmp.path });
    assert.strictEqual(p.code, 1, p.stderr);
    const out = p.json<{ snapshots: unknown[]; refused: { name: string; code: string }[] }>();
    assert.deepStrictEqual(out.snapshots, []);
    assert.deepStrictEqual(out.refused.map((r) => [r.name, r.code]), [...names].reverse().map((n) => [n, 'SHA_MISMATCH']));
    const text = await cli(['pull', '--remote', mirror, '--to', tmp.join('pulled2'), '--all'], { cwd: tmp.path });
    assert.strictEqual(text.code, 1);
    // Before: "error: 2 of 2 snapshots on … were not pulled (above); the others were."
    assert.match(text.stderr, /error: none of the 2 snapshots on .* was pulled \(above\)\.\n/);
    assert.doesNotMatch(text.stderr, /the others? were/);
    assert.doesNotMatch(text.stdout, /Restore with/);
  });

  it('a manifest object larger than a manifest can be (8 MiB) is refused unread by pull, as in the backup folder', async () => {
    const local = tmp.join('backups');
    const [name] = await backups(tmp.join('ai-memory.db'), local, 1);
    const t = target(s3.endpoint);
    assert.strictEqual((await pushToTarget({ localDir: local, target: t, keep: 48 })).status, 'copied');
    await t.uploadBytes(name.replace(/\.db$/, '.manifest.json'), Buffer.alloc(8 << 20, 0x20));
    const to = tmp.join('pulled');
    const p = await cli(['pull', '--remote', `s3://${BUCKET}/laptop`, '--path-style', '--to', to, '--json'], { cwd: tmp.path, env: s3env(s3.endpoint) });
    assert.strictEqual(p.code, 1, p.stdout);
    assert.match(p.stderr, /MANIFEST_INVALID/);
    assert.match(p.stderr, /more than the 1048576 bytes/, 'refused for its size, not read and parsed');
    assert.deepStrictEqual(fs.readdirSync(to), [], 'nothing kept');
  });

  it('a manifest damaged on the target after it was copied (cut short) is copied again by the next push, not counted "copied" while pull fails on it', async () => {
    const local = tmp.join('backups');
    const [name] = await backups(tmp.join('ai-memory.db'), local, 1);
    const mName = name.replace(/\.db$/, '.manifest.json');
    const t = target(s3.endpoint);
    assert.deepStrictEqual((await pushToTarget({ localDir: local, target: t, keep: 48 })).report?.uploaded, [name]);
    const whole = await t.readBytes(mName);
    await t.uploadBytes(mName, whole.subarray(0, 100)); // a sync or a provider's fault: the first 100 bytes
    const broken = await cli(['pull', '--remote', `s3://${BUCKET}/laptop`, '--path-style', '--to', tmp.join('p1'), '--json'], { cwd: tmp.path, env: s3env(s3.endpoint) });
    assert.strictEqual(broken.code, 1, 'the copy there cannot be restored');
    const o = await pushToTarget({ localDir: local, target: t, keep: 48 });
    assert.strictEqual(o.status, 'copied', JSON.stringify(o.error));
    assert.deepStrictEqual(o.report?.uploaded, [name], 'copied again, not "already there"');
    assert.ok((await t.readBytes(mName)).equals(fs.readFileSync(path.join(local, mName))), 'the manifest there is whole again');
    const p = await cli(['pull', '--remote', `s3://${BUCKET}/laptop`, '--path-style', '--to', tmp.join('p2'), '--json'], { cwd: tmp.path, env: s3env(s3.endpoint) });
    assert.strictEqual(p.code, 0, p.stderr);
  });

  it('a copy rewritten on the target with other bytes of the same size (snapshot, or manifest) is checked and copied again by the next push, not counted "copied" by its size', async () => {
    const local = tmp.join('backups');
    const [name] = await backups(tmp.join('ai-memory.db'), local, 1);
    const mName = name.replace(/\.db$/, '.manifest.json');
    const t = target(s3.endpoint);
    assert.deepStrictEqual((await pushToTarget({ localDir: local, target: t, keep: 48 })).report?.uploaded, [name]);
    assert.deepStrictEqual((await pushToTarget({ localDir: local, target: t, keep: 48 })).report?.present, [name], 'found there: its stamp is now recorded');
    // The snapshot: one page flipped, same size (a sync tool, a provider's fault, a hand).
    const mine = fs.readFileSync(path.join(local, name));
    const other = Buffer.from(mine);
    other[other.length - 100] ^= 0xff;
    await t.uploadBytes(name, other);
    let o = await pushToTarget({ localDir: local, target: t, keep: 48 });
    assert.strictEqual(o.status, 'copied', JSON.stringify(o.error));
    assert.deepStrictEqual(o.report?.uploaded, [name], 'copied again, not "already there"');
    assert.strictEqual(sha(await t.readBytes(name)), sha(mine));
    assert.deepStrictEqual((await pushToTarget({ localDir: local, target: t, keep: 48 })).report?.present, [name], 'then there again, nothing sent');
    // The manifest: the same size, still naming our sha256, but not our bytes (a signature
    // stripped and padded would read the same way).
    const m = fs.readFileSync(path.join(local, mName), 'utf8');
    const edited = m.replace('"tool": ', '"tool" :');
    assert.ok(edited !== m && edited.length === m.length);
    await t.uploadBytes(mName, Buffer.from(edited));
    o = await pushToTarget({ localDir: local, target: t, keep: 48 });
    assert.deepStrictEqual(o.report?.uploaded, [name], 'copied again');
    assert.strictEqual((await t.readBytes(mName)).toString(), m);
  });

  it('remote retention follows the local rule, and a new machine with one snapshot does not wipe the history', async () => {
    const local = tmp.join('backups');
    const made = await backups(tmp.join('ai-memory.db'), local, 4, 0);
    const t = target(s3.endpoint);
    assert.strictEqual((await pushToTarget({ localDir: local, target: t, keep: 0 })).status, 'copied');
    const o = await pushToTarget({ localDir: local, target: t, keep: 3 });
    assert.strictEqual(o.status, 'copied');
    assert.deepStrictEqual(o.report?.deleted, [made[0]]);
    assert.deepStrictEqual((await listRemote(t)).snapshots.map((s) => s.name), made.slice(1).reverse());

    // New machine: an empty folder, one backup of a new database, same target and keep.
    const other = tmp.join('other-backups');
    // A minute later (the first machine's four may all be in this very second).
    const [fresh] = await backups(tmp.join('other.db'), other, 1, 3, () => new Date(Date.now() + 60_000));
    const o2 = await pushToTarget({ localDir: other, target: t, keep: 3 });
    assert.strictEqual(o2.status, 'copied');
    assert.deepStrictEqual(o2.report?.uploaded, [fresh]);
    // Another database's snapshots (their manifests' source_db): counted apart, so none deleted.
    assert.deepStrictEqual(o2.report?.deleted, [], 'the first database\'s history stays whole');
    assert.deepStrictEqual(o2.report?.remoteOnly.map((x) => x.name), [made[3], made[2], made[1]]);
  });

  it('a tiered policy (push --keep-last 1 --keep-daily 3) keeps on the target what it keeps locally: the last of each day, not the newest three', async () => {
    const tz = process.env.TZ;
    process.env.TZ = 'UTC'; // days in local time: fixed here, so the expectation holds in any zone
    try {
      const local = tmp.join('backups');
      const db = tmp.join('ai-memory.db');
      const made: string[] = [];
      // Two backups a day, three days: 10:00 and 11:00 UTC.
      for (const day of ['2026-11-01', '2026-11-02', '2026-11-03']) {
        for (const hour of ['10', '11']) made.push(...(await backups(db, local, 1, 0, () => new Date(`${day}T${hour}:00:00Z`))));
      }
      const r = await cli(['push', '--to', local, '--remote', `s3://${BUCKET}/laptop`, '--path-style', '--keep-last', '1', '--keep-daily', '3', '--json'], { cwd: tmp.path, env: { ...s3env(s3.endpoint), TZ: 'UTC' } });
      assert.strictEqual(r.code, 0, r.stderr);
      const lastOfEachDay = [made[5], made[3], made[1]];
      assert.deepStrictEqual((await listRemote(target(s3.endpoint))).snapshots.map((x) => x.name), lastOfEachDay, 'the newest 3 would be made[5], made[4], made[3]');

      // A second push with a narrower policy deletes what falls out of it, and only that.
      const o = await pushToTarget({ localDir: local, target: target(s3.endpoint), keep: { daily: 2 } });
      assert.strictEqual(o.status, 'copied');
      assert.deepStrictEqual(o.report?.deleted, [made[1]]);
      assert.deepStrictEqual((await listRemote(target(s3.endpoint))).snapshots.map((x) => x.name), [made[5], made[3]]);
    } finally {
      if (tz === undefined) delete process.env.TZ;
      else process.env.TZ = tz;
    }
  });

  it('leaves a fresh unfinished upload (another machine may be mid-upload), and never touches names that are not ours', async () => {
    const local = tmp.join('backups');
    await backups(tmp.join('ai-memory.db'), local, 1);
    const t = target(s3.endpoint);
    await t.uploadBytes('ai-memory-2020-01-01T000000Z.db', Buffer.from('half'));
    await t.uploadBytes('notes.txt', Buffer.from('mine'));
    await t.uploadBytes('ai-memory-custom.db', Buffer.from('not our naming'));
    const other = target(s3.endpoint, 'elsewhere/');
    await other.uploadBytes('ai-memory-2020-01-01T000000Z.db', Buffer.from('other prefix'));
    const o = await pushToTarget({ localDir: local, target: t, keep: 48 });
    assert.strictEqual(o.status, 'copied');
    // Written a moment ago (the server's LastModified): within the grace, left for a later run.
    assert.deepStrictEqual(o.report?.cleaned, []);
    const left = (await t.list()).map((e) => e.name);
    assert.ok(left.includes('notes.txt') && left.includes('ai-memory-custom.db'));
    assert.ok(left.includes('ai-memory-2020-01-01T000000Z.db'));
    assert.deepStrictEqual((await other.list()).map((e) => e.name), ['ai-memory-2020-01-01T000000Z.db']);
  });

  it('the server killed mid-upload: the copy is failed and pending, the local backup untouched; a later run completes it', async () => {
    const local = tmp.join('backups');
    const name = 'ai-memory-2026-11-29T120000Z.db';
    const digest = fakeSnapshot(local, name, 24 << 20);
    const t = target(s3.endpoint);
    t.partBytes = 5 << 20;
    let killed = false;
    const o = await pushToTarget({
      localDir: local,
      target: t,
      keep: 48,
      onProgress: (p) => {
        if (p.phase === 'uploading' && (p.done ?? 0) >= 5 << 20 && !killed) {
          killed = true;
          void s3.kill('SIGKILL');
        }
      },
    });
    assert.ok(killed);
    assert.strictEqual(o.status, 'failed');
    assert.strictEqual(o.error?.code, 'REMOTE_UNREACHABLE', o.error?.message);
    assert.ok(o.next_retry && Date.parse(o.next_retry) > Date.now());
    const st = (await readRemoteState(local)).targets[t.id];
    assert.strictEqual(st.status, 'failed');
    assert.deepStrictEqual(st.pending, [name]);
    assert.ok(st.upload?.uploadId, 'the unfinished multipart upload is remembered');
    assert.strictEqual(sha(fs.readFileSync(path.join(local, name))), digest);

    // The server comes back on the same port with the same data.
    s3 = await startS3Server(s3.dataDir, [BUCKET], s3.port);
    const o2 = await pushToTarget({ localDir: local, target: t, keep: 48 });
    assert.strictEqual(o2.status, 'copied', JSON.stringify(o2.error));
    assert.deepStrictEqual(o2.report?.uploaded, [name]);
    const st2 = (await readRemoteState(local)).targets[t.id];
    assert.strictEqual(st2.upload, undefined);
    assert.strictEqual(st2.attempts, 0);
    assert.strictEqual(sha(await t.readBytes(name)), digest);
  });

  it('wrong credentials: a clear error, the secret in no output, the state failed with a retry time', async () => {
    const local = tmp.join('backups');
    await backups(tmp.join('ai-memory.db'), local, 1);
    const secret = 'Wr0ngSecret-do-not-print';
    const r = await cli(['push', '--to', local, '--remote', `s3://${BUCKET}/laptop`, '--path-style'], { cwd: tmp.path, env: s3env(s3.endpoint, { AWS_SECRET_ACCESS_KEY: secret }) });
    assert.strictEqual(r.code, 1);
    assert.match(r.stderr, /secret key does not match/i);
    assert.ok(!r.stderr.includes(secret) && !r.stdout.includes(secret));
    const unknownKey = await cli(['push', '--to', local, '--remote', `s3://${BUCKET}/laptop`, '--path-style'], { cwd: tmp.path, env: s3env(s3.endpoint, { AWS_ACCESS_KEY_ID: 'NOPE' }) });
    assert.strictEqual(unknownKey.code, 1);
    assert.match(unknownKey.stderr, /access key is not known/i);
    const state = fs.readFileSync(path.join(local, REMOTE_STATE_NAME), 'utf8');
    assert.ok(!state.includes(secret) && !state.includes(S3_SECRET));
    const ts = Object.values(JSON.parse(state).targets)[0] as { status: string; attempts: number; error: { code: string } };
    assert.strictEqual(ts.status, 'failed');
    assert.strictEqual(ts.error.code, 'REMOTE_AUTH');
    assert.strictEqual(ts.attempts, 2);
  });

  it('a missing bucket: REMOTE_NO_BUCKET with what to do; backup --remote still makes the local snapshot (exit 3)', async () => {
    const db = tmp.join('ai-memory.db');
    seedMemory(db, 'p', 't', 'c');
    const r = await cli(['backup', '--db', db, '--to', 'backups', '--remote', 's3://no-such-bucket/laptop', '--path-style', '--json'], { cwd: tmp.path, env: s3env(s3.endpoint) });
    assert.strictEqual(r.code, 3, r.stderr);
    const out = r.json<{ status: string; snapshot: string; remote: { status: string; error: { code: string; hint: string } } }>();
    assert.strictEqual(out.status, 'created');
    assert.ok(fs.existsSync(tmp.join('backups', out.snapshot)));
    assert.strictEqual(out.remote.status, 'failed');
    assert.strictEqual(out.remote.error.code, 'REMOTE_NO_BUCKET');
    assert.match(out.remote.error.hint, /Create the bucket/);
  });

  it('backup --remote with the server gone: local snapshot made, exit 3, copy pending; push later completes it', async () => {
    const db = tmp.join('ai-memory.db');
    seedMemory(db, 'p', 't', 'c');
    const port = s3.port;
    await s3.kill();
    const r = await cli(['backup', '--db', db, '--to', 'backups', '--remote', `s3://${BUCKET}/laptop`, '--path-style'], { cwd: tmp.path, env: s3env(`http://127.0.0.1:${port}`) });
    assert.strictEqual(r.code, 3, r.stderr);
    assert.match(r.stdout, /Snapshot: /);
    assert.match(r.stderr, /off-machine copy .* failed: Could not reach/);
    s3 = await startS3Server(s3.dataDir, [BUCKET], port);
    const p = await cli(['push', '--to', 'backups', '--remote', `s3://${BUCKET}/laptop`, '--path-style', '--json'], { cwd: tmp.path, env: s3env(s3.endpoint) });
    assert.strictEqual(p.code, 0, p.stderr);
    assert.strictEqual(p.json<{ uploaded: string[] }>().uploaded.length, 1);
  });

  it('a refused delete (403 AccessDenied on DeleteObject) is reported, the copies still made', async () => {
    const proxy = await startDenyDeleteProxy(s3.port);
    try {
      const local = tmp.join('backups');
      const made = await backups(tmp.join('ai-memory.db'), local, 3, 0);
      const env = s3env(proxy.endpoint);
      assert.strictEqual((await cli(['push', '--to', local, '--remote', `s3://${BUCKET}/laptop`, '--path-style', '--keep', '0'], { cwd: tmp.path, env })).code, 0);
      const r = await cli(['push', '--to', local, '--remote', `s3://${BUCKET}/laptop`, '--path-style', '--keep', '1', '--json'], { cwd: tmp.path, env });
      assert.strictEqual(r.code, 1, 'refused retention is not success');
      const out = r.json<{ status: string; refused: { name: string; message: string }[]; error: { code: string; message: string } }>();
      assert.strictEqual(out.status, 'failed');
      assert.strictEqual(out.error.code, 'REMOTE_DENIED');
      assert.deepStrictEqual(out.refused.map((x) => x.name).sort(), made.slice(0, 2).sort());
      assert.match(out.refused[0].message, /AccessDenied/);
      assert.ok(proxy.denied.length >= 1);
      assert.strictEqual((await listRemote(target(s3.endpoint))).snapshots.length, 3, 'nothing was deleted');
      const ts = Object.values((await readRemoteState(local)).targets)[0];
      assert.deepStrictEqual([...ts.refused_deletes].sort(), made.slice(0, 2).sort());
    } finally {
      await proxy.close();
    }
  });
});

describe('off-machine copies: mirror folder', function () {
  this.timeout(60_000);
  const tmp = useTempDir('aimb-mirror-');

  it('an unfinished upload is cleaned once it is older than the grace (a crash\'s), not while it may be another machine\'s in progress', async () => {
    const local = tmp.join('backups');
    await backups(tmp.join('g.db'), local, 1);
    const mirror = tmp.join('nas-grace');
    fs.mkdirSync(mirror);
    const half = path.join(mirror, 'ai-memory-2020-01-01T000000Z.db');
    const lone = path.join(mirror, 'ai-memory-2020-01-02T000000Z.manifest.json');
    fs.writeFileSync(half, 'half');
    fs.writeFileSync(lone, '{}');
    const t = new MirrorTarget(mirror);
    assert.deepStrictEqual((await pushToTarget({ localDir: local, target: t, keep: 48 })).report?.cleaned, []);
    assert.ok(fs.existsSync(half) && fs.existsSync(lone), 'fresh: left alone');
    const old = new Date(Date.now() - UNFINISHED_GRACE_MS - 60_000);
    fs.utimesSync(half, old, old);
    fs.utimesSync(lone, old, old);
    assert.deepStrictEqual((await pushToTarget({ localDir: local, target: t, keep: 48 })).report?.cleaned.sort(), [path.basename(half), path.basename(lone)].sort());
    assert.ok(!fs.existsSync(half) && !fs.existsSync(lone), 'old: cleaned');
  });

  it('a snapshot rewritten in the mirror with other bytes of the same size is copied again by the next push', async () => {
    const local = tmp.join('backups');
    const [name] = await backups(tmp.join('rw.db'), local, 1);
    const mirror = tmp.join('nas-rewritten');
    fs.mkdirSync(mirror);
    const t = new MirrorTarget(mirror);
    assert.deepStrictEqual((await pushToTarget({ localDir: local, target: t, keep: 48 })).report?.uploaded, [name]);
    assert.deepStrictEqual((await pushToTarget({ localDir: local, target: t, keep: 48 })).report?.present, [name]);
    const there = path.join(mirror, name);
    const fd = fs.openSync(there, 'r+');
    fs.writeSync(fd, Buffer.from('XXXX'), 0, 4, fs.fstatSync(fd).size - 200); // in place: same size, a new mtime
    fs.closeSync(fd);
    const o = await pushToTarget({ localDir: local, target: t, keep: 48 });
    assert.deepStrictEqual(o.report?.uploaded, [name], 'copied again, not "already there"');
    assert.ok(fs.readFileSync(there).equals(fs.readFileSync(path.join(local, name))));
  });

  it('a copy state whose stamps were damaged (a number, a list) does not fail the push: the copy is judged as without them', async () => {
    const local = tmp.join('backups');
    const [name] = await backups(tmp.join('st.db'), local, 1);
    const mirror = tmp.join('nas-stamps');
    fs.mkdirSync(mirror);
    const t = new MirrorTarget(mirror);
    assert.deepStrictEqual((await pushToTarget({ localDir: local, target: t, keep: 48 })).report?.uploaded, [name]);
    const file = path.join(local, REMOTE_STATE_NAME);
    for (const stamps of [{ [name]: 5, [name.replace(/\.db$/, '.manifest.json')]: null }, [1, 2]]) {
      const state = JSON.parse(fs.readFileSync(file, 'utf8')) as { targets: Record<string, { stamps?: unknown }> };
      for (const ts of Object.values(state.targets)) ts.stamps = stamps;
      fs.writeFileSync(file, JSON.stringify(state));
      const o = await pushToTarget({ localDir: local, target: t, keep: 48 });
      assert.strictEqual(o.status, 'copied', JSON.stringify(o.error));
      assert.deepStrictEqual(o.report?.present, [name]);
    }
  });

  it('retention on the target counts each database\'s snapshots apart, as locally: a push for one never deletes the other\'s copies', async () => {
    const local = tmp.join('backups');
    let clock = Date.parse('2026-02-01T00:00:00Z');
    const at = () => new Date((clock += 3600_000));
    const b = await backups(tmp.join('b.db'), local, 2, 48, at);
    const a = await backups(tmp.join('a.db'), local, 3, 48, at);
    const mirror = tmp.join('nas');
    fs.mkdirSync(mirror);
    const t = new MirrorTarget(mirror);
    assert.strictEqual((await pushToTarget({ localDir: local, target: t, keep: 10 })).status, 'copied');
    assert.deepStrictEqual(names(mirror).filter((n) => n.endsWith('.db')), [...a, ...b].sort());
    // a.db's next backup keeps its newest 2, here and there; b.db's two stay on the target, as they stay here.
    const [a4] = await backups(tmp.join('a.db'), local, 1, 2, at);
    const o = await pushToTarget({ localDir: local, target: t, keep: 2 });
    assert.strictEqual(o.status, 'copied', JSON.stringify(o.error));
    assert.deepStrictEqual(o.report?.deleted.sort(), [a[0], a[1]].sort());
    assert.deepStrictEqual(names(mirror).filter((n) => n.endsWith('.db')), [a[2], a4, ...b].sort());
    // Gone from the folder (another machine's, a wiped disk's): whose they are is read from the target's manifests, once.
    for (const n of b) for (const f of [n, n.replace(/\.db$/, '.manifest.json')]) fs.rmSync(path.join(local, f));
    const again = await pushToTarget({ localDir: local, target: t, keep: 2 });
    assert.deepStrictEqual(again.report?.deleted, []);
    assert.deepStrictEqual(names(mirror).filter((n) => n.endsWith('.db')), [a[2], a4, ...b].sort());
    const owners = (await readRemoteState(local)).targets[t.id].owners ?? {};
    assert.deepStrictEqual(b.map((n) => owners[n]), b.map(() => fs.realpathSync(tmp.join('b.db'))));
    // Credentials that cannot read objects back (write-only): whose they are was remembered
    // when they were sent, so retention needs no read; without that memory, those kept are said.
    class WriteOnly extends MirrorTarget {
      override readBytes(): Promise<Buffer> {
        return Promise.reject(new Error('AccessDenied'));
      }
    }
    const w = new WriteOnly(mirror);
    const [a5] = await backups(tmp.join('a.db'), local, 1, 2, at);
    const o3 = await pushToTarget({ localDir: local, target: w, keep: 2 });
    assert.deepStrictEqual(o3.report?.deleted, [a[2]]);
    assert.deepStrictEqual(o3.report?.unreadable, []);
    fs.rmSync(path.join(local, REMOTE_STATE_NAME));
    for (const n of [a4]) for (const f of [n, n.replace(/\.db$/, '.manifest.json')]) fs.rmSync(path.join(local, f));
    const o4 = await pushToTarget({ localDir: local, target: w, keep: 2 });
    assert.deepStrictEqual(o4.report?.deleted, []);
    assert.deepStrictEqual(o4.report?.unreadable.map((u) => u.name).sort(), [a4, ...b].sort());
    assert.deepStrictEqual(names(mirror).filter((n) => n.endsWith('.db')), [a4, a5, ...b].sort());
  });

  it('a snapshot damaged here is skipped and named; the others are copied (one bit-rotted file stopped every push)', async () => {
    const local = tmp.join('backups');
    for (const h of ['10', '11', '12']) fakeSnapshot(local, `ai-memory-2026-11-29T${h}0000Z.db`, 4096);
    const rotten = path.join(local, 'ai-memory-2026-11-29T110000Z.db');
    const bytes = fs.readFileSync(rotten);
    bytes[2000] ^= 0x40;
    fs.writeFileSync(rotten, bytes);
    const mirror = tmp.join('nas');
    fs.mkdirSync(mirror);
    const o = await pushToTarget({ localDir: local, target: new MirrorTarget(mirror), keep: 10 });
    assert.strictEqual(o.status, 'copied', JSON.stringify(o.error));
    assert.deepStrictEqual(o.report?.uploaded.sort(), ['ai-memory-2026-11-29T100000Z.db', 'ai-memory-2026-11-29T120000Z.db']);
    assert.match(o.report?.skipped.find((x) => x.name === path.basename(rotten))?.reason ?? '', /damaged here/);
    assert.ok(!fs.existsSync(path.join(mirror, path.basename(rotten))));
  });

  it('a snapshot of the same name from another machine on the target is never replaced, nor taken for ours', async () => {
    const name = 'ai-memory-2026-11-30T120000Z.db';
    const mirror = tmp.join('nas');
    fs.mkdirSync(mirror);
    const t = new MirrorTarget(mirror);
    fakeSnapshot(tmp.join('m1'), name, 4096);
    assert.deepStrictEqual((await pushToTarget({ localDir: tmp.join('m1'), target: t, keep: 10 })).report?.uploaded, [name]);
    const theirs = fs.readFileSync(path.join(mirror, name));
    // Same second, same size, other bytes; then other size.
    for (const [dir, bytes] of [['m2', 4096], ['m3', 8192]] as const) {
      fakeSnapshot(tmp.join(dir), name, bytes);
      const o = await pushToTarget({ localDir: tmp.join(dir), target: t, keep: 10 });
      assert.deepStrictEqual(o.report?.present, [], dir);
      assert.deepStrictEqual(o.report?.uploaded, [], dir);
      assert.match(o.report?.skipped.find((x) => x.name === name)?.reason ?? '', /another snapshot of this name/, dir);
      assert.ok(fs.readFileSync(path.join(mirror, name)).equals(theirs), `${dir}: the first machine's snapshot is still there`);
    }
  });

  it('two machines with the same database path: the target\'s retention takes each folder\'s own snapshots, never the other\'s newest', async () => {
    const mirror = tmp.join('nas');
    fs.mkdirSync(mirror);
    const t = new MirrorTarget(mirror);
    const one = tmp.join('machine1');
    const two = tmp.join('machine2');
    fakeSnapshot(one, 'ai-memory-2026-11-29T100000Z.db', 2048);
    for (const h of ['11', '12', '13']) fakeSnapshot(two, `ai-memory-2026-11-29T${h}0000Z.db`, 2048);
    await pushToTarget({ localDir: one, target: t, keep: 2 });
    const o = await pushToTarget({ localDir: two, target: t, keep: 3 });
    // Machine 2's three newer ones fill any keep-2 of the union; machine 1's stays all the same.
    assert.deepStrictEqual(o.report?.deleted, []);
    const o1 = await pushToTarget({ localDir: two, target: t, keep: 2 });
    assert.deepStrictEqual(o1.report?.deleted, ['ai-memory-2026-11-29T110000Z.db'], 'machine 2 thins its own');
    assert.ok(fs.existsSync(path.join(mirror, 'ai-memory-2026-11-29T100000Z.db')), "machine 1's only copy stays");
    // Including one it held there at the last run and has let go since.
    fs.rmSync(path.join(two, 'ai-memory-2026-11-29T120000Z.db'));
    fs.rmSync(path.join(two, 'ai-memory-2026-11-29T120000Z.manifest.json'));
    fakeSnapshot(two, 'ai-memory-2026-11-29T140000Z.db', 2048);
    const o2 = await pushToTarget({ localDir: two, target: t, keep: 2 });
    assert.deepStrictEqual(o2.report?.deleted, ['ai-memory-2026-11-29T120000Z.db']);
    const back = await pushToTarget({ localDir: one, target: t, keep: 2 });
    assert.deepStrictEqual(back.report?.present, ['ai-memory-2026-11-29T100000Z.db']);
  });

  it('retention on the target never deletes a snapshot whose manifest names its database by a relative path (ai-memory\'s CLI): whose it is is a guess', async () => {
    const local = tmp.join('backups');
    let clock = Date.parse('2026-02-01T00:00:00Z');
    const at = () => new Date((clock += 3600_000));
    const made = await backups(tmp.join('ai-memory.db'), local, 4, 48, at);
    // Their manifests as ai-memory's CLI writes them, run from the project's folder.
    for (const n of made) {
      const f = path.join(local, n.replace(/\.db$/, '.manifest.json'));
      fs.writeFileSync(f, JSON.stringify({ ...JSON.parse(fs.readFileSync(f, 'utf8')), source_db: 'ai-memory.db' }, null, 2));
    }
    const mirror = tmp.join('nas');
    fs.mkdirSync(mirror);
    const o = await pushToTarget({ localDir: local, target: new MirrorTarget(mirror), keep: 1 });
    assert.strictEqual(o.status, 'copied', JSON.stringify(o.error));
    assert.deepStrictEqual(o.report?.deleted, []);
    assert.deepStrictEqual(names(mirror).filter((n) => n.endsWith('.db')), [...made].sort());
  });

  it('a mirror folder that is the backup folder itself (by a link, or a folder inside it) is refused: nothing copied, nothing deleted, never "copied"', async () => {
    const local = tmp.join('backups');
    let clock = Date.parse('2026-03-01T00:00:00Z');
    const at = () => new Date((clock += 3600_000));
    const made = await backups(tmp.join('ai-memory.db'), local, 3, 10, at);
    // The oldest archived (page-dedup), as `--plain 2` would leave it.
    seedMemory(tmp.join('ai-memory.db'), 'proj', 'one more', 'content');
    const archived = await runBackup({ dbPath: tmp.join('ai-memory.db'), backupDir: local, keep: 10, plain: 2, now: at });
    made.push(path.basename(archived.snapshotPath));
    fs.mkdirSync(path.join(local, 'offsite'));
    const before = fs.readdirSync(local).sort();
    assert.ok(!before.includes(made[0]), 'the oldest is archived, not a plain file');
    fs.symlinkSync(local, tmp.join('backups-link'));
    for (const mirror of [tmp.join('backups-link'), local, path.join(local, 'offsite')]) {
      // The CLI: a push keeping fewer than the folder keeps deleted the folder's own snapshots ("2 old deleted").
      const r = await cli(['push', '--to', local, '--remote', mirror, '--keep', '1', '--json'], { cwd: tmp.path });
      assert.strictEqual(r.code, 1, `${mirror}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /REMOTE_UNAVAILABLE/);
      assert.match(r.stdout + r.stderr, /backup folder/);
      assert.deepStrictEqual(fs.readdirSync(local).filter((n) => n !== REMOTE_STATE_NAME).sort(), before.filter((n) => n !== REMOTE_STATE_NAME), `${mirror}: the folder is as it was (no snapshot deleted, none un-archived)`);
      assert.deepStrictEqual(fs.readdirSync(path.join(local, 'offsite')), [], `${mirror}: nothing copied inside the folder`);
      // The engine as the extension runs it: failed (said), never "copied".
      const o = await pushToTarget({ localDir: local, target: new MirrorTarget(mirror), keep: 1 });
      assert.strictEqual(o.status, 'failed');
      assert.strictEqual(o.error?.code, 'REMOTE_UNAVAILABLE');
      assert.deepStrictEqual(fs.readdirSync(local).filter((n) => n !== REMOTE_STATE_NAME).sort(), before.filter((n) => n !== REMOTE_STATE_NAME));
    }
    const listed = await cli(['list', '--to', local, '--json'], { cwd: tmp.path });
    assert.strictEqual(listed.code, 0, listed.stderr);
    for (const n of made) assert.ok(listed.stdout.includes(n), `${n} still listed`);
    // A real mirror beside it still works.
    const nas = tmp.join('nas-real');
    fs.mkdirSync(nas);
    const ok = await pushToTarget({ localDir: local, target: new MirrorTarget(nas), keep: 10 });
    assert.strictEqual(ok.status, 'copied', JSON.stringify(ok.error));
    assert.deepStrictEqual(names(nas).filter((n) => n.endsWith('.db')), [...made].sort());
  });

  it('a manifest in the mirror larger than a manifest can be (a 1 GiB file) is refused unread: pull stays small and says why', async () => {
    const local = tmp.join('backups');
    const [name] = await backups(tmp.join('ai-memory.db'), local, 1);
    const mirror = tmp.join('nas-big');
    fs.mkdirSync(mirror);
    assert.strictEqual((await pushToTarget({ localDir: local, target: new MirrorTarget(mirror), keep: 48 })).status, 'copied');
    const m = path.join(mirror, name.replace(/\.db$/, '.manifest.json'));
    fs.rmSync(m);
    fs.writeFileSync(m, '');
    fs.truncateSync(m, 1 << 30); // sparse: no disk, but 1 GiB to whoever reads it
    // The CLI as a process, its peak memory (maxRSS) written at exit.
    const preload = tmp.join('rss.js');
    fs.writeFileSync(preload, `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(tmp.join('rss.txt'))}, String(process.resourceUsage().maxRSS)));`);
    const r = spawnSync(process.execPath, ['--require', preload, await cliBundle(), 'pull', '--remote', mirror, '--to', tmp.join('fresh'), '--snapshot', name, '--json'], { cwd: tmp.path, encoding: 'utf8', env: { PATH: process.env.PATH, HOME: tmp.path }, timeout: 60_000 });
    assert.strictEqual(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /MANIFEST_INVALID/);
    assert.match(r.stderr, /more than the 1048576 bytes/);
    const rssMb = Number(fs.readFileSync(tmp.join('rss.txt'), 'utf8')) / 1024;
    assert.ok(rssMb < 400, `peak memory ${rssMb.toFixed(0)} MB: the 1 GiB file was not read`);
  });

  it('copies with the source permissions; a mirror that disappears is pending (never created), and completed when it is back', async () => {
    const local = tmp.join('backups');
    const made = await backups(tmp.join('ai-memory.db'), local, 2);
    fs.chmodSync(path.join(local, made[0]), 0o600);
    const mirror = tmp.join('nas');
    fs.mkdirSync(mirror);
    const t = new MirrorTarget(mirror);
    assert.strictEqual((await pushToTarget({ localDir: local, target: t, keep: 48 })).status, 'copied');
    assert.deepStrictEqual(names(mirror), names(local));
    assert.strictEqual(fs.statSync(path.join(mirror, made[0])).mode & 0o777, 0o600);
    assert.strictEqual(fs.statSync(path.join(mirror, made[0].replace(/\.db$/, '.manifest.json'))).mode & 0o777, 0o600, 'its manifest no more readable than it');

    // Unmounted: the folder is gone.
    fs.renameSync(mirror, tmp.join('nas-away'));
    const [third] = await backups(tmp.join('ai-memory.db'), local, 1);
    const o = await pushToTarget({ localDir: local, target: t, keep: 48 });
    assert.strictEqual(o.status, 'failed');
    assert.strictEqual(o.error?.code, 'REMOTE_UNAVAILABLE');
    assert.match(o.error?.message ?? '', /not there/);
    assert.ok(!fs.existsSync(mirror), 'the mount point is never created');
    assert.deepStrictEqual((await readRemoteState(local)).targets[t.id].pending, [third]);

    // Back again.
    fs.renameSync(tmp.join('nas-away'), mirror);
    const o2 = await pushToTarget({ localDir: local, target: t, keep: 48 });
    assert.strictEqual(o2.status, 'copied');
    assert.deepStrictEqual(o2.report?.uploaded, [third]);
    assert.deepStrictEqual(names(mirror), names(local));
    // And the CLI restores from it on a new machine.
    const p = await cli(['pull', '--remote', mirror, '--to', tmp.join('fresh'), '--json'], { cwd: tmp.path });
    assert.strictEqual(p.code, 0, p.stderr);
    assert.strictEqual(p.json<{ snapshots: { name: string }[] }>().snapshots[0].name, third);
  });
});

describe('AWS credentials and settings for the CLI', function () {
  const tmp = useTempDir('aimb-aws-');

  it('reads profiles (dots in names, [profile x] in config, s3 sub-settings) with env winning', async () => {
    const ini = parseAwsIni('[default]\naws_access_key_id = A\n# comment\n[profile my.dev]\nregion = eu-west-1\ns3 =\n  addressing_style = path\n  endpoint_url = http://127.0.0.1:9000\n');
    assert.strictEqual(ini.get('default')?.aws_access_key_id, 'A');
    assert.strictEqual(ini.get('profile my.dev')?.['s3.addressing_style'], 'path');
    fs.mkdirSync(tmp.join('.aws'));
    fs.writeFileSync(tmp.join('.aws', 'credentials'), '[my.dev]\naws_access_key_id = DEVKEY\naws_secret_access_key = devsecret\n[default]\naws_access_key_id = DEF\naws_secret_access_key = defsecret\n');
    fs.writeFileSync(tmp.join('.aws', 'config'), '[profile my.dev]\nregion = eu-west-1\ns3 =\n  addressing_style = path\n  endpoint_url = http://127.0.0.1:9000\n');
    const dev = await loadAwsSettings({ AWS_PROFILE: 'my.dev' }, tmp.path);
    assert.deepStrictEqual(dev.credentials, { accessKeyId: 'DEVKEY', secretAccessKey: 'devsecret', sessionToken: undefined });
    assert.strictEqual(dev.region, 'eu-west-1');
    assert.strictEqual(dev.endpoint, 'http://127.0.0.1:9000');
    assert.strictEqual(dev.pathStyle, true);
    const env = await loadAwsSettings({ AWS_ACCESS_KEY_ID: 'ENV', AWS_SECRET_ACCESS_KEY: 'envsecret', AWS_SESSION_TOKEN: 'tok', AWS_ENDPOINT_URL: 'https://r2.example', AWS_REGION: 'auto' }, tmp.path);
    assert.strictEqual(env.credentials?.accessKeyId, 'ENV');
    assert.strictEqual(env.credentials?.sessionToken, 'tok');
    assert.strictEqual(env.endpoint, 'https://r2.example');
    assert.strictEqual(env.region, 'auto');
    assert.ok(!String(env.credentialSource).includes('envsecret'));
    assert.strictEqual((await loadAwsSettings({}, tmp.path)).credentials?.accessKeyId, 'DEF');
    await assert.rejects(loadAwsSettings({ AWS_PROFILE: 'nope' }, tmp.path), /profile "nope"/);
  });

  it('an endpoint with a user name or password in it is refused without echoing it', async () => {
    fs.mkdirSync(tmp.join('backups'));
    const r = await cli(['push', '--to', 'backups', '--remote', 's3://b/p', '--endpoint', 'https://AKID:hunter2@s3.example.com'], { cwd: tmp.path, env: { AWS_ACCESS_KEY_ID: 'A', AWS_SECRET_ACCESS_KEY: 'S' } });
    assert.strictEqual(r.code, 2);
    assert.match(r.stderr, /user name or password/);
    assert.ok(!r.stderr.includes('hunter2') && !r.stdout.includes('hunter2'));
  });

  it('a --remote with a user name or password in it is refused without echoing it (s3:// or any other scheme)', async () => {
    fs.mkdirSync(tmp.join('backups'));
    for (const remote of ['s3://AKID:hunter2@bucket/prefix', 'https://AKID:hunter2@s3.example.com/bucket', 'S3://hunter2@bucket']) {
      for (const cmd of [['push', '--to', 'backups'], ['list'], ['pull', '--to', 'backups']]) {
        const r = await cli([...cmd, '--remote', remote, '--json'], { cwd: tmp.path, env: { AWS_ACCESS_KEY_ID: 'A', AWS_SECRET_ACCESS_KEY: 'S' } });
        assert.strictEqual(r.code, 2, `${cmd[0]} ${remote}: ${r.stderr}`);
        assert.match(r.stderr, /user name or password/);
        assert.ok(!r.stderr.includes('hunter2') && !r.stdout.includes('hunter2'), `${cmd[0]} ${remote} echoed the secret: ${r.stdout}${r.stderr}`);
      }
    }
    // An @ after the bucket is part of the prefix, not a credential.
    assert.deepStrictEqual(parseRemote('s3://bucket/team@home/laptop', tmp.path), { kind: 's3', bucket: 'bucket', prefix: 'team@home/laptop/' });
  });

  it('no credentials at all: NO_CREDENTIALS saying where they are looked for', async () => {
    fs.mkdirSync(tmp.join('backups'));
    const r = await cli(['push', '--to', 'backups', '--remote', 's3://b/p'], { cwd: tmp.path, env: {} });
    assert.strictEqual(r.code, 1);
    assert.match(r.stderr, /No credentials for s3:\/\/b\/p/);
    assert.match(r.stderr, /AWS_ACCESS_KEY_ID/);
  });
});
