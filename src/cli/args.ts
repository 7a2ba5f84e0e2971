/** Argument parsing for the CLI: `--flag value`, `--flag=value`, boolean flags, anywhere on the line. */
import { BackupError } from '../core/common/errors';

export interface FlagSpec {
  /** Flags that take a value. */
  values: readonly string[];
  /** Flags that are switches. */
  switches: readonly string[];
}

export interface Parsed {
  command: string | undefined;
  values: Map<string, string>;
  switches: Set<string>;
  positionals: string[];
}

/** What to pass, for a flag whose empty value a user may mean as something (`--namespace ''`: "no namespace"). */
const VALUE_HINTS: Record<string, string> = {
  namespace: 'Every memory has a namespace (ai-memory stores "global" for one given none): pass --namespace global for those, or a namespace such as proj (it takes proj/… too).',
};

export function parseArgs(argv: string[], spec: FlagSpec): Parsed {
  const out: Parsed = { command: undefined, values: new Map(), switches: new Set(), positionals: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      out.positionals.push(...argv.slice(i + 1));
      break;
    }
    if (a === '-h') {
      out.switches.add('help');
      continue;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = a.slice(2, eq === -1 ? undefined : eq);
      if (spec.values.includes(name)) {
        let v: string | undefined;
        if (eq !== -1) v = a.slice(eq + 1);
        else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) v = argv[++i];
        if (v === undefined || v === '') throw new BackupError('USAGE', `--${name} needs a value.`, { hint: VALUE_HINTS[name] });
        if (out.values.has(name)) throw new BackupError('USAGE', `--${name} was given twice.`);
        out.values.set(name, v);
      } else if (spec.switches.includes(name)) {
        if (eq !== -1) throw new BackupError('USAGE', `--${name} takes no value.`);
        out.switches.add(name);
      } else {
        throw new BackupError('USAGE', `Unknown option --${name}.`);
      }
      continue;
    }
    if (out.command === undefined) out.command = a;
    else out.positionals.push(a);
  }
  return out;
}
