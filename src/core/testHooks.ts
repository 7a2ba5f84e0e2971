/**
 * Deterministic crash injection for the reliability suite: when
 * AI_MEMORY_BACKUP_CRASH_AT names a step, the process kills itself with SIGKILL right
 * there — no cleanup, no finally blocks — exactly like a power cut or `kill -9`.
 * Unset (always, outside tests), this is one environment lookup per step.
 */
export function crashPoint(step: string): void {
  const at = process.env.AI_MEMORY_BACKUP_CRASH_AT;
  if (at && at === step) process.kill(process.pid, 'SIGKILL');
}
