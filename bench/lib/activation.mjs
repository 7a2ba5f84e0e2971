// Extension activation time in a real VS Code (code-server 4.100.3 + chromium, via the
// test harness): the .vsix is packaged, installed into a fresh profile, the workbench is
// opened, and two figures are read per session:
//   - the extension's own log line `activated in <ms> ms` ("AI Memory" LogOutputChannel);
//   - VS Code's own measurement (code loading + activate() call), as shown by
//     "Developer: Show Running Extensions".
// Everything a session starts is stopped by PID (harness → processes.mjs).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageVsix } from '../../scripts/package.mjs';
import { runCommand, startSession, waitFor } from '../../test/vscode/harness.mjs';
import { median } from './stats.mjs';

export const ACTIVATED_RE = /activated in ([\d.]+) ms/;
const EXTENSION_ID = 'ai-memory-tools.ai-memory-backup';

function findFiles(dir, name) {
  const out = [];
  const walk = (d) => {
    if (!existsSync(d)) return;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const full = join(d, e.name);
      if (e.isDirectory()) walk(full);
      else if (e.name === name) out.push(full);
    }
  };
  walk(dir);
  return out;
}

/** The extension's log file (under the session's user-data-dir logs) once it has an activation line. */
function readActivationLog(dirs) {
  for (const file of findFiles(join(dirs.userDataDir, 'logs'), 'AI Memory.log')) {
    const text = readFileSync(file, 'utf8');
    if (/activated/.test(text)) return { file, text };
  }
  return undefined;
}

/** VS Code's activation time of our extension from the Running Extensions editor. */
async function runningExtensionsTime(page) {
  await runCommand(page, 'Developer: Show Running Extensions');
  const row = page.locator('.runtime-extensions-editor .monaco-list-row', { hasText: 'AI Memory Backup' }).first();
  await row.waitFor({ state: 'visible', timeout: 20_000 });
  let text = '';
  await waitFor(
    async () => {
      text = await row.innerText();
      return /Activation: \d+ms/i.test(text);
    },
    { timeoutMs: 20_000, message: 'no activation time in the Running Extensions row' },
  );
  const m = /(Startup )?Activation: (\d+)ms/i.exec(text);
  return { ms: Number(m[2]), startup: Boolean(m[1]), text: text.replace(/\s+/g, ' ').trim() };
}

export async function measureActivation({ cacheDir, sessions, log }) {
  const vsix = join(cacheDir, 'ai-memory-backup-bench.vsix');
  await packageVsix({ out: vsix, log: (m) => log(`  ${m}`) });
  const results = [];
  for (let i = 0; i < sessions; i++) {
    const session = await startSession({ vsix, trust: 'trust' });
    try {
      const found = await waitFor(() => readActivationLog(session.dirs), { timeoutMs: 60_000, intervalMs: 100, message: 'no "activated" line in the AI Memory log' });
      const line = found.text.split('\n').find((l) => /activated/.test(l)) ?? '';
      const own = ACTIVATED_RE.exec(line);
      let vscode;
      try {
        vscode = await runningExtensionsTime(session.page);
      } catch (e) {
        vscode = { error: e.message };
      }
      results.push({ ownMs: own ? Number(own[1]) : undefined, line: line.trim(), logFile: found.file.slice(session.dirs.root.length), vscode, workbenchMs: session.timings.workbenchMs });
      log(`  session ${i + 1}: own ${own ? `${own[1]} ms` : `(no ms in "${line.trim()}")`}, VS Code ${vscode.ms ?? '?'} ms`);
    } finally {
      await session.stop().catch((e) => log(`  stop: ${e.message}`));
      session.removeDirs();
    }
  }
  const own = results.map((r) => r.ownMs).filter((x) => x !== undefined);
  const vs = results.map((r) => r.vscode.ms).filter((x) => x !== undefined);
  return {
    extensionId: EXTENSION_ID,
    sessions,
    ownMs: own.length ? median(own) : undefined,
    ownAll: own,
    vscodeMs: vs.length ? median(vs) : undefined,
    vscodeAll: vs,
    sample: results[0],
    results,
  };
}
