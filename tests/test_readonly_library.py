"""A library on a read-only file system (a share mounted read-only, a USB stick with its lock on): the
scan printed one `failed: FILE: tags not written: read-only file system` line per file, thousands for a
big library. Now the first file of each such file system is one line naming its mount point and
--no-write, the others are counted in the summary, and the rows, --json's objects and the scan once it
is writable are as before. Real CLI (tests.conftest.run_cli), real audio (tagger.synth), real tmpfs
mounts remounted read-only (in a private mount namespace: `unshare -rm`, skipped where it cannot be
had)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tagger import synth
from tests.test_tags import in_namespace, namespace_available

RO_ERROR = "tags not written: read-only file system"

# Run in the namespace (as its root): tmpfs mounts at argv[1]/a and argv[1]/b, read-only, holding the
# tracks argv[2] names; the real CLI scans them and argv[3] (a writable folder).
SCRIPT = """
import json, shutil, sqlite3, subprocess, sys
from pathlib import Path
from tests.conftest import run_cli
mnt, tracks, rw, db = Path(sys.argv[1]), json.loads(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
def cli(*args):
    proc = run_cli(*args)
    return {"rc": proc.returncode, "out": proc.stdout, "err": proc.stderr}
def table():
    con = sqlite3.connect(f"file:{db}?immutable=1", uri=True)
    try:
        return {path: [mood, status, tag_state, error] for path, mood, status, tag_state, error
                in con.execute("SELECT path, mood, status, tag_state, error FROM tracks")}
    finally:
        con.close()
for name, files in tracks.items():
    (mnt / name).mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt / name)], check=True)
    for f in files:
        shutil.copy(f, mnt / name)
    subprocess.run(["mount", "-o", "remount,ro", str(mnt / name)], check=True)
paths = [mnt / "a", mnt / "b", rw]
out = {"scan": cli("scan", *paths, "--db", db, "--jobs", "1")}
out["rows"] = table()
out["json"] = cli("scan", *paths, "--db", db, "--json")
out["json_rows"] = table()
subprocess.run(["mount", "-o", "remount,rw", str(mnt / "a")], check=True)
out["writable"] = cli("scan", *paths, "--db", db)
out["writable_rows"] = table()
print(json.dumps(out))
"""


@pytest.fixture
def needs_namespace():
    reason = namespace_available()
    if reason:
        pytest.skip(reason)


def failed_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("failed:")]


def summary_row(err: str, label: str) -> str | None:
    """The value of the summary table's row `label` (its cells separated by spaces), None where there is none."""
    rows = [line.split()[-1] for line in err.splitlines() if line.split()[:-1] == label.split()]
    return rows[0] if rows else None


