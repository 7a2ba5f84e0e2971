#!/usr/bin/env node
// Installs code-server (= VS Code 1.100.3, server + web workbench) once into
// <repo>/.cache/code-server, offline-proof, so the extension can be tested in a real VS Code
// on machines that reach only the npm registry and the Debian mirrors.
//
//   node scripts/code-server.mjs            install code-server (and the Debian packages it needs)
//   node scripts/code-server.mjs --deps     only install the Debian packages (libkrb5-dev, ripgrep, chromium)
//   node scripts/code-server.mjs --force    reinstall code-server from scratch
//   node scripts/code-server.mjs --print    print the paths as JSON
//
// Why it is not just `npm install code-server`:
// - code-server 4.101+ needs Node 22; 4.100.3 is the last one for Node 20.
// - Its postinstall refuses root without npm_config_unsafe_perm=true, and a nested
//   `npx node-gyp` asks for confirmation unless npm_config_yes=true.
// - npm 11 blocks dependency install scripts unless allowed. The postinstall runs a
//   project-scoped `npm install` in lib/vscode, where `--allow-scripts` (flag or env) is an
//   error (EALLOWSCRIPTS), so we install with --ignore-scripts, write `.npmrc` allow-lists
//   (argon2; the Linux native modules of lib/vscode), rebuild argon2 and run the
//   postinstall ourselves with a clean environment.
// - @vscode/ripgrep's postinstall downloads rg from GitHub; it first looks in
//   $TMPDIR/vscode-ripgrep-cache-1.15.11/, where we put Debian's /usr/bin/rg.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CODE_SERVER_VERSION = '4.100.3';
/** The VS Code version code-server 4.100.3 is built from. */
export const VSCODE_VERSION = '1.100.3';
const RIPGREP_PACKAGE_VERSION = '1.15.11';
const RIPGREP_ASSET = 'ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz';

/**
 * Packages whose install scripts must run, from the `hasInstallScript` entries of code-server's
 * npm-shrinkwrap.json files. Left out on purpose: @vscode/windows-process-tree and
 * @vscode/windows-registry (Windows-only; npm lists them as "not yet covered", harmless).
 */
const TOP_LEVEL_SCRIPTS = ['argon2'];
const VSCODE_SCRIPTS = [
  '@parcel/watcher',
  '@vscode/deviceid',
  '@vscode/ripgrep',
  '@vscode/spdlog',
  'kerberos',
  'native-watchdog',
  'node-pty',
];

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const cacheRoot = process.env.AI_MEMORY_CODE_SERVER_CACHE
  ? resolve(process.env.AI_MEMORY_CODE_SERVER_CACHE)
  : join(repoRoot, '.cache', 'code-server');
const prefix = join(cacheRoot, CODE_SERVER_VERSION);
const packageDir = join(prefix, 'lib', 'node_modules', 'code-server');

export const paths = Object.freeze({
  repoRoot,
  cacheRoot,
  /** npm --prefix of the cached install. */
  prefix,
  /** The installed code-server package. */
  packageDir,
  /** Run it as `node <entry> ...` (what the `code-server` bin points to). */
  entry: join(packageDir, 'out', 'node', 'entry.js'),
  /** Written last by a successful install; its presence makes ensureCodeServer() instant. */
  marker: join(prefix, '.installed.json'),
  /** TMPDIR used during the install (holds the ripgrep cache). */
  installTmp: join(cacheRoot, 'tmp'),
  lock: join(cacheRoot, '.lock'),
  chromium: '/usr/bin/chromium',
  ripgrep: '/usr/bin/rg',
  gssapiHeader: '/usr/include/gssapi/gssapi.h',
});

/** Debian packages, and the file whose presence shows each is installed. */
const DEBIAN_PACKAGES = [
  { pkg: 'libkrb5-dev', file: paths.gssapiHeader, why: 'kerberos native module needs the gssapi headers' },
  { pkg: 'ripgrep', file: paths.ripgrep, why: "replaces @vscode/ripgrep's GitHub download" },
  { pkg: 'chromium', file: paths.chromium, why: 'opens the workbench' },
];

function log(message) {
  process.stderr.write(`[code-server] ${message}\n`);
}

/** npm settings a machine may legitimately set through the environment (registry mirror, proxy, CA). */
const KEPT_NPM_ENV = /^npm_config_(registry|cache|cafile|ca|strict_ssl|proxy|https_proxy|noproxy|no_proxy|userconfig|globalconfig|nodedir|@[^_]+:registry)$/i;

/**
 * Environment for npm and the postinstall. Drops the npm_* variables an outer `npm run`
 * injects (npm_config_global, npm_config_prefix, npm_config_allow_scripts, npm_package_*…),
 * which would redirect or break the nested installs; keeps registry/proxy/CA settings.
 */
function installEnv() {
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^npm_/i.test(key) || KEPT_NPM_ENV.test(key)) env[key] = value;
  }
  // postinstall.sh checks this variable itself (npm 11 warns "Unknown env config": harmless).
  env.npm_config_unsafe_perm = 'true';
  env.npm_config_yes = 'true';
  env.npm_config_fund = 'false';
  env.npm_config_audit = 'false';
  env.npm_config_update_notifier = 'false';
  env.TMPDIR = paths.installTmp;
  return env;
}

