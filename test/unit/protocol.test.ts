/**
 * The extension ↔ engine protocol (src/cli/protocol.ts): every command's --json output, as
 * the real CLI prints it, parses into its declared type; every error line parses; and the
 * argv the extension's client builds from typed arguments is accepted by the CLI's parser.
 * A command added to COMMANDS without a case here fails the first test.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as v from 'valibot';
import { parseArgs } from '../../src/cli/args';
import { COMMANDS, engineArgv, ErrorJson, parseResult, ProgressJson, RESULTS, type CommandArgs, type CommandName } from '../../src/cli/protocol';
import { createAiMemoryDb, seedMemory } from '../support/aiMemoryDb';
import { cli } from '../support/cliRun';
import { openNative } from '../support/sqlite';
import { useTempDir } from '../support/tmp';

interface Case<C extends CommandName> {
  /** Puts what the command needs in `dir` and returns its arguments. */
  args(dir: string): Promise<CommandArgs<C>> | CommandArgs<C>;
}

async function backedUp(dir: string): Promise<void> {
  createAiMemoryDb(`${dir}/ai-memory.db`, { memories: 20, embeddingDim: 0, leaveWalCommits: 2 });
  const r = await cli(['backup', '--db', `${dir}/ai-memory.db`, '--to', `${dir}/backups`, '--json'], { cwd: dir });
  assert.equal(r.code, 0, r.stderr);
}

/** Two snapshots, the older one in the page-dedup archive (--plain 1). */
async function archivedOne(dir: string): Promise<string> {
  await backedUp(dir);
  const first = fs.readdirSync(`${dir}/backups`).find((n) => n.endsWith('.db')) as string;
  seedMemory(`${dir}/ai-memory.db`, 'ns', 'later', 'a later memory');
  const r = await cli(['backup', '--db', `${dir}/ai-memory.db`, '--to', `${dir}/backups`, '--plain', '1', '--json'], { cwd: dir });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!fs.existsSync(`${dir}/backups/${first}`), 'archived');
  return `${dir}/backups/${first}`;
}

const CASES: { [C in CommandName]: Case<C>[] } = {
  prune: [
    {
      args: async (dir) => {
        await archivedOne(dir);
        return { to: `${dir}/backups`, 'keep-daily': 7, 'keep-hourly': 'all', 'dry-run': true };
      },
    },
    {
      args: async (dir) => {
        await archivedOne(dir);
        return { to: `${dir}/backups`, keep: 1, plain: 1 };
      },
    },
  ],
  materialize: [
    {
      args: async (dir) => ({ from: await archivedOne(dir), out: `${dir}/plain.db` }),
    },
  ],
  backup: [
    {
      args: (dir) => {
        createAiMemoryDb(`${dir}/ai-memory.db`, { memories: 20, embeddingDim: 0, leaveWalCommits: 2 });
        return { db: `${dir}/ai-memory.db`, to: `${dir}/backups`, verify: 'full', keep: 3 };
      },
    },
    {
      // with --remote: the copy's outcome in the same line
      args: (dir) => {
        createAiMemoryDb(`${dir}/ai-memory.db`, { memories: 20, embeddingDim: 0, leaveWalCommits: 2 });
        fs.mkdirSync(`${dir}/mirror`);
        return { db: `${dir}/ai-memory.db`, to: `${dir}/backups`, remote: `${dir}/mirror` };
      },
    },
    {
      // the second backup of an unchanged database: status "unchanged" with unchanged_since
      args: async (dir) => {
        await backedUp(dir);
        return { db: `${dir}/ai-memory.db`, to: `${dir}/backups` };
      },
    },
  ],
  restore: [
    {
      args: async (dir) => {
        await backedUp(dir);
        return { db: `${dir}/ai-memory.db`, from: `${dir}/backups`, force: true };
      },
    },
    {
      args: async (dir) => {
        await backedUp(dir);
        return { db: `${dir}/ai-memory.db`, from: `${dir}/backups`, 'dry-run': true };
      },
    },
  ],
  verify: [
    {
      args: async (dir) => {
        await backedUp(dir);
        return { from: `${dir}/backups`, verify: 'full' };
      },
    },
    {
      args: async (dir) => {
        await archivedOne(dir);
        return { from: `${dir}/backups`, all: true };
      },
    },
  ],
  list: [
    {
      args: async (dir) => {
        await backedUp(dir);
        return { to: `${dir}/backups` };
      },
    },
    {
      // a target (a mirror folder: no server, no credentials needed)
      args: async (dir) => {
        await mirrored(dir);
        return { remote: `${dir}/mirror` };
      },
    },
    {
      // the extension's connection test
      args: async (dir) => {
        fs.mkdirSync(`${dir}/mirror`);
        return { remote: `${dir}/mirror`, probe: true };
      },
    },
  ],
  push: [
    {
      args: async (dir) => {
        await backedUp(dir);
        fs.mkdirSync(`${dir}/mirror`);
        return { to: `${dir}/backups`, remote: `${dir}/mirror`, keep: 5 };
      },
    },
  ],
  pull: [
    {
      args: async (dir) => {
        await mirrored(dir);
        const name = fs.readdirSync(`${dir}/mirror`).find((n) => n.endsWith('.db')) as string;
        return { remote: `${dir}/mirror`, to: `${dir}/pulled`, snapshot: name };
      },
    },
  ],
  inspect: [
    {
      args: async (dir) => {
        await backedUp(dir);
        return { from: `${dir}/backups`, search: 'the', limit: 5 };
      },
    },
    {
      // one memory with its links
      args: async (dir) => {
        await backedUp(dir);
        const db = openNative(`${dir}/ai-memory.db`, { readonly: true });
        const id = String(db.prepare('SELECT source_id FROM memory_links LIMIT 1').pluck().get());
        db.close();
        return { from: `${dir}/backups`, id };
      },
    },
  ],
  diff: [
    {
      args: async (dir) => {
        await backedUp(dir);
        return { from: `${dir}/backups`, db: `${dir}/ai-memory.db` };
      },
    },
  ],
  extract: [
    {
      args: async (dir) => {
        await backedUp(dir);
        return { from: `${dir}/backups`, namespace: 'proj', db: `${dir}/ai-memory.db`, out: `${dir}/import.json` };
      },
    },
  ],
};

