"""Cache rows -> mood playlists (M3U8, M3U or XSPF), streamed.

`playlist_layout` turns the command's options into a `PlaylistLayout` (format, the folder paths are
relative to, and the library folder a player such as MPD confines entries to); `select_entries` picks the
cached tracks of one mood (analysed by one model, tag write failed or not, file still on disk,
optionally under some folders) in the order asked for; `playlist_chunks` turns them into the text of a
playlist whose paths are absolute or relative to a base folder; `write_playlist` writes it atomically.
`save_playlist` and `print_playlist` do all three as one stream, row by row, so that a playlist of
100,000 tracks costs no more memory than one of 100. Audio files are never opened: one existence check
per candidate row (os.access, which builds no stat result), nothing more.
"""
from __future__ import annotations

import itertools
import json
import os
import random
import re
import stat
import tempfile
from array import array
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator
from urllib.parse import quote_from_bytes

from tagger.atomic import replace_file, why_not_written
from tagger.errors import MoodtagError, OptionsError
from tagger.records import key_bytes

if TYPE_CHECKING:  # the cache (sqlite-utils) is imported when used, so that `--help` stays quick
    from tagger.cache import Cache

ORDERS = ("score", "shuffle", "path", "album")
FORMATS = ("m3u8", "m3u", "xspf")
M3U_FORMATS = ("m3u8", "m3u")  # the same text (UTF-8 extended M3U); only the file suffix differs
# Players whose playlist folder takes only certain files: MPD 0.23 lists NAME.m3u in its
# playlist_directory, reads it as UTF-8, and resolves relative lines against its music_directory.
PLAYERS = {"mpd": "m3u"}
XSPF_NS = "http://xspf.org/ns/0/"
CHUNK_LINES = 2000  # playlist lines handed on at a time
SHUFFLE_FUNCTION = "moodtag_shuffled_place_{}"  # SQL function: row id -> its place in one shuffled playlist
DENSE_ROWIDS = 4  # row ids spread over less than 4 times their number: their places go in an array

# Every character that a line-oriented reader (Python's str.splitlines included) may take as the end
# of a line: a path holding one cannot be written as a single M3U line. MPD splits a playlist on '\n'
# only, and loads a name holding any of the others (tests/test_mpd.py): for MPD only '\n' and '\r' (the
# end of a line to most other readers) keep a name out (MPD_LINE_BREAKS).
LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")
MPD_LINE_BREAKS = frozenset("\n\r")
_LINE_BREAK_RE = re.compile("[" + re.escape("".join(sorted(LINE_BREAKS))) + "]+")
# moodtag's mark on the playlists it writes, so that it replaces its own and no one else's
# (check_replaceable). M3U: a plain comment line after #EXTM3U, not `#PLAYLIST:NAME`, which Navidrome
# takes as the playlist's name in place of the file name the user chose (`-o "Evening.m3u8"`); every
# reader skips a '#' line it does not know: MPD skips all of them, Navidrome all but #PLAYLIST:
# (core/playlists.go), Jellyfin's PlaylistsNET all but #EXTINF, #EXTALB, #EXTART, VLC all but its
# directives (m3u.c: '# moodtag:' is none). Line 1 stays exactly #EXTM3U (PlaylistsNET compares the line).
M3U_MARK = "# moodtag: "
# XSPF: the playlist's <creator>, "the entity that authored the playlist" (XSPF 1.0), before <trackList>.
XSPF_MARK = "<creator>moodtag</creator>"
MARK_READ = 65536  # bytes read from the start of a file to find the mark (the head is far shorter)
# What quote_from_bytes(..., safe="/") leaves as it is.
_URI_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~/")
# Characters XML 1.0 cannot hold at all (tag texts are cleaned of them).
_XML_INVALID_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

_ORDER_SQL = {
    "score": "confidence DESC, path",
    "path": "path",
    "album": "album IS NULL, album COLLATE NOCASE, artist COLLATE NOCASE, path",
}


@dataclass(frozen=True)
class PlaylistRequest:
    """What goes into one playlist.

    model: (name, version) of the model whose results count, or None for results of any model.
    roots: only files at or under these paths (none: the whole cache), and those of `files`.
    files: the cache keys of single files a PATH's symlinks lead to (PathFilter), besides `roots`.
    limit: at most this many entries (after ordering; None: all).
    """

    mood: str
    model: tuple[str, str] | None = None
    min_confidence: float = 0.0
    roots: tuple[Path, ...] = ()
    files: tuple[str, ...] = ()
    order: str = "score"
    seed: int | None = None
    limit: int | None = None


@dataclass(slots=True)
class PlaylistEntry:
    """One cached track as a playlist needs it (not frozen: a frozen dataclass costs 1.6 us to make,
    a second for a playlist of 100,000 tracks with its checks)."""

    path: str                  # absolute path as the cache keys it
    raw_path: bytes | None     # the file name's bytes when they are not valid UTF-8
    mood: str
    confidence: float
    duration: float | None = None
    artist: str | None = None
    title: str | None = None
    album: str | None = None

    @property
    def fs_path(self) -> bytes:
        """The path to hand to the OS, as bytes (records.key_bytes: the key's UTF-8, whatever the locale)."""
        return key_bytes(self.path, self.raw_path)

    @property
    def display_title(self) -> str:
        """'Artist - Title', or the title, or the file name's stem; on one line."""
        artist, title = self.artist, self.title
        if artist and title and artist.isprintable() and title.isprintable():  # no line break: most tags
            artist, title = artist.strip(), title.strip()
        else:
            artist, title = _one_line(artist), _one_line(title)
        if artist and title:
            text = f"{artist} - {title}"
        else:
            text = title or _one_line(Path(self.path).stem) or Path(self.path).name
        return text


@dataclass
class LeftOut:
    """Cached tracks a playlist leaves out, noted while the entries are read.

    missing: how many files are gone from disk; unwritable: (path, why) the format or the player cannot
    hold; outside: how many lie outside the player's music folder (`PlaylistLayout.library`), and the first.
    """

    missing: int = 0
    unwritable: list[tuple[str, str]] = field(default_factory=list)
    outside: int = 0
    first_outside: str | None = None

    @classmethod
    def joined(cls, parts: Iterable["LeftOut"]) -> "LeftOut":
        """What the runs of one playlist left out, in their order, as one."""
        whole = cls()
        for part in parts:
            whole.missing += part.missing
            whole.unwritable += part.unwritable
            whole.outside += part.outside
            whole.first_outside = whole.first_outside or part.first_outside
        return whole


@dataclass(frozen=True)
class Written:
    """A playlist written: how many entries went in, and what was left out."""

    request: PlaylistRequest
    fmt: str
    count: int
    left_out: LeftOut

    @property
    def mood(self) -> str:
        return self.request.mood


@dataclass(frozen=True)
class PlaylistLayout:
    """How a playlist file is written.

    fmt: m3u8, m3u or xspf. base: the folder paths are relative to (None: absolute paths).
    library: a player's music folder (MPD's music_directory) when the playlist is for that player: entries
    outside it are left out, and so are names the player's reader would change (see `library_problem`).
    home: the folder named by --relative-to or --music-dir, as named: an entry whose folder lies in it once
    symlinks are resolved on both sides is written under it, as a player that follows its links finds it
    (Debian's /var/lib/mpd/music is often a link to ~/Music, and a scan may have gone through either).
    """

    fmt: str = "m3u8"
    base: Path | None = None
    library: Path | None = None
    home: Path | None = None


def playlist_layout(folder: Path | None, *, dest: Path | None = None, fmt: str | None = None,
                    relative_to: Path | None = None, absolute: bool = False, player: str | None = None,
                    music_dir: Path | None = None) -> PlaylistLayout:
    """The layout the playlist options ask for.

    folder: where the playlist file goes (None: printed). dest: the file, whose suffix names the format when
    `fmt` does not. player "mpd" with music_dir: MPD's stored playlist (m3u, paths relative to music_dir).
    Raises OptionsError for options that contradict each other.
    """
    if player is None:
        if music_dir is not None:
            raise OptionsError("--music-dir goes with --for (e.g. --for mpd --music-dir ~/Music)")
        base = playlist_base(folder, relative_to=relative_to, absolute=absolute)
        return PlaylistLayout(format_for(dest, fmt), base, home=base if relative_to is not None else None)
    if player not in PLAYERS:
        raise MoodtagError(f"unknown player {player!r} (choose one of: {', '.join(PLAYERS)})")
    wanted = PLAYERS[player]
    if music_dir is None:
        raise OptionsError(f"--for {player} needs --music-dir DIR: the player's music folder (MPD's music_directory), "
                           "which playlist paths are relative to")
    if absolute or relative_to is not None:
        raise OptionsError(f"--for {player} writes paths relative to --music-dir; leave out --absolute and --relative-to")
    if fmt is not None and fmt != wanted:
        raise OptionsError(f"--for {player} writes {wanted} (the only playlists {player.upper()} lists in its playlist "
                           f"folder), not {fmt}")
    if dest is not None and (dest.suffix != f".{wanted}" or "\n" in dest.name or "\r" in dest.name):
        # MPD lists NAME.m3u, the suffix in lower case, and no name holding a line break
        from tagger.records import printable

        raise OptionsError(f"{printable(str(dest))}: a playlist for {player.upper()} must be named NAME.{wanted} "
                           f"(.{wanted} in lower case, no line break in NAME)")
    library = existing_folder(music_dir, "--music-dir")
    return PlaylistLayout(wanted, library, library=library, home=library)


