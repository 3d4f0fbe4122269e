#!/usr/bin/env python3
"""Measure peak RSS while brim.httpform parses a generated multipart upload.

The body (a few small fields around one big file part, 1 GiB by default)
is generated on the fly by a file-like ``wsgi.input`` stand-in, so nothing
but the parser holds it; the file part is read in 64 KiB chunks and
checksummed, as an app saving an upload would. Prints one line with the
bytes parsed, the time taken and the peak RSS (``ru_maxrss``), and exits 1
if the content came out wrong or the peak exceeds ``--limit-mib``.

Usage: python bench/httpform_rss.py [--size BYTES] [--limit-mib 64]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from brim.httpform import iter_form, parse_attrs  # noqa: E402

BOUNDARY = b'----brimBenchBoundary0123456789'
# A pattern that contains near-misses of the delimiter, to exercise the scan.
PATTERN = (b'\r\n--' + BOUNDARY[:-1] + b'x' + bytes(range(256)) * 255)[:65521]


class GeneratedInput:
    """A read-only stream of ``head + size pattern bytes + tail``, made as it is read."""

    def __init__(self, head: bytes, size: int, tail: bytes) -> None:
        self.head, self.size, self.tail = head, size, tail
        self.pos = 0  # position within the whole stream
        self.total = len(head) + size + len(tail)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            raise ValueError('this bench input only serves sized reads')
        out = []
        while size > 0 and self.pos < self.total:
            pos = self.pos
            if pos < len(self.head):
                piece = self.head[pos:pos + size]
            elif pos < len(self.head) + self.size:
                offset = pos - len(self.head)
                left = self.size - offset
                start = offset % len(PATTERN)
                piece = PATTERN[start:start + min(size, left)]
            else:
                offset = pos - len(self.head) - self.size
                piece = self.tail[offset:offset + size]
            out.append(piece)
            self.pos += len(piece)
            size -= len(piece)
        return b''.join(out)


def expected_crc(size: int) -> int:
    crc = 0
    done = 0
    while done < size:
        piece = PATTERN[:min(len(PATTERN), size - done)]
        crc = zlib.crc32(piece, crc)
        done += len(piece)
    return crc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', type=int, default=1 << 30, help='file part size in bytes (default 1 GiB)')
    parser.add_argument('--limit-mib', type=float, default=64, help='fail if peak RSS exceeds this (MiB)')
    args = parser.parse_args()

    head = (b'--' + BOUNDARY + b'\r\nContent-Disposition: form-data; name="title"\r\n\r\nbench\r\n'
            b'--' + BOUNDARY + b'\r\nContent-Disposition: form-data; name="upload"; filename="big.bin"\r\n'
            b'Content-Type: application/octet-stream\r\n\r\n')
    tail = (b'\r\n--' + BOUNDARY + b'\r\nContent-Disposition: form-data; name="after"\r\n\r\nend\r\n'
            b'--' + BOUNDARY + b'--\r\n')
    wsgi_input = GeneratedInput(head, args.size, tail)
    env = {'CONTENT_TYPE': 'multipart/form-data; boundary=' + BOUNDARY.decode(),
           'CONTENT_LENGTH': str(wsgi_input.total), 'wsgi.input': wsgi_input}

    start = time.monotonic()
    fields = {}
    upload_size, upload_crc = 0, 0
    for part in iter_form(env):
        _value, attrs = parse_attrs(part.get_header('content-disposition', ''))
        if 'filename' in attrs:
            while True:
                chunk = part.fp.read(65536)
                if not chunk:
                    break
                upload_size += len(chunk)
                upload_crc = zlib.crc32(chunk, upload_crc)
        else:
            fields[attrs['name']] = part.fp.read()
    elapsed = time.monotonic() - start
    # Linux reports ru_maxrss in KiB (macOS in bytes).
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_mib = peak / (1024 * 1024) if sys.platform == 'darwin' else peak / 1024

    ok = (fields == {'title': b'bench', 'after': b'end'} and upload_size == args.size
          and upload_crc == expected_crc(args.size))
    print('parsed %d bytes (file part %d B) in %.1f s (%.0f MiB/s); peak RSS %.1f MiB; %s; '
          'Python %s on %s %s' % (wsgi_input.total, upload_size, elapsed,
                                  wsgi_input.total / (1 << 20) / max(elapsed, 1e-9), peak_mib,
                                  'content OK' if ok else 'CONTENT WRONG',
                                  platform.python_version(), platform.system(), platform.machine()))
    if not ok:
        return 1
    if peak_mib > args.limit_mib:
        print('peak RSS %.1f MiB exceeds the %.0f MiB limit' % (peak_mib, args.limit_mib))
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
