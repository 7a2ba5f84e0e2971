// Real-VS-Code test harness: code-server 4.100.3 (= VS Code 1.100.3) on 127.0.0.1 with the
// INSTALLED .vsix, Debian's chromium driven by playwright-core, and an in-extension-host mocha
// runner. See test/vscode/README.md for the picture; test/vscode/run.mjs is the entry point.
//
// Everything the harness starts is stopped by PID (processes.mjs), also on failure and SIGINT.
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { ensureCodeServer, paths as codeServerPaths, requireChromium } from '../../scripts/code-server.mjs';
import { isAlive, killStragglers, onInterrupt, processesWithMarker, stop, track } from './processes.mjs';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * Where the UI tests write their screenshots: a build folder, never the committed
 * docs/screenshots/ (a test run must leave the clone as it was). `npm run screenshots`
 * (scripts/screenshots.mjs) copies the ones the README shows into docs/screenshots/.
 */
export const screenshotsDir = join(repoRoot, 'test-results', 'vscode', 'screenshots');

/** Flags that keep chromium off the network: only 127.0.0.1 resolves. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-default-apps',
  '--disable-domain-reliability',
  '--disable-breakpad',
  '--disable-crash-reporter',
  '--no-pings',
  // Defence in depth: any name but 127.0.0.1 fails to resolve, so nothing in the page (a
  // gallery query, a webview CDN) can reach the internet.
  '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',
];

/**
 * User settings for the test profile: no telemetry, no update or gallery checks, no
 * built-in extension that downloads schemas or package info, no welcome page.
 * Workspace trust is left on (tests of restricted mode need it).
 */
export const DEFAULT_SETTINGS = {
  'telemetry.telemetryLevel': 'off',
  'update.mode': 'none',
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'extensions.ignoreRecommendations': true,
  'workbench.enableExperiments': false,
  'workbench.settings.enableNaturalLanguageSearch': false,
  'workbench.startupEditor': 'none',
  'workbench.tips.enabled': false,
  'npm.fetchOnlinePackageInfo': false,
  'json.schemaDownload.enable': false,
  'typescript.disableAutomaticTypeAcquisition': true,
  'git.autofetch': false,
  'chat.commandCenter.enabled': false,
};

function log(message) {
  process.stderr.write(`[harness] ${message}\n`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value; throws `message` after `timeoutMs`. */
export async function waitFor(fn, { timeoutMs, intervalMs = 200, message }) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  while (Date.now() < deadline) {
    try {
      const value = await fn();
      if (value) return value;
    } catch (err) {
      lastError = err;
    }
    await sleep(intervalMs);
  }
  throw new Error(`${message} (waited ${(timeoutMs / 1000).toFixed(0)} s)${lastError ? `: ${lastError.message}` : ''}`);
}

/** A free TCP port on 127.0.0.1 (the OS picks it; there is a small race until we bind it). */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

/** process.env without what would confuse a nested code-server or npm. */
function cleanEnv() {
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    // npm_*: from an outer `npm run`. VSCODE_*/ELECTRON_RUN_AS_NODE: from a VS Code terminal;
    // code-server would e.g. hand the folder to that VS Code (VSCODE_IPC_HOOK_CLI) and exit.
    if (/^(npm_|VSCODE_)/i.test(key) || key === 'ELECTRON_RUN_AS_NODE') continue;
    env[key] = value;
  }
  return env;
}

function tail(file, bytes = 6000) {
  try {
    const text = readFileSync(file, 'utf8');
    return text.slice(-bytes);
  } catch {
    return '(no log)';
  }
}

function runToCompletion(cmd, args, { env, logFile, timeoutMs, name }) {
  return new Promise((resolveRun, reject) => {
    const fd = openSync(logFile, 'a');
    const child = spawn(cmd, args, { env, stdio: ['ignore', fd, fd], detached: true });
    closeSync(fd);
    track(child.pid, name, { group: true });
    const timer = setTimeout(() => {
      stop(child.pid).catch(() => {});
      reject(new Error(`${name} did not finish within ${timeoutMs / 1000} s; log: ${logFile}\n${tail(logFile)}`));
    }, timeoutMs);
    child.on('exit', async (code, sig) => {
      clearTimeout(timer);
      await stop(child.pid).catch(() => {});
      if (code === 0) resolveRun();
      else reject(new Error(`${name} failed (${sig ?? `exit ${code}`}); log: ${logFile}\n${tail(logFile)}`));
    });
  });
}

