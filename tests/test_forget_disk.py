"""`moodtag prune --forget-disk MOUNT`: a disk a scan saw mounted, gone for good. It forgets that disk's rows
and no other's (a disk mounted inside MOUNT keeps its own, untags included), refuses a folder that no disk
was seen mounted at (/media/USER, above the disks), and the commands that point to it (scan's and prune's
lines, the playlist warnings and errors) name what works (the library's folder linked into the disk
beside it), their paths quoted for a shell.

Real mounts: bind mounts in a private user and mount namespace (tests.test_removable._in_namespace), the
real CLI; skipped where no namespace can be had."""
from __future__ import annotations

import shlex
from pathlib import Path

from tagger import synth
from tests.test_removable import _disk, _in_namespace


def _tracks(folder: Path, names: dict[str, tuple[str, int]]) -> None:
    """Audio files under `folder`: name -> (label, seed) of tagger.synth."""
    for name, (label, seed) in names.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        synth.make_track(folder / name, label, 6.0, seed=seed)


def test_forget_disk_forgets_the_disk_mounted_there_and_not_one_mounted_inside_it(tmp_path):
    """Disk A at music, disk B at music/Archive, both unplugged: `prune --forget-disk music` (A retired) forgot
    B's rows too, the untag set on one of them included. Only the rows whose nearest mount point a scan saw
    is MOUNT go; B's stay, with prune's line naming B. Through a library linked to A (lib -> music, its rows
    kept under lib), the same, and B's line names the folder its rows are reached through."""
    _tracks(tmp_path / "outer", {"Lib/1.mp3": ("calm", 1)})
    _tracks(tmp_path / "inner", {"2.ogg": ("exciting", 2), "3.flac": ("calm", 3)})
    out = _in_namespace(tmp_path, """
music, archive, lib, db, ldb = top / "music", top / "music/Archive", top / "lib", top / "c.db", top / "l.db"
plug(top / "outer", music)
plug(top / "inner", archive)
lib.symlink_to(music)
cli("scan", "scan", music, "--db", db, "--jobs", "1")
cli("scan link", "scan", lib, "--db", ldb, "--jobs", "1")
cli("untag", "untag", archive / "2.ogg", "--db", db)
unplug(archive, remove=False)
unplug(music, remove=False)
cli("forget outer dry", "prune", "-n", "--forget-disk", music, "--db", db)
cli("forget outer", "prune", "--forget-disk", music, "--db", db)
states("outer forgotten", db)
cli("forget inner", "prune", "--forget-disk", archive, "--db", db)
states("inner forgotten", db)
cli("link outer", "prune", "--forget-disk", music, lib, "--db", ldb)
states("link outer forgotten", ldb)
cli("link inner", "prune", "--forget-disk", archive, lib / "Archive", "--db", ldb)
states("link inner forgotten", ldb)
print(json.dumps(out))
""")
    for step in ("scan", "scan link", "untag"):
        assert out[step][0] == 0, out[step]
    music, archive, lib = tmp_path / "music", tmp_path / "music/Archive", tmp_path / "lib"
    kept = (f"2 tracks under {archive}: the disk a scan saw mounted there is not mounted now; if they are gone for "
            f"good, moodtag prune --forget-disk {archive}")
    assert out["forget outer dry"][:2] == [0, f"would forget: {music / 'Lib/1.mp3'}\nwould keep {kept}\n"
                                              f"would forget 1 track whose file is gone\n"], out["forget outer dry"]
    assert out["forget outer"][:2] == [0, f"kept {kept}\nforgot 1 track whose file is gone\n"], out["forget outer"]
    assert out["outer forgotten"] == {"2.ogg": ["ok", "untagged"], "3.flac": ["ok", "tagged"]}
    assert out["forget inner"][:2] == [0, "forgot 2 tracks whose files are gone\n"], out["forget inner"]
    assert out["inner forgotten"] == {}
    assert out["link outer"][:2] == [0, f"kept {kept} {lib / 'Archive'}\nforgot 1 track whose file is gone\n"], \
        out["link outer"]
    assert out["link outer forgotten"] == {"2.ogg": ["ok", "tagged"], "3.flac": ["ok", "tagged"]}
    assert out["link inner"][:2] == [0, "forgot 2 tracks whose files are gone\n"], out["link inner"]
    assert out["link inner forgotten"] == {}


