/**
 * Off-machine copies attacked where they were changed last: the listing checks, the copy
 * state's stamps and downloads bounded by the manifest's size. Against a real S3 protocol
 * server (@20minutes/s3rver, SigV4 checked) on 127.0.0.1, loopback proxies that alter its
 * answers as a provider would, and real mirror folders.
 */
import * as assert from 'assert';
import { createHash, randomBytes } from 'crypto';
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import { runBackup } from '../../src/core/ops/backup';
import { pullFromTarget } from '../../src/core/ops/pull';
import { MirrorTarget } from '../../src/core/remote/mirrorTarget';
import { readRemoteState, REMOTE_STATE_NAME } from '../../src/core/remote/remoteState';
import { S3Target } from '../../src/core/remote/s3Target';
import { listRemote, pushToTarget } from '../../src/core/remote/sync';
import { createAiMemoryDb, seedMemory } from '../support/aiMemoryDb';
import { cli } from '../support/cliRun';
import { rfc3339, serializeManifest } from '../../src/core/store/manifest';
import { formatStamp, snapshotName } from '../../src/core/store/naming';
import { S3_KEY, S3_SECRET, startLoopbackProxy, startRewritingProxy, startS3Server, type S3Server } from '../support/s3server';
import { mountFs } from '../support/mounts';
import { useTempDir } from '../support/tmp';
import { execFileSync } from 'child_process';

const BUCKET = 'backups';
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function target(endpoint: string, prefix = 'laptop/'): S3Target {
  return new S3Target({ endpoint, region: 'us-east-1', bucket: BUCKET, prefix, pathStyle: true }, { accessKeyId: S3_KEY, secretAccessKey: S3_SECRET });
}

async function backups(db: string, dir: string, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    seedMemory(db, 'proj', `memory ${i} ${randomBytes(3).toString('hex')}`, `content ${i}`);
    out.push(path.basename((await runBackup({ dbPath: db, backupDir: dir, keep: 48 })).snapshotPath));
  }
  return out;
}

/** Other bytes of the same size: one byte near the end flipped. */
function flipped(b: Buffer): Buffer {
  const o = Buffer.from(b);
  o[o.length - 100] ^= 0xff;
  return o;
}

