"""Data for bench/chunks.sh: a growing CSV and a multi-page TIFF stack, generated, no downloads.

    python3 bench/chunks.py csv-make PATH BYTES SEED       # header + rows until BYTES
    python3 bench/chunks.py csv-append PATH BYTES SEED     # BYTES more rows, ids continue
    python3 bench/chunks.py tiff-make PATH FRAMES SIDE
    python3 bench/chunks.py tiff-replace PATH INDEX        # new pixels for frame INDEX, in place

The CSV holds sensor readings (an id, a Unix time, a station, five measurements, a status);
no two rows are alike. The TIFF is a classic little-endian TIFF of FRAMES uncompressed
SIDE x SIDE 16-bit grey pages with 12-bit camera-like values, each page's IFD followed by
its pixels (one strip), so replacing a frame rewrites SIDE*SIDE*2 bytes in place.
"""

import os
import random
import struct
import sys

CSV_HEADER = b"id,time,station,temp_c,humidity,pressure_hpa,albedo,wind_ms,status\n"
TWELVE_BITS = bytes(b & 0x0F for b in range(256))  # high byte of a little-endian 12-bit value


def csv_rows(rng, start, nbytes, out):
    buf, size, i = [], 0, start
    while size < nbytes:
        line = "%d,%d,%d,%.3f,%.2f,%.1f,%.4f,%.2f,%d\n" % (
            i, 1700000000 + i * 3, rng.randrange(1, 400), rng.gauss(12.0, 8.0),
            rng.uniform(0, 100), rng.gauss(1013.0, 9.0), rng.random(), rng.expovariate(0.3),
            rng.choice((0, 0, 0, 0, 1, 2)))
        buf.append(line)
        size += len(line)
        i += 1
        if len(buf) >= 50000:
            out.write("".join(buf).encode())
            buf = []
    out.write("".join(buf).encode())


def last_id(path):
    with open(path, "rb") as f:
        f.seek(max(0, os.path.getsize(path) - 4096))
        line = f.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
    return int(line.split(b",", 1)[0])


def pixels(side):
    data = bytearray(os.urandom(side * side * 2))
    data[1::2] = data[1::2].translate(TWELVE_BITS)
    return data


IFD_TAGS = 9  # entries per page IFD
IFD_BYTES = 2 + IFD_TAGS * 12 + 4


def tiff_make(path, frames, side):
    frame_bytes = side * side * 2
    with open(path, "wb") as f:
        f.write(b"II*\x00" + struct.pack("<I", 8))
        for k in range(frames):
            ifd = 8 + k * (IFD_BYTES + frame_bytes)
            data = ifd + IFD_BYTES
            nxt = data + frame_bytes if k + 1 < frames else 0
            entries = [  # (tag, type, count, value); type 3 = SHORT, 4 = LONG
                (256, 4, 1, side), (257, 4, 1, side), (258, 3, 1, 16), (259, 3, 1, 1),
                (262, 3, 1, 1), (273, 4, 1, data), (277, 3, 1, 1), (278, 4, 1, side),
                (279, 4, 1, frame_bytes),
            ]
            assert len(entries) == IFD_TAGS
            f.write(struct.pack("<H", IFD_TAGS))
            for tag, typ, count, value in entries:
                f.write(struct.pack("<HHII", tag, typ, count, value))
            f.write(struct.pack("<I", nxt))
            f.write(pixels(side))


def tiff_replace(path, index):
    with open(path, "r+b") as f:
        f.seek(4)
        (ifd,) = struct.unpack("<I", f.read(4))
        for _ in range(index):  # walk the IFD chain to page INDEX
            f.seek(ifd)
            (n,) = struct.unpack("<H", f.read(2))
            f.seek(ifd + 2 + 12 * n)
            (ifd,) = struct.unpack("<I", f.read(4))
            if ifd == 0:
                sys.exit(f"{path}: no frame {index}")
        f.seek(ifd)
        (n,) = struct.unpack("<H", f.read(2))
        tags = {}
        for _ in range(n):
            tag, _typ, _count, value = struct.unpack("<HHII", f.read(12))
            tags[tag] = value
        f.seek(tags[273])
        f.write(pixels(tags[256]))


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    if cmd == "csv-make":
        with open(path, "wb") as f:
            f.write(CSV_HEADER)
            csv_rows(random.Random(int(sys.argv[4])), 0, int(sys.argv[3]), f)
    elif cmd == "csv-append":
        start = last_id(path) + 1
        with open(path, "ab") as f:
            csv_rows(random.Random(int(sys.argv[4]) * 1000003 + start), start, int(sys.argv[3]), f)
    elif cmd == "tiff-make":
        tiff_make(path, int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "tiff-replace":
        tiff_replace(path, int(sys.argv[3]))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
