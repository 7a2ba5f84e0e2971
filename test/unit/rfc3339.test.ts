/**
 * The signed created_at read as chrono's `DateTime::parse_from_rfc3339` reads it (ai-memory
 * 1.0's `restore --latest`): src/core/common/rfc3339.ts. The expectations were checked by hand
 * against chrono itself (Debian's chrono 0.4.23, which predates chrono 0.4.27's space
 * separator: that one case is from chrono's changelog, PR #1145).
 */
import * as assert from 'assert';
import { compareInstants, parseRfc3339 } from '../../src/core/common/rfc3339';

describe('RFC 3339 as chrono reads it (restore --latest)', () => {
  const at = (s: string) => parseRfc3339(s);
  it('reads what 1.0 and we write, to the nanosecond, any offset', () => {
    assert.deepStrictEqual(at('2026-11-02T00:00:00+00:00'), { seconds: 1793577600, nanos: 0 });
    assert.deepStrictEqual(at('2026-11-02T00:00:00.123456789+00:00'), { seconds: 1793577600, nanos: 123456789 });
    assert.deepStrictEqual(at('2026-11-02T00:00:00.1234567891234Z'), { seconds: 1793577600, nanos: 123456789 }, 'digits past 9 are skipped');
    assert.deepStrictEqual(at('2026-11-02t05:30:00.5+05:30'), { seconds: 1793577600, nanos: 500000000 });
    assert.deepStrictEqual(at('2026-11-01 23:00:00-01:00'), { seconds: 1793577600, nanos: 0 }, 'a space separator (chrono >= 0.4.27)');
    assert.deepStrictEqual(at('2026-11-01T23:00:00\u221201:00'), { seconds: 1793577600, nanos: 0 }, 'U+2212 minus');
    assert.deepStrictEqual(at('0001-01-01T00:00:00z'), { seconds: -62135596800, nanos: 0 });
    assert.deepStrictEqual(at('2024-02-29T00:00:00Z'), { seconds: 1709164800, nanos: 0 });
  });
  it('a leap second sorts after :59.999999999 and before the next minute', () => {
    const leap = at('2026-12-31T23:59:60.5Z');
    assert.ok(leap);
    assert.ok(compareInstants(leap, at('2026-12-31T23:59:59.999999999Z')!) > 0);
    assert.ok(compareInstants(leap, at('2027-01-01T00:00:00Z')!) < 0);
  });
  it('refuses what chrono refuses (and Date.parse took)', () => {
    for (const bad of ['2026-11-02', '2026-11-02T00:00:00', '2026-11-02T00:00Z', 'Mon, 02 Nov 2026 00:00:00 GMT', '2026-11-02T24:00:00Z', '2026-02-29T00:00:00Z', '2026-02-30T00:00:00Z',
      '2026-11-02T00:00:00+0000', '2026-11-02T00:00:00+24:00', '2026-11-02T00:00:00+00:60', '+002026-11-02T00:00:00Z', '2026-11-02T00:00:00.Z', '2026-11-02T00:00:61Z', ' 2026-11-02T00:00:00Z', '2026-11-02T00:00:00Z ', '2026-1-02T00:00:00Z', '2026-11-02T00:00:00UTC']) {
      assert.strictEqual(at(bad), undefined, bad);
    }
  });
});