def test_forget_disk_refuses_a_folder_no_disk_was_seen_mounted_at(tmp_path):
    """`prune --forget-disk /media/USER` (the folder above two sticks, never a mount point) forgot every stick
    not mounted under it. A folder that is not a mount point a scan saw is refused, nothing forgotten, dry run
    or not: exit 1, one line naming the mount points seen under it; or, for a folder on such a disk, that disk;
    or, for a plain folder of the cache's, what forgets its tracks gone. The stick's own mount point works."""
    _disk(tmp_path)
    _tracks(tmp_path / "disk2", {"4.ogg": ("calm", 4)})
    _tracks(tmp_path / "plain folder", {"5.mp3": ("exciting", 5)})
    out = _in_namespace(tmp_path, """
media, plain, db = top / "media/user", top / "plain folder", top / "c.db"
old, keep = media / "OLD", media / "KEEP"
plug(top / "disk", old)
plug(top / "disk2", keep)
cli("scan", "scan", media, plain, "--db", db, "--jobs", "1")
cli("untag", "untag", keep / "4.ogg", "--db", db)
unplug(old)
unplug(keep)
states("before", db)
cli("parent", "prune", "--forget-disk", media, "--db", db)
cli("parent dry", "prune", "-n", "--forget-disk", media, "--db", db)
cli("inside", "prune", "--forget-disk", old / "Music", "--db", db)
cli("plain", "prune", "--forget-disk", plain, "--db", db)
states("refused", db)
cli("old", "prune", "--forget-disk", old, "--db", db)
states("forgotten", db)
print(json.dumps(out))
""")
    assert out["scan"][0] == 0 and out["untag"][0] == 0, out["scan"]
    media, old, keep, plain = (tmp_path / "media/user", tmp_path / "media/user/OLD", tmp_path / "media/user/KEEP",
                               tmp_path / "plain folder")
    refusal = ("not a mount point a scan saw (--forget-disk MOUNT forgets the tracks of the disk once mounted at "
               "MOUNT, none other)")
    for step in ("parent", "parent dry"):
        assert out[step] == [1, "", f"error: {media}: {refusal}; those seen under it: {keep}, {old}\n"], out[step]
    assert out["inside"] == [1, "", f"error: {old / 'Music'}: {refusal}; it lies on the disk a scan saw mounted at "
                                    f"{old}, not mounted now (`moodtag prune --forget-disk {old}` forgets that disk's "
                                    f"tracks)\n"], out["inside"]
    assert out["plain"] == [1, "", f"error: {plain}: {refusal}; no disk not mounted now was seen there, nor above it; "
                                   f"`moodtag prune {shlex.quote(str(plain))}` forgets the tracks gone under it\n"], \
        out["plain"]
    assert out["refused"] == out["before"] and len(out["before"]) == 5, out["refused"]
    assert out["before"]["4.ogg"] == ["ok", "untagged"]
    assert out["old"][:2] == [0, "forgot 3 tracks whose files are gone\n"], out["old"]
    assert out["forgotten"] == {"4.ogg": ["ok", "untagged"], "5.mp3": ["ok", "tagged"]}


