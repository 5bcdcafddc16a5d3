"""`moodtag playlist MOOD` and `moodtag playlists --out-dir DIR`: mood playlists from the cache."""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from tagger.commands.options import DbOption, ModelOption, QuietOption, path_value
from tagger.forked import SPLIT_MIN_ROWS  # fewer tracks in the playlists together: written by one process
from tagger.playlists import FORMATS, ORDERS, PLAYERS

Order = Enum("Order", {name: name for name in ORDERS}, type=str)
Format = Enum("Format", {name: name for name in FORMATS}, type=str)
Player = Enum("Player", {name: name for name in PLAYERS}, type=str)

PathsArgument = Annotated[Optional[list[Path]], typer.Argument(
    metavar="PATH", parser=path_value, help="Only tracks at or under these files or folders. Default: the whole cache.")]
MinConfidenceOption = Annotated[float, typer.Option(
    "--min-confidence", metavar="X", min=0.0, max=1.0,
    help="Only tracks whose probability of the mood is at least X (0 to 1).")]
LimitOption = Annotated[Optional[int], typer.Option(
    "--limit", metavar="N", min=0, help="At most N tracks per playlist (the first N of the order).")]
OrderOption = Annotated[Order, typer.Option(
    "--order", metavar="ORDER", help="score: most confident first; shuffle: random (see --seed); path; album: by album, artist, path.")]
SeedOption = Annotated[Optional[int], typer.Option(
    "--seed", metavar="S", help="Seed for --order shuffle: the same seed gives the same playlist.")]
AbsoluteOption = Annotated[bool, typer.Option("--absolute", help="Write absolute paths.")]
AnyModelOption = Annotated[bool, typer.Option(
    "--any-model", help="Also use tracks analysed by other models or versions than the current one.")]
ForOption = Annotated[Optional[Player], typer.Option(
    "--for", metavar="PLAYER", help="Write the playlist the way this player loads it from its own playlist folder "
                  "(mpd: NAME.m3u, paths relative to --music-dir; tracks outside it are left out).")]
MusicDirOption = Annotated[Optional[Path], typer.Option(
    "--music-dir", metavar="DIR", file_okay=False, parser=path_value,
    help="With --for: the player's music folder (MPD's music_directory).")]
ForceOption = Annotated[bool, typer.Option(
    "--force", help="Replace a playlist file moodtag did not write (one without its mark: your own, MPD's `mpc "
                    "save`, one a player saved, or one of moodtag 0.4 or earlier).")]


def output_value(value: str) -> Path | None:
    """-o FILE; `-` is standard output, as for most tools (None: printed, as without -o); `./-` is a file."""
    return None if value == "-" else path_value(value)


def _relative_to_option(default: str):
    """--relative-to, its default worded for one command (only `playlist` can print a playlist)."""
    return Annotated[Optional[Path], typer.Option(
        "--relative-to", metavar="DIR", file_okay=False, parser=path_value,
        help=f"Write paths relative to DIR. Default: {default}.")]


PlaylistRelativeToOption = _relative_to_option("relative to the playlist's own folder (absolute when printing)")
PlaylistsRelativeToOption = _relative_to_option("relative to the --out-dir folder")


