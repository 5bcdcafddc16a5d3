"""Walk folders for audio files -> TrackRef (path, size, mtime_ns), reporting what cannot be walked."""
from __future__ import annotations

import os
import stat
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from tagger.errors import BROKEN_LINK, os_text
from tagger.records import TrackRef

AUDIO_SUFFIXES = frozenset({".mp3", ".flac", ".ogg", ".oga", ".opus", ".spx", ".m4a", ".mp4", ".wav",
                            ".aif", ".aiff", ".aifc"})


@dataclass(frozen=True)
class WalkProblem:
    """A file or folder that could not be walked, and why. `if_known`: a broken symlink not named like
    audio (a folder of the library linked to a disk not mounted now, or a dead link to a cover): a
    problem only where the cache holds tracks under it, which the caller, who has the cache, asks."""

    path: Path
    cause: str
    if_known: bool = False


def is_audio_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in AUDIO_SUFFIXES


def not_music(path) -> str | None:
    """Why a file named directly (a PATH or a FILE, not a folder's entry) is not read as a track: a regular
    file whose name has none of AUDIO_SUFFIXES and whose first bytes are no audio container's or stream's
    (a playlist, a cover, a text), which a folder's walk passes over too; None otherwise (an audio name;
    audio under another name, an .m4b, a .wv, a file without a suffix, a link named .lnk: analysed as
    before; not a regular file: the walk or the analysis says what it is)."""
    name = os.path.basename(os.fsdecode(path))
    if is_audio_name(name):
        return None
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        with open(path, "rb") as f:
            head = f.read(16)
    except (OSError, ValueError):
        return None  # the analysis says why it cannot be read
    if _audio_head(head):
        return None
    suffix = os.path.splitext(name)[1]
    return f"not a music file moodtag reads ({suffix or 'no suffix'})"


def _audio_head(head: bytes) -> bool:
    """Whether a file's first bytes are an audio container's or stream's: ID3v2, FLAC, Ogg, RIFF/RF64 WAVE,
    AIFF, MP4 (ftyp), Matroska/WebM, WavPack, Monkey's Audio, TTA, an MPEG audio or ADTS frame (_frame_head)."""
    return (head[:3] == b"ID3" or head[:4] in (b"fLaC", b"OggS", b"\x1aE\xdf\xa3", b"wvpk", b"MAC ", b"TTA1")
            or head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE"
            or head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC") or head[4:8] == b"ftyp"
            or len(head) >= 3 and head[0] == 0xFF and head[1] not in (0xFE, 0xFF) and _frame_head(head))


def _frame_head(head: bytes) -> bool:
    """An ADTS frame's header (sync 0xFFF, layer 0), or an MPEG audio frame's with valid version, layer,
    bitrate and sample-rate bits; FF FE (a UTF-16 text's byte-order mark) and FF FF are neither."""
    if head[1] & 0xF6 == 0xF0:
        return True
    return (head[1] & 0xE0 == 0xE0 and (head[1] >> 3) & 3 != 1 and (head[1] >> 1) & 3 != 0
            and head[2] >> 4 != 15 and (head[2] >> 2) & 3 != 3)


def os_absolute(path) -> Path:
    """`path` made absolute as the OS resolves it, spelt as given where that names the same place: a '..'
    after a symlink is the parent of the link's target (`x/../lib`, x -> nas/music/incoming, is
    nas/music/lib; os.path.abspath drops both names and gives ./lib, another folder), a '..' after a
    plain folder drops that folder's name (`Music/A/..`, Music a link, stays `Music`: the cache keys rows
    by the names a walk gives, so a library scanned through a link keeps its names)."""
    path = os.fspath(path)
    if os.pardir not in Path(path).parts:
        return Path(os.path.abspath(path))
    here = os.getcwd() if not os.path.isabs(path) else os.sep
    for part in Path(path).parts:
        if part in (os.sep, os.curdir):
            continue
        if part == os.pardir:
            here = os.path.dirname(os.path.realpath(here) if os.path.islink(here) else here)
        else:
            here = os.path.join(here, part)
    return Path(here)


def spelt_on_disk(paths) -> list[Path]:
    """Each path made absolute (os_absolute) and spelt as its folders list it: a name the file system finds
    under another spelling (a case-insensitive one: exFAT or FAT32 on a USB stick, a CIFS share, macOS;
    `Music` given as `music`) takes the spelling its folder's listing holds, so a scan, untag or prune
    of it meets the rows a scan made under that spelling instead of making second ones. A name no entry
    matches, or several do, stays as given; nothing changes on a case-sensitive file system. Each folder on
    the way is looked at once for all `paths`: two lstats (the name in the other case, then as given) where
    it tells names apart by case, else one listing."""
    memo = _Spellings()
    return [memo.path(os_absolute(path)) for path in paths]


