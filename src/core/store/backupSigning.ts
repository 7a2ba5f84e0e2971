/**
 * Which key a backup signs its manifest with, decided before anything is read or written
 * (store/signing.ts has the format, store/operatorKey.ts the key locations).
 *
 *  - `--sign-key PATH` / the extension's `aiMemory.backup.signingKeyPath`: that key, and a
 *    key that cannot be used (readable by others, wrong size) fails the backup — the user
 *    asked for a signature.
 *  - otherwise the operator key where ai-memory 1.0 keeps it. One that cannot be used does
 *    not stop the backup (an unsigned backup beats none); the manifest goes out unsigned and
 *    the warning carries the `chmod` to run — ai-memory's own backup does the same under its
 *    standard posture.
 *  - no key: unsigned, and the output says what ai-memory 1.0's restore will then need.
 */
import type { Manifest } from './manifest';
import { findOperatorSigningKey, loadSigningKeyFile, processKeyContext, resolveOperatorPublicKey, type KeyContext, type OperatorPublicKey, type OperatorSigningKey } from './operatorKey';
import { payloadFor, signManifest } from './signing';

export interface SigningOptions {
  /** An explicit key file (CLI --sign-key, extension setting). */
  keyPath?: string;
  /** A key in hand (tests); null: never sign. */
  key?: OperatorSigningKey | null;
  /** The public key restore verifies against here (undefined: resolved as ai-memory does; null: none). */
  anchor?: OperatorPublicKey | null;
  keyContext?: KeyContext;
}

export interface SigningOutcome {
  signed: boolean;
  /** `sha256:<16 hex>` of the key that signed. */
  signer?: string;
  keyPath?: string;
  /** Why it is unsigned, and what ai-memory 1.0's restore will need (for an unsigned one). */
  warning?: string;
}

export interface SigningPlan {
  key: OperatorSigningKey | undefined;
  /** Said whether or not a signature is made (a key restore here would not accept, …). */
  notes: string[];
  outcome(m: Manifest): SigningOutcome;
}

const RESTORE_NEEDS = "ai-memory 1.0's restore refuses it unless given --allow-unsigned-manifest";

export async function planSigning(opts: SigningOptions = {}): Promise<SigningPlan> {
  const ctx = opts.keyContext ?? processKeyContext();
  let key: OperatorSigningKey | undefined;
  let why: string;
  if (opts.key === null) {
    why = 'signing is off';
  } else if (opts.key) {
    key = opts.key;
    why = '';
  } else if (opts.keyPath) {
    key = await loadSigningKeyFile(opts.keyPath, ctx.platform); // throws: the user asked for this key
    why = '';
  } else {
    const found = await findOperatorSigningKey(ctx);
    key = found.key;
    why = found.problem
      ? `the operator key could not be used: ${found.problem.message}${found.problem.hint ? ` ${found.problem.hint}` : ''}`
      : `no operator signing key (operator.key) in ${found.searched.join(' or ') || 'the ai-memory config folder'}; create one with \`ai-memory rules keygen\`, or pass --sign-key`;
  }
  const notes: string[] = [];
  if (key) {
    const anchor = opts.anchor === null ? undefined : (opts.anchor ?? (await resolveOperatorPublicKey(ctx)).key);
    if (!anchor) {
      notes.push(`no operator public key is configured here ($AI_MEMORY_OPERATOR_PUBKEY or operator.key.pub), so this machine's restore cannot check the signature by ${key.fingerprint}`);
    } else if (!anchor.key.equals(key.publicKey)) {
      notes.push(`the signing key ${key.fingerprint} (${key.path}) is not the operator public key ${anchor.fingerprint} (${anchor.source}): restore here will refuse this backup`);
    }
  }
  return {
    key,
    notes,
    outcome(m: Manifest): SigningOutcome {
      if (m.signature && key) return { signed: true, signer: m.signer, keyPath: key.path };
      const reason = key ? unreadableSignedFacts(m) : why;
      return { signed: false, warning: `the manifest is NOT signed (${reason}): ${RESTORE_NEEDS}` };
    },
  };
}

/**
 * Why 1.0's payload could not be made: the schema version or the memory count it covers is
 * unknown. Read from the database, they are missing only when it lacks the table (not an
 * ai-memory database, or one from before ai-memory recorded its schema version); otherwise
 * the file was never read (encrypted, too large for the checker, over 64 MiB with --verify off).
 */
function unreadableSignedFacts(m: Manifest): string {
  // One of the two known: the file was read, so the other's table is missing.
  if (m.schema_version === undefined && m.memory_count !== undefined) return 'the database has no schema_version table, and 1.0\'s signature covers the schema version';
  if (m.memory_count === undefined && m.schema_version !== undefined) return 'the database has no memories table, and 1.0\'s signature covers the memory count';
  if (m.check !== undefined && m.check !== 'off' && m.integrity === 'ok') return 'the database has neither a schema_version nor a memories table (it is not ai-memory\'s), and 1.0\'s signature covers both';
  return 'the schema version and memory count the signature covers could not be read: the database is encrypted, too large for the checker, or over 64 MiB with --verify off';
}

/** Signs the manifest when the plan has a key and 1.0's payload facts are known. */
export function signIfKeyed(plan: SigningPlan, m: Manifest): Manifest {
  if (!plan.key) return m;
  const payload = payloadFor(m);
  return payload ? signManifest(m, payload, plan.key) : m;
}
