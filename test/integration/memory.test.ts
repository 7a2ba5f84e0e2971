// What a snapshot holds, in the real extension host (code-server), against the installed
// .vsix: facts in the view, Open Snapshot, Compare with Current Database / Previous,
// the memory diff (vscode.diff of two virtual documents) and Restore Selected Memories.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { AiMemoryBackupApi } from '../../src/extension';
import type { RestoreMemoriesResult } from '../../src/features/memoryViews';
import type { DiffOutcome } from '../../src/cli/protocol';
import { openLikeServer, readMemories, seedMemory } from '../support/aiMemoryDb';
import { edit, forget } from '../support/aiMemoryOps';
import { eventually, EXTENSION_ID } from './host';



function withDb<T>(db: string, fn: (n: ReturnType<typeof openLikeServer>) => T): T {
  const n = openLikeServer(db);
  try {
    return fn(n);
  } finally {
    n.close();
  }
}

describe('Memory-aware snapshots in a real VS Code', function () {
  this.timeout(120_000);
  const db = process.env.AI_MEMORY_TEST_DB as string;
  let api: AiMemoryBackupApi;
  let snapshot: string;

  before(async function () {
    const ext = vscode.extensions.getExtension<AiMemoryBackupApi>(EXTENSION_ID);
    assert.ok(ext);
    await eventually(() => ext.isActive, 'activation');
    api = ext.exports;
    await api.ready;
    seedMemory(db, 'memtest', `fresh ${Date.now()}`, 'so that the next backup is a new snapshot');
    await vscode.commands.executeCommand('aiMemory.backup');
    await api.refresh();
    snapshot = api.snapshots()[0].path;
  });

  afterEach(async () => {
    await vscode.commands.executeCommand('workbench.action.closeQuickOpen');
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    await vscode.workspace.getConfiguration('aiMemory').update('aiMemoryPath', undefined, vscode.ConfigurationTarget.Global);
  });

  it('the view shows how many memories a snapshot holds, per tier and namespace, and marks the one equal to now', async function () {
    const count = withDb(db, (n) => Number(n.prepare('SELECT count(*) FROM memories').pluck().get()));
    await api.refreshMemoryDigest();
    const row = api.snapshots()[0];
    // "412 memories · " then "= now" (rather than the change since the previous snapshot, or the age).
    assert.equal(row.description, `${count.toLocaleString()} memories · = now`);
    // What changed since the previous snapshot is in the tooltip: at least the memory seeded before this backup.
    if (api.snapshots().length > 1) assert.match(row.tooltip, /Since previous: \+\d+/);
    assert.match(row.tooltip, /Tiers: .*(short|mid|long) \d+/);
    assert.match(row.tooltip, /Namespaces: .*memtest 1/);
    assert.match(row.tooltip, /Current: the same memories as the current database/);
    // A recall-only change keeps the marker; a new memory removes it.
    seedMemory(db, 'memtest', `another ${Date.now()}`, 'new');
    await api.refreshMemoryDigest();
    const after = api.snapshots()[0].description;
    assert.doesNotMatch(after, /= now/);
    assert.match(after, new RegExp(`^${count.toLocaleString()} memories · (\\+\\d+|just now)`));
  });

  it('Open Snapshot shows the header in a read-only document', async function () {
    const uri = (await vscode.commands.executeCommand('aiMemory.openSnapshot', snapshot)) as vscode.Uri;
    assert.equal(uri.scheme, 'ai-memory');
    const doc = await eventually(() => vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri.toString()), 'the overview document');
    const text = doc.getText();
    assert.match(text, /^# Snapshot ai-memory-/);
    assert.match(text, /\d+ memories, \d+ links, \d+ archived/);
    assert.match(text, /by namespace:\n(.*\n)*\s+memtest\s+1/);
  });

  it('a snapshot deleted after the view was drawn: its documents say what to do in VS Code, never the CLI', async function () {
    const gone = path.join(path.dirname(snapshot), 'ai-memory-20000101-000000.db'); // no such file
    for (const q of [{ k: 'overview', side: { snapshot: gone } }, { k: 'memory', side: { snapshot: gone }, id: 'x' }]) {
      const doc = await vscode.workspace.openTextDocument(vscode.Uri.from({ scheme: 'ai-memory', path: '/gone.md', query: JSON.stringify(q) }));
      const text = doc.getText();
      assert.match(text, /^Could not read it: /);
      assert.match(text, /AI Memory: Refresh/);
      assert.doesNotMatch(text, /(^|[\s(`])--[a-z]|ai-memory-backup|`list`/, text);
    }
  });

  it('Compare with Current Database lists the deleted and the added memory and opens a report; an edit opens as a diff', async function () {
    const [victim, edited] = withDb(db, (n) => n.prepare("SELECT id FROM memories WHERE namespace != 'memtest' ORDER BY id LIMIT 2").pluck().all().map(String));
    const oldContent = withDb(db, (n) => String(n.prepare('SELECT content FROM memories WHERE id = ?').pluck().get(edited)));
    withDb(db, (n) => {
      forget(n, victim);
      edit(n, edited, { content: 'rewritten in the test' }, new Date().toISOString());
    });
    const r = (await vscode.commands.executeCommand('aiMemory.compareWithCurrent', snapshot)) as { uri: vscode.Uri; result: DiffOutcome };
    await vscode.commands.executeCommand('workbench.action.closeQuickOpen');
    assert.deepEqual(r.result.removed.map((m) => [m.id, m.how]), [[victim, 'deleted']]);
    assert.ok(r.result.added.some((m) => m.namespace === 'memtest'));
    assert.deepEqual(r.result.edited.map((m) => [m.id, m.fields]), [[edited, ['content']]]);
    const report = vscode.workspace.textDocuments.find((d) => d.uri.toString() === r.uri.toString());
    assert.match(report?.getText() ?? '', /## Removed \(1\)\n− .*\(deleted\)/);

    await vscode.commands.executeCommand('aiMemory.openMemoryDiff', { snapshot }, { db }, edited);
    const tab = await eventually(() => vscode.window.tabGroups.activeTabGroup.activeTab, 'the diff tab');
    assert.ok(tab.input instanceof vscode.TabInputTextDiff, 'a diff editor');
    const input = tab.input as vscode.TabInputTextDiff;
    assert.equal(input.original.scheme, 'ai-memory');
    const left = await vscode.workspace.openTextDocument(input.original);
    const right = await vscode.workspace.openTextDocument(input.modified);
    assert.ok(left.getText().includes(oldContent.slice(0, 60)));
    assert.ok(right.getText().includes('rewritten in the test'));
  });

  it('Restore Selected Memories without ai-memory saves the import file (0600) and shows the command', async function () {
    const victim = withDb(db, (n) => String(n.prepare("SELECT id FROM memories WHERE namespace != 'memtest' ORDER BY id DESC LIMIT 1").pluck().get()));
    withDb(db, (n) => forget(n, victim));
    await vscode.workspace.getConfiguration('aiMemory').update('aiMemoryPath', '', vscode.ConfigurationTarget.Global);
    const r = (await vscode.commands.executeCommand('aiMemory.restoreMemories', snapshot, [victim])) as RestoreMemoriesResult;
    // Again and again at once: some of them within one second (the name's stamp), each gets a
    // file of its own and the earlier ones stay for the user.
    const again: (RestoreMemoriesResult | undefined)[] = [];
    for (let i = 0; i < 3; i++) again.push((await vscode.commands.executeCommand('aiMemory.restoreMemories', snapshot, [victim])) as RestoreMemoriesResult | undefined);
    assert.deepEqual(again.map((a) => a?.status), again.map(() => r.status), 'restores right after the first');
    if (r.status === 'no-binary') {
      const files = [r, ...again].map((a) => a?.file ?? '');
      assert.equal(new Set(files).size, files.length, 'a file each');
      for (const f of files) assert.ok(fs.existsSync(f), `${f} is kept`);
      assert.match(r.command, / --db .* import < /);
      const dbMode = fs.statSync(db).mode & 0o777;
      assert.equal(fs.statSync(r.file).mode & 0o777 & ~dbMode, 0, 'no more readable than the database');
      const doc = JSON.parse(fs.readFileSync(r.file, 'utf8')) as { memories: { id: string }[]; count: number };
      assert.deepEqual(doc.memories.map((m) => m.id), [victim]);
    } else {
      this.skip(); // an ai-memory on PATH on this machine
    }
  });

  it('Restore Selected Memories runs ai-memory import, then compares again: the memories are back', async function () {
    const victims = withDb(db, (n) => n.prepare("SELECT id FROM memories WHERE namespace != 'memtest' ORDER BY id LIMIT 3 OFFSET 5").pluck().all().map(String));
    withDb(db, (n) => victims.forEach((id) => forget(n, id)));
    const wrapper = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fake-ai-memory-')), 'ai-memory');
    fs.writeFileSync(wrapper, `#!/bin/sh\nexec "${process.execPath}" "${path.join(__dirname, '..', 'support', 'fakeAiMemoryCli.js')}" "$@"\n`, { mode: 0o755 });
    await vscode.workspace.getConfiguration('aiMemory').update('aiMemoryPath', wrapper, vscode.ConfigurationTarget.Global);
    const r = (await vscode.commands.executeCommand('aiMemory.restoreMemories', snapshot, victims)) as RestoreMemoriesResult;
    assert.equal(r.status, 'imported', r.output);
    assert.deepEqual(r.stillMissing, []);
    assert.deepEqual([...(r.present ?? [])].sort(), [...victims].sort());
    const now = new Set(readMemories(db).map((m) => m.id));
    for (const id of victims) assert.ok(now.has(id), `${id} is back`);
    assert.ok(!fs.existsSync(r.file), 'every memory is back: their extracted copy is not kept');
  });

  it('Restore Selected Memories asks before an ai-memory 0.x import would overwrite a memory written since under the same title', async function () {
    const [victim, title, ns, content] = withDb(db, (n) => {
      const r = n.prepare("SELECT id, title, namespace, content FROM memories WHERE namespace != 'memtest' ORDER BY id LIMIT 1 OFFSET 11").get() as { id: string; title: string; namespace: string; content: string };
      return [String(r.id), r.title, r.namespace, r.content];
    });
    assert.ok(readMemories(snapshot).some((m) => m.id === victim), 'the snapshot holds it');
    withDb(db, (n) => forget(n, victim));
    const newer = seedMemory(db, ns, title, 'written again since the snapshot, under the same title');
    const wrapper = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fake-ai-memory-')), 'ai-memory');
    fs.writeFileSync(wrapper, `#!/bin/sh\nexec "${process.execPath}" "${path.join(__dirname, '..', 'support', 'fakeAiMemoryCli.js')}" "$@"\n`, { mode: 0o755 });
    await vscode.workspace.getConfiguration('aiMemory').update('aiMemoryPath', wrapper, vscode.ConfigurationTarget.Global);
    assert.ok(api.testing, 'the test API is present (AI_MEMORY_BACKUP_TEST_API=1)');
    const asked: string[] = [];
    api.testing.setConfirmationHandler((message: string, detail: string) => {
      asked.push(`${message} ${detail}`);
      return false; // decline
    });
    try {
      const before = readMemories(db);
      const r = (await vscode.commands.executeCommand('aiMemory.restoreMemories', snapshot, [victim])) as RestoreMemoriesResult;
      assert.equal(r.status, 'declined');
      assert.equal(asked.length, 1, asked.join(' | '));
      assert.match(asked[0], /^1 of these memories would overwrite a memory you have now\. ai-memory .* imports by title and namespace/);
      assert.ok(asked[0].includes(`“${title}”`), asked[0]);
      assert.deepEqual(readMemories(db), before, 'declined: the database is as it was');
      assert.equal(readMemories(db).find((m) => m.id === newer)?.content, 'written again since the snapshot, under the same title');
      assert.ok(fs.existsSync(r.file), 'the import file is kept');
    } finally {
      api.testing.setConfirmationHandler(undefined);
    }
    assert.notEqual(content, 'written again since the snapshot, under the same title');
  });

  it('Compare with Previous compares the snapshot with the one before it', async function () {
    seedMemory(db, 'memtest', `later ${Date.now()}`, 'for a newer snapshot');
    await vscode.commands.executeCommand('aiMemory.backup');
    await api.refresh();
    const newest = api.snapshots()[0].path;
    assert.notEqual(newest, snapshot);
    const r = (await vscode.commands.executeCommand('aiMemory.compareWithPrevious', newest)) as { result: DiffOutcome };
    assert.ok(r.result.added.some((m) => m.title.startsWith('later ')));
  });
});