describe('off-machine copies under attack (real S3 server on 127.0.0.1, real mirror folders)', function () {
  this.timeout(120_000);
  const tmp = useTempDir('aimb-attack-');
  let s3: S3Server;

  beforeEach(async () => {
    s3 = await startS3Server(tmp.join('s3data'), [BUCKET]);
  });
  afterEach(async () => {
    await s3.kill();
  });

  describe('stamps', () => {
    it('S3: a copy rewritten (same size) between the push that sent it and the next is copied again, not stamped as ours', async () => {
      const local = tmp.join('backups');
      const [name] = await backups(tmp.join('ai-memory.db'), local, 1);
      const t = target(s3.endpoint);
      assert.deepStrictEqual((await pushToTarget({ localDir: local, target: t, keep: 48 })).report?.uploaded, [name]);
      const mine = fs.readFileSync(path.join(local, name));
      await t.uploadBytes(name, flipped(mine));
      const o = await pushToTarget({ localDir: local, target: t, keep: 48 });
      assert.strictEqual(o.status, 'copied', JSON.stringify(o.error));
      assert.deepStrictEqual(o.report?.uploaded, [name], 'copied again, not "already there"');
      assert.strictEqual(sha(await t.readBytes(name)), sha(mine));
    });

    it('mirror: a copy rewritten (same size) between the push that sent it and the next is copied again', async () => {
      const local = tmp.join('backups');
      const [name] = await backups(tmp.join('ai-memory.db'), local, 1);
      const mirror = tmp.join('nas');
      fs.mkdirSync(mirror);
      const t = new MirrorTarget(mirror);
      assert.deepStrictEqual((await pushToTarget({ localDir: local, target: t, keep: 48 })).report?.uploaded, [name]);
      const there = path.join(mirror, name);
      const fd = fs.openSync(there, 'r+');
      fs.writeSync(fd, Buffer.from('XXXX'), 0, 4, fs.fstatSync(fd).size - 200);
      fs.closeSync(fd);
      const o = await pushToTarget({ localDir: local, target: t, keep: 48 });
      assert.deepStrictEqual(o.report?.uploaded, [name], 'copied again, not "already there"');
      assert.ok(fs.readFileSync(there).equals(fs.readFileSync(path.join(local, name))));
    });
    it('S3 listing that names no ETag (the time instead): the push after the one that sent a snapshot reads nothing back', async () => {
      const local = tmp.join('backups');
      const made = await backups(tmp.join('ai-memory.db'), local, 2);
      const gets: string[] = [];
      const proxy = await startRewritingProxy(s3.port, (req, res) => {
        if (req.method === 'GET' && !/list-type=2/.test(req.url ?? '')) gets.push(req.url ?? '');
        if (req.method !== 'GET' || !/list-type=2/.test(req.url ?? '')) return undefined;
        return { ...res, body: Buffer.from(res.body.toString('utf8').replace(/<ETag>[^<]*<\/ETag>/g, '')) };
      });
      try {
        const t = target(proxy.endpoint);
        assert.deepStrictEqual((await pushToTarget({ localDir: local, target: t, keep: 48 })).report?.uploaded.sort(), [...made].sort());
        gets.length = 0;
        for (let i = 0; i < 2; i++) {
          const o = await pushToTarget({ localDir: local, target: t, keep: 48 });
          assert.deepStrictEqual(o.report?.present.sort(), [...made].sort());
        }
        assert.deepStrictEqual(gets, [], 'nothing read back');
      } finally {
        await proxy.close();
      }
    });

    it('upgrade: a copy state written before stamps reads nothing back, records them, and then finds a rewrite', async () => {
      const local = tmp.join('backups');
      const made = await backups(tmp.join('ai-memory.db'), local, 2);
      const gets: string[] = [];
      const proxy = await startRewritingProxy(s3.port, (req) => {
        if (req.method === 'GET' && !/list-type=2/.test(req.url ?? '')) gets.push(req.url ?? '');
        return undefined;
      });
      try {
        const t = target(proxy.endpoint);
        assert.strictEqual((await pushToTarget({ localDir: local, target: t, keep: 48 })).status, 'copied');
        // As the version before stamps wrote it.
        const file = path.join(local, REMOTE_STATE_NAME);
        const state = JSON.parse(fs.readFileSync(file, 'utf8')) as { targets: Record<string, { stamps?: unknown }> };
        assert.ok(state.targets[t.id].stamps, 'this version writes them');
        delete state.targets[t.id].stamps;
        fs.writeFileSync(file, JSON.stringify(state));
        gets.length = 0;
        const o = await pushToTarget({ localDir: local, target: t, keep: 48 });
        assert.deepStrictEqual(o.report?.present.sort(), [...made].sort());
        assert.deepStrictEqual(gets, [], 'nothing read back on the upgrade');
        assert.strictEqual(Object.keys((await readRemoteState(local)).targets[t.id].stamps ?? {}).length, 4, 'two snapshots and their manifests');
        await t.uploadBytes(made[0], flipped(fs.readFileSync(path.join(local, made[0]))));
        assert.deepStrictEqual((await pushToTarget({ localDir: local, target: t, keep: 48 })).report?.uploaded, [made[0]]);
      } finally {
        await proxy.close();
      }
    });

    it('write-only credentials (nothing can be read back): a copy rewritten after the push that sent it is sent again', async () => {
      class WriteOnly extends MirrorTarget {
        override readBytes(): Promise<Buffer> {
          return Promise.reject(new Error('AccessDenied'));
        }
        override downloadTo(): Promise<{ bytes: number; sha256: string }> {
          return Promise.reject(new Error('AccessDenied'));
        }
      }
      const local = tmp.join('backups');
      const [name] = await backups(tmp.join('ai-memory.db'), local, 1);
      const mirror = tmp.join('nas-wo');
      fs.mkdirSync(mirror);
      const t = new WriteOnly(mirror);
      assert.deepStrictEqual((await pushToTarget({ localDir: local, target: t, keep: 48 })).report?.uploaded, [name]);
      fs.writeFileSync(path.join(mirror, name), flipped(fs.readFileSync(path.join(local, name))));
      const o = await pushToTarget({ localDir: local, target: t, keep: 48 });
      assert.strictEqual(o.status, 'copied', JSON.stringify(o.error));
      assert.deepStrictEqual(o.report?.uploaded, [name], 'sent again');
      assert.ok(fs.readFileSync(path.join(mirror, name)).equals(fs.readFileSync(path.join(local, name))));
      assert.deepStrictEqual((await pushToTarget({ localDir: local, target: t, keep: 48 })).report?.present, [name], 'then there, nothing sent');
    });
  });

  describe('stamps on a mirror drive', () => {
    /** A real mirror folder; counts what is read back from it (a check of a copy). */
    class Counting extends MirrorTarget {
      reads = 0;
      override async downloadTo(...a: Parameters<MirrorTarget['downloadTo']>): ReturnType<MirrorTarget['downloadTo']> {
        this.reads++;
        return super.downloadTo(...a);
      }
    }
    for (const kind of ['vfat', 'exfat'] as const) {
      it(`${kind}: the pushes after the one that sent the snapshots read nothing back, the drive unplugged and plugged in again (remounted) included`, async function () {
        const m = mountFs(kind, 64);
        if (typeof m === 'string') return this.skip();
        try {
          const local = tmp.join('backups');
          const made = await backups(tmp.join('ai-memory.db'), local, 2);
          const mirror = path.join(m.dir, 'ai-memory');
          fs.mkdirSync(mirror);
          let t = new Counting(mirror);
          assert.deepStrictEqual((await pushToTarget({ localDir: local, target: t, keep: 48 })).report?.uploaded.sort(), [...made].sort());
          for (let i = 0; i < 2; i++) {
            const o = await pushToTarget({ localDir: local, target: t, keep: 48 });
            assert.deepStrictEqual(o.report?.present.sort(), [...made].sort());
            assert.strictEqual(t.reads, 0, 'nothing read back');
          }
          // Unplugged and plugged in again: the same drive mounted anew (times read from the disk).
          const img = path.join(path.dirname(m.dir), `${kind}.img`);
          const loop = execFileSync('losetup', ['-j', img], { encoding: 'utf8' }).split(':')[0].trim();
          assert.match(loop, /^\/dev\/loop\d+$/);
          execFileSync('umount', [m.dir]);
          if (m.driver === 'kernel') execFileSync('mount', ['-t', kind, loop, m.dir]);
          else if (kind === 'vfat') execFileSync('fusefat', ['-o', 'rw+', loop, m.dir], { stdio: 'ignore' });
          else execFileSync('mount.exfat-fuse', [loop, m.dir], { stdio: 'ignore' });
          t = new Counting(mirror);
          const o = await pushToTarget({ localDir: local, target: t, keep: 48 });
          assert.deepStrictEqual(o.report?.present.sort(), [...made].sort());
          assert.deepStrictEqual(o.report?.uploaded, []);
          assert.strictEqual(t.reads, 0, 'nothing read back after a remount');
        } finally {
          m.cleanup();
        }
      });
    }
  });

  describe('listing checks: no false alarm for a legitimate provider', () => {
    it('keys as numeric character references, a stray token on the last page, sub-folders under the prefix, unicode and spaces in the prefix: push and pull work, nothing is sent twice', async () => {
      const local = tmp.join('backups');
      const made = await backups(tmp.join('ai-memory.db'), local, 3);
      const prefix = 'Jöhn café/bäck ups/';
      // Something else in a sub-folder under the prefix (CommonPrefixes in the listing).
      await target(s3.endpoint, `${prefix}old/`).uploadBytes('notes.txt', Buffer.from('x'));
      const proxy = await startRewritingProxy(s3.port, (req, res) => {
        if (req.method !== 'GET' || !/list-type=2/.test(req.url ?? '')) return undefined;
        let xml = res.body.toString('utf8');
        // As Go's encoding/xml (MinIO) or a provider escaping all but ASCII: numeric references.
        xml = xml.replace(/<Key>([^<]*)<\/Key>/g, (_m, k: string) => `<Key>${[...k].map((c) => (c.codePointAt(0) as number) > 127 ? `&#x${(c.codePointAt(0) as number).toString(16).toUpperCase()};` : c === ' ' ? '&#32;' : c).join('')}</Key>`);
        // The last page names a token anyway (IsTruncated=false decides).
        if (/<IsTruncated>false<\/IsTruncated>/.test(xml) && !/NextContinuationToken/.test(xml)) xml = xml.replace('</ListBucketResult>', '<NextContinuationToken>stray</NextContinuationToken></ListBucketResult>');
        return { ...res, body: Buffer.from(xml) };
      });
      try {
        const t = target(proxy.endpoint, prefix);
        t.client.pageKeys = 2;
        const o = await pushToTarget({ localDir: local, target: t, keep: 48 });
        assert.strictEqual(o.status, 'copied', JSON.stringify(o.error));
        assert.deepStrictEqual(o.report?.uploaded.sort(), [...made].sort());
        const again = await pushToTarget({ localDir: local, target: t, keep: 48 });
        assert.strictEqual(again.status, 'copied', JSON.stringify(again.error));
        assert.deepStrictEqual(again.report?.present.sort(), [...made].sort(), 'found there, nothing sent twice');
        assert.deepStrictEqual((await listRemote(t)).snapshots.map((x) => x.name).sort(), [...made].sort());
        const got = await pullFromTarget({ target: t, toDir: tmp.join('fresh'), names: 'all' });
        assert.strictEqual(got.length, 3);
      } finally {
        await proxy.close();
      }
    });

    it('an empty prefix (the whole bucket) with other files and folders in it: push, push again and pull work', async () => {
      const local = tmp.join('backups');
      const made = await backups(tmp.join('ai-memory.db'), local, 2);
      await target(s3.endpoint, 'photos/').uploadBytes('a.jpg', Buffer.from('x'));
      await target(s3.endpoint, '').uploadBytes('README.txt', Buffer.from('y'));
      const t = target(s3.endpoint, '');
      t.client.pageKeys = 2;
      const o = await pushToTarget({ localDir: local, target: t, keep: 1 });
      assert.strictEqual(o.status, 'copied', JSON.stringify(o.error));
      const again = await pushToTarget({ localDir: local, target: t, keep: 1 });
      assert.strictEqual(again.status, 'copied', JSON.stringify(again.error));
      assert.deepStrictEqual(again.report?.present, [made[1]]);
      assert.deepStrictEqual(again.report?.cleaned, [], 'README.txt is not ours to clean');
      assert.deepStrictEqual((await pullFromTarget({ target: t, toDir: tmp.join('fresh') })).map((r) => r.name), [made[1]]);
      assert.deepStrictEqual((await target(s3.endpoint, '').readBytes('README.txt')).toString(), 'y');
      assert.deepStrictEqual((await target(s3.endpoint, 'photos/').readBytes('a.jpg')).toString(), 'x');
    });

    it('a listing answered with encoding-type=url (keys percent-encoded, a space as "+", as AWS writes them) is read, not taken for keys outside the prefix', async () => {
      const local = tmp.join('backups');
      const made = await backups(tmp.join('ai-memory.db'), local, 2);
      const prefix = 'my backups/café/';
      const proxy = await startRewritingProxy(s3.port, (req, res) => {
        if (req.method !== 'GET' || !/list-type=2/.test(req.url ?? '')) return undefined;
        let xml = res.body.toString('utf8');
        xml = xml.replace(/<(Key|Prefix)>([^<]*)<\/\1>/g, (_m, tag: string, k: string) => `<${tag}>${encodeURIComponent(k).replace(/%2F/g, '/').replace(/%20/g, '+')}</${tag}>`);
        xml = xml.replace('</ListBucketResult>', '<EncodingType>url</EncodingType></ListBucketResult>');
        return { ...res, body: Buffer.from(xml) };
      });
      try {
        const t = target(proxy.endpoint, prefix);
        const o = await pushToTarget({ localDir: local, target: t, keep: 48 });
        assert.strictEqual(o.status, 'copied', JSON.stringify(o.error));
        const again = await pushToTarget({ localDir: local, target: t, keep: 48 });
        assert.strictEqual(again.status, 'copied', JSON.stringify(again.error));
        assert.deepStrictEqual(again.report?.present.sort(), [...made].sort());
      } finally {
        await proxy.close();
      }
    });
  });

  describe('a run the listing check fails', () => {
    it('push and pull stopped by a listing that cannot be trusted change nothing: the target, the copy state\'s copied and stamps, the destination', async () => {
      const local = tmp.join('backups');
      const made = await backups(tmp.join('ai-memory.db'), local, 2);
      const t0 = target(s3.endpoint);
      assert.strictEqual((await pushToTarget({ localDir: local, target: t0, keep: 48 })).status, 'copied');
      // Then each faulty run below would send the newer one and delete both of these (keep 1).
      assert.deepStrictEqual((await pushToTarget({ localDir: local, target: t0, keep: 48 })).report?.present.sort(), [...made].sort(), 'stamps recorded');
      const before = (await readRemoteState(local)).targets[t0.id];
      const keys = async () => (await t0.list()).map((e) => `${e.name}:${e.etag}`).sort();
      const there = await keys();
      const [newer] = await backups(tmp.join('ai-memory.db'), local, 1);
      for (const fault of ['foreign', 'no-token', 'same-token'] as const) {
        let firstPage = '';
        const proxy = await startRewritingProxy(s3.port, (req, res) => {
          if (req.method !== 'GET' || !/list-type=2/.test(req.url ?? '')) return undefined;
          // The same page, with the same token, again (s3rver would refuse our made-up token).
          if (/continuation-token=/.test(req.url ?? '')) return { status: 200, headers: res.headers, body: Buffer.from(firstPage) };
          let xml = res.body.toString('utf8');
          if (fault === 'foreign') xml = xml.replace(/<Key>laptop\//, '<Key>laptop%2F');
          else xml = xml.replace(/<IsTruncated>false<\/IsTruncated>/, `<IsTruncated>true</IsTruncated>${fault === 'same-token' ? '<NextContinuationToken>t1</NextContinuationToken>' : ''}`);
          firstPage = xml;
          return { ...res, body: Buffer.from(xml) };
        });
        try {
          const t = target(proxy.endpoint);
          const o = await pushToTarget({ localDir: local, target: t, keep: 1 });
          assert.strictEqual(o.status, 'failed', fault);
          assert.match(o.error?.message ?? '', /nothing was copied or deleted/, fault);
          await assert.rejects(pullFromTarget({ target: t, toDir: tmp.join(`pull-${fault}`) }), (e: Error & { code?: string }) => e.code === 'REMOTE_ERROR', fault);
          assert.deepStrictEqual(fs.existsSync(tmp.join(`pull-${fault}`)) ? fs.readdirSync(tmp.join(`pull-${fault}`)) : [], [], `${fault}: nothing pulled`);
        } finally {
          await proxy.close();
        }
        assert.deepStrictEqual(await keys(), there, `${fault}: the target as it was`);
        const after = (await readRemoteState(local)).targets[t0.id];
        assert.deepStrictEqual(after.copied, before.copied, fault);
        assert.deepStrictEqual(after.stamps, before.stamps, fault);
      }
      assert.ok(!(await t0.list()).some((e) => e.name === newer), 'the newer snapshot was not sent on a listing that cannot be trusted');
    });
  });

  describe('downloads bounded by the manifest', () => {
    it('a server that sends an oversized snapshot chunked (no Content-Length): pull refuses it and keeps nothing; pull --all still takes the good ones', async () => {
      const local = tmp.join('backups');
      const made = await backups(tmp.join('ai-memory.db'), local, 3);
      assert.strictEqual((await pushToTarget({ localDir: local, target: target(s3.endpoint), keep: 48 })).status, 'copied');
      const bad = made[1];
      let served = 0;
      const proxy = await startLoopbackProxy(s3.port, (req, res) => {
        if (req.method !== 'GET' || !(req.url ?? '').split('?')[0].endsWith(encodeURIComponent(bad))) return false;
        const up = http.request({ host: '127.0.0.1', port: s3.port, method: 'GET', path: req.url, headers: req.headers }, (r) => {
          const headers = { ...r.headers };
          delete headers['content-length'];
          res.writeHead(r.statusCode ?? 502, headers); // chunked
          r.on('data', (c: Buffer) => res.write(c));
          r.on('end', () => {
            // then far more than the manifest says, until the client goes
            const junk = Buffer.alloc(1 << 20, 7);
            const more = () => {
              if (res.destroyed || served > 256 << 20) {
                res.end();
                return;
              }
              served += junk.length;
              if (res.write(junk)) setImmediate(more);
              else res.once('drain', more);
            };
            more();
          });
        });
        req.pipe(up);
        return true;
      });
      try {
        const t = target(proxy.endpoint);
        const to = tmp.join('fresh');
        await assert.rejects(pullFromTarget({ target: t, toDir: to, names: [bad] }), (e: Error & { code?: string }) => e.code === 'SIZE_MISMATCH');
        assert.ok(served < 64 << 20, `stopped early (${served} bytes sent)`);
        assert.deepStrictEqual(fs.readdirSync(to).filter((n) => n !== '.ai-memory-backup'), [], 'nothing kept');
        const refused: string[] = [];
        const all = await pullFromTarget({ target: t, toDir: to, names: 'all', onRefused: (r) => refused.push(`${r.name}:${r.code}`) });
        assert.deepStrictEqual(all.map((r) => r.name).sort(), [made[0], made[2]].sort());
        assert.deepStrictEqual(refused, [`${bad}:SIZE_MISMATCH`]);
        assert.ok(!fs.existsSync(path.join(to, bad)));
      } finally {
        await proxy.close();
      }
    });
  });

  describe('pull\'s newest and this computer\'s clock', () => {
    it('pull (no --snapshot) that passes over newer snapshots as future-dated says so and names the newest, instead of leaving them unsaid', async () => {
      const dbPath = tmp.join('src.db');
      createAiMemoryDb(dbPath, { memories: 5 });
      const db = fs.readFileSync(dbPath);
      const mirror = tmp.join('usb');
      fs.mkdirSync(mirror);
      const hour = 3600_000;
      // Made by a machine whose clock was right, an hour and three hours after this one's
      // (this computer's clock is behind: set up offline, a dead RTC battery).
      const names = [-2, -1, 1, 3].map((h) => snapshotName(formatStamp(new Date(Date.now() + h * hour))));
      for (const name of names) {
        fs.writeFileSync(path.join(mirror, name), db);
        const m = { snapshot: name, sha256: sha(db), bytes: db.length, source_db: '/home/u/.ai-memory/ai-memory.db', version: '0.1.0', created_at: rfc3339(new Date()), integrity: 'unverified' as const };
        fs.writeFileSync(path.join(mirror, name.replace(/\.db$/, '.manifest.json')), serializeManifest(m));
      }
      const r = await cli(['pull', '--remote', mirror, '--to', tmp.join('new-machine')], { cwd: tmp.path });
      assert.strictEqual(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`Pulled .*${names[1]}`), 'the newest by this clock');
      assert.match(r.stderr, new RegExp(`2 newer snapshots .*dated in the future by this computer's clock \\(newest: ${names[3]}\\).*--snapshot ${names[3]}`));
      const j = await cli(['pull', '--remote', mirror, '--to', tmp.join('new-machine-2'), '--snapshot', names[3]], { cwd: tmp.path });
      assert.strictEqual(j.code, 0, j.stderr);
      assert.doesNotMatch(j.stderr, /newer snapshot/, 'said only when pull chose');
    });
  });
});