def test_a_disk_linked_into_the_library_is_forgotten_as_the_playlist_says(tmp_path):
    """A library reaching a stick through a link (`lib/My USB -> media/My Stick/Music`), the stick gone for
    good: the playlist warning said `moodtag prune --forget-disk media/My Stick`, which forgets nothing (the
    rows are kept under the link's path), and a path with a space, pasted, is two words. The warning names the
    linked folder beside the mount point, both quoted for a shell, and following it forgets the rows. A
    playlist none of whose files is on disk now is not replaced, and its error no longer says that `moodtag
    prune` forgets tracks it keeps: it names the disk and the command, as the warning does (with other files
    gone as well, both)."""
    _disk(tmp_path)
    _tracks(tmp_path / "lib/local", {"4.mp3": ("exciting", 0)})  # the same audio as the stick's A/1.mp3
    out = _in_namespace(tmp_path, """
lib, usb, db, pl = top / "lib", top / "media/My Stick", top / "c.db", top / "pl/list.m3u8"
(lib / "My USB").symlink_to(usb / "Music")
(lib / "local/notes.txt").write_text("x")  # the folder stays, not empty
plug(top / "disk", usb)
cli("scan", "scan", lib, "--db", db, "--jobs", "1")
con = sqlite3.connect(db)
out["moods"] = {Path(p).name: m for p, m in con.execute("SELECT path, mood FROM tracks")}
con.close()
mood = out["moods"]["1.mp3"]
cli("write", "playlist", mood, "-o", pl, "--db", db)
unplug(usb)
(lib / "local/4.mp3").unlink()
cli("some gone", "playlist", mood, "-o", pl, "--db", db)
cli("nightly scan", "scan", lib, "--db", db, "--jobs", "1")
cli("nightly prune", "prune", lib, "--db", db)
cli("none gone elsewhere", "playlist", mood, "-o", pl, "--db", db)
cli("printed", "playlist", mood, "--db", db)
cli("forget", "prune", "--forget-disk", usb, lib / "My USB", "--db", db)
states("forgotten", db)
cli("after", "playlist", mood, "--db", db)
print(json.dumps(out))
""")
    assert out["scan"][0] == 0 and out["write"][0] == 0, out["write"]
    moods, usb, link = out["moods"], tmp_path / "media/My Stick", tmp_path / "lib/My USB"
    mood = moods["1.mp3"]
    assert moods["4.mp3"] == mood, moods
    on_usb = sum(moods[name] == mood for name in ("1.mp3", "2.ogg", "3.flac"))
    command = f"`moodtag prune --forget-disk '{usb}' '{link}'`"
    kept = f"kept until it is mounted again, or {command} if it is gone for good"
    pl = tmp_path / "pl/list.m3u8"
    assert out["some gone"][:2] == [1, ""] and out["some gone"][2] == (
        f"error: {pl}: not replaced by an empty {mood} playlist: none of its {on_usb + 1} cached {mood} tracks is on "
        f"disk now (a disk not mounted, or the library moved?): mount it, or `moodtag scan` the library where it is "
        f"now and where it was; `moodtag prune` forgets the tracks gone, not those on a disk not mounted now ({usb}): "
        f"{kept}\n"), out["some gone"]
    # (the library's rows reached through a link into the disk: prune of the library reads no row's file to find it)
    assert out["nightly prune"][:2] == [0, "forgot 1 missing track\n"], out["nightly prune"]
    one = on_usb == 1
    tracks = f"its one cached {mood} track is not" if one else f"none of its {on_usb} cached {mood} tracks is"
    lie, are = ("it lies", "it is") if one else ("they lie", "they are")
    assert out["none gone elsewhere"][:2] == [1, ""] and out["none gone elsewhere"][2] == (
        f"error: {pl}: not replaced by an empty {mood} playlist: {tracks} on disk now: {lie} on a disk not mounted now "
        f"({usb}): mount it; {are} {kept}\n"), out["none gone elsewhere"]
    assert out["printed"][0] == 0 and out["printed"][2] == (
        f"warning: {on_usb} cached {mood} track{'' if one else 's'} on a disk not mounted now left out ({usb}: "
        f"{kept})\n"), out["printed"]
    assert out["forget"][:2] == [0, "forgot 3 tracks whose files are gone\n"], out["forget"]
    assert out["forgotten"] == {}
    assert out["after"][0] == 0 and out["after"][2] == "", out["after"]


