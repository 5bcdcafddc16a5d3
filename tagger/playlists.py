"""Cache rows -> mood playlists (M3U8, M3U or XSPF).

`playlist_layout` turns the command's options into a `PlaylistLayout` (format, the folder paths are
relative to, and the library folder a player such as MPD confines entries to); `select_tracks` picks the
cached tracks of one mood (analysed by one model, tag write failed or not, file still on disk,
optionally under some folders) in the order asked for; `render_playlist` turns them into the text of a
playlist whose paths are absolute or relative to a base folder; `write_playlist` writes it atomically.
Audio files are never opened: one stat per candidate row, nothing more.
"""
from __future__ import annotations

import contextlib
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote_from_bytes
from xml.etree import ElementTree as ET

from tagger.errors import MoodtagError

if TYPE_CHECKING:  # the cache (sqlite-utils) is imported when used, so that `--help` stays quick
    from tagger.cache import Cache

ORDERS = ("score", "shuffle", "path", "album")
FORMATS = ("m3u8", "m3u", "xspf")
M3U_FORMATS = ("m3u8", "m3u")  # the same text (UTF-8 extended M3U); only the file suffix differs
# Players whose playlist folder takes only certain files: MPD 0.23 lists NAME.m3u in its
# playlist_directory, reads it as UTF-8, and resolves relative lines against its music_directory.
PLAYERS = {"mpd": "m3u"}
XSPF_NS = "http://xspf.org/ns/0/"

# Every character that a line-oriented reader (Python's str.splitlines included) may take as the end
# of a line: a path holding one cannot be written as a single M3U line.
LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")
_LINE_BREAK_RE = re.compile("[" + re.escape("".join(sorted(LINE_BREAKS))) + "]+")
# Characters XML 1.0 cannot hold at all (tag texts are cleaned of them).
_XML_INVALID_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

_ORDER_SQL = {
    "score": "confidence DESC, path",
    "path": "path",
    "album": "album IS NULL, album COLLATE NOCASE, artist COLLATE NOCASE, path",
    "shuffle": "path",  # shuffled in Python with the seed, from a stable starting order
}


@dataclass(frozen=True)
class PlaylistRequest:
    """What goes into one playlist.

    model: (name, version) of the model whose results count, or None for results of any model.
    roots: only files at or under these paths (none: the whole cache).
    limit: at most this many entries (after ordering; None: all).
    """

    mood: str
    model: tuple[str, str] | None = None
    min_confidence: float = 0.0
    roots: tuple[Path, ...] = ()
    order: str = "score"
    seed: int | None = None
    limit: int | None = None


@dataclass(frozen=True)
class PlaylistEntry:
    """One cached track as a playlist needs it."""

    path: str                  # absolute path as the cache keys it
    raw_path: bytes | None     # the file name's bytes when they are not valid UTF-8
    mood: str
    confidence: float
    duration: float | None = None
    artist: str | None = None
    title: str | None = None
    album: str | None = None

    @property
    def fs_path(self) -> str | bytes:
        """The path to hand to the OS."""
        return self.raw_path if self.raw_path is not None else self.path

    @property
    def display_title(self) -> str:
        """'Artist - Title', or the title, or the file name's stem; on one line."""
        artist, title = _one_line(self.artist), _one_line(self.title)
        if artist and title:
            text = f"{artist} - {title}"
        else:
            text = title or _one_line(Path(self.path).stem) or Path(self.path).name
        return text


@dataclass(frozen=True)
class Selection:
    """The chosen entries, and what was left out.

    missing: paths of cached files gone from disk; unwritable: (path, why) the format or the player cannot
    hold; outside: paths outside the player's music folder (`PlaylistLayout.library`).
    """

    request: PlaylistRequest
    entries: tuple[PlaylistEntry, ...]
    missing: tuple[str, ...] = ()
    unwritable: tuple[tuple[str, str], ...] = ()
    outside: tuple[str, ...] = ()


