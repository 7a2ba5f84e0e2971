/**
 * The retention settings (aiMemory.backup.retention, retentionCustom, keep) read into a
 * policy. Without `vscode` (unit-tested): the caller passes the configuration's `get`.
 */
import { BUCKETS, isEmptyPolicy, RETENTION_PRESETS, type RetentionPolicy } from '../core/store/retention';

/**
 * The retention policy the settings describe. A value retention cannot read (a preset that
 * is not one of the choices; a custom tier misspelt, or a count that is not a whole number)
 * deletes nothing until it is fixed, and says so: dropping the tier it meant, or falling
 * back to another rule, would delete history the user set out to keep.
 */
export function readPolicy(c: { get<T>(key: string, dflt: T): T | undefined }, keep: unknown): { policy: RetentionPolicy; problem?: string } {
  const preset = c.get<unknown>('backup.retention', 'keep');
  if (typeof preset === 'string' && Object.hasOwn(RETENTION_PRESETS, preset)) return { policy: RETENTION_PRESETS[preset] };
  const keepAll = (problem: string) => ({ policy: {}, problem: `${problem}. Nothing is deleted until it is fixed.` });
  if (preset === 'custom') {
    const raw = c.get<unknown>('backup.retentionCustom', {});
    if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return keepAll(`aiMemory.backup.retentionCustom is not an object of counts (${JSON.stringify(raw)})`);
    const policy: RetentionPolicy = {};
    const bad: string[] = [];
    for (const [k, v] of Object.entries(raw)) {
      if (!(BUCKETS as readonly string[]).includes(k)) bad.push(`"${k}" is not one of ${BUCKETS.join(', ')}`);
      else if (typeof v !== 'number' || !Number.isInteger(v) || v < -1) bad.push(`${k}: ${JSON.stringify(v)} is not a whole number (≥ -1)`);
      else policy[k as keyof RetentionPolicy] = v;
    }
    if (bad.length) return keepAll(`aiMemory.backup.retentionCustom: ${bad.join('; ')}`);
    if (isEmptyPolicy(policy)) return keepAll('aiMemory.backup.retention is "custom", but aiMemory.backup.retentionCustom sets no count');
    return { policy };
  }
  if (preset !== 'keep' && preset !== undefined && preset !== null && preset !== '') return keepAll(`aiMemory.backup.retention: ${JSON.stringify(preset)} is not one of its choices`);
  if (typeof keep !== 'number' || !Number.isInteger(keep) || keep < 0) return keepAll(`aiMemory.backup.keep: ${JSON.stringify(keep)} is not a whole number ≥ 0 (0 keeps all)`);
  return { policy: keep === 0 ? {} : { last: keep } };
}
