/**
 * The reliability report: every case, what was done, what was checked, and the result with
 * its numbers. An ordinary run writes test-results/reliability.md; `npm run docs:reliability`
 * refreshes the committed docs/reliability.md (tests never modify tracked files).
 *
 * Cases are declared with `reliabilityCase(...)` (a mocha `it` that records its outcome).
 * A root after-all hook writes the file once every section has results, i.e. after a full
 * run (`npm test`, `npm run test:reliability`); a run of one file or a --grep prints a note instead, so a
 * partial run never overwrites the report. The file holds no timing and no timestamp
 * beyond the date, and cases keep their declaration order, so it only changes when a
 * result (or the date) does.
 */
import * as fs from 'fs';
import * as path from 'path';
import { REPO_ROOT, SOAK } from './reliability';

export type SectionId = 'crash' | 'disk' | 'concurrency' | 'input' | 'adversarial';

const SECTIONS: { id: SectionId; title: string; intro: string }[] = [
  {
    id: 'crash',
    title: '1. Crash injection',
    intro:
      'The real CLI (`node cli.js`, a separate process) is killed with SIGKILL — at random moments, and deterministically at each named step via `AI_MEMORY_BACKUP_CRASH_AT=<step>` (src/core/common/testHooks.ts). After every kill: no file under a final snapshot name fails its manifest (bytes + sha256, checked independently of the engine); the live database is present, passes native `PRAGMA integrity_check` and the FTS5 integrity-check, and holds either the old content (including its WAL\'s commits) or the snapshot\'s; whenever the live files changed, a pre-restore copy with its -wal holds the old content. Then the next run, without injection, must succeed and leave no temp file, orphan manifest, lock or stale pin behind. SIGTERM (Ctrl-C, a service manager, the extension\'s Cancel) is tested too: the process must stop at a safe point and clean up by itself.',
  },
  {
    id: 'disk',
    title: '2. Disk full',
    intro: 'A small tmpfs is mounted for the backup folder (or the database folder) and filled with a filler file so the write hits ENOSPC (needs root; skipped with the reason otherwise).',
  },
  {
    id: 'concurrency',
    title: '3. Concurrency',
    intro: 'Several CLI processes at once on one backup folder; retention while a restore reads a snapshot (Litestream #1307); stale locks. Each outcome is checked, never just the exit code.',
  },
  {
    id: 'input',
    title: '4. Bad input',
    intro:
      'Each case runs the CLI as a process twice (text and `--json`): exit code 1, `error: …` plus an indented hint on stderr (or one JSON error line with `code` and `hint`), and a hash fingerprint of the database folder and the backup folder (every file, folder and symlink) identical before and after.',
  },
  {
    id: 'adversarial',
    title: '5. Adversarial cases (issue 8)',
    intro:
      'The ways an adversarial run (46 experiments against the CLI) still lost, mixed up or leaked data, or hung. Each case names the general rule that was missing; the rule is applied once in the engine (src/core/sqlite/dbFiles.ts: one path resolution and one sidecar set; src/core/store/ownership.ts: whose snapshot; src/core/common/regularFile.ts: safe opens; src/core/store/atomicFs.ts: modes and owners) and used by backup, restore, verify, list and the extension. The real CLI runs as a process with a deadline; outcomes are checked natively.',
  },
];

interface CaseResult {
  section: SectionId;
  name: string;
  done: string;
  checked: string;
  result: string;
  status: 'pass' | 'fail' | 'skipped';
}

const results: CaseResult[] = [];

export interface CaseContext {
  /** Marks the case skipped (with the reason shown in the report) and skips the mocha test. */
  skip(reason: string): never;
}

/**
 * A mocha test that records its outcome in the report. `fn` returns the result line
 * (e.g. "112 kills: 112 ok"); a throw records "FAIL: <message>" and fails the test.
 */
