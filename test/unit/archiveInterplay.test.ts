/**
 * The page-dedup archive together with what main gained beside it: ai-memory 1.0's signed
 * manifests (an archived snapshot keeps its signature and is chosen, refused and restored like
 * a plain one), ownership (a shared folder: one database's retention and archiving never touch
 * another's snapshots), modes and owners kept by restore, and off-machine copies (archived
 * snapshots are rebuilt and sent; never shown as "remote only").
 */
import * as assert from 'assert';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { keyFingerprint, publicKeyFromSeed } from '../../src/core/common/ed25519';
import { runBackup } from '../../src/core/ops/backup';
import { runPrune } from '../../src/core/ops/prune';
import { runMaterialize } from '../../src/core/ops/archived';
import { pullFromTarget } from '../../src/core/ops/pull';
import { diff, extract, inspectSnapshot } from '../../src/core/ops/memory';
import { runRestore } from '../../src/core/ops/restore';
import { verifyFolderOrFile } from '../../src/core/ops/verify';
import { MirrorTarget } from '../../src/core/remote/mirrorTarget';
import { pushToTarget } from '../../src/core/remote/sync';
import { archivePaths, listArchived } from '../../src/core/store/archive';
import { listSnapshots } from '../../src/core/store/catalog';
import { parseSnapshotName } from '../../src/core/store/naming';
import type { OperatorPublicKey } from '../../src/core/store/operatorKey';
import { createAiMemoryDb, seedMemory } from '../support/aiMemoryDb';
import { useTempDir } from '../support/tmp';

const SEED = Buffer.alloc(32, 0x31);
const PUB = publicKeyFromSeed(SEED);
const ANCHOR: OperatorPublicKey = { key: PUB, fingerprint: keyFingerprint(PUB), source: 'test' };
const SIGNER = { seed: SEED, publicKey: PUB, fingerprint: keyFingerprint(PUB), path: 'test/operator.key' };

const sha = (f: string) => createHash('sha256').update(fs.readFileSync(f)).digest('hex');
const plainNames = (dir: string) => fs.readdirSync(dir).filter((n) => /^ai-memory-.*\.db$/.test(n)).sort();
const tempsIn = (dir: string) => fs.readdirSync(dir).filter((n) => n.includes('.tmp'));