/**
 * Creates the folder layout of one test run under `root` (default: a fresh temp folder).
 * @returns {{ root: string, userDataDir: string, extensionsDir: string, browserDir: string, logsDir: string, workspace: string, home: string, tmp: string, configFile: string }}
 */
export function createSessionDirs(root) {
  const dir = root ?? mkdtempSync(join(tmpdir(), 'ai-memory-vscode-'));
  const dirs = {
    root: dir,
    userDataDir: join(dir, 'user-data'),
    extensionsDir: join(dir, 'extensions'),
    browserDir: join(dir, 'browser'),
    logsDir: join(dir, 'logs'),
    workspace: join(dir, 'workspace'),
    /** HOME, XDG dirs and TMPDIR of code-server and the extension host. */
    home: join(dir, 'home'),
    tmp: join(dir, 'tmp'),
    configFile: join(dir, 'code-server.yaml'),
  };
  for (const d of [dirs.userDataDir, dirs.extensionsDir, dirs.browserDir, dirs.logsDir, dirs.workspace, dirs.home, dirs.tmp]) mkdirSync(d, { recursive: true });
  return dirs;
}

/**
 * HOME, XDG_* and TMPDIR inside `base`: nothing a test run starts writes into the real home
 * (code-server's config.yaml, @vscode/deviceid's ~/.cache/Microsoft, chromium's ~/.config,
 * dconf…), the extension under test cannot find the developer's real data, and every
 * process carries `base` in its environment (how processes.mjs finds stragglers).
 */
export function isolatedHomeEnv(base, tmp = join(base, 'tmp')) {
  for (const d of ['.config', '.local/share', '.cache', '.local/state']) mkdirSync(join(base, d), { recursive: true });
  mkdirSync(tmp, { recursive: true });
  return {
    HOME: base,
    XDG_CONFIG_HOME: join(base, '.config'),
    XDG_DATA_HOME: join(base, '.local', 'share'),
    XDG_CACHE_HOME: join(base, '.cache'),
    XDG_STATE_HOME: join(base, '.local', 'state'),
    TMPDIR: tmp,
  };
}

/**
 * Installs a .vsix into the extensions dir the way a user would (`--install-extension`).
 * `force`: replace an installed copy of the same version (a profile that is reused).
 */
export async function installVsix({ vsix, dirs, env = {}, timeoutMs = 120_000, force = false }) {
  if (!existsSync(vsix)) throw new Error(`.vsix not found: ${vsix} — run: node scripts/package.mjs`);
  const started = Date.now();
  await runToCompletion(
    process.execPath,
    [codeServerPaths.entry, '--config', dirs.configFile, '--user-data-dir', dirs.userDataDir, '--extensions-dir', dirs.extensionsDir, '--disable-telemetry', '--install-extension', vsix, ...(force ? ['--force'] : [])],
    { env: { ...cleanEnv(), ...isolatedHomeEnv(dirs.home, dirs.tmp), ...env }, logFile: join(dirs.logsDir, 'install-extension.log'), timeoutMs, name: 'code-server --install-extension' },
  );
  return Date.now() - started;
}

/**
 * Writes the in-extension-host mocha runner (test/vscode/runner/) into the extensions dir as
 * `ai-memory-tools.test-runner-0.0.0`, with a copy of the compiled `out/` tree so the suites
 * sit inside an extension folder (see runner/extension.cjs for why).
 * @returns {string} the runner extension folder
 */