def fold_name(name: str | bytes) -> str:
    """A file name as a case-insensitive file system compares it: case folded, Unicode composed (NFC;
    macOS lists names decomposed)."""
    import unicodedata

    name = os.fsdecode(name)
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())


class _Spellings:
    """spelt_on_disk's folders, each looked at once: whether it tells names apart by case, else its listing."""

    def __init__(self) -> None:
        self.sensitive: set[str] = set()
        self.listings: dict[str, set[str] | None] = {}

    def path(self, path: Path) -> Path:
        here = path.anchor
        for part in path.parts[1:]:
            here = os.path.join(here, self.entry(here, part))
        return Path(here)

    def entry(self, folder: str, name: str) -> str:
        """The spelling of `name` that `folder`'s listing holds (`name` itself where it holds that, or where
        no entry, or several, match it but for case)."""
        if folder in self.sensitive:
            return name
        if folder not in self.listings:
            if name.isascii() and not any(ch.isalpha() for ch in name):  # `2023`: no other spelling
                return name
            probe = name.swapcase()
            if probe != name and probe.swapcase() == name:  # a name with letters: its other case is a probe
                if not os.path.lexists(os.path.join(folder, probe)):
                    if os.path.lexists(os.path.join(folder, name)):  # this folder tells the two apart
                        self.sensitive.add(folder)
                    return name
            try:
                self.listings[folder] = set(os.listdir(folder))
            except OSError:  # not a folder, not there, not readable: as given
                self.listings[folder] = None
        names = self.listings[folder]
        if names is None or name in names:
            return name
        folded = fold_name(name)
        matches = [entry for entry in names if fold_name(entry) == folded]
        return matches[0] if len(matches) == 1 else name


def spelt_as_listed(path) -> bool:
    """Whether each name of `path` (a file that is there) is spelt as its folder lists it: False for a row's
    path after a rename that changed only the case of a name (`01 one.mp3` -> `01 ONE.mp3`) on a
    case-insensitive file system, where the old spelling still opens the file (spelt_on_disk). Inside
    one_look_per_folder each folder is looked at once for all paths."""
    path = Path(os.fsdecode(os.path.abspath(path)))
    return (getattr(_shared, "spellings", None) or _Spellings()).path(path) == path


_shared = threading.local()  # one_look_per_folder's memo, per thread


@contextmanager
def one_look_per_folder():
    """A scan's or prune's spelt_as_listed (vanished) looks at each folder once for all its rows: a folder of
    2,000 files renamed by case is one listing, not 2,000 (usable as a decorator; per thread, nested uses
    share the outer one's)."""
    outer = getattr(_shared, "spellings", None)
    _shared.spellings = outer or _Spellings()
    try:
        yield
    finally:
        _shared.spellings = outer


@dataclass(frozen=True)
class Library:
    """The folders a walk starts from, each as its real path and as given (absolute): where a symlink
    to a file points into the library."""

    folders: tuple[tuple[str, Path], ...]
    include_hidden: bool = False

    @classmethod
    def of(cls, roots: list[Path], *, include_hidden: bool = False) -> "Library":
        return cls(tuple((os.path.realpath(root), os_absolute(root)) for root in roots
                         if os.path.isdir(root)), include_hidden)

    def name_of(self, link: Path, known: Callable[[Path], Path | None] | None = None) -> Path:
        """The path a walk gives the file that `link` (a symlink, or a path through one) names: its own
        path (under the root as given) when the library holds it there too, so that it is one track with one
        cache row whichever of its names the walk meets first (folders are walked in sorted order, and a
        "Favorites" folder of links may come before the albums). A link to a file outside the library
        (a "Favorites" folder scanned on its own, after the library it points into): the name `known`
        (the cache, as in walk) says its file has a row under, so that the file keeps that one row.
        Else, and for a link to a file the walk would not take by its own name (in a hidden folder, not
        named as audio), the link's path."""
        target = os.path.realpath(link)
        if not is_audio_name(target):
            return link
        place = self._own_place(target)
        if place is not None:
            return place[0].joinpath(*place[1])
        if known is not None and not self._holds(target):
            return known(Path(target)) or link
        return link

    def walks_folder(self, link: Path) -> bool:
        """Whether the folder the symlink `link` points to is walked by its own name anyway: it lies under
        a root, in no hidden folder (unless include_hidden), and is not the link's own folder or one above
        it (a loop, which the walk reports). Such a link (an album linked into a "Favorites" folder) is
        passed over, so the album's files are tracks under their own paths whichever name sorts first."""
        target = os.path.realpath(link)
        here = os.path.realpath(link.parent)
        if here == target or here.startswith(target.rstrip(os.sep) + os.sep):
            return False
        return self._own_place(target) is not None

    def _holds(self, target: str) -> bool:
        """Whether the real path `target` lies under one of the roots (in a hidden folder or not)."""
        return any(os.path.relpath(target, real).split(os.sep)[0] != os.pardir for real, _ in self.folders)

    def _own_place(self, target: str) -> tuple[Path, list[str]] | None:
        """(root as given, the parts below it) of the first root the real path `target` lies under, in no
        hidden folder unless include_hidden: where the walk meets it by its own name; None if none."""
        for real, root in self.folders:
            parts = os.path.relpath(target, real).split(os.sep)
            if parts[0] in (os.curdir, os.pardir):
                continue
            if self.include_hidden or not any(part.startswith(".") for part in parts):
                return root, parts
        return None


