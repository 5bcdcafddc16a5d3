"""Three of mutagen's file operations done faster on safewrite's overlay (two with the same result).

A tag write runs mutagen's save on `tagger.safewrite`'s overlay (a plan of the new file, not the file).
Two of mutagen's steps cost the scan's parent more there than anything else it does for a track:

- `mutagen._util.move_bytes`, which makes room for a larger tag in front of the audio (FLAC, ID3 in
  an MP3), reads the whole audio a megabyte at a time and writes it back further on; the overlay
  keeps such bytes as references anyway, so `_Overlay.move` places the references without reading.
- `mutagen.ogg.OggPage.renumber`, which gives every page after an Ogg comment that grew by a page
  its new number and CRC, parses and rebuilds each page packet by packet (~50 us a page: 50 ms for a
  4 MB Ogg Vorbis file); `_renumber` reads the pages in large pieces and changes only the 8 bytes a
  page's number changes (its number and its CRC, computed as mutagen computes it), writing each run
  of pages back at once. Anything it does not expect (another stream's page is skipped, as mutagen
  skips it; a damaged page, a page number past 32 bits) is left to mutagen's own renumber from that
  page on, so errors and odd files come out as before.

And one that mutagen does differently, to make the renumbering above rare:

- `mutagen.ogg.OggPage.replace`: when an Ogg comment grows (the first tag of a file without padding,
  with mutagen's new padding: 1 kB + 0.1 % of the file), mutagen lays the header packets out afresh
  in pages of about 4 kB, so they take a page more than before and every later page of the stream is
  renumbered (a new number and CRC in each: 10-15 ms of the parent's CPU for a 2 MB Ogg Vorbis file,
  more for a longer one). `_replace` lays the same packets into as many pages as they had before
  (a page holds up to 255 lacing values, 65,025 bytes; the segments spread evenly over the pages,
  a packet split at a 255-byte boundary as Ogg allows), so the pages after them stay byte for byte
  as they were and are only moved. The header packets, the stream and its decoding are the same; the
  file differs from mutagen's only in where the header pages break (oggenc puts the comment and the
  setup header in one page too; where the comment's page ends inside the setup header, the new last
  page ends after the same bytes of it). Where the packets do not fit (more than 255 lacing values a
  page), the old pages begin inside a packet, or the comment shrank, mutagen's layout and renumbering
  stay.

All three apply only to the overlay (`safewrite.is_overlay`); any other file object, in moodtag or in
the program that imported it (beets), gets mutagen's own code. `install()` is idempotent.
"""
from __future__ import annotations

import itertools
import struct
import zlib

from mutagen import _util, ogg

from tagger.safewrite import is_overlay

_CHUNK = 1 << 20        # bytes read at a time
_HEADER = 27            # an Ogg page header without its lacing values
_SEQUENCE = struct.Struct("<I")
_original_move_bytes = _util.move_bytes
_original_renumber = ogg.OggPage.renumber
_original_replace = ogg.OggPage.replace
_MAX_SEGMENTS = 255     # lacing values a page can hold


def install() -> None:
    if _util.move_bytes is not _move_bytes:
        _util.move_bytes = _move_bytes
    if ogg.OggPage.__dict__["renumber"].__func__ is not _renumber_dispatch:
        ogg.OggPage.renumber = staticmethod(_renumber_dispatch)
    if ogg.OggPage.__dict__["replace"].__func__ is not _replace_dispatch:
        ogg.OggPage.replace = classmethod(_replace_dispatch)


def _move_bytes(fobj, dest: int, src: int, count: int, BUFFER_SIZE: int = _util._DEFAULT_BUFFER_SIZE) -> None:
    if is_overlay(fobj):
        fobj.move(dest, src, count, BUFFER_SIZE)
    else:
        _original_move_bytes(fobj, dest, src, count, BUFFER_SIZE)


def _renumber_dispatch(fileobj, serial: int, start: int) -> None:
    if is_overlay(fileobj):
        _renumber(fileobj, serial, start)
    else:
        _original_renumber(fileobj, serial, start)


def _replace_dispatch(cls, fileobj, old_pages, new_pages) -> None:
    if is_overlay(fileobj):
        new_pages = _same_page_count(old_pages, new_pages)
    _original_replace(fileobj, old_pages, new_pages)


