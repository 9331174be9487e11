#!/usr/bin/env python3
"""Checks a browser screenshot is not blank (docs/reports.md, "Tested in a browser").

usage: png-check.py FILE.png [--dark]

Decodes the PNG with the standard library only (zlib and the five row filters), then requires:
more than 3% of the pixels unlike the page's background (the top-left pixel), at least 24
distinct colours (text, rules, the charts' palettes), and with --dark a dark background.
Exits 1 with the reason otherwise.
"""
import struct
import sys
import zlib


def decode(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit(f"{path}: not a PNG")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in (2, 6) or interlace:
        sys.exit(f"{path}: only 8-bit RGB/RGBA non-interlaced PNGs are handled (got {header})")
    channels = 3 if colour == 2 else 4
    stride = width * channels
    raw = zlib.decompress(idat)
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        row = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if kind == 1:
            for i in range(channels, stride):
                row[i] = (row[i] + row[i - channels]) & 0xFF
        elif kind == 2:
            for i in range(stride):
                row[i] = (row[i] + previous[i]) & 0xFF
        elif kind == 3:
            for i in range(stride):
                left = row[i - channels] if i >= channels else 0
                row[i] = (row[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = row[i - channels] if i >= channels else 0
                b = previous[i]
                c = previous[i - channels] if i >= channels else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(row)
        previous = row
    return width, height, channels, rows


def main():
    path = sys.argv[1]
    width, height, channels, rows = decode(path)
    background = tuple(rows[0][0:3])
    unlike, colours = 0, set()
    for row in rows:
        for x in range(0, width * channels, channels):
            pixel = (row[x], row[x + 1], row[x + 2])
            colours.add(pixel)
            if pixel != background:
                unlike += 1
    share = unlike / (width * height)
    luminance = (0.2126 * background[0] + 0.7152 * background[1] + 0.0722 * background[2]) / 255
    print(f"{path}: {width}x{height}, {share:.1%} of pixels drawn, {len(colours)} colours, background {background}")
    if share < 0.03:
        sys.exit(f"{path}: blank: only {share:.2%} of the pixels differ from the background")
    if len(colours) < 24:
        sys.exit(f"{path}: only {len(colours)} colours: the charts did not draw")
    if "--dark" in sys.argv and luminance > 0.3:
        sys.exit(f"{path}: dark mode asked, yet the background {background} is light")
    if "--dark" not in sys.argv and luminance < 0.7:
        sys.exit(f"{path}: the light page's background {background} is dark")


main()
