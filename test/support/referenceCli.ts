/**
 * ai-memory's own `backup` and `restore` (its cli/backup.rs), ported line for line to
 * TypeScript over native SQLite, so the interop tests can pass snapshots between that
 * implementation and ours in both directions without the Rust binary. Its defects are
 * kept on purpose (VACUUM INTO straight to the final name, mtime ordering, restore that
 * leaves -wal/-shm behind, copy without fsync): they are what we are compared against.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { openNative, sqlString } from './sqlite';

export const REFERENCE_VERSION = '0.7.0';

/** chrono `Utc::now().format("%Y-%m-%dT%H%M%SZ")`. */
function ts(d = new Date()): string {
  return d.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '').replace(/(\d{2})(\d{2})(\d{2})Z$/, '$1$2$3Z');
}

function sha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** serde_json::to_string_pretty of BackupManifest (field order as declared). */
function pretty(m: Record<string, unknown>): string {
  return JSON.stringify(m, null, 2);
}

/** `ai-memory backup --to DIR --keep N` (returns the manifest it prints with --json). */
export function referenceBackup(dbPath: string, to: string, keep = 48): Record<string, unknown> {
  fs.mkdirSync(to, { recursive: true });
  const db = openNative(dbPath);
  const stamp = ts();
  const snapshotName = `ai-memory-${stamp}.db`;
  const snapshotPath = path.join(to, snapshotName);
  if (fs.existsSync(snapshotPath)) throw new Error(`refusing to overwrite existing snapshot ${snapshotPath}`);
  try {
    db.exec(`VACUUM INTO ${sqlString(snapshotPath)}`);
  } finally {
    db.close();
  }
  const manifest = {
    snapshot: snapshotName,
    sha256: sha256(snapshotPath),
    bytes: fs.statSync(snapshotPath).size,
    source_db: dbPath,
    version: REFERENCE_VERSION,
    created_at: new Date().toISOString().replace('Z', '+00:00'),
  };
  fs.writeFileSync(path.join(to, `ai-memory-${stamp}.manifest.json`), pretty(manifest));
  if (keep > 0) {
    const snaps = fs
      .readdirSync(to)
      .filter((n) => n.startsWith('ai-memory-') && path.extname(n).toLowerCase() === '.db')
      .map((n) => ({ n, mtime: fs.statSync(path.join(to, n)).mtimeMs }))
      .sort((a, b) => b.mtime - a.mtime);
    for (const { n } of snaps.slice(keep)) {
      fs.rmSync(path.join(to, n), { force: true });
      fs.rmSync(path.join(to, `${n.slice(0, -path.extname(n).length)}.manifest.json`), { force: true });
    }
  }
  return manifest;
}

interface ReferenceManifest {
  snapshot: string;
  sha256: string;
  bytes: number;
  source_db: string;
  version: string;
  created_at: string;
}

/** serde's derive(Deserialize) of BackupManifest: the six fields with their types; extras ignored. */
function parseReferenceManifest(text: string): ReferenceManifest {
  const o = JSON.parse(text) as Record<string, unknown>;
  for (const [k, t] of [['snapshot', 'string'], ['sha256', 'string'], ['bytes', 'number'], ['source_db', 'string'], ['version', 'string'], ['created_at', 'string']]) {
    if (typeof o[k] !== t) throw new Error(`parsing manifest: invalid type for ${k}`);
  }
  if (!Number.isInteger(o.bytes) || (o.bytes as number) < 0) throw new Error('parsing manifest: bytes is not a u64');
  return o as unknown as ReferenceManifest;
}

/** `ai-memory restore --from FILE|DIR [--skip-verify]` → { status, from, to, moved }. */
export function referenceRestore(dbPath: string, from: string, skipVerify = false): { status: string; from: string; to: string; moved?: string } {
  let snapshotPath: string;
  if (fs.statSync(from).isDirectory()) {
    const snaps = fs
      .readdirSync(from)
      .filter((n) => n.startsWith('ai-memory-') && path.extname(n).toLowerCase() === '.db')
      .map((n) => ({ p: path.join(from, n), mtime: fs.statSync(path.join(from, n)).mtimeMs }))
      .sort((a, b) => b.mtime - a.mtime);
    if (!snaps.length) throw new Error(`no snapshots found in ${from}`);
    snapshotPath = snaps[0].p;
  } else {
    snapshotPath = from;
  }
  const stem = path.basename(snapshotPath, path.extname(snapshotPath));
  const manifestPath = path.join(path.dirname(snapshotPath), `${stem}.manifest.json`);
  if (!fs.existsSync(snapshotPath)) throw new Error(`snapshot ${snapshotPath} does not exist`);
  if (!skipVerify) {
    if (!fs.existsSync(manifestPath)) throw new Error(`manifest ${manifestPath} not found; pass --skip-verify to restore anyway`);
    const manifest = parseReferenceManifest(fs.readFileSync(manifestPath, 'utf8'));
    const observed = sha256(snapshotPath);
    if (observed !== manifest.sha256) throw new Error(`sha256 mismatch — manifest says ${manifest.sha256}, snapshot is ${observed}`);
  }
  let moved: string | undefined;
  if (fs.existsSync(dbPath)) {
    moved = path.join(path.dirname(dbPath), `${path.basename(dbPath, path.extname(dbPath))}.pre-restore-${ts()}.db`);
    fs.renameSync(dbPath, moved); // -wal and -shm stay behind: defect 4
  }
  fs.copyFileSync(snapshotPath, dbPath);
  return { status: 'restored', from: snapshotPath, to: dbPath, moved };
}