def playlist(
    mood: Annotated[str, typer.Argument(metavar="MOOD", help="One of the model's labels, e.g. calm or exciting.")],
    paths: PathsArgument = None,
    db: DbOption = None,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", metavar="FILE", dir_okay=False, parser=output_value,
        help="Write the playlist to FILE (a .xspf name means XSPF, .m3u M3U, .m3u8 or no suffix M3U8; another "
             "suffix, or one --format contradicts, is an error; - prints it, as without -o; ./- is a file). "
             "Default: print it.")] = None,
    fmt: Annotated[Optional[Format], typer.Option(
        "--format", metavar="FORMAT", help="m3u8, m3u (the same UTF-8 text) or xspf. Default: from the -o "
                                           "file's suffix, else m3u8.")] = None,
    min_confidence: MinConfidenceOption = 0.0,
    limit: LimitOption = None,
    order: OrderOption = Order.score,
    seed: SeedOption = None,
    relative_to: PlaylistRelativeToOption = None,
    absolute: AbsoluteOption = False,
    model: ModelOption = None,
    any_model: AnyModelOption = False,
    player: ForOption = None,
    music_dir: MusicDirOption = None,
    force: ForceOption = False,
    quiet: QuietOption = False,
) -> None:
    """Make a playlist of the cached tracks of one MOOD (files still present, analysed by the current model).

    M3U8 entries carry #EXTINF duration and 'artist - title'. A path that one M3U line cannot hold (a line break in it, or a name that is not UTF-8) is left out with a warning; XSPF takes it."""
    from tagger.cache import Cache
    from tagger.forked import processes_available
    from tagger.playlists import (PlaylistRequest, check_mood, check_not_emptied, check_not_gone, check_not_unscanned,
                                  check_replaceable, other_models, print_playlist, resolve_labels, save_playlists)

    from tagger.playlists import is_a_file_to_replace

    _check_seed(order, seed)
    if player is None:  # --for names the one suffix its player lists (playlist_layout)
        _check_suffix(output, fmt.value if fmt else None)
    layout = _layout(output.parent if output is not None and is_a_file_to_replace(output) else None, dest=output, fmt=fmt.value if fmt else None,
                     relative_to=relative_to, absolute=absolute, player=player.value if player else None,
                     music_dir=music_dir)
    _check_roots(paths)
    with Cache.open_readonly(db) as cache:
        labels, model_id = resolve_labels(cache, model=model, any_model=any_model)
        check_mood(mood, labels, model_id)
        places = _path_filter(cache, paths)
        request = PlaylistRequest(mood, model=model_id, min_confidence=min_confidence, roots=places.roots,
                                  files=places.files, order=order.value, seed=seed, limit=limit)
        others = other_models(cache, request, model)
        if output is None:
            _warn_not_found(places)
            result = print_playlist(cache, request, _printer(), layout)
        else:
            check_replaceable(output, mood, layout.fmt, force=force)
            check_not_unscanned(output, request, places, layout.fmt)
            check_not_emptied(output, request, others, layout.fmt)
            check_not_gone(cache, output, request, layout.fmt, library=layout.library)
            _warn_not_found(places)
            (result,) = save_playlists(cache, [(request, output)], layout, side_by_side=processes_available(),
                                       min_rows=SPLIT_MIN_ROWS)
        away = _away_disks(cache, request, result)
    _report_left_out(result, layout.library, others, away)
    if output is not None:
        _report_written(result, output.expanduser())


def playlists(
    out_dir: Annotated[Path, typer.Option(
        "--out-dir", "-d", metavar="DIR", file_okay=False, parser=path_value, help="Write one playlist per mood here (created if needed).")],
    paths: PathsArgument = None,
    db: DbOption = None,
    fmt: Annotated[Optional[Format], typer.Option(
        "--format", metavar="FORMAT", help="m3u8, m3u (the same UTF-8 text) or xspf. Default: m3u8; m3u with --for mpd.")] = None,
    min_confidence: MinConfidenceOption = 0.0,
    limit: LimitOption = None,
    order: OrderOption = Order.score,
    seed: SeedOption = None,
    relative_to: PlaylistsRelativeToOption = None,
    absolute: AbsoluteOption = False,
    model: ModelOption = None,
    any_model: AnyModelOption = False,
    player: ForOption = None,
    music_dir: MusicDirOption = None,
    force: ForceOption = False,
    quiet: QuietOption = False,
) -> None:
    """Write one playlist per mood of the model into DIR: calm.m3u8, exciting.m3u8, ...

    Paths are relative to DIR unless --absolute or --relative-to. For MPD: --for mpd --music-dir MUSIC_DIR
    --out-dir PLAYLIST_DIR writes calm.m3u, exciting.m3u that MPD lists and loads."""
    from dataclasses import replace

    from tagger.cache import Cache
    from tagger.forked import processes_available
    from tagger.playlists import (PlaylistRequest, check_not_emptied, check_not_gone, check_not_unscanned,
                                  check_replaceable, other_models, playlist_file_name, resolve_labels, save_playlists)

    if out_dir.expanduser().exists() and not out_dir.expanduser().is_dir():
        from tagger.errors import MoodtagError

        raise MoodtagError(f"{out_dir}: --out-dir is a file, not a folder")
    _check_seed(order, seed)
    layout = _layout(out_dir, fmt=fmt.value if fmt else None, relative_to=relative_to, absolute=absolute,
                     player=player.value if player else None, music_dir=music_dir)
    _check_roots(paths)
    with Cache.open_readonly(db) as cache:
        labels, model_id = resolve_labels(cache, model=model, any_model=any_model)
        places = _path_filter(cache, paths)
        request = PlaylistRequest(labels[0], model=model_id, min_confidence=min_confidence, roots=places.roots,
                                  files=places.files, order=order.value, seed=seed, limit=limit)
        dests = {label: out_dir / playlist_file_name(label, layout.fmt) for label in labels}  # all valid first
        requests = [(replace(request, mood=label), dest) for label, dest in dests.items()]
        others = [other_models(cache, request, model) for request, _ in requests]
        for (request, dest), other in zip(requests, others):  # every playlist checked before any is written
            _check_out_dir_entry(dest, request.mood)
            check_replaceable(dest, request.mood, layout.fmt, force=force)
            check_not_unscanned(dest, request, places, layout.fmt)
            check_not_emptied(dest, request, other, layout.fmt)
            check_not_gone(cache, dest, request, layout.fmt, library=layout.library)
        _warn_not_found(places)
        written = save_playlists(cache, requests, layout, side_by_side=processes_available(), min_rows=SPLIT_MIN_ROWS)
        for result, (asked, dest), other in zip(written, requests, others):
            _report_left_out(result, layout.library, other, _away_disks(cache, asked, result))
            _report_written(result, dest.expanduser())