export function installTestRunner({
  dirs,
  outDir = join(repoRoot, 'out'),
  suitesDir = 'out/test/integration',
  pattern = '\\.test\\.js$',
  ui = 'bdd',
  timeoutMs = 60_000,
  grep,
  waitForTrustMs = 60_000,
  publisher = 'ai-memory-tools',
}) {
  const suitesAbs = join(repoRoot, suitesDir);
  if (!existsSync(suitesAbs)) {
    throw new Error(`No compiled integration suites at ${suitesAbs} — run: npm run compile`);
  }
  const folder = join(dirs.extensionsDir, `${publisher}.test-runner-0.0.0`);
  rmSync(folder, { recursive: true, force: true });
  mkdirSync(folder, { recursive: true });
  writeFileSync(
    join(folder, 'package.json'),
    JSON.stringify(
      {
        name: 'test-runner',
        displayName: 'Integration test runner (test runs only)',
        publisher,
        version: '0.0.0',
        private: true,
        engines: { vscode: '^1.100.0' },
        main: './extension.js',
        activationEvents: ['onStartupFinished'],
        // Runs in restricted mode too, so tests of an untrusted workspace are possible.
        capabilities: { untrustedWorkspaces: { supported: true }, virtualWorkspaces: true },
      },
      null,
      2,
    ),
  );
  cpSync(join(repoRoot, 'test', 'vscode', 'runner', 'extension.cjs'), join(folder, 'extension.js'));
  // A copy (not a symlink: VS Code would see the real path, outside the extension folder).
  cpSync(outDir, join(folder, relative(repoRoot, outDir)), { recursive: true });
  // Suites may require dev dependencies (fixtures); they do not need the `vscode` interceptor.
  symlinkSync(join(repoRoot, 'node_modules'), join(folder, 'node_modules'), 'dir');
  const mochaDir = dirname(fileURLToPath(import.meta.resolve('mocha/package.json')));
  writeFileSync(
    join(folder, 'runner-config.json'),
    JSON.stringify({ mochaPath: join(mochaDir, 'lib', 'mocha.cjs'), suitesDir, pattern, ui, timeout: timeoutMs, grep, waitForTrustMs }, null, 2),
  );
  return folder;
}

/**
 * Starts code-server on 127.0.0.1 with a free port.
 * @param {object} o
 * @param {ReturnType<typeof createSessionDirs>} o.dirs
 * @param {string} [o.workspace] folder to open (default: dirs.workspace)
 * @param {Record<string,string>} [o.env] extra env vars; they reach the extension host (and
 *   override the isolated HOME, XDG_ dirs and TMPDIR, e.g. to point HOME at a fixture)
 * @param {string[]} [o.extraArgs] e.g. ['--disable-workspace-trust']
 * @param {Record<string,unknown>} [o.settings] merged over DEFAULT_SETTINGS
 * @param {number} [o.startTimeoutMs] how long to wait for /healthz
 * @param {number} [o.port] try this port first, then the next ones (default: any free port)
 * @param {boolean} [o.writeSettings] write the user settings.json (default true; false keeps
 *   the one there, e.g. a demo profile the user changed)
 */