def own_name(link: Path, *, include_hidden: bool = False) -> Path:
    """The path a walk of the folders above the symlink `link` gives the file it names (a file PATH given
    to scan through a link, a "Favorites" entry): the file's own path under the nearest of those folders
    that holds it (Library.name_of), spelled through that folder as given. The link's own path where no
    folder above it holds the file, or holds it only in a hidden folder. Which folder the user scans as
    the library is not known here, so a scan takes this name only where the cache has a row under it
    (walk's `known` gives this name back): `scan Favorites/x.mp3` then keeps the one row a scan of the
    library made."""
    link = Path(os.path.abspath(link))
    return Library.of(list(link.parents), include_hidden=include_hidden).name_of(link)


def walk(paths: list[Path], *, include_hidden: bool = False,
         known: Callable[[Path], Path | None] | None = None,
         check: Callable[[], None] = lambda: None,
         followed: list[Path] | None = None) -> Iterator[TrackRef | WalkProblem]:
    """Yield a TrackRef per audio file under `paths` (files named directly are taken whatever their suffix:
    a scan refuses those not_music names first, a beets item's file is taken), in a stable order. Only
    regular files: a FIFO or a device named like audio is a problem. Symlinks are followed; a folder or file
    reached twice (a symlink loop, or two links to one file) is visited once; a link to a file in the
    library gives the file's own path (Library.name_of; a link named directly: its file's own name where
    `known` says that name has a row, own_name), and a link to a folder the walk takes by its own name is
    passed over (Library.walks_folder). `known(path)`: the name the cache keeps the file at `path` under
    (`path` itself where it has a row, else another of the file's names; None: none, or no cache), so that a
    link below a PATH to a file outside every PATH (a "Favorites" folder of links into a library scanned
    before) is the file's one track under that name; where none is known, the link's path.
    Hard links are names of their own. Unreadable folders and broken links give WalkProblems.
    `check()` is called before each folder is listed; what it raises ends the walk (a scan's stop
    request: a library of many folders without audio, a slow share, is stopped in the folder it is in,
    not at the next audio file). `followed` (a list) gets each symlink to a folder the walk goes into (a
    scan remembers the mount points behind them: Cache.note_mounts)."""
    seen_dirs: set = set()
    seen_files = _Identities()
    library = Library.of(paths, include_hidden=include_hidden)
    for root in paths:
        root = os_absolute(root)
        try:
            st = root.stat()
        except OSError as exc:
            yield WalkProblem(root, _cause(exc))
            continue
        if root.is_dir():
            yield from _walk_dir(root, st, seen_dirs, seen_files, library, known, check, followed)
        elif not stat.S_ISREG(st.st_mode):
            yield WalkProblem(root, f"not a regular file ({file_kind(st.st_mode)}), skipped")
        else:
            if seen_files.first_time(st):
                name = root
                if root.is_symlink() and known is not None:  # its file's own row, where a scan made one
                    own = own_name(root, include_hidden=include_hidden)
                    name = own if own != root and known(own) == own else root
                yield TrackRef(path=name, size=st.st_size, mtime_ns=st.st_mtime_ns)


