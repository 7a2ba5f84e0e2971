/**
 * Off-machine copies in VS Code: "Set Up Off-Machine Copies…" (a mirror folder or S3-compatible
 * storage; the connection is tested before anything is saved), a copy to every target after
 * each backup, retries with backoff, and the state the tree and the status bar show.
 *
 * Where things are kept: the target's description (bucket/prefix, endpoint, region,
 * path-style, or the folder) in globalState; the access key and secret in SecretStorage
 * only — never in settings.json, never in the log, never on the engine's command line (the
 * engine gets them in its environment).
 */
import * as os from 'node:os';
import * as vscode from 'vscode';
import { pidAlive } from '../core/store/atomicFs';
import { readRemoteState, type RemoteState, type TargetState } from '../core/remote/remoteState';
import { MIRROR_ELSEWHERE, MirrorTarget } from '../core/remote/mirrorTarget';
import { parseRemote, remoteId } from '../core/remote/remoteSpec';
import type { RetentionPolicy } from '../core/store/retention';
import { Disposable } from '../util/disposable';
import { EngineError, type EngineClient, type PushOutcomeJson, type RemoteArgs } from './engineClient';
import { explainFailure, failureText } from './errorText';
import { openSettings } from './settings';

interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface TargetConfig {
  /** Stable key (also of its secret). */
  key: string;
  kind: 's3' | 'folder';
  /** `s3://bucket/prefix` or the folder. */
  remote: string;
  endpoint?: string;
  region?: string;
  pathStyle?: boolean;
}

/** What the setup command takes as its argument to skip the prompts (scripts, tests). */
export interface SetupInput {
  remote: string;
  endpoint?: string;
  region?: string;
  pathStyle?: boolean;
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
}

export type CopyState = 'local only' | 'copying' | 'copied' | 'failed';

const TARGETS_KEY = 'aiMemory.remote.targets';
const SECRET_PREFIX = 'aiMemory.remote.secret.';

export function copyEnabled(): boolean {
  return vscode.workspace.getConfiguration('aiMemory').get<boolean>('remote.copyAfterBackup', true);
}