def test_the_commands_that_lines_suggest_quote_their_paths(tmp_path):
    """`--forget-disk /media/x/My Stick` pasted into a shell is two arguments: the scan's line for an empty
    PATH, its line for a disk not mounted, and prune's lines quote each path of the command they suggest (the
    place they name, outside the command, as it is)."""
    _disk(tmp_path)
    _tracks(tmp_path / "media/OTHER", {"4.ogg": ("calm", 4)})
    _tracks(tmp_path / "My Folder", {"5.mp3": ("calm", 5)})
    out = _in_namespace(tmp_path, """
media, usb, folder, db = top / "media", top / "media/My Stick", top / "My Folder", top / "c.db"
plug(top / "disk", usb)
cli("scan", "scan", media, folder, "--db", db, "--jobs", "1")
(usb / "Music/B/3.flac").unlink()  # deleted for real, the disk mounted: marked missing
cli("scan again", "scan", usb, "--db", db, "--jobs", "1")
unplug(usb, remove=False)  # its folder stays, empty
(folder / "5.mp3").unlink()  # emptied on purpose, on no disk of its own
cli("empty", "scan", usb, folder, "--db", db, "--jobs", "1")
cli("prune marked", "prune", usb / "Music/B", "--db", db)
cli("prune", "prune", usb / "Music", "--db", db)
usb.rmdir()
cli("away", "scan", media, "--db", db, "--jobs", "1")
print(json.dumps(out))
""")
    assert out["scan"][0] == 0 and out["scan again"][0] == 0, out["scan again"]
    usb, folder = tmp_path / "media/My Stick", tmp_path / "My Folder"
    q_usb, q_folder = f"'{usb}'", f"'{folder}'"
    lines = out["empty"][2].splitlines()
    assert (f"warning: {usb}: it is empty: the disk a scan saw mounted there is not mounted now; 2 cached tracks under "
            f"it left as they are (mount it; gone for good? moodtag prune --forget-disk {q_usb})") in lines, lines
    assert (f"warning: {folder}: it is empty (a disk not mounted?); 1 cached track under it left as it is (emptied on "
            f"purpose? remove the folder, then moodtag prune {q_folder})") in lines, lines
    marked = (f"kept 1 missing track under {usb}: the disk a scan saw mounted there is not mounted now; moodtag prune "
              f"{q_usb} forgets them\nforgot 0 missing tracks\n")
    assert out["prune marked"][:2] == [0, marked], out["prune marked"]
    assert out["prune"][:2] == [0, f"kept 3 tracks under {usb}: the disk a scan saw mounted there is not mounted now; "
                                   f"if they are gone for good, moodtag prune --forget-disk {q_usb}\n"
                                   f"forgot 0 missing tracks\n"], out["prune"]
    assert out["away"][2].splitlines()[-1] == (
        f"2 cached tracks under {usb} left as they are: the disk a scan saw mounted there is not mounted now (gone "
        f"for good? moodtag prune --forget-disk {q_usb})"), out["away"]


def test_the_scans_lines_name_the_library_folder_linked_into_a_disk_beside_it(tmp_path):
    """A library holding a link to a disk's mount point (`lib/My Ext -> mnt/My Ext`), the disk away: the scan's
    line for it, and its line for the link named as an empty PATH, said `moodtag prune --forget-disk
    'mnt/My Ext'`, which forgets nothing (the rows are kept under the link's path). They name the link beside
    the mount point, as prune's line does, both quoted for a shell, and following them forgets the rows."""
    _disk(tmp_path)
    _tracks(tmp_path / "lib/local", {"4.mp3": ("exciting", 4)})
    out = _in_namespace(tmp_path, """
lib, ext, db = top / "lib", top / "mnt/My Ext", top / "c.db"
plug(top / "disk", ext)
(lib / "My Ext").symlink_to(ext)
cli("scan", "scan", lib, "--db", db, "--jobs", "1")
unplug(ext, remove=False)  # its folder stays, empty
cli("away", "scan", lib, "--db", db, "--jobs", "1")
cli("away json", "scan", lib, "--json", "--db", db, "--jobs", "1")
cli("empty", "scan", lib / "My Ext", "--db", db, "--jobs", "1")
ext.rmdir()  # as udisks does: the link is broken now
cli("removed", "scan", lib, "--db", db, "--jobs", "1")
cli("forget", "prune", "--forget-disk", ext, lib / "My Ext", "--db", db)
states("forgotten", db)
print(json.dumps(out))
""")
    ext, link = tmp_path / "mnt/My Ext", tmp_path / "lib/My Ext"
    command = f"moodtag prune --forget-disk {shlex.quote(str(ext))} {shlex.quote(str(link))}"
    assert out["scan"][0] == 0, out["scan"]
    line = (f"3 cached tracks under {ext} left as they are: the disk a scan saw mounted there is not mounted now "
            f"(gone for good? {command})")
    assert out["away"][0] == 0 and out["away"][2].splitlines()[-1] == line, out["away"]
    assert out["away json"][0] == 0 and out["away json"][2].splitlines()[-1] == line, out["away json"]
    assert out["empty"][0] == 1 and (
        f"warning: {link}: it is empty: the disk a scan saw mounted there is not mounted now; 3 cached tracks under "
        f"it left as they are (mount it; gone for good? {command})") in out["empty"][2].splitlines(), out["empty"]
    # the mount point's folder removed (udisks), the link broken: its rows were not counted, no line
    assert out["removed"][0] == 0 and line in out["removed"][2].splitlines(), out["removed"]
    assert out["forget"][:2] == [0, "forgot 3 tracks whose files are gone\n"], out["forget"]
    assert out["forgotten"] == {"4.mp3": ["ok", "tagged"]}


