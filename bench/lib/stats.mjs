// Small statistics and formatting helpers.
export function median(xs) {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}
export const min = (xs) => Math.min(...xs.filter(Number.isFinite));
export const max = (xs) => Math.max(...xs.filter(Number.isFinite));
export const sum = (xs) => xs.reduce((a, b) => a + b, 0);

/** Seconds with 3 significant-ish digits. */
export function secs(ms) {
  if (!Number.isFinite(ms)) return '–';
  const s = ms / 1000;
  return s < 0.1 ? s.toFixed(3) : s < 10 ? s.toFixed(2) : s.toFixed(1);
}
export function millis(ms) {
  if (!Number.isFinite(ms)) return '–';
  return ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : ms.toFixed(0);
}
/** KiB (GNU time's unit) → MB (10^6 bytes). */
export function mbFromKiB(kib) {
  return Number.isFinite(kib) ? (kib * 1024) / 1e6 : NaN;
}
export function mb(bytes) {
  return bytes / 1e6;
}
export function fmt(x, digits = 2) {
  return Number.isFinite(x) ? x.toFixed(digits) : '–';
}
export function table(header, rows, align) {
  const al = align ?? header.map((_, i) => (i === 0 ? ':--' : '--:'));
  return [`| ${header.join(' | ')} |`, `| ${al.join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}