def save_playlist(cache: Cache, request: PlaylistRequest, dest: Path,
                  layout: PlaylistLayout = PlaylistLayout()) -> Written:
    """Select the tracks `request` asks for and write them to `dest` as the layout says, streamed from the
    cache into the file (memory flat), atomically."""
    left_out, counted = LeftOut(), _Counted()
    entries = counted.of(select_entries(cache, request, fmt=layout.fmt, library=layout.library, home=layout.home, left_out=left_out))
    write_playlist(playlist_chunks(entries, fmt=layout.fmt, base=layout.base, mood=request.mood, checked=True),
                   dest)
    return Written(request, layout.fmt, counted.n, left_out)


def save_playlists(cache: Cache, requests: list[tuple[PlaylistRequest, Path]], layout: PlaylistLayout = PlaylistLayout(),
                   *, side_by_side: int = 1, min_rows: int = 0) -> Iterator[Written]:
    """save_playlist for each (request, dest), the results in order.

    With side_by_side > 1, no limit, and at least `min_rows` tracks in the playlists together, the work is
    shared out among that many processes (tagger.forked) in equal runs of the playlists' tracks, one after
    the other (a run may end one playlist and begin the next): each playlist's order (its row ids) is read
    once, here, before the processes start (they inherit it: if a scan writes meanwhile, no track is
    listed twice or lost); each process reads its runs' rows through its own connection (opened with
    Cache.open_readonly), checks their files, writes their entries into temporary files; then each
    playlist is put together here, in order, and written atomically. The same bytes as one process (for
    --order shuffle without a seed, one is drawn here, so that every process draws the same permutation)."""
    from tagger.forked import kept_blocks, run_parts

    if side_by_side <= 1 or any(request.limit is not None for request, _ in requests):
        yield from _save_each(cache, requests, layout)
        return
    orders = [read_order(cache, request) for request, _ in requests]  # here: one read, whatever is written later
    total = sum(len(order) for order in orders)
    if total < max(min_rows, side_by_side):
        yield from _save_each(cache, requests, layout)
        return
    # A shuffle's permutation is drawn in each process that needs it (in parallel), from the same row ids and
    # the same seed: one drawn here when none was given.
    seeded = [replace(request, seed=random.SystemRandom().randrange(1 << 64))
              if request.order == "shuffle" and request.seed is None else request for request, _ in requests]
    shares: list[list[tuple[int, int, int]]] = []  # per process: (playlist, first place, place after)
    starts = list(itertools.accumulate((len(order) for order in orders), initial=0))
    for p in range(side_by_side):
        low, high, share = total * p // side_by_side, total * (p + 1) // side_by_side, []
        for j, order in enumerate(orders):
            first, after = max(low, starts[j]), min(high, starts[j + 1])
            if first < after:
                share.append((j, first - starts[j], after - starts[j]))
        shares.append(share)
    files = {piece: tempfile.TemporaryFile() for share in shares for piece in share}  # deleted already

    def part(share):
        def write_share() -> list[tuple[int, LeftOut]]:
            with cache.reader() as mine:
                return [_write_piece(mine, requests[j][0], layout, arranged(orders[j], seeded[j]), first, after,
                                     files[j, first, after]) for j, first, after in share]
        return write_share

    done: dict[tuple[int, int, int], tuple[int, LeftOut]] = {}
    try:
        with cache.released():
            for share, results in zip(shares, run_parts([part(share) for share in shares], end_children_on_error=True)):
                done.update(zip(share, results))
        for j, (request, dest) in enumerate(requests):
            pieces = sorted(piece for piece in done if piece[0] == j)
            head = "".join(playlist_chunks([], fmt=layout.fmt, base=layout.base, mood=request.mood, tail=False))
            tail = "".join(playlist_chunks([], fmt=layout.fmt, base=layout.base, mood=request.mood, head=False))
            write_playlist(itertools.chain([head], *(kept_blocks(files[piece]) for piece in pieces), [tail]), dest)
            counts = [done[piece] for piece in pieces]
            yield Written(request, layout.fmt, sum(n for n, _ in counts), LeftOut.joined(left for _, left in counts))
    finally:
        for file in files.values():
            file.close()


def _save_each(cache: Cache, requests: list[tuple[PlaylistRequest, Path]], layout: PlaylistLayout) -> Iterator[Written]:
    for request, dest in requests:
        yield save_playlist(cache, request, dest, layout)


def _write_piece(cache: Cache, request: PlaylistRequest, layout: PlaylistLayout, order: Places, first: int,
                 after: int, file) -> tuple[int, LeftOut]:
    """The entries of the places [first, after) of a playlist, as its text holds them (no head, no tail),
    into `file` as UTF-8; how many, and what was left out."""
    left_out, counted = LeftOut(), _Counted()
    entries = counted.of(select_entries(cache, request, fmt=layout.fmt, library=layout.library, home=layout.home, left_out=left_out,
                                        places=(order, first, after)))
    for chunk in playlist_chunks(entries, fmt=layout.fmt, base=layout.base, checked=True, head=False, tail=False):
        file.write(chunk.encode("utf-8"))
    file.flush()  # a forked process ends without flushing what it buffered
    return counted.n, left_out


def print_playlist(cache: Cache, request: PlaylistRequest, write: Callable[[str], None],
                   layout: PlaylistLayout = PlaylistLayout()) -> Written:
    """As save_playlist, but each chunk of text goes to `write` (standard output)."""
    left_out, counted = LeftOut(), _Counted()
    entries = counted.of(select_entries(cache, request, fmt=layout.fmt, library=layout.library, home=layout.home, left_out=left_out))
    for chunk in playlist_chunks(entries, fmt=layout.fmt, base=layout.base, mood=request.mood, checked=True):
        write(chunk)
    return Written(request, layout.fmt, counted.n, left_out)


class _Counted:
    """Counts what passes through `of`."""

    n = 0

    def of(self, items: Iterable):
        for item in items:
            self.n += 1
            yield item


def resolve_labels(cache: Cache, *, model: str | None, any_model: bool) -> tuple[tuple[str, ...], tuple[str, str] | None]:
    """The moods a playlist may be made of, and the (name, version) whose results count.

    Reads only the model file's spec (no tensors, no torch). With `any_model`, the moods found in the cache count
    too, and a missing default model is no error.
    """
    from tagger.cache import HAS_MOOD_SQL, TABLE
    from tagger.errors import ModelError
    from tagger.weights import read_spec, resolve_model

    try:
        spec = read_spec(resolve_model(model))
    except ModelError as exc:
        if model is not None:
            raise
        if not any_model:
            raise ModelError(f"{exc}; name one with --model, or use --any-model") from None
        spec = None
    labels = list(spec.labels) if spec else []
    if any_model:
        for (mood,) in cache.rows(
                f"SELECT DISTINCT mood FROM {TABLE} WHERE {HAS_MOOD_SQL} AND mood IS NOT NULL ORDER BY mood"):
            if mood not in labels:
                labels.append(mood)
    if not labels:
        raise MoodtagError(f"{cache.path}: no analysed tracks in the cache, and no model to take moods from")
    return tuple(labels), (None if any_model or spec is None else (spec.name, spec.version))


@dataclass(frozen=True)
class OtherModels:
    """The rows of a playlist's selection that another model (or version) made, which the model filter
    leaves out and --any-model would take: how many, the models ("name version", most rows first), and
    whether the current model has any row of the selection at all (False: after an upgrade, before the
    rescan, the playlist comes out empty)."""

    count: int = 0
    models: tuple[str, ...] = ()
    current: bool = True
    option: str | None = None  # the --model value that selects models[0] (a shipped model's name), None: none known
    scan: str = "moodtag scan"  # the command that analyses them again with the current model
    model: str = ""  # the current model, "name version"
    newer: tuple[str, str] | None = None  # (--model value, "name version") of the shipped model now named as
    # models[0] was, where that is another model than the current one (the default: no --model given) and
    # another version than models[0]'s

    def advice(self) -> str:
        """What to do about them, for a message's end: the --model that lists them where a shipped model is
        the one that analysed them (a `moodtag scan` would analyse a library scanned with `--model moodtag-cnn`
        again with the default model, and rewrite every file's mood), else a scan; or --any-model."""
        if self.option is None and self.newer is not None:  # an older version of another shipped model
            return (f"`moodtag scan --model {self.newer[0]}` analyses {'them' if self.count != 1 else 'it'} again "
                    f"with {self.newer[1]}, then `--model {self.newer[0]}` lists {'them' if self.count != 1 else 'it'}; "
                    f"or --any-model")
        if self.option is None:
            return f"run `{self.scan}`, or --any-model"
        it = "them" if self.count != 1 else "it"
        which = f"{it}, or --any-model" if len(self.models) == 1 else f"those of {self.models[0]}, --any-model all"
        return f"`--model {self.option}` lists {which}; `{self.scan}` analyses {it} again with {self.model}"


