/**
 * An off-machine place for snapshots: a mirror folder (mirrorTarget.ts) or an S3-compatible
 * bucket and prefix (s3Target.ts). Names on a target are the local file names, so a
 * downloaded folder restores with ai-memory's own CLI too.
 *
 * This room (src/core/remote/) holds no vscode; it may import src/core/{common,store,ops}.
 */
import { BackupError } from '../common/errors';

export interface RemoteEntry {
  /** Name under the target's folder/prefix (no slashes). */
  name: string;
  size: number;
  etag?: string;
  /** When it was last written there (the target's clock), when the target says. */
  modifiedMs?: number;
}

export interface UploadExpect {
  bytes: number;
  sha256: string;
}

export interface UploadOptions {
  signal?: AbortSignal;
  onBytes?: (done: number, total: number) => void;
  /** Called with a multipart upload's id when it starts and with undefined when it ended (either way), so a killed run can abandon it next time. */
  onMultipart?: (u: { key: string; uploadId: string } | undefined) => Promise<void>;
  /** Something worth saying about the copy that is no failure (a mirror drive that keeps no permissions). */
  onNote?: (note: string) => void;
}

/**
 * What the target says of an object it has just written, as its listing says it (the ETag,
 * or the mirror's mtime): the object's stamp (sync.ts stampOf). Nothing when it says neither.
 */
export type Written = { etag?: string; modifiedMs?: number } | void;

export interface DownloadOptions {
  signal?: AbortSignal;
  onBytes?: (done: number, total: number) => void;
  /** The most bytes the object may have (default: no limit). */
  maxBytes?: number;
}

/** An object larger than its manifest says, refused before more of it is downloaded. */
export function largerThanManifest(where: string, seen: number, orMore: boolean, maxBytes: number): BackupError {
  return new BackupError('SIZE_MISMATCH', `${where} is larger than its manifest says (${seen} bytes${orMore ? ' or more' : ''}; the manifest: ${maxBytes}); it was not downloaded further and nothing was kept.`, {
    hint: 'Pull another snapshot (`list --remote …`).',
  });
}

export interface RemoteTarget {
  /** Stable identity for the state file (no credentials). */
  readonly id: string;
  /** For messages: `s3://bucket/prefix at host`, or the folder. */
  readonly label: string;
  readonly kind: 's3' | 'folder';
  /** Every object directly under the folder/prefix — one paginated LIST. */
  list(signal?: AbortSignal): Promise<RemoteEntry[]>;
  /**
   * Uploads a local file under `name`, checking on the way that what was sent has the
   * manifest's sha256 and byte count, and afterwards the size (and ETag) the server reports.
   * Nothing is left under `name` when a check fails before the upload completes.
   */
  uploadFile(name: string, path: string, expect: UploadExpect, opts?: UploadOptions): Promise<Written>;
  uploadBytes(name: string, data: Uint8Array, signal?: AbortSignal): Promise<Written>;
  /** The object's bytes; more than `maxBytes` (default: no limit) is refused unread (MANIFEST_INVALID). Manifests are read with SMALL_FILE_CAP. */
  readBytes(name: string, signal?: AbortSignal, maxBytes?: number): Promise<Buffer>;
  /**
   * Streams `name` into the file `destPath` (created by the caller), returning its size and
   * sha256. More than `maxBytes` (what its manifest says) is refused (SIZE_MISMATCH) after its
   * length or the first bytes past it, so an object far larger than its manifest (damage,
   * anyone with write access there) is not downloaded whole — filling this disk — first.
   */
  downloadTo(name: string, destPath: string, opts?: DownloadOptions): Promise<{ bytes: number; sha256: string }>;
  /** Deletes names; a name the server refuses is reported, never ignored. */
  remove(names: string[], signal?: AbortSignal): Promise<{ deleted: string[]; refused: { name: string; message: string }[] }>;
  /**
   * Refuses a target that is no copy off the local backup folder `localDir`: a mirror that is
   * that very folder (by another path: a link, a bind mount) or a folder inside it on the same
   * disk. Called before anything is sent or deleted.
   */
  refuseLocal?(localDir: string): Promise<void>;
  /** Abandons a multipart upload a killed run left behind (best effort). */
  abandon?(u: { key: string; uploadId: string }, signal?: AbortSignal): Promise<void>;
}
