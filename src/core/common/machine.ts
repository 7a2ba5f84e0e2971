/**
 * Which machine a snapshot was taken on. A backup folder synced between two machines
 * (Dropbox, iCloud, Syncthing, a network share) holds both machines' snapshots, and with the
 * same user name and ai-memory's default location their manifests' `source_db` is the same
 * path: by the path alone, each machine took the other's snapshots for its own database —
 * restore from the folder put the other machine's memories in place without a word, and
 * retention deleted the other machine's history.
 *
 * Our manifests say where they were made: `host` (the host name, for people) and
 * `machine_id` (for the comparison: a digest of the operating system's machine id where it
 * has one — /etc/machine-id, stable when the host is renamed — never the id itself, which
 * the system treats as confidential). Without a machine id, the host name is compared.
 * ai-memory's own manifests say neither: whose they are is told by the path, as before.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

export interface MachineFacts {
  host?: string;
  machine_id?: string;
}

const MACHINE_ID_FILES = ['/etc/machine-id', '/var/lib/dbus/machine-id'];

let cached: MachineFacts | undefined;

/** This machine, as our manifests record it (read once per process). */
export function thisMachine(): MachineFacts {
  if (cached) return cached;
  const out: MachineFacts = {};
  try {
    const h = hostname().trim();
    if (h) out.host = h;
  } catch {
    // no host name: the machine id alone, or nothing
  }
  for (const f of MACHINE_ID_FILES) {
    let id: string;
    try {
      id = readFileSync(f, 'utf8').trim();
    } catch {
      continue;
    }
    // systemd's format: 32 hex digits ("uninitialized" or empty in an image not yet booted).
    if (/^[0-9a-f]{32}$/i.test(id)) {
      out.machine_id = createHash('sha256').update(`ai-memory-backup machine ${id.toLowerCase()}`).digest('hex').slice(0, 32);
      break;
    }
  }
  cached = out;
  return out;
}

/**
 * Whether a manifest's machine facts say it was taken on another machine: false when they
 * cannot tell (an ai-memory manifest, or facts this machine does not have to compare).
 */
export function takenElsewhere(m: MachineFacts, here: MachineFacts = thisMachine()): boolean {
  if (m.machine_id && here.machine_id) return m.machine_id !== here.machine_id;
  if (m.host && here.host) return m.host !== here.host;
  return false;
}
