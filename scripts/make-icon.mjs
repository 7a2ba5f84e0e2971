#!/usr/bin/env node
// Draws media/icon.png (128×128, the Marketplace icon size): a database cylinder with a
// check mark on a rounded square. No dependencies: pixels are computed here (anti-aliased by
// 4×4 supersampling) and written as an RGBA PNG with node:zlib.
//
//   node scripts/make-icon.mjs [out.png]
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';

const SIZE = 128;
const SUPERSAMPLE = 4;

const BACKGROUND_TOP = [0x1e, 0x3a, 0x5f];
const BACKGROUND_BOTTOM = [0x12, 0x24, 0x3d];
const DISK = [0x4f, 0xc3, 0xf7];
const DISK_SHADE = [0x29, 0x8f, 0xc2];
const RIM = [0xe1, 0xf5, 0xfe];
const CHECK_BADGE = [0x43, 0xa0, 0x47];
const WHITE = [0xff, 0xff, 0xff];

/** Signed distance to a rounded rectangle centred at (cx, cy). */
function roundedRect(x, y, cx, cy, halfW, halfH, radius) {
  const qx = Math.abs(x - cx) - halfW + radius;
  const qy = Math.abs(y - cy) - halfH + radius;
  return Math.hypot(Math.max(qx, 0), Math.max(qy, 0)) + Math.min(Math.max(qx, qy), 0) - radius;
}

function insideEllipse(x, y, cx, cy, rx, ry) {
  return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1;
}

function distanceToSegment(x, y, ax, ay, bx, by) {
  const t = Math.max(0, Math.min(1, ((x - ax) * (bx - ax) + (y - ay) * (by - ay)) / ((bx - ax) ** 2 + (by - ay) ** 2)));
  return Math.hypot(x - (ax + t * (bx - ax)), y - (ay + t * (by - ay)));
}

/** Colour of one sample point, or undefined where the icon is transparent. */
function sample(x, y) {
  if (roundedRect(x, y, 64, 64, 62, 62, 22) > 0) return undefined;
  let color = BACKGROUND_TOP.map((c, i) => c + ((BACKGROUND_BOTTOM[i] - c) * y) / SIZE);

  // Cylinder: three stacked disks, x from 30 to 90, top rim at y=32, bottom at y=94.
  const cx = 60, rx = 30, ry = 10;
  const top = 32, bottom = 94;
  const inBody = x >= cx - rx && x <= cx + rx && y >= top && y <= bottom;
  if (inBody || insideEllipse(x, y, cx, bottom, rx, ry)) {
    color = x < cx + rx / 2 ? DISK : DISK_SHADE; // a shaded right edge
    // Seams between the disks: the lower half of an ellipse at 1/3 and 2/3 height.
    for (const seam of [top + (bottom - top) / 3, top + (2 * (bottom - top)) / 3]) {
      const d = Math.abs(((x - cx) / rx) ** 2 + ((y - seam) / ry) ** 2 - 1);
      if (y > seam && d < 0.12) color = BACKGROUND_BOTTOM;
    }
  }
  if (insideEllipse(x, y, cx, top, rx, ry)) color = RIM;

  // Check-mark badge, bottom right.
  const bx = 94, by = 92, br = 20;
  const badge = Math.hypot(x - bx, y - by);
  if (badge <= br + 3) color = BACKGROUND_BOTTOM;
  if (badge <= br) color = CHECK_BADGE;
  const stroke = Math.min(distanceToSegment(x, y, 84, 92, 91, 99), distanceToSegment(x, y, 91, 99, 104, 84));
  if (badge <= br && stroke <= 3.2) color = WHITE;
  return color;
}

function render() {
  const rgba = Buffer.alloc(SIZE * SIZE * 4);
  const n = SUPERSAMPLE * SUPERSAMPLE;
  for (let py = 0; py < SIZE; py++) {
    for (let px = 0; px < SIZE; px++) {
      let r = 0, g = 0, b = 0, a = 0;
      for (let sy = 0; sy < SUPERSAMPLE; sy++) {
        for (let sx = 0; sx < SUPERSAMPLE; sx++) {
          const c = sample(px + (sx + 0.5) / SUPERSAMPLE, py + (sy + 0.5) / SUPERSAMPLE);
          if (!c) continue;
          r += c[0]; g += c[1]; b += c[2]; a += 1;
        }
      }
      const o = (py * SIZE + px) * 4;
      if (a > 0) {
        rgba[o] = Math.round(r / a);
        rgba[o + 1] = Math.round(g / a);
        rgba[o + 2] = Math.round(b / a);
      }
      rgba[o + 3] = Math.round((255 * a) / n);
    }
  }
  return rgba;
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buf) {
  let c = 0xffffffff;
  for (const byte of buf) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/** PNG (RFC 2083): signature, IHDR (8-bit RGBA), one IDAT of filter-0 scanlines, IEND. */
function encodePng(rgba, width, height) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 6; // colour type RGBA
  const raw = Buffer.alloc((width * 4 + 1) * height);
  for (let y = 0; y < height; y++) rgba.copy(raw, y * (width * 4 + 1) + 1, y * width * 4, (y + 1) * width * 4);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(raw, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

const out = resolve(process.argv[2] ?? resolve(dirname(fileURLToPath(import.meta.url)), '..', 'media', 'icon.png'));
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, encodePng(render(), SIZE, SIZE));
console.log(`wrote ${out}`);
