/**
 * The memory views (Open Snapshot's documents, the memory browser, Compare, Restore Selected
 * Memories…) and the off-machine copies (the notification, the Snapshots view's failure row,
 * the status bar, Set Up Off-Machine Copies…, the download of a remote-only snapshot) show an
 * engine failure through explainFailure (src/features/errorText.ts). The engine's own words are
 * the CLI's — "list snapshots with `ai-memory-backup list`", "Pass a new file name with --out",
 * "(AWS_PROFILE or --profile)", "--remote takes s3://…" — and never reach the VS Code user:
 * each failure below, raised by the engine as it really is, comes out with no flag and no CLI
 * command, and names what to do in VS Code (a command or a setting).
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { inspectSnapshot, extract } from '../../src/core/ops/memory';
import { openSnapshotSql } from '../../src/core/memory/source';
import { pullFromTarget } from '../../src/core/ops/pull';
import { loadAwsSettings } from '../../src/core/remote/awsConfig';
import { MirrorTarget } from '../../src/core/remote/mirrorTarget';
import { parseRemote, targetFromCli } from '../../src/core/remote/targets';
import { explainFailure, extensionMessage, speaksCli, type FailureContext } from '../../src/features/errorText';
import { createAiMemoryDb } from '../support/aiMemoryDb';
import { useTempDir } from '../support/tmp';

interface Raised {
  code: string;
  message: string;
  hint?: string;
  state?: string;
}

async function raised(p: Promise<unknown> | (() => unknown)): Promise<Raised> {
  const run = typeof p === 'function' ? Promise.resolve().then(p) : p;
  const e = await run.then(
    () => undefined,
    (x: unknown) => x,
  );
  assert.ok(e && typeof e === 'object' && 'code' in e, `expected an engine failure, got ${String(e)}`);
  return e as Raised;
}

/** A flag (--out, --profile, `--remote`), the CLI's name, or one of its commands in backticks. */
const CLI = /(^|[\s(`"'])--[a-z]|ai-memory-backup|`(backup|list|restore|verify|inspect|diff|extract|push|pull)\b|AWS_PROFILE|\$AI_MEMORY_DB/;
/** A VS Code action: a command of ours (by its title), or one of our settings. */
const VS_CODE_ACTION = /AI Memory: (Refresh|Verify Snapshot|Restore Selected Memories…|Set Up Off-Machine Copies…|Open Backup Folder|Select Database…)|aiMemory\.[a-zA-Z.]+|Select Database…/;

function check(what: string, e: Raised, ctx: FailureContext): string {
  // The engine's text is the CLI's: what the views used to show as it was.
  assert.match(`${e.message} ${e.hint ?? ''}`, CLI, `${what}: the engine's text should speak the CLI (else this case tests nothing): ${e.message} / ${e.hint}`);
  const { message, hint, text } = explainFailure(e, ctx);
  for (const [part, s] of [['message', message], ['hint', hint ?? ''], ['text', text]] as const) {
    assert.doesNotMatch(s, CLI, `${what}: the ${part} shown in VS Code speaks the CLI: ${s}`);
    assert.ok(!speaksCli(s), `${what}: speaksCli(${part}): ${s}`);
  }
  assert.match(hint ?? '', VS_CODE_ACTION, `${what}: the hint names no VS Code command or setting: ${text}`);
  assert.ok(text.startsWith(message), `${what}: what happened comes first: ${text}`);
  return text;
}

describe('engine failures in the memory views and off-machine copies speak VS Code', function () {
  this.timeout(60_000);
  const tmp = useTempDir();

  it('Open Snapshot / a memory document of a snapshot deleted after the tree was drawn: "Refresh", not `ai-memory-backup list`', async () => {
    const gone = tmp.join('backups', 'ai-memory-20260101-000000.db');
    fs.mkdirSync(tmp.join('backups'));
    // ops/memory.ts (inspect: the overview, a memory, the browser)
    const inspect = await raised(inspectSnapshot({ from: gone, query: { limit: 1 } }));
    assert.equal(inspect.code, 'SNAPSHOT_NOT_FOUND');
    assert.match(check('inspect', inspect, { operation: 'open' }), /AI Memory: Refresh/);
    // memory/source.ts (diff and extract open the snapshot here)
    const open = await raised(openSnapshotSql(gone));
    assert.equal(open.code, 'SNAPSHOT_NOT_FOUND');
    assert.match(open.hint ?? '', /ai-memory-backup list/);
    assert.match(check('open', open, { operation: 'open' }), /AI Memory: Refresh/);
    assert.match(check('extract', open, { operation: 'extract' }), /AI Memory: Refresh/);
  });

  it('Restore Selected Memories…: an existing file, or a folder, where the import file goes: never "--out"', async () => {
    const db = tmp.join('ai-memory.db');
    const made = createAiMemoryDb(db, { memories: 3, embeddingDim: 0, seed: 3 });
    const snap = tmp.join('snap.db');
    fs.copyFileSync(db, snap);
    const ids = made.memoryIds.slice(0, 1);
    const existing = tmp.join('restore.json');
    fs.writeFileSync(existing, '{}');
    const exists = await raised(extract({ from: snap, select: { ids }, db, out: existing }));
    assert.equal(exists.code, 'USAGE');
    assert.match(exists.hint ?? '', /--out/);
    assert.match(check('extract exists', exists, { operation: 'extract' }), /AI Memory: Restore Selected Memories… again/);
    const folder = tmp.join('a-folder.json');
    fs.mkdirSync(folder);
    const isFolder = await raised(extract({ from: snap, select: { ids }, db, out: folder }));
    assert.equal(isFolder.code, 'TARGET_NOT_DIRECTORY');
    assert.match(isFolder.message, /^--out /);
    const text = check('extract folder', isFolder, { operation: 'extract' });
    assert.ok(text.startsWith(`The file ${folder} is a folder`), text);
  });

  it('an off-machine copy without credentials: Set Up Off-Machine Copies…, not "(AWS_PROFILE or --profile)"', async () => {
    const home = tmp.join('home');
    fs.mkdirSync(home);
    const none = await raised(targetFromCli('s3://bucket/prefix', {}, {}, home, home));
    assert.equal(none.code, 'NO_CREDENTIALS');
    assert.match(none.hint ?? '', /--profile/);
    // As the notification and the log say it (push), as the Snapshots view's row and the
    // status bar read it back from the target's state file (a copy the CLI ran writes it too),
    // and in the connection test of the setup.
    for (const operation of ['copy', 'setUpCopy', 'download'] as const) assert.match(check(`no credentials (${operation})`, none, { operation }), /AI Memory: Set Up Off-Machine Copies…/);
    const state = { code: none.code, message: none.message, hint: none.hint };
    check('no credentials (state file)', state, { operation: 'copy' });
    const profile = await raised(loadAwsSettings({}, home, 'work'));
    assert.equal(profile.code, 'NO_CREDENTIALS');
    check('unknown profile', profile, { operation: 'copy' });
  });

  it('Set Up Off-Machine Copies…: a remote the engine refuses names no --remote', async () => {
    for (const text of ['s3://KEY:SECRET@bucket/prefix', 'ftp://host/path']) {
      const e = await raised(() => parseRemote(text, tmp.path));
      assert.equal(e.code, 'USAGE');
      const said = check(`remote ${text}`, e, { operation: 'setUpCopy' });
      assert.match(said, /^The off-machine target /);
      assert.ok(!said.includes('SECRET'), 'never the credential');
    }
  });

  it('Restore of a snapshot only on the off-machine target, gone from there: "Refresh", not `list --remote …`', async () => {
    const nas = tmp.join('nas');
    fs.mkdirSync(nas);
    fs.mkdirSync(tmp.join('local'));
    const e = await raised(pullFromTarget({ target: new MirrorTarget(nas), toDir: tmp.join('local'), names: ['ai-memory-20260101-000000.db'] }));
    assert.equal(e.code, 'SNAPSHOT_NOT_FOUND');
    assert.match(check('pull', e, { operation: 'download' }), /AI Memory: Refresh/);
  });

  it('a flag an engine message or warning names becomes what the user set or chose here', () => {
    assert.equal(extensionMessage('--keep must be a whole number ≥ 0, got -1.'), 'The setting aiMemory.backup.keep must be a whole number ≥ 0, got -1.');
    assert.equal(extensionMessage('restoring while the database is open by node (pid 1) (--force)'), 'restoring while the database is open by node (pid 1) (Restore Anyway)');
    assert.equal(extensionMessage('Nothing here names a flag.'), 'Nothing here names a flag.');
    assert.doesNotMatch(extensionMessage('To restore it, pass it with --from once its manifest is back; or --made-up-flag.'), /--/);
  });
});
