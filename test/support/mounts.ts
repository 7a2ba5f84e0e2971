/**
 * Real file systems of a user's desk for tests: FAT32 and exFAT on a loop device (the
 * kernel's driver when this kernel has it, else the FUSE one: fusefat, exfat-fuse), and
 * tmpfs. Needs root and the tools (dosfstools, exfatprogs, fusefat/exfat-fuse): `mountFs`
 * returns why not otherwise, for the test to skip with that reason. Every mount is
 * unmounted and its loop device detached (by name) by `cleanup()`, and at process exit.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

export type DeskFs = 'vfat' | 'exfat' | 'tmpfs';

export interface Mounted {
  kind: DeskFs;
  /** 'kernel' or the FUSE program used. */
  driver: string;
  dir: string;
  cleanup(): void;
}

const live = new Set<Mounted>();
process.on('exit', () => {
  for (const m of [...live]) m.cleanup();
});

function has(tool: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function kernelHas(kind: string): boolean {
  return fs.readFileSync('/proc/filesystems', 'utf8').split('\n').some((l) => l.trim().split(/\s+/).pop() === kind);
}

function run(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Mounts a fresh file system of `kind` (`mb` MiB); a string says why it cannot be done here. */
export function mountFs(kind: DeskFs, mb = 64): Mounted | string {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return 'needs root on Linux (loop devices and mounts)';
  const base = fs.mkdtempSync(path.join(os.tmpdir(), `aimb-${kind}-`));
  const dir = path.join(base, 'mnt');
  fs.mkdirSync(dir);
  let loop: string | undefined;
  let mounted = false;
  const undo = (): void => {
    if (mounted) {
      try {
        run('umount', [dir]);
      } catch {
        try {
          run('fusermount', ['-u', dir]);
        } catch {
          // left for the exit handler's next try
        }
      }
      mounted = false;
    }
    if (loop) {
      try {
        run('losetup', ['-d', loop]);
      } catch {
        // already detached
      }
      loop = undefined;
    }
    fs.rmSync(base, { recursive: true, force: true });
  };
  try {
    if (kind === 'tmpfs') {
      run('mount', ['-t', 'tmpfs', '-o', `size=${mb}M`, 'tmpfs', dir]);
      mounted = true;
      const m: Mounted = { kind, driver: 'kernel', dir, cleanup: () => (live.delete(m), undo()) };
      live.add(m);
      return m;
    }
    const mkfs = kind === 'vfat' ? 'mkfs.vfat' : 'mkfs.exfat';
    const fuse = kind === 'vfat' ? 'fusefat' : 'mount.exfat-fuse';
    const kernel = kernelHas(kind);
    if (!has(mkfs) || !has('losetup')) return `needs ${mkfs} and losetup (apt-get install ${kind === 'vfat' ? 'dosfstools' : 'exfatprogs'} mount)`;
    if (!kernel && (!has(fuse) || !fs.existsSync('/dev/fuse'))) return `this kernel has no ${kind} driver, and ${fuse} (FUSE) is not installed`;
    const img = path.join(base, `${kind}.img`);
    fs.writeFileSync(img, '');
    fs.truncateSync(img, mb << 20);
    run(mkfs, kind === 'vfat' ? ['-F', '32', img] : [img]);
    loop = execFileSync('losetup', ['-f', '--show', img], { encoding: 'utf8' }).trim();
    if (kernel) run('mount', ['-t', kind, loop, dir]);
    else if (kind === 'vfat') run('fusefat', ['-o', 'rw+', loop, dir]);
    else run('mount.exfat-fuse', [loop, dir]);
    mounted = true;
    const m: Mounted = { kind, driver: kernel ? 'kernel' : fuse, dir, cleanup: () => (live.delete(m), undo()) };
    live.add(m);
    return m;
  } catch (e) {
    undo();
    return `could not mount ${kind}: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`;
  }
}
