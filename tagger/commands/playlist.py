"""`moodtag playlist MOOD` and `moodtag playlists --out-dir DIR`: mood playlists from the cache."""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from tagger.commands.options import DbOption, ModelOption, path_value
from tagger.playlists import FORMATS, ORDERS

Order = Enum("Order", {name: name for name in ORDERS}, type=str)
Format = Enum("Format", {name: name for name in FORMATS}, type=str)

PathsArgument = Annotated[Optional[list[Path]], typer.Argument(
    metavar="[PATH...]", parser=path_value, help="Only tracks at or under these files or folders. Default: the whole cache.")]
MinConfidenceOption = Annotated[float, typer.Option(
    "--min-confidence", metavar="X", min=0.0, max=1.0,
    help="Only tracks whose probability of the mood is at least X (0 to 1).")]
LimitOption = Annotated[Optional[int], typer.Option(
    "--limit", "-n", metavar="N", min=0, help="At most N tracks per playlist (the first N of the order).")]
OrderOption = Annotated[Order, typer.Option(
    "--order", help="score: most confident first; shuffle: random (see --seed); path; album: by album, artist, path.")]
SeedOption = Annotated[Optional[int], typer.Option(
    "--seed", metavar="S", help="Seed for --order shuffle: the same seed gives the same playlist.")]
RelativeToOption = Annotated[Optional[Path], typer.Option(
    "--relative-to", metavar="DIR", file_okay=False, parser=path_value,
    help="Write paths relative to DIR. Default: relative to the playlist's own folder (absolute when printing).")]
AbsoluteOption = Annotated[bool, typer.Option("--absolute", help="Write absolute paths.")]
AnyModelOption = Annotated[bool, typer.Option(
    "--any-model", help="Also use tracks analysed by other models or versions than the current one.")]


def playlist(
    mood: Annotated[str, typer.Argument(metavar="MOOD", help="One of the model's labels, e.g. calm or exciting.")],
    paths: PathsArgument = None,
    db: DbOption = None,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", metavar="FILE", dir_okay=False, parser=path_value,
        help="Write the playlist to FILE (a .xspf name means XSPF). Default: print it.")] = None,
    fmt: Annotated[Optional[Format], typer.Option(
        "--format", "-f", help="Playlist format. Default: from the -o file's suffix, else m3u8.")] = None,
    min_confidence: MinConfidenceOption = 0.0,
    limit: LimitOption = None,
    order: OrderOption = Order.score,
    seed: SeedOption = None,
    relative_to: RelativeToOption = None,
    absolute: AbsoluteOption = False,
    model: ModelOption = None,
    any_model: AnyModelOption = False,
) -> None:
    """Make a playlist of the cached tracks of one MOOD (files still present, analysed by the current model).

    M3U8 entries carry #EXTINF duration and 'artist - title'. A path that one M3U line cannot hold (a line break in it, or a name that is not UTF-8) is left out with a warning; XSPF takes it."""
    import click

    from tagger.cache import Cache
    from tagger.playlists import (PlaylistRequest, check_mood, format_for, playlist_base, print_playlist,
                                  resolve_labels, save_playlist)

    playlist_format = format_for(output, fmt.value if fmt else None)
    base = playlist_base(output.parent if output else None, relative_to=relative_to, absolute=absolute)
    with Cache.open_readonly(db) as cache:
        labels, model_id = resolve_labels(cache, model=model, any_model=any_model)
        check_mood(mood, labels, model_id)
        request = PlaylistRequest(mood, model=model_id, min_confidence=min_confidence,
                                  roots=tuple(paths or ()), order=order.value, seed=seed, limit=limit)
        if output is None:
            result = print_playlist(cache, request, lambda text: click.echo(text.encode("utf-8"), nl=False),
                                    fmt=playlist_format, base=base)
        else:
            result = save_playlist(cache, request, output, fmt=playlist_format, base=base)
    _report_left_out(result)
    if output is not None:
        _report_written(result, output.expanduser())


def playlists(
    out_dir: Annotated[Path, typer.Option(
        "--out-dir", "-d", metavar="DIR", file_okay=False, parser=path_value, help="Write one playlist per mood here (created if needed).")],
    paths: PathsArgument = None,
    db: DbOption = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Playlist format.")] = Format.m3u8,
    min_confidence: MinConfidenceOption = 0.0,
    limit: LimitOption = None,
    order: OrderOption = Order.score,
    seed: SeedOption = None,
    relative_to: RelativeToOption = None,
    absolute: AbsoluteOption = False,
    model: ModelOption = None,
    any_model: AnyModelOption = False,
) -> None:
    """Write one playlist per mood of the model into DIR: calm.m3u8, exciting.m3u8, ...

    Paths are relative to DIR unless --absolute or --relative-to."""
    from dataclasses import replace

    from tagger.cache import Cache
    from tagger.playlists import PlaylistRequest, playlist_base, playlist_file_name, resolve_labels, save_playlist

    base = playlist_base(out_dir, relative_to=relative_to, absolute=absolute)
    with Cache.open_readonly(db) as cache:
        labels, model_id = resolve_labels(cache, model=model, any_model=any_model)
        request = PlaylistRequest(labels[0], model=model_id, min_confidence=min_confidence,
                                  roots=tuple(paths or ()), order=order.value, seed=seed, limit=limit)
        dests = {label: out_dir / playlist_file_name(label, fmt.value) for label in labels}  # all valid first
        for label, dest in dests.items():
            result = save_playlist(cache, replace(request, mood=label), dest, fmt=fmt.value, base=base)
            _report_left_out(result)
            _report_written(result, dest)


def _report_left_out(result) -> None:
    """A warning per entry the format cannot hold, one line for files gone from disk, one if empty."""
    from rich.markup import escape

    from tagger.console import shown, warn

    left_out = result.left_out
    for path, problem in left_out.unwritable:
        warn(f"{shown(path)}: left out of the {escape(result.mood)} playlist: {problem} "
             f"(an M3U line cannot hold it; --format xspf can)")
    if left_out.missing:
        n = len(left_out.missing)
        warn(f"{n} cached {escape(result.mood)} track{'s' if n != 1 else ''} no longer on disk left out "
             f"(`moodtag scan` updates the cache)")


def _report_written(result, dest: Path) -> None:
    from rich.markup import escape

    from tagger.console import out, shown

    n = result.count
    out.print(f"wrote {n} {escape(result.mood)} track{'s' if n != 1 else ''} to {shown(dest)}")
