/** The CLI's memory verbs — inspect, diff, extract — run in-process on native-SQLite fixtures. */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createAiMemoryDb, openLikeServer, seedMemory } from '../support/aiMemoryDb';
import { forget, gcArchive, type ImportDocument } from '../support/aiMemoryOps';
import { cli } from '../support/cliRun';
import { openNative } from '../support/sqlite';
import { useTempDir } from '../support/tmp';
import { importCommand, type DiffOutcome, type ExtractOutcome, type InspectOutcome } from '../../src/cli/protocol';
import { spawnSync } from 'node:child_process';
import { extract } from '../../src/core/ops/memory';

describe('CLI: inspect, diff, extract', function () {
  this.timeout(60_000);
  const tmp = useTempDir('aimb-memcli-');

  async function backedUp(): Promise<{ db: string; dir: string; ids: string[] }> {
    const db = tmp.join('ai-memory.db');
    createAiMemoryDb(db, { memories: 30, embeddingDim: 0, seed: 11 });
    fs.chmodSync(db, 0o600);
    const r = await cli(['backup', '--db', db, '--to', tmp.join('backups'), '--json'], { cwd: tmp.path });
    assert.equal(r.code, 0, r.stderr);
    const n = openNative(db, { readonly: true });
    const ids = n.prepare('SELECT id FROM memories ORDER BY id').pluck().all().map(String);
    n.close();
    return { db, dir: tmp.join('backups'), ids };
  }

  it('inspect: header with counts by tier and namespace, a page of memories, one memory', async () => {
    const { dir, ids } = await backedUp();
    const human = await cli(['inspect', '--from', dir], { cwd: tmp.path });
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^Memories: 30 \(/m);
    assert.match(human.stdout, /^Links {3}: \d+/m);
    assert.match(human.stdout, /30 matching; showing 1–20:/);
    const j = (await cli(['inspect', '--from', dir, '--json', '--limit', '7', '--offset', '25'], { cwd: tmp.path })).json<InspectOutcome>();
    assert.equal(j.facts?.memories, 30);
    assert.equal(j.page?.rows.length, 5);
    assert.equal(j.page?.total, 30);
    const one = (await cli(['inspect', '--from', dir, '--id', ids[3], '--json'], { cwd: tmp.path })).json<InspectOutcome>();
    assert.equal(one.memory?.memory.id, ids[3]);
    const missing = await cli(['inspect', '--from', dir, '--id', 'nope', '--json'], { cwd: tmp.path });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /MEMORY_NOT_FOUND/);
  });

  it('a memory\'s text never drives the terminal: control characters and bidi overrides are printed escaped; --json keeps them exact', async () => {
    const db = tmp.join('ai-memory.db');
    createAiMemoryDb(db, { memories: 3, embeddingDim: 0, seed: 5 });
    const evil = 'ok\u001b[2J\u001b]0;pwned\u0007 \u202etxt.exe \u0085done';
    const id = seedMemory(db, 'ns', evil, `line one\nline two \u001b[31mred\u001b[0m\r overwritten`);
    const dir = tmp.join('backups');
    assert.equal((await cli(['backup', '--db', db, '--to', dir], { cwd: tmp.path })).code, 0);
    for (const args of [['inspect', '--from', dir], ['inspect', '--from', dir, '--id', id], ['diff', '--from', dir, '--db', db]]) {
      const r = await cli(args, { cwd: tmp.path });
      assert.equal(r.code, 0, r.stderr);
      // eslint-disable-next-line no-control-regex -- looking for control characters is the point
      assert.doesNotMatch(r.stdout + r.stderr, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/, args.join(' '));
    }
    const shown = await cli(['inspect', '--from', dir, '--id', id], { cwd: tmp.path });
    assert.match(shown.stdout, /ok\\u001b\[2J\\u001b\]0;pwned\\u0007 \\u202etxt\.exe/);
    assert.match(shown.stdout, /line one\nline two /, 'newlines stay lines');
    const j = (await cli(['inspect', '--from', dir, '--id', id, '--json'], { cwd: tmp.path })).json<InspectOutcome>();
    assert.equal(j.memory?.memory.title, evil, 'JSON: the exact title');
  });

  it('inspect/diff/extract find this database\'s snapshots whatever form its path is given in (./x.db, a/../x.db, $AI_MEMORY_DB)', async () => {
    const { dir } = await backedUp();
    fs.mkdirSync(tmp.join('sub'));
    for (const [args, env] of [
      [['diff', '--from', dir, '--db', './ai-memory.db'], {}],
      [['diff', '--from', dir, '--db', 'sub/../ai-memory.db'], {}],
      [['inspect', '--from', dir], { AI_MEMORY_DB: './ai-memory.db' }],
      [['extract', '--from', dir, '--db', './ai-memory.db', '--namespace', 'proj'], {}],
    ] as [string[], Record<string, string>][]) {
      const r = await cli(args, { cwd: tmp.path, env: { ...process.env, ...env } });
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    }
    const bad = await cli(['inspect', '--from', dir, '--db', '~nobody-such/x.db'], { cwd: tmp.path, env: { ...process.env, AI_MEMORY_DB: './ai-memory.db' } });
    assert.equal(bad.code, 2, bad.stderr);
  });

  it('inspect/diff --from a folder shared by two databases take THIS database\'s newest snapshot, as restore does', async () => {
    const { db, dir } = await backedUp();
    // Another database (5 memories) backed up into the same folder a moment later: the folder's newest is its.
    const other = tmp.join('other', 'ai-memory.db');
    fs.mkdirSync(tmp.join('other'));
    createAiMemoryDb(other, { memories: 5, embeddingDim: 0, seed: 3 });
    await new Promise((r) => setTimeout(r, 1100)); // a later name (second resolution)
    assert.equal((await cli(['backup', '--db', other, '--to', dir, '--json'], { cwd: tmp.path })).code, 0);
    const mine = (await cli(['inspect', '--from', dir, '--json'], { cwd: tmp.path, env: { AI_MEMORY_DB: db } })).json<InspectOutcome>();
    assert.equal(mine.facts?.memories, 30, 'this database\'s snapshot, not the other database\'s newer one');
    const theirs = (await cli(['inspect', '--from', dir, '--json'], { cwd: tmp.path, env: { AI_MEMORY_DB: other } })).json<InspectOutcome>();
    assert.equal(theirs.facts?.memories, 5);
    const d = (await cli(['diff', '--from', dir, '--db', db, '--json'], { cwd: tmp.path })).json<DiffOutcome>();
    assert.equal(d.removed.length + d.added.length, 0, 'compared with its own snapshot: nothing changed');
  });

  it('inspect: the overview takes the facts our manifest recorded; a page of a search reads no facts (the browser asks for page after page)', async () => {
    const { dir } = await backedUp();
    const snap = fs.readdirSync(dir).find((n) => n.endsWith('.db')) as string;
    const recorded = JSON.parse(fs.readFileSync(tmp.join('backups', snap.replace(/\.db$/, '.manifest.json')), 'utf8')) as { memories_digest: string };
    const over = (await cli(['inspect', '--from', tmp.join('backups', snap), '--json'], { cwd: tmp.path })).json<InspectOutcome>();
    assert.equal(over.facts?.memories_digest, recorded.memories_digest);
    // Without a manifest (a copy): the overview computes them — the same digest — and a search page does not.
    fs.copyFileSync(tmp.join('backups', snap), tmp.join('copy.db'));
    const computed = (await cli(['inspect', '--from', tmp.join('copy.db'), '--json'], { cwd: tmp.path })).json<InspectOutcome>();
    assert.equal(computed.facts?.memories_digest, recorded.memories_digest);
    const page = (await cli(['inspect', '--from', tmp.join('copy.db'), '--json', '--search', 'a'], { cwd: tmp.path })).json<InspectOutcome>();
    assert.equal(page.facts, undefined);
    assert.ok((page.page?.total ?? 0) > 0);
  });

  it('inspect of a SQLite file that is not ai-memory\'s lists its tables; an unchecked file warns', async () => {
    const p = tmp.join('other.db');
    const o = openNative(p);
    o.exec('CREATE TABLE t (x); INSERT INTO t VALUES (1), (2), (3);');
    o.close();
    const r = await cli(['inspect', '--from', p], { cwd: tmp.path });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Not an ai-memory database[^\n]*\n {2}t {2}3 rows/);
    assert.match(r.stderr, /no manifest beside it/);
  });

  it('diff: removed (deleted / archived) against the current database, in words and in JSON', async () => {
    const { db, dir, ids } = await backedUp();
    const n = openLikeServer(db);
    forget(n, ids[0]);
    gcArchive(n, ids[1], '2026-11-29T12:00:00+00:00');
    const human = await cli(['diff', '--from', dir, '--db', db], { cwd: tmp.path });
    const j = (await cli(['diff', '--from', dir, '--db', db, '--json'], { cwd: tmp.path })).json<DiffOutcome>();
    n.close();
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^\+0 −2 ~0/m);
    assert.match(human.stdout, new RegExp(`− ${ids[1]} .*\\(archived: ttl_expired\\)`));
    assert.deepEqual(j.removed.map((r) => [r.id, r.how]).sort(), [[ids[0], 'deleted'], [ids[1], 'archived']].sort());
    const two = await cli(['diff', '--from', dir, '--to', dir, '--db', db], { cwd: tmp.path });
    assert.equal(two.code, 2);
  });

  it('extract --removed-since-db writes the import file atomically, no more readable than the database', async () => {
    const { db, dir, ids } = await backedUp();
    const n = openLikeServer(db);
    forget(n, ids[2]);
    n.close();
    const out = tmp.join('restore.json');
    const r = await cli(['extract', '--from', dir, '--removed-since-db', db, '--out', out, '--json'], { cwd: tmp.path });
    assert.equal(r.code, 0, r.stderr);
    const j = r.json<ExtractOutcome>();
    assert.deepEqual(j.ids, [ids[2]]);
    assert.equal(j.import_command, `ai-memory --db ${db} import < ${out}`, 'into the database it was compared with, named');
    assert.equal(fs.statSync(out).mode & 0o777, 0o600);
    const doc = JSON.parse(fs.readFileSync(out, 'utf8')) as ImportDocument;
    assert.equal(doc.count, 1);
    assert.equal(doc.memories[0].id, ids[2]);
    assert.deepEqual(fs.readdirSync(tmp.path).filter((f) => f.endsWith('.tmp')), []);
    // --out never replaces anything: not the file it wrote, not the live database, not a snapshot.
    const snap = fs.readdirSync(dir).find((f) => f.endsWith('.db')) as string;
    for (const target of [out, db, path.join(dir, snap)]) {
      const before = fs.readFileSync(target);
      const again = await cli(['extract', '--from', dir, '--ids', ids[4], '--out', target], { cwd: tmp.path });
      assert.equal(again.code, 2, again.stderr);
      assert.match(again.stderr, /already exists; extract never overwrites a file/);
      assert.ok(fs.readFileSync(target).equals(before), `${target} unchanged`);
    }
    // Without --out: the document itself on stdout, ready for `| ai-memory import`.
    const piped = await cli(['extract', '--from', dir, '--ids', `${ids[4]},${ids[5]}`], { cwd: tmp.path });
    assert.equal(piped.code, 0, piped.stderr);
    assert.deepEqual(piped.json<ImportDocument>().memories.map((m) => m.id).sort(), [ids[4], ids[5]].sort());
  });

  it('extract refuses unclear selections with a usage error', async () => {
    const { db, dir } = await backedUp();
    for (const args of [[], ['--ids', 'a', '--namespace', 'x'], ['--removed-since-db', db, '--db', db], ['--ids', ',']]) {
      const r = await cli(['extract', '--from', dir, ...args], { cwd: tmp.path });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    }
    const noOut = await cli(['extract', '--from', dir, '--namespace', 'proj', '--json'], { cwd: tmp.path });
    assert.equal(noOut.code, 2);
  });

  it('extract --namespace \'\' (or spaces) is refused, saying what to pass instead; nothing is written (it wrote an empty export)', async () => {
    const { dir } = await backedUp();
    for (const args of [['--namespace', ''], ['--namespace='], ['--namespace', '  ']]) {
      const out = tmp.join('none.json');
      const r = await cli(['extract', '--from', dir, ...args, '--out', out], { cwd: tmp.path });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /--namespace global/, r.stderr);
      assert.ok(!fs.existsSync(out), 'nothing written');
      const printed = await cli(['extract', '--from', dir, ...args], { cwd: tmp.path });
      assert.equal(printed.code, 2);
      assert.equal(printed.stdout, '', 'no empty export on stdout');
    }
    await assert.rejects(extract({ from: dir, select: { namespace: '' }, dbPath: tmp.join('ai-memory.db') }), /--namespace "" selects no memory/);
  });
});