export async function startCodeServer({ dirs, workspace = dirs.workspace, env = {}, extraArgs = [], settings = {}, startTimeoutMs = 60_000, port: preferredPort, writeSettings = true }) {
  await ensureCodeServer();
  const userSettingsDir = join(dirs.userDataDir, 'User');
  mkdirSync(userSettingsDir, { recursive: true });
  if (writeSettings) writeFileSync(join(userSettingsDir, 'settings.json'), JSON.stringify({ ...DEFAULT_SETTINGS, ...settings }, null, 2));
  const logFile = join(dirs.logsDir, 'code-server.log');
  let nextPort = preferredPort;
  for (let attempt = 1; ; attempt++) {
    const port = nextPort ?? (await freePort());
    if (nextPort !== undefined) nextPort++;
    const args = [
      codeServerPaths.entry,
      '--bind-addr', `127.0.0.1:${port}`,
      '--auth', 'none',
      '--disable-telemetry',
      '--disable-update-check',
      '--disable-getting-started-override',
      '--ignore-last-opened',
      '--config', dirs.configFile,
      '--user-data-dir', dirs.userDataDir,
      '--extensions-dir', dirs.extensionsDir,
      ...extraArgs,
      workspace,
    ];
    const fd = openSync(logFile, 'a');
    const started = Date.now();
    // detached: its own process group, so stop() reaches the server, extension host, pty host…
    const child = spawn(process.execPath, args, {
      env: { ...cleanEnv(), ...isolatedHomeEnv(dirs.home, dirs.tmp), ...env },
      stdio: ['ignore', fd, fd],
      detached: true,
    });
    closeSync(fd);
    track(child.pid, 'code-server', { group: true });
    let exited = false;
    child.on('exit', () => (exited = true));
    const url = `http://127.0.0.1:${port}`;
    try {
      await waitFor(
        async () => {
          if (exited) throw new Error('code-server exited');
          const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) });
          return res.ok;
        },
        { timeoutMs: startTimeoutMs, message: `code-server did not answer on ${url}/healthz` },
      );
    } catch (err) {
      await stop(child.pid).catch(() => {});
      const text = tail(logFile);
      if (attempt < (preferredPort ? 20 : 3) && /EADDRINUSE/.test(text)) {
        log(`port ${port} was taken, retrying`);
        continue;
      }
      throw new Error(`${err.message}; log: ${logFile}\n${text}`);
    }
    return {
      pid: child.pid,
      port,
      url,
      workspace,
      logFile,
      startMs: Date.now() - started,
      /** Workbench URL for a folder. */
      folderUrl(folder = workspace) {
        const u = new URL(url + '/');
        u.searchParams.set('folder', folder);
        return u.toString();
      },
      stop: () => stop(child.pid),
    };
  }
}

/**
 * Launches /usr/bin/chromium through playwright-core (a BrowserServer, so we know its PID).
 * @param {{ headless?: boolean, extraArgs?: string[], viewport?: { width: number, height: number }, launchTimeoutMs?: number, tmpDir?: string }} [o]
 *   tmpDir: where the fresh profile, HOME and TMPDIR of the browser go
 */