def other_models(cache: Cache, request: PlaylistRequest, model: str | None = None) -> OtherModels:
    """What `request`'s model filter leaves out (nothing without one); one query over the playlist index,
    and one more when it leaves out something. `model`: the --model given (None: the default), for the
    advice's scan."""
    from tagger.cache import TABLE

    if request.model is None:
        return OtherModels()
    where, params = _selection(replace(request, model=None, limit=None))
    rows = list(cache.rows(f"SELECT model_name, model_version, count(*) FROM {TABLE} WHERE {where} AND "
                           "(model_name IS NOT ? OR model_version IS NOT ?) GROUP BY 1, 2 ORDER BY 3 DESC",
                           [*params, *request.model]))
    if not rows:
        return OtherModels()
    from tagger.records import command_word

    where, params = _selection(replace(request, limit=None))
    return OtherModels(sum(n for *_, n in rows), tuple(f"{name} {version}" for name, version, _ in rows),
                       cache.one(f"SELECT 1 FROM {TABLE} WHERE {where} LIMIT 1", params) is not None,
                       option=_model_option(*rows[0][:2]),
                       scan="moodtag scan" + ("" if model is None else f" --model {command_word(model)}"),
                       model=" ".join(request.model),
                       newer=None if model is not None else _newer(rows[0][0], rows[0][1], request.model[0]))


def _model_option(name: str | None, version: str | None) -> str | None:
    """The --model value that selects the model `name` `version`, as a word of a command (records.command_word):
    the shipped model's name where one is that model and the name finds it (not a file of that name in the
    current folder), else its file; None where no shipped model is (an older version, a model of your own)."""
    found = _shipped(name)
    return found[0] if found is not None and found[1].version == version else None


def _newer(name: str | None, version: str | None, current: str | None) -> tuple[str, str] | None:
    """(--model value, "name version") of the shipped model named `name` where its version is not `version`
    and `name` is not the `current` model's: rows of an older moodtag-cnn, after an upgrade, are analysed
    again by `--model moodtag-cnn`, not by a plain scan (the default model: every file's mood rewritten)."""
    found = None if name == current else _shipped(name)
    if found is None or found[1].version == version:
        return None
    return found[0], f"{found[1].name} {found[1].version}"


def _shipped(name: str | None):
    """(--model value, spec) of the shipped model named `name`: its name where the name finds it (not a file of
    that name in the current folder), else its file, as a word of a command; None where none is."""
    from tagger.errors import ModelError
    from tagger.records import command_word
    from tagger.weights import read_spec, resolve_model, shipped_models

    for path in shipped_models():
        try:
            spec = read_spec(path)
            if spec.name != name:
                continue
            return command_word(path.stem if resolve_model(path.stem) == path else str(path)), spec
        except ModelError:
            continue
    return None


def check_not_emptied(dest: Path, request: PlaylistRequest, others: OtherModels, fmt: str) -> None:
    """Raise MoodtagError rather than replace a playlist file that has entries with an empty one because
    every track of its selection was analysed by another model: a cron job running `playlists` after an
    upgrade, before the rescan, would otherwise lose its playlists with exit status 0. An empty playlist
    for any other reason (no such tracks; files gone: see check_not_gone) is written: that is the library's state."""
    if others.current or not others.count or not playlist_has_entries(dest.expanduser(), fmt):
        return
    raise MoodtagError(f"{dest}: not replaced by an empty {request.mood} playlist: its {others.count} cached "
                       f"track{'s were' if others.count != 1 else ' was'} analysed by another model "
                       f"({', '.join(others.models)}): {others.advice()}")


def check_not_gone(cache: Cache, dest: Path, request: PlaylistRequest, fmt: str, *,
                   library: Path | None = None) -> None:
    """Raise MoodtagError rather than replace a playlist file that has entries with an empty one because no
    file of its selection is on disk now: the cache keys tracks by absolute path, so a disk not mounted, or
    mounted at another place (a USB stick at /media/USER/STICK1, no longer STICK), would empty every playlist
    with exit status 0. With a player's `library` (--for mpd --music-dir), only the tracks in it count: the
    other disk's tracks, there but outside MPD's music folder, are left out of its playlist all the same. Some
    of its files there (left out for another reason or not), or none selected: the playlist is written, as
    before."""
    if request.limit == 0 or not playlist_has_entries(dest.expanduser(), fmt):
        return
    n = gone_selection(cache, request, library=library)
    if n:
        tracks = f"none of its {n} cached {request.mood} tracks is" if n != 1 else \
            f"its one cached {request.mood} track is not"
        from tagger.records import printable

        away = away_disks(cache, request)
        disks = ", ".join(printable(point) for point in away.points)
        if away.only:  # prune keeps them: `moodtag prune` forgets none of them
            raise MoodtagError(f"{dest}: not replaced by an empty {request.mood} playlist: {tracks} on disk now: "
                               f"{'it lies' if n == 1 else 'they lie'} on a disk not mounted now ({disks}): mount it; "
                               f"{'it is' if n == 1 else 'they are'} {away.kept()}")
        raise MoodtagError(f"{dest}: not replaced by an empty {request.mood} playlist: {tracks} on disk now (a disk "
                           "not mounted, or the library moved?): mount it, or `moodtag scan` the library where it is "
                           "now and where it was; `moodtag prune` forgets the tracks gone" +
                           (f", not those on a disk not mounted now ({disks}): {away.kept()}" if away.points else ""))


@dataclass(frozen=True)
class AwayDisks:
    """Where the files of a playlist's selection not on disk now lie on a disk a scan saw mounted that is not
    mounted now (Mounts.away): its mount points, whether all of those files do (`only`), and, per mount
    point, the places outside it the cache reaches the disk's files through (`linked`, cache.reached_through:
    the library's folder `~/Music/USB -> /media/USER/USB`), which `prune --forget-disk MOUNT` must name
    beside it to forget the rows kept under them."""

    points: tuple[bytes, ...] = ()
    only: bool = False
    linked: dict[bytes, tuple[bytes, ...]] = field(default_factory=dict)

    def kept(self) -> str:
        """What prune does with their rows, with the command that forgets them (plain text, paths quoted for a
        shell): kept until the disk is mounted again, or `--forget-disk` names it."""
        from tagger.records import forget_disk_command

        if len(self.points) == 1:
            point = self.points[0]
            return (f"kept until it is mounted again, or `{forget_disk_command(point, self.linked.get(point, ()))}` "
                    f"if it is gone for good")
        if not any(self.linked.values()):
            return "kept until they are mounted again, or `moodtag prune --forget-disk MOUNT` for one gone for good"
        return ("kept until they are mounted again, or `moodtag prune --forget-disk MOUNT PATH...` for one gone for "
                "good (PATH: the library's folders linked into it)")


def away_disks(cache: Cache, request: PlaylistRequest) -> AwayDisks:
    """The disks not mounted now that the files of `request`'s selection (its limit aside) not on disk now lie
    on (AwayDisks); none, with no query beyond reading the mount table, where no disk a scan saw is away."""
    mounts = cache.mounts()
    if not mounts.away_around("/"):
        return AwayDisks()
    from tagger.cache import TABLE, _at_or_inside, reached_through

    where, params = _selection(replace(request, limit=None))
    linked: dict[bytes, dict[bytes, None]] = {}
    reals: dict[bytes, bytes] = {}
    elsewhere = False
    for path, raw in cache.rows(f"SELECT path, path_bytes FROM {TABLE} WHERE {where}", params):
        name = key_bytes(path, raw)
        if os.path.exists(name):  # as a playlist looks (a broken link's file is not there)
            continue
        point = mounts.away(name)
        if point is None:
            elsewhere = True
            continue
        places = linked.setdefault(point, {})
        if not _at_or_inside(name, point):
            places[reached_through(name, point, reals)] = None
    return AwayDisks(tuple(sorted(linked)), bool(linked) and not elsewhere,
                     {point: tuple(places) for point, places in linked.items()})


