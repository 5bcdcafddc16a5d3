"""`moodtag classify FILE --clips`: each clip's start, scores and mood, then the track's decision, from
the per-clip results the API returns; on real synthetic tracks with the shipped default model."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tagger import synth
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def tracks(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("clips")
    return {mood: synth.make_track(folder / f"{mood}.flac", mood, 40.0, seed=3) for mood in ("calm", "exciting")}


def test_the_api_returns_each_clip_with_its_own_mood(tracks):
    from tagger.analyze import analyze_track, decide
    from tagger.records import ClipScore
    from tagger.weights import load_model

    model = load_model(None)
    spec = model.spec
    result = analyze_track(tracks["exciting"], model)
    assert result.ok, result.error
    assert len(result.clips) == spec.clips.count
    starts = [c.start for c in result.clips]
    assert starts == sorted(starts) and 0 <= starts[0] and starts[-1] + spec.clips.seconds <= result.duration
    for clip in result.clips:
        assert isinstance(clip, ClipScore) and clip.seconds == spec.clips.seconds
        assert set(clip.scores) == set(spec.labels) and sum(clip.scores.values()) == pytest.approx(1.0, abs=1e-6)
        assert clip.mood == decide(spec, np.array([clip.scores[label] for label in spec.labels]))[0]


def test_clips_timeline_in_a_pipe(tracks):
    path = tracks["exciting"]
    data = json.loads(run_cli("classify", path, "--json", check=True).stdout)
    proc = run_cli("classify", path, "--clips", env={"COLUMNS": "80"}, check=True)
    lines = proc.stdout.splitlines()
    assert proc.stderr == "" and "\x1b" not in proc.stdout  # plain text: no colour codes in a pipe
    assert lines[0] == f"{path}: 00:40 long, {len(data['clips'])} clips of 5 s (moodtag-rhythm 2.0.0)"
    assert lines[1].split()[:4] == ["start", "P(calm)", "P(exciting)", "mood"]
    clip_lines = lines[2:2 + len(data["clips"])]
    for line, clip in zip(clip_lines, data["clips"]):
        start, calm, exciting, mood, bar = re.fullmatch(r"(\d\d:\d\d) +(\S+) +(\S+) +(\w+) +(.*)", line).groups()
        assert start == f"{int(clip['start']) // 60:02d}:{int(clip['start']) % 60:02d}"
        assert float(calm) == pytest.approx(clip["scores"]["calm"], abs=6e-4)
        assert float(exciting) == pytest.approx(clip["scores"]["exciting"], abs=6e-4)
        assert mood == clip["mood"] == ("exciting" if clip["scores"]["exciting"] >= 0.5 else "calm")
        filled = len(bar.rstrip(" ┆"))  # the bar grows with P(exciting)
        assert abs(filled - clip["scores"]["exciting"] * 20) <= 1
    track = lines[2 + len(data["clips"])].split()
    assert track[0] == "track" and track[3] == data["mood"]
    assert [float(v) for v in track[1:3]] == pytest.approx([data["scores"]["calm"], data["scores"]["exciting"]],
                                                           abs=6e-4)
    assert all(len(line) <= 80 for line in lines[1:])
    decision = " ".join(" ".join(lines[3 + len(data["clips"]):]).split())
    p, side = re.fullmatch(rf"{data['mood']} \(confidence {data['confidence']:.2f}\): P\(exciting\) (0\.\d{{3}}) is "
                           r"(at or above|below) the threshold 0\.5\. (.*)", decision).group(1, 2)
    assert float(p) == pytest.approx(data["scores"]["exciting"], abs=6e-4)
    assert side == ("at or above" if data["scores"]["exciting"] >= 0.5 else "below")
    agree = sum(c["mood"] == data["mood"] for c in data["clips"])
    assert f"{agree} of {len(data['clips'])} clips alone say {data['mood']}; the track's scores are one " \
           "regression on the descriptors of all 5 clips together." in decision


def test_clips_of_several_files_and_a_failure(tracks, tmp_path):
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"\0" * 4096)
    proc = run_cli("classify", tracks["calm"], bad, tracks["exciting"], "--clips")
    assert proc.returncode == 1
    assert [line for line in proc.stdout.splitlines() if line.startswith("/")] == [
        f"{tracks[m]}: 00:40 long, 5 clips of 5 s (moodtag-rhythm 2.0.0)" for m in ("calm", "exciting")]
    assert proc.stderr.splitlines() == [line for line in proc.stderr.splitlines() if line.startswith(f"failed: {bad}: ")]
    assert len(proc.stderr.splitlines()) == 1


def test_clip_moods_are_the_same_from_the_cache(tracks, tmp_path):
    """A second scan takes the clips from the cache: they come out as the first scan gave them."""
    folder = tmp_path / "lib"
    folder.mkdir()
    (folder / "t.flac").write_bytes(tracks["exciting"].read_bytes())
    args = ("scan", folder, "--db", tmp_path / "c.db", "--no-write", "--json")
    first = json.loads(run_cli(*args, check=True).stdout)
    again = json.loads(run_cli(*args, check=True).stdout)
    assert (first["action"], again["action"]) == ("analysed", "cached")
    assert again["clips"] == first["clips"] and all(c["mood"] and c["seconds"] == 5.0 for c in first["clips"])


def test_a_track_of_one_clip_is_worded_in_the_singular(tmp_path):
    path = synth.make_track(tmp_path / "short.flac", "calm", 6.0, seed=1)  # room for one 5 s clip
    lines = run_cli("classify", path, "--clips", env={"COLUMNS": "200"}, check=True).stdout.splitlines()
    assert lines[0] == f"{path}: 00:06 long, 1 clip of 5 s (moodtag-rhythm 2.0.0)"
    assert re.fullmatch(r"the one clip alone says (calm|exciting); the track's scores are one regression on "
                        r"the descriptors of its one clip\.", lines[-1]), lines[-1]
    cnn = run_cli("classify", path, "--clips", "--model", "moodtag-cnn", env={"COLUMNS": "200"}, check=True)
    assert re.fullmatch(r"the one clip alone says (calm|exciting); the track's scores are the probabilities of its "
                        r"one clip\.", cnn.stdout.splitlines()[-1]), cnn.stdout


def test_a_short_track_names_the_clips_it_had(tmp_path):
    """A track shorter than the model's plan of 5 clips gets as many as fit, and the decision's words
    count those, not the plan's 5; a track shorter than one clip is refused."""
    path = synth.make_track(tmp_path / "short.mp3", "exciting", 16.0, seed=2)  # room for three 5 s clips
    lines = run_cli("classify", path, "--clips", env={"COLUMNS": "200"}, check=True).stdout.splitlines()
    assert lines[0] == f"{path}: 00:16 long, 3 clips of 5 s (moodtag-rhythm 2.0.0)"
    assert re.fullmatch(r"[0-3] of 3 clips alone say (calm|exciting); the track's scores are one regression on "
                        r"the descriptors of all 3 clips together\.", lines[-1]), lines[-1]
    cnn = run_cli("classify", path, "--clips", "--model", "moodtag-cnn", env={"COLUMNS": "200"}, check=True)
    assert cnn.stdout.splitlines()[-1].endswith("; the track's scores are the mean of the 3 clips' probabilities.")
    tiny = synth.make_track(tmp_path / "tiny.mp3", "exciting", 3.0, seed=2)
    proc = run_cli("classify", tiny, "--clips")
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == f"failed: {tiny}: too short: 3.0 s, a clip needs 5 s\n"
    as_json = json.loads(run_cli("classify", tiny, "--json").stdout)  # its length was read: said, not null
    assert as_json["error"].startswith("too short") and as_json["duration"] == pytest.approx(3.0, abs=0.05)


