"""imgutil — pictures for the render and image tests, Python 3 stdlib only.

decode_png(b)    a PNG decoder (zlib): bit depths 1-16, grey, RGB, palette,
                 grey+alpha, RGBA, all five row filters, not interlaced
                 (Chromium and libvips write that). Returns a Png with
                 width, height and pixel(x, y) -> (r, g, b, a), rgb(x, y).
image_info(b)    (format, width, height) of PNG (IHDR), JPEG (SOF marker)
                 or WebP (VP8, VP8L, VP8X) bytes, read from the headers
                 only; raises ValueError for anything else.
make_png(w, h, fn)  a PNG whose pixel (x, y) is fn(x, y), an (r, g, b) or
                 (r, g, b, a) tuple; filter= picks the row filter (0-4, or
                 "cycle" for every filter in turn), so the decoder's every
                 path can be exercised.
png_from_parts() a PNG from an IHDR's fields and IDAT bytes as given, for
                 hostile inputs (a bomb, bogus dimensions, broken data).

Stdlib cannot make JPEG or WebP; the tests make those with `tintype shot`.
"""

import struct
import zlib

PNG_SIG = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


# --------------------------------------------------------------- PNG decode

class Png:
    def __init__(self, width, height, color_type, depth, rows, palette, trns):
        self.width = width
        self.height = height
        self.color_type = color_type
        self.depth = depth
        self._rows = rows  # unfiltered scanlines (bytes), one per row
        self._palette = palette
        self._trns = trns

    @property
    def channels(self):
        return _CHANNELS[self.color_type]

    def _samples(self, x, y):
        row = self._rows[y]
        d = self.depth
        n = self.channels
        if d == 8:
            return tuple(row[x * n:(x + 1) * n])
        if d == 16:
            # the high byte of each sample: 8-bit colour is what tests compare
            return tuple(row[(x * n + i) * 2] for i in range(n))
        # 1, 2, 4 bits: one sample per pixel (grey or palette index)
        per = 8 // d
        byte = row[x // per]
        shift = 8 - d * (x % per + 1)
        v = (byte >> shift) & ((1 << d) - 1)
        if self.color_type == 0:
            v = v * 255 // ((1 << d) - 1)
        return (v,)

    def pixel(self, x, y):
        """(r, g, b, a) of pixel (x, y), 8 bits per sample."""
        if not (0 <= x < self.width and 0 <= y < self.height):
            raise IndexError("pixel (%d, %d) outside %dx%d" % (x, y, self.width, self.height))
        s = self._samples(x, y)
        ct = self.color_type
        if ct == 0:
            return (s[0], s[0], s[0], 255)
        if ct == 4:
            return (s[0], s[0], s[0], s[1])
        if ct == 2:
            return (s[0], s[1], s[2], 255)
        if ct == 6:
            return tuple(s)
        i = s[0]  # palette
        if 3 * i + 2 >= len(self._palette):
            raise ValueError("palette index %d out of range" % i)
        a = self._trns[i] if self._trns and i < len(self._trns) else 255
        return (self._palette[3 * i], self._palette[3 * i + 1], self._palette[3 * i + 2], a)

    def rgb(self, x, y):
        return self.pixel(x, y)[:3]

    def __repr__(self):
        return "<Png %dx%d type %d depth %d>" % (self.width, self.height, self.color_type, self.depth)


def _chunks(b):
    """(type, data) of each chunk, CRCs checked, up to IEND."""
    if b[:8] != PNG_SIG:
        raise ValueError("not a PNG (signature)")
    i = 8
    while True:
        if i + 8 > len(b):
            raise ValueError("truncated PNG: no IEND")
        n, = struct.unpack(">I", b[i:i + 4])
        t = b[i + 4:i + 8]
        if i + 12 + n > len(b):
            raise ValueError("truncated PNG chunk %r" % t)
        data = b[i + 8:i + 8 + n]
        crc, = struct.unpack(">I", b[i + 8 + n:i + 12 + n])
        if zlib.crc32(t + data) & 0xffffffff != crc:
            raise ValueError("bad CRC in chunk %r" % t)
        yield t, data
        if t == b"IEND":
            return
        i += 12 + n


def _unfilter(raw, height, stride, bpp):
    rows = []
    prev = bytes(stride)
    zero = prev
    pos = 0
    for y in range(height):
        ft = raw[pos]
        line = raw[pos + 1:pos + 1 + stride]
        pos += 1 + stride
        if ft == 0:
            cur = line
        elif ft == 2:  # Up
            cur = prev if line == zero else bytes(map(lambda a, b: (a + b) & 255, line, prev))
        elif ft == 1:  # Sub
            cur = bytearray(line)
            for i in range(bpp, stride):
                cur[i] = (cur[i] + cur[i - bpp]) & 255
            cur = bytes(cur)
        elif ft == 3:  # Average
            cur = bytearray(line)
            for i in range(stride):
                left = cur[i - bpp] if i >= bpp else 0
                cur[i] = (cur[i] + ((left + prev[i]) >> 1)) & 255
            cur = bytes(cur)
        elif ft == 4:  # Paeth
            cur = bytearray(line)
            for i in range(stride):
                b_ = prev[i]
                if i >= bpp:
                    a = cur[i - bpp]
                    c = prev[i - bpp]
                else:
                    a = c = 0
                p = a + b_ - c
                pa = abs(p - a)
                pb = abs(p - b_)
                pc = abs(p - c)
                if pa <= pb and pa <= pc:
                    pr = a
                elif pb <= pc:
                    pr = b_
                else:
                    pr = c
                cur[i] = (cur[i] + pr) & 255
            cur = bytes(cur)
        else:
            raise ValueError("bad filter type %d on row %d" % (ft, y))
        rows.append(cur)
        prev = cur
    return rows


def decode_png(b, max_pixels=50_000_000):
    """Decodes PNG bytes; raises ValueError when they are not a PNG this
    decoder reads (interlaced, bad CRC, short data, too many pixels)."""
    ihdr = None
    idat = []
    palette = b""
    trns = b""
    for t, data in _chunks(b):
        if t == b"IHDR":
            if len(data) != 13:
                raise ValueError("bad IHDR length %d" % len(data))
            ihdr = struct.unpack(">IIBBBBB", data)
        elif t == b"PLTE":
            palette = data
        elif t == b"tRNS":
            trns = data
        elif t == b"IDAT":
            idat.append(data)
    if ihdr is None:
        raise ValueError("no IHDR")
    w, h, depth, ct, comp, filt, interlace = ihdr
    if ct not in _CHANNELS or comp != 0 or filt != 0:
        raise ValueError("unsupported IHDR %r" % (ihdr,))
    if interlace:
        raise ValueError("interlaced PNG is not supported")
    if depth not in (1, 2, 4, 8, 16) or (depth < 8 and ct not in (0, 3)) or (ct == 3 and depth == 16):
        raise ValueError("bad bit depth %d for colour type %d" % (depth, ct))
    if w == 0 or h == 0 or w * h > max_pixels:
        raise ValueError("refusing %dx%d" % (w, h))
    bits = _CHANNELS[ct] * depth
    stride = (w * bits + 7) // 8
    bpp = max(1, bits // 8)
    d = zlib.decompressobj()
    want = (stride + 1) * h
    raw = d.decompress(b"".join(idat), want)
    if len(raw) != want:
        raise ValueError("image data is %d bytes, IHDR needs %d" % (len(raw), want))
    return Png(w, h, ct, depth, _unfilter(raw, h, stride, bpp), palette, trns)


# --------------------------------------------------------------- headers only

def _png_dims(b):
    if len(b) < 24 or b[12:16] != b"IHDR":
        raise ValueError("PNG without IHDR first")
    return struct.unpack(">II", b[16:24])


def _jpeg_dims(b):
    i = 2
    while i + 4 <= len(b):
        if b[i] != 0xFF:
            raise ValueError("JPEG: no marker at %d" % i)
        m = b[i + 1]
        if m == 0xFF:  # fill byte
            i += 1
            continue
        if m in (0x01,) or 0xD0 <= m <= 0xD7:  # markers without a length
            i += 2
            continue
        if m in (0xD9, 0xDA):
            break
        seg, = struct.unpack(">H", b[i + 2:i + 4])
        if 0xC0 <= m <= 0xCF and m not in (0xC4, 0xC8, 0xCC):
            if i + 9 > len(b):
                break
            h, w = struct.unpack(">HH", b[i + 5:i + 9])
            return w, h
        i += 2 + seg
    raise ValueError("JPEG without a SOF marker before the scan")


def _webp_dims(b):
    i = 12
    while i + 8 <= len(b):
        t = b[i:i + 4]
        n, = struct.unpack("<I", b[i + 4:i + 8])
        d = b[i + 8:i + 8 + n]
        if t == b"VP8X" and len(d) >= 10:
            w = 1 + int.from_bytes(d[4:7], "little")
            h = 1 + int.from_bytes(d[7:10], "little")
            return w, h
        if t == b"VP8 " and len(d) >= 10:
            if d[3:6] != b"\x9d\x01\x2a":
                raise ValueError("WebP VP8 without its start code")
            w, h = struct.unpack("<HH", d[6:10])
            return w & 0x3FFF, h & 0x3FFF
        if t == b"VP8L" and len(d) >= 5:
            if d[0] != 0x2F:
                raise ValueError("WebP VP8L without its signature")
            v = int.from_bytes(d[1:5], "little")
            return (v & 0x3FFF) + 1, ((v >> 14) & 0x3FFF) + 1
        i += 8 + n + (n & 1)
    raise ValueError("WebP without VP8X, VP8 or VP8L chunk")


def image_info(b):
    """(format, width, height): format is png, jpeg or webp."""
    b = bytes(b[:65536])
    if b[:8] == PNG_SIG:
        w, h = _png_dims(b)
        return "png", w, h
    if b[:3] == b"\xff\xd8\xff":
        w, h = _jpeg_dims(b)
        return "jpeg", w, h
    if b[:4] == b"RIFF" and b[8:12] == b"WEBP":
        w, h = _webp_dims(b)
        return "webp", w, h
    raise ValueError("not a PNG, JPEG or WebP: %r" % b[:16])


# --------------------------------------------------------------- PNG encode

def png_chunk(t, data):
    return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data) & 0xffffffff)


