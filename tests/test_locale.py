"""The cache under a locale that is not UTF-8 (LC_ALL=C with Python's UTF-8 mode off: an ASCII file-system
encoding; a Latin-1 locale): its keys are UTF-8 text whatever the locale, and each must become the file's
name by UTF-8, never by the locale's encoding (which spells `Café` as another name under Latin-1, and
cannot spell it under C). A cron job or a service often runs so. Real CLI in a subprocess, real files
made by tagger.synth, a cache made by a scan under a UTF-8 locale."""
from __future__ import annotations

import codecs
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tagger.synth import make_track

NAMES = {  # the library's files (under a folder whose own name is not ASCII either), one of them with no accent
    "Café/01 Sérénade.flac": 1,
    "Кофе/02 Быстро.flac": 2,
    "emoji 🎵/03 🔥 fire.flac": 3,
    "plain/04 plain.flac": 4,
}
NOT_ASCII = ["Café", "Кофе", "emoji 🎵"]

_LOCALE_VARS = ("LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_COLLATE", "LC_MESSAGES", "PYTHONUTF8",
                "PYTHONCOERCECLOCALE", "PYTHONIOENCODING", "LOCPATH", "MOODTAG_DB")
UTF8 = {"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "PYTHONUTF8": "1"}
C_ASCII = {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}


def _env(extra: dict) -> dict:
    env = {key: value for key, value in os.environ.items() if key not in _LOCALE_VARS}
    env.update(extra)
    return env


def _fs_encoding(env: dict) -> str:
    return subprocess.run([sys.executable, "-c", "import sys; print(sys.getfilesystemencoding())"],
                          env=_env(env), capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module", params=["C", "latin1"])
def locale_env(request, tmp_path_factory) -> dict:
    """The environment of a command run under a locale whose file-system encoding is not UTF-8: the C locale
    (ASCII: on every machine), or en_US.ISO-8859-1 made with localedef into a private LOCPATH (skipped where
    localedef or the locale sources are not there)."""
    if request.param == "C":
        env = C_ASCII
    else:
        if not shutil.which("localedef") or not Path("/usr/share/i18n/locales/en_US").exists():
            pytest.skip("needs localedef and /usr/share/i18n to make a Latin-1 locale")
        where = tmp_path_factory.mktemp("locales")
        subprocess.run(["localedef", "-i", "en_US", "-f", "ISO-8859-1", str(where / "en_US.ISO-8859-1")],
                       capture_output=True, timeout=120)
        env = {"LOCPATH": str(where), "LANG": "en_US.ISO-8859-1", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    encoding = codecs.lookup(_fs_encoding(env)).name
    if encoding == "utf-8" or request.param == "latin1" and encoding != "iso8859-1":
        pytest.skip(f"the {request.param} locale's file-system encoding is {encoding} here")
    return env


def moodtag(env: dict, *args) -> subprocess.CompletedProcess:
    """The real CLI under the locale of `env` (binary output: a path's bytes as written)."""
    return subprocess.run([sys.executable, "-m", "tagger", *map(str, args)], env=_env(env), capture_output=True,
                          timeout=300)


def ok(proc: subprocess.CompletedProcess) -> str:
    """The command ended with exit status 0 and no traceback; its standard output."""
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 0 and "Traceback" not in err and "Error" not in err, (proc.returncode, err)
    return proc.stdout.decode("utf-8", "replace")


@pytest.fixture
def library(request, tmp_path) -> tuple[Path, Path]:
    """(library, cache): the files of NAMES under `Música/lib` (or the folder the test's parameter names: an
    ASCII one, where only the files' names are not), scanned (tags written) under a UTF-8 locale."""
    lib = tmp_path / getattr(request, "param", "Música/lib")
    for name, seed in NAMES.items():
        (lib / name).parent.mkdir(parents=True, exist_ok=True)
        make_track(lib / name, "calm" if seed % 2 else "exciting", 12, seed=seed)
    db = tmp_path / "c.db"
    ok(moodtag(UTF8, "scan", lib, "--db", db, "--jobs", "1"))
    return lib, db


def rows(db: Path) -> dict[str, tuple]:
    with sqlite3.connect(db) as conn:
        return {path: (status, tag_state) for path, status, tag_state in
                conn.execute("SELECT path, status, tag_state FROM tracks")}


@pytest.mark.parametrize("library, moved", [("lib", ["Café"]), ("Música/lib", ["Café"]), ("lib", NOT_ASCII),
                                             ("Música/lib", NOT_ASCII)], indirect=["library"])
def test_prune_keeps_the_rows_of_files_back_on_disk(library, locale_env, tmp_path, moved):
    """A scan while folders were moved away marked their rows missing; the files are back: `prune` under a
    Latin-1 locale forgot the row of Café ("forgot 1 missing track": its key encoded as Latin-1, a name not
    there), and under C (or for Кофе under Latin-1) died with a UnicodeEncodeError traceback."""
    lib, db = library
    for i, name in enumerate(moved):
        (lib / name).rename(tmp_path / f"away {i}")
    ok(moodtag(UTF8, "scan", lib, "--db", db, "--no-write", "--jobs", "1"))
    for i, name in enumerate(moved):
        (tmp_path / f"away {i}").rename(lib / name)
    before = rows(db)
    assert sorted(status for status, _ in before.values()) == sorted(["missing"] * len(moved)
                                                                     + ["ok"] * (len(NAMES) - len(moved)))
    out = ok(moodtag(locale_env, "prune", lib, "--db", db))
    back = "1 missing track whose file is" if len(moved) == 1 else f"{len(moved)} missing tracks whose files are"
    assert f"kept {back} there again" in out and "forgot 0" in out, out
    assert rows(db) == before
    out = ok(moodtag(locale_env, "prune", "--db", db))  # every row, no PATH
    assert rows(db) == before


def test_a_scan_marks_a_gone_file_missing(library, locale_env):
    """A scan under the locale looks at the rows of the files its walk did not meet by their keys: it died
    with a UnicodeEncodeError under C. The gone file's row is marked missing, the others stay."""
    lib, db = library
    shutil.rmtree(lib / "Кофе")
    ok(moodtag(locale_env, "scan", lib, "--db", db, "--no-write", "--jobs", "1"))
    assert {path.split("/lib/")[1]: status for path, (status, _) in rows(db).items()} == {
        name: "missing" if name.startswith("Кофе") else "ok" for name in NAMES}


def _playlists(env: dict, db: Path, out: Path, *args) -> dict[str, bytes]:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir()
    ok(moodtag(env, "playlists", "--db", db, "--out-dir", out, *args))
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


@pytest.mark.parametrize("library", ["lib", "Música/lib"], indirect=True)
@pytest.mark.parametrize("args", [[], ["--format", "xspf"], ["--for", "mpd", "--music-dir", "LIB"],
                                  ["--relative-to", "LIB"], ["--absolute"]])
def test_playlists_hold_every_track(library, locale_env, tmp_path, args):
    """`playlists` under the locale left out every track with a name that is not ASCII as "no longer on disk"
    (exit status 0: MPD's playlists shrank), or died where the library's own folder's name is not ASCII; an
    XSPF under Latin-1 would percent-encode a name's Latin-1 bytes. The playlists are those a UTF-8 locale
    writes, byte for byte, and hold every track."""
    lib, db = library
    args = [str(lib) if arg == "LIB" else arg for arg in args]
    expected = _playlists(UTF8, db, tmp_path / "utf8", *args)
    written = _playlists(locale_env, db, tmp_path / "other", *args)
    assert written == expected
    text = b"".join(written.values()).decode("utf-8")
    if "xspf" in args:
        assert text.count("<location>") == len(NAMES), text
        assert "Caf%C3%A9" in text and "%D0%9A%D0%BE%D1%84%D0%B5" in text, text
        return
    assert len([line for line in text.splitlines() if line and not line.startswith("#")]) == len(NAMES), text
    for name in NAMES:
        assert name.split("/")[-1] in text, (name, text)


def test_playlist_to_standard_output_lists_every_track(library, locale_env):
    lib, db = library
    listed = []
    for mood in ("calm", "exciting"):
        out = ok(moodtag(locale_env, "playlist", mood, "--any-model", "--db", db, "-o", "-"))
        assert out == ok(moodtag(UTF8, "playlist", mood, "--any-model", "--db", db, "-o", "-"))
        listed += [line for line in out.splitlines() if line and not line.startswith("#")]
    assert sorted(listed) == sorted(str(lib / name) for name in NAMES)


def test_untag_and_query_paths(library, locale_env):
    """`untag` under the locale of a library with a file moved since the scan (its row found by its size,
    mtime and name, then looked at by its key) died with a UnicodeEncodeError, after untagging the others;
    every file is untagged now, each row says so (the moved one's under its new path), and `query --paths`
    gives each file's own name."""
    lib, db = library
    (lib / "Кофе").rename(lib / "Кофе 2")
    out = ok(moodtag(locale_env, "untag", lib, "--db", db))
    assert "untagged 4 files, 0 without moodtag fields, 0 failed" in out, out
    assert {path.split("/lib/")[1]: state for path, (_, state) in rows(db).items()} == {
        name.replace("Кофе", "Кофе 2"): "untagged" for name in NAMES}
    names = moodtag(locale_env, "query", "--paths", "--db", db)
    ok(names)
    assert sorted(names.stdout.splitlines()) == sorted(
        str(lib / name.replace("Кофе", "Кофе 2")).encode("utf-8") for name in NAMES)
    assert all(os.path.isfile(name) for name in names.stdout.splitlines())
