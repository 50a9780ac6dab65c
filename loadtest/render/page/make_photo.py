#!/usr/bin/env python3
# Writes photo.png, the test page's one raster sub-resource: a 640x360
# landscape-like picture (sky and hill gradients with deterministic noise, so
# it compresses like a photo-ish PNG rather than a flat fill). Run once; the
# output is committed so both contenders always load the same bytes.
import struct
import zlib

W, H = 640, 360
seed = 12345


def rnd():
    global seed
    seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
    return (seed >> 16) & 0xFF


rows = bytearray()
for y in range(H):
    rows.append(0)  # filter type: none
    for x in range(W):
        hill = 220 + 40 * ((x - 320) / 320.0) ** 2 * 3
        if x % 8 == 0:  # noise in runs of 8 pixels
            n = rnd() % 8 - 4
        if y < hill:  # sky
            r, g, b = 90 + y // 4, 150 + y // 6, 230 - y // 8
        else:  # grass
            r, g, b = 40 + (x % 97) // 6, 120 + (y - 220) // 3, 50 + (x * y) % 23
        rows += bytes(max(0, min(255, c + n)) for c in (r, g, b))


def chunk(kind, data):
    c = struct.pack(">I", len(data)) + kind + data
    return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


png = b"\x89PNG\r\n\x1a\n"
png += chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 0))
png += chunk(b"IDAT", zlib.compress(bytes(rows), 9))
png += chunk(b"IEND", b"")
open("photo.png", "wb").write(png)
