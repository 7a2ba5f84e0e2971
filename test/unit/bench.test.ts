/**
 * `npm run bench` and the archive bench still run end to end against the engine as it is now.
 * Nothing else exercises them: when restore began refusing an ai-memory snapshot over another
 * program's database (NOT_AI_MEMORY), the bench's restore target (a one-table database) made
 * every bench run fail at its first restore, unnoticed until the next measurement. Smallest
 * size, one round, warm cache (no page-cache drop: nothing here touches the machine), the CLI
 * the tests build, fixtures and work files in a temp folder, results to a temp file.
 */
import * as assert from 'assert';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { cliBundle, REPO_ROOT } from '../support/reliability';
import { trackChild } from '../support/procs';
import { useTempDir } from '../support/tmp';

function runNode(args: string[], timeoutMs: number): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    trackChild(child, `node ${path.basename(args[0])}`);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${args[0]} did not finish within ${timeoutMs} ms; output:\n${out}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, out });
    });
  });
}

describe('benchmarks (smoke: they run)', function () {
  this.timeout(180_000);
  const tmp = useTempDir();

  it('bench/run.mjs times every command of ours and the native chain at 5 MB', async () => {
    const cli = await cliBundle();
    const out = tmp.join('results.md');
    const r = await runNode(
      [path.join(REPO_ROOT, 'bench', 'run.mjs'), '--sizes', '5', '--rounds', '1', '--warm', '--max-wait', '0', '--no-build', '--no-activation', '--no-remote', '--no-memory', '--no-extras', '--cli', cli, '--cache-dir', tmp.join('cache'), '--out', out],
      150_000,
    );
    assert.strictEqual(r.code, 0, `bench/run.mjs failed:\n${r.out}`);
    const md = fs.readFileSync(out, 'utf8');
    for (const row of ['ours: `backup --verify off`', 'ours: `backup --verify quick`', 'ours: `backup --verify full`', 'ours: `verify`', 'ours: `restore`', 'native: `VACUUM INTO` + `sync` + `sha256sum`']) {
      assert.ok(md.includes(row), `no "${row}" row in the results:\n${md}`);
    }
    assert.match(md, /peak RSS ≤ 100 MB for every command of ours/);
    assert.ok(!fs.readdirSync(tmp.join('cache')).some((n) => n.startsWith('work-')), 'the work folder was left behind');
  });

  it('bench/archive.mjs archives, restores and verifies a few hours at 5 MB', async () => {
    const cli = await cliBundle();
    const out = tmp.join('archive.md');
    const r = await runNode(
      [path.join(REPO_ROOT, 'bench', 'archive.mjs'), '--size', '5 MB', '--hours', '4', '--plain', '2', '--stores', '4', '--recalls', '40', '--merge-every', '3', '--no-build', '--cli', cli, '--cache-dir', tmp.join('cache'), '--out', out],
      150_000,
    );
    assert.strictEqual(r.code, 0, `bench/archive.mjs failed:\n${r.out}`);
    const md = fs.readFileSync(out, 'utf8');
    assert.match(md, /this folder: 2 plain \+ 2 archived/);
    assert.match(md, /restore of the oldest archived snapshot/);
  });
});
