"""A reader for Qt's binary resource files (``.rcc``), to get photos out of them.

Some packages (GCompris, for one) ship their pictures only inside compiled Qt
resource bundles. The format, as written by Qt's ``rcc`` tool:

    header   "qres", version (u32), tree offset (u32), data offset (u32),
             names offset (u32), and from version 3 a flags word (u32)
    tree     one node per file or folder, 14 bytes (version 1) or 22 bytes
             (version 2+, with a 64-bit modification time at the end):
               name offset (u32), flags (u16), then
               folder: child count (u32), index of the first child (u32)
               file:   country (u16), language (u16), data offset (u32)
    names    length (u16), hash (u32), then the name in UTF-16BE
    data     length (u32), then the bytes; with flag 1 (zlib) the bytes are
             qCompress output: the uncompressed length (u32) then a zlib stream

All integers are big-endian. Node 0 is the root folder.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

FLAG_COMPRESSED = 0x01
FLAG_DIRECTORY = 0x02
FLAG_COMPRESSED_ZSTD = 0x04


class RccError(ValueError):
    pass


def iter_rcc(blob: bytes) -> Iterator[tuple[str, bytes]]:
    """Yield (path, contents) of every file in a Qt resource bundle.

    Files compressed with zstd (flag 4, Qt 5.13+) are skipped: Python has no zstd
    decoder in its standard library before 3.14.
    """
    if blob[:4] != b"qres":
        raise RccError("not a Qt resource file (no 'qres' magic)")
    version, tree, data, names = struct.unpack_from(">IIII", blob, 4)
    node_size = 14 if version == 1 else 22

    def name_at(offset: int) -> str:
        (length,) = struct.unpack_from(">H", blob, names + offset)
        start = names + offset + 6  # skip the length and the hash
        return blob[start : start + 2 * length].decode("utf-16-be")

    def node(index: int) -> tuple[str, int, bytes]:
        base = tree + index * node_size
        if base + 14 > len(blob):
            raise RccError(f"tree node {index} lies outside the file")
        name_offset, flags = struct.unpack_from(">IH", blob, base)
        return name_at(name_offset), flags, blob[base + 6 : base + 14]

    def walk(index: int, prefix: str, depth: int) -> Iterator[tuple[str, bytes]]:
        if depth > 64:
            raise RccError("resource tree too deep (a loop?)")
        name, flags, rest = node(index)
        path = f"{prefix}/{name}" if prefix else name
        if flags & FLAG_DIRECTORY:
            count, first = struct.unpack(">II", rest)
            for child in range(first, first + count):
                yield from walk(child, path if index else "", depth + 1)
            return
        if flags & FLAG_COMPRESSED_ZSTD:
            return
        (offset,) = struct.unpack_from(">I", rest, 4)
        (length,) = struct.unpack_from(">I", blob, data + offset)
        payload = blob[data + offset + 4 : data + offset + 4 + length]
        if flags & FLAG_COMPRESSED:
            payload = zlib.decompress(payload[4:])
        yield path, payload

    yield from walk(0, "", 0)