describe('archive with signatures, ownership, modes and remote copies', function () {
  this.timeout(120_000);
  const tmp = useTempDir('aimb-archive-x-');
  let clock: number;
  let db: string;
  let dir: string;

  beforeEach(() => {
    clock = Date.parse('2026-11-20T00:00:00Z');
    db = tmp.join(`db-${Math.random().toString(36).slice(2)}.db`);
    dir = tmp.join(`bk-${Math.random().toString(36).slice(2)}`);
    createAiMemoryDb(db, { memories: 40 });
  });

  /** n backups an hour apart, each after a change; the newest `plain` stay plain. */
  async function backups(n: number, o: { source?: string; plain?: number; keep?: number; signed?: boolean } = {}): Promise<{ name: string; sha256: string }[]> {
    const out: { name: string; sha256: string }[] = [];
    for (let i = 0; i < n; i++) {
      clock += 3600_000;
      seedMemory(o.source ?? db, 'ns', `m${clock}`, `memory at ${clock} `.repeat(20));
      const r = await runBackup({
        dbPath: o.source ?? db,
        backupDir: dir,
        keep: o.keep ?? 0,
        plain: o.plain ?? 2,
        now: () => new Date(clock),
        signing: o.signed ? { key: SIGNER, anchor: ANCHOR } : { key: null },
      });
      assert.strictEqual(r.status, 'created');
      out.push({ name: path.basename(r.snapshotPath), sha256: r.manifest.sha256 });
    }
    return out;
  }

  it('a signed manifest moves into the archive byte for byte: listed as verified, restored by --snapshot with its signature checked, a tampered one refused', async () => {
    const made = await backups(4, { signed: true });
    const archived = (await listArchived(dir)).map((a) => a.name).sort();
    assert.deepStrictEqual(archived, [made[0].name, made[1].name]);
    const listed = await listSnapshots(dir, { archived: true, anchor: ANCHOR });
    for (const e of listed) assert.strictEqual(e.signature?.state, 'verified', `${e.name} (${e.archived ? 'archived' : 'plain'})`);

    const r = await runRestore({ dbPath: db, from: dir, snapshot: made[0].name, anchor: ANCHOR });
    assert.strictEqual(r.plan.verification, 'signed');
    assert.strictEqual(sha(db), made[0].sha256);
    assert.ok(r.report.manifestPath.includes('.ai-memory-archive'), r.report.manifestPath);

    // verify --all checks every archived signature too.
    const v = await verifyFolderOrFile({ from: dir, all: true, anchor: ANCHOR });
    assert.deepStrictEqual(v.reports.filter((x) => x.problems.length).map((x) => x.name), []);
    assert.deepStrictEqual(v.reports.map((x) => x.signature?.state), ['verified', 'verified', 'verified', 'verified']);

    // Tamper with the archived manifest's signed payload: restore refuses it, and --latest refuses to choose at all.
    const mPath = path.join(archivePaths(dir).snapshots, made[1].name.replace(/\.db$/, '.manifest.json'));
    const m = JSON.parse(fs.readFileSync(mPath, 'utf8')) as { signed_payload: string };
    const payload = JSON.parse(Buffer.from(m.signed_payload, 'base64').toString('utf8')) as { memory_count: number };
    payload.memory_count += 1;
    m.signed_payload = Buffer.from(JSON.stringify(payload)).toString('base64');
    fs.writeFileSync(mPath, JSON.stringify(m, null, 2));
    const before = sha(db);
    await assert.rejects(runRestore({ dbPath: db, from: dir, snapshot: made[1].name, anchor: ANCHOR }), (e: Error & { code?: string }) => e.code === 'SIGNATURE_REFUSED');
    await assert.rejects(runRestore({ dbPath: db, from: dir, latest: true, anchor: ANCHOR }), (e: Error & { code?: string }) => e.code === 'SIGNATURE_REFUSED' && e.message.includes(made[1].name));
    assert.strictEqual(sha(db), before, 'the live database is untouched');
    const again = await verifyFolderOrFile({ from: dir, all: true, anchor: ANCHOR });
    assert.deepStrictEqual(again.reports.filter((x) => x.problems.length).map((x) => [x.name, x.problems[0].code]), [[made[1].name, 'SIGNATURE_REFUSED']]);
  });

  it('verify --all while retention runs: a snapshot deleted (plain or archived) after the listing is "gone", not a failure', async () => {
    const made = await backups(4, { plain: 2 });
    const { snapshots } = archivePaths(dir);
    const v = await verifyFolderOrFile({
      from: dir,
      all: true,
      anchor: null,
      onSnapshot: (_r, i) => {
        if (i !== 0) return;
        // As a prune would, after the first snapshot was checked: a plain one and an archived one go, each with its manifest.
        fs.rmSync(path.join(dir, made[2].name));
        fs.rmSync(path.join(dir, made[2].name.replace(/\.db$/, '.manifest.json')));
        fs.rmSync(path.join(snapshots, made[0].name.replace(/\.db$/, '.manifest.json')));
        fs.rmSync(path.join(snapshots, made[0].name.replace(/\.db$/, '.idx')));
      },
    });
    assert.deepStrictEqual(v.reports.filter((x) => x.problems.length).map((x) => [x.name, x.problems[0].message]), []);
    assert.deepStrictEqual(v.reports.map((x) => x.name).sort(), [made[1].name, made[3].name].sort());
    assert.deepStrictEqual([...v.gone].sort(), [made[0].name, made[2].name].sort());
  });

  it('pull --verify off still checks the signed manifest: an edited manifest naming edited bytes is refused', async () => {
    const [made] = await backups(1, { signed: true, plain: 1 });
    const mirror = tmp.join(`nas-${Math.random().toString(36).slice(2)}`);
    fs.mkdirSync(mirror);
    await pushToTarget({ localDir: dir, target: new MirrorTarget(mirror), keep: 48 });
    // On the target: other bytes, and the manifest's plain sha256 edited to name them (the signature untouched).
    const snap = path.join(mirror, made.name);
    const bytes = fs.readFileSync(snap);
    bytes[bytes.length - 10] ^= 0x01;
    fs.writeFileSync(snap, bytes);
    const mPath = snap.replace(/\.db$/, '.manifest.json');
    fs.writeFileSync(mPath, JSON.stringify({ ...JSON.parse(fs.readFileSync(mPath, 'utf8')), sha256: sha(snap) }, null, 2));
    const saved = process.env.AI_MEMORY_OPERATOR_PUBKEY;
    process.env.AI_MEMORY_OPERATOR_PUBKEY = PUB.toString('base64url');
    try {
      const into = tmp.join(`pulled-${Math.random().toString(36).slice(2)}`);
      await assert.rejects(pullFromTarget({ target: new MirrorTarget(mirror), toDir: into, names: [made.name], integrity: 'off' }));
      assert.ok(!fs.existsSync(path.join(into, made.name)), 'nothing kept');
    } finally {
      if (saved === undefined) delete process.env.AI_MEMORY_OPERATOR_PUBKEY;
      else process.env.AI_MEMORY_OPERATOR_PUBKEY = saved;
    }
  });

  it('prune of a plain snapshot also in the archive (materialized back into the folder) deletes both in one go', async () => {
    const made = await backups(4, { plain: 1 });
    const oldest = made[0].name;
    assert.ok((await listArchived(dir)).some((a) => a.name === oldest));
    await runMaterialize({ from: path.join(dir, oldest), out: dir });
    assert.ok(plainNames(dir).includes(oldest), 'the plain twin');
    assert.strictEqual(fs.statSync(path.join(dir, oldest)).mtimeMs, parseSnapshotName(oldest)?.time, 'dated as the snapshot (ai-memory orders by file time)');
    const p = await runPrune({ backupDir: dir, dbPath: db, policy: { last: 3 } });
    assert.deepStrictEqual(p.pruned, [oldest]);
    assert.ok(!plainNames(dir).includes(oldest));
    assert.ok(!(await listArchived(dir)).some((a) => a.name === oldest), 'its archived copy went with it');
    assert.ok((await listArchived(dir)).some((a) => a.name === made[1].name), 'the others stay');
  });

  it('a shared folder: one database\'s retention and archiving never delete or archive another database\'s snapshots', async () => {
    const other = tmp.join(`other-${Math.random().toString(36).slice(2)}.db`);
    createAiMemoryDb(other, { memories: 30 });
    const theirs = await backups(3, { source: other, plain: 3 });
    const mine = await backups(5, { keep: 3, plain: 1 });
    // Mine: 3 kept (the newest plain, two archived), 2 deleted. Theirs: all three, plain, untouched.
    const archived = (await listArchived(dir)).map((a) => a.name).sort();
    assert.deepStrictEqual(archived, [mine[2].name, mine[3].name]);
    assert.deepStrictEqual(plainNames(dir), [...theirs.map((t) => t.name), mine[4].name].sort());
    for (const t of theirs) assert.strictEqual(sha(path.join(dir, t.name)), t.sha256);
    // prune for the other database applies its policy to its own snapshots only.
    const p = await runPrune({ backupDir: dir, dbPath: other, policy: { last: 2 }, plain: 1, dryRun: true });
    assert.deepStrictEqual(p.decisions.map((d) => [d.name, d.keep]), [
      [theirs[2].name, true],
      [theirs[1].name, true],
      [theirs[0].name, false],
    ]);
    assert.deepStrictEqual(p.wouldArchive, [theirs[1].name]);
    // Restore from the folder takes this database's newest, archived ones counted as this database's.
    const r = await runRestore({ dbPath: db, from: path.join(dir, mine[2].name) });
    assert.strictEqual(r.plan.source.owner, 'this');
    assert.deepStrictEqual(r.warnings, []);
  });

  it('inspect, diff and extract read an archived snapshot (rebuilt, checked, its temp removed)', async () => {
    const made = await backups(3, { plain: 1 });
    const archivedPath = path.join(dir, made[0].name);
    assert.ok(!fs.existsSync(archivedPath), 'archived');
    const i = await inspectSnapshot({ from: archivedPath });
    assert.strictEqual(i.snapshot.sha256, made[0].sha256);
    assert.strictEqual(i.snapshot.manifest, 'ok');
    assert.strictEqual(i.overview.facts?.memories, 41, 'the 40 memories and the one stored before the first backup');
    // Two memories were stored after it: the current database has them as "added".
    const d = await diff({ from: archivedPath, to: { db } });
    assert.strictEqual(d.added.length, 2);
    assert.strictEqual(d.removed.length, 0);
    const out = tmp.join(`extract-${Math.random().toString(36).slice(2)}.json`);
    const x = await extract({ from: archivedPath, select: { namespace: 'ns' }, out });
    assert.strictEqual(x.document.memories.length, 1);
    assert.strictEqual(x.out, out);
    assert.deepStrictEqual(tempsIn(dir), [], 'the rebuilt temp files are gone');
  });

  it('restoring an archived snapshot keeps the replaced database\'s mode and the old one aside', async () => {
    const made = await backups(3, { plain: 1 });
    fs.chmodSync(db, 0o640);
    const oldSha = sha(db);
    const r = await runRestore({ dbPath: db, from: path.join(dir, made[0].name) });
    assert.strictEqual(r.status, 'restored');
    assert.strictEqual(sha(db), made[0].sha256);
    assert.strictEqual(fs.statSync(db).mode & 0o777, 0o640);
    assert.ok(r.previous && fs.existsSync(r.previous));
    assert.strictEqual(sha(r.previous), oldSha);
    assert.deepStrictEqual(tempsIn(dir), [], 'the rebuilt temp file is gone');
    assert.deepStrictEqual(tempsIn(path.dirname(db)), []);
    // A new database (a named path that does not exist): the snapshot's mode (as a plain snapshot's restore gives).
    const fresh = tmp.join(`fresh-${Math.random().toString(36).slice(2)}`, 'ai-memory.db');
    fs.mkdirSync(path.dirname(fresh));
    await runRestore({ dbPath: fresh, from: path.join(dir, made[1].name), createIfMissing: true });
    assert.strictEqual(sha(fresh), made[1].sha256);
    assert.strictEqual(fs.statSync(fresh).mode & 0o777, fs.statSync(path.join(dir, made[2].name)).mode & 0o777);
  });

  it('push sends archived snapshots (rebuilt, checked) the target lacks; those it holds are present, never "remote only"; a damaged one is skipped and said', async () => {
    const mirror = tmp.join(`nas-${Math.random().toString(36).slice(2)}`);
    fs.mkdirSync(mirror);
    const first = await backups(2, { plain: 2 });
    const t = new MirrorTarget(mirror);
    assert.deepStrictEqual((await pushToTarget({ localDir: dir, target: t, keep: 48 })).report?.uploaded.sort(), first.map((m) => m.name).sort());
    const more = await backups(2, { plain: 2 });
    assert.deepStrictEqual((await listArchived(dir)).map((a) => a.name).sort(), first.map((m) => m.name).sort(), 'the first two are archived now');
    const o = await pushToTarget({ localDir: dir, target: t, keep: 48 });
    assert.strictEqual(o.status, 'copied');
    assert.deepStrictEqual(o.report?.uploaded.sort(), more.map((m) => m.name).sort());
    assert.deepStrictEqual(o.report?.present.sort(), first.map((m) => m.name).sort());
    assert.deepStrictEqual(o.report?.remoteOnly, []);

    // A new target gets all four, archived ones rebuilt: byte-identical files, the manifests byte for byte.
    const mirror2 = tmp.join(`nas2-${Math.random().toString(36).slice(2)}`);
    fs.mkdirSync(mirror2);
    const o2 = await pushToTarget({ localDir: dir, target: new MirrorTarget(mirror2), keep: 48 });
    assert.strictEqual(o2.status, 'copied');
    for (const m of [...first, ...more]) {
      assert.strictEqual(sha(path.join(mirror2, m.name)), m.sha256, m.name);
    }
    const archivedManifest = path.join(archivePaths(dir).snapshots, first[0].name.replace(/\.db$/, '.manifest.json'));
    assert.ok(fs.readFileSync(path.join(mirror2, first[0].name.replace(/\.db$/, '.manifest.json'))).equals(fs.readFileSync(archivedManifest)));
    assert.deepStrictEqual(tempsIn(dir), [], 'no rebuilt temp left in the backup folder');
    // Pulling an archived snapshot back into its own folder: it is there already (nothing downloaded, no plain twin).
    const pulled = await pullFromTarget({ target: new MirrorTarget(mirror2), toDir: dir, names: [first[0].name] });
    assert.deepStrictEqual(pulled.map((p) => [p.name, p.status]), [[first[0].name, 'present']]);
    assert.ok(!fs.existsSync(path.join(dir, first[0].name)), 'still archived only');
    // Into another folder: downloaded, dated as the snapshot (ai-memory orders by file time), not as the download.
    const elsewhere = tmp.join(`pulled-${Math.random().toString(36).slice(2)}`);
    const got = await pullFromTarget({ target: new MirrorTarget(mirror2), toDir: elsewhere, names: [first[0].name] });
    assert.deepStrictEqual(got.map((p) => p.status), ['downloaded']);
    assert.strictEqual(fs.statSync(path.join(elsewhere, first[0].name)).mtimeMs, parseSnapshotName(first[0].name)?.time);
    // Pulled again after a bit rotted here: not "present", and not replaced.
    const pulledFile = path.join(elsewhere, first[0].name);
    const rotted = fs.readFileSync(pulledFile);
    rotted[rotted.length - 100] ^= 0x04;
    fs.writeFileSync(pulledFile, rotted);
    await assert.rejects(pullFromTarget({ target: new MirrorTarget(mirror2), toDir: elsewhere, names: [first[0].name] }), /damaged/);
    assert.ok(fs.readFileSync(pulledFile).equals(rotted), 'left as it was');

    // A damaged archive: every pack truncated. The archived snapshots are skipped (with why), the plain ones still go.
    for (const p of fs.readdirSync(archivePaths(dir).packs)) fs.truncateSync(path.join(archivePaths(dir).packs, p), 100);
    const mirror3 = tmp.join(`nas3-${Math.random().toString(36).slice(2)}`);
    fs.mkdirSync(mirror3);
    const o3 = await pushToTarget({ localDir: dir, target: new MirrorTarget(mirror3), keep: 48 });
    assert.deepStrictEqual(o3.report?.uploaded.sort(), more.map((m) => m.name).sort());
    assert.deepStrictEqual(o3.report?.skipped.map((s) => s.name).sort(), first.map((m) => m.name).sort());
    assert.ok(o3.report?.skipped.every((s) => /does not rebuild/.test(s.reason)), JSON.stringify(o3.report?.skipped));
    assert.deepStrictEqual(plainNames(mirror3), more.map((m) => m.name).sort());
    assert.deepStrictEqual(tempsIn(dir), []);
  });
});