def check_not_unscanned(dest: Path, request: PlaylistRequest, places: PathFilter, fmt: str) -> None:
    """Raise MoodtagError rather than replace a playlist file that has entries with an empty one because no
    PATH given finds a cached track (PathFilter.none_found): a USB stick mounted at another place, named by
    its new path (/media/USER/STICK1/Music, scanned as STICK), selects nothing: check_not_gone let that
    through, and every playlist was emptied with exit status 0. A PATH that finds none beside one that finds
    some, a playlist not there yet, or one already empty: the playlist is written (empty), as before."""
    if request.limit == 0 or not places.none_found or not playlist_has_entries(dest.expanduser(), fmt):
        return
    one = len(places.empty) == 1
    raise MoodtagError(f"{dest}: not replaced by an empty {request.mood} playlist: no cached tracks under "
                       f"{', '.join(map(str, places.empty))}, nor where {'its' if one else 'their'} symlinks lead "
                       f"(a disk mounted at another place than where it was scanned, or "
                       f"{'a PATH' if one else 'PATHs'} never scanned?): `moodtag scan` {'it' if one else 'them'}, "
                       f"or name {'it as it was' if one else 'them as they were'} scanned")


def gone_selection(cache: Cache, request: PlaylistRequest, *, library: Path | None = None) -> int:
    """How many tracks `request` selects (its limit aside; with `library`, those in it, symlinks resolved)
    when none of their files is on disk now; 0 when one is (the first one found ends the look: one existence
    check, as a playlist makes, in the usual case) or none is selected."""
    from tagger.cache import TABLE, filter_roots

    where, params = _selection(replace(request, limit=None))
    access, effective, n = os.access, os.access in os.supports_effective_ids, 0
    inside = [os.fsencode(place).rstrip(b"/") + b"/" for place in filter_roots([library])] if library else []
    for path, raw_path in cache.rows(f"SELECT path, path_bytes FROM {TABLE} WHERE {where}", params):
        name = key_bytes(path, raw_path)
        if inside:
            if not any(name.startswith(folder) for folder in inside) and not any(
                    os.path.realpath(name).startswith(folder) for folder in inside):
                continue  # outside the player's music folder: left out of its playlist whatever its disk
        try:
            if access(name, os.F_OK, effective_ids=effective):
                return 0
        except ValueError:  # a NUL in the name: no such file
            pass
        n += 1
    return n


def check_replaceable(dest: Path, mood: str, fmt: str, *, force: bool = False) -> None:
    """Raise MoodtagError rather than replace a playlist file that moodtag did not write: a regular file
    with entries (playlist_has_entries) and no mark of moodtag's (written_by_moodtag), such as the calm.m3u
    that MPD's `mpc save calm` writes into its playlist folder (bare paths, no #EXTM3U) or a user's own
    calm.m3u8, which `playlists` replaced with exit status 0. `force` (--force) replaces it. A file with no
    entries is replaced, and a pipe or a device is written into (never read), as before. moodtag 0.4 and
    earlier marked none of their playlists, and a player that saves one (MPD after an edit) drops the mark:
    each needs --force once, which the message says."""
    path = dest.expanduser()
    try:
        regular = stat.S_ISREG(os.stat(path).st_mode)
    except OSError:  # none there (nor behind a link): nothing to lose
        return
    if force or not regular or written_by_moodtag(path) or not playlist_has_entries(path, fmt):
        return
    mark = XSPF_MARK if fmt == "xspf" else f"'{M3U_MARK.strip()}' line"
    raise MoodtagError(f"{dest}: not replaced by the {mood} playlist: it has entries and no {mark}, the mark of a "
                       "playlist moodtag wrote (a player that saved it, as MPD does after an edit, leaves it out, "
                       "and moodtag 0.4 or earlier wrote none): move it, or --force to replace it")


def _m3u_marked(head: bytes) -> bool:
    """Whether an M3U's first bytes hold moodtag's mark among the lines before its first entry (a line
    of text, after a byte order mark, CRLF or lines an editor or another program put before it)."""
    mark = M3U_MARK.strip().encode()
    for line in head.removeprefix(b"\xef\xbb\xbf").splitlines():
        line = line.strip()
        if line.startswith(mark):
            return True
        if line and not line.startswith(b"#"):
            return False  # an entry: the head is over
    return False


def written_by_moodtag(path: Path) -> bool:
    """Whether the file at `path` carries moodtag's mark: M3U_MARK on a line before its first entry, or XSPF_MARK
    before <trackList> (read from its first MARK_READ bytes; False if it cannot be read)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(MARK_READ)
    except OSError:
        return False
    if _m3u_marked(head):
        return True
    before, found, _ = head.partition(b"<trackList")
    return bool(found) and XSPF_MARK.encode() in before


def playlist_has_entries(path: Path, fmt: str) -> bool:
    """Whether the file at `path` is a playlist in `fmt` with at least one entry (False if it cannot be read)."""
    if not is_a_file_to_replace(path):
        return False  # a pipe or a device is written into, never read (it would wait, or never end)
    try:
        data = path.read_bytes()
    except OSError:
        return False
    if fmt == "xspf":
        return b"<track>" in data
    return any(line.strip() and not line.startswith(b"#") for line in data.splitlines())


def is_a_file_to_replace(dest: Path) -> bool:
    """False for a destination that exists and is neither a file nor a folder (a named pipe, `/dev/stdout`,
    a device): it is written into, not replaced (tagger.atomic), and it has no folder of its own that the
    playlist's paths could be relative to (they are absolute, as when printed)."""
    try:
        mode = os.stat(dest.expanduser()).st_mode
    except OSError:
        return True
    return stat.S_ISREG(mode) or stat.S_ISDIR(mode)


def check_mood(mood: str, labels: tuple[str, ...], model: tuple[str, str] | None) -> None:
    """Raise MoodtagError unless `mood` is one of `labels`."""
    if mood not in labels:
        whose = f"model {model[0]} {model[1]}" if model else "this cache"
        raise MoodtagError(f"{mood!r} is not a mood of {whose} (choose one of: {', '.join(labels)})")


def select_entries(cache: Cache, request: PlaylistRequest, *, fmt: str = "m3u8", library: Path | None = None,
                   home: Path | None = None, left_out: LeftOut | None = None,
                   places: tuple[Places, int, int] | None = None) -> Iterator[PlaylistEntry]:
    """The cached tracks that `request` asks for, whose files still exist and that `fmt` can hold (and, with
    `library`, that a player confined to that folder can reach), in its order, streamed; those left out
    are noted in `left_out`. home (PlaylistLayout.home; `library` when it is given): an entry whose folder
    lies in it once symlinks are resolved has its path under it, as named. places (order, first, after):
    only the tracks of those places of an order read before (ordered_places), whatever was written since."""
    from tagger.cache import TABLE

    if fmt not in FORMATS:
        raise MoodtagError(f"unknown playlist format {fmt!r} (choose one of: {', '.join(FORMATS)})")
    left_out = LeftOut() if left_out is None else left_out
    where, params = _selection(request)
    # A tag SQLite holds as bytes (no scan writes one; an edit of the cache may) is no text to show: left out.
    columns = "path, path_bytes, mood, confidence, duration, " + ", ".join(
        f"CASE WHEN {tag} < x'' THEN {tag} END" for tag in ("artist", "title", "album"))
    if places is not None:
        rows = _rows_in_places(cache, where, params, columns, *places, by=_ORDER_SQL.get(request.order))
    elif request.order == "shuffle":
        order = ordered_places(cache, request)
        rows = _rows_in_places(cache, where, params, columns, order, 0, len(order.keys))
    else:
        rows = cache.rows(f"SELECT {columns} FROM {TABLE} WHERE {where} ORDER BY {_ORDER_SQL[request.order]}", params)
    yield from _entries(rows, request, fmt, library, left_out, home=library if library is not None else home)


