#!/usr/bin/env python3
"""Maintainer-only: convert the musicnn taggers' TensorFlow checkpoints to safetensors (no pickle).

    python -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu safetensors
    pip download musicnn==0.1.0 --no-deps -d /tmp/musicnn && unzip -q /tmp/musicnn/*.whl -d /tmp/musicnn/x
    /tmp/tfvenv/bin/python benchmarks/convert_musicnn.py /tmp/musicnn/x/musicnn --out benchmarks/data/musicnn

musicnn 0.1.0 (PyPI; Jordi Pons, Music Technology Group, Universitat Pompeu Fabra; ISC licence, copied
into each file's metadata) ships its weights inside the package: MTT_musicnn (MagnaTagATune, 50 tags)
and MSD_musicnn (Million Song Dataset, 50 tags). Each becomes one safetensors file whose tensors are in
torch's layout under the parameter names of benchmarks/musicnn_port.py's Musicnn, its metadata saying where they came from.
TensorFlow runs here only; moodtag never imports it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

LICENCE = (
    "Copyright (c) Music Technology Group, Universitat Pompeu Fabra 2019. Code developed by Jordi Pons "
    "(www.jordipons.me). Permission to use, copy, modify, and/or distribute this software for any purpose with or "
    "without fee is hereby granted, provided that the above copyright notice and this permission notice appear in "
    "all copies. THE SOFTWARE IS PROVIDED \"AS IS\" AND THE AUTHOR DISCLAIMS ALL WARRANTIES WITH REGARD TO THIS "
    "SOFTWARE INCLUDING ALL IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS. IN NO EVENT SHALL THE AUTHOR BE LIABLE "
    "FOR ANY SPECIAL, DIRECT, INDIRECT, OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES WHATSOEVER RESULTING FROM LOSS OF USE, "
    "DATA OR PROFITS, WHETHER IN AN ACTION OF CONTRACT, NEGLIGENCE OR OTHER TORTIOUS ACTION, ARISING OUT OF OR IN "
    "CONNECTION WITH THE USE OR PERFORMANCE OF THIS SOFTWARE.")
MTT_LABELS = ['guitar', 'classical', 'slow', 'techno', 'strings', 'drums', 'electronic', 'rock', 'fast', 'piano',
              'ambient', 'beat', 'violin', 'vocal', 'synth', 'female', 'indian', 'opera', 'male', 'singing', 'vocals',
              'no vocals', 'harpsichord', 'loud', 'quiet', 'flute', 'woman', 'male vocal', 'no vocal', 'pop', 'soft',
              'sitar', 'solo', 'man', 'classic', 'choir', 'voice', 'new age', 'dance', 'male voice', 'female vocal',
              'beats', 'harp', 'cello', 'no voice', 'weird', 'country', 'metal', 'female voice', 'choral']
MSD_LABELS = ['rock', 'pop', 'alternative', 'indie', 'electronic', 'female vocalists', 'dance', '00s',
              'alternative rock', 'jazz', 'beautiful', 'metal', 'chillout', 'male vocalists', 'classic rock', 'soul',
              'indie rock', 'Mellow', 'electronica', '80s', 'folk', '90s', 'chill', 'instrumental', 'punk', 'oldies',
              'blues', 'hard rock', 'ambient', 'acoustic', 'experimental', 'female vocalist', 'guitar', 'Hip-Hop',
              '70s', 'party', 'country', 'easy listening', 'sexy', 'catchy', 'funk', 'electro', 'heavy metal',
              'Progressive rock', '60s', 'rnb', 'indie pop', 'sad', 'House', 'happy']
MODELS = {"MTT_musicnn": ("MagnaTagATune", MTT_LABELS), "MSD_musicnn": ("Million Song Dataset", MSD_LABELS)}

# TensorFlow layer (in the order musicnn's models.build_musicnn creates them) -> benchmarks/musicnn_port.py name
CONVS = {"conv2d": "timbral74", "conv2d_1": "timbral77", "conv2d_2": "temporal128", "conv2d_3": "temporal64",
         "conv2d_4": "temporal32", "conv2d_5": "mid1", "conv2d_6": "mid2", "conv2d_7": "mid3"}
NORMS = {"batch_normalization": "input_bn", "batch_normalization_1": "timbral74_bn",
         "batch_normalization_2": "timbral77_bn", "batch_normalization_3": "temporal128_bn",
         "batch_normalization_4": "temporal64_bn", "batch_normalization_5": "temporal32_bn",
         "batch_normalization_6": "mid1_bn", "batch_normalization_7": "mid2_bn", "batch_normalization_8": "mid3_bn",
         "batch_normalization_9": "pool_bn", "batch_normalization_10": "dense_bn"}
DENSES = {"dense": "dense", "dense_1": "logits"}
MIDEND = ("mid1", "mid2", "mid3")


def convert(reader) -> dict[str, np.ndarray]:
    """A checkpoint reader -> tensors in torch's layout (conv2d (out, in, kh, kw); the mid-end's convolutions,
    which span the whole feature axis, as conv1d (out, features, time); dense (out, in))."""
    get = lambda name: np.asarray(reader.get_tensor(name), dtype=np.float32)  # noqa: E731
    out = {}
    for tf_name, name in CONVS.items():
        kernel = get(f"{tf_name}/kernel")              # (kh, kw, in, out)
        if name in MIDEND:
            out[f"{name}.weight"] = kernel[:, :, 0, :].transpose(2, 1, 0)   # (out, features, time)
        else:
            out[f"{name}.weight"] = kernel.transpose(3, 2, 0, 1)            # (out, in, time, freq)
        out[f"{name}.bias"] = get(f"{tf_name}/bias")
    for tf_name, name in NORMS.items():
        for tf_part, part in (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"),
                              ("moving_variance", "running_var")):
            out[f"{name}.{part}"] = get(f"{tf_name}/{tf_part}")
    for tf_name, name in DENSES.items():
        out[f"{name}.weight"] = get(f"{tf_name}/kernel").T
        out[f"{name}.bias"] = get(f"{tf_name}/bias")
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("package", type=Path, help="the unpacked musicnn package folder (holds MTT_musicnn/ ...)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "musicnn")
    args = ap.parse_args(argv)
    import tensorflow as tf
    from safetensors.numpy import save_file

    args.out.mkdir(parents=True, exist_ok=True)
    for model, (dataset, labels) in MODELS.items():
        reader = tf.compat.v1.train.NewCheckpointReader(str(args.package / model) + "/")
        tensors = convert(reader)
        meta = {"musicnn": json.dumps({
            "model": model, "trained_on": dataset, "labels": labels,
            "source": "musicnn 0.1.0 (PyPI, https://github.com/jordipons/musicnn), "
                      f"musicnn/{model}/ TensorFlow checkpoint, converted by benchmarks/convert_musicnn.py",
            "licence": "ISC", "licence_text": LICENCE,
            "input": {"sample_rate": 16000, "n_fft": 512, "hop_length": 256, "n_mels": 96, "frames": 187,
                      "compression": "log10(10000 * mel_power + 1), mel power rounded to float16 first"},
            "batch_norm_eps": 0.001})}
        path = args.out / f"{model}.safetensors"
        save_file(tensors, str(path), metadata=meta)
        print(f"{path}: {len(tensors)} tensors, {sum(v.size for v in tensors.values())} weights", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