def _check_seed(order, seed: int | None) -> None:
    """--seed without --order shuffle would be ignored: a usage error (exit status 2), so a seed meant to fix
    a shuffled playlist never silently gives the score order."""
    if seed is not None and order != Order.shuffle:
        raise typer.BadParameter(f"--seed orders a shuffled playlist: add --order shuffle (the order is {order.value})")


def _check_suffix(output: Path | None, fmt: str | None) -> None:
    """-o FILE's suffix must name the format written into it: `-o calm.pls` wrote M3U8 text into a file
    players read as PLS, and `-o calm.m3u8 --format xspf` XML into an .m3u8, without a word. Otherwise a
    usage error naming the file and what moodtag writes. A name without a suffix (`./-`, `calm`) takes
    the format as it is, as does one whose last dot starts no suffix (`Vol. 2`, `J.S. Bach`: a suffix is
    letters and digits, a letter among them); .m3u and .m3u8 are the same text; a pipe or a device
    (`-o /dev/stdout`) is written into as it is."""
    import re

    from tagger.playlists import FORMATS, M3U_FORMATS, is_a_file_to_replace
    from tagger.records import printable

    if output is None or not re.fullmatch(r"\.[A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*", output.suffix) \
            or not is_a_file_to_replace(output):
        return  # no suffix: none, or a dot that starts none ('Vol. 2', 'J.S. Bach')
    suffix = output.suffix.lower()[1:]
    if suffix in (FORMATS if fmt is None else M3U_FORMATS if fmt in M3U_FORMATS else (fmt,)):
        return
    name, given = printable(str(output)), printable(output.suffix)
    if fmt is None:
        raise typer.BadParameter(f"{name}: a {given} name, but moodtag writes M3U8 (.m3u8), M3U (.m3u) and XSPF "
                                 f"(.xspf) playlists only; name the file with one of those suffixes")
    raise typer.BadParameter(f"{name}: a {given} name for the {fmt.upper()} playlist that --format {fmt} writes; "
                             f"name the file NAME.{fmt}" + (", or leave out --format (the suffix names the format)"
                                                            if suffix in FORMATS else ""))


def _layout(folder: Path | None, **options):
    """playlist_layout's PlaylistLayout; options that contradict each other are a usage error (exit status 2,
    click's 'Usage: ... Error: ...' lines), as `scan --dry-run --no-write` is."""
    from tagger.errors import OptionsError
    from tagger.playlists import playlist_layout

    try:
        return playlist_layout(folder, **options)
    except OptionsError as exc:
        raise typer.BadParameter(str(exc)) from None


def _check_out_dir_entry(dest: Path, mood: str) -> None:
    """A folder in --out-dir bearing a mood playlist's name is an error naming it, before any playlist is
    written (write_playlist's own message is for `playlist -o`, and came after the others were replaced)."""
    if dest.expanduser().is_dir():
        from tagger.errors import MoodtagError

        raise MoodtagError(f"{dest}: a folder has the name of the {mood} playlist; move it, or choose another "
                           "--out-dir")


def _check_roots(paths: list[Path] | None) -> None:
    """Each PATH must exist, as for `scan`: a mistyped one is an error before anything is written, not
    empty playlists in place of the ones there."""
    if paths:
        from tagger.scan import check_paths

        check_paths(paths)


def _path_filter(cache, paths: list[Path] | None):
    """tagger.playlists.path_filter of the PATHs (none: the whole cache)."""
    from tagger.playlists import PathFilter, path_filter

    return path_filter(cache, paths) if paths else PathFilter()


