/**
 * Deterministic crash injection for the reliability suite: when
 * AI_MEMORY_BACKUP_CRASH_AT names a step, the process kills itself with SIGKILL right
 * there — no cleanup, no finally blocks — exactly like a power cut or `kill -9`.
 * AI_MEMORY_BACKUP_CRASH_SIGNAL=SIGTERM sends that signal instead (a Ctrl-C or a service
 * manager's stop arriving at that step: the process must stop at its next safe point).
 * Unset (always, outside tests), this is one environment lookup per step.
 */
let fired = false;

export function crashPoint(step: string): void {
  const at = process.env.AI_MEMORY_BACKUP_CRASH_AT;
  if (!at || at !== step || fired) return;
  fired = true; // once: a step inside a loop must not turn one SIGTERM into two (the second exits at once)
  process.kill(process.pid, process.env.AI_MEMORY_BACKUP_CRASH_SIGNAL === 'SIGTERM' ? 'SIGTERM' : 'SIGKILL');
}
