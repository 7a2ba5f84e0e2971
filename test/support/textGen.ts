/**
 * Deterministic generators for realistic-looking ai-memory content: a seeded PRNG,
 * UUIDs, English-ish technical prose, tags, namespaces and float32 embeddings.
 *
 * Everything is derived from explicit seeds so a fixture is byte-for-byte reproducible
 * (same seed ⇒ same ids, texts, vectors), which lets tests compare a restored database
 * with the one they generated without storing expected data.
 */

/** mulberry32: tiny, fast, good enough for test data (not for cryptography). */
export class Prng {
  private state: number;

  constructor(seed: number) {
    // Mix the seed so that seeds 1, 2, 3... do not start with correlated outputs.
    this.state = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ 0x27d4eb2f) >>> 0;
  }

  /** Uniform in [0, 2^32). */
  nextU32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /** Integer in [min, max] (inclusive). */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  /** Approximately standard-normal (sum of uniforms; enough for embedding-like vectors). */
  gauss(): number {
    return this.next() + this.next() + this.next() + this.next() - 2;
  }

  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      out.writeUInt32LE(this.nextU32(), i);
    }
    for (; i < n; i++) {
      out[i] = this.nextU32() & 0xff;
    }
    return out;
  }
}

/** Derive a sub-seed from a seed and a list of integers (stable across runs). */
export function subSeed(seed: number, ...parts: number[]): number {
  let h = (seed ^ 0x811c9dc5) >>> 0;
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x01000193) >>> 0;
    h = Math.imul(h ^ (h >>> 13), 0x5bd1e995) >>> 0;
  }
  return h >>> 0;
}

