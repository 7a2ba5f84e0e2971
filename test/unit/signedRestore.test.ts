/**
 * ai-memory 1.0 compatibility end to end: snapshots we sign pass 1.0's restore checks (the
 * independent oracle in test/support/aiMemory1Restore.ts), manifests signed the way 1.0
 * signs restore with ours, the tamper cases are refused with the live database untouched,
 * the posture (no key: 0.7 behaviour; key: unsigned refused unless allowed), 1.0's restore
 * flags, and the newer-schema refusal.
 */
import * as assert from 'assert';
import { spawnSync } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { publicKeyFromSeed, keyFingerprint } from '../../src/core/common/ed25519';
import { runBackup } from '../../src/core/ops/backup';
import { runRestore } from '../../src/core/ops/restore';
import type { OperatorPublicKey } from '../../src/core/store/operatorKey';
import { aiMemory1RestoreChecks, aiMemory1SelectLatest, aiMemory1Sign, nobleSign } from '../support/aiMemory1Restore';
import { createAiMemoryDb, readMemories, seedMemory } from '../support/aiMemoryDb';
import { cli } from '../support/cliRun';
import { runCliProcess } from '../support/reliability';
import { openNative } from '../support/sqlite';
import { useTempDir } from '../support/tmp';

const SEED = Buffer.alloc(32, 0x31);
const OTHER = Buffer.alloc(32, 0x42);
const PUB = publicKeyFromSeed(SEED);
const ANCHOR: OperatorPublicKey = { key: PUB, fingerprint: keyFingerprint(PUB), source: 'test' };
const SIGNER = { seed: SEED, publicKey: PUB, fingerprint: keyFingerprint(PUB), path: 'test/operator.key' };
const SCHEMA = 28; // the fixtures' schema version

const sha = (f: string) => createHash('sha256').update(fs.readFileSync(f)).digest('hex');
const readJson = (f: string) => JSON.parse(fs.readFileSync(f, 'utf8')) as Record<string, unknown>;
const writeJson = (f: string, o: unknown) => fs.writeFileSync(f, JSON.stringify(o, null, 2));
const manifestOf = (snap: string) => snap.replace(/\.db$/, '.manifest.json');

