/**
 * Off-machine copies at real-world scale and with real providers' quirks, against a real S3
 * protocol server (@20minutes/s3rver, SigV4 checked) on 127.0.0.1, started and stopped by
 * PID — never a mocked server. Listing past one page: the client's page size (`pageKeys`,
 * S3's `max-keys`) is lowered, so a handful of snapshots span many pages.
 */
import * as assert from 'assert';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { pullFromTarget, type PullRefused } from '../../src/core/ops/pull';
import { speaksCli } from '../../src/features/errorText';
import { MirrorTarget } from '../../src/core/remote/mirrorTarget';
import { readRemoteState } from '../../src/core/remote/remoteState';
import { S3Target } from '../../src/core/remote/s3Target';
import { listRemote, pushToTarget } from '../../src/core/remote/sync';
import { rfc3339, serializeManifest } from '../../src/core/store/manifest';
import { formatStamp, snapshotName } from '../../src/core/store/naming';
import { createAiMemoryDb } from '../support/aiMemoryDb';
import { S3_KEY, S3_SECRET, startLoopbackProxy, startRewritingProxy, startS3Server, type S3Server } from '../support/s3server';
import { cli } from '../support/cliRun';
import { fingerprint } from '../support/reliability';
import { useTempDir } from '../support/tmp';

const BUCKET = 'backups';
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function target(endpoint: string, prefix: string, pageKeys?: number): S3Target {
  const t = new S3Target({ endpoint, region: 'us-east-1', bucket: BUCKET, prefix, pathStyle: true }, { accessKeyId: S3_KEY, secretAccessKey: S3_SECRET });
  if (pageKeys) t.client.pageKeys = pageKeys;
  return t;
}

/** The names of `n` hourly snapshots ending at `last`, oldest first. */
function hourly(n: number, last = Date.UTC(2026, 10, 30, 12)): string[] {
  return Array.from({ length: n }, (_, i) => snapshotName(formatStamp(new Date(last - (n - 1 - i) * 3600_000))));
}

/** Real snapshots: one real ai-memory database under each name, with its manifest (source_db `db`). */
function snapshots(dir: string, db: Buffer, names: string[], sourceDb = '/home/u/.ai-memory/ai-memory.db'): void {
  fs.mkdirSync(dir, { recursive: true });
  for (const name of names) {
    fs.writeFileSync(path.join(dir, name), db);
    const m = { snapshot: name, sha256: sha(db), bytes: db.length, source_db: sourceDb, version: '0.1.0', created_at: rfc3339(new Date()), integrity: 'unverified' as const };
    fs.writeFileSync(path.join(dir, name.replace(/\.db$/, '.manifest.json')), serializeManifest(m));
  }
}

/** Every key the server holds in the bucket (read from its data folder, not through our client). */
function serverKeys(s3: S3Server): string[] {
  const root = path.join(s3.dataDir, BUCKET);
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('._S3rver_object')) out.push(path.relative(root, p).slice(0, -'._S3rver_object'.length).split(path.sep).join('/'));
    }
  };
  if (fs.existsSync(root)) walk(root);
  return out.sort();
}