describe('the import command we show (Copy Command, extract)', function () {
  const tmp = useTempDir();

  it('pasted into a shell, every path stays one argument: no $(…), ;, quote or newline in a path runs anything', function () {
    // A stand-in for ai-memory that prints the arguments it got and what came on stdin.
    const bin = tmp.join("ai memory's bin");
    fs.writeFileSync(bin, `#!/bin/sh\nfor a in "$@"; do printf '[%s]' "$a"; done\nprintf '|'\ncat\n`, { mode: 0o755 });
    const dir = tmp.join('x');
    fs.mkdirSync(dir);
    const db = path.join(dir, "o'brien $(touch PWNED1); touch PWNED2 &\nmem.db");
    const file = path.join(dir, 'restore `touch PWNED3`.json');
    fs.writeFileSync(file, 'the memories');
    const cmd = importCommand(file, { binary: bin, db, platform: 'linux' });
    const r = spawnSync('/bin/sh', ['-c', cmd], { cwd: dir, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `[--db][${db}][import]|the memories`);
    assert.deepEqual(fs.readdirSync(dir).filter((n) => n.startsWith('PWNED')), []);
    // Windows' Command Prompt: double quotes around what needs them.
    assert.equal(importCommand('C:\\Users\\Ann Lee\\r.json', { db: 'C:\\x\\ai-memory.db', platform: 'win32' }), 'ai-memory --db C:\\x\\ai-memory.db import < "C:\\Users\\Ann Lee\\r.json"');
  });
});