describe('ai-memory 1.0: signed backups and restores', function () {
  this.timeout(120_000);
  const tmp = useTempDir();
  let db: string;
  let dir: string;

  beforeEach(() => {
    db = tmp.join(`db-${Math.random().toString(36).slice(2)}.db`);
    dir = tmp.join(`bk-${Math.random().toString(36).slice(2)}`);
    createAiMemoryDb(db, { memories: 12 });
  });

  async function signedBackup(d = dir, source = db, at?: Date) {
    return runBackup({ dbPath: source, backupDir: d, signing: { key: SIGNER, anchor: ANCHOR }, now: at ? () => at : undefined });
  }

  async function refusedUntouched(p: Promise<unknown>, code: string, re?: RegExp) {
    const before = sha(db);
    await assert.rejects(p, (e: Error & { code?: string }) => {
      assert.strictEqual(e.code, code, e.message);
      if (re) assert.match(e.message, re);
      return true;
    });
    assert.strictEqual(sha(db), before, 'the live database is untouched');
  }

  it('prune names the snapshots signed with another key (a key rotation), which retention leaves alone, instead of keeping them without a word', async () => {
    const oldPub = publicKeyFromSeed(OTHER);
    const oldKey = { seed: OTHER, publicKey: oldPub, fingerprint: keyFingerprint(oldPub), path: 'test/old-operator.key' };
    const oldAnchor: OperatorPublicKey = { key: oldPub, fingerprint: keyFingerprint(oldPub), source: 'test' };
    const before = await runBackup({ dbPath: db, backupDir: dir, signing: { key: oldKey, anchor: oldAnchor }, now: () => new Date('2026-11-01T10:00:00Z') });
    seedMemory(db, 'ns', 'after the key change', 'x');
    const after = await signedBackup(dir, db, new Date('2026-11-02T10:00:00Z'));
    // Retention resolves the operator key as ai-memory does, from this process's environment.
    const env = { AI_MEMORY_OPERATOR_PUBKEY: PUB.toString('base64') };
    const saved = process.env.AI_MEMORY_OPERATOR_PUBKEY;
    process.env.AI_MEMORY_OPERATOR_PUBKEY = env.AI_MEMORY_OPERATOR_PUBKEY;
    let r;
    try {
      r = await cli(['prune', '--to', dir, '--db', db, '--keep-last', '1', '--json'], { cwd: tmp.path, env, home: tmp.join('nohome') });
    } finally {
      if (saved === undefined) delete process.env.AI_MEMORY_OPERATOR_PUBKEY;
      else process.env.AI_MEMORY_OPERATOR_PUBKEY = saved;
    }
    assert.strictEqual(r.code, 0, r.stderr);
    assert.match(r.stderr, /warning: 1 snapshot is left alone: its manifest is signed with another key than the operator key configured now/);
    assert.ok(r.stderr.includes(path.basename(before.snapshotPath as string)), r.stderr);
    assert.deepStrictEqual((r.json() as { deleted: string[] }).deleted, []);
    assert.ok(fs.existsSync(before.snapshotPath as string) && fs.existsSync(after.snapshotPath as string), 'nothing deleted');
  });

  it('writes 1.0\'s fields after the six, signs them, and the snapshot passes 1.0\'s restore checks', async () => {
    const r = await signedBackup();
    const m = readJson(r.manifestPath);
    assert.deepStrictEqual(Object.keys(m).slice(0, 13), ['snapshot', 'sha256', 'bytes', 'source_db', 'version', 'created_at', 'backend', 'schema_version', 'memory_count', 'manifest_version', 'signed_payload', 'signature', 'signer']);
    assert.strictEqual(m.backend, 'sqlite');
    assert.strictEqual(m.memory_count, 12);
    assert.strictEqual(m.schema_version, SCHEMA);
    assert.strictEqual(m.signer, ANCHOR.fingerprint);
    assert.deepStrictEqual(r.signing, { signed: true, signer: ANCHOR.fingerprint, keyPath: SIGNER.path });
    assert.deepStrictEqual(aiMemory1RestoreChecks(r.snapshotPath, { anchor: PUB, binarySchema: SCHEMA }), { verification: 'signed', sha256: m.sha256 });
    assert.strictEqual(aiMemory1SelectLatest(dir, PUB), r.snapshotPath);
    // A host without the key: 1.0 calls it unverified (no_operator_pubkey) and needs the flag.
    assert.throws(() => aiMemory1RestoreChecks(r.snapshotPath, { binarySchema: SCHEMA }), /no_operator_pubkey/);
  });

  it('an unchanged database is backed up again once an operator key signs it, then not again', async () => {
    const first = await runBackup({ dbPath: db, backupDir: dir, signing: { key: null } });
    assert.strictEqual((await runBackup({ dbPath: db, backupDir: dir, signing: { key: null } })).status, 'unchanged');
    const signed = await signedBackup();
    assert.strictEqual(signed.status, 'created');
    assert.notStrictEqual(signed.snapshotPath, first.snapshotPath);
    assert.strictEqual(signed.manifest.signer, ANCHOR.fingerprint);
    assert.strictEqual((await signedBackup()).status, 'unchanged');
  });

  it('with a key, a database without the schema_version table is unsigned, and the reason says so (not "encrypted or too large")', async () => {
    const native = openNative(db);
    try {
      native.exec('DROP TABLE schema_version');
    } finally {
      native.close();
    }
    for (const verify of ['quick', 'off'] as const) {
      const r = await runBackup({ dbPath: db, backupDir: tmp.join(`bk-noschema-${verify}`), verify, signing: { key: SIGNER, anchor: ANCHOR } });
      assert.strictEqual(readJson(r.manifestPath).signature, undefined);
      assert.match(r.signing?.warning ?? '', /NOT signed \(the database has no schema_version table, and 1\.0's signature covers the schema version\)/);
      assert.doesNotMatch(r.signing?.warning ?? '', /encrypted/);
    }
  });

  it('with --verify off and no key: still 1.0\'s facts, unsigned, and says what 1.0\'s restore will need', async () => {
    const r = await runBackup({ dbPath: db, backupDir: dir, verify: 'off', signing: { key: null } });
    const m = readJson(r.manifestPath);
    assert.strictEqual(m.memory_count, 12);
    assert.strictEqual(m.schema_version, SCHEMA);
    assert.strictEqual(m.signature, undefined);
    assert.strictEqual(m.integrity, 'unverified');
    assert.match(r.signing?.warning ?? '', /NOT signed.*--allow-unsigned-manifest/);
    assert.throws(() => aiMemory1RestoreChecks(r.snapshotPath, { anchor: PUB, binarySchema: SCHEMA }), /allow-unsigned-manifest/);
    assert.strictEqual(aiMemory1RestoreChecks(r.snapshotPath, { anchor: PUB, binarySchema: SCHEMA, allowUnsignedManifest: true }).verification, 'unsigned_allowed');
  });

  it('a manifest signed the way 1.0 signs it restores with ours, decided from the signed payload', async () => {
    const r = await runBackup({ dbPath: db, backupDir: dir, signing: { key: null } });
    const plain = readJson(r.manifestPath);
    // 1.0's own manifest: its fields only, serde's pretty JSON, signed by its sign_into.
    const v1 = aiMemory1Sign({ snapshot: plain.snapshot, sha256: plain.sha256, bytes: plain.bytes, source_db: plain.source_db, version: '1.0.0', created_at: plain.created_at, backend: 'sqlite', schema_version: SCHEMA, memory_count: 12 }, SEED);
    writeJson(r.manifestPath, v1);
    seedMemory(db, 'ns', 'added after the backup', 'x');
    const res = await runRestore({ dbPath: db, from: r.snapshotPath, anchor: ANCHOR });
    assert.strictEqual(res.status, 'restored');
    assert.strictEqual(res.plan.signature?.state, 'verified');
    assert.strictEqual(readMemories(db).length, 12);
  });

  describe('tampering', () => {
    it('a swapped snapshot with its plain sha256 and bytes rewritten is refused (the signed sha256 decides)', async () => {
      const r = await signedBackup();
      const other = tmp.join('other.db');
      createAiMemoryDb(other, { memories: 3, seed: 7 });
      const theirs = await runBackup({ dbPath: other, backupDir: tmp.join('other-bk'), signing: { key: null } });
      fs.copyFileSync(theirs.snapshotPath, r.snapshotPath);
      const m = readJson(r.manifestPath);
      writeJson(r.manifestPath, { ...m, sha256: sha(r.snapshotPath), bytes: fs.statSync(r.snapshotPath).size });
      await refusedUntouched(runRestore({ dbPath: db, from: r.snapshotPath, anchor: ANCHOR }), theirs.manifest.bytes === r.manifest.bytes ? 'SHA_MISMATCH' : 'SIZE_MISMATCH');
    });

    it('plain fields edited under a valid signature are ignored: the restore decides from the payload', async () => {
      const r = await signedBackup();
      const m = readJson(r.manifestPath);
      writeJson(r.manifestPath, { ...m, sha256: '0'.repeat(64), bytes: 1, created_at: '2099-01-01T00:00:00+00:00', schema_version: 999 });
      const res = await runRestore({ dbPath: db, from: dir, anchor: ANCHOR, latest: true });
      assert.strictEqual(res.status, 'restored');
      assert.strictEqual(res.sha256, r.manifest.sha256);
    });

    it('re-signed with another key: refused, and --allow-unsigned-manifest does not accept it', async () => {
      const r = await signedBackup();
      const m = readJson(r.manifestPath);
      writeJson(r.manifestPath, aiMemory1Sign(m, OTHER));
      for (const allow of [false, true]) {
        await refusedUntouched(runRestore({ dbPath: db, from: r.snapshotPath, anchor: ANCHOR, allowUnsignedManifest: allow }), 'SIGNATURE_REFUSED', /does NOT verify/);
      }
      assert.throws(() => aiMemory1RestoreChecks(r.snapshotPath, { anchor: PUB, binarySchema: SCHEMA, allowUnsignedManifest: true }), /does NOT verify/);
    });

    it('signature stripped: refused while a key is configured, unless --allow-unsigned-manifest', async () => {
      const r = await signedBackup();
      const m = readJson(r.manifestPath);
      for (const k of ['manifest_version', 'signed_payload', 'signature', 'signer']) delete m[k];
      writeJson(r.manifestPath, m);
      await refusedUntouched(runRestore({ dbPath: db, from: r.snapshotPath, anchor: ANCHOR }), 'MANIFEST_UNSIGNED', /not signed/);
      const res = await runRestore({ dbPath: db, from: r.snapshotPath, anchor: ANCHOR, allowUnsignedManifest: true });
      assert.strictEqual(res.status, 'restored');
      assert.match(res.warnings.join('\n'), /NOT signed/);
    });

    it('half a signature is refused, flag or not', async () => {
      const r = await signedBackup();
      const m = readJson(r.manifestPath);
      delete m.signature;
      writeJson(r.manifestPath, m);
      await refusedUntouched(runRestore({ dbPath: db, from: r.snapshotPath, anchor: ANCHOR, allowUnsignedManifest: true }), 'SIGNATURE_REFUSED', /half a signature/);
    });

    it('a payload from another domain, signed with the operator key, is refused', async () => {
      const r = await signedBackup();
      writeJson(r.manifestPath, aiMemory1Sign(readJson(r.manifestPath), SEED, { dst: 'ai-memory/rules/v1' }));
      await refusedUntouched(runRestore({ dbPath: db, from: r.snapshotPath, anchor: ANCHOR }), 'SIGNATURE_REFUSED', /ai-memory\/rules\/v1/);
    });

    /** The manifest with `text` as its signed payload, signed by the operator key (the signature verifies). */
    function signPayloadText(manifestPath: string, text: (payload: string) => string) {
      const m = readJson(manifestPath);
      const bytes = Buffer.from(text(Buffer.from(m.signed_payload as string, 'base64').toString('utf8')), 'utf8');
      writeJson(manifestPath, { ...m, signed_payload: bytes.toString('base64'), signature: Buffer.from(nobleSign(new Uint8Array(bytes), SEED)).toString('base64') });
    }

    it('a payload serde_json refuses (a duplicate field), signed with the operator key, is refused — by restore and by --latest — not read as JSON.parse reads it', async () => {
      const older = await signedBackup(dir, db, new Date('2026-11-01T00:00:00Z'));
      seedMemory(db, 'ns', 'a second snapshot', 'x');
      const r = await signedBackup(dir, db, new Date('2026-11-02T00:00:00Z'));
      assert.notStrictEqual(r.snapshotPath, older.snapshotPath);
      // The first "snapshot" names the older file; JSON.parse keeps the last one, serde refuses the pair.
      signPayloadText(r.manifestPath, (t) => t.replace('"snapshot":', `"snapshot":${JSON.stringify(path.basename(older.snapshotPath))},"snapshot":`));
      await refusedUntouched(runRestore({ dbPath: db, from: r.snapshotPath, anchor: ANCHOR }), 'SIGNATURE_REFUSED', /duplicate field "snapshot"/);
      await refusedUntouched(runRestore({ dbPath: db, from: dir, anchor: ANCHOR, latest: true }), 'SIGNATURE_REFUSED', /duplicate field "snapshot"/);
      signPayloadText(r.manifestPath, (t) => t.replace(/"snapshot":"[^"]*",/, '').replace('"v":1,', '"v":1.0,'));
      await refusedUntouched(runRestore({ dbPath: db, from: r.snapshotPath, anchor: ANCHOR }), 'SIGNATURE_REFUSED', /"v" is 1\.0, a float/);
    });

    it('a manifest serde_json refuses (a duplicate plain field, 4096.0 bytes) is refused as 1.0 refuses it, signed or not, with or without --allow-unsigned-manifest', async () => {
      const r = await signedBackup();
      const text = fs.readFileSync(r.manifestPath, 'utf8');
      // A valid signature; a second "sha256" (JSON.parse keeps the last) — 1.0: "not valid manifest JSON".
      fs.writeFileSync(r.manifestPath, text.replace('"sha256":', `"sha256": "${'0'.repeat(64)}",\n  "sha256":`));
      await refusedUntouched(runRestore({ dbPath: db, from: r.snapshotPath, anchor: ANCHOR }), 'MANIFEST_INVALID', /duplicate field "sha256"/);
      const m = readJson(r.manifestPath);
      for (const k of ['manifest_version', 'signed_payload', 'signature', 'signer']) delete m[k];
      fs.writeFileSync(r.manifestPath, JSON.stringify(m, null, 2).replace(/"bytes": (\d+)/, '"bytes": $1.0'));
      for (const anchor of [ANCHOR, null]) {
        await refusedUntouched(runRestore({ dbPath: db, from: r.snapshotPath, anchor, allowUnsignedManifest: true }), 'MANIFEST_INVALID', /"bytes" is \d+\.0, a float/);
      }
    });

    it('a manifest whose bytes are not UTF-8 (one byte of its tool field damaged) is refused as 0.7 and 1.0 refuse it (read_to_string), signed or not; verify says so', async () => {
      const r = await signedBackup();
      const bytes = fs.readFileSync(r.manifestPath);
      // An invalid byte inside a plain string field: ai-memory cannot read the file at all, where
      // a lenient decode turned it into U+FFFD and the snapshot passed as verified.
      for (const manifest of [bytes, Buffer.from(JSON.stringify({ ...readJson(r.manifestPath), signed_payload: undefined, signature: undefined, signer: undefined, manifest_version: undefined }, null, 2))]) {
        const bad = Buffer.from(manifest);
        bad[manifest.indexOf(Buffer.from('"tool": "')) + '"tool": "'.length] = 0xff;
        fs.writeFileSync(r.manifestPath, bad);
        for (const anchor of [ANCHOR, null]) {
          await refusedUntouched(runRestore({ dbPath: db, from: r.snapshotPath, anchor, allowUnsignedManifest: true }), 'MANIFEST_INVALID', /is not UTF-8 text/);
        }
        const v = await cli(['verify', '--from', r.snapshotPath, '--json'], { cwd: tmp.path, home: tmp.join('nohome') });
        assert.notStrictEqual(v.code, 0, v.stdout);
        assert.match(v.stdout + v.stderr, /not UTF-8 text/);
      }
    });

    it('an unsigned manifest with its sha256 in upper case is refused, as 0.7 refuses it (the field is compared as written with the lower-case digest)', async () => {
      const r = await runBackup({ dbPath: db, backupDir: dir, signing: { key: null, anchor: null } });
      const m = readJson(r.manifestPath);
      assert.strictEqual(m.signature, undefined);
      writeJson(r.manifestPath, { ...m, sha256: String(m.sha256).toUpperCase() });
      await refusedUntouched(runRestore({ dbPath: db, from: r.snapshotPath, anchor: null }), 'MANIFEST_INVALID', /upper case/);
      const v = await cli(['verify', '--from', r.snapshotPath, '--json'], { cwd: tmp.path, home: tmp.join('nohome') });
      assert.notStrictEqual(v.code, 0, v.stdout);
    });

    it('a payload serde_json reads (the struct as an array of its 11 values) restores, as 1.0 restores it', async () => {
      const r = await signedBackup();
      signPayloadText(r.manifestPath, (t) => JSON.stringify(Object.values(JSON.parse(t) as Record<string, unknown>)));
      seedMemory(db, 'ns', 'added after the backup', 'x');
      const res = await runRestore({ dbPath: db, from: r.snapshotPath, anchor: ANCHOR });
      assert.strictEqual(res.status, 'restored');
      assert.strictEqual(res.plan.signature?.state, 'verified');
      assert.strictEqual(readMemories(db).length, 12);
    });

    it('a renamed signed pair is refused', async () => {
      const r = await signedBackup();
      const renamed = path.join(dir, 'ai-memory-2099-01-01T000000Z.db');
      fs.renameSync(r.snapshotPath, renamed);
      fs.renameSync(r.manifestPath, manifestOf(renamed));
      await refusedUntouched(runRestore({ dbPath: db, from: renamed, anchor: ANCHOR }), 'MANIFEST_FOREIGN', /cannot be renamed/);
      assert.throws(() => aiMemory1RestoreChecks(renamed, { anchor: PUB, binarySchema: SCHEMA }), /cannot be renamed/);
    });
  });

  describe('posture and 1.0\'s flags', () => {
    it('no operator key configured: unsigned accepted (0.7), a signed one restores on its plain fields', async () => {
      const u = await runBackup({ dbPath: db, backupDir: dir, signing: { key: null } });
      assert.strictEqual((await runRestore({ dbPath: db, from: u.snapshotPath, anchor: null })).plan.signature?.state, 'unsigned');
      const s = await signedBackup(tmp.join('s2'));
      const res = await runRestore({ dbPath: db, from: s.snapshotPath, anchor: null });
      assert.strictEqual(res.plan.signature?.state, 'signed-no-key');
      assert.match(res.warnings.join('\n'), /no operator public key/);
    });

    it('--latest: the newest by the signed time among verified manifests; a newer-named unsigned copy is passed over, a tampered one stops the choice', async () => {
      const a = await signedBackup(dir, db, new Date('2026-03-01T10:00:00Z'));
      seedMemory(db, 'ns', 'second', 'y');
      const b = await signedBackup(dir, db, new Date('2026-03-01T11:00:00Z'));
      // Named later than both (but not in the future: a future-dated name is ranked last anyway, issue 8).
      const planted = path.join(dir, 'ai-memory-2026-03-02T000000Z.db');
      fs.copyFileSync(a.snapshotPath, planted);
      writeJson(manifestOf(planted), { ...readJson(a.manifestPath), snapshot: path.basename(planted), manifest_version: undefined, signed_payload: undefined, signature: undefined, signer: undefined });
      const res = await runRestore({ dbPath: db, from: dir, latest: true, anchor: ANCHOR, dryRun: true });
      assert.strictEqual(res.from, b.snapshotPath);
      assert.strictEqual(res.plan.selection.selectedBy, 'latest');
      assert.match(res.warnings.join('\n'), /skipped: ai-memory-2026-03-02T000000Z\.db \(unsigned\)/);
      assert.strictEqual(aiMemory1SelectLatest(dir, PUB), b.snapshotPath, '1.0 picks the same one');
      // Without a key (0.7 posture) the newest name wins, as before.
      assert.strictEqual((await runRestore({ dbPath: db, from: dir, anchor: null, dryRun: true, allowUnsignedManifest: true })).from, planted);
      writeJson(manifestOf(planted), aiMemory1Sign({ ...readJson(a.manifestPath), snapshot: path.basename(planted) }, OTHER));
      await refusedUntouched(runRestore({ dbPath: db, from: dir, latest: true, anchor: ANCHOR }), 'SIGNATURE_REFUSED', /refusing to choose/);
      assert.throws(() => aiMemory1SelectLatest(dir, PUB), /does NOT verify/);
    });

    it('--latest is not steered by a garbled manifest: one that is not a manifest (broken JSON, a duplicate field) stops the choice as 1.0\'s does, instead of falling back to an older snapshot', async () => {
      const a = await signedBackup(dir, db, new Date('2026-03-01T10:00:00Z'));
      seedMemory(db, 'ns', 'second', 'y');
      const b = await signedBackup(dir, db, new Date('2026-03-01T11:00:00Z'));
      const text = fs.readFileSync(b.manifestPath, 'utf8');
      // Re-signing needs the key; breaking the newest manifest does not — and used to hand --latest the older snapshot a.
      for (const garbled of [text.slice(0, text.length - 3), text.replace('"sha256":', '"sha256": "x",\n  "sha256":')]) {
        fs.writeFileSync(b.manifestPath, garbled);
        await refusedUntouched(runRestore({ dbPath: db, from: dir, anchor: ANCHOR, latest: true }), 'SIGNATURE_REFUSED', new RegExp(`${path.basename(b.manifestPath).replace(/\./g, '\\.')}|${path.basename(b.snapshotPath).replace(/\./g, '\\.')}`));
        if (garbled.length < text.length) assert.throws(() => aiMemory1SelectLatest(dir, PUB), /not valid manifest JSON/); // the oracle reads JSON with JSON.parse: not the duplicate
      }
      // A snapshot without a manifest is passed over, as 1.0 passes it over ("no manifest").
      fs.rmSync(b.manifestPath);
      const res = await runRestore({ dbPath: db, from: dir, anchor: ANCHOR, latest: true, dryRun: true });
      assert.strictEqual(path.basename(res.from), path.basename(a.snapshotPath));
    });

    it('--latest reads the signed created_at as 1.0 does (chrono\'s RFC 3339): ordered to the nanosecond; a time without an offset or a date alone stops the choice', async () => {
      const a = await signedBackup(dir, db, new Date('2026-03-01T10:00:00Z'));
      seedMemory(db, 'ns', 'second', 'y');
      const b = await signedBackup(dir, db, new Date('2026-03-01T11:00:00Z'));
      // The same millisecond: 1.0 takes a (…456789 ns), whatever the names say; ms precision tied them and the later name won.
      writeJson(a.manifestPath, aiMemory1Sign(readJson(a.manifestPath), SEED, { created_at: '2026-03-01T12:00:00.123456789+00:00' }));
      writeJson(b.manifestPath, aiMemory1Sign(readJson(b.manifestPath), SEED, { created_at: '2026-03-01T12:00:00.123000001+00:00' }));
      const res = await runRestore({ dbPath: db, from: dir, anchor: ANCHOR, latest: true, dryRun: true });
      assert.strictEqual(path.basename(res.from), path.basename(a.snapshotPath));
      // chrono refuses these (1.0's --latest: "is not RFC 3339"); Date.parse read the first as LOCAL time.
      for (const bad of ['2026-03-01T13:00:00', '2026-03-02', '2026-02-30T00:00:00Z', '2026-03-01T24:00:00Z']) {
        writeJson(b.manifestPath, aiMemory1Sign(readJson(b.manifestPath), SEED, { created_at: bad }));
        await refusedUntouched(runRestore({ dbPath: db, from: dir, anchor: ANCHOR, latest: true }), 'SIGNATURE_REFUSED', /is not an RFC 3339 time/);
      }
    });

    it('--latest never takes a snapshot signed while the clock was a year ahead over one taken since, and names it', async function () {
      const libfaketime = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
      if (!fs.existsSync(libfaketime)) this.skip(); // Debian's faketime package
      const keyDir = tmp.join(`keys-${Math.random().toString(36).slice(2)}`);
      fs.mkdirSync(keyDir, { mode: 0o700 });
      fs.writeFileSync(path.join(keyDir, 'operator.key'), SEED, { mode: 0o600 });
      // A real CLI process whose clock is a year ahead signs its snapshot (name and signed created_at a year ahead)…
      const ahead = await runCliProcess(['backup', '--db', db, '--to', dir, '--sign-key', path.join(keyDir, 'operator.key'), '--json'], { cwd: tmp.path, env: { LD_PRELOAD: libfaketime, FAKETIME: '+365d' } });
      assert.strictEqual(ahead.code, 0, ahead.stderr);
      const aheadName = (JSON.parse(ahead.stdout) as { snapshot: string }).snapshot;
      assert.ok(Date.parse((readJson(path.join(dir, manifestOf(aheadName))) as { created_at: string }).created_at) > Date.now() + 300 * 86_400_000);
      // …then, the clock put right, a memory is written and backed up.
      seedMemory(db, 'ns', 'after the clock was put right', 'only the snapshot taken now has this');
      const now = await runCliProcess(['backup', '--db', db, '--to', dir, '--sign-key', path.join(keyDir, 'operator.key'), '--json'], { cwd: tmp.path });
      assert.strictEqual(now.code, 0, now.stderr);
      const nowName = (JSON.parse(now.stdout) as { snapshot: string }).snapshot;
      const expected = readMemories(db);
      const r = await runCliProcess(['restore', '--db', db, '--from', dir, '--latest', '--yes', '--force', '--json'], { cwd: tmp.path, env: { AI_MEMORY_OPERATOR_PUBKEY: PUB.toString('base64') } });
      assert.strictEqual(r.code, 0, r.stderr);
      assert.strictEqual(path.basename((JSON.parse(r.stdout) as { from: string }).from), nowName, 'the snapshot taken now, not the one dated a year ahead');
      assert.deepStrictEqual(readMemories(db), expected, 'the database holds what it held, the memory written after the clock was put right included');
      assert.match(r.stderr, new RegExp(`skipped: ${aheadName.replace(/\./g, '\\.')} \\(dated in the future`));
    });

    it('--latest in a folder shared with another database: this database\'s newest signed snapshot, not the other\'s newer one', async () => {
      const mine = await signedBackup(dir, db, new Date('2026-03-01T10:00:00Z'));
      const other = path.join(path.dirname(db), 'other.db');
      createAiMemoryDb(other, { memories: 25, seed: 4 });
      await signedBackup(dir, other, new Date('2026-03-01T11:00:00Z'));
      const res = await runRestore({ dbPath: db, from: dir, latest: true, anchor: ANCHOR, dryRun: true });
      assert.strictEqual(res.from, mine.snapshotPath);
      assert.match(res.plan.selection.rule ?? '', /this database's newest/);
    });

    it('--latest names a newer snapshot of this database it passes over as another machine\'s when only host names told (no machine id: a host name that changed)', async () => {
      const older = await signedBackup(dir, db, new Date('2026-03-01T10:00:00Z'));
      seedMemory(db, 'ns', 'newer', 'x');
      const newer = await signedBackup(dir, db, new Date('2026-03-01T11:00:00Z'));
      // As this machine wrote it under another host name, without a machine id (macOS, a container): plain fields, the signature still verifies.
      const m = readJson(newer.manifestPath) as Record<string, unknown>;
      delete m.machine_id;
      writeJson(newer.manifestPath, { ...m, host: 'oldname' });
      const res = await runRestore({ dbPath: db, from: dir, latest: true, anchor: ANCHOR, dryRun: true });
      assert.strictEqual(res.from, older.snapshotPath, 'another machine\'s by its manifest: passed over');
      assert.match(res.warnings.join('\n'), new RegExp(`${path.basename(newer.snapshotPath).replace(/\./g, '\\.')} \\(taken on oldname`));
    });

    it('--snapshot NAME takes a file name, an id or a manifest name — never a path', async () => {
      const r = await signedBackup();
      const id = path.basename(r.snapshotPath, '.db');
      for (const name of [`${id}.db`, id, `${id}.manifest.json`]) {
        assert.strictEqual((await runRestore({ dbPath: db, from: dir, snapshot: name, anchor: ANCHOR, dryRun: true })).from, r.snapshotPath);
      }
      await refusedUntouched(runRestore({ dbPath: db, from: dir, snapshot: `../${id}.db`, anchor: ANCHOR }), 'USAGE');
      await refusedUntouched(runRestore({ dbPath: db, from: r.snapshotPath, snapshot: id, anchor: ANCHOR }), 'USAGE', /inside a --from folder/);
    });

    it('a snapshot on a newer schema than the database it replaces is refused, naming both, unless --force', async () => {
      const newer = tmp.join('newer.db');
      createAiMemoryDb(newer, { memories: 2, seed: 3 });
      const n = openNative(newer);
      n.exec('UPDATE schema_version SET version = 99');
      n.close();
      const r = await signedBackup(dir, newer);
      await refusedUntouched(runRestore({ dbPath: db, from: r.snapshotPath, anchor: ANCHOR }), 'SCHEMA_NEWER', /schema version 99.*schema version 28/);
      const res = await runRestore({ dbPath: db, from: r.snapshotPath, anchor: ANCHOR, force: true });
      assert.strictEqual(res.status, 'restored');
      assert.match(res.warnings.join('\n'), /99 is newer than .* 28/);
    });
  });

  describe('the CLI', () => {
    it('a key pasted where its file\'s path belongs (--sign-key) is never repeated: not in the error, not in --json', async () => {
      const seed = Buffer.from('9f1c2e8a7b4d6053e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8', 'hex');
      const home = tmp.join('home-pasted');
      for (const given of [seed.toString('base64'), seed.toString('base64url'), seed.toString('hex')]) {
        for (const json of [true, false]) {
          const r = await cli(['backup', '--db', db, '--to', dir, '--sign-key', given, ...(json ? ['--json'] : [])], { cwd: tmp.path, home });
          assert.strictEqual(r.code, 1, r.stdout + r.stderr);
          const out = r.stdout + r.stderr;
          for (const form of [given, given.slice(0, 16), seed.toString('hex').slice(0, 16), seed.toString('base64').slice(0, 16)]) assert.ok(!out.includes(form), `the key (${form}) is in the output:\n${out}`);
          assert.match(out, /looks like a key itself/);
        }
      }
      assert.ok(!fs.existsSync(dir) || !fs.readdirSync(dir).some((f) => f.endsWith('.db')), 'no backup was made with the key refused');
    });

    it('a key file\'s text pasted as --sign-key (PKCS#8 PEM, OpenSSH, base64 with its newline or wrapped, hex in pairs) is not repeated; a mistyped path in a folder that exists is', async () => {
      const home = tmp.join('home-pasted-text');
      const keys = tmp.join('keygen');
      fs.mkdirSync(keys);
      // Real keys, made by the tools users have.
      const gen = spawnSync('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', path.join(keys, 'k.pem')], { encoding: 'utf8' });
      assert.strictEqual(gen.status, 0, gen.stderr);
      const ssh = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(keys, 'id')], { encoding: 'utf8' });
      assert.strictEqual(ssh.status, 0, ssh.stderr);
      const pem = fs.readFileSync(path.join(keys, 'k.pem'), 'utf8');
      const openssh = fs.readFileSync(path.join(keys, 'id'), 'utf8');
      const seed = Buffer.from('6a1c2e8a7b4d6053e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8', 'hex');
      const b64 = seed.toString('base64');
      const pasted = [pem, pem.trim(), openssh, `${b64}\n`, `${b64} `, `${b64.slice(0, 20)}\n${b64.slice(20)}`, seed.toString('hex').replace(/(..)(?!$)/g, '$1 '), `"${b64}"`];
      for (const given of pasted) {
        const r = await cli(['backup', '--db', db, '--to', dir, `--sign-key=${given}`, '--json'], { cwd: tmp.path, home });
        assert.strictEqual(r.code, 1, r.stdout + r.stderr);
        const out = r.stdout + r.stderr;
        // No piece of the key: no 12 characters of it in a row, whatever the spaces and line breaks.
        const body = given.replace(/-----[A-Z ]+-----/g, '').replace(/[\s"]/g, '');
        const flat = out.replace(/\\n|\s/g, '');
        for (let i = 0; i + 12 <= body.length; i += 12) assert.ok(!flat.includes(body.slice(i, i + 12)), `the key (${body.slice(i, i + 12)}) is in the output:\n${out}`);
        assert.match(out, /looks like a key itself/);
      }
      // A file name mistyped in a folder that exists is a path: shown (before: "looks like a key itself", the path hidden).
      fs.mkdirSync(tmp.join('Documents', 'Backups'), { recursive: true });
      const typo = tmp.join('Documents', 'Backups', 'operatorSigningKeyFile');
      const r = await cli(['backup', '--db', db, '--to', dir, '--sign-key', typo, '--json'], { cwd: tmp.path, home });
      assert.strictEqual(r.code, 1);
      assert.ok((r.stdout + r.stderr).includes(`Cannot read the signing key ${typo}: no such file`), r.stdout + r.stderr);
    });

    it('signs with the key where ai-memory keeps it, and restores a 1.0 script\'s command line; list shows the verdicts', async () => {
      const home = tmp.join('home');
      const cfg = path.join(home, '.config', 'ai-memory');
      fs.mkdirSync(cfg, { recursive: true });
      fs.writeFileSync(path.join(cfg, 'operator.key'), SEED, { mode: 0o600 });
      fs.writeFileSync(path.join(cfg, 'operator.key.pub'), `${PUB.toString('base64url')}\n`);
      const cwd = tmp.path;
      const b = await cli(['backup', '--db', db, '--to', dir, '--json'], { cwd, home });
      assert.strictEqual(b.code, 0, b.stderr);
      assert.strictEqual(b.json().signed, true);
      assert.strictEqual(b.json().signer, ANCHOR.fingerprint);
      const human = await cli(['backup', '--db', db, '--to', tmp.join('bk-human'), '--sign-key', path.join(cfg, 'operator.key')], { cwd, home: tmp.join('nohome') });
      assert.match(human.stdout, new RegExp(`Signed  : operator key ${ANCHOR.fingerprint}`));
      const unsigned = await cli(['backup', '--db', db, '--to', tmp.join('bk-unsigned')], { cwd, home: tmp.join('nohome') });
      assert.match(unsigned.stdout, /Signed {2}: NO — ai-memory 1\.0's restore refuses this backup unless given --allow-unsigned-manifest/);
      fs.chmodSync(path.join(cfg, 'operator.key'), 0o640);
      const loose = await cli(['backup', '--db', db, '--to', tmp.join('bk-loose'), '--sign-key', path.join(cfg, 'operator.key')], { cwd, home });
      assert.strictEqual(loose.code, 1);
      assert.match(loose.stderr, /chmod 600 /);
      fs.chmodSync(path.join(cfg, 'operator.key'), 0o600);

      const env = { AI_MEMORY_OPERATOR_PUBKEY: PUB.toString('base64') };
      const r = await cli(['restore', '--db', db, '--from', dir, '--latest', '--yes', '--json'], { cwd, env, home: tmp.join('nohome') });
      assert.strictEqual(r.code, 0, r.stderr);
      assert.strictEqual(r.json().manifest_verification, 'signed');
      assert.strictEqual(r.json().selected_by, 'latest');

      const snap = b.json().snapshot as string;
      const mp = path.join(dir, snap.replace(/\.db$/, '.manifest.json'));
      writeJson(mp, aiMemory1Sign(readJson(mp), OTHER));
      const list = await cli(['list', '--to', dir], { cwd, env, home: tmp.join('nohome') });
      assert.match(list.stdout, /Damaged.*does NOT verify/);
      const listJson = await cli(['list', '--to', dir, '--json'], { cwd, env, home: tmp.join('nohome') });
      assert.strictEqual((listJson.json() as unknown as { signature: string }[])[0].signature, 'refused');
    });
  });
});