@dataclass(frozen=True)
class Playlist:
    """A rendered playlist: what was selected and the text of the file."""

    selection: Selection
    fmt: str
    text: str

    @property
    def mood(self) -> str:
        return self.selection.request.mood


@dataclass(frozen=True)
class PlaylistLayout:
    """How a playlist file is written.

    fmt: m3u8, m3u or xspf. base: the folder paths are relative to (None: absolute paths).
    library: a player's music folder (MPD's music_directory) when the playlist is for that player: entries
    outside it are left out, and so are names the player's reader would change (see `library_problem`).
    """

    fmt: str = "m3u8"
    base: Path | None = None
    library: Path | None = None


def playlist_layout(folder: Path | None, *, dest: Path | None = None, fmt: str | None = None,
                    relative_to: Path | None = None, absolute: bool = False, player: str | None = None,
                    music_dir: Path | None = None) -> PlaylistLayout:
    """The layout the playlist options ask for.

    folder: where the playlist file goes (None: printed). dest: the file, whose suffix names the format when
    `fmt` does not. player "mpd" with music_dir: MPD's stored playlist (m3u, paths relative to music_dir).
    Raises MoodtagError for options that contradict each other.
    """
    if player is None:
        if music_dir is not None:
            raise MoodtagError("--music-dir goes with --for (e.g. --for mpd --music-dir ~/Music)")
        return PlaylistLayout(format_for(dest, fmt), playlist_base(folder, relative_to=relative_to, absolute=absolute))
    if player not in PLAYERS:
        raise MoodtagError(f"unknown player {player!r} (choose one of: {', '.join(PLAYERS)})")
    wanted = PLAYERS[player]
    if music_dir is None:
        raise MoodtagError(f"--for {player} needs --music-dir DIR: the player's music folder (MPD's music_directory), "
                           "which playlist paths are relative to")
    if absolute or relative_to is not None:
        raise MoodtagError(f"--for {player} writes paths relative to --music-dir; leave out --absolute and --relative-to")
    if fmt is not None and fmt != wanted:
        raise MoodtagError(f"--for {player} writes {wanted} (the only playlists {player.upper()} lists in its playlist "
                           f"folder), not {fmt}")
    if dest is not None and dest.suffix.lower() != f".{wanted}":
        raise MoodtagError(f"{dest}: a playlist for {player.upper()} must be named NAME.{wanted}")
    library = Path(os.path.abspath(music_dir.expanduser()))
    if not library.is_dir():
        raise MoodtagError(f"{library}: --music-dir is not a folder")
    return PlaylistLayout(wanted, library, library=library)


def build_playlist(cache: Cache, request: PlaylistRequest, layout: PlaylistLayout = PlaylistLayout()) -> Playlist:
    """Select the tracks `request` asks for and render them as the layout says."""
    selection = select_tracks(cache, request, fmt=layout.fmt, library=layout.library)
    text = render_playlist(selection.entries, fmt=layout.fmt, base=layout.base, title=f"moodtag: {request.mood}")
    return Playlist(selection, layout.fmt, text)


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


def check_mood(mood: str, labels: tuple[str, ...], model: tuple[str, str] | None) -> None:
    """Raise MoodtagError unless `mood` is one of `labels`."""
    if mood not in labels:
        whose = f"model {model[0]} {model[1]}" if model else "this cache"
        raise MoodtagError(f"{mood!r} is not a mood of {whose} (choose one of: {', '.join(labels)})")