def _walk_dir(folder: Path, st: os.stat_result, seen_dirs, seen_files, library: Library, known=None,
              check=lambda: None, followed: list[Path] | None = None):
    check()
    ident = (st.st_dev, st.st_ino)
    if ident in seen_dirs:
        if folder.is_symlink():
            yield WalkProblem(folder, "symlink loop (points to a folder already scanned), skipped")
        return
    seen_dirs.add(ident)
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        yield WalkProblem(folder, f"cannot list the folder: {_cause(exc)}")
        return
    subdirs = []
    for entry in entries:
        if not library.include_hidden and entry.name.startswith("."):
            continue
        path = Path(entry.path)
        try:
            is_dir = entry.is_dir(follow_symlinks=True)
        except OSError as exc:
            yield WalkProblem(path, _cause(exc))
            continue
        if is_dir:
            subdirs.append(entry)
            continue
        if not is_audio_name(entry.name):
            if entry.is_symlink() and _dangles(path):  # a folder on a disk not mounted now, say: its rows are kept
                yield WalkProblem(path, BROKEN_LINK, if_known=True)
            continue
        try:
            fst = entry.stat(follow_symlinks=True)
        except FileNotFoundError:
            yield WalkProblem(path, BROKEN_LINK)
            continue
        except OSError as exc:
            yield WalkProblem(path, _cause(exc))
            continue
        if not stat.S_ISREG(fst.st_mode):
            yield WalkProblem(path, f"not a regular file ({file_kind(fst.st_mode)}), skipped")
            continue
        if not seen_files.first_time(fst):
            continue
        if entry.is_symlink():
            path = library.name_of(path, known)
        yield TrackRef(path=path, size=fst.st_size, mtime_ns=fst.st_mtime_ns)
    for entry in subdirs:
        path = Path(entry.path)
        if entry.is_symlink() and library.walks_folder(path):
            continue
        try:
            sub_st = entry.stat(follow_symlinks=True)
        except OSError as exc:
            yield WalkProblem(path, _cause(exc))
            continue
        if followed is not None and entry.is_symlink():
            followed.append(path)
        yield from _walk_dir(path, sub_st, seen_dirs, seen_files, library, known, check, followed)


class _Identities:
    """The files met so far, by (device, inode), in a few dozen bytes each: the inode number alone for
    files on the first device met (a library of 100,000 files: 6 MB instead of 15)."""

    def __init__(self) -> None:
        self.device: int | None = None
        self.seen: set = set()

    def first_time(self, st: os.stat_result) -> bool:
        """True the first time a file is met (then it is remembered)."""
        if self.device is None:
            self.device = st.st_dev
        ident = st.st_ino if st.st_dev == self.device else (st.st_dev, st.st_ino)
        if ident in self.seen:
            return False
        self.seen.add(ident)
        return True


def vanished(path, *, spelling: bool = True) -> bool:
    """Whether the file is known to be gone: lstat says it does not exist, or its path now holds what is
    neither a regular file nor a symlink to one (a folder, a FIFO, a device: no scan takes it for the
    file; a symlink whose target is not there, whose rows a scan keeps: behind_broken_link), or a name of
    it is no longer spelt so in its folder (renamed by case only on a case-insensitive file system, where
    the old spelling still opens it: spelt_as_listed). A file that cannot be looked at (a folder without
    permission, an I/O error) is not: its row must not be marked missing (and then forgotten by `prune`)
    because of that. `spelling=False`: whether the file itself is gone, however its name is spelt now (a
    beets item removed from the library, its file kept under another case of its name)."""
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False
    return not stat.S_ISREG(st.st_mode) or spelling and not spelt_as_listed(path)


def behind_broken_link(path) -> bool:
    """Whether `path`, or a folder above it, is a symlink whose target is not there (a library's folder
    linked to a disk not mounted now): the file may be back with the disk, so a scan keeps its row as it
    is, as it keeps the rows under a PATH that is not there. The nearest of `path` and the folders above
    it that is there (lstat) is looked at: one lstat per missing folder above it."""
    place = path
    while not os.path.lexists(place):
        parent = os.path.dirname(place)
        if parent == place:
            return False
        place = parent
    return os.path.islink(place) and not os.path.exists(place)


def _dangles(path: Path) -> bool:
    """Whether the symlink `path` points to nothing (its target, or a folder on the way to it, is not there)."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False
    return False


def file_kind(mode: int) -> str:
    """What a stat mode says a path is: 'a FIFO', 'a character device', ... ('a file' for a regular one)."""
    for test, name in ((stat.S_ISREG, "a file"), (stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a file"


def _cause(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError):
        return "no such file or folder"
    if exc.errno == 40:  # ELOOP
        return "symlink loop"
    return os_text(exc)
