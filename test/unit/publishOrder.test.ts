/**
 * The order in which a snapshot and its manifest get their names, as the kernel sees it: the
 * real CLI runs under strace, and the manifest's link must be followed by an fsync of the
 * folder before the snapshot's link. Only then can no power loss keep the snapshot's name
 * without its manifest's (restore refuses a snapshot without one). A power loss itself cannot
 * be caused here; the system calls that make the names durable, in their order, can be read.
 * Skipped where strace is missing or may not trace (no ptrace in the container).
 */
import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { runBackup } from '../../src/core/ops/backup';
import { createAiMemoryDb, seedMemory } from '../support/aiMemoryDb';
import { cliBundle } from '../support/reliability';
import { useTempDir } from '../support/tmp';

function straceWorks(): boolean {
  const r = spawnSync('strace', ['-qq', '-e', 'trace=none', 'true'], { stdio: 'ignore' });
  return r.status === 0;
}

interface Call {
  name: string;
  text: string;
}

/** Runs the CLI under strace (every thread: the file work is on libuv's pool); the link, rename and fsync calls in order. */
async function tracedCli(args: string[], cwd: string): Promise<{ status: number | null; stdout: string; stderr: string; calls: Call[] }> {
  const cli = await cliBundle();
  const log = path.join(cwd, `strace-${Date.now()}.txt`);
  const r = spawnSync('strace', ['-f', '-qq', '-y', '-e', 'trace=link,linkat,rename,renameat,renameat2,fsync,fdatasync', '-o', log, process.execPath, cli, ...args], {
    cwd,
    env: { PATH: process.env.PATH, HOME: cwd, LANG: 'C' },
    encoding: 'utf8',
    timeout: 120_000,
  });
  const text = fs.readFileSync(log, 'utf8');
  const calls = text
    .split('\n')
    .map((l) => /^\d+\s+(\w+)\((.*)\)\s+=\s+0$/.exec(l))
    .filter((m): m is RegExpExecArray => !!m)
    .map((m) => ({ name: m[1], text: m[2] }));
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, calls };
}

/** Index of the successful link/rename that gave `dest` its name. */
function namedAt(calls: Call[], dest: string): number {
  const i = calls.findIndex((c) => /^(link|rename)/.test(c.name) && [...c.text.matchAll(/"([^"]*)"/g)][1]?.[1] === dest);
  assert.ok(i >= 0, `${dest} got its name (${calls.map((c) => `${c.name}(${c.text})`).join('\n')})`);
  return i;
}

/** The folder's fsync between the manifest's naming and the file's. */
function assertFolderSyncedBetween(calls: Call[], manifest: string, file: string): void {
  const dir = path.dirname(manifest);
  const m = namedAt(calls, manifest);
  const f = namedAt(calls, file);
  assert.ok(m < f, 'the manifest is named first');
  const between = calls.slice(m + 1, f);
  assert.ok(
    between.some((c) => /^f(data)?sync$/.test(c.name) && c.text.endsWith(`<${dir}>`)),
    `an fsync of ${dir} between naming ${path.basename(manifest)} and ${path.basename(file)}; between them: ${between.map((c) => `${c.name}(${c.text})`).join(', ') || 'nothing'}`,
  );
}

describe('publishing order: a manifest\'s name is durable before its snapshot gets one (strace)', function () {
  this.timeout(180_000);
  const tmp = useTempDir('aimb-order-');
  before(function () {
    if (!straceWorks()) this.skip();
  });

  it('backup: link(manifest) → fsync(folder) → link(snapshot)', async () => {
    const db = tmp.join('ai-memory.db');
    createAiMemoryDb(db, { memories: 30 });
    const dir = tmp.join('bk');
    const r = await tracedCli(['backup', '--db', db, '--to', dir, '--json'], tmp.path);
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim()) as { snapshot: string };
    const name = out.snapshot;
    assertFolderSyncedBetween(r.calls, path.join(dir, name.replace(/\.db$/, '.manifest.json')), path.join(dir, name));
  });

  it('materialize: link(manifest) → fsync(folder) → link(file)', async () => {
    const db = tmp.join('ai-memory.db');
    createAiMemoryDb(db, { memories: 20 });
    const dir = tmp.join('bk');
    let clock = Date.parse('2026-11-20T00:00:00Z');
    const names: string[] = [];
    for (let i = 0; i < 3; i++) {
      clock += 3600_000;
      seedMemory(db, 'ns', `m${clock}`, `memory at ${clock} `.repeat(10));
      const b = await runBackup({ dbPath: db, backupDir: dir, keep: 0, plain: 1, now: () => new Date(clock), signing: { key: null } });
      names.push(path.basename(b.snapshotPath));
    }
    const outDir = tmp.join('out');
    const r = await tracedCli(['materialize', '--from', path.join(dir, names[0]), '--out', `${outDir}/`], tmp.path);
    assert.equal(r.status, 0, r.stderr);
    assertFolderSyncedBetween(r.calls, path.join(outDir, names[0].replace(/\.db$/, '.manifest.json')), path.join(outDir, names[0]));
  });
});