export function reliabilityCase(
  section: SectionId,
  name: string,
  info: { done: string; checked: string; timeoutMs?: number },
  fn: (ctx: CaseContext) => Promise<string> | string,
): void {
  it(name, async function () {
    if (info.timeoutMs) this.timeout(info.timeoutMs);
    const rec: CaseResult = { section, name, done: info.done, checked: info.checked, result: '', status: 'pass' };
    results.push(rec);
    const ctx: CaseContext = {
      skip: (reason: string) => {
        rec.status = 'skipped';
        rec.result = `skipped: ${reason}`;
        console.log(`      skipped: ${reason}`);
        this.skip();
        throw new Error('unreachable');
      },
    };
    try {
      rec.result = await fn(ctx);
    } catch (e) {
      if (rec.status === 'skipped') throw e;
      rec.status = 'fail';
      rec.result = `FAIL: ${(e instanceof Error ? e.message : String(e)).split('\n')[0].slice(0, 300)}`;
      throw e;
    }
  });
}

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

export function renderReport(date: string): string {
  const lines: string[] = [];
  const pass = results.filter((r) => r.status === 'pass').length;
  const fail = results.filter((r) => r.status === 'fail').length;
  const skipped = results.filter((r) => r.status === 'skipped').length;
  lines.push('# Reliability report');
  lines.push('');
  const mode = process.env.AI_MEMORY_SOAK_TRIALS ? ` with AI_MEMORY_SOAK_TRIALS=${process.env.AI_MEMORY_SOAK_TRIALS}` : SOAK ? ' in soak mode (`AI_MEMORY_SOAK=1`)' : '';
  lines.push(`Generated by the reliability suite (\`test/unit/reliability*.test.ts\`, run by \`npm test\`) on ${date}${mode}; do not edit by hand.`);
  lines.push(`Platform: ${process.platform}, Node ${process.versions.node.split('.')[0]}${typeof process.getuid === 'function' && process.getuid() === 0 ? ', as root' : ', not root'}.`);
  lines.push('');
  lines.push(`**${results.length} cases: ${pass} passed, ${fail} failed, ${skipped} skipped.**`);
  lines.push('');
  lines.push('A longer soak (1000 random SIGKILLs each during backup and restore, 200 SIGTERMs each, 5× the concurrency rounds): `AI_MEMORY_SOAK=1 npm run test:unit`; `AI_MEMORY_SOAK_TRIALS=<n>` sets every trial and round count to n. Their report goes to out/reliability-soak.md.');
  for (const s of SECTIONS) {
    lines.push('');
    lines.push(`## ${s.title}`);
    lines.push('');
    lines.push(s.intro);
    lines.push('');
    lines.push('| case | what was done | what was checked | result |');
    lines.push('| --- | --- | --- | --- |');
    for (const r of results.filter((x) => x.section === s.id)) {
      const mark = r.status === 'pass' ? 'pass' : r.status === 'fail' ? '**FAIL**' : 'skipped';
      lines.push(`| ${cell(r.name)} | ${cell(r.done)} | ${cell(r.checked)} | ${mark}: ${cell(r.result.replace(/^(FAIL|skipped): /, ''))} |`);
    }
  }
  lines.push('');
  lines.push('## Defects this suite found (all fixed)');
  lines.push('');
  for (const d of DEFECTS) lines.push(`- ${d}`);
  lines.push('');
  return lines.join('\n');
}