def test_a_read_only_file_system_is_one_line_and_a_count(needs_namespace, tmp_path):
    """Two read-only file systems (3 and 2 tracks) and a writable folder with 2 read-only files: one
    line for each file system, naming its mount point and --no-write, and a line of the summary counting
    its files; each read-only file keeps its own line. The rows and --json's objects say what they said
    (failed, the cause), and the scan once one file system is writable tags its files, analysing none."""
    src, rw = tmp_path / "src", tmp_path / "rw"
    src.mkdir()
    rw.mkdir()
    tracks = {"a": [], "b": []}
    for i, fmt in enumerate(("flac", "ogg", "mp3", "wav", "m4a")):
        path = synth.make_track(src / f"{i:02d} track.{fmt}", ("calm", "exciting")[i % 2], 8.0, seed=i)
        tracks["a" if i < 3 else "b"].append(str(path))
    locked = [synth.make_track(rw / f"locked {i}.{fmt}", "calm", 8.0, seed=10 + i)
              for i, fmt in enumerate(("flac", "ogg"))]
    for path in locked:
        path.chmod(0o444)
    mnt = tmp_path / "mnt"
    out = in_namespace(SCRIPT, mnt, json.dumps(tracks), rw, tmp_path / "c.db")
    mounts = {name: Path(os.path.realpath(mnt / name)) for name in tracks}

    scan = out["scan"]
    assert scan["rc"] == 0, scan["err"]
    lines = failed_lines(scan["err"])
    for name, mount in mounts.items():
        on_it = [line for line in lines if line.startswith(f"failed: {mnt / name}/")]
        assert len(on_it) == 1, scan["err"]
        assert f": {RO_ERROR} {mount} (" in on_it[0] and "--no-write" in on_it[0], on_it[0]
        assert f"\ntags not written (read-only file system {mount}): {len(tracks[name])}\n" in scan["err"]
    for path in locked:  # another cause, on another file system: a line each, as before
        assert f"failed: {path}: tags not written: read-only file (permission denied)" in lines, scan["err"]
    assert len(lines) == 4, scan["err"]
    assert summary_row(scan["err"], "failed") == "7" and summary_row(scan["err"], "analysed") == "7", scan["err"]
    assert "7 problems (4 listed above, 3 more tag writes on a read-only file system counted above)" \
        in scan["err"], scan["err"]

    # the rows say what a failed tag write's row says: the mood kept, failed, the cause
    on_ro = {str(mnt / name / Path(f).name) for name in tracks for f in tracks[name]}
    rows = out["rows"]
    assert set(rows) == on_ro | {str(p) for p in locked}
    for path, (mood, status, tag_state, error) in rows.items():
        cause = RO_ERROR if path in on_ro else "tags not written: read-only file (permission denied)"
        assert mood in ("calm", "exciting") and (status, tag_state, error) == ("failed", "failed", cause), path

    # --json: one object per track as before; standard error one line per file system and its count
    scanned = out["json"]
    assert scanned["rc"] == 0, scanned["err"]
    objects = [json.loads(line) for line in scanned["out"].splitlines()]
    assert sorted(o["path"] for o in objects) == sorted(rows)
    for o in objects:
        assert (o["action"], o["tags"]) == ("cached", "failed"), o
        assert o["tag_error"] == (RO_ERROR if o["path"] in on_ro else rows[o["path"]][3])[len("tags not written: "):]
    assert len(failed_lines(scanned["err"])) == 4, scanned["err"]
    for name, mount in mounts.items():
        assert f"tags not written (read-only file system {mount}): {len(tracks[name])}" in scanned["err"]
    assert out["json_rows"] == rows

    # a writable again: its files tagged from the cache; b still one line
    writable = out["writable"]
    assert writable["rc"] == 0, writable["err"]
    assert summary_row(writable["err"], "analysed") == "0" and summary_row(writable["err"], "tags written") == "3"
    assert len(failed_lines(writable["err"])) == 3, writable["err"]
    assert f"tags not written (read-only file system {mounts['a']})" not in writable["err"]
    for path, (mood, status, tag_state, error) in out["writable_rows"].items():
        if path.startswith(f"{mnt / 'a'}/"):
            assert (mood, status, tag_state, error) == (rows[path][0], "ok", "tagged", None), path
        else:
            assert [mood, status, tag_state, error] == rows[path], path


def outcomes(stdout: str) -> dict[str, tuple[str, str | None]]:
    """`scan --json`'s objects: path -> (tags, tag_error); a dry run's `would write` as the `written` it predicts."""
    found = {}
    for line in stdout.splitlines():
        o = json.loads(line)
        found[o["path"]] = ("written" if o["tags"] == "would write" else o["tags"], o.get("tag_error"))
    return found