def png_from_parts(width, height, depth, color_type, idat, interlace=0, extra=()):
    """Signature, IHDR with the given fields, extra chunks, one IDAT of the
    given bytes (not checked), IEND."""
    out = PNG_SIG + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, interlace))
    for t, data in extra:
        out += png_chunk(t, data)
    return out + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def _filter_row(ft, cur, prev, bpp):
    if ft == 0:
        return cur
    out = bytearray(len(cur))
    for i in range(len(cur)):
        a = cur[i - bpp] if i >= bpp else 0
        b_ = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        if ft == 1:
            pr = a
        elif ft == 2:
            pr = b_
        elif ft == 3:
            pr = (a + b_) >> 1
        else:
            p = a + b_ - c
            pa, pb, pc = abs(p - a), abs(p - b_), abs(p - c)
            pr = a if (pa <= pb and pa <= pc) else (b_ if pb <= pc else c)
        out[i] = (cur[i] - pr) & 255
    return bytes(out)


def make_png(width, height, fn, alpha=None, filter=0, level=6):
    """PNG bytes, 8-bit RGB (or RGBA when alpha is True, or None and fn's
    first pixel has four samples). fn(x, y) -> (r, g, b) or (r, g, b, a)."""
    if alpha is None:
        alpha = len(fn(0, 0)) == 4
    n = 4 if alpha else 3
    raw = bytearray()
    prev = bytes(width * n)
    for y in range(height):
        row = bytearray()
        for x in range(width):
            p = tuple(fn(x, y))
            if len(p) == 3 and alpha:
                p = p + (255,)
            row += bytes(p[:n])
        row = bytes(row)
        ft = (y % 5) if filter == "cycle" else filter
        raw.append(ft)
        raw += _filter_row(ft, row, prev, n)
        prev = row
    return png_from_parts(width, height, 8, 6 if alpha else 2, zlib.compress(bytes(raw), level))


def png_bomb(width, height):
    """A valid 8-bit greyscale PNG of width x height black pixels: each row
    a filter byte and zeros, so 30000x30000 (900 MB decoded) is under 1 MB
    of zlib. Made fast: one 4 MiB block of zeros is deflated once, ended by
    a full flush (so it refers to nothing before it), and repeated; the
    Adler-32 of n zeros is (n mod 65521) << 16 | 1."""
    total = (width + 1) * height
    block = bytes((width + 1) * max(1, (1 << 22) // (width + 1)))
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    one = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    n, rem = divmod(total, len(block))
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    tail = c.compress(bytes(rem)) + c.flush()
    stream = b"\x78\xda" + one * n + tail + struct.pack(">I", ((total % 65521) << 16) | 1)
    return png_from_parts(width, height, 8, 0, stream)
