#!/usr/bin/env node
// Builds the production bundle and packages it as ai-memory-backup-<version>.vsix, then checks
// what went into the package. Fails on any vsce WARNING and on a missing or unexpected file.
//
//   node scripts/package.mjs [--out file.vsix]
import { spawn } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Files the installed extension cannot work without. */
export const REQUIRED_VSIX_ENTRIES = [
  'extension/package.json',
  'extension/dist/extension.js',
  'extension/dist/cli.js',
  'extension/dist/sql-wasm.wasm',
];
/** Things that must never be shipped (sources, maps, tests, dependencies, caches). */
const FORBIDDEN_VSIX_ENTRY = /^extension\/(src|test|out|node_modules|scripts|\.cache|docs)\/|\.map$|\.ts$|\.vsix$/;

function readManifest() {
  return JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8'));
}

/** <repo>/<name>-<version>.vsix, the name `vsce package` uses by default. */
export function defaultVsixPath() {
  const { name, version } = readManifest();
  return join(repoRoot, `${name}-${version}.vsix`);
}

function run(cmd, args) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('error', reject);
    child.on('exit', (code, signal) =>
      code === 0 ? resolvePromise(output) : reject(new Error(`${cmd} ${args.join(' ')} failed (${signal ?? `exit ${code}`}):\n${output}`)),
    );
  });
}

/**
 * Entry names of a zip file, read from its central directory
 * (APPNOTE.TXT 4.3.12 central directory header, 4.3.16 end of central directory record).
 */
export function listZipEntries(file) {
  const buf = readFileSync(file);
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 0xffff); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error(`${file} is not a zip file (no end-of-central-directory record)`);
  const count = buf.readUInt16LE(eocd + 10);
  let offset = buf.readUInt32LE(eocd + 16);
  const entries = [];
  for (let i = 0; i < count; i++) {
    if (buf.readUInt32LE(offset) !== 0x02014b50) throw new Error(`${file}: bad central directory entry ${i}`);
    const size = buf.readUInt32LE(offset + 24);
    const nameLength = buf.readUInt16LE(offset + 28);
    const extraLength = buf.readUInt16LE(offset + 30);
    const commentLength = buf.readUInt16LE(offset + 32);
    entries.push({ name: buf.toString('utf8', offset + 46, offset + 46 + nameLength), size });
    offset += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

/** Throws unless the .vsix holds every required file and nothing forbidden. */
export function verifyVsix(file) {
  const entries = listZipEntries(file);
  const names = new Set(entries.map((e) => e.name));
  const missing = REQUIRED_VSIX_ENTRIES.filter((n) => !names.has(n));
  const forbidden = entries.map((e) => e.name).filter((n) => FORBIDDEN_VSIX_ENTRY.test(n));
  if (missing.length || forbidden.length) {
    throw new Error(
      `${file} is incomplete or carries files it should not.` +
        (missing.length ? `\n  missing: ${missing.join(', ')}` : '') +
        (forbidden.length ? `\n  should not be shipped: ${forbidden.join(', ')}` : '') +
        '\n  Check .vscodeignore (an allow-list) and the build.',
    );
  }
  return entries;
}

/**
 * `node esbuild.mjs --production`, then `vsce package --no-dependencies`.
 * Returns the .vsix path and its entries.
 */
export async function packageVsix({ out = defaultVsixPath(), log = (m) => process.stderr.write(`[package] ${m}\n`) } = {}) {
  const started = Date.now();
  await run(process.execPath, ['esbuild.mjs', '--production']);
  const vsce = join(repoRoot, 'node_modules', '@vscode', 'vsce', 'vsce');
  // --no-dependencies: everything is bundled by esbuild, the .vsix has no node_modules.
  const output = await run(process.execPath, [vsce, 'package', '--no-dependencies', '--out', out]);
  const warnings = output.split('\n').filter((l) => /\bWARNING\b/.test(l));
  if (warnings.length) throw new Error(`vsce printed warnings:\n${warnings.join('\n')}\n\nFull output:\n${output}`);
  const entries = verifyVsix(out);
  log(`${out} (${(statSync(out).size / 1024).toFixed(0)} KB, ${entries.length} files) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return { vsix: out, entries };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--out');
  try {
    const { entries } = await packageVsix(i > 0 ? { out: resolve(process.argv[i + 1]) } : {});
    for (const e of entries) console.log(`${String(e.size).padStart(9)}  ${e.name}`);
  } catch (err) {
    console.error(`[package] ERROR: ${err.message}`);
    process.exit(1);
  }
}
