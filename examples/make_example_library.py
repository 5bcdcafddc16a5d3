#!/usr/bin/env python3
"""Rebuild examples/library/ : six 30-second excerpts of free-licensed game music, in several formats.

The excerpts come from the moodtag training corpus (../shared/corpus, built by its build_corpus.py)
and carry their artist, title and album in their tags; the Ogg Vorbis, Opus and FLAC ones also a comment
naming their licence (the MP3s and the M4A carry none). Every excerpt's licence is in
examples/ATTRIBUTION.md.
Usage: python examples/make_example_library.py CORPUS_DIR   (CORPUS_DIR holds dev/<label>/...)
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
EXCERPT_S = 30.0
# (corpus file, output path under library/, artist, title, album, licence)
TRACKS = [
    ("calm/0ad-data__Mountain_Idyll.ogg", "Wildfire Games/0 A.D/Mountain Idyll.ogg",
     "Wildfire Games music team", "Mountain Idyll", "0 A.D.", "CC-BY-SA-3.0"),
    ("calm/naev-data__ambient4.ogg", "Askyel/Naev/Ambient 4.mp3",
     "Askyel", "Ambient 4", "Naev", "CC-BY-SA-3.0"),
    ("calm/naev-data__void_sensor.ogg", "Zeropage/Naev/Void Sensor – ambiphonic.m4a",
     "Zeropage", "Void Sensor", "Naev", "CC-BY-3.0"),
    ("exciting/naev-data__combat2.ogg", "Askyel/Naev/Combat 2.opus",
     "Askyel", "Combat 2", "Naev", "CC-BY-SA-3.0"),
    ("exciting/ufoai-music__Crystan-Battlescape04.ogg", "Crystan/UFO Alien Invasion/Battlescape 04.flac",
     "Crystan", "Battlescape 04", "UFO: Alien Invasion", "CC-BY-SA-3.0"),
    ("exciting/ufoai-music__David03.ogg", "Manuel Marino/UFO Alien Invasion/David 03.mp3",
     "Manuel \"Vanethian\" Marino", "David 03", "UFO: Alien Invasion", "CC-BY-3.0"),
]


def main(corpus: Path) -> None:
    import soundfile as sf
    import soxr

    from tagger.synth import encode

    out_root = HERE / "library"
    for src, dest, artist, title, album, licence in TRACKS:
        data, sr = sf.read(str(corpus / "dev" / src), dtype="float32", always_2d=True)
        mid = len(data) // 2
        half = int(EXCERPT_S * sr / 2)
        clip = data[max(0, mid - half): mid + half]
        fade = np.minimum(1.0, np.minimum(np.arange(len(clip)), np.arange(len(clip))[::-1]) / (0.5 * sr))
        clip = (clip * fade[:, None]).astype(np.float32)
        if sr != 44100:
            clip = soxr.resample(clip, sr, 44100)
        path = out_root / dest
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".flac":
            clip = soxr.resample(clip.mean(axis=1), 44100, 22050)[:, None]  # keep the FLAC small
            sf.write(str(path), clip, 22050, format="FLAC", subtype="PCM_16")
        else:
            encode(clip, path)
        _tag(path, artist, title, album, f"30 s excerpt; {licence}; see examples/ATTRIBUTION.md")
        print(f"{path.relative_to(HERE)}  {path.stat().st_size // 1024} KiB")


def _tag(path: Path, artist: str, title: str, album: str, comment: str) -> None:
    import mutagen

    f = mutagen.File(str(path), easy=True)
    if f.tags is None:
        f.add_tags()
    f["artist"], f["title"], f["album"] = artist, title, album
    if path.suffix in (".ogg", ".opus", ".flac"):
        f["comment"] = comment
    f.save()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