def _warn_not_found(places) -> None:
    """One warning line per PATH under which no cached track was found, linked or not: its playlist is empty,
    and says so. Given after the checks of the files to replace, so that a refusal (check_not_unscanned,
    which names these PATHs) is its one line."""
    if places.empty:
        from tagger.console import shown, warn

        for path in places.empty:
            warn(f"no cached tracks under {shown(path)}, nor where its symlinks lead (`moodtag scan` it, or "
                 "name it as it was scanned)")


def _printer():
    """Where a printed playlist's text goes: standard output as it is, for a pipe or a file; on a terminal
    with each line's control characters escaped (records.printable), so that a tag holding an escape
    sequence (a title from the internet) cannot drive the terminal, as every other command's output."""
    import sys

    if not sys.stdout.isatty():
        return lambda text: typer.echo(text.encode("utf-8"), nl=False)
    from tagger.records import printable

    return lambda text: typer.echo("\n".join(printable(line) for line in text.split("\n")), nl=False)


LEFT_OUT_NAMED = 10  # entries a playlist cannot hold named one warning each; the rest are one line


def _away_disks(cache, request, result):
    """Where `result` left out files not on disk now, the disks not mounted now that those of `request`'s
    selection lie on (tagger.playlists.away_disks); none otherwise, with no query."""
    from tagger.playlists import AwayDisks, away_disks

    return away_disks(cache, request) if result.left_out.missing else AwayDisks()


def _report_left_out(result, library: Path | None, others, away=None) -> None:
    """A warning per entry the format cannot hold (the first LEFT_OUT_NAMED; one line for the rest: a
    library of names MPD strips would flood the terminal), one line for files gone from disk (`away`,
    _away_disks: those on a disk not mounted now, which prune keeps, are said to be, with the command that
    forgets them: AwayDisks.kept), one for tracks another
    model analysed (`others`, OtherModels), one for tracks outside the music folder."""
    left_out = result.left_out
    if not (left_out.unwritable or left_out.missing or left_out.outside or others.count):
        return
    from rich.markup import escape

    from tagger.console import shown, warn

    for path, problem in left_out.unwritable[:LEFT_OUT_NAMED]:
        warn(f"{shown(path)}: left out of the {escape(result.mood)} playlist: {escape(problem)}")
    if len(left_out.unwritable) > LEFT_OUT_NAMED:
        n = len(left_out.unwritable) - LEFT_OUT_NAMED
        causes = sorted({problem for _, problem in left_out.unwritable[LEFT_OUT_NAMED:]})
        warn(f"{n} more {escape(result.mood)} track{'s' if n != 1 else ''} left out of the playlist: "
             f"{escape('; '.join(causes[:3]))}{'; ...' if len(causes) > 3 else ''}")
    if left_out.missing:
        from tagger.playlists import AwayDisks

        n, away = left_out.missing, away or AwayDisks()
        only, points = away.only, away.points
        tracks = f"{n} cached {escape(result.mood)} track{'s' if n != 1 else ''}"
        disks = ", ".join(shown(point) for point in points)
        kept = escape(away.kept())
        guess = ("a disk not mounted? else `moodtag scan` the library where it is now and where it was; `moodtag "
                 "prune` forgets the tracks gone")
        if only:
            warn(f"{tracks} on a disk not mounted now left out ({disks}: {kept})")
        elif points:
            warn(f"{tracks} no longer on disk left out (those on a disk not mounted now, {disks}, are {kept}; the "
                 f"others: {guess})")
        else:
            warn(f"{tracks} no longer on disk left out ({guess})")
    if others.count:
        n = others.count
        warn(f"{n} cached {escape(result.mood)} track{'s' if n != 1 else ''} analysed by another model "
             f"({escape(', '.join(others.models))}) left out: {escape(others.advice())}")
    if left_out.outside:
        n = left_out.outside
        warn(f"{n} {escape(result.mood)} track{'s' if n != 1 else ''} outside the music folder "
             f"{shown(library)} (--music-dir) left out, e.g. {shown(left_out.first_outside)}")


def _report_written(result, dest: Path) -> None:
    """One plain line (no markup to render: rich, ~20 ms of imports, stays out of a command that warns of nothing);
    on standard error where the playlist went into a pipe or a device (`-o /dev/stdout`), not into its text.
    Informational: not under --quiet."""
    from tagger.console import info
    from tagger.playlists import is_a_file_to_replace
    from tagger.records import printable

    n = result.count
    info(f"wrote {n} {printable(result.mood)} track{'s' if n != 1 else ''} to {printable(dest)}",
         stderr=not is_a_file_to_replace(dest), plain=True)
