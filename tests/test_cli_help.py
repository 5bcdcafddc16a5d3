"""`--help` of every command reads cleanly at 80 columns in a pipe, short flags mean one thing across
commands, and a command whose stderr is no terminal prints no progress bar."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import defaultdict

import pytest

from tagger.cli import app
from tests.conftest import run_cli

COMMANDS = sorted(c.name for c in app.registered_commands)


def help_text(*command: str) -> str:
    proc = run_cli(*command, "--help", env={"COLUMNS": "80"})  # captured: stdout is a pipe
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("name", COMMANDS)
def test_help_reads_cleanly_at_80_columns(name):
    text = help_text(name)
    assert not re.search(r"<[^<>\s]+>", text), "a type placeholder such as <int> or <list[Path]>"
    assert all(len(line) <= 80 for line in text.splitlines()), "a line over 80 columns"
    usage = text.splitlines()[0]
    assert usage.startswith(f"Usage: moodtag {name} [OPTIONS]"), usage
    assert not re.search(r"\]\.\.\.|\}\.\.\.|[{}]|\[\[", usage), f"a doubled or braced argument: {usage}"
    assert "…" not in text, "something cut short"
    assert "\\[" not in text, "a rich markup escape shown as it is (help is plain text)"
    flat = " ".join(text.split())
    assert flat.count("[default:") == len(re.findall(r"\[default: [^\]\[]+\]", flat)), "a default cut off"
    long_options = re.findall(r"(?<![\w-])--[A-Za-z][\w-]*", text)
    assert long_options and all(o == o.lower() for o in long_options), long_options


def test_top_level_help_lists_every_command_uncut():
    text = help_text()
    listed = text.split("Commands:")[1].splitlines()[1:]
    assert {line.split()[0] for line in listed if line.strip()} == set(COMMANDS)
    assert not [line for line in listed if line.rstrip().endswith("...")], "a summary cut short"
    assert all(len(line) <= 80 for line in text.splitlines())


def test_every_short_flag_means_one_thing_across_commands():
    import typer.main

    group = typer.main.get_command(app)
    meanings: dict[str, list[tuple[str, frozenset]]] = defaultdict(list)
    for name, command in group.commands.items():
        for param in command.params:
            names = param.opts + param.secondary_opts
            longs = frozenset(o for o in names if o.startswith("--"))
            for short in (o for o in names if re.fullmatch(r"-[^-]", o)):
                meanings[short].append((name, longs))
    assert meanings["-n"] and meanings["-f"], "the flags this test is about are gone"
    for short, uses in meanings.items():
        common = frozenset.intersection(*(longs for _, longs in uses))
        assert common, f"{short} means different things: {uses}"
    assert {o for _, longs in meanings["-n"] for o in longs} == {"--dry-run"}
    assert {o for _, longs in meanings["-f"] for o in longs} == {"--force"}


def test_train_keeps_the_old_spelling_of_c_hidden():
    text = help_text("train")
    assert "--c C" in text and "--C" not in text


def piped(*args: str) -> subprocess.CompletedProcess:
    """The real CLI as `moodtag ARGS 2>&1 | cat` runs it: stdout and stderr one pipe, no terminal."""
    return subprocess.run([sys.executable, "-m", "tagger", *args], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=300,
                          env=dict(os.environ, COLUMNS="80"))


def test_scan_of_a_missing_path_prints_only_the_error(tmp_path):
    missing = tmp_path / "no such folder"
    proc = piped("scan", str(missing), "--db", str(tmp_path / "m.db"))
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [f"error: {missing}: no such file or folder"]


def test_scan_in_a_pipe_draws_no_progress_bar(tmp_path):
    library = tmp_path / "library"
    library.mkdir()
    (library / "broken.mp3").write_bytes(b"not audio at all" * 100)
    proc = piped("scan", str(library), "--db", str(tmp_path / "m.db"))
    assert proc.returncode == 0, proc.stdout
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"failed: {library / 'broken.mp3'}: "), lines
    assert not [line for line in lines if "━" in line or "scanning (" in line or "finding tracks" in line], lines


def test_evaluate_in_a_pipe_prints_no_progress_remains(tmp_path):
    from tagger import synth

    for mood in ("calm", "exciting"):
        (tmp_path / "data" / mood).mkdir(parents=True)
        synth.make_track(tmp_path / "data" / mood / f"{mood}.flac", mood, 26.0, seed=5)
    proc = piped("evaluate", str(tmp_path / "data"))
    assert proc.returncode == 0, proc.stdout
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("moodtag-rhythm"), lines  # the report's title first: no blank line above it
    assert not [line for line in lines if "evaluating" in line], lines


VALUES = ("0", "7", "-3", "100", "101", "0.5", "1", "1.0", "2", " 5", "1e3", "1_0", "abc", "", "path", "PATH",
          "score", "shuffle", "xspf", "mpd", "cuda", "~/Music", "a/b.m3u8", ("x", "y"), 10, 0.0, None)


def _outcome(coercion, value, param, ctx):
    try:
        return "value", coercion.coerce(value, param=param, ctx=ctx)
    except Exception as exc:  # noqa: BLE001 - the error itself is compared
        return "error", type(exc), str(exc)


@pytest.mark.parametrize("name", COMMANDS)
def test_plain_coercion_gives_what_typers_own_gives(name):
    """Every parameter of every command coerces each value to what Typer's pydantic coercion gives, and
    refuses what it refuses with the same error (tagger/commands/coercion.py)."""
    import typer
    from typer._coercion import build_runtime_param

    from tagger.commands.coercion import PlainCoercion

    command = typer.main.get_command(app).commands[name]
    ctx = command.make_context(name, [], resilient_parsing=True)
    params = [p for p in command.get_params(ctx) if hasattr(p, "type_descriptor")]
    assert params
    for param in params:
        plain, typers = PlainCoercion(param.type_descriptor), build_runtime_param(param.type_descriptor)
        for value in VALUES:
            if isinstance(value, tuple) != (param.nargs == -1 or param.multiple) and value is not None:
                continue
            mine, theirs = _outcome(plain, value, param, ctx), _outcome(typers, value, param, ctx)
            if param.type_descriptor.choices is not None and theirs[0] == "error":
                theirs = theirs[:2] + (_in_devices_words(theirs[2]),)
            assert mine == theirs and type(mine[-1]) is type(theirs[-1]), (param.name, value, mine, theirs)


def _in_devices_words(error: str) -> str:
    """Typer's "Value error, 'x' is not one of 'a', 'b'." as moodtag words it (scan's --device too):
    "'x' is not one of a, b"."""
    match = re.fullmatch(r"Value error, (.*) is not one of (.*)\.", error)
    assert match, error
    return f"{match[1]} is not one of {match[2].replace(chr(39), '')}"


@pytest.mark.parametrize("args, error", [
    (["query", "--limit", "abc"], "Invalid value for '--limit': Input should be a valid integer"),
    (["query", "--min-confidence", "2"], "Invalid value for '--min-confidence': Input should be less than or equal to 1"),
    (["query", "--order", "foo"], "Invalid value for '--order': 'foo' is not one of confidence, path, artist, album, analyzed"),
    (["stats", "--bins", "0"], "Invalid value for '--bins': Input should be greater than or equal to 1"),
    (["playlists", "--out-dir", ""], "an empty path"),
])
def test_a_bad_option_value_is_worded_as_typer_words_it(tmp_path, args, error):
    proc = run_cli(*args, "--db", tmp_path / "none.db")
    assert proc.returncode == 2 and error in " ".join(proc.stderr.split()), proc.stderr


CHOICE_OPTIONS = [  # every option with a fixed set of choices: command and its other arguments, option, choices
    (["query"], "--order", "confidence, path, artist, album, analyzed"),
    (["query"], "--status", "ok, failed, missing"),
    (["playlist", "calm"], "--order", "score, shuffle, path, album"),
    (["playlist", "calm"], "--format", "m3u8, m3u, xspf"),
    (["playlist", "calm"], "--for", "mpd"),
    (["playlists", "--out-dir", "pl"], "--order", "score, shuffle, path, album"),
    (["playlists", "--out-dir", "pl"], "--format", "m3u8, m3u, xspf"),
    (["playlists", "--out-dir", "pl"], "--for", "mpd"),
    (["scan", "music"], "--device", "cpu, cuda, auto"),
]


@pytest.mark.parametrize("args, option, choices", CHOICE_OPTIONS)
def test_a_value_that_is_none_of_the_choices_is_one_plain_line(tmp_path, args, option, choices):
    """`--order foo` was refused with Typer's "Value error, 'foo' is not one of 'path', 'artist', ... ." while
    scan's `--device tpu` read "'tpu' is not one of cpu, cuda, auto"; every choice option now words it as
    --device does, in one line, exit status 2, before anything is read or written."""
    (tmp_path / "music").mkdir()
    proc = subprocess.run([sys.executable, "-m", "tagger", *args, option, "FOO", "--db", str(tmp_path / "none.db")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={k: v for k, v in os.environ.items() if k != "MOODTAG_DB"})
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "Error" in line or "error" in line]
    assert errors == [proc.stderr.splitlines()[-1]] == [
        f"Error: Invalid value for '{option}': 'FOO' is not one of {choices}"], proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["music"]


def test_every_option_with_choices_is_checked_for_its_error():
    """CHOICE_OPTIONS names every Typer choice option of every command (a new one is checked too)."""
    import typer

    checked = {(args[0], option) for args, option, _ in CHOICE_OPTIONS}
    for name, command in typer.main.get_command(app).commands.items():
        ctx = command.make_context(name, [], resilient_parsing=True)
        for param in command.get_params(ctx):
            if getattr(param, "type_descriptor", None) is not None and param.type_descriptor.choices is not None:
                assert (name, max(param.opts, key=len)) in checked, (name, param.opts)


@pytest.mark.parametrize("args", [["query", "--min-confidence", "nan"], ["query", "--min-confidence=NaN"],
                                  ["playlist", "calm", "--min-confidence", "nan"],
                                  ["playlists", "--out-dir", "pl", "--min-confidence", "-nan"]])
def test_a_nan_bound_option_says_it_is_not_a_number_between_the_bounds(tmp_path, args):
    """`--min-confidence nan` was refused as "Input should be less than or equal to 1", as if NaN were too
    large (Typer's coercion takes the text for a float first); now one line says it is not a number
    between 0 and 1."""
    proc = run_cli(*args, "--db", tmp_path / "none.db")
    value = args[-1].split("=")[-1]
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert proc.stderr.splitlines()[-1] == (f"Error: Invalid value for '--min-confidence': {value!r} is not a number "
                                            "between 0 and 1"), proc.stderr
    assert not (tmp_path / "none.db").exists()


def test_version_is_the_packages_and_imports_nothing_heavy(tmp_path):
    """`moodtag --version` prints tagger.__version__ (the package's); torch and numpy that refuse to
    import, first on PYTHONPATH, show it loads neither."""
    import tagger

    blockers = tmp_path / "block"
    for name in ("torch", "numpy"):
        (blockers / name).mkdir(parents=True)
        (blockers / name / "__init__.py").write_text(f"raise ImportError('{name} is blocked for this test')\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(tagger.__file__)))
    proc = run_cli("--version", env={"PYTHONPATH": os.pathsep.join([str(blockers), root])})
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"moodtag {tagger.__version__}\n", "")
    assert "--version" in help_text()


def test_help_words_what_each_command_does():
    """`playlists` never prints a playlist, so its --relative-to says nothing of printing; `query` drops
    artist, title and album first when the table is short of room, and does not claim that the cache is
    never modified: opening an older cache upgrades it (tests/test_tag_state.py)."""
    def flat(*command: str) -> str:
        return " ".join(help_text(*command).split())

    assert "absolute when printing" in flat("playlist") and "printing" not in flat("playlists")
    assert "artist, title and album are dropped first when space runs out" in flat("query")
    assert "never modified" not in flat("query")
    assert "a cache made by an older moodtag is upgraded when opened" in flat("query")


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_an_output_encoding_without_a_character_never_ends_in_a_traceback(tmp_path, encoding):
    """Under PYTHONIOENCODING=ascii (or a Latin-1 locale) `scan --json` stopped at the first 'Café' with
    a UnicodeEncodeError traceback (the rest of the library unscanned), as did `untag -n` and `stats`
    (its '–'). Every command now writes such a character somehow, and goes on."""
    from tagger import synth

    library = tmp_path / "library"
    library.mkdir()
    synth.encode(synth.render("calm", 12, seed=1), library / "Café ü 東京.flac")
    synth.encode(synth.render("exciting", 12, seed=2), library / "zz.ogg")
    db = str(tmp_path / "m.db")

    def run(*args):
        proc = subprocess.run([sys.executable, "-m", "tagger", *args], capture_output=True, timeout=300,
                              env=dict(os.environ, PYTHONIOENCODING=encoding))
        out, err = (stream.decode(encoding, "replace") for stream in (proc.stdout, proc.stderr))
        assert proc.returncode == 0 and "Traceback" not in err, (args, err)
        return out

    assert len(run("scan", str(library), "--db", db, "--json").splitlines()) == 2
    for args in (["untag", "-n", str(library), "--db", db], ["stats", "--db", db], ["query", "--db", db]):
        out = run(*args)
        assert "zz.ogg" in out or args[0] == "stats", (args, out)