def test_a_dry_run_fails_a_read_only_file_as_the_scan_does(tmp_path):
    """`scan --dry-run` said `would tag` for a read-only file and counted it among the tags that would be
    written; the scan then failed it (tags not written: read-only file). Now the dry run fails it with the
    scan's line and cause, counted failed, and writes nothing; a writable file in a folder that is not
    writable is one the scan writes (safewrite writes it in place), so the dry run would tag it."""
    from tests.conftest import run_cli

    lib, db = tmp_path / "lib", tmp_path / "c.db"
    (lib / "locked").mkdir(parents=True)
    ok = synth.make_track(lib / "ok.flac", "calm", 8.0, seed=1)
    ro = synth.make_track(lib / "ro.flac", "calm", 8.0, seed=2)
    inside = synth.make_track(lib / "locked" / "inside.ogg", "exciting", 8.0, seed=3)
    ro.chmod(0o444)
    (lib / "locked").chmod(0o555)
    try:
        before = {p: p.read_bytes() for p in (ok, ro, inside)}
        dry = run_cli("scan", lib, "--db", db, "--jobs", "1", "--dry-run")
        dry_json = run_cli("scan", lib, "--db", db, "--jobs", "1", "--dry-run", "--json")
        assert {p: p.read_bytes() for p in (ok, ro, inside)} == before and not db.exists()  # nothing written
        real = run_cli("scan", lib, "--db", db, "--jobs", "1", "--json")
    finally:
        (lib / "locked").chmod(0o755)

    assert dry.returncode == 0, dry.stderr
    cause = "tags not written: read-only file (permission denied)"
    assert failed_lines(dry.stderr) == [f"failed: {ro}: {cause}"], dry.stderr
    assert [f"would tag {p}" in dry.stderr for p in (ok, ro, inside)] == [True, False, True], dry.stderr
    assert summary_row(dry.stderr, "tags that would be written") == "2", dry.stderr
    assert summary_row(dry.stderr, "failed") == "1", dry.stderr
    assert "1 problem (listed above)" in dry.stderr, dry.stderr

    assert dry_json.returncode == 0 and real.returncode == 0, (dry_json.stderr, real.stderr)
    predicted = outcomes(dry_json.stdout)
    assert predicted[str(ro)] == ("failed", cause[len("tags not written: "):]), predicted
    assert predicted == outcomes(real.stdout)  # what the dry run said is what the scan did, file by file
    assert failed_lines(real.stderr) == [f"failed: {ro}: {cause}"], real.stderr


DRY_SCRIPT = """
import json, shutil, subprocess, sys
from pathlib import Path
from tests.conftest import run_cli
mnt, track, db = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
mnt.mkdir(parents=True)
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], check=True)
shutil.copy(track, mnt)
subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
out = {}
for name, args in (("dry", ["--dry-run"]), ("dry_json", ["--dry-run", "--json"]), ("real", ["--json"])):
    proc = run_cli("scan", mnt, "--db", db, "--jobs", "1", *args)
    out[name] = {"rc": proc.returncode, "out": proc.stdout, "err": proc.stderr}
print(json.dumps(out))
"""


def test_a_dry_run_fails_a_file_on_a_read_only_file_system_as_the_scan_does(needs_namespace, tmp_path):
    """A track on a read-only file system: the dry run said it would tag it; now it fails it as the scan
    does (read-only file system, the line naming the mount point), and counts it failed."""
    (tmp_path / "src").mkdir()
    track = synth.make_track(tmp_path / "src" / "song.flac", "calm", 8.0, seed=4)
    mnt = tmp_path / "mnt"
    out = in_namespace(DRY_SCRIPT, mnt, track, tmp_path / "c.db")
    mount = Path(os.path.realpath(mnt))

    dry = out["dry"]
    assert dry["rc"] == 0, dry["err"]
    lines = failed_lines(dry["err"])
    assert len(lines) == 1 and lines[0].startswith(f"failed: {mnt / 'song.flac'}: {RO_ERROR} {mount} ("), dry["err"]
    assert "would tag" not in dry["err"], dry["err"]
    assert summary_row(dry["err"], "tags that would be written") == "0", dry["err"]
    assert summary_row(dry["err"], "failed") == "1", dry["err"]
    assert out["dry_json"]["rc"] == 0 and out["real"]["rc"] == 0, out
    predicted = outcomes(out["dry_json"]["out"])
    assert predicted == {str(mnt / "song.flac"): ("failed", "read-only file system")}
    assert predicted == outcomes(out["real"]["out"])
