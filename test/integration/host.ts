/** What the integration suites (mocha in the real extension host) share. */

export const EXTENSION_ID = 'ai-memory-tools.ai-memory-backup';

/** Polls `check` until it returns something truthy (returned), or fails after `timeoutMs` naming `what`. */
export async function eventually<T>(check: () => T | undefined | false | Promise<T | undefined | false>, what: string, timeoutMs = 30_000, intervalMs = 150): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
