"""`moodtag classify FILE --clips`: each clip of a track as a line of a timeline (start, scores, the mood
that clip alone would get, a bar), then the track's decision, so that one can see why a track got its
mood."""
from __future__ import annotations

BAR_WIDTH = 20
THRESHOLD_MARK = "┆"


def render_timeline(result, spec, console) -> None:
    """Print the timeline of one analysed track (a TrackResult with its ClipScores) to `console`."""
    from rich.markup import escape
    from rich.table import Table

    from tagger.analyze import SILENT, decision_rule
    from tagger.console import shown
    from tagger.records import counted

    labels = spec.labels
    binary = len(labels) == 2 and spec.threshold is not None
    shown_label = labels[-1] if binary else None
    length = f"{mm_ss(result.duration)} long, " if result.duration else ""
    console.print(f"[bold]{shown(result.path)}[/]: {length}{counted(len(result.clips), 'clip')} of "
                  f"{spec.clips.seconds:g} s ({escape(spec.name)} {escape(spec.version)})")
    bar_title = f"P({escape(labels[-1])}) {THRESHOLD_MARK} {spec.threshold:g}" if binary else "P(mood)"
    table = Table(box=None, highlight=False, pad_edge=False)
    table.add_column("start", justify="right")
    for label in labels:
        table.add_column(f"P({escape(label)})", justify="right")
    table.add_column("mood")
    table.add_column(bar_title, no_wrap=True)
    for clip in result.clips:
        table.add_row(mm_ss(clip.start), *(f"{clip.scores[label]:.3f}" for label in labels), escape(clip.mood or ""),
                      _bar_cell(clip.scores, clip.mood, shown_label, spec.threshold))
    table.add_row("track", *(f"[bold]{result.scores[label]:.3f}[/]" for label in labels),
                  f"[bold]{escape(result.mood)}[/]",
                  _bar_cell(result.scores, result.mood, shown_label, spec.threshold))
    console.print(table)
    sounding = [clip for clip in result.clips if clip.mood != SILENT]  # silent clips are left out
    agree = sum(clip.mood == result.mood for clip in sounding)
    console.print(decision_text(result, spec), soft_wrap=False)  # wrapped at word ends to the width
    alone = (f"the one clip alone says {escape(result.clips[0].mood or '')}" if len(result.clips) == 1
             else f"the one sounding clip alone says {escape(sounding[0].mood or '')}" if len(sounding) == 1
             else f"{agree} of {len(sounding)} sounding clips alone say {escape(result.mood)}"
             if len(sounding) < len(result.clips)
             else f"{agree} of {len(result.clips)} clips alone say {escape(result.mood)}")
    silent = len(result.clips) - len(sounding)
    left_out = f" ({silent} silent {'clip' if silent == 1 else 'clips'} left out)" if silent else ""
    console.print(f"{alone}; the track's scores are {decision_rule(spec, len(sounding))}{left_out}.", soft_wrap=False)


def decision_text(result, spec) -> str:
    """The track's decision in words (markup)."""
    from rich.markup import escape

    text = f"[bold]{escape(result.mood)}[/] (confidence {result.confidence:.2f})"
    if len(spec.labels) == 2 and spec.threshold is not None:
        label = spec.labels[-1]
        p = result.scores[label]
        side = "at or above" if p >= spec.threshold else "below"
        text += f": P({escape(label)}) {p:.3f} is {side} the threshold {spec.threshold:g}"
    else:
        text += ": the most probable label"
    return text + "."


def _bar_cell(scores: dict, mood: str | None, label: str | None, threshold: float | None) -> str:
    """A bar of P(label) with the threshold marked (binary models), else of P(mood)."""
    from tagger.console import bar

    p = scores[label] if label else scores.get(mood, 0.0)
    cells = list(bar(p, BAR_WIDTH).ljust(BAR_WIDTH))
    if label is not None:
        at = min(BAR_WIDTH - 1, int(threshold * BAR_WIDTH))
        if cells[at] == " ":
            cells[at] = THRESHOLD_MARK
    return f"[cyan]{''.join(cells[:BAR_WIDTH])}[/]"


def mm_ss(seconds: float) -> str:
    """Seconds as mm:ss, rounded down (minutes past 99 as they are)."""
    whole = int(seconds)
    return f"{whole // 60:02d}:{whole % 60:02d}"