function run(cmd, args, options = {}) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { stdio: options.quiet ? 'pipe' : 'inherit', ...options });
    let output = '';
    child.stdout?.on('data', (d) => (output += d));
    child.stderr?.on('data', (d) => (output += d));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (code === 0) resolvePromise(output);
      else reject(new Error(`${cmd} ${args.join(' ')} failed (${signal ?? `exit ${code}`})\n${output.slice(-4000)}`));
    });
  });
}

/** Names of the Debian packages that are missing. */
export function missingDebianPackages() {
  return DEBIAN_PACKAGES.filter((d) => !existsSync(d.file)).map((d) => d.pkg);
}

/**
 * apt-get installs libkrb5-dev, ripgrep and chromium when missing (needs root).
 * `apt-get update` runs only when the first install attempt fails (stale package lists).
 */
export async function ensureDebianPackages({ only } = {}) {
  const missing = missingDebianPackages().filter((p) => !only || only.includes(p));
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    throw new Error(`Missing Debian packages: ${missing.join(' ')}. Run as root: apt-get install -y --no-install-recommends ${missing.join(' ')}`);
  }
  const args = ['install', '-y', '--no-install-recommends', ...missing];
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  log(`apt-get ${args.join(' ')}`);
  try {
    await run('apt-get', args, { env });
  } catch {
    log('apt-get install failed; running apt-get update and retrying');
    await run('apt-get', ['update'], { env });
    await run('apt-get', args, { env });
  }
  const still = missingDebianPackages().filter((p) => missing.includes(p));
  if (still.length) throw new Error(`apt-get finished but these are still missing: ${still.join(' ')}`);
}

/** Places Debian's rg where @vscode/ripgrep's postinstall looks before downloading. */
function seedRipgrepCache() {
  const dir = join(paths.installTmp, `vscode-ripgrep-cache-${RIPGREP_PACKAGE_VERSION}`);
  const asset = join(dir, RIPGREP_ASSET);
  if (existsSync(asset)) return;
  mkdirSync(dir, { recursive: true });
  const staging = join(dir, 'staging');
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging);
  execFileSync('cp', [paths.ripgrep, join(staging, 'rg')]);
  execFileSync('tar', ['-czf', asset, '-C', staging, 'rg']);
  rmSync(staging, { recursive: true, force: true });
}

function npmUserAgent() {
  const npmVersion = execFileSync('npm', ['--version'], { env: installEnv(), encoding: 'utf8' }).trim();
  return `npm/${npmVersion} node/${process.version} ${process.platform} ${process.arch} workspaces/false`;
}

/**
 * Environment that keeps code-server's own files (config.yaml with a generated password,
 * coder-logs) out of the user's ~/.config and ~/.local/share.
 */
export function isolatedXdgEnv(dir) {
  return { XDG_CONFIG_HOME: join(dir, 'xdg-config'), XDG_DATA_HOME: join(dir, 'xdg-data') };
}

/** `code-server --version`, last line, e.g. "4.100.3 409c64e… with Code 1.100.3". */
export function codeServerVersion() {
  const out = execFileSync(process.execPath, [paths.entry, '--version'], {
    env: { ...installEnv(), ...isolatedXdgEnv(paths.installTmp) },
    encoding: 'utf8',
  });
  return out.trim().split('\n').pop().trim();
}

function readMarker() {
  try {
    const marker = JSON.parse(readFileSync(paths.marker, 'utf8'));
    return marker.version === CODE_SERVER_VERSION && existsSync(paths.entry) ? marker : undefined;
  } catch {
    return undefined;
  }
}

export function isCodeServerInstalled() {
  return readMarker() !== undefined;
}

function processAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

/**
 * Runs `fn` holding a directory lock at `lockDir` (mkdir is atomic); waits while another live
 * process holds it, takes it over from a dead one.
 */