/** RFC 4122 version-4 formatted UUID from the PRNG. */
export function uuid4(rng: Prng): string {
  const b = rng.bytes(16);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const WORDS = [
  'agent', 'memory', 'context', 'database', 'sqlite', 'migration', 'schema', 'index', 'query',
  'token', 'embedding', 'vector', 'namespace', 'recall', 'remember', 'forget', 'priority',
  'deploy', 'pipeline', 'build', 'release', 'branch', 'commit', 'review', 'refactor', 'test',
  'fixture', 'mock', 'timeout', 'retry', 'backoff', 'cache', 'latency', 'throughput', 'queue',
  'worker', 'thread', 'process', 'signal', 'socket', 'request', 'response', 'header', 'payload',
  'config', 'environment', 'secret', 'credential', 'permission', 'policy', 'audit', 'log',
  'metric', 'trace', 'span', 'dashboard', 'alert', 'incident', 'postmortem', 'runbook',
  'kubernetes', 'container', 'image', 'registry', 'volume', 'cluster', 'node', 'replica',
  'shard', 'partition', 'checkpoint', 'snapshot', 'backup', 'restore', 'journal', 'transaction',
  'commit', 'rollback', 'lock', 'mutex', 'deadlock', 'race', 'invariant', 'assertion', 'bug',
  'regression', 'feature', 'flag', 'rollout', 'canary', 'typescript', 'rust', 'python', 'golang',
  'compiler', 'linter', 'formatter', 'bundle', 'module', 'package', 'dependency', 'version',
  'semver', 'changelog', 'api', 'endpoint', 'handler', 'middleware', 'router', 'session', 'user',
  'customer', 'invoice', 'billing', 'report', 'export', 'import', 'parser', 'serializer', 'json',
  'toml', 'yaml', 'markdown', 'editor', 'extension', 'workspace', 'terminal', 'shell', 'script',
  'prefers', 'uses', 'avoids', 'requires', 'documents', 'caches', 'validates', 'rejects',
  'the', 'a', 'with', 'without', 'before', 'after', 'because', 'when', 'unless', 'always', 'never',
];

const CAPITALISED_TOPICS = [
  'Build setup', 'Deployment notes', 'API conventions', 'Database layout', 'Test strategy',
  'Coding style', 'Incident review', 'Release checklist', 'User preference', 'Architecture decision',
  'Dependency pin', 'Performance finding', 'Security note', 'Onboarding tip', 'Debugging recipe',
];

export const TAG_VOCABULARY = [
  'architecture', 'preference', 'bug', 'decision', 'todo', 'howto', 'infra', 'ci', 'security',
  'performance', 'frontend', 'backend', 'data', 'docs', 'testing', 'release', 'oncall',
];

export const NAMESPACES = [
  'global', 'proj/a', 'proj/a/backend', 'proj/a/frontend', 'proj/b', 'proj/b/infra',
  'team/platform', 'user/notes',
];

export const AGENT_IDS = ['copilot', 'claude-code', 'cursor', 'codex', 'gemini-cli', 'windsurf'];
export const SCOPES = ['private', 'team', 'unit', 'org', 'collective'];

/** One sentence of 6–18 words, capitalised and terminated. */
export function sentence(rng: Prng): string {
  const n = rng.int(6, 18);
  const words: string[] = [];
  for (let i = 0; i < n; i++) {
    words.push(rng.pick(WORDS));
  }
  const s = words.join(' ');
  return s.charAt(0).toUpperCase() + s.slice(1) + rng.pick(['.', '.', '.', ';', '!', '?']);
}

/** Prose of roughly `targetBytes` bytes (ASCII, so bytes == chars), in paragraphs. */
export function prose(rng: Prng, targetBytes: number): string {
  const parts: string[] = [];
  let len = 0;
  let inParagraph = 0;
  while (len < targetBytes) {
    const s = sentence(rng);
    const sep = parts.length === 0 ? '' : inParagraph >= rng.int(3, 6) ? '\n\n' : ' ';
    if (sep === '\n\n') {
      inParagraph = 0;
    }
    parts.push(sep + s);
    len += sep.length + s.length;
    inParagraph++;
  }
  return parts.join('');
}

export function title(rng: Prng, ordinal: number): string {
  return `${rng.pick(CAPITALISED_TOPICS)}: ${rng.pick(WORDS)} ${rng.pick(WORDS)} #${ordinal}`;
}

export function tags(rng: Prng): string[] {
  const n = rng.int(0, 4);
  const out = new Set<string>();
  for (let i = 0; i < n; i++) {
    out.add(rng.pick(TAG_VOCABULARY));
  }
  return [...out];
}

/**
 * A unit-length float32 vector serialised little-endian, the way ai-memory stores
 * embeddings (384 dims = 1536 bytes, 768 dims = 3072 bytes).
 */
export function embedding(rng: Prng, dim: number): Buffer {
  const v = new Float32Array(dim);
  let norm = 0;
  for (let i = 0; i < dim; i++) {
    v[i] = rng.gauss();
    norm += v[i] * v[i];
  }
  norm = Math.sqrt(norm) || 1;
  for (let i = 0; i < dim; i++) {
    v[i] /= norm;
  }
  // Copy into a Buffer explicitly so the bytes are little-endian regardless of how the
  // Float32Array's platform byte order would serialise (all supported platforms are LE,
  // but the explicit write documents the on-disk format).
  const out = Buffer.allocUnsafe(dim * 4);
  for (let i = 0; i < dim; i++) {
    out.writeFloatLE(v[i], i * 4);
  }
  return out;
}

/**
 * RFC 3339 timestamp in the shape chrono's `to_rfc3339()` produces for UTC
 * (`2026-01-05T10:00:00.123456+00:00`).
 */
export function rfc3339(ms: number): string {
  const iso = new Date(ms).toISOString(); // 2026-01-05T10:00:00.123Z
  const micros = String(Math.floor((ms % 1) * 1000)).padStart(3, '0');
  return `${iso.slice(0, 23)}${micros}+00:00`;
}

/** 2026-01-01T00:00:00Z, the fixed base of generated timestamps. */
export const BASE_TIME_MS = Date.UTC(2026, 0, 1, 0, 0, 0);