def select_tracks(cache: Cache, request: PlaylistRequest, *, fmt: str = "m3u8",
                  library: Path | None = None) -> Selection:
    """The cached tracks that `request` asks for, whose files still exist and that `fmt` can hold
    (and, with `library`, that a player confined to that folder can reach)."""
    from tagger.cache import HAS_MOOD_SQL, TABLE, path_key

    if request.order not in ORDERS:
        raise MoodtagError(f"unknown order {request.order!r} (choose one of: {', '.join(ORDERS)})")
    if fmt not in FORMATS:
        raise MoodtagError(f"unknown playlist format {fmt!r} (choose one of: {', '.join(FORMATS)})")
    if request.limit is not None and request.limit < 0:
        raise MoodtagError(f"--limit must be 0 or more, not {request.limit}")
    where = [HAS_MOOD_SQL, "mood = ?", "confidence >= ?"]
    params: list = [request.mood, request.min_confidence]
    if request.model is not None:
        where += ["model_name = ?", "model_version = ?"]
        params += list(request.model)
    if request.roots:
        alternatives = []
        for root in request.roots:
            key, _ = path_key(root)
            prefix = key.rstrip(os.sep) + os.sep
            alternatives.append("path = ? OR (path >= ? AND path < ?)")
            params += [key, prefix, prefix[:-1] + chr(ord(os.sep) + 1)]
        where.append("(" + " OR ".join(f"({a})" for a in alternatives) + ")")
    sql = (f"SELECT path, path_bytes, mood, confidence, duration, artist, title, album FROM {TABLE} "
           f"WHERE {' AND '.join(where)} ORDER BY {_ORDER_SQL[request.order]}")
    rows = cache.rows(sql, params)
    if request.order == "shuffle":
        rows = list(rows)
        random.Random(request.seed).shuffle(rows)

    entries: list[PlaylistEntry] = []
    missing: list[str] = []
    unwritable: list[tuple[str, str]] = []
    outside: list[str] = []
    for row in rows:
        if request.limit is not None and len(entries) >= request.limit:
            break
        entry = PlaylistEntry(*row)
        reachable = library is None or is_inside(entry.path, library)
        problem = m3u_problem(entry) if fmt in M3U_FORMATS else None
        if problem is None and library is not None and reachable:
            problem = library_problem(entry, library)
        if not os.path.exists(entry.fs_path):
            missing.append(entry.path)
        elif not reachable:
            outside.append(entry.path)
        elif problem:
            unwritable.append((entry.path, problem))
        else:
            entries.append(entry)
    return Selection(request, tuple(entries), tuple(missing), tuple(unwritable), tuple(outside))


def is_inside(path: str, folder: Path) -> bool:
    """True when `path` (absolute) is `folder` or lies under it."""
    relative = os.path.relpath(path, folder)
    return not (relative == os.pardir or relative.startswith(os.pardir + os.sep) or os.path.isabs(relative))


def library_problem(entry: PlaylistEntry, library: Path) -> str | None:
    """Why a player reading `library` (MPD's music_directory) cannot load this entry under it, or None.

    MPD 0.23 strips the spaces at the start of every name in a playlist line (tests/test_mpd.py checks it).
    """
    parts = os.path.relpath(entry.path, library).split(os.sep)
    if any(part[:1].isspace() or part[-1:].isspace() for part in parts):
        return "a name in its path begins or ends with a space, which MPD strips from playlist lines"
    return None


def m3u_can_hold(entry: PlaylistEntry) -> bool:
    """False for paths an M3U8 line cannot carry: a line break inside, or a name that is not UTF-8."""
    return m3u_problem(entry) is None


def m3u_problem(entry: PlaylistEntry) -> str | None:
    """Why an M3U8 line cannot carry this entry's path, or None."""
    if entry.raw_path is not None:
        return "its name is not valid UTF-8 (an M3U line cannot hold it; --format xspf can)"
    if LINE_BREAKS & set(entry.path):
        return "its name holds a line break (an M3U line cannot hold it; --format xspf can)"
    return None


def entry_location(entry: PlaylistEntry, base: Path | None) -> str | bytes:
    """The entry's path, absolute (base None) or relative to the folder `base`."""
    if base is None:
        return entry.fs_path
    base_path = os.fsencode(os.path.abspath(base)) if entry.raw_path is not None else os.path.abspath(base)
    return os.path.relpath(entry.fs_path, base_path)