export class RemoteCopies extends Disposable {
  private readonly _onDidChange = this._register(new vscode.EventEmitter<void>());
  readonly onDidChange = this._onDidChange.event;
  state: RemoteState = { targets: {} };
  /** Targets a copy is running to right now (in this window). */
  private copying = new Set<string>();
  private running: Promise<void> | undefined;
  private again: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private dir: string | undefined;
  private lastNotified = '';

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly engine: EngineClient,
    private readonly log: vscode.LogOutputChannel,
    /** The local retention policy: the target follows it (store/retention.ts, remote/sync.ts). */
    private readonly policy: () => RetentionPolicy,
    /** Names in the local backup folder: a snapshot there is not "remote only", even before the next copy updates the state. */
    private readonly localNames: () => Set<string> = () => new Set(),
    /** The backup folder now (a mirror folder must not be it, nor inside it). */
    private readonly backupFolder: () => string | undefined = () => undefined,
  ) {
    super();
    this._register({ dispose: () => this.retryTimer && clearTimeout(this.retryTimer) });
  }

  targets(): TargetConfig[] {
    return this.context.globalState.get<TargetConfig[]>(TARGETS_KEY) ?? [];
  }

  /** The backup folder whose state file we read (follows the catalog). */
  async setFolder(dir: string | undefined): Promise<void> {
    this.dir = dir;
    await this.reload();
  }

  async reload(): Promise<void> {
    this.state = this.dir ? await readRemoteState(this.dir) : { targets: {} };
    this._onDidChange.fire();
    this.planRetry();
  }

  private stateOf(t: TargetConfig): TargetState | undefined {
    return this.state.targets[remoteId(t.remote, t.endpoint, os.homedir())];
  }

  private labelOf(t: TargetConfig): string {
    if (t.kind === 'folder') return t.remote;
    const spec = parseRemote(t.remote, os.homedir());
    if (spec.kind !== 's3') return t.remote;
    return `s3://${spec.bucket}/${spec.prefix}${t.endpoint ? ` at ${new URL(t.endpoint).host}` : ''}`;
  }

  /** A snapshot's copy state over every target. */
  copyState(name: string): CopyState | undefined {
    const ts = this.targets();
    if (!ts.length) return undefined;
    let all = true;
    for (const t of ts) {
      const s = this.stateOf(t);
      // A run in another window (or the CLI) counts while its process lives; a killed one left 'copying' behind.
      if (this.copying.has(t.key) || (s?.status === 'copying' && s.pid !== undefined && pidAlive(s.pid))) return 'copying';
      if (!s?.copied.includes(name)) all = false;
    }
    if (all) return 'copied';
    return this.failures().length ? 'failed' : 'local only';
  }

  /**
   * Targets whose last copy failed, with the error in VS Code's words: the state file holds
   * the engine's (a copy the CLI ran writes it too), whose hints name --profile and `list --remote`.
   */
  failures(): { key: string; target: string; message: string; hint?: string; nextRetry?: string }[] {
    const out: { key: string; target: string; message: string; hint?: string; nextRetry?: string }[] = [];
    for (const t of this.targets()) {
      const s = this.stateOf(t);
      if (s?.status !== 'failed' || this.copying.has(t.key)) continue;
      const { message, hint } = explainFailure(s.error ?? { code: 'IO', message: 'failed' }, { operation: 'copy' });
      out.push({ key: t.key, target: s.label, message, hint, nextRetry: s.next_retry });
    }
    return out;
  }

  /** Complete snapshots on a target that the local folder does not hold. */
  remoteOnly(): { name: string; bytes: number; target: TargetConfig }[] {
    const seen = this.localNames();
    const out: { name: string; bytes: number; target: TargetConfig }[] = [];
    for (const t of this.targets()) {
      for (const r of this.stateOf(t)?.remote_only ?? []) {
        if (seen.has(r.name)) continue;
        seen.add(r.name);
        out.push({ ...r, target: t });
      }
    }
    return out.sort((a, b) => (a.name < b.name ? 1 : -1));
  }

  /** `creds`: keys not saved yet (the connection test of a setup), used instead of SecretStorage's. */
  private async args(t: TargetConfig, creds?: S3Credentials): Promise<RemoteArgs> {
    const env: Record<string, string> = {
      // Only SecretStorage: nothing from the user's AWS environment or files reaches the engine.
      AWS_ACCESS_KEY_ID: '',
      AWS_SECRET_ACCESS_KEY: '',
      AWS_SESSION_TOKEN: '',
      AWS_PROFILE: '',
      AWS_ENDPOINT_URL: '',
      AWS_ENDPOINT_URL_S3: '',
      AWS_REGION: '',
      AWS_DEFAULT_REGION: '',
      AWS_CONFIG_FILE: os.devNull,
      AWS_SHARED_CREDENTIALS_FILE: os.devNull,
    };
    if (t.kind === 's3') {
      const raw = creds ? undefined : await this.context.secrets.get(SECRET_PREFIX + t.key);
      const c = creds ?? (raw ? (JSON.parse(raw) as S3Credentials) : undefined);
      if (c) {
        env.AWS_ACCESS_KEY_ID = c.accessKeyId;
        env.AWS_SECRET_ACCESS_KEY = c.secretAccessKey;
        env.AWS_SESSION_TOKEN = c.sessionToken ?? '';
      }
    }
    return { remote: t.remote, endpoint: t.endpoint, region: t.region, pathStyle: t.pathStyle, env };
  }

  /**
   * Copies the folder to every target; failures are reported, never thrown. One run at a
   * time: a request while one runs is done again right after it (the running one may have
   * listed the folder before the snapshot that asked for this copy existed).
   */
  copyAll(dir: string, reason: 'backup' | 'retry' | 'manual'): Promise<void> {
    if (this.running) {
      this.again ??= this.running.then(() => {
        this.again = undefined;
        return this.copyAll(dir, reason);
      });
      return this.again;
    }
    this.running = this.doCopyAll(dir, reason).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async doCopyAll(dir: string, reason: string): Promise<void> {
    const targets = this.targets();
    if (!targets.length) return;
    this.dir = dir;
    for (const t of targets) {
      this.copying.add(t.key);
      this._onDidChange.fire();
      let r: PushOutcomeJson | undefined;
      try {
        this.log.info(`copy (${reason}) to ${this.labelOf(t)}`);
        r = await this.engine.push({ dir, policy: this.policy(), ...(await this.args(t)) }, { onWarning: (w) => this.log.warn(w) });
      } catch (e) {
        const err = e instanceof EngineError ? e : new EngineError('IO', e instanceof Error ? e.message : String(e));
        r = { status: 'failed', target: this.labelOf(t), error: { code: err.code, message: err.message, hint: err.hint } };
      } finally {
        this.copying.delete(t.key);
      }
      if (r.status === 'copied') {
        this.log.info(`copy to ${r.target}: ${r.uploaded?.length ?? 0} uploaded, ${r.present?.length ?? 0} already there${r.deleted?.length ? `, ${r.deleted.length} old deleted` : ''}`);
        for (const n of r.notes ?? []) this.log.warn(`copy to ${r.target}: ${n}`);
        if (r.unreadable?.length) this.log.warn(`copy to ${r.target}: ${r.unreadable.length} snapshot(s) there kept by retention, their manifest unreadable there (${r.unreadable[0].name}: ${r.unreadable[0].message}); can these credentials read objects (GetObject)?`);
        this.lastNotified = '';
      } else {
        const { message: msg, hint } = explainFailure(r.error ?? { code: 'IO', message: 'failed' }, { operation: 'copy' });
        this.log.error(`copy to ${r.target} failed: ${msg}${hint ? ` — ${hint}` : ''}${r.next_retry ? ` (retried after ${r.next_retry})` : ''}`);
        if (reason === 'manual' || msg !== this.lastNotified) {
          this.lastNotified = msg;
          void this.notifyFailure(r.target, msg, hint);
        }
      }
    }
    await this.reload();
  }

  private async notifyFailure(target: string, message: string, hint: string | undefined): Promise<void> {
    const picked = await vscode.window.showWarningMessage(`AI Memory: the off-machine copy to ${target} failed (your local backup is fine): ${failureText(message, hint)}`, 'Retry', 'Show Log', 'Open Settings');
    if (picked === 'Retry') await this.retryNow();
    else if (picked === 'Show Log') this.log.show();
    else if (picked === 'Open Settings') await openSettings();
  }

  async retryNow(): Promise<void> {
    if (this.dir) await this.copyAll(this.dir, 'manual');
  }

  /** A timer for the earliest retry any failed target asked for (the backoff lives in the state file). */
  private planRetry(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (!copyEnabled() || !this.dir) return;
    const times = this.failures().map((f) => (f.nextRetry ? Date.parse(f.nextRetry) : NaN)).filter(Number.isFinite);
    if (!times.length) return;
    const wait = Math.max(5_000, Math.min(...times) - Date.now());
    this.retryTimer = setTimeout(() => {
      if (this.dir) void this.copyAll(this.dir, 'retry');
    }, Math.min(wait, 2 ** 31 - 1));
  }

  /** "Set Up Off-Machine Copies…": asks (or takes `input`), tests the connection, then saves. Returns the target or undefined when cancelled/failed. */
  async setUp(input?: SetupInput): Promise<TargetConfig | undefined> {
    let s = input;
    if (!s) s = await this.ask();
    if (!s) return undefined;
    let spec;
    try {
      spec = parseRemote(s.remote, os.homedir());
    } catch (e) {
      void vscode.window.showErrorMessage(`AI Memory: ${explainFailure(e, { operation: 'setUpCopy' }).text}`);
      return undefined;
    }
    if (s.endpoint && /^[a-z]+:\/\/[^/]*@/i.test(s.endpoint)) {
      void vscode.window.showErrorMessage('AI Memory: the endpoint must not hold a user name or password; enter the keys in their own fields.');
      return undefined;
    }
    const cfg: TargetConfig = {
      key: Buffer.from(`${s.remote}|${s.endpoint ?? ''}`).toString('base64url'),
      kind: spec.kind,
      remote: spec.kind === 'folder' ? spec.dir : `s3://${spec.bucket}/${spec.prefix}`,
      endpoint: s.endpoint || undefined,
      region: s.region || undefined,
      pathStyle: s.pathStyle || undefined,
    };
    // The backup folder as its own mirror is no copy off the machine, and its retention there
    // would delete the folder's own snapshots (remote/mirrorTarget.ts): refused before it is saved.
    const local = this.backupFolder() ?? this.dir;
    const overlap = cfg.kind === 'folder' && local ? await new MirrorTarget(cfg.remote).overlapWith(local) : undefined;
    if (overlap) {
      this.log.warn(`set up ${cfg.remote} refused: ${overlap === 'same' ? 'it is the backup folder' : 'it is inside the backup folder'} ${local}`);
      void vscode.window.showErrorMessage(
        `AI Memory: ${cfg.remote} ${overlap === 'same' ? 'is the backup folder itself' : 'is inside the backup folder'} (${local}): a copy there is no copy off this machine. ${MIRROR_ELSEWHERE} Nothing was saved.`,
      );
      return undefined;
    }
    if (cfg.kind === 's3') {
      if (!s.accessKeyId || !s.secretAccessKey) {
        void vscode.window.showErrorMessage('AI Memory: an access key id and a secret access key are needed for S3-compatible storage.');
        return undefined;
      }
    }
    // The keys are tested first and saved only when the test passed: a mistyped secret when
    // setting up a target again never replaces the keys that work (nor serves a copy meanwhile).
    const creds: S3Credentials | undefined = cfg.kind === 's3' ? { accessKeyId: s.accessKeyId as string, secretAccessKey: s.secretAccessKey as string, sessionToken: s.sessionToken } : undefined;
    try {
      const r = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `AI Memory: testing ${cfg.remote}` }, async () => this.engine.probe(await this.args(cfg, creds)));
      this.log.info(`set up ${r.target}: ${r.snapshots.filter((x) => x.complete).length} snapshots there${r.delete_refused ? `; deletes refused: ${r.delete_refused}` : ''}`);
      if (r.delete_refused) void vscode.window.showWarningMessage(`AI Memory: ${r.target} accepts copies but refuses deletes, so old snapshots there are never removed: ${r.delete_refused}`);
    } catch (e) {
      const err = e instanceof EngineError ? e : new EngineError('IO', String(e));
      const { text } = explainFailure(err, { operation: 'setUpCopy' });
      this.log.error(`set up ${cfg.remote} failed: ${text}`);
      void vscode.window.showErrorMessage(`AI Memory: the connection test failed; nothing was saved. ${text}`, 'Show Log').then((a) => a && this.log.show());
      return undefined;
    }
    if (creds) await this.context.secrets.store(SECRET_PREFIX + cfg.key, JSON.stringify(creds));
    await this.context.globalState.update(TARGETS_KEY, [...this.targets().filter((t) => t.key !== cfg.key), cfg]);
    void vscode.window.showInformationMessage(`AI Memory: every backup is now also copied to ${cfg.remote}.`);
    this._onDidChange.fire();
    if (this.dir) void this.copyAll(this.dir, 'manual');
    return cfg;
  }

  async remove(key: string): Promise<void> {
    await this.context.secrets.delete(SECRET_PREFIX + key);
    await this.context.globalState.update(TARGETS_KEY, this.targets().filter((t) => t.key !== key));
    this._onDidChange.fire();
  }

  private async ask(): Promise<SetupInput | undefined> {
    type Pick = vscode.QuickPickItem & { id: string };
    const items: Pick[] = [
      { id: 's3', label: '$(cloud) S3-compatible storage', detail: 'AWS S3, Cloudflare R2, Backblaze B2, MinIO, Wasabi' },
      { id: 'folder', label: '$(folder) Mirror folder', detail: 'A NAS mount, or a folder Dropbox, OneDrive, iCloud or Syncthing syncs' },
      ...this.targets().map((t) => ({ id: `remove:${t.key}`, label: `$(trash) Stop copying to ${t.remote}` })),
    ];
    const kind = await vscode.window.showQuickPick(items, { title: 'AI Memory: Set Up Off-Machine Copies', placeHolder: 'Where should copies of every snapshot go?' });
    if (!kind) return undefined;
    if (kind.id.startsWith('remove:')) {
      await this.remove(kind.id.slice(7));
      return undefined;
    }
    if (kind.id === 'folder') {
      const pick = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, openLabel: 'Copy Snapshots Here' });
      return pick?.[0] ? { remote: pick[0].fsPath } : undefined;
    }
    const title = 'AI Memory: S3-compatible storage';
    const remote = await vscode.window.showInputBox({ title, prompt: 'Bucket and prefix', placeHolder: 's3://my-bucket/ai-memory/laptop', validateInput: (v) => (/^s3:\/\/[^/]+/.test(v) ? undefined : 'Write it as s3://bucket/prefix') });
    if (!remote) return undefined;
    const endpoint = await vscode.window.showInputBox({ title, prompt: 'Endpoint (empty for AWS S3)', placeHolder: 'https://<account>.r2.cloudflarestorage.com · https://s3.<region>.backblazeb2.com · http://nas:9000', validateInput: (v) => (!v ? undefined : /^https?:\/\/[^/]*@/.test(v) ? 'No user name or password here: the keys are asked for next' : /^https?:\/\/\S+$/.test(v) ? undefined : 'An http(s):// URL, or empty') });
    if (endpoint === undefined) return undefined;
    const region = await vscode.window.showInputBox({ title, prompt: 'Region', value: 'us-east-1', placeHolder: 'us-east-1 (R2: auto; B2: e.g. us-west-004)' });
    if (region === undefined) return undefined;
    const style = await vscode.window.showQuickPick([{ label: 'Virtual-hosted (bucket.host)', id: false }, { label: 'Path-style (host/bucket) — MinIO and most self-hosted servers', id: true }], { title, placeHolder: 'Addressing style' });
    if (!style) return undefined;
    const accessKeyId = await vscode.window.showInputBox({ title, prompt: 'Access key id', ignoreFocusOut: true });
    if (!accessKeyId) return undefined;
    const secretAccessKey = await vscode.window.showInputBox({ title, prompt: 'Secret access key (kept in VS Code\'s secret storage)', password: true, ignoreFocusOut: true });
    if (!secretAccessKey) return undefined;
    return { remote, endpoint: endpoint || undefined, region: region || undefined, pathStyle: style.id, accessKeyId, secretAccessKey };
  }

  /** Downloads a remote-only snapshot into the backup folder (checked by the engine); returns its path. */
  async download(name: string, target: TargetConfig, dir: string): Promise<string> {
    const r = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `AI Memory: downloading ${name}`, cancellable: true }, async (_p, token) =>
      this.engine.pull({ dir, snapshot: name, ...(await this.args(target)) }, { token }),
    );
    const s = r.snapshots[0];
    this.log.info(`downloaded ${s.name} from ${target.remote}: ${s.bytes} bytes, sha256 ${s.sha256} matches its manifest${s.integrity ? `, ${s.integrity}` : ''}`);
    return s.path;
  }
}