def _selection(request: PlaylistRequest) -> tuple[str, list]:
    """The SQL condition (and its parameters) of the rows `request` asks for."""
    from tagger.cache import HAS_MOOD_SQL, filter_roots, under_root

    if request.order not in ORDERS:
        raise MoodtagError(f"unknown order {request.order!r} (choose one of: {', '.join(ORDERS)})")
    if request.limit is not None and request.limit < 0:
        raise MoodtagError(f"--limit must be 0 or more, not {request.limit}")
    from tagger.query import FLOAT_MAX_SQL

    # a minimum passes a known confidence only: not one edited into text or an infinity (nor NULL, as before)
    where = [HAS_MOOD_SQL, "mood = ?", f"confidence BETWEEN ? AND {FLOAT_MAX_SQL}" if request.min_confidence > 0
             else "confidence >= ?"]
    params: list = [request.mood, request.min_confidence]
    if request.model is not None:
        where += ["model_name = ?", "model_version = ?"]
        params += list(request.model)
    if request.roots or request.files:
        alternatives = []
        for root in filter_roots(request.roots):
            sql, root_params = under_root(root)
            alternatives.append(sql)
            params += root_params
        if request.files:  # one parameter however many (a folder of 5,000 links)
            alternatives.append("path IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(request.files))
        where.append(_any_of(alternatives))
    return " AND ".join(where), params


def _any_of(conditions: list[str]) -> str:
    """SQL true where one of `conditions` is, as a balanced tree of ORs: SQLite refuses an expression more
    than 1,000 deep, which a plain chain of ORs of 500 folders (a folder of album links) was."""
    if len(conditions) == 1:
        return f"({conditions[0]})"
    half = len(conditions) // 2
    return f"({_any_of(conditions[:half])} OR {_any_of(conditions[half:])})"


@dataclass(frozen=True)
class PathFilter:
    """What a playlist's PATH arguments select (see path_filter): PlaylistRequest's roots and files, and
    the PATHs under which no cached track was found, for a warning each."""

    roots: tuple[Path, ...] = ()
    files: tuple[str, ...] = ()
    empty: tuple[Path, ...] = ()

    @property
    def none_found(self) -> bool:
        """Whether PATHs were given and none of them found a cached track (every one is in `empty`)."""
        return bool(self.empty) and not self.files and set(self.roots) == set(self.empty)


def _distinct(paths: Iterable[Path]) -> list[Path]:
    """`paths` less those naming a place named before (`Favorites Favorites/ ./Favorites`): each is
    looked up, walked and warned about once, as the first spelling given."""
    seen: set[str] = set()
    distinct = []
    for path in paths:
        key = os.path.abspath(path)
        if key not in seen:
            seen.add(key)
            distinct.append(path)
    return distinct


def path_filter(cache: Cache, paths: Iterable[Path]) -> PathFilter:
    """The places `paths` stand for. A PATH under which the cache holds rows (one indexed query per
    spelling of it, cache.filter_roots) is taken as it is, never walked: `playlist calm ~/Music` costs
    the same on any library, and a link below it is not followed. A PATH under which it holds none is
    typically a folder of symlinks ("Favorites"), whose files a scan keeps under their own paths (a
    link to a file the library holds is that file): it is walked (links to folders below it not
    followed) and each link stands for what it leads to, a file for its row (as Cache.row_of finds
    one), a folder for the folder (as the link spells it, and its real path). A PATH that still finds
    no row stays in `roots` (it selects nothing) and is named in `empty`."""
    roots: list[Path] = []
    files: list[str] = []
    empty: list[Path] = []
    for path in _distinct(paths):
        roots.append(path)
        if _holds_rows(cache, path):
            continue
        found = False
        for place in _linked_places(cache, Path(os.path.abspath(path))):
            if isinstance(place, str):
                files.append(place)
                found = True
            elif _holds_rows(cache, place):
                roots.append(place)
                found = True
        if not found:
            empty.append(path)
    return PathFilter(tuple(dict.fromkeys(roots)), tuple(dict.fromkeys(files)), tuple(empty))


def _holds_rows(cache: Cache, path: Path) -> bool:
    """Whether the cache has a row not marked missing at or under `path`, as named or resolved (one
    indexed query each): rows of a folder of links that a scan now keeps under the files' own names
    (an older moodtag's, marked missing) do not count, so the links are followed."""
    from tagger.cache import filter_roots

    return any(cache.holds_under(place, present=True) for place in filter_roots([path]))


def _linked_places(cache: Cache, path: Path) -> Iterator[Path | str]:
    """What the symlinks at or under `path` lead to: for a link to a file, the key of the file's row (if it
    has one); for a link to a folder, the folder as the link spells it (made absolute) and its real path.
    A file `path` (a link, or a file kept under another name) is its row's key. The links are found by
    _symlinks_below (links to folders not followed), one stat per link."""
    if not os.path.isdir(path):
        found = _row_of(cache, path)
        if found is not None:
            yield found
        return
    for entry in _symlinks_below(os.fspath(path)):
        if entry.is_dir():
            try:
                target = os.readlink(entry.path)
            except OSError:  # gone since it was listed, or not readable (/proc): passed over
                continue
            yield Path(os.path.abspath(os.path.join(os.path.dirname(entry.path), target)))
            yield Path(os.path.realpath(entry.path))
        else:
            found = _row_of(cache, Path(entry.path))
            if found is not None:
                yield found


def _symlinks_below(folder: str | bytes) -> Iterator[os.DirEntry]:
    """The symlinks at any depth below `folder`, hidden folders included: the folders are listed with
    os.scandir, links to folders not followed (no loop), no stat per file (is_symlink and is_dir from the
    entry's type); a folder that cannot be listed is passed over (what it holds is not found)."""
    folders = [folder]
    while folders:
        try:
            with os.scandir(folders.pop()) as listing:
                entries = list(listing)
        except OSError:
            continue
        for entry in entries:
            if entry.is_symlink():
                yield entry
            elif entry.is_dir(follow_symlinks=False):
                folders.append(entry.path)


def _row_of(cache: Cache, path: Path) -> str | None:
    """The key of the row of the file at `path` (Cache.row_of; where that is a row marked missing, an older
    moodtag's under the link's own name, the row of the file's real path); None if none, or if the link
    cannot be followed (gone since it was listed, or not readable)."""
    try:
        found = cache.row_of(path)
        if found is not None and found[1].status == "missing":
            found = cache.row_of(Path(os.path.realpath(path))) or found
    except OSError:
        return None
    return None if found is None else found[1].path


def _entries(rows: Iterable[tuple], request: PlaylistRequest, fmt: str, library: Path | None,
             left_out: LeftOut, *, home: Path | None = None) -> Iterator[PlaylistEntry]:
    """select_entries' checks of each row."""
    m3u = fmt in M3U_FORMATS
    inside = None if library is None else _Inside(library)
    homed = None if home is None else _Home(home)
    access, F_OK, effective = os.access, os.F_OK, os.access in os.supports_effective_ids
    count, limit = 0, request.limit
    for row in rows:
        if limit is not None and count >= limit:
            return
        entry = PlaylistEntry(*row)
        duration = entry.duration
        if duration is not None and (type(duration) is not float or duration - duration != 0):  # inf - inf: NaN
            entry.duration = _known_duration(entry.path, duration)
        if entry.raw_path is not None:
            _real_text_name(entry)
        if homed is not None and (entry.raw_path is not None or not entry.path.startswith(homed.prefix)):
            homed.place(entry)  # not under the folder's name as it is: perhaps under it resolved
        reachable = inside is None or inside(entry.path)
        if not reachable and homed is not None and homed.place_through_link(entry):
            reachable = True
        problem = m3u_problem(entry, for_player=library is not None) if m3u and (entry.raw_path is not None or not entry.path.isprintable()) else None
        if problem is None and inside is not None and reachable:
            problem = inside.names_problem(entry.path)
        try:  # os.path.exists' answer (the path resolved with the effective ids) without a stat result to build
            present = access(entry.fs_path, F_OK, effective_ids=effective)
        except ValueError:  # a NUL in the name
            present = False
        if not present:
            left_out.missing += 1
        elif not reachable:
            left_out.outside += 1
            left_out.first_outside = left_out.first_outside or entry.path
        elif problem:
            left_out.unwritable.append((entry.path, problem))
        else:
            count += 1
            yield entry


def _known_duration(path: str, duration) -> float | int | None:
    """A duration cell that is not a float: an int as it is; anything else (an edited cell: '', text,
    bytes, an infinity) None, written as an unknown length (#EXTINF:-1, no XSPF <duration>), with one
    warning line in this process (query.stored_number)."""
    from tagger.query import stored_number

    return stored_number(duration, path, "duration", None if _TOLD_DURATION else _tell_duration, finite=True)


_TOLD_DURATION: list[str] = []  # the path a warning named: one line a process (a forked writer's own)


def _tell_duration(path: str, column: str, value) -> None:
    from tagger.console import shown, warn
    from tagger.query import stored_cell

    _TOLD_DURATION.append(path)
    warn(f"{shown(path)}: its {column} is not a number ({shown(stored_cell(value))}): "
         "written as an unknown length, as is any other such cell")


def _real_text_name(entry: PlaylistEntry) -> None:
    """An entry's raw bytes that are valid UTF-8 made its path: the cache keeps a name's bytes also when it
    holds a backslash (its key doubles it, see path_key), but such a name is text like any other, which an
    M3U line holds and MPD loads. Only a name that is not UTF-8 keeps raw_path."""
    try:
        entry.path, entry.raw_path = entry.raw_path.decode("utf-8"), None
    except UnicodeDecodeError:
        pass


@dataclass(frozen=True)
class Places:
    """A playlist's order, read once: keys[i] is the row id in place i; place(row id) its place, or -1."""

    keys: array
    place: Callable[[int], int]


def ordered_places(cache: Cache, request: PlaylistRequest) -> Places:
    """The row ids of the tracks `request` selects, in its order: with --order shuffle, the order that
    `random.Random(seed).shuffle` gives the list of them in path order. 8 bytes a row (and 8 a row id of
    the cache's range, see _places)."""
    return arranged(read_order(cache, request), request)


def read_order(cache: Cache, request: PlaylistRequest) -> array:
    """The row ids of the tracks `request` selects, in its order (path order for --order shuffle)."""
    from tagger.cache import TABLE

    where, params = _selection(request)
    by = "path" if request.order == "shuffle" else _ORDER_SQL[request.order]
    return array("q", (rowid for (rowid,) in cache.rows(f"SELECT rowid FROM {TABLE} WHERE {where} ORDER BY {by}", params)))


def arranged(keys: array, request: PlaylistRequest) -> Places:
    """read_order's row ids in their places: shuffled by the seed for --order shuffle (`keys` untouched)."""
    if request.order == "shuffle":
        keys = array("q", keys)
        random.Random(request.seed).shuffle(keys)  # keys[i]: the row id in place i
    return Places(keys, _places(keys))


def _rows_in_places(cache: Cache, where: str, params: list, columns: str, order: Places, first: int,
                    after: int, *, by: str | None = None) -> Iterator[tuple]:
    """The rows (`columns`) of places [first, after) of `order` that `where` still selects, in place order,
    or, with `by` (the SQL order the places were read in), in that order: the same unless a row was
    written since, and no sort (the index that serves `where` gives it).

    Without `by`, the rows are read in the order of the index that serves `where`, and SQLite's sorter
    (bounded memory, spilling to a temporary file) puts them in their places: reading them one by one by
    row id in that order was a random walk through the table (0.3 s for 75,000 shuffled rows against 0.2 s)."""
    from tagger.cache import TABLE

    place = SHUFFLE_FUNCTION.format(next(_SHUFFLES))  # a name of its own: another playlist's may still be read
    cache.conn.create_function(place, 1, order.place, deterministic=True)
    some = (first, after) != (0, len(order.keys))
    within = f" AND {place}(rowid) BETWEEN ? AND ?" if some else ""
    bounds = [first, after - 1] if some else []
    if by is not None:
        yield from cache.rows(f"SELECT {columns} FROM {TABLE} WHERE {where}{within} ORDER BY {by}", [*params, *bounds])
        return
    for row in cache.rows(f"SELECT {place}(rowid) AS place, {columns} FROM {TABLE} WHERE {where}{within} "
                          "ORDER BY place", [*params, *bounds]):
        if row[0] >= 0:  # not a row added since the row ids were read
            yield row[1:]


_SHUFFLES = itertools.count()


def _places(keys: array) -> Callable[[int], int]:
    """row id -> its index in `keys`, or -1. An array over the range of the row ids when they are dense
    (row ids of a cache mostly are: rows are replaced in place, and only removed by `prune`), else a dict."""
    if not keys:
        return lambda rowid: -1
    low, high = min(keys), max(keys)
    if high - low >= DENSE_ROWIDS * len(keys):
        places = dict(zip(keys, range(len(keys))))
        return lambda rowid: places.get(rowid, -1)
    table = array("q", [-1]) * (high - low + 1)
    for place, rowid in enumerate(keys):
        table[rowid - low] = place
    return lambda rowid: table[rowid - low] if low <= rowid <= high else -1


def _utf8_text(path) -> str:
    """A path of the file system (a str as this process's locale decodes names, or bytes) as the cache's keys
    spell it: its bytes as UTF-8 text, surrogate escapes for bytes that are not. The same str under a UTF-8
    locale; under another (LC_ALL=C, Latin-1) `Café` is another str, equal to no key, and no text to write
    into a UTF-8 playlist."""
    return os.fsencode(path).decode("utf-8", "surrogateescape")


def _real_text(path: str) -> str:
    """os.path.realpath of a path as the keys spell it (_utf8_text), the OS given its UTF-8 bytes, never the
    locale's encoding of the text."""
    return os.path.realpath(path.encode("utf-8", "surrogateescape")).decode("utf-8", "surrogateescape")


class _Home:
    """Puts an entry under a folder as it is named (PlaylistLayout.home) when the entry's folder lies in it
    once symlinks are resolved on both sides: a cache key is the path the scan walked, which may go
    through a link to the folder, or past the link the folder's own name goes through. An entry already
    under the folder's name is left as it is, without a system call; others cost a realpath per folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = _utf8_text(os.path.abspath(folder))  # as the keys spell it, whatever the locale
        self.prefix = self.folder.rstrip(os.sep) + os.sep
        self.real = _real_text(self.folder)
        self.real_prefix = self.real.rstrip(os.sep) + os.sep
        self.under = lru_cache(maxsize=16384)(self._under)
        self.linked = lru_cache(maxsize=16384)(self._linked)
        self.links: list[tuple[str, str]] | None = None  # see _folder_links: read on the first entry outside

    def _under(self, folder: str) -> str | None:
        """The prefix (ending in a separator) under the folder's name of a folder (absolute, normal) whose
        real path lies in the folder's real path; None when it does not."""
        real = _real_text(folder)
        if real == self.real:
            return self.prefix
        return self.prefix + real[len(self.real_prefix):] + os.sep if real.startswith(self.real_prefix) else None

    def place(self, entry: PlaylistEntry) -> None:
        """The entry's path (and raw bytes) rewritten under the folder's name when it lies there resolved."""
        path = entry.path if entry.raw_path is None else entry.raw_path.decode("utf-8", "surrogateescape")
        if path == self.folder or path.startswith(self.prefix):
            return
        parent, _, name = path.rpartition(os.sep)
        under = self.under(parent or os.sep)
        if under is None:
            return
        _put_under(entry, under, name)

    def place_through_link(self, entry: PlaylistEntry) -> bool:
        """The entry's path rewritten through a symlink to a folder inside the folder whose target holds it
        (`~/Music/NAS -> /nas/music`: /nas/music/a.flac as ~/Music/NAS/a.flac), as MPD, which follows the
        links in its music folder, finds it; False where no such link leads to it. For an entry that lies
        outside the folder (placed or not): the folder's links are looked for on the first such entry only,
        so a playlist with none outside costs nothing more."""
        if self.links is None:
            self.links = _folder_links(self.folder, self.real)
        if not self.links:
            return False
        path = entry.path if entry.raw_path is None else entry.raw_path.decode("utf-8", "surrogateescape")
        parent, _, name = path.rpartition(os.sep)
        under = self.linked(parent or os.sep)
        if under is None:
            return False
        _put_under(entry, under, name)
        return True

    def _linked(self, folder: str) -> str | None:
        """The prefix (ending in a separator) through the first of the folder's links (most specific target
        first) whose real target holds `folder` resolved; None if none does."""
        real = _real_text(folder).rstrip(os.sep) + os.sep
        for target, link in self.links:
            if real.startswith(target):
                return link + real[len(target):]
        return None


def _put_under(entry: PlaylistEntry, under: str, name: str) -> None:
    """The entry's path (and raw bytes) made `under` + `name`."""
    if entry.raw_path is None:
        entry.path = under + name
    else:
        from tagger.cache import path_key

        entry.path, entry.raw_path = path_key((under + name).encode("utf-8", "surrogateescape"))


def _folder_links(folder: str, real: str) -> list[tuple[str, str]]:
    """(real target, link's path), each ending in a separator, of every symlink to a folder outside `real`
    (the folder's real path) found at or below `folder` (as named), in hidden folders too (MPD 0.23 lists
    them; _symlinks_below: links below a link not followed, a realpath per link). The most specific
    target first; of links to one target, the first by path."""
    inside = real.rstrip(os.sep) + os.sep
    links: list[tuple[str, str]] = []
    for entry in _symlinks_below(folder.encode("utf-8", "surrogateescape")):  # the OS given bytes, the keys' text kept
        try:
            target = os.path.realpath(entry.path)
        except OSError:  # a link that cannot be followed (/proc's): leads nowhere MPD goes
            continue
        text = target.decode("utf-8", "surrogateescape")
        if text != real and not text.startswith(inside) and os.path.isdir(target):
            links.append((text.rstrip(os.sep) + os.sep, entry.path.decode("utf-8", "surrogateescape") + os.sep))
    return sorted(links, key=lambda link: (-len(link[0]), link[1]))


class _Inside:
    """Whether a path is `folder` or lies under it, for many paths and one folder, by comparing strings
    (cache keys and the folder are absolute and normal); `names` are a path's names below the folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = _utf8_text(os.path.abspath(folder))  # as the keys spell it, whatever the locale
        self.prefix = self.folder.rstrip(os.sep) + os.sep
        # a name of the path below the folder that begins or ends with a character MPD strips (a space or a
        # control character, U+0000-U+0020): names_problem's test in one search of the whole relative path
        sep = re.escape(os.sep)
        self._space_at_an_end = re.compile(rf"{sep}[\x00-\x20]|[\x00-\x20](?:{sep}|\Z)").search  # from the prefix's separator

    def __call__(self, path: str) -> bool:
        return path == self.folder or path.startswith(self.prefix)

    def names(self, path: str) -> list[str]:
        return path[len(self.prefix):].split(os.sep) if path != self.folder else ["."]

    def names_problem(self, path: str) -> str | None:
        """names_problem(self.names(path)) for a path at or under the folder, in one regular-expression
        search (was a per-folder cache and a generator over the names: ~0.05 s less at 100,000 rows)."""
        if path == self.folder:
            return names_problem(["."])
        return SPACE_PROBLEM if self._space_at_an_end(path, len(self.prefix) - 1) else None


def names_problem(names: list[str]) -> str | None:
    """Why MPD cannot load a playlist line of these names (a path relative to its music folder), or None.

    MPD 0.23 strips from both ends of every name in a playlist line the bytes up to 0x20 (a space, a tab, a
    control character; not U+00A0 or U+3000, which are not ASCII): tests/test_mpd.py checks it.
    """
    if any(name[:1] <= " " or name[-1:] <= " " for name in names if name):
        return SPACE_PROBLEM
    return None


SPACE_PROBLEM = ("a name in its path begins or ends with a space or a control character, which MPD strips from "
                 "playlist lines")


def m3u_can_hold(entry: PlaylistEntry) -> bool:
    """False for paths an M3U8 line cannot carry: a line break inside, or a name that is not UTF-8."""
    return m3u_problem(entry) is None


def m3u_problem(entry: PlaylistEntry, *, for_player: bool = False) -> str | None:
    """Why an M3U8 line cannot carry this entry's path, or None. `for_player`: a playlist for a player
    that takes only M3U (MPD), so XSPF is not offered in its place, and whose reader splits lines on '\n'
    only: only '\n' and '\r' are line breaks there (MPD_LINE_BREAKS), not '\v', U+2028 and the like."""
    other = "" if for_player else "; --format xspf can"
    if entry.raw_path is not None:
        return f"its name is not valid UTF-8 (an M3U line cannot hold it{other})"
    path = entry.path
    if not path.isprintable() and (("\n" in path or "\r" in path) if for_player  # a line break is not printable
                                   else _LINE_BREAK_RE.search(path)):
        return f"its name holds a line break (an M3U line cannot hold it{other})"
    return None


def entry_location(entry: PlaylistEntry, base: Path | None) -> str | bytes:
    """The entry's path, absolute (base None) or relative to the folder `base`."""
    if entry.raw_path is not None:
        return entry.raw_path if base is None else os.path.relpath(entry.raw_path, os.fsencode(os.path.abspath(base)))
    return entry.path if base is None else os.path.relpath(entry.path, _utf8_text(os.path.abspath(base)))


class _Locations:
    """entry_location for many entries and one base: each folder's relative path worked out once, by
    comparing path components (os.path.relpath costs ~15 us: two seconds for 100,000 entries)."""

    def __init__(self, base: Path | None) -> None:
        self.base = base
        self.base_path = None if base is None else _utf8_text(os.path.abspath(base))  # as the keys spell it
        self.base_parts = None if base is None else _parts(self.base_path)
        self.folder_location = lru_cache(maxsize=16384)(self._folder_location)  # ~3 MB at most
        self.folder_uri = lru_cache(maxsize=16384)(self._folder_uri)
        self.folder_prefix = lru_cache(maxsize=16384)(self._folder_prefix)
        self.climbs_true = lru_cache(maxsize=None)(self._climbs_true)

    def _folder_location(self, folder: str) -> str:
        parts, base = _parts(folder), self.base_parts
        common = 0
        for mine, theirs in zip(parts, base):
            if mine != theirs:
                break
            common += 1
        if not self.climbs_true(len(base) - common):
            return os.path.relpath(folder, _real_text(self.base_path))
        return os.sep.join([os.pardir] * (len(base) - common) + parts[common:]) or os.curdir

    def _climbs_true(self, levels: int) -> bool:
        """Whether `levels` times '..' from the base, as a player's open() resolves it (from the folder the
        base really is: a symlink on the way is followed first), reaches the folder that many levels up
        the base's name. Not where a folder on the way is a link to elsewhere (`~/Playlists` -> `/data/pl`):
        '../Music' from there is `/data/Music`; such entries are written relative to the base's real path."""
        if levels == 0:
            return True
        up = self.base_path
        real = _real_text(up)
        for _ in range(levels):
            up, real = os.path.dirname(up), os.path.dirname(real)
        return _real_text(up) == real

    def __call__(self, entry: PlaylistEntry) -> str | bytes:
        if self.base is None or entry.raw_path is not None or entry.path == self.base_path:
            location = entry_location(entry, self.base)
            if self.base is not None and not self.climbs_true(_climbs(location)):
                location = entry_location(entry, Path(os.path.realpath(self.base)))
            return location
        folder, _, name = entry.path.rpartition(os.sep)  # the key is absolute and normal: os.path.split's answer
        location = self.folder_location(folder or os.sep)
        return name if location == os.curdir else f"{location}{os.sep}{name}"

    def _folder_prefix(self, folder: str) -> str:
        """What goes before a file name of `folder` (absolute, normal): its relative path and a separator
        (`folder_prefix`: the same, remembered for 16,384 folders; a shuffled playlist asks it for every entry)."""
        location = self._folder_location(folder or os.sep)
        return "" if location == os.curdir else location + os.sep

    def uri(self, entry: PlaylistEntry) -> str:
        """file_uri(entry, base): what goes before the file's name worked out, and percent-encoded, once per
        folder (percent-encoding goes byte by byte: the URI of a path is the URIs of its parts end to end)."""
        if entry.raw_path is not None or entry.path == self.base_path:
            return _uri(self(entry), self.base)
        folder, _, name = entry.path.rpartition(os.sep)
        return self.folder_uri(folder) + _quoted_name(name)

    def _folder_uri(self, folder: str) -> str:
        """The URI of a file of `folder` (absolute, normal) up to its name: file:///folder/ or ../folder/."""
        if self.base is None:
            return _uri(folder + os.sep, None)
        location = self._folder_location(folder or os.sep)
        return "" if location == os.curdir else _uri(location + os.sep, self.base)


def _climbs(location: str | bytes) -> int:
    """How many '..' a relative location begins with."""
    parts = location.split(os.sep if isinstance(location, str) else os.sep.encode())
    up = os.pardir if isinstance(location, str) else os.pardir.encode()
    n = 0
    while n < len(parts) and parts[n] == up:
        n += 1
    return n


def _parts(path: str) -> list[str]:
    """The names in an absolute, normal path."""
    return [part for part in path.split(os.sep) if part]


def render_m3u8(entries: Iterable[PlaylistEntry], *, base: Path | None = None, mood: str | None = None) -> str:
    """An extended M3U playlist (UTF-8 text): #EXTM3U, moodtag's mark when `mood` is given (m3u_mark), then
    #EXTINF and a path line per entry.

    Entries that cannot be written on one line (see `m3u_can_hold`) must be filtered out before.
    """
    return "".join(m3u8_chunks(entries, base=base, mood=mood))


def m3u_mark(mood: str) -> str:
    """The line that marks an M3U as moodtag's playlist of `mood` (M3U_MARK), and says what it means."""
    return f"{M3U_MARK}{_one_line(mood)} tracks; moodtag replaces this file (remove this line to keep your edits)"


def m3u8_chunks(entries: Iterable[PlaylistEntry], *, base: Path | None = None, checked: bool = False,
                head: bool = True, mood: str | None = None) -> Iterator[str]:
    """render_m3u8's text in chunks of a few hundred entries. checked: the entries come from select_entries,
    which left out those an M3U line cannot hold. head: the #EXTM3U line first, and the mark of `mood`'s
    playlist (not for a run of entries that goes after others)."""
    location_of = _Locations(base)
    lines = (["#EXTM3U"] + ([m3u_mark(mood)] if mood is not None else [])) if head else []
    append, relative = lines.append, base is not None
    folder = prefix = None
    for entry in entries:
        if not checked and not m3u_can_hold(entry):
            raise ValueError(f"{entry.path!r} cannot be written to an M3U playlist")
        path, duration, artist, title = entry.path, entry.duration, entry.artist, entry.title
        if relative and entry.raw_path is None and path != location_of.base_path:  # _Locations' answer, inline
            parent, _, name = path.rpartition(os.sep)
            if parent != folder:
                folder, prefix = parent, location_of.folder_prefix(parent)
            location = prefix + name
            if location[:1] == "#" or location[:1].isspace():
                location = "./" + location  # else read as a comment, or stripped
        else:
            location = location_of(entry)
            if relative and (location[:1] == "#" or location[:1].isspace()):
                location = "./" + location
        if artist and title and artist.isprintable() and title.isprintable():  # display_title's answer, inline
            artist, title = artist.strip(), title.strip()
            shown = f"{artist} - {title}" if artist and title else entry.display_title
        else:
            shown = entry.display_title
        append(f"#EXTINF:{-1 if duration is None else int(round(duration))},{shown}\n{location}")
        if len(lines) >= CHUNK_LINES // 2:  # two lines an entry
            yield "\n".join(lines) + "\n"
            lines.clear()
    if lines:
        yield "\n".join(lines) + "\n"


def render_xspf(entries: Iterable[PlaylistEntry], *, base: Path | None = None, title: str | None = None,
                mood: str | None = None) -> str:
    """An XSPF playlist (XML): percent-encoded file:// URIs (relative URIs when `base` is given)."""
    return "".join(xspf_chunks(entries, base=base, title=title, mood=mood))


def xspf_chunks(entries: Iterable[PlaylistEntry], *, base: Path | None = None,
                title: str | None = None, head: bool = True, tail: bool = True,
                mood: str | None = None) -> Iterator[str]:
    """render_xspf's text in chunks, written element by element (no tree held in memory). head / tail: the
    elements before the first track / after the last (a run of tracks among others has neither). mood:
    moodtag's playlist of that mood, titled `moodtag: MOOD` (unless `title` is given) and marked (XSPF_MARK)."""
    def element(tag: str, text: str, indent: str) -> str:
        return f"{indent}<{tag}>{xml_escape(_xml_text(text))}</{tag}>"

    lines = []
    if head:
        lines += ['<?xml version="1.0" encoding="UTF-8"?>', f'<playlist xmlns="{XSPF_NS}" version="1">']
        title = f"moodtag: {mood}" if title is None and mood is not None else title
        if title:
            lines.append(element("title", title, "  "))
        if mood is not None:
            lines.append(f"  {XSPF_MARK}")
        lines.append("  <trackList>")
    location_of = _Locations(base)
    append, uri, folder_uri, base_path = lines.append, location_of.uri, location_of.folder_uri, location_of.base_path
    folder = prefix = None
    for entry in entries:
        # The location is percent-encoded: nothing in it for XML to escape or leave out.
        path = entry.path
        if entry.raw_path is None and path != base_path:  # _Locations.uri's answer, inline
            parent, _, name = path.rpartition(os.sep)
            if parent != folder:
                folder, prefix = parent, folder_uri(parent)
            location = prefix + _quoted_name(name)
        else:
            location = uri(entry)
        track = f"    <track>\n      <location>{location}</location>"
        title, artist, album, duration = entry.title or Path(path).stem, entry.artist, entry.album, entry.duration
        # _xml_value's answer, inline for text with nothing to escape or leave out (most tags)
        if title:
            if not title.isprintable() or "&" in title or "<" in title or ">" in title:
                title = _xml_value(title)
            track += f"\n      <title>{title}</title>"
        if artist:
            if not artist.isprintable() or "&" in artist or "<" in artist or ">" in artist:
                artist = _xml_value(artist)
            track += f"\n      <creator>{artist}</creator>"
        if album:
            if not album.isprintable() or "&" in album or "<" in album or ">" in album:
                album = _xml_value(album)
            track += f"\n      <album>{album}</album>"
        if duration is not None:
            track += f"\n      <duration>{int(round(duration * 1000))}</duration>"
        append(track + "\n    </track>")
        if len(lines) >= CHUNK_LINES // 6:  # up to six lines a track
            yield "\n".join(lines) + "\n"
            lines.clear()
    if tail:
        lines += ["  </trackList>", "</playlist>"]
    if lines:
        yield "\n".join(lines) + "\n"


def file_uri(entry: PlaylistEntry, base: Path | None = None) -> str:
    """`file:///abs/path` (base None) or a relative URI reference, every unsafe byte percent-encoded."""
    return _uri(entry_location(entry, base), base)


def _quoted_name(name: str) -> str:
    """quote_from_bytes of the name's bytes (UTF-8, as the keys spell them, whatever the locale), safe="/", by
    one translation for an ASCII name."""
    return name.translate(_ASCII_QUOTED) if name.isascii() else quote_from_bytes(
        name.encode("utf-8", "surrogateescape"), safe="/")


_ASCII_QUOTED = {c: chr(c) if chr(c) in _URI_SAFE else f"%{c:02X}" for c in range(128)}


def _uri(location: str | bytes, base: Path | None) -> str:
    encoded = _quoted_name(location) if isinstance(location, str) else quote_from_bytes(location, safe="/")
    return "file://" + encoded if base is None else encoded


def playlist_chunks(entries: Iterable[PlaylistEntry], *, fmt: str, base: Path | None = None,
                    title: str | None = None, checked: bool = False, head: bool = True,
                    tail: bool = True, mood: str | None = None) -> Iterator[str]:
    """The playlist text in format `fmt` (m3u8, m3u or xspf), in chunks. checked: see m3u8_chunks. head /
    tail: what goes before the first entry / after the last (for a run of entries among others: neither).
    mood: the text is moodtag's playlist of that mood, marked as moodtag's in its head (see M3U_MARK)."""
    if fmt in M3U_FORMATS:
        return m3u8_chunks(entries, base=base, checked=checked, head=head, mood=mood)  # ends with its last entry
    if fmt == "xspf":
        return xspf_chunks(entries, base=base, title=title, head=head, tail=tail, mood=mood)
    raise MoodtagError(f"unknown playlist format {fmt!r} (choose one of: {', '.join(FORMATS)})")


def render_playlist(entries: Iterable[PlaylistEntry], *, fmt: str, base: Path | None = None,
                    title: str | None = None, mood: str | None = None) -> str:
    """The playlist text in format `fmt` (m3u8, m3u or xspf)."""
    return "".join(playlist_chunks(entries, fmt=fmt, base=base, title=title, mood=mood))


def playlist_file_name(mood: str, fmt: str) -> str:
    """`calm.m3u8`: the file name of a mood's playlist in `playlists --out-dir`."""
    if not mood or mood.startswith(".") or "/" in mood or os.sep in mood or "\0" in mood:
        raise MoodtagError(f"{mood!r}: this mood cannot name a playlist file")
    return f"{mood}.{fmt}"


def format_for(dest: Path | None, fmt: str | None) -> str:
    """The format asked for, else the one `dest`'s suffix names (.xspf, .m3u), else m3u8."""
    if fmt:
        if fmt not in FORMATS:
            raise MoodtagError(f"unknown playlist format {fmt!r} (choose one of: {', '.join(FORMATS)})")
        return fmt
    suffix = dest.suffix.lower()[1:] if dest is not None else ""
    return suffix if suffix in FORMATS else "m3u8"


def playlist_base(folder: Path | None, *, relative_to: Path | None = None, absolute: bool = False) -> Path | None:
    """The folder paths are written relative to, or None for absolute paths.

    Default: `folder`, the playlist file's own folder; absolute paths when it is None (printing).
    """
    if absolute and relative_to is not None:
        raise OptionsError("--absolute and --relative-to exclude each other")
    if absolute:
        return None
    if relative_to is not None:
        return existing_folder(relative_to, "--relative-to")
    if folder is None:
        return None
    folder = folder.expanduser()
    # 'lnk/..' is where open() goes, the link's target's parent; os.path.abspath would drop both names
    return Path(os.path.realpath(folder) if os.pardir in folder.parts else os.path.abspath(folder))


def existing_folder(path: Path, option: str) -> Path:
    """`path` absolute, `~` expanded; MoodtagError naming `option` unless it is a folder: paths relative to a
    mistyped folder, or to a file, would be a playlist of ../../.. lines that resolve nowhere."""
    from tagger.discover import spelt_on_disk

    # as its folders spell it: a case-insensitive disk's `music` is the `Music` the cache's paths hold
    folder = spelt_on_disk([Path(os.path.abspath(path.expanduser()))])[0]
    if not folder.is_dir():
        raise MoodtagError(f"{folder}: {option} is not a folder")
    return folder


def write_playlist(chunks: Iterable[str | bytes] | str, dest: Path) -> Path:
    """Write playlist text (a string, or chunks of it, text or UTF-8 already) to `dest` as UTF-8,
    atomically: a temporary file, then rename. Nothing is left behind if reading the chunks fails. A
    `dest` that is a symlink (a playlist the user keeps elsewhere) is written through: the file it
    points to is replaced and the link stays. A file replaced keeps its permissions (a private 0600
    playlist stays private) and, where this process may give it, its owner."""
    dest = dest.expanduser()
    if dest.is_dir():
        raise MoodtagError(f"{dest}: is a folder (give a playlist file name)")
    def write(fh) -> None:
        for chunk in [chunks] if isinstance(chunks, str) else chunks:
            fh.write(chunk.encode("utf-8") if isinstance(chunk, str) else chunk)

    try:
        replace_file(dest, write, tmp_prefix=".")
    except OSError as exc:
        raise MoodtagError(f"{dest}: cannot write the playlist ({why_not_written(exc)})") from None
    return dest


def _one_line(text: str | None) -> str:
    return _LINE_BREAK_RE.sub(" ", text).strip() if text else ""


def _xml_value(text: str) -> str:
    """Text for an XML element: what XML cannot hold left out, &, < and > escaped."""
    if not text.isprintable():  # what XML cannot hold is not printable
        text = _XML_INVALID_RE.sub("", text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _xml_text(text: str) -> str:
    return text if text.isprintable() else _XML_INVALID_RE.sub("", text)  # what XML cannot hold is not printable


def xml_escape(text: str) -> str:
    """Text for an XML element: &, < and > escaped (xml.sax.saxutils would import urllib.request: 0.15 s)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

