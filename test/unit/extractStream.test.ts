/**
 * extract writes its document as it is made: the same bytes as one JSON.stringify of the
 * whole document (the format ai-memory's import reads, file and stdout), and an export whose
 * memories add up to more than V8's longest string (about 512 MB, "Invalid string length")
 * is written whole, in bounded memory.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { stringifyExact } from '../../src/core/memory/exactJson';
import { extractMemories } from '../../src/core/memory/extract';
import { openSnapshotSql } from '../../src/core/memory/source';
import { extract } from '../../src/core/ops/memory';
import { createAiMemoryDb, seedMemory } from '../support/aiMemoryDb';
import { cliBundle } from '../support/reliability';
import { openNative } from '../support/sqlite';
import { useTempDir } from '../support/tmp';

const T = '2025-01-01T00:00:00+00:00';

describe('extract streams its document (same bytes; past V8\'s string limit)', function () {
  this.timeout(600_000);
  const tmp = useTempDir('aimb-extract-stream-');

  it('writes exactly what stringifyExact of the whole document wrote, to a file (indented) and to stdout (compact)', async () => {
    const db = tmp.join('ai-memory.db');
    createAiMemoryDb(db, { memories: 40, embeddingDim: 0, seed: 7 });
    seedMemory(db, 'ns/ü', 'unicode 🧠', 'line\nnext "quoted" \\ tab\t \u2028 é 🧠 \u0001');
    const n = openNative(db);
    n.prepare(`INSERT INTO memories (id, tier, namespace, title, content, tags, priority, confidence, source, access_count, created_at, updated_at, metadata)
      VALUES ('m-big', 'long', 'ns', 'big numbers', '', '["a","b"]', 5, 1.0, 'api', 0, ?, ?, '{"n":12345678901234567891,"f":1.0,"nested":{"x":[2.0,-0.0]}}')`).run(T, T);
    n.close();
    const now = new Date('2026-11-30T12:00:00Z');
    const snap = await openSnapshotSql(db);
    const cases: [string, { ids: string[] } | { namespace: string }][] = [
      ['a namespace', { namespace: 'ns' }],
      ['no memories', { namespace: 'no-such-namespace' }],
      ['one, no links', { ids: ['m-big'] }],
      ['all ids', { ids: [] }],
    ];
    const allIds: string[] = [];
    snap.each('SELECT id FROM memories', [], (r) => {
      allIds.push(String(r[0]));
    });
    cases[3][1] = { ids: allIds };
    try {
      for (const [label, select] of cases) {
        const doc = extractMemories(snap, select, { now }).document;
        if (label === 'all ids') assert.ok(doc.links.length > 0 && doc.memories.length > 40, 'the case has links');
        const out = tmp.join(`${label.replace(/\W+/g, '-')}.json`);
        await extract({ from: db, select, out, now });
        assert.equal(fs.readFileSync(out, 'utf8'), `${stringifyExact(doc, 2)}\n`, `${label}: file`);
        let printed = '';
        await extract({ from: db, select, now, stdout: (s) => void (printed += s) });
        assert.equal(printed, `${stringifyExact(doc)}\n`, `${label}: stdout`);
      }
    } finally {
      snap.close();
    }
  });

  it('an export of 600 memories of 1 MB (600 MB of content, past V8\'s 512 MB string limit) is written whole, in bounded memory', async function () {
    const db = tmp.join('huge.db');
    seedMemory(db, 'global', 'seed', 'seed');
    const n = openNative(db);
    const ins = n.prepare(`INSERT INTO memories (id, tier, namespace, title, content, tags, priority, confidence, source, access_count, created_at, updated_at, metadata)
      VALUES (?, 'mid', 'big', ?, ?, '[]', 5, 1.0, 'api', 0, ?, ?, '{}')`);
    const COUNT = 600;
    const SIZE = 1_000_000;
    const content = (i: number) => `${String(i).padStart(6, '0')}abcdefghij`.repeat(SIZE / 16 + 1).slice(0, SIZE);
    n.transaction(() => {
      for (let i = 0; i < COUNT; i++) ins.run(`big-${String(i).padStart(4, '0')}`, `title ${i}`, content(i), T, T);
    })();
    n.close();
    const out = tmp.join('huge.json');
    const cli = await cliBundle();
    // GNU time for the peak RSS when it is installed (Debian's `time`); the export itself either way.
    const gnuTime = fs.existsSync('/usr/bin/time');
    const argv = [process.execPath, cli, 'extract', '--from', db, '--namespace', 'big', '--out', out];
    const r = gnuTime
      ? spawnSync('/usr/bin/time', ['-f', 'peak-rss-kib %M', ...argv], { cwd: tmp.path, env: { PATH: process.env.PATH, HOME: tmp.path, LANG: 'C' }, encoding: 'utf8' })
      : spawnSync(argv[0], argv.slice(1), { cwd: tmp.path, env: { PATH: process.env.PATH, HOME: tmp.path, LANG: 'C' }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Wrote 600 memories and 0 links/);
    const file = fs.readFileSync(out);
    assert.ok(file.length > COUNT * SIZE, `${file.length} bytes`);
    // Every memory whole, in order, and the document closed.
    let at = 0;
    for (let i = 0; i < COUNT; i++) {
      const id = `big-${String(i).padStart(4, '0')}`;
      at = file.indexOf(`"id": "${id}"`, at);
      assert.ok(at > 0, `${id} is in the file`);
      const c = file.indexOf(`"content": ${JSON.stringify(content(i))},`, at);
      assert.ok(c > at, `${id}'s content, whole`);
      at = c;
    }
    assert.ok(file.subarray(file.length - 120).toString().endsWith(`"links": [],\n  "count": 600,\n  "exported_at": "${/"exported_at": "([^"]+)"/.exec(file.subarray(file.length - 120).toString())?.[1]}"\n}\n`));
    if (gnuTime) {
      const kib = Number(/peak-rss-kib (\d+)/.exec(r.stderr)?.[1]);
      if (this.test) this.test.title += ` (peak RSS ${Math.round(kib / 1024)} MB)`;
      assert.ok(kib < 300 * 1024, `peak RSS ${kib} KiB (one string of the document took over 1.2 GB before failing)`);
    }
  });
});
