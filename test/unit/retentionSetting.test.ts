/** The extension's retention settings read into a policy: what it cannot read deletes nothing, and says so. */
import * as assert from 'node:assert/strict';
import { readPolicy } from '../../src/features/retentionSetting';

/** A configuration holding `values` (as VS Code hands them over: whatever settings.json says). */
function config(values: Record<string, unknown>) {
  return { get: <T>(key: string, dflt: T): T => (key in values ? (values[key] as T) : dflt) };
}

describe('retention settings → policy', () => {
  it('reads the presets, custom counts and keep', () => {
    assert.deepEqual(readPolicy(config({ 'backup.retention': '24 hourly, 7 daily, 4 weekly, 12 monthly' }), 48), { policy: { hourly: 24, daily: 7, weekly: 4, monthly: 12 } });
    assert.deepEqual(readPolicy(config({ 'backup.retention': 'custom', 'backup.retentionCustom': { hourly: 6, yearly: -1 } }), 48), { policy: { hourly: 6, yearly: -1 } });
    assert.deepEqual(readPolicy(config({}), 48), { policy: { last: 48 } });
    assert.deepEqual(readPolicy(config({}), 0), { policy: {} });
  });

  it('what it cannot read keeps everything and says what, never a smaller rule', () => {
    const cases: [Record<string, unknown>, unknown, RegExp][] = [
      [{ 'backup.retention': 'custom', 'backup.retentionCustom': { last: 1, dayly: 14 } }, 48, /"dayly" is not one of/],
      [{ 'backup.retention': 'custom', 'backup.retentionCustom': { daily: '14' } }, 48, /daily: "14" is not a whole number/],
      [{ 'backup.retention': 'custom', 'backup.retentionCustom': { daily: 2.5 } }, 48, /daily: 2.5/],
      [{ 'backup.retention': 'custom', 'backup.retentionCustom': {} }, 48, /sets no count/],
      [{ 'backup.retention': 'custom', 'backup.retentionCustom': [] }, 48, /not an object of counts/],
      [{ 'backup.retention': '48 hourly' }, 48, /"48 hourly" is not one of its choices/],
      [{}, -1, /backup\.keep: -1 is not a whole number/],
      [{}, 2.7, /backup\.keep: 2\.7/],
      [{}, '48', /backup\.keep: "48"/],
    ];
    for (const [values, keep, re] of cases) {
      const r = readPolicy(config(values), keep);
      assert.deepEqual(r.policy, {}, JSON.stringify(values));
      assert.match(r.problem ?? '', re);
      assert.match(r.problem ?? '', /Nothing is deleted until it is fixed\.$/);
    }
    // A preset decides alone: keep's value does not matter then.
    assert.deepEqual(readPolicy(config({ 'backup.retention': '24 hourly, 7 daily, 4 weekly, 12 monthly' }), -1).problem, undefined);
  });
});
