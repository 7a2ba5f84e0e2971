/**
 * Faults on the wire and at the target never make a copy be claimed that is not whole there,
 * never leave one of ours damaged there for good, and never fail the backup: a manifest PUT
 * answered 200 but not stored, a snapshot of ours cut short (or with a damaged manifest)
 * on the target, a killed pull's or mirror copy's temp, a copy state that cannot be written.
 * Real S3 protocol server (@20minutes/s3rver) on 127.0.0.1, started and stopped by PID.
 */
import * as assert from 'assert';
import { spawnSync } from 'child_process';
import { createHash, randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { runBackup } from '../../src/core/ops/backup';
import { pullFromTarget } from '../../src/core/ops/pull';
import { MirrorTarget } from '../../src/core/remote/mirrorTarget';
import { readRemoteState, REMOTE_STATE_NAME } from '../../src/core/remote/remoteState';
import { S3Target } from '../../src/core/remote/s3Target';
import { listRemote, pushToTarget } from '../../src/core/remote/sync';
import { tempPath } from '../../src/core/store/atomicFs';
import { rfc3339, serializeManifest } from '../../src/core/store/manifest';
import { createAiMemoryDb } from '../support/aiMemoryDb';
import { S3_KEY, S3_SECRET, startLoopbackProxy, startS3Server, type S3Server } from '../support/s3server';
import { useTempDir } from '../support/tmp';

const BUCKET = 'backups';
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function target(endpoint: string, prefix = 'laptop/'): S3Target {
  return new S3Target({ endpoint, region: 'us-east-1', bucket: BUCKET, prefix, pathStyle: true }, { accessKeyId: S3_KEY, secretAccessKey: S3_SECRET });
}

function fakeSnapshot(dir: string, name: string, bytes: number): Buffer {
  fs.mkdirSync(dir, { recursive: true });
  const data = randomBytes(bytes);
  fs.writeFileSync(path.join(dir, name), data);
  const m = { snapshot: name, sha256: sha(data), bytes, source_db: '/x/ai-memory.db', version: '0.1.0', created_at: rfc3339(new Date()), integrity: 'unverified' as const };
  fs.writeFileSync(path.join(dir, name.replace(/\.db$/, '.manifest.json')), serializeManifest(m));
  return data;
}

/** A temp name of ours as a process that no longer runs would have left it. */
function deadTempName(dir: string, purpose: string): string {
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
  return path.basename(tempPath(dir, purpose)).replace(`-${process.pid}-`, `-${dead}-`);
}

/** A loopback proxy that answers a PUT whose URL matches `swallow` with 200 and the body's MD5 as ETag, storing nothing. */
async function swallowingProxy(upstream: number, swallow: RegExp): Promise<{ endpoint: string; swallowed: string[]; close(): Promise<void> }> {
  const swallowed: string[] = [];
  const proxy = await startLoopbackProxy(upstream, (req, res) => {
    if (req.method !== 'PUT' || !swallow.test(req.url ?? '')) return false;
    swallowed.push(req.url ?? '');
    const h = createHash('md5');
    req.on('data', (c: Buffer) => h.update(c));
    req.on('end', () => {
      res.writeHead(200, { etag: `"${h.digest('hex')}"` });
      res.end();
    });
    return true;
  });
  return { ...proxy, swallowed };
}

describe('off-machine copies: faults on the wire and at the target', function () {
  this.timeout(120_000);
  const tmp = useTempDir('aimb-remote-faults-');
  let s3: S3Server;

  beforeEach(async () => {
    s3 = await startS3Server(tmp.join('s3data'), [BUCKET]);
  });
  afterEach(async () => {
    await s3.kill();
  });

  it('a manifest PUT answered 200 but not stored: the push fails, and the snapshot is not counted as copied', async () => {
    const local = tmp.join('backups');
    const name = 'ai-memory-2026-11-29T120000Z.db';
    fakeSnapshot(local, name, 4096);
    const proxy = await swallowingProxy(s3.port, /\.manifest\.json$/);
    try {
      const o = await pushToTarget({ localDir: local, target: target(proxy.endpoint), keep: 48 });
      assert.strictEqual(proxy.swallowed.length, 1);
      assert.strictEqual(o.status, 'failed', 'a snapshot whose manifest is not there is not copied');
      assert.strictEqual(o.error?.code, 'REMOTE_MISMATCH', o.error?.message);
      const st = (await readRemoteState(local)).targets[target(proxy.endpoint).id];
      assert.deepStrictEqual(st.copied, []);
      assert.deepStrictEqual(st.pending, [name]);
    } finally {
      await proxy.close();
    }
    // The target says what it holds: an unfinished upload; the next push completes it.
    assert.deepStrictEqual((await listRemote(target(s3.endpoint))).snapshots.map((s) => s.complete), [false]);
    const o2 = await pushToTarget({ localDir: local, target: target(s3.endpoint), keep: 48 });
    assert.strictEqual(o2.status, 'copied', JSON.stringify(o2.error));
    assert.deepStrictEqual((await listRemote(target(s3.endpoint))).snapshots.map((s) => s.complete), [true]);
  });

  it('a snapshot of ours cut short on the target (its manifest there names our sha256) is copied again, not taken for another machine\'s', async () => {
    const local = tmp.join('backups');
    const name = 'ai-memory-2026-11-29T120000Z.db';
    const data = fakeSnapshot(local, name, 64 << 10);
    const t = target(s3.endpoint);
    await t.uploadBytes(name, data.subarray(0, 20_000));
    await t.uploadBytes(name.replace(/\.db$/, '.manifest.json'), fs.readFileSync(path.join(local, name.replace(/\.db$/, '.manifest.json'))));
    const o = await pushToTarget({ localDir: local, target: t, keep: 48 });
    assert.strictEqual(o.status, 'copied', JSON.stringify(o.error));
    assert.deepStrictEqual(o.report?.skipped, []);
    assert.deepStrictEqual(o.report?.uploaded, [name]);
    assert.strictEqual(sha(await t.readBytes(name)), sha(data));
  });

  it('a damaged manifest on the target: ours (its bytes there are ours) is repaired, never counted as already there; another\'s is left', async () => {
    const name = 'ai-memory-2026-11-29T130000Z.db';
    const mName = name.replace(/\.db$/, '.manifest.json');
    // Ours: the right bytes there, a manifest cut short.
    const mine = tmp.join('mine');
    const data = fakeSnapshot(mine, name, 64 << 10);
    const t = target(s3.endpoint, 'a/');
    await t.uploadBytes(name, data);
    await t.uploadBytes(mName, fs.readFileSync(path.join(mine, mName)).subarray(0, 40));
    const o = await pushToTarget({ localDir: mine, target: t, keep: 48 });
    assert.strictEqual(o.status, 'copied', JSON.stringify(o.error));
    assert.deepStrictEqual(o.report?.present, [], 'a snapshot whose manifest there does not parse is not "already there"');
    assert.deepStrictEqual(o.report?.uploaded, [name]);
    assert.strictEqual((await t.readBytes(mName)).toString(), fs.readFileSync(path.join(mine, mName), 'utf8'));
    // Another's: same name and size, other bytes, a damaged manifest: neither replaced nor claimed.
    const other = tmp.join('other');
    fakeSnapshot(other, name, 64 << 10);
    const t2 = target(s3.endpoint, 'b/');
    const theirs = randomBytes(64 << 10);
    await t2.uploadBytes(name, theirs);
    await t2.uploadBytes(mName, Buffer.from('{"snapshot":'));
    const o2 = await pushToTarget({ localDir: other, target: t2, keep: 48 });
    assert.deepStrictEqual(o2.report?.present, []);
    assert.deepStrictEqual(o2.report?.uploaded, []);
    assert.match(o2.report?.skipped.find((x) => x.name === name)?.reason ?? '', /damaged manifest/);
    assert.strictEqual(sha(await t2.readBytes(name)), sha(theirs));
    assert.deepStrictEqual((await readRemoteState(other)).targets[t2.id].copied, []);
  });

  it('a copy state that cannot be written (a folder in its place) fails the copy, never throws into the backup', async () => {
    const local = tmp.join('backups');
    fakeSnapshot(local, 'ai-memory-2026-11-29T120000Z.db', 4096);
    fs.mkdirSync(path.join(local, REMOTE_STATE_NAME));
    const o = await pushToTarget({ localDir: local, target: target(s3.endpoint), keep: 48 });
    assert.strictEqual(o.status, 'failed');
    assert.ok(o.error?.message.includes(REMOTE_STATE_NAME), o.error?.message);
  });

  it('cancelled stays cancelled, even when the copy state cannot be written on the way out', async () => {
    const local = tmp.join('backups-cancel');
    fakeSnapshot(local, 'ai-memory-2026-11-29T120000Z.db', 4096);
    fs.mkdirSync(path.join(local, REMOTE_STATE_NAME));
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(pushToTarget({ localDir: local, target: target(s3.endpoint), keep: 48, signal: ac.signal }), (e: Error & { code?: string }) => e.code === 'CANCELLED');
  });
});

describe('off-machine copies: what a killed pull or mirror copy left', function () {
  this.timeout(60_000);
  const tmp = useTempDir('aimb-remote-left-');

  it('a pull\'s work folder (a partial snapshot) and a mirror copy\'s temp of a dead process are removed by the next pull / push', async () => {
    const db = tmp.join('ai-memory.db');
    createAiMemoryDb(db, { memories: 5 });
    const local = tmp.join('backups');
    await runBackup({ dbPath: db, backupDir: local, keep: 48 });
    const mirror = tmp.join('nas');
    fs.mkdirSync(mirror);
    const leftCopy = path.join(mirror, deadTempName(mirror, 'mirror'));
    fs.writeFileSync(leftCopy, randomBytes(10_000));
    const o = await pushToTarget({ localDir: local, target: new MirrorTarget(mirror), keep: 48 });
    assert.strictEqual(o.status, 'copied', JSON.stringify(o.error));
    assert.ok(!fs.existsSync(leftCopy), 'the mirror copy\'s temp of a process that died is removed');

    const to = tmp.join('restored');
    fs.mkdirSync(to);
    const work = path.join(to, deadTempName(to, 'pull'));
    fs.mkdirSync(work);
    fs.writeFileSync(path.join(work, o.report?.uploaded[0] ?? 'x.db'), randomBytes(10_000));
    const pulled = await pullFromTarget({ target: new MirrorTarget(mirror), toDir: to });
    assert.strictEqual(pulled[0].status, 'downloaded');
    assert.ok(!fs.existsSync(work), 'the work folder of a pull that died is removed');
    assert.deepStrictEqual(fs.readdirSync(to).filter((n) => n.startsWith('.ai-memory-backup-') && n.endsWith('.tmp')), []);
  });
});