def render_m3u8(entries: tuple[PlaylistEntry, ...] | list[PlaylistEntry], *, base: Path | None = None) -> str:
    """An extended M3U playlist (UTF-8 text): #EXTM3U, then #EXTINF and a path line per entry.

    Entries that cannot be written on one line (see `m3u_can_hold`) must be filtered out before.
    """
    lines = ["#EXTM3U"]
    for entry in entries:
        if not m3u_can_hold(entry):
            raise ValueError(f"{entry.path!r} cannot be written to an M3U playlist")
        seconds = -1 if entry.duration is None else int(round(entry.duration))
        location = entry_location(entry, base)
        if base is not None and (location.startswith("#") or location[:1].isspace()):
            location = "./" + location  # else read as a comment, or stripped
        lines.append(f"#EXTINF:{seconds},{entry.display_title}")
        lines.append(location)
    return "\n".join(lines) + "\n"


def render_xspf(entries: tuple[PlaylistEntry, ...] | list[PlaylistEntry], *, base: Path | None = None,
                title: str | None = None) -> str:
    """An XSPF playlist (XML): percent-encoded file:// URIs (relative URIs when `base` is given)."""
    ET.register_namespace("", XSPF_NS)
    root = ET.Element(f"{{{XSPF_NS}}}playlist", version="1")
    if title:
        ET.SubElement(root, f"{{{XSPF_NS}}}title").text = _xml_text(title)
    track_list = ET.SubElement(root, f"{{{XSPF_NS}}}trackList")
    for entry in entries:
        track = ET.SubElement(track_list, f"{{{XSPF_NS}}}track")
        ET.SubElement(track, f"{{{XSPF_NS}}}location").text = file_uri(entry, base)
        for tag, value in (("title", entry.title or Path(entry.path).stem), ("creator", entry.artist),
                           ("album", entry.album)):
            if value:
                ET.SubElement(track, f"{{{XSPF_NS}}}{tag}").text = _xml_text(value)
        if entry.duration is not None:
            ET.SubElement(track, f"{{{XSPF_NS}}}duration").text = str(int(round(entry.duration * 1000)))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def file_uri(entry: PlaylistEntry, base: Path | None = None) -> str:
    """`file:///abs/path` (base None) or a relative URI reference, every unsafe byte percent-encoded."""
    location = entry_location(entry, base)
    encoded = quote_from_bytes(os.fsencode(location), safe="/")
    return "file://" + encoded if base is None else encoded


def render_playlist(entries, *, fmt: str, base: Path | None = None, title: str | None = None) -> str:
    """The playlist text in format `fmt` (m3u8, m3u or xspf)."""
    if fmt in M3U_FORMATS:
        return render_m3u8(entries, base=base)
    if fmt == "xspf":
        return render_xspf(entries, base=base, title=title)
    raise MoodtagError(f"unknown playlist format {fmt!r} (choose one of: {', '.join(FORMATS)})")


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
        raise MoodtagError("--absolute and --relative-to exclude each other")
    if absolute:
        return None
    if relative_to is not None:
        return Path(os.path.abspath(relative_to.expanduser()))
    return None if folder is None else Path(os.path.abspath(folder.expanduser()))


def write_playlist(text: str, dest: Path) -> Path:
    """Write playlist text to `dest` as UTF-8 (atomically: a temporary file, then rename)."""
    dest = dest.expanduser()
    if dest.is_dir():
        raise MoodtagError(f"{dest}: is a folder (give a playlist file name)")
    tmp = dest.with_name(f".{dest.name}.tmp")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8", newline="\n")
        tmp.replace(dest)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise MoodtagError(f"{dest}: cannot write the playlist ({exc.strerror or exc})") from None
    return dest


def _one_line(text: str | None) -> str:
    return _LINE_BREAK_RE.sub(" ", text).strip() if text else ""


def _xml_text(text: str) -> str:
    return _XML_INVALID_RE.sub("", text)