export async function withDirLock(lockDir, fn, { timeoutMs = 15 * 60_000, onWait } = {}) {
  mkdirSync(dirname(lockDir), { recursive: true });
  const deadline = Date.now() + timeoutMs;
  let announced = false;
  for (;;) {
    try {
      mkdirSync(lockDir);
      writeFileSync(join(lockDir, 'pid'), String(process.pid));
      break;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
      let owner = NaN;
      try {
        owner = Number(readFileSync(join(lockDir, 'pid'), 'utf8'));
      } catch {
        /* the owner has not written its pid yet */
      }
      if (Number.isInteger(owner) && owner > 0 && !processAlive(owner)) {
        rmSync(lockDir, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`Timed out waiting for ${lockDir} (held by pid ${owner})`);
      if (!announced && onWait) onWait(owner);
      announced = true;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}

async function install() {
  const started = Date.now();
  await ensureDebianPackages();
  rmSync(prefix, { recursive: true, force: true });
  mkdirSync(prefix, { recursive: true });
  mkdirSync(paths.installTmp, { recursive: true });
  seedRipgrepCache();
  const env = installEnv();

  // 1. The package and its dependencies, no scripts at all. (Letting npm run code-server's
  //    postinstall from a global install breaks it: npm hands npm_config_global=true to the
  //    script, so its nested `npm install` in lib/vscode installs that folder — also named
  //    "code-server" — globally, over the package itself, ignoring its shrinkwrap.)
  log(`npm install -g --prefix ${prefix} --ignore-scripts code-server@${CODE_SERVER_VERSION}`);
  await run(
    'npm',
    ['install', '--global', '--prefix', prefix, '--ignore-scripts', `code-server@${CODE_SERVER_VERSION}`, '--no-fund', '--no-audit', '--loglevel=warn'],
    { env, cwd: cacheRoot },
  );

  // 2. Install-script allow-lists as project .npmrc files, which npm 11 honours in
  //    project-scoped installs (where `--allow-scripts` is an error, EALLOWSCRIPTS).
  writeFileSync(join(packageDir, '.npmrc'), `# Written by scripts/code-server.mjs: install scripts npm 11 may run here.\nallow-scripts=${TOP_LEVEL_SCRIPTS.join(',')}\n`);
  writeFileSync(join(packageDir, 'lib', 'vscode', '.npmrc'), `# Written by scripts/code-server.mjs: install scripts npm 11 may run here.\nallow-scripts=${VSCODE_SCRIPTS.join(',')}\n`);
  log(`npm rebuild ${TOP_LEVEL_SCRIPTS.join(' ')}`);
  await run('npm', ['rebuild', ...TOP_LEVEL_SCRIPTS, '--loglevel=warn'], { env, cwd: packageDir });

  // 3. code-server's postinstall: `npm install --omit=dev` in lib/vscode (native modules,
  //    honouring its npm-shrinkwrap.json) and in lib/vscode/extensions, plus symlinks.
  log('running code-server postinstall (builds native modules, ~1 min)');
  await run('sh', ['./postinstall.sh'], {
    cwd: packageDir,
    env: { ...env, npm_config_user_agent: npmUserAgent() },
  });

  // 4. Smoke-check what the server needs at startup.
  const version = codeServerVersion();
  if (!version.startsWith(CODE_SERVER_VERSION)) throw new Error(`code-server --version printed ${JSON.stringify(version)}`);
  const vscodeModules = join(packageDir, 'lib', 'vscode', 'node_modules');
  const nativeChecks = ['@vscode/spdlog', 'node-pty', '@parcel/watcher', 'native-watchdog', 'kerberos'];
  execFileSync(process.execPath, ['-e', `for (const m of ${JSON.stringify(nativeChecks)}) require(require.resolve(m, { paths: [${JSON.stringify(vscodeModules)}] }));`], { env });
  if (!existsSync(join(vscodeModules, '@vscode', 'ripgrep', 'bin', 'rg'))) throw new Error('@vscode/ripgrep/bin/rg is missing after install');

  writeFileSync(paths.marker, JSON.stringify({ version: CODE_SERVER_VERSION, vscode: VSCODE_VERSION, installedAt: new Date().toISOString(), seconds: (Date.now() - started) / 1000, versionOutput: version }, null, 2) + '\n');
  log(`installed code-server ${CODE_SERVER_VERSION} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

/**
 * Makes sure code-server 4.100.3 is installed in the cache (installing it the first time,
 * ~1-2 min) and returns `paths`. Instant when already installed.
 */
export async function ensureCodeServer({ force = false } = {}) {
  if (!force && isCodeServerInstalled()) return paths;
  if (Number(process.versions.node.split('.')[0]) !== 20) {
    throw new Error(`code-server ${CODE_SERVER_VERSION} needs Node 20; this is Node ${process.version}`);
  }
  await withDirLock(paths.lock, async () => {
    if (!force && isCodeServerInstalled()) return; // another process finished it meanwhile
    await install();
  });
  return paths;
}

/** Throws a message that says how to fix it when chromium is not installed. */
export function requireChromium() {
  if (!existsSync(paths.chromium)) {
    throw new Error(`chromium not found at ${paths.chromium} — run: node scripts/code-server.mjs --deps`);
  }
  return paths.chromium;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const started = Date.now();
  try {
    if (args.includes('--print')) {
      console.log(JSON.stringify({ ...paths, installed: isCodeServerInstalled(), missingDebianPackages: missingDebianPackages() }, null, 2));
    } else if (args.includes('--deps')) {
      await ensureDebianPackages();
      log('Debian packages present: libkrb5-dev ripgrep chromium');
    } else {
      const wasInstalled = !args.includes('--force') && isCodeServerInstalled();
      await ensureCodeServer({ force: args.includes('--force') });
      log(`${wasInstalled ? 'already installed' : 'ready'}: ${paths.entry} (${((Date.now() - started) / 1000).toFixed(2)} s)`);
    }
  } catch (err) {
    log(`ERROR: ${err.message}`);
    process.exit(1);
  }
}
