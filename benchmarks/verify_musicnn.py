#!/usr/bin/env python3
"""Maintainer-only: hold benchmarks/musicnn_port.py (torch, converted weights) to the original musicnn graph
(TensorFlow, the package's checkpoints) on the same log-mel patches of real recordings.

    # 1. patches of real files, as moodtag decodes them (the moodtag venv)
    python benchmarks/verify_musicnn.py inputs /tmp/mn_in.npz FILE...
    # 2. the original: musicnn 0.1.0's models.define_model and its checkpoint (the TensorFlow venv)
    /tmp/tfvenv/bin/python benchmarks/verify_musicnn.py reference /tmp/musicnn/x/musicnn /tmp/mn_in.npz /tmp/mn_ref.npz
    # 3. the port on the same patches: max |difference| per output (the moodtag venv)
    python benchmarks/verify_musicnn.py compare /tmp/mn_in.npz /tmp/mn_ref.npz

The golden of tests/test_musicnn.py: `golden-inputs /tmp/g_in.npz` (its synthetic patch), 2. on that,
then `golden /tmp/g_ref.npz tests/golden/musicnn.json` (the reference's taggram and penultimate layer).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MODELS = ("MTT_musicnn", "MSD_musicnn")
OUTPUTS = ("taggram", "penultimate", "mean_pool", "max_pool")


def inputs(out: Path, files: list[str]) -> None:
    sys.path[:0] = [str(HERE.parent), str(HERE)]
    import musicnn_port as musicnn
    from tagger.audio import load_clips
    from tagger.weights import ClipPlan

    plan = ClipPlan(placement="spread")
    mels = [musicnn.log_mel(load_clips(Path(f), plan=plan, sample_rate=musicnn.SAMPLE_RATE).samples) for f in files]
    np.savez(out, patches=np.concatenate([musicnn.patches(m, 126) for m in mels]))


def reference(package: Path, src: Path, out: Path) -> None:
    """musicnn's own graph (models.define_model), restored from its checkpoint, run on the patches."""
    import tensorflow as tf

    sys.path.insert(0, str(package.parent))
    from musicnn import models

    tf.compat.v1.disable_eager_execution()
    patches = np.load(src)["patches"]
    result = {}
    for model in MODELS:
        tf.compat.v1.reset_default_graph()
        with tf.name_scope("model"):
            x = tf.compat.v1.placeholder(tf.float32, [None, patches.shape[1], patches.shape[2]])
            is_training = tf.compat.v1.placeholder(tf.bool)
            y, _, _, _, _, _, mean_pool, max_pool, penultimate = models.define_model(x, is_training, model, 50)
            taggram = tf.nn.sigmoid(y)
        with tf.compat.v1.Session() as sess:
            tf.compat.v1.train.Saver().restore(sess, str(package / model) + "/")
            got = sess.run([taggram, penultimate, mean_pool, max_pool], feed_dict={x: patches, is_training: False})
        for name, value in zip(OUTPUTS, got):
            result[f"{model}/{name}"] = value
    np.savez(out, **result)


def port(src: Path) -> dict[str, np.ndarray]:
    sys.path[:0] = [str(HERE.parent), str(HERE)]
    import musicnn_port as musicnn

    patches = np.load(src)["patches"]
    out = {}
    for model in MODELS:
        got = musicnn.embed(musicnn.load_tagger(HERE / "data" / "musicnn" / f"{model}.safetensors"), patches)
        out.update({f"{model}/{k}": v for k, v in got.items()})
    return out


def compare(src: Path, ref: Path) -> None:
    mine, theirs = port(src), np.load(ref)
    print(f"{np.load(src)['patches'].shape[0]} patches")
    for key in sorted(theirs.files):
        diff = np.abs(mine[key] - theirs[key])
        print(f"{key:28s} max |diff| {diff.max():.2e}  (values up to {np.abs(theirs[key]).max():.2f})")


def golden_inputs(out: Path) -> None:
    sys.path[:0] = [str(HERE.parent), str(HERE)]
    from tests.test_musicnn import golden_patch

    np.savez(out, patches=golden_patch())


def golden(ref: Path, out: Path) -> None:
    theirs = np.load(ref)
    out.write_text(json.dumps({k: np.round(theirs[k][0].astype(np.float64), 7).tolist() for k in theirs.files
                               if k.endswith(("taggram", "penultimate"))}, indent=0))


if __name__ == "__main__":
    cmd, *rest = sys.argv[1:]
    if cmd == "inputs":
        inputs(Path(rest[0]), rest[1:])
    elif cmd == "reference":
        reference(Path(rest[0]), Path(rest[1]), Path(rest[2]))
    elif cmd == "compare":
        compare(Path(rest[0]), Path(rest[1]))
    elif cmd == "golden-inputs":
        golden_inputs(Path(rest[0]))
    elif cmd == "golden":
        golden(Path(rest[0]), Path(rest[1]))
    else:
        sys.exit(f"unknown command {cmd!r}")