def test_prune_of_a_folder_above_a_disk_away_and_of_the_whole_cache_names_the_disk(tmp_path):
    """A disk mounted inside the library (`lib/USB`), away: `prune lib/USB` said what it keeps for the disk and
    what forgets it, but `prune lib` and `prune` (the whole cache) kept the same rows without a word (only the
    rows under a PATH not there, or marked missing, were looked at). Each now says it in the same line; what
    they forget is as before (a file deleted beside them). Only the rows under a disk away are looked at, so a
    disk reached through a link (`lib/Ext -> media/Ext`) is named where the link itself is the PATH."""
    _disk(tmp_path)
    _tracks(tmp_path / "disk2", {"7.mp3": ("calm", 7), "8.ogg": ("exciting", 8)})
    _tracks(tmp_path / "lib/local", {"4.mp3": ("exciting", 4), "5.ogg": ("calm", 5)})
    out = _in_namespace(tmp_path, """
lib, usb, ext, db = top / "lib", top / "lib/USB", top / "media/Ext", top / "c.db"
plug(top / "disk", usb)
plug(top / "disk2", ext)
(lib / "Ext").symlink_to(ext)
cli("scan", "scan", lib, "--db", db, "--jobs", "1")
unplug(usb, remove=False)  # its folder stays, empty
unplug(ext, remove=False)
(lib / "local/5.ogg").unlink()
cli("away", "scan", lib, "--db", db, "--jobs", "1")
cli("lib dry", "prune", "-n", lib, "--db", db)
cli("all dry", "prune", "-n", "--db", db)
cli("usb dry", "prune", "-n", usb, "--db", db)
cli("link dry", "prune", "-n", lib / "Ext", "--db", db)
cli("lib", "prune", lib, "--db", db)
cli("all", "prune", "--db", db)
states("pruned", db)
print(json.dumps(out))
""")
    assert out["scan"][0] == 0 and out["away"][0] == 0, out["away"]
    lib, usb, ext = tmp_path / "lib", tmp_path / "lib/USB", tmp_path / "media/Ext"
    away = "the disk a scan saw mounted there is not mounted now; if they are gone for good, moodtag prune --forget-disk"
    kept = f"3 tracks under {usb}: {away} {shlex.quote(str(usb))}"
    forget = f"would forget: {lib / 'local/5.ogg'}\n"
    for step in ("lib dry", "all dry"):
        assert out[step][:2] == [0, f"{forget}would keep {kept}\nwould forget 1 missing track\n"], (step, out[step])
    assert out["usb dry"][:2] == [0, f"would keep {kept}\nwould forget 0 missing tracks\n"], out["usb dry"]
    assert out["link dry"][:2] == [0, f"would keep 2 tracks under {ext}: {away} {shlex.quote(str(ext))} "
                                      f"{shlex.quote(str(lib / 'Ext'))}\nwould forget 0 missing tracks\n"], out["link dry"]
    assert out["lib"][:2] == [0, f"kept {kept}\nforgot 1 missing track\n"], out["lib"]
    assert out["all"][:2] == [0, f"kept {kept}\nforgot 0 missing tracks\n"], out["all"]
    assert out["pruned"] == {name: ["ok", "tagged"] for name in ("1.mp3", "2.ogg", "3.flac", "4.mp3", "7.mp3", "8.ogg")}