describe('off-machine copies at scale and with providers\' quirks (real S3 protocol server)', function () {
  this.timeout(180_000);
  const tmp = useTempDir('aimb-remote-scale-');
  let s3: S3Server;
  let db: Buffer;

  before(() => {
    const p = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'aimb-scale-db-')), 'ai-memory.db');
    createAiMemoryDb(p, { memories: 5 });
    db = fs.readFileSync(p);
    fs.rmSync(path.dirname(p), { recursive: true, force: true });
  });
  beforeEach(async () => {
    s3 = await startS3Server(tmp.join('s3data'), [BUCKET]);
  });
  afterEach(async () => {
    await s3.kill();
  });

  it('push, list, retention, pull and pull --all are right across pages (3 keys a page): nothing missed, nothing wrongly deleted, the newest the newest', async () => {
    // Every LIST request, as the server received it: how many pages, and the tokens sent back.
    const lists: string[] = [];
    const proxy = await startLoopbackProxy(s3.port, (req) => {
      if (req.method === 'GET' && /[?&]list-type=2/.test(req.url ?? '')) lists.push(req.url ?? '');
      return false;
    });
    try {
      const local = tmp.join('backups');
      const mine = hourly(14);
      snapshots(local, db, mine);
      // Another database's snapshots in the same folder, at the same hours: their own retention.
      const other = hourly(4, Date.UTC(2026, 10, 30, 12, 30));
      snapshots(local, db, other, '/home/u/other/ai-memory.db');
      // Another machine's prefix that starts with ours ("laptop" vs "laptop2"): never touched.
      const neighbour = target(proxy.endpoint, 'laptop2/', 3);
      const nb = tmp.join('neighbour');
      snapshots(nb, db, hourly(3, Date.UTC(2026, 10, 30, 23)));
      assert.strictEqual((await pushToTarget({ localDir: nb, target: neighbour, keep: 0 })).status, 'copied');
      const neighbourKeys = serverKeys(s3).filter((k) => k.startsWith('laptop2/'));
      assert.strictEqual(neighbourKeys.length, 6);

      const t = target(proxy.endpoint, 'laptop/', 3);
      lists.length = 0;
      const first = await pushToTarget({ localDir: local, target: t, keep: 0 });
      assert.strictEqual(first.status, 'copied', JSON.stringify(first.error));
      assert.deepStrictEqual([...(first.report?.uploaded ?? [])].sort(), [...mine, ...other].sort());
      assert.strictEqual(serverKeys(s3).filter((k) => k.startsWith('laptop/')).length, 36);

      // The second push lists 36 objects on 12 pages and finds every one: nothing sent again.
      lists.length = 0;
      const again = await pushToTarget({ localDir: local, target: t, keep: 0 });
      assert.strictEqual(again.status, 'copied', JSON.stringify(again.error));
      assert.deepStrictEqual(again.report?.uploaded, []);
      assert.deepStrictEqual([...(again.report?.present ?? [])].sort(), [...mine, ...other].sort());
      assert.ok(lists.length >= 12, `one page of 3 keys at a time: ${lists.length} LIST requests`);
      const tokens = lists.map((u) => new URL(u, 'http://x').searchParams.get('continuation-token')).filter((x): x is string => !!x);
      assert.strictEqual(tokens.length, lists.length - 1, 'each page after the first asked with the token of the one before');
      assert.ok(tokens.some((x) => /[+/=]/.test(x)), `tokens with characters that need escaping went through: ${tokens.join(' ')}`);

      // list --remote: every snapshot, newest first.
      const l = await listRemote(t);
      assert.deepStrictEqual(l.snapshots.map((s) => s.name), [...mine, ...other].sort().reverse());
      assert.ok(l.snapshots.every((s) => s.complete && s.bytes === db.length));

      // A new machine with one snapshot of its own: everything there is "only there" (remote_only), nothing deleted.
      const newMachine = tmp.join('new-machine');
      const newName = hourly(1, Date.UTC(2026, 10, 30, 13))[0];
      snapshots(newMachine, db, [newName], '/home/u2/.ai-memory/ai-memory.db');
      const nm = await pushToTarget({ localDir: newMachine, target: target(proxy.endpoint, 'laptop/', 3), keep: 1 });
      assert.strictEqual(nm.status, 'copied', JSON.stringify(nm.error));
      assert.deepStrictEqual(nm.report?.deleted, []);
      assert.deepStrictEqual(nm.report?.remoteOnly.map((x) => x.name), [...mine, ...other].sort().reverse());
      assert.deepStrictEqual((await readRemoteState(newMachine)).targets[t.id].remote_only.map((x) => x.name), [...mine, ...other].sort().reverse());
      await t.remove([newName, newName.replace(/\.db$/, '.manifest.json')]);

      // Retention across pages: keep 5 of ours; the other database's 4 and the neighbour's stay.
      // Deletes in batches of 4 keys (S3: 1,000): 9 manifests, then 9 snapshots.
      const deletes: string[] = [];
      const counting = await startLoopbackProxy(s3.port, (req) => {
        if (req.method === 'POST' && /[?&]delete(=|&|$)/.test(req.url ?? '')) deletes.push(req.url ?? '');
        return false;
      });
      const tb = target(counting.endpoint, 'laptop/', 3);
      tb.client.deleteBatch = 4;
      const kept = await pushToTarget({ localDir: local, target: tb, keep: 5 }).finally(() => counting.close());
      assert.strictEqual(deletes.length, 6, 'three DeleteObjects requests for the manifests, three for the snapshots');
      assert.strictEqual(kept.status, 'copied', JSON.stringify(kept.error));
      assert.deepStrictEqual([...(kept.report?.deleted ?? [])].sort(), mine.slice(0, 9));
      const left = serverKeys(s3);
      const expectLeft = [...mine.slice(9), ...other].flatMap((n) => [`laptop/${n}`, `laptop/${n.replace(/\.db$/, '.manifest.json')}`]);
      assert.deepStrictEqual(left.filter((k) => k.startsWith('laptop/')), expectLeft.sort());
      assert.deepStrictEqual(left.filter((k) => k.startsWith('laptop2/')), neighbourKeys);
      const state = (await readRemoteState(local)).targets[tb.id];
      assert.strictEqual(state.status, 'copied');
      assert.deepStrictEqual([...state.copied].sort(), [...mine.slice(9), ...other].sort());

      // Pull on a new machine: the newest is the newest (it sits on the last page).
      const fresh = tmp.join('fresh');
      const got = await pullFromTarget({ target: t, toDir: fresh });
      assert.deepStrictEqual(got.map((r) => r.name), [[...mine, ...other].sort().reverse()[0]]);
      const refused: PullRefused[] = [];
      const all = await pullFromTarget({ target: t, toDir: tmp.join('all'), names: 'all', onRefused: (r) => refused.push(r) });
      assert.deepStrictEqual(refused, []);
      assert.deepStrictEqual(all.map((r) => r.name).sort(), [...mine.slice(9), ...other].sort());
      for (const r of all) assert.strictEqual(sha(fs.readFileSync(r.path)), sha(db));
    } finally {
      await proxy.close();
    }
  });

  it('a listing the server cuts short (more pages, no token; the same token twice) fails the run: never taken for the whole target', async () => {
    const local = tmp.join('backups');
    const names = hourly(9);
    snapshots(local, db, names);
    assert.strictEqual((await pushToTarget({ localDir: local, target: target(s3.endpoint, 'laptop/'), keep: 0 })).status, 'copied');
    for (const fault of ['no token', 'same token'] as const) {
      let firstToken: string | undefined;
      const proxy = await startRewritingProxy(s3.port, (req, res) => {
        if (!/[?&]list-type=2/.test(req.url ?? '')) return undefined;
        let xml = res.body.toString('utf8');
        if (fault === 'no token') xml = xml.replace(/<NextContinuationToken>[^<]*<\/NextContinuationToken>/, '');
        else {
          const tok = /<NextContinuationToken>([^<]*)<\/NextContinuationToken>/.exec(xml)?.[1];
          if (tok && firstToken === undefined) firstToken = tok;
          else if (tok && firstToken) xml = xml.replace(tok, firstToken); // the second page names the first's token again
        }
        return { ...res, body: Buffer.from(xml) };
      });
      try {
        const t = target(proxy.endpoint, 'laptop/', 4);
        // pull of "the newest": the newest is on the last page; a first page taken for the whole gave an old snapshot.
        await assert.rejects(pullFromTarget({ target: t, toDir: tmp.join(`pull-${fault}`) }), (e: Error & { code?: string }) => e.code === 'REMOTE_ERROR' && /listing .* is incomplete/.test(e.message), fault);
        assert.ok(!fs.existsSync(tmp.join(`pull-${fault}`)) || fs.readdirSync(tmp.join(`pull-${fault}`)).every((n) => !n.startsWith('ai-memory-')), 'nothing pulled');
        const before = serverKeys(s3);
        const r = await pushToTarget({ localDir: local, target: t, keep: 2 });
        assert.strictEqual(r.status, 'failed', fault);
        assert.match(r.error?.message ?? '', /incomplete/);
        assert.deepStrictEqual(serverKeys(s3), before, 'nothing sent or deleted on a partial view');
      } finally {
        await proxy.close();
      }
    }
    // IsTruncated is an xs:boolean: "1" (or "True") says there is more as "true" does.
    for (const more of ['1', 'True']) {
      const proxy = await startRewritingProxy(s3.port, (req, res) => (/[?&]list-type=2/.test(req.url ?? '') ? { ...res, body: Buffer.from(res.body.toString('utf8').replace('<IsTruncated>true</IsTruncated>', `<IsTruncated>${more}</IsTruncated>`)) } : undefined));
      try {
        const got = await pullFromTarget({ target: target(proxy.endpoint, 'laptop/', 4), toDir: tmp.join(`pull-bool-${more}`) });
        assert.deepStrictEqual(got.map((x) => x.name), [names[8]], `IsTruncated ${more}`);
      } finally {
        await proxy.close();
      }
    }
  });

  it('prefixes with spaces, +, %, unicode (NFC and NFD) and a prefix of another prefix: each its own, push, list, retention and pull right', async () => {
    const prefixes = ['my backups/', 'a+b/', '100%/', 'q?h#/', 'x~$,;=:@[^{|/', 'caf\u00e9/', 'cafe\u0301/', 'team/', 'team2/', 'team/sub/'];
    const byPrefix = new Map<string, string[]>();
    let hour = Date.UTC(2026, 10, 30, 0);
    for (const p of prefixes) {
      const local = tmp.join(`local-${byPrefix.size}`);
      const names = hourly(4, (hour += 10 * 3600_000));
      snapshots(local, db, names);
      byPrefix.set(p, names);
      const r = await pushToTarget({ localDir: local, target: target(s3.endpoint, p, 3), keep: 0 });
      assert.strictEqual(r.status, 'copied', `${p}: ${JSON.stringify(r.error)}`);
      assert.deepStrictEqual([...(r.report?.uploaded ?? [])].sort(), names, p);
    }
    const keysBefore = serverKeys(s3);
    assert.strictEqual(keysBefore.length, prefixes.length * 8);
    for (const [i, p] of prefixes.entries()) {
      const names = byPrefix.get(p) as string[];
      const t = target(s3.endpoint, p, 3);
      assert.deepStrictEqual((await listRemote(t)).snapshots.map((x) => x.name), [...names].reverse(), p);
      // The same snapshots a second time: all present, none sent again.
      const again = await pushToTarget({ localDir: tmp.join(`local-${i}`), target: t, keep: 0 });
      assert.deepStrictEqual(again.report?.uploaded, [], p);
      const got = await pullFromTarget({ target: t, toDir: tmp.join(`pull-${i}`) });
      assert.deepStrictEqual(got.map((x) => x.name), [names[3]], p);
    }
    // Retention under one prefix deletes its own two oldest, nothing anywhere else.
    const r = await pushToTarget({ localDir: tmp.join(`local-${prefixes.indexOf('team/')}`), target: target(s3.endpoint, 'team/', 3), keep: 2 });
    assert.strictEqual(r.status, 'copied');
    const gone = (byPrefix.get('team/') as string[]).slice(0, 2).flatMap((n) => [`team/${n}`, `team/${n.replace(/\.db$/, '.manifest.json')}`]);
    assert.deepStrictEqual(serverKeys(s3), keysBefore.filter((k) => !gone.includes(k)));
  });

  it('a server that lists keys in another form than they were written (s3rver escapes & twice) fails the run: never a blind push that sends everything again and deletes nothing', async () => {
    const local = tmp.join('backups');
    const names = hourly(4);
    snapshots(local, db, names);
    const t = target(s3.endpoint, 'r&d/', 3);
    const first = await pushToTarget({ localDir: local, target: t, keep: 2 });
    assert.strictEqual(first.status, 'copied', JSON.stringify(first.error)); // nothing there yet: the listing is empty and right
    const keys = serverKeys(s3);
    assert.strictEqual(keys.length, 4);
    // Now the listing names r&amp;d/… (decoded once: "r&amp;d/…"): not under the prefix we asked for.
    const again = await pushToTarget({ localDir: local, target: t, keep: 1 });
    assert.strictEqual(again.status, 'failed');
    assert.strictEqual(again.error?.code, 'REMOTE_ERROR');
    assert.match(again.error?.message ?? '', /not under the prefix/);
    assert.match(again.error?.hint ?? '', /prefix of letters, digits/);
    assert.ok(!speaksCli(again.error?.hint ?? ''), 'a hint VS Code shows as it is');
    assert.deepStrictEqual(serverKeys(s3), keys, 'nothing sent again, nothing deleted');
    await assert.rejects(listRemote(t), /not under the prefix/);
    await assert.rejects(pullFromTarget({ target: t, toDir: tmp.join('pull') }), /not under the prefix/);
  });

  it('pull takes the newest snapshot, not one a wrong clock dated in the future (as restore does locally); list --remote ranks it last', async () => {
    const local = tmp.join('backups');
    const hour = Math.floor(Date.now() / 3600_000) * 3600_000;
    const real = hourly(6, hour);
    // A machine whose clock was a year ahead once pushed a snapshot; its name says 2027.
    const future = snapshotName(formatStamp(new Date(hour + 365 * 24 * 3600_000)));
    snapshots(local, db, [...real, future]);
    const t = target(s3.endpoint, 'laptop/', 3);
    assert.strictEqual((await pushToTarget({ localDir: local, target: t, keep: 0 })).status, 'copied');
    const got = await pullFromTarget({ target: t, toDir: tmp.join('new-machine') });
    assert.deepStrictEqual(got.map((r) => r.name), [real[5]], 'the newest real snapshot, not the future-dated one');
    assert.deepStrictEqual((await listRemote(t)).snapshots.map((x) => x.name), [...[...real].reverse(), future]);
  });

  it('a clock more than 15 minutes off the server\'s (RequestTimeTooSkewed): says to set the clock, not to grant permissions; nothing changed', async function () {
    const lib = ['/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/faketime/libfaketime.so.1'].find((p) => fs.existsSync(p));
    if (!lib) this.skip(); // Debian package faketime
    const local = tmp.join('backups');
    snapshots(local, db, hourly(2));
    await s3.kill();
    // The server's clock two hours ahead: to S3, the same as this machine's two hours behind.
    s3 = await startS3Server(tmp.join('s3data'), [BUCKET], 0, { LD_PRELOAD: lib, FAKETIME: '+2h' });
    const env = { AWS_ACCESS_KEY_ID: S3_KEY, AWS_SECRET_ACCESS_KEY: S3_SECRET, AWS_ENDPOINT_URL: s3.endpoint };
    const before = fingerprint(local);
    const r = await cli(['push', '--to', local, '--remote', `s3://${BUCKET}/laptop`, '--path-style', '--json'], { cwd: tmp.path, env });
    assert.strictEqual(r.code, 1, r.stderr);
    const out = r.json<{ status: string; error: { code: string; message: string; hint: string } }>();
    assert.strictEqual(out.status, 'failed');
    assert.match(out.error.message, /RequestTimeTooSkewed/);
    assert.notStrictEqual(out.error.code, 'REMOTE_DENIED');
    assert.match(out.error.hint, /clock/i);
    assert.doesNotMatch(out.error.hint, /grant/i);
    assert.ok(!speaksCli(out.error.hint), 'a hint VS Code shows as it is');
    assert.deepStrictEqual(serverKeys(s3), []);
    const after = fingerprint(local);
    delete after['.ai-memory-backup.remote.json'];
    delete before['.ai-memory-backup.remote.json'];
    assert.deepStrictEqual(after, before, 'the backup folder as it was (but the copy state)');
  });

  it('a snapshot moved to an archive storage class (403 InvalidObjectState on GET, as AWS answers): says to restore it at the provider, not to grant permissions; nothing kept', async () => {
    const local = tmp.join('backups');
    const names = hourly(2);
    snapshots(local, db, names);
    assert.strictEqual((await pushToTarget({ localDir: local, target: target(s3.endpoint, 'laptop/'), keep: 0 })).status, 'copied');
    // What AWS answers a GET of an object a lifecycle rule moved to Glacier (the rest goes to the real server).
    const proxy = await startLoopbackProxy(s3.port, (req, res) => {
      if (req.method !== 'GET' || !(req.url ?? '').includes(names[1])) return false;
      req.resume();
      res.writeHead(403, { 'content-type': 'application/xml' });
      res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidObjectState</Code><Message>The operation is not valid for the object\'s storage class</Message><StorageClass>GLACIER</StorageClass></Error>');
      return true;
    });
    try {
      const to = tmp.join('new-machine');
      await assert.rejects(pullFromTarget({ target: target(proxy.endpoint, 'laptop/'), toDir: to }), (e: Error & { code?: string; hint?: string }) => {
        assert.match(e.message, /InvalidObjectState/);
        assert.notStrictEqual(e.code, 'REMOTE_DENIED');
        assert.match(e.hint ?? '', /restore it at the provider/);
        assert.ok(!speaksCli(e.hint ?? ''));
        return true;
      });
      assert.deepStrictEqual(fs.existsSync(to) ? fs.readdirSync(to).filter((n) => n.startsWith('ai-memory-')) : [], []);
    } finally {
      await proxy.close();
    }
  });

  it('a bucket in another region (301 PermanentRedirect, as AWS answers; HEAD without a body too): names the region to set; nothing changed', async () => {
    const local = tmp.join('backups');
    snapshots(local, db, hourly(2));
    // AWS's answer to a request sent to the wrong region's endpoint (the real server gets nothing).
    const seen: string[] = [];
    const proxy = await startLoopbackProxy(s3.port, (req, res) => {
      seen.push(`${req.method} ${req.url}`);
      req.resume();
      res.writeHead(301, { 'content-type': 'application/xml', 'x-amz-bucket-region': 'eu-west-1' });
      res.end(req.method === 'HEAD' ? undefined : `<?xml version="1.0" encoding="UTF-8"?><Error><Code>PermanentRedirect</Code><Message>The bucket you are attempting to access must be addressed using the specified endpoint. Please send all future requests to this endpoint.</Message><Endpoint>${BUCKET}.s3.eu-west-1.amazonaws.com</Endpoint><Bucket>${BUCKET}</Bucket></Error>`);
      return true;
    });
    try {
      const before = fingerprint(local);
      const r = await cli(['push', '--to', local, '--remote', `s3://${BUCKET}/laptop`, '--path-style', '--json'], { cwd: tmp.path, env: { AWS_ACCESS_KEY_ID: S3_KEY, AWS_SECRET_ACCESS_KEY: S3_SECRET, AWS_ENDPOINT_URL: proxy.endpoint } });
      assert.strictEqual(r.code, 1, r.stderr);
      const out = r.json<{ status: string; error: { code: string; message: string; hint: string } }>();
      assert.match(out.error.message, /PermanentRedirect/);
      assert.match(out.error.hint, /eu-west-1/, 'the region to set');
      assert.ok(!speaksCli(out.error.hint));
      assert.deepStrictEqual(seen.filter((x) => !x.startsWith('GET')), [], 'nothing sent or deleted');
      const after = fingerprint(local);
      delete after['.ai-memory-backup.remote.json'];
      assert.deepStrictEqual(after, before);
      // A HEAD (no body to read a code from) says the same.
      const t = target(proxy.endpoint, 'laptop/');
      await assert.rejects(t.client.head('laptop/x'), (e: Error & { hint?: string }) => /PermanentRedirect/.test(e.message) && /eu-west-1/.test(e.hint ?? ''));
    } finally {
      await proxy.close();
    }
    // The right endpoint, a request signed for another region: AWS names the bucket's in <Region>.
    const signedElsewhere = await startLoopbackProxy(s3.port, (req, res) => {
      req.resume();
      res.writeHead(400, { 'content-type': 'application/xml' });
      res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>AuthorizationHeaderMalformed</Code><Message>The authorization header is malformed; the region \'us-east-1\' is wrong; expecting \'ap-southeast-2\'</Message><Region>ap-southeast-2</Region></Error>');
      return true;
    });
    try {
      const r = await pushToTarget({ localDir: local, target: target(signedElsewhere.endpoint, 'laptop/'), keep: 0 });
      assert.strictEqual(r.error?.code, 'REMOTE_AUTH');
      assert.match(r.error?.hint ?? '', /The bucket is in the region ap-southeast-2/);
    } finally {
      await signedElsewhere.close();
    }
  });

  it('objects that are not what they say (0 bytes, a manifest without its snapshot or the reverse, bytes changed under the GET, a HEAD that disagrees): nothing pulled wrong, nothing counted copied', async () => {
    const local = tmp.join('backups');
    const names = hourly(5);
    const [a, b, c, d, e] = names;
    snapshots(local, db, [a, b, c]);
    const t = target(s3.endpoint, 'laptop/', 2);
    assert.strictEqual((await pushToTarget({ localDir: local, target: t, keep: 0 })).status, 'copied');
    const m = (n: string) => n.replace(/\.db$/, '.manifest.json');
    await t.client.put(`laptop/${m(c)}`, Buffer.alloc(0)); // the newest's manifest: 0 bytes
    await t.client.put(`laptop/${b}`, Buffer.alloc(0)); // a snapshot: 0 bytes
    await t.client.put(`laptop/${m(d)}`, fs.readFileSync(path.join(local, m(a)))); // a manifest without its snapshot
    await t.client.put(`laptop/${e}`, db); // a snapshot without its manifest

    await assert.rejects(pullFromTarget({ target: t, toDir: tmp.join('p1') }), (x: Error & { code?: string }) => x.code === 'MANIFEST_INVALID');
    const refused: PullRefused[] = [];
    const got = await pullFromTarget({ target: t, toDir: tmp.join('p2'), names: 'all', onRefused: (r) => refused.push(r) });
    assert.deepStrictEqual(got.map((r) => r.name), [a]);
    assert.deepStrictEqual(refused.map((r) => [r.name, r.code]), [[c, 'MANIFEST_INVALID'], [b, 'SHA_MISMATCH']]);
    assert.deepStrictEqual(fs.readdirSync(tmp.join('p2')).filter((n) => n.startsWith('ai-memory-')).sort(), [a, m(a)].sort());
    assert.deepStrictEqual((await listRemote(t)).snapshots.map((x) => [x.name, x.complete]), [[e, false], [c, true], [b, true], [a, true]]);

    // The next push copies ours again (both damaged there), leaves the young unfinished ones, and says copied only then.
    const r = await pushToTarget({ localDir: local, target: t, keep: 0 });
    assert.strictEqual(r.status, 'copied', JSON.stringify(r.error));
    assert.deepStrictEqual([...(r.report?.uploaded ?? [])].sort(), [b, c]);
    const all3 = await pullFromTarget({ target: t, toDir: tmp.join('p3'), names: 'all' });
    assert.deepStrictEqual(all3.map((x) => x.name), [c, b, a]);

    // Bytes changed between the LIST and the GET (another writer, a provider's fault): refused, nothing kept.
    const flip = await startRewritingProxy(s3.port, (req, res) => {
      if (req.method !== 'GET' || !(req.url ?? '').endsWith(c) || res.body.length < 100) return undefined;
      const body = Buffer.from(res.body);
      body[100] ^= 0xff;
      return { ...res, body };
    });
    try {
      await assert.rejects(pullFromTarget({ target: target(flip.endpoint, 'laptop/', 2), toDir: tmp.join('p4') }), (x: Error & { code?: string }) => x.code === 'SHA_MISMATCH');
      assert.deepStrictEqual(fs.readdirSync(tmp.join('p4')).filter((n) => n.startsWith('ai-memory-')), []);
    } finally {
      await flip.close();
    }

    // A HEAD that disagrees with what was sent: the copy is failed and pending, the manifest never sent.
    const local2 = tmp.join('backups2');
    snapshots(local2, db, [d]);
    const liar = await startRewritingProxy(s3.port, (req, res) => (req.method === 'HEAD' && (req.url ?? '').endsWith(d) ? { ...res, headers: { ...res.headers, 'content-length': String(db.length - 1) } } : undefined));
    try {
      const t2 = target(liar.endpoint, 'other/', 2);
      const r2 = await pushToTarget({ localDir: local2, target: t2, keep: 0 });
      assert.strictEqual(r2.status, 'failed');
      assert.strictEqual(r2.error?.code, 'REMOTE_MISMATCH');
      assert.ok(!serverKeys(s3).includes(`other/${m(d)}`), 'no manifest: not complete there');
      const st = (await readRemoteState(local2)).targets[t2.id];
      assert.deepStrictEqual([st.status, st.copied, st.pending], ['failed', [], [d]]);
    } finally {
      await liar.close();
    }
  });

  it('ETags that are no MD5 (multipart-style -N, quoted or not) are accepted as the provider\'s; an MD5 ETag that is not ours fails the copy', async () => {
    const local = tmp.join('backups');
    const [a] = hourly(1);
    snapshots(local, db, [a]);
    for (const [label, etag, ok] of [
      ['multipart-style, quoted', '"0123456789abcdef0123456789abcdef-1"', true],
      ['multipart-style, unquoted', '0123456789abcdef0123456789abcdef-1', true],
      ['opaque', '"v1:xyz"', true],
      ['an MD5 of other bytes', '"00000000000000000000000000000000"', false],
    ] as const) {
      const proxy = await startRewritingProxy(s3.port, (req, res) => (req.method === 'PUT' || req.method === 'HEAD' ? { ...res, headers: { ...res.headers, etag } } : undefined));
      try {
        const t = target(proxy.endpoint, `${label.replace(/[^a-z]+/g, '-')}/`);
        const r = await pushToTarget({ localDir: local, target: t, keep: 0 });
        assert.strictEqual(r.status, ok ? 'copied' : 'failed', `${label}: ${JSON.stringify(r.error)}`);
        if (!ok) assert.strictEqual(r.error?.code, 'REMOTE_MISMATCH', label);
      } finally {
        await proxy.close();
      }
    }
  });

  it('a prefix with ! \' ( ) * (s3rver signs them differently from SigV4): the refused signature says the prefix may be why, not only "enter the secret again"; nothing changed', async () => {
    const local = tmp.join('backups');
    snapshots(local, db, hourly(1));
    const r = await pushToTarget({ localDir: local, target: target(s3.endpoint, "notes (old)!/"), keep: 0 });
    assert.strictEqual(r.status, 'failed');
    assert.strictEqual(r.error?.code, 'REMOTE_AUTH');
    assert.match(r.error?.hint ?? '', /secret again/);
    assert.match(r.error?.hint ?? '', /the prefix "notes \(old\)!\/" has characters \(\s?[ ()!]+\) that some servers sign differently/);
    assert.ok(!speaksCli(r.error?.hint ?? ''));
    assert.deepStrictEqual(serverKeys(s3), []);
    // Credentials that are wrong with a plain prefix: the hint stays about the secret alone.
    const wrong = new S3Target({ endpoint: s3.endpoint, region: 'us-east-1', bucket: BUCKET, prefix: 'laptop/', pathStyle: true }, { accessKeyId: S3_KEY, secretAccessKey: 'wrong' });
    const w = await pushToTarget({ localDir: local, target: wrong, keep: 0 });
    assert.strictEqual(w.error?.code, 'REMOTE_AUTH');
    assert.doesNotMatch(w.error?.hint ?? '', /prefix/);
  });

  it('a file over S3\'s 5 GiB single-PUT limit (a sparse 5 GiB + 1 file) goes as a multipart upload, never one PUT; a cancelled one is abandoned there', async () => {
    const big = tmp.join('big.db');
    fs.closeSync(fs.openSync(big, 'w'));
    fs.truncateSync(big, 5 * 1024 ** 3 + 1); // sparse: no 5 GiB written
    const seen: string[] = [];
    const proxy = await startLoopbackProxy(s3.port, (req) => {
      seen.push(`${req.method} ${(req.url ?? '').replace(/\?.*/, '')}${/[?&]uploads(=|&|$)/.test(req.url ?? '') ? '?uploads' : /[?&]partNumber=/.test(req.url ?? '') ? '?part' : /[?&]uploadId=/.test(req.url ?? '') ? '?uploadId' : ''}`);
      return false;
    });
    try {
      const t = target(proxy.endpoint, 'laptop/');
      const ac = new AbortController();
      let started: { key: string; uploadId: string } | undefined;
      await assert.rejects(
        t.uploadFile(hourly(1)[0], big, { bytes: 5 * 1024 ** 3 + 1, sha256: '0'.repeat(64) }, {
          signal: ac.signal,
          onMultipart: async (u) => {
            if (u) {
              started = u;
              setTimeout(() => ac.abort(), 50); // a few parts in: enough to see how it goes
            }
          },
        }),
        (e: Error & { code?: string }) => e.code === 'CANCELLED' || /Cancel/i.test(e.message),
      );
      assert.ok(started, 'a multipart upload was started');
      assert.ok(seen.some((x) => x.endsWith('?uploads')), seen.join('\n'));
      assert.deepStrictEqual(seen.filter((x) => x.startsWith('PUT') && !x.endsWith('?part')), [], 'no single PUT of the whole file');
      assert.ok(seen.some((x) => x.startsWith('DELETE') && x.endsWith('?uploadId')), 'the unfinished upload is abandoned');
      assert.deepStrictEqual(serverKeys(s3), []);
    } finally {
      await proxy.close();
    }
  });

  it('credentials that may PUT but not LIST (403 on the listing): the copy fails saying so, nothing is sent or deleted', async () => {
    const local = tmp.join('backups');
    snapshots(local, db, hourly(2));
    const proxy = await startLoopbackProxy(s3.port, (req, res) => {
      if (req.method !== 'GET' || !/[?&]list-type=2/.test(req.url ?? '')) return false;
      req.resume();
      res.writeHead(403, { 'content-type': 'application/xml' });
      res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>');
      return true;
    });
    try {
      const r = await pushToTarget({ localDir: local, target: target(proxy.endpoint, 'laptop/'), keep: 0 });
      assert.strictEqual(r.status, 'failed');
      assert.strictEqual(r.error?.code, 'REMOTE_DENIED');
      assert.match(r.error?.message ?? '', /refused listing/);
      assert.match(r.error?.hint ?? '', /List, Get, Put and Delete/);
      assert.deepStrictEqual(serverKeys(s3), []);
    } finally {
      await proxy.close();
    }
  });

  it('a snapshot object far larger than its manifest says is refused unread by pull (S3 and mirror): a damaged or planted object no longer fills this disk first', async () => {
    const local = tmp.join('backups');
    const [a, b] = hourly(2);
    snapshots(local, db, [a, b]);
    const mirror = tmp.join('mirror');
    fs.mkdirSync(mirror);
    const t = target(s3.endpoint, 'laptop/');
    for (const tg of [t, new MirrorTarget(mirror)]) assert.strictEqual((await pushToTarget({ localDir: local, target: tg, keep: 0 })).status, 'copied');
    // The newest's object replaced by 48 MiB (its manifest says a few KiB).
    const huge = Buffer.alloc(48 << 20, 7);
    await t.client.put(`laptop/${b}`, huge);
    fs.writeFileSync(path.join(mirror, b), huge);
    for (const tg of [t, new MirrorTarget(mirror)]) {
      let most = 0;
      const to = tmp.join(`pull-${tg.kind}`);
      await assert.rejects(
        pullFromTarget({ target: tg, toDir: to, onProgress: (p) => void (p.phase === 'downloading' && (most = Math.max(most, p.done ?? 0))) }),
        (e: Error & { code?: string }) => e.code === 'SIZE_MISMATCH' && /larger than its manifest/.test(e.message),
        tg.kind,
      );
      assert.ok(most <= db.length, `${tg.kind}: ${most} bytes downloaded for a ${db.length}-byte snapshot`);
      assert.deepStrictEqual(fs.readdirSync(to).filter((n) => n.startsWith('ai-memory-')), [], tg.kind);
      // pull --all passes over it and pulls the other.
      const refused: PullRefused[] = [];
      const got = await pullFromTarget({ target: tg, toDir: tmp.join(`all-${tg.kind}`), names: 'all', onRefused: (r) => refused.push(r) });
      assert.deepStrictEqual([got.map((x) => x.name), refused.map((x) => [x.name, x.code])], [[a], [[b, 'SIZE_MISMATCH']]], tg.kind);
    }
  });

  it('the CLI past S3\'s real page of 1,000 keys (1,040 objects, default page size): list --remote, pull and push see every one', async () => {
    // 520 hourly snapshots (three weeks of hourly backups with --keep 0), put straight through the S3 API.
    const names = hourly(520);
    const t = target(s3.endpoint, 'laptop/');
    const tiny = Buffer.from('x');
    const put = async (n: string) => {
      const body = n === names[519] ? db : tiny;
      await t.client.put(`laptop/${n}`, body);
      const m = { snapshot: n, sha256: sha(body), bytes: body.length, source_db: '/home/u/.ai-memory/ai-memory.db', version: '0.1.0', created_at: rfc3339(new Date()), integrity: 'unverified' as const };
      await t.client.put(`laptop/${n.replace(/\.db$/, '.manifest.json')}`, Buffer.from(serializeManifest(m)));
    };
    for (let i = 0; i < names.length; i += 8) await Promise.all(names.slice(i, i + 8).map(put));
    const env = { AWS_ACCESS_KEY_ID: S3_KEY, AWS_SECRET_ACCESS_KEY: S3_SECRET, AWS_ENDPOINT_URL: s3.endpoint };
    const remote = ['--remote', `s3://${BUCKET}/laptop`, '--path-style'];

    const l = await cli(['list', ...remote, '--json'], { cwd: tmp.path, env });
    assert.strictEqual(l.code, 0, l.stderr);
    const listed = l.json<{ name: string; complete: boolean }[]>();
    assert.strictEqual(listed.length, 520);
    assert.ok(listed.every((x) => x.complete), 'every manifest found, also those past the first 1,000 keys');
    assert.strictEqual(listed[0].name, names[519]);

    const p = await cli(['pull', ...remote, '--to', 'fresh', '--json'], { cwd: tmp.path, env });
    assert.strictEqual(p.code, 0, p.stderr);
    assert.deepStrictEqual(fs.readdirSync(tmp.join('fresh')).filter((n) => n.endsWith('.db')), [names[519]], 'the newest: past the first page');

    // push from the pulled folder: nothing sent again, nothing deleted (the older ones are not this folder's).
    const push = await cli(['push', ...remote, '--to', 'fresh', '--keep', '1', '--json'], { cwd: tmp.path, env });
    assert.strictEqual(push.code, 0, push.stderr);
    const out = push.json<{ uploaded: string[]; deleted: string[]; present: string[] }>();
    assert.deepStrictEqual([out.uploaded, out.deleted, out.present], [[], [], [names[519]]]);
    assert.strictEqual(serverKeys(s3).length, 1040);
  });
});