def test_names_in_the_table_are_text_never_markup(tracks, tmp_path):
    """classify's table read a file name as rich markup: 'a[b]c.flac' showed as 'ac.flac', '[red]x.flac'
    as 'x.flac'; a line break in a name split its row in two, and in a pipe a long name folded onto a
    second line. Now the table shows each name as it is, escaped; in a pipe each file is one line of
    tab-separated values, as query writes them. model-info likewise shows a path with brackets."""
    import shutil

    from tests.test_query import terminal_run

    names = ["a[b]c.flac", "[red]x.flac", "nl\nx.flac", "back\\slash " + "long " * 20 + ".flac"]
    for name in names:
        shutil.copy(tracks["calm"], tmp_path / name)
    files = [str(tmp_path / name) for name in names]
    proc = run_cli("classify", *files, env={"COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "path\tmood\tconfidence\tcalm\texciting" and len(lines) == 5
    assert [line.split("\t")[0] for line in lines[1:]] == [
        files[0], files[1], f"{tmp_path}/nl\\nx.flac", files[3].replace("\\", "\\\\")]
    assert all(line.split("\t")[1] == "calm" and len(line.split("\t")) == 5 for line in lines[1:])
    shown = terminal_run("classify", *files[:3], columns=200)
    assert all(name in shown for name in (files[0], files[1], f"{tmp_path}/nl\\nx.flac")), shown
    model = tmp_path / "[bold]" / "m.safetensors"
    model.parent.mkdir()
    from tagger.weights import resolve_model

    shutil.copy(resolve_model(None), model)
    info = run_cli("model-info", model, env={"COLUMNS": "300"}, check=True).stdout
    assert f"file {model}" in " ".join(info.split())


def test_a_name_that_is_not_utf8_is_escaped_in_a_pipe(tracks, tmp_path):
    """classify's TSV wrote the name's raw bytes (and a strict UTF-8 stdout ended in a traceback); it
    writes \\xNN, as query does."""
    import os
    import shutil
    import subprocess
    import sys

    name = os.fsencode(tmp_path) + b"/caf\xe9.flac"
    shutil.copy(tracks["calm"], name)
    env = dict(os.environ, PYTHONIOENCODING="utf-8:strict")
    proc = subprocess.run([sys.executable, "-m", "tagger", "classify", name], capture_output=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1].split(b"\t")[0] == os.fsencode(tmp_path) + b"/caf\\xe9.flac"


def test_no_line_ends_in_spaces_in_a_pipe(tracks):
    """In a pipe each line of the timeline carried rich's padding (a bar's empty cells, a table's widest row,
    the space where the decision wraps), which README's sample lacks: text ends where its last character is."""
    for columns in ("80", "200"):
        proc = run_cli("classify", tracks["calm"], tracks["exciting"], "--clips", env={"COLUMNS": columns}, check=True)
        lines = proc.stdout.splitlines()
        assert len(lines) > 2 * 9 and proc.stdout.endswith("\n"), proc.stdout
        assert [line for line in lines if line != line.rstrip()] == [], columns
        assert lines[1].endswith("P(exciting) ┆ 0.5") and any(line.endswith("┆") for line in lines), proc.stdout


def test_a_name_that_cannot_be_looked_at_is_one_failed_line_and_the_rest_go_on(tracks, tmp_path):
    """A name longer than the file system allows, or a file inside a folder the user may not enter, was a
    traceback from `is_dir()` (it swallows only a missing name), exit 1, and no later file was classified.
    Now each is one `failed:` line in a scan's words, and the files after it still come out."""
    import shutil

    from tests.test_cache_open import _PREFIX, as_user

    long_name = tmp_path / ("a" * 300 + ".flac")
    proc = run_cli("classify", long_name, tracks["calm"])
    assert proc.returncode == 1 and proc.stderr == f"failed: {long_name}: file name too long\n", proc.stderr
    assert [line.split("\t")[:2] for line in proc.stdout.splitlines()] == [["path", "mood"],
                                                                          [str(tracks["calm"]), "calm"]]
    as_json = [json.loads(line) for line in run_cli("classify", long_name, tracks["calm"], "--json").stdout.split("\n")
               if line]
    assert [(o["error"], o["mood"]) for o in as_json] == [("file name too long", None), (None, "calm")]
    if _PREFIX is None:
        pytest.skip("needs setpriv or capsh to drop root's powers")
    locked = tmp_path / "locked"
    locked.mkdir()
    shutil.copy(tracks["calm"], locked / "t.flac")
    locked.chmod(0)
    try:
        proc = as_user("classify", locked / "t.flac", tracks["exciting"])
    finally:
        locked.chmod(0o755)
    assert proc.returncode == 1 and proc.stderr == f"failed: {locked / 't.flac'}: permission denied\n", proc.stderr
    assert proc.stdout.splitlines()[1].split("\t")[:2] == [str(tracks["exciting"]), "exciting"]


def test_json_paths_keep_a_latin1_byte_and_a_real_backslash_apart(tracks, tmp_path):
    """`classify --json` and `scan --json` wrote b'a\\xe9.flac' and the name 'a\\\\xe9.flac' (a real backslash)
    as the same "path"; they spell it as `query --json` and the TSV do: a backslash doubled."""
    import os
    import shutil

    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copy(tracks["calm"], os.fsencode(lib) + b"/a\xe9.flac")
    shutil.copy(tracks["exciting"], lib / "a\\xe9.flac")
    files = sorted(os.fsencode(lib) + b"/" + name for name in os.listdir(os.fsencode(lib)))
    expected = {f"{lib}/a\\\\xe9.flac", f"{lib}/a\\xe9.flac"}
    names = [os.fsdecode(name) for name in files]
    classified = [json.loads(line)["path"] for line in run_cli("classify", "--json", *names,
                                                               check=True).stdout.splitlines()]
    assert set(classified) == expected, classified
    db = tmp_path / "c.db"
    scanned = [json.loads(line)["path"] for line in run_cli("scan", lib, "--db", db, "--no-write", "--jobs", "1",
                                                            "--json", check=True).stdout.splitlines()]
    queried = [json.loads(line)["path"]
               for line in run_cli("query", "--db", db, "--json", check=True).stdout.splitlines()]
    assert set(scanned) == set(queried) == expected, (scanned, queried)
    tsv = [line.split("\t")[0] for line in run_cli("classify", *names, check=True).stdout.splitlines()[1:]]
    assert sorted(tsv) == sorted(classified)


def test_ctrl_c_on_a_terminal_still_shows_the_rows_so_far(tracks, tmp_path):
    """On a terminal the table is shown once the last file is done: a Ctrl-C late in a long list showed
    only `interrupted`, every result lost. The rows computed so far are shown, then `interrupted`."""
    import os
    import pty
    import shutil
    import signal
    import subprocess
    import sys

    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"\0" * 4096)
    rest = []
    for i in range(40):  # still being classified when the Ctrl-C comes
        rest.append(tmp_path / f"more{i:02d}.flac")
        shutil.copy(tracks["calm"], rest[-1])
    controller, terminal = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("TTY_COMPATIBLE", "FORCE_COLOR", "NO_COLOR")}
    proc = subprocess.Popen([sys.executable, "-m", "tagger", "classify", tracks["calm"], tracks["exciting"], bad,
                             *rest], stdout=terminal, stderr=subprocess.PIPE, text=True,
                            env=dict(env, COLUMNS="200", TERM="xterm"))
    os.close(terminal)
    try:
        assert proc.stderr.readline().startswith(f"failed: {bad}: ")  # the two rows before it are known
        proc.send_signal(signal.SIGINT)
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the terminal's other end is closed
                break
            if not chunk:
                break
            shown += chunk
        # (a Ctrl-C just as rich wrote the failed line may write it once more: rich clears its buffer after)
        assert proc.wait(timeout=60) == 130 and proc.stderr.read().endswith("interrupted\n")
    finally:
        proc.kill()
        proc.wait()
        os.close(controller)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown.decode())
    rows = [line.split()[:2] for line in text.splitlines() if line.strip().startswith("/")]
    assert rows[:2] == [[str(tracks["calm"]), "calm"], [str(tracks["exciting"]), "exciting"]], text
    assert len(rows) < 2 + len(rest), text  # interrupted: not every file


def test_many_files_show_a_bar_on_a_terminal_and_nothing_in_a_pipe(tracks, tmp_path):
    """Classifying a list of files showed nothing until the last was done: on a terminal (standard error)
    a bar now counts them; in a pipe or a log file, no bar and the same lines as before."""
    from tests.conftest import on_a_terminal

    files = [str(tracks["calm"]), str(tracks["exciting"]), str(tracks["calm"])]
    shown = on_a_terminal(["classify", *files], stream="stderr", columns=120)
    frames = [frame for frame in re.split(r"[\r\n]+", shown) if frame.strip()]
    assert any("classifying" in frame and re.search(r"\b3/3\b", frame) for frame in frames), shown
    assert not any("/?" in frame for frame in frames), shown  # the count known from the first frame
    piped = run_cli("classify", *files, check=True)
    assert "classifying" not in piped.stderr + piped.stdout and len(piped.stdout.splitlines()) == 4, piped