def test_forget_disk_of_a_folder_on_a_disk_names_that_disk_beside_those_inside_it(tmp_path):
    """Disk A at `My Mnt`, disk B at `My Mnt/Music/Arch ive`, both away: `prune --forget-disk 'My Mnt/Music'` (a
    folder on A, above B) was refused naming B only, not A, the disk the folder lies on and the one most likely
    meant. The refusal names A too, with the command that forgets its tracks, quoted for a shell; nothing is
    forgotten, dry run or not, and that command forgets A's track and keeps B's."""
    _tracks(tmp_path / "outer", {"Music/1.ogg": ("calm", 1)})
    _tracks(tmp_path / "inner", {"2.mp3": ("exciting", 2), "3.flac": ("calm", 3)})
    out = _in_namespace(tmp_path, """
mnt, db = top / "My Mnt", top / "c.db"
archive = mnt / "Music/Arch ive"
plug(top / "outer", mnt)
plug(top / "inner", archive)
cli("scan", "scan", mnt / "Music", "--db", db, "--jobs", "1")
unplug(archive, remove=False)
unplug(mnt, remove=False)
states("before", db)
cli("folder", "prune", "--forget-disk", mnt / "Music", "--db", db)
cli("folder dry", "prune", "-n", "--forget-disk", mnt / "Music", "--db", db)
states("refused", db)
cli("outer", "prune", "--forget-disk", mnt, "--db", db)
states("forgotten", db)
print(json.dumps(out))
""")
    assert out["scan"][0] == 0, out["scan"]
    mnt, archive = tmp_path / "My Mnt", tmp_path / "My Mnt/Music/Arch ive"
    error = (f"error: {mnt / 'Music'}: not a mount point a scan saw (--forget-disk MOUNT forgets the tracks of the disk "
             f"once mounted at MOUNT, none other); it lies on the disk a scan saw mounted at {mnt}, not mounted now "
             f"(`moodtag prune --forget-disk {shlex.quote(str(mnt))}` forgets that disk's tracks); those seen under "
             f"it: {archive}\n")
    for step in ("folder", "folder dry"):
        assert out[step] == [1, "", error], out[step]
    assert out["refused"] == out["before"] and len(out["before"]) == 3, out["refused"]
    assert out["outer"][0] == 0 and out["outer"][1].endswith("forgot 1 track whose file is gone\n"), out["outer"]
    assert out["forgotten"] == {"2.mp3": ["ok", "tagged"], "3.flac": ["ok", "tagged"]}


def test_prune_of_a_disks_mount_point_whose_rows_lie_behind_a_link_is_not_called_only_a_typo(tmp_path):
    """A library reaching a disk through a link (`lib/USB -> media/USB/Music`), the disk away: `prune media/USB`
    said only "no cached tracks under media/USB (a typo, or a place never scanned?)", though a scan saw the
    disk mounted there. The warning names the disks a scan saw at, on or under the PATH with no row keyed
    under them, and where their rows would be (a typo, maybe, still: a disk a scan saw with no music at all,
    a camera card, is just as possible); a place near no disk a scan saw is called a typo only."""
    _disk(tmp_path)
    out = _in_namespace(tmp_path, """
lib, usb, cam, db = top / "lib", top / "media/USB", top / "media/CAMERA", top / "c.db"
plug(top / "disk", usb)
(top / "card/DCIM").mkdir(parents=True)
plug(top / "card", cam)
lib.mkdir()
(lib / "USB").symlink_to(usb / "Music")
cli("scan", "scan", lib, cam, "--db", db, "--jobs", "1")  # the card: a mount point, no music
unplug(usb, remove=False)
cli("mount point", "prune", "-n", usb, "--db", db)
cli("media", "prune", "-n", top / "media", "--db", db)
cli("typo", "prune", "-n", top / "medai", "--db", db)
print(json.dumps(out))
""")
    usb, cam = tmp_path / "media/USB", tmp_path / "media/CAMERA"
    assert out["scan"][0] == 0, out["scan"]
    link = "the tracks a library reached it through by a link are cached under that link, name it"
    assert out["mount point"][:3] == [0, "would forget 0 missing tracks\n", (
        f"warning: no cached tracks under {usb} (a typo, or a place never scanned?; a scan saw a disk mounted at "
        f"{usb}: {link}): nothing to forget there\n")], out["mount point"]
    assert out["media"][2].startswith(f"warning: no cached tracks under {tmp_path / 'media'} (a typo, or a place "
                                      f"never scanned?; a scan saw a disk mounted at "), out["media"]
    assert str(usb) in out["media"][2] and str(cam) in out["media"][2], out["media"]
    assert out["typo"][2] == (f"warning: no cached tracks under {tmp_path / 'medai'} (a typo, or a place never "
                              f"scanned?): nothing to forget there\n"), out["typo"]