/** A backup folder copied to the mirror folder `${dir}/mirror`. */
async function mirrored(dir: string): Promise<void> {
  await backedUp(dir);
  fs.mkdirSync(`${dir}/mirror`);
  const r = await cli(['push', '--to', `${dir}/backups`, '--remote', `${dir}/mirror`, '--json'], { cwd: dir });
  assert.equal(r.code, 0, r.stderr);
}

describe('the extension ↔ engine protocol', () => {
  const tmp = useTempDir('aimb-protocol-');

  it('has a test case for every command', () => {
    assert.deepEqual(Object.keys(CASES).sort(), Object.keys(COMMANDS).sort());
    assert.deepEqual(Object.keys(RESULTS).sort(), Object.keys(COMMANDS).sort());
  });

  for (const command of Object.keys(COMMANDS) as CommandName[]) {
    CASES[command].forEach((c, i) => {
      it(`${command} #${i + 1}: the CLI accepts the client's argv, and its --json output parses into the declared type`, async () => {
        const args = await (c as Case<typeof command>).args(tmp.path);
        const argv = engineArgv(command, args);
        // The CLI's own parser takes exactly what the client builds.
        const parsed = parseArgs(argv, COMMANDS[command]);
        assert.equal(parsed.command, command);
        const r = await cli(argv, { cwd: tmp.path });
        assert.ok(r.code === 0 || (command === 'verify' && r.code === 1), `exit ${r.code}: ${r.stderr}`);
        const lines = r.stdout.trim().split('\n');
        assert.equal(lines.length, 1, 'one JSON line on stdout');
        const result = parseResult(command, JSON.parse(lines[0]));
        assert.ok(result);
        // Every stderr line is a progress line (no stray text the client would log as an error).
        for (const line of r.stderr.split('\n').filter(Boolean)) {
          assert.ok(v.is(ProgressJson, JSON.parse(line)), `not a progress line: ${line}`);
        }
      });
    });
  }

  it('verify reports which check ran (full → integrity_check, not quick_check)', async () => {
    await backedUp(tmp.path);
    const r = await cli(['verify', '--from', `${tmp.path}/backups`, '--verify', 'full', '--json'], { cwd: tmp.path });
    const out = parseResult('verify', r.json());
    assert.equal(out.snapshots[0].check, 'full');
    const text = await cli(['verify', '--from', `${tmp.path}/backups`, '--verify', 'full'], { cwd: tmp.path });
    assert.match(text.stdout, /integrity_check ok/);
    assert.doesNotMatch(text.stdout, /quick_check/);
  });

  it('an error is one line on stderr that parses into the error type, with a known code', async () => {
    const r = await cli(['backup', '--db', `${tmp.path}/missing.db`, '--to', `${tmp.path}/b`, '--json'], { cwd: tmp.path });
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    const line = v.parse(ErrorJson, JSON.parse(r.stderr.trim()));
    assert.equal(line.code, 'DB_NOT_FOUND');
    assert.ok(!fs.existsSync(`${tmp.path}/missing.db`), 'nothing created');
  });

  it('a result of the wrong shape is refused with the field that did not match', () => {
    assert.throws(() => parseResult('restore', { status: 'restored', from: 'a', to: 'b', sha256: 'x', bytes: '12' }), /at bytes/);
    assert.throws(() => parseResult('backup', { status: 'made' }), /expected shape/);
  });
});