def _same_page_count(old_pages: list, new_pages: list) -> list:
    """`new_pages`' packets laid into as many pages as `old_pages` (see the module) when they take more;
    `new_pages` itself where they take as many or fewer, or cannot be: the old pages begin inside a
    packet, or the packets need more lacing values than the old pages hold. Old pages that end inside
    a packet (the comment's page holds the start of the setup header, whose rest is on the next page,
    as some encoders lay them out) end inside it again, after the same bytes of it."""
    n = len(old_pages)
    if len(new_pages) <= n or not n or old_pages[0].continued:
        return new_pages  # as many pages already, or fewer: a comment that shrank is laid out as mutagen does
    packets = ogg.OggPage.to_packets(new_pages)
    goes_on = not old_pages[-1].complete   # the last packet goes on in the next page (a setup header begun)
    if goes_on and (not packets[-1] or len(packets[-1]) % 255):
        return new_pages
    segments = [(i, lace == len(packet) // 255) for i, packet in enumerate(packets)
                for lace in range(len(packet) // 255 + 1)]   # (packet, whether its last) per lacing value
    if goes_on:
        segments.pop()   # its end is on the next page
    if not n <= len(segments) <= _MAX_SEGMENTS * n:   # each page needs one lacing value, holds 255
        return new_pages
    cuts = [len(segments) * k // n for k in range(n + 1)]
    done = [0] * len(packets)   # bytes of each packet laid out so far
    pages = []
    for k in range(n):
        page = ogg.OggPage()
        run = segments[cuts[k]:cuts[k + 1]]
        page.continued = cuts[k] > 0 and not segments[cuts[k] - 1][1]
        page.complete = run[-1][1]
        for i, group in itertools.groupby(run, key=lambda segment: segment[0]):
            lasts = [last for _, last in group]
            size = len(packets[i]) - done[i] if lasts[-1] else 255 * len(lasts)
            page.packets.append(packets[i][done[i]:done[i] + size])
            done[i] += size
        page.position = 0 if any(last for _, last in run) else -1   # -1: no packet ends here
        pages.append(page)
    return pages


def _renumber(fileobj, serial: int, start: int) -> None:
    """mutagen's OggPage.renumber(fileobj, serial, start): the pages of stream `serial` from the
    position on are numbered from `start`, each with its CRC made again; other streams' pages are
    left as they are. The same bytes, and the same position at the end."""
    number = start
    pos = fileobj.tell()            # the page to look at
    buf, buf_at = b"", pos          # bytes of the file from buf_at
    run, run_at = bytearray(), pos  # renumbered pages not written yet, from run_at
    eof = False
    while True:
        i = pos - buf_at
        if len(buf) - i < _HEADER + 255 and not eof:   # header and lacing values, at least
            buf, buf_at, eof = _more(fileobj, buf, buf_at, pos, 0)
            i = 0
        header = buf[i:i + _HEADER]
        if len(header) < _HEADER:
            if header.strip(b"\0"):
                break                   # a torn header: mutagen says so
            _flush(fileobj, run, run_at)
            fileobj.seek(buf_at + len(buf))  # mutagen stops at the end, having read the rest
            return
        if header[:4] != b"OggS" or header[4] != 0:
            break
        segments = header[26]
        lacing = buf[i + _HEADER:i + _HEADER + segments]
        size = _HEADER + segments + sum(lacing)
        if len(lacing) < segments:
            break
        if len(buf) - i < size and not eof:
            buf, buf_at, eof = _more(fileobj, buf, buf_at, pos, size)
            i = 0
        if len(buf) - i < size:
            break                       # cut short: mutagen says so
        if _SEQUENCE.unpack_from(buf, i + 14)[0] != serial:
            _flush(fileobj, run, run_at)
            run, pos = bytearray(), pos + size
            run_at = pos
            continue
        if number > 0xFFFFFFFF:
            break
        page = bytearray(buf[i:i + size])
        page[18:26] = _SEQUENCE.pack(number) + b"\0\0\0\0"
        page[22:26] = _crc(page)
        run += page
        pos += size
        number += 1
        if len(run) >= _CHUNK:          # written as it goes, as mutagen's pages are (the overlay counts them)
            _flush(fileobj, run, run_at)
            run, run_at = bytearray(), pos
    _flush(fileobj, run, pos - len(run))
    fileobj.seek(pos)
    _original_renumber(fileobj, serial, number)   # from the page it does not expect: mutagen's way


def _more(fileobj, buf: bytes, buf_at: int, pos: int, need: int) -> tuple[bytes, int, bool]:
    """The bytes from `pos` on: those of `buf` still ahead, and more read (at least `need` in all,
    where the file has them). Returns (buf, buf_at, at the end of the file)."""
    kept = buf[pos - buf_at:]
    fileobj.seek(pos + len(kept))
    parts, have, eof = [kept], len(kept), False
    while have < max(need, _HEADER + 255):
        data = fileobj.read(max(_CHUNK, need - have))
        if not data:
            eof = True
            break
        parts.append(data)
        have += len(data)
    return b"".join(parts), pos, eof


def _flush(fileobj, run: bytearray, at: int) -> None:
    if run:
        fileobj.seek(at)
        fileobj.write(bytes(run))


def _crc(page: bytearray) -> bytes:
    """The page's CRC field (the field itself zero in `page`), as mutagen's OggPage.write makes it."""
    crc = (~zlib.crc32(page.translate(_util.cdata.bitswap), -1)) & 0xFFFFFFFF
    return _util.cdata.to_uint_be(crc).translate(_util.cdata.bitswap)