export async function launchBrowser({ headless = true, extraArgs = [], viewport = { width: 1400, height: 900 }, launchTimeoutMs = 60_000, tmpDir } = {}) {
  const executablePath = requireChromium();
  // Playwright makes a fresh profile (--user-data-dir) in os.tmpdir(); point that, and the
  // browser's HOME and TMPDIR, into the session folder.
  const savedTmp = process.env.TMPDIR;
  if (tmpDir) process.env.TMPDIR = tmpDir;
  const browserEnv = tmpDir ? isolatedHomeEnv(join(tmpDir, 'home'), tmpDir) : {};
  let server;
  try {
    server = await chromium.launchServer({
      executablePath,
      headless,
      host: '127.0.0.1',
      args: [...CHROMIUM_ARGS, ...extraArgs],
      env: { ...cleanEnv(), ...browserEnv },
      timeout: launchTimeoutMs,
      // Our own handlers stop code-server too; playwright's would exit first.
      handleSIGINT: false,
      handleSIGTERM: false,
      handleSIGHUP: false,
    });
  } finally {
    if (savedTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmp;
  }
  const pid = server.process().pid;
  track(pid, 'chromium', { group: true });
  const browser = await chromium.connect(server.wsEndpoint(), { timeout: launchTimeoutMs });
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  return {
    pid,
    browser,
    context,
    page,
    async close() {
      await browser.close().catch(() => {});
      await Promise.race([server.close().catch(() => {}), sleep(10_000)]);
      if (isAlive(pid)) log(`chromium (pid ${pid}) still running after close(); killing it`);
      await stop(pid);
    },
  };
}

/**
 * Opens the workbench for `folder` and waits for `.monaco-workbench`.
 * @param {import('playwright-core').Page} page
 */
export async function openWorkbench(page, url, { timeoutMs = 90_000 } = {}) {
  const started = Date.now();
  await page.goto(url, { timeout: timeoutMs, waitUntil: 'domcontentloaded' });
  await page.locator('.monaco-workbench').first().waitFor({ state: 'visible', timeout: timeoutMs });
  return Date.now() - started;
}

/**
 * Answers the workspace-trust prompt if it shows within `waitMs`. The prompt comes some time
 * after the workbench: on a loaded machine (the next session starts while the previous one's
 * UI tests run) it took longer than 15 s, and the untrusted session's tests then ran under an
 * unanswered modal. The wait ends as soon as it shows.
 * @param {'trust'|'restricted'} choice
 * @returns {Promise<boolean>} whether a prompt was answered
 */
export async function answerTrustPrompt(page, choice = 'trust', { waitMs = 45_000 } = {}) {
  const label = choice === 'trust' ? /Yes, I trust the authors/i : /No, I don.t trust the authors/i;
  const button = page.locator('.monaco-dialog-box').getByRole('button', { name: label });
  try {
    await button.first().waitFor({ state: 'visible', timeout: waitMs });
  } catch {
    return false;
  }
  await button.first().click();
  await page.locator('.monaco-dialog-box').first().waitFor({ state: 'hidden', timeout: 10_000 }).catch(() => {});
  return true;
}

/** Opens the Command Palette (F1: Ctrl+Shift+P may be taken by the browser). */
export async function openCommandPalette(page) {
  const input = page.locator('.quick-input-widget input.input');
  for (let attempt = 0; attempt < 3; attempt++) {
    await page.locator('.monaco-workbench').first().focus().catch(() => {});
    await page.keyboard.press('F1');
    try {
      await input.waitFor({ state: 'visible', timeout: 5000 });
      return input;
    } catch {
      await page.keyboard.press('Escape');
    }
  }
  throw new Error('Command Palette did not open (F1)');
}

/**
 * Runs a command by its title as shown in the Command Palette, e.g. "AI Memory: Show Log".
 */
export async function runCommand(page, title, { timeoutMs = 15_000 } = {}) {
  // The palette can close again between opening and typing (focus taken by a notification
  // or a view as the window settles: CI saw fill() wait 30 s on a hidden input). Typing is
  // then tried again in a newly opened palette.
  for (let attempt = 1; ; attempt++) {
    const input = await openCommandPalette(page);
    try {
      await input.fill(`>${title}`, { timeout: 5000 });
      break;
    } catch (e) {
      if (attempt >= 3) throw e;
      await page.keyboard.press('Escape');
    }
  }
  const row = page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first();
  try {
    await row.waitFor({ state: 'visible', timeout: timeoutMs });
  } catch {
    const shown = await page.locator('.quick-input-list .monaco-list-row').allInnerTexts().catch(() => []);
    await page.keyboard.press('Escape');
    throw new Error(`Command "${title}" not in the Command Palette; it shows: ${JSON.stringify(shown.slice(0, 10))}`);
  }
  // Enter runs the focused row; make sure it is ours.
  const focused = page.locator('.quick-input-list .monaco-list-row.focused', { hasText: title });
  if ((await focused.count()) === 0) await row.click();
  else await page.keyboard.press('Enter');
  await page.locator('.quick-input-widget').waitFor({ state: 'hidden', timeout: timeoutMs }).catch(() => {});
}

/**
 * The status-bar entry of an extension. VS Code gives its element the id
 * `<publisher.name>.<item id>` (statusbarPart.ts); `text` narrows a match by content instead.
 * @param {import('playwright-core').Page} page
 * @param {{ extensionId?: string, id?: string, text?: string | RegExp }} which
 */
export function statusBarItem(page, { extensionId, id, text }) {
  if (extensionId && id) {
    const byId = page.locator(`.part.statusbar [id="${extensionId}.${id}"]`);
    return text ? byId.filter({ hasText: text }) : byId;
  }
  if (!text) throw new Error('statusBarItem needs extensionId+id or text');
  return page.locator('.part.statusbar .statusbar-item', { hasText: text });
}

/**
 * Screenshot of the page (or of one element) to `file`, creating the folder.
 * Don't pass a page `clip`: with this chromium (150) clipped page screenshots come out
 * without the panel (a composited layer); element screenshots and full pages are right.
 * For a smaller picture of the whole window use windowScreenshot().
 * @param {import('playwright-core').Page | import('playwright-core').Locator} pageOrLocator
 * @param {string} file
 * @param {object} [options] playwright screenshot options
 */
export async function screenshot(pageOrLocator, file, options = {}) {
  mkdirSync(dirname(file), { recursive: true });
  await pageOrLocator.screenshot({ ...options, path: file });
  return file;
}

/**
 * Screenshot of the whole workbench laid out at `width`×`height` (e.g. for docs), then the
 * previous window size is restored. `before` runs once the layout has settled at that size,
 * right before the shot (e.g. to hover something: a resize closes hovers).
 * @param {import('playwright-core').Page} page
 * @param {{ width?: number, height?: number, before?: () => Promise<unknown> }} [o]
 */
export async function windowScreenshot(page, file, { width = 900, height = 560, before } = {}) {
  const previous = page.viewportSize();
  await page.setViewportSize({ width, height });
  try {
    await page.waitForFunction(
      ([w, h]) => {
        const r = document.querySelector('.monaco-workbench')?.getBoundingClientRect();
        return r && Math.round(r.width) === w && Math.round(r.height) === h;
      },
      [width, height],
      { timeout: 10_000 },
    );
    // VS Code lays out in an animation frame after the resize; let two frames pass.
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    if (before) {
      await before();
      await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    }
    return await screenshot(page, file);
  } finally {
    if (previous) await page.setViewportSize(previous);
  }
}

/** Dismisses every notification toast (leftovers would cover the view in screenshots). */
/**
 * Right-clicks `row`, then clicks the context-menu item whose text is exactly `label`. A menu
 * ignores clicks for a moment after it opens (so the right-click's own mouse-up cannot pick
 * an item): the click is repeated until the menu closes. Returns the menu's item labels.
 */
export async function contextMenuAction(page, row, label) {
  await row.click({ button: 'right' });
  const menu = page.locator('.context-view.monaco-menu-container');
  await menu.waitFor({ state: 'visible', timeout: 10_000 });
  const labels = await menu.locator('.action-menu-item .action-label').allInnerTexts();
  const item = menu.locator('.action-menu-item', { hasText: new RegExp(`^${label.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) });
  await waitFor(
    async () => {
      if (await menu.isHidden()) return true;
      await item.click({ timeout: 2_000 });
      return menu.waitFor({ state: 'hidden', timeout: 1_000 }).then(() => true, () => false);
    },
    { timeoutMs: 15_000, intervalMs: 100, message: `the context menu to take the click on "${label}"` },
  );
  return labels;
}

export async function clearNotifications(page) {
  const toasts = page.locator('.notifications-toasts .notification-toast');
  if ((await toasts.count()) === 0) return;
  await runCommand(page, 'Notifications: Clear All Notifications');
  await toasts.first().waitFor({ state: 'detached', timeout: 10_000 }).catch(() => {});
}

/**
 * Opens a view container from the activity bar by its title (e.g. "AI Memory"), like a
 * click on its icon; a second click would close it, so it clicks only when it is not open.
 * @returns the side-bar part
 */
export async function openViewContainer(page, title) {
  const label = `.action-label[aria-label="${title}"]`;
  const icon = page.locator(`.activitybar .action-item ${label}`).first();
  await icon.waitFor({ state: 'visible', timeout: 30_000 });
  const item = page.locator(`.activitybar .action-item:has(${label})`).first();
  const sidebar = page.locator('.part.sidebar');
  const isOpen = async () => (await item.getAttribute('class'))?.includes('checked') && (await sidebar.isVisible());
  if (!(await isOpen())) await icon.click();
  await waitFor(isOpen, { timeoutMs: 10_000, message: `the "${title}" view container did not open` });
  return sidebar;
}

/** Drags the sash between the side bar and the editor so the side bar is `width` px wide. */
export async function setSidebarWidth(page, width) {
  const sidebar = page.locator('.part.sidebar');
  const box = await sidebar.boundingBox();
  if (!box || Math.abs(box.width - width) < 2) return;
  const y = box.y + box.height / 2;
  const x = box.x + box.width;
  await page.mouse.move(x - 1, y);
  await page.mouse.down();
  await page.mouse.move(x + (width - box.width) / 2, y, { steps: 4 });
  await page.mouse.move(box.x + width, y, { steps: 4 });
  await page.mouse.up();
  await waitFor(async () => Math.abs(((await sidebar.boundingBox())?.width ?? 0) - width) < 8, { timeoutMs: 5_000, message: `side bar did not resize to ${width}px` });
}

/**
 * Hovers `locator` and returns the text of the hover (tooltip) widget that appears; the
 * hover stays open until the mouse moves.
 */
export async function hoverText(page, locator, { timeoutMs = 10_000 } = {}) {
  const hover = page.locator('.monaco-hover:not(.hidden)').last();
  for (let attempt = 0; attempt < 3; attempt++) {
    await page.mouse.move(0, 0);
    await locator.hover();
    try {
      await hover.waitFor({ state: 'visible', timeout: timeoutMs / 3 });
      return await hover.innerText();
    } catch {
      /* moved too early or the hover was suppressed: try again */
    }
  }
  throw new Error('no hover appeared');
}

/**
 * The log files of an extension's output channel across all extension hosts of a session
 * (one per workbench window), e.g. extensionLogFiles(dirs, 'ai-memory-tools.ai-memory-backup', 'AI Memory').
 */
export function extensionLogFiles(dirs, extensionId, channel) {
  return extensionHostLogs(dirs).filter((f) => f.endsWith(join(extensionId, `${channel}.log`)));
}

/** Waits for the JSON result file the in-host runner writes, or throws after `timeoutMs`. */
export async function waitForResultFile(file, { timeoutMs = 180_000 } = {}) {
  await waitFor(() => existsSync(file), { timeoutMs, intervalMs: 250, message: `No test result from the extension host at ${file}` });
  return JSON.parse(readFileSync(file, 'utf8'));
}

/** Extension-host log files of a session (for artifacts and diagnostics). */
export function extensionHostLogs(dirs) {
  const out = [];
  const walk = (d) => {
    if (!existsSync(d)) return;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const full = join(d, e.name);
      if (e.isDirectory()) walk(full);
      else if (/\.log$/.test(e.name)) out.push(full);
    }
  };
  walk(join(dirs.userDataDir, 'logs'));
  return out.sort((a, b) => statSync(a).mtimeMs - statSync(b).mtimeMs);
}

let current;
/** The session run.mjs started; UI test files use it. */
export function currentSession() {
  if (!current) throw new Error('No VS Code session: run UI tests through node test/vscode/run.mjs');
  return current;
}

/** Makes `session` the one currentSession() returns (for sessions started with makeCurrent: false). */
export function useSession(session) {
  current = session;
}

/**
 * Starts a complete session: installs the .vsix (and optionally the test runner) into a fresh
 * profile, starts code-server, opens the workbench in chromium, answers the trust prompt.
 * @param {object} o
 * @param {string} o.vsix
 * @param {string} [o.workspace]
 * @param {Record<string,string>} [o.env] passed to code-server and so to the extension host
 * @param {string[]} [o.codeServerArgs]
 * @param {Record<string,unknown>} [o.settings]
 * @param {false | Omit<Parameters<typeof installTestRunner>[0], 'dirs'>} [o.testRunner] runner options (grep, ui, timeoutMs…), or false
 * @param {'trust'|'restricted'|'none'} [o.trust] answer to the workspace-trust prompt ('none': leave it open)
 * @param {boolean} [o.headless]
 * @param {string} [o.root] session folder (default: a fresh temp folder, removed by removeDirs())
 * @param {boolean} [o.keepDirs] keep the temp folder on SIGINT
 * @param {boolean} [o.makeCurrent] make it currentSession() once started (default true; false
 *   to start the next session while another one's tests run, then useSession())
 * @param {(dirs: ReturnType<typeof createSessionDirs>) => Promise<{ env?: Record<string,string>, settings?: Record<string,unknown>, workspace?: string, codeServerArgs?: string[] } | void>} [o.prepare]
 *   runs once the session folders exist, before code-server starts (create fixtures in
 *   dirs.home / dirs.workspace); what it returns is merged into the options above
 */
export async function startSession({ vsix, workspace, env = {}, codeServerArgs = [], settings = {}, testRunner = false, trust = 'trust', headless = true, root, keepDirs = false, prepare, makeCurrent = true } = {}) {
  const timings = {};
  const t0 = Date.now();
  const dirs = createSessionDirs(root);
  const session = { dirs, timings, codeServer: undefined, browser: undefined, page: undefined, resultFile: undefined };
  const removeInterruptHook = onInterrupt(async () => {
    await session.stop();
    if (!keepDirs) session.removeDirs();
  });
  session.stop = async () => {
    removeInterruptHook();
    if (current === session) current = undefined;
    const errors = [];
    if (session.browser) await session.browser.close().catch((e) => errors.push(e));
    if (session.codeServer) await session.codeServer.stop().catch((e) => errors.push(e));
    session.browser = session.codeServer = undefined;
    // Anything still carrying the session folder in its environment escaped the tree.
    const stragglers = await killStragglers(dirs.root);
    if (stragglers.length) log(`killed ${stragglers.length} process(es) that outlived their parent: ${stragglers.join(', ')}`);
    const left = processesWithMarker(dirs.root);
    if (left.length) errors.push(new Error(`processes of this session still running: ${left.join(', ')}`));
    if (errors.length) throw new Error(errors.map((e) => e.message).join('; '));
  };
  /** Deletes the session's temp folder (profile, extensions, workspace, logs). */
  session.removeDirs = () => {
    if (!root) rmSync(dirs.root, { recursive: true, force: true });
  };
  try {
    let t = Date.now();
    await ensureCodeServer();
    requireChromium();
    timings.ensureCodeServerMs = Date.now() - t;

    if (prepare) {
      const extra = (await prepare(dirs)) ?? {};
      env = { ...env, ...extra.env };
      settings = { ...settings, ...extra.settings };
      codeServerArgs = [...codeServerArgs, ...(extra.codeServerArgs ?? [])];
      workspace = extra.workspace ?? workspace;
    }

    const runEnv = { ...env };
    if (testRunner) {
      // Before the .vsix: VS Code registers unpacked folders only while it creates the
      // extensions dir's extensions.json, which the first --install-extension does.
      const waitForTrust = trust === 'trust' && !codeServerArgs.includes('--disable-workspace-trust');
      session.runnerFolder = installTestRunner({ dirs, ...testRunner, waitForTrustMs: waitForTrust ? testRunner.waitForTrustMs ?? 60_000 : 0 });
      session.resultFile = join(dirs.root, 'integration-result.json');
      runEnv.AI_MEMORY_TEST_RESULT = session.resultFile;
      // The extension adds its test seams (answering modal confirmations) to its API only then.
      runEnv.AI_MEMORY_BACKUP_TEST_API = '1';
    }
    timings.installVsixMs = await installVsix({ vsix, dirs });

    t = Date.now();
    session.codeServer = await startCodeServer({ dirs, workspace: workspace ?? dirs.workspace, env: runEnv, extraArgs: codeServerArgs, settings });
    timings.codeServerReadyMs = Date.now() - t;

    t = Date.now();
    session.browser = await launchBrowser({ headless, tmpDir: dirs.browserDir });
    session.page = session.browser.page;
    timings.browserLaunchMs = Date.now() - t;

    timings.workbenchMs = await openWorkbench(session.page, session.codeServer.folderUrl());
    timings.startToWorkbenchMs = Date.now() - t0;
    const trustDisabled = codeServerArgs.includes('--disable-workspace-trust');
    if (trust !== 'none' && !trustDisabled) session.trustPromptAnswered = await answerTrustPrompt(session.page, trust);
    if (makeCurrent) current = session;
    return session;
  } catch (err) {
    removeInterruptHook();
    await session.stop().catch(() => {});
    err.session = session;
    throw err;
  }
}