/** What the suite caught when it was written; kept here so the report says why each check exists. */
const DEFECTS = [
  '**Lock created empty** (SIGKILL at `lock:after-create`): the folder lock was created, then written; a crash in between left an empty lock that could only be judged by age, so every backup of that folder waited 10 s (and a caller with a shorter wait got LOCKED "another process"). The lock is now written aside and linked into place (never empty). src/core/folderLock.ts',
  '**Dead restores\' pins never cleaned by the next restore** (random SIGKILL during restore): a killed restore left its pin in the backup folder until a later backup\'s retention happened to clear it. A successful restore now drops pins (and pin temps) of dead processes. src/core/restore.ts',
  '**Incomplete pre-restore copy** (SIGKILL at `restore:between-keeps`): the database got its pre-restore name before its -wal, so a crash in between left `<stem>.pre-restore-….db` without its WAL, an older state that looks like a complete copy. The -wal/-shm are now kept first. src/core/restore.ts',
  '**No hint for a manifest naming another file or a path** (bad input): MANIFEST_FOREIGN refusals lost their hint on the way from the manifest check to the restore error. src/core/snapshotCheck.ts',
  '**`--skip-if-recent` let a second window back up in the same interval** (two processes at once): the "recent" test used the time the run started, before it waited for the lock; the run that had waited saw the other\'s fresh `last_run` as being in the future and backed up again. Now judged once the lock is held. src/core/backup.ts',
  '**Pin created empty** (retention while a restore reads, restore frozen right after pinning): the pin file was created, then written; retention reading it in between found no snapshot name and deleted the snapshot being restored (Litestream #1307 again). Pins are now written aside and renamed into place, and retention re-reads the pins right before each delete. src/core/pins.ts, src/core/backup.ts',
  '**Another process\'s command line printed raw** (restore target in use): the IN_USE error quoted the holder\'s command line as it was; arguments holding newlines (or terminal escapes) split the `error:` line and could forge lines of our output. Now one plain line. src/core/inUse.ts',
  '**A cancel during the integrity check was ignored** (SIGTERM at `backup:after-temp-fsync` / `backup:after-check`; random SIGTERMs mostly "finished"): the check runs synchronously, so the signal handler only ran after the "cancelled?" test that follows it, and the backup went on to publish. The engine now lets the event loop turn before that test. src/core/backup.ts',
  '**A dead lock naming our own pid** (pid reuse): a lock left by a killed backup whose pid the system later gave to the next backup was taken for a live one, so that backup waited out its lock timeout and failed with LOCKED naming itself. src/core/folderLock.ts',
];

/** The committed report; only `npm run docs:reliability` (AI_MEMORY_UPDATE_DOCS=1) writes it: tests never modify tracked files. */
export const DOCS_REPORT_PATH = path.join(REPO_ROOT, 'docs', 'reliability.md');
/** Where an ordinary run (npm test, CI) writes its report. */
export const RUN_REPORT_PATH = path.join(REPO_ROOT, 'test-results', 'reliability.md');
const REPORT_PATH = process.env.AI_MEMORY_UPDATE_DOCS === '1' ? DOCS_REPORT_PATH : RUN_REPORT_PATH;
/** Soak runs (and runs with an explicit trial count) report here instead, so docs/ keeps the `npm test` numbers. */
export const SOAK_REPORT_PATH = path.join(REPO_ROOT, 'out', 'reliability-soak.md');

function writeReport(): void {
  const missing = SECTIONS.filter((s) => !results.some((r) => r.section === s.id)).map((s) => s.id);
  if (!results.length) return;
  if (missing.length) {
    console.log(`  [reliability] ${path.relative(REPO_ROOT, REPORT_PATH)} not written: no results for ${missing.join(', ')} (a partial run; run the whole suite to regenerate it)`);
    return;
  }
  const text = renderReport(new Date().toISOString().slice(0, 10));
  if (SOAK || process.env.AI_MEMORY_SOAK_TRIALS) {
    fs.mkdirSync(path.dirname(SOAK_REPORT_PATH), { recursive: true });
    fs.writeFileSync(SOAK_REPORT_PATH, text);
    console.log(`  [reliability] soak report: ${path.relative(process.cwd(), SOAK_REPORT_PATH)} (docs/reliability.md keeps the npm test numbers: npm run docs:reliability)`);
    return;
  }
  fs.mkdirSync(path.dirname(REPORT_PATH), { recursive: true });
  const old = fs.existsSync(REPORT_PATH) ? fs.readFileSync(REPORT_PATH, 'utf8') : '';
  // Only the date differs: keep the file as it is (no churn from re-running the suite).
  const undated = (t: string) => t.replace(/ on \d{4}-\d\d-\d\d/, '');
  const same = undated(old) === undated(text);
  if (!same) fs.writeFileSync(REPORT_PATH, text);
  console.log(`  [reliability] ${path.relative(process.cwd(), REPORT_PATH)} ${same ? 'unchanged' : 'written'}`);
}

if (typeof after === 'function') after('write the reliability report', writeReport);
