// loadtest/render/png.mjs: the image check every contender of bench_render.sh
// passes each screenshot through: a PNG (signature, IHDR) of the wanted
// size whose pixels are not all alike. The IDAT stream is inflated
// (node:zlib) and the scanlines unfiltered well enough to sample colours:
// fewer than 8 distinct ones over a grid of 400 points means a blank (or
// nearly blank) page, as an error page or an unpainted tab would be.

import { inflateSync } from 'node:zlib';

export function pngSize(buf) {
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (!buf || buf.length < 24 || sig.some((b, i) => buf[i] !== b)) return null;
  if (buf.toString('latin1', 12, 16) !== 'IHDR') return null;
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
}

function paeth(a, b, c) {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

// Distinct colours over a 20x20 grid; null if the PNG is not 8-bit RGB(A).
export function distinctColours(buf) {
  const size = pngSize(buf);
  if (!size) return null;
  const depth = buf[24];
  const type = buf[25];
  if (depth !== 8 || (type !== 2 && type !== 6)) return null;
  const bpp = type === 6 ? 4 : 3;
  const idat = [];
  for (let off = 8; off + 8 <= buf.length; ) {
    const len = buf.readUInt32BE(off);
    const t = buf.toString('latin1', off + 4, off + 8);
    if (t === 'IDAT') idat.push(buf.subarray(off + 8, off + 8 + len));
    if (t === 'IEND') break;
    off += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = size.width * bpp;
  const wantRows = new Set(Array.from({ length: 20 }, (_, i) => Math.floor(((i + 0.5) * size.height) / 20)));
  const seen = new Set();
  let prev = Buffer.alloc(stride);
  for (let y = 0; y < size.height; y++) {
    const ft = raw[y * (stride + 1)];
    const line = Buffer.from(raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1)));
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? line[i - bpp] : 0;
      const b = prev[i];
      const c = i >= bpp ? prev[i - bpp] : 0;
      if (ft === 1) line[i] = (line[i] + a) & 255;
      else if (ft === 2) line[i] = (line[i] + b) & 255;
      else if (ft === 3) line[i] = (line[i] + ((a + b) >> 1)) & 255;
      else if (ft === 4) line[i] = (line[i] + paeth(a, b, c)) & 255;
    }
    if (wantRows.has(y)) {
      for (let k = 0; k < 20; k++) {
        const x = Math.floor(((k + 0.5) * size.width) / 20);
        seen.add(line.toString('hex', x * bpp, x * bpp + 3));
      }
    }
    prev = line;
  }
  return seen.size;
}

// Throws unless buf is a width x height PNG with a painted page in it.
export function checkShot(buf, width, height, what) {
  const size = pngSize(buf);
  if (!size || size.width !== width || size.height !== height) {
    throw new Error(`${what}: not a ${width}x${height} PNG: ${JSON.stringify(size)}`);
  }
  const n = distinctColours(buf);
  if (n !== null && n < 8) throw new Error(`${what}: the image is blank (${n} colours over 400 points)`);
}
