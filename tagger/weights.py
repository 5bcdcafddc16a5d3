"""ModelSpec, and saving/loading model files as safetensors with the spec as JSON metadata (no pickle)."""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from tagger.atomic import blocked, replace_file, why_not_written
from tagger.errors import BROKEN_LINK, ModelError

SPEC_KEY = "moodtag_spec"
DEFAULT_MODEL = "moodtag-rhythm"
MODEL_SUFFIX = ".safetensors"
MAX_HEADER_BYTES = 100_000_000  # the safetensors library refuses larger headers too
MAX_JSON_DEPTH = 64  # a model file's JSON is a few levels deep; far deeper is a crafted file
DESCRIPTOR_ARCHITECTURE = "descriptor_logistic"
# A network's input recipe, each setting in range, may still add up to more than any machine holds (n_fft 65536
# with hop_length 1: 144 GB for one track). The complex STFT of a track's clips is computed at once: at most
# 2**27 values (1 GiB). The shipped moodtag-cnn, and every recipe `train` writes, needs 1.1 million (5 clips of
# 5 s at 22050 Hz, n_fft 2048, hop 512); five 30 s clips at 48 kHz with n_fft 4096 and hop 256 need 58 million.
MAX_SPECTROGRAM_VALUES = 2 ** 27
MAX_INPUT_VALUES = 2 ** 27  # the network's input for a track's clips (clips x channels x size): 512 MiB of float32
# What a label may be: each names a tag field (MOODTAG_SCORE_<LABEL>). The one rule: tagger.tags writes by it
# too (here, not there, so that reading a model's spec does not import mutagen).
TAG_LABEL = re.compile(r"[A-Za-z0-9_-]+\Z")
TAG_LABEL_RULE = "letters, digits, - and _ only"


@dataclass(frozen=True)
class ClipPlan:
    """Where the clips of a track come from: `count` clips of `seconds`, around the middle.

    placement "contiguous": back to back, centred on the midpoint.
    placement "spread": evenly spaced over the middle `span` fraction of the track.
    """

    count: int = 5
    seconds: float = 5.0
    placement: str = "contiguous"
    span: float = 0.6


@dataclass(frozen=True)
class FeatureSpec:
    """How a clip becomes the network's input; `kind` is mel, stft or mfcc, or "descriptors": the
    track's `descriptors` (names from tagger.descriptors) computed over all its clips together.

    center "band": each band's mean over the clip is subtracted before normalisation, so the input
    keeps how the spectrum moves and drops the clip's static spectrum (its EQ, its loudness).

    top_db (descriptor models): the mel dB the onset and flux descriptors read is floored `top_db`
    below each clip's loudest bin, so a change of gain changes none of them; None keeps the absolute
    -100 dB floor of moodtag-rhythm 1.x.
    """

    kind: str = "mel"
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    n_mfcc: int = 40
    fmin: float = 0.0
    fmax: float | None = None
    size: tuple[int, int] = (128, 128)
    channels: int = 3
    center: str = "none"
    descriptors: tuple[str, ...] = ()
    top_db: float | None = None   # descriptors: dB floored this far below each clip's loudest bin (None: -100 dB)


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to use a model file, stored inside it."""

    name: str
    version: str
    labels: tuple[str, ...]
    sample_rate: int = 22050
    clips: ClipPlan = field(default_factory=ClipPlan)
    features: FeatureSpec = field(default_factory=FeatureSpec)
    normalization: dict = field(default_factory=lambda: {"mean": 0.0, "std": 1.0})
    architecture: dict = field(default_factory=lambda: {"name": "seed_cnn"})
    threshold: float | None = 0.5
    trained_on: str = ""
    metrics: dict = field(default_factory=dict)
    created: str = ""

    @property
    def min_seconds(self) -> float:
        """Shortest track that can be classified: one whole clip."""
        return self.clips.seconds

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "ModelSpec":
        """The spec of a model file's JSON. ValueError, in moodtag's words, for JSON of the wrong shape (a
        list, a field of the wrong type, a required field missing); NewerSpecError for a field this
        moodtag does not know (a file written by a newer one)."""
        data = dict(_object(data, "the spec"))
        unknown = _unknown_fields(data, cls, "")
        clips, feats = _object(data.pop("clips", {}), "clips"), _object(data.pop("features", {}), "features")
        unknown += _unknown_fields(clips, ClipPlan, "clips.") + _unknown_fields(feats, FeatureSpec, "features.")
        if unknown:
            raise NewerSpecError(f"the model spec has {'a field' if len(unknown) == 1 else 'fields'} this moodtag "
                                 f"does not know ({', '.join(map(repr, unknown))}): written by a newer moodtag?")
        missing = [name for name in ("name", "version", "labels") if name not in data]
        if missing:
            raise ValueError(f"the spec has no {missing[0]}")
        for name in ("size", "descriptors"):
            if name in feats:
                if not isinstance(feats[name], (list, tuple)):
                    raise ValueError(f"features.{name} must be a list, not {feats[name]!r}")
                feats[name] = tuple(feats[name])
        if not isinstance(data.get("labels"), (list, tuple)):  # a string would become its letters
            raise TypeError(f"labels must be a list of names, not {data.get('labels')!r}")
        data["labels"] = tuple(data["labels"])
        return cls(clips=ClipPlan(**clips), features=FeatureSpec(**feats), **data)

    def with_(self, **changes) -> "ModelSpec":
        return replace(self, **changes)


class NewerSpecError(ValueError):
    """A model spec with a field this moodtag does not know: most likely written by a newer moodtag."""


def _object(value, what: str) -> dict:
    if not isinstance(value, dict):
        kind = {list: "a list", str: "text", bool: "true or false", type(None): "null"}.get(type(value), "a number")
        raise ValueError(f"{what} must be a JSON object, not {kind}")
    return value


def _unknown_fields(data: dict, kind, prefix: str) -> list[str]:
    """The keys of `data` that are no field of the dataclass `kind`, each as `prefix` + key."""
    from dataclasses import fields

    known = {f.name for f in fields(kind)}
    return [prefix + key for key in data if key not in known]


@dataclass
class LoadedModel:
    """A model ready for inference: its spec, the network in eval mode, the file it came from, and the
    torch device its network sits on ('cpu' for a descriptor model, which runs on numpy)."""

    spec: ModelSpec
    network: object
    path: Path | None = None
    sha256: str | None = None
    device: str = "cpu"


def shipped_models_dir() -> Path:
    """Where the shipped models are: inside the installed package, or `models/` of a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "models", here.parent / "models"):
        if candidate.is_dir() and any(candidate.glob("*" + MODEL_SUFFIX)):
            return candidate
    return here.parent / "models"


def shipped_models() -> list[Path]:
    return sorted(shipped_models_dir().glob("*" + MODEL_SUFFIX))


def resolve_model(model: str | Path | None) -> Path:
    """A model argument -> a file: None means the default shipped model; a bare name means a shipped one.
    '' (an unset variable) is an error: taken for the default, a scan re-analysed a library with it."""
    if model is None:
        model = DEFAULT_MODEL
    elif str(model) == "":
        raise ModelError("an empty model path (an unset variable?)")
    path = Path(model).expanduser()
    if path.is_file():
        return path
    if path.suffix != MODEL_SUFFIX and len(path.parts) == 1:
        shipped = shipped_models_dir() / (path.name + MODEL_SUFFIX)
        if shipped.is_file():
            return shipped
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        if isinstance(exc, FileNotFoundError) and os.path.lexists(path):  # a link whose target is gone: said so,
            raise ModelError(f"{model}: {BROKEN_LINK}") from None  # not hidden behind the shipped models' names
        raise ModelError(f"{model}: no such model file ({_shipped_hint(model)})") from None
    import stat

    from tagger.discover import file_kind

    if stat.S_ISDIR(mode):
        raise ModelError(f"{model}: is a folder, not a model file")
    raise ModelError(f"{model}: not a regular file ({file_kind(mode)})")  # a FIFO would block the read


def _shipped_hint(model: str | Path) -> str:
    """What to say of the shipped models when the argument `model` names no file: the shipped models' names;
    for a bare file name that is a shipped model's (`moodtag-rhythm.safetensors`), the name to give instead.
    Not taken for the shipped model: a name with its suffix names a file, such as a retrained copy of it in
    another folder (train --out moodtag-rhythm.safetensors), and a scan run from the wrong folder would tag a
    library with the shipped model in silence. A name with a folder part, `./` too (which Path drops), names a
    file on purpose: no hint."""
    text = os.fspath(model)
    path = Path(text)
    if not os.path.dirname(text) and path.suffix == MODEL_SUFFIX and (shipped_models_dir() / path.name).is_file():
        return f"for the shipped model, give its name alone: {path.stem}"
    known = ", ".join(p.stem for p in shipped_models()) or "none"
    return f"shipped models: {known}"


def file_sha256(path: Path) -> str:
    import hashlib  # here: OpenSSL's load (~5 ms) stays out of the commands that only read a model's spec

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_writable(path: Path) -> None:
    """ModelError ("PATH: cannot write (why)") unless a model file can be written at `path`: not a folder,
    and its folder (or the nearest existing one above it, where save_model makes the rest) a folder we
    may write in. Before a training run, so that hours of work do not end on a failed save."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ModelError(f"{path}: is a folder, not a model file")
    error = blocked(path)  # a file on its path, or a link that leads nowhere (a disk not mounted)
    if error is not None:
        raise ModelError(f"{path}: cannot write ({why_not_written(error)})")
    target = Path(os.path.realpath(path)) if path.is_symlink() else path  # save_model writes through a link
    folder = next(p for p in target.parents if os.path.lexists(p))  # "/" or "." exists
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ModelError(f"{path}: cannot write ({folder}: permission denied)")


def save_model(path: Path, spec: ModelSpec, state_dict: dict) -> Path:
    """Write the model's tensors (torch tensors, or numpy arrays) and the spec (JSON metadata) to a
    safetensors file (through a temporary file beside it, tagger.atomic); ModelError ("PATH: cannot write (why)")
    if it cannot be written."""
    import numpy as np

    path = Path(path)
    metadata = {SPEC_KEY: json.dumps(spec.to_json(), sort_keys=True)}
    if all(isinstance(v, np.ndarray) for v in state_dict.values()):
        from safetensors.numpy import save as serialize

        data = serialize({k: np.ascontiguousarray(v) for k, v in state_dict.items()}, metadata=metadata)
    else:
        from safetensors.torch import save as serialize

        data = serialize({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, metadata=metadata)
    try:  # a model kept elsewhere through a link stays linked; a private (0600) one stays private
        replace_file(path, lambda fh: fh.write(data))
    except OSError as exc:
        raise ModelError(f"{path}: cannot write ({why_not_written(exc)})") from None
    return path


def read_spec(path: Path) -> ModelSpec:
    """Read only the spec of a model file (cheap: no tensors, no torch network)."""
    path = Path(path)
    try:
        meta = safetensors_metadata(path)
    except PermissionError:
        raise ModelError(f"{path}: permission denied") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the model file ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise ModelError(f"{path}: not a moodtag model file ({exc})") from None
    if SPEC_KEY not in meta:
        raise ModelError(f"{path}: safetensors file without a moodtag spec")
    try:
        spec = ModelSpec.from_json(_json(meta[SPEC_KEY], "the spec"))
        problem = spec_problem(spec)
    except NewerSpecError as exc:
        raise ModelError(f"{path}: {exc}") from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ModelError(f"{path}: malformed model spec ({exc})") from None
    if problem:
        raise ModelError(f"{path}: malformed model spec ({problem})")
    return spec


def safetensors_metadata(path: Path) -> dict:
    """The `__metadata__` of a safetensors file, read from its header (an 8-byte little-endian length, then
    that many bytes of JSON) without the safetensors library, which imports numpy (0.1 s) for it.
    Raises OSError, or ValueError for a file that is not safetensors."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        head = fh.read(8)
        if len(head) < 8:
            raise ValueError("file too short for a safetensors header")
        length = int.from_bytes(head, "little")
        if length > min(size - 8, MAX_HEADER_BYTES):
            raise ValueError(f"header length {length} does not fit the file")
        header = _json(fh.read(length).decode("utf-8"), "the header")
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    offsets = [entry.get("data_offsets") if isinstance(entry, dict) else None
               for name, entry in header.items() if name != "__metadata__"]
    if not all(isinstance(o, list) and len(o) == 2 and all(isinstance(n, int) for n in o) for o in offsets):
        raise ValueError("a tensor's data_offsets are not two whole numbers")
    ends = [o[1] for o in offsets]
    if max(ends, default=0) > size - 8 - length:
        raise ValueError(f"the tensors' data breaks off: the header needs {max(ends, default=0):,} bytes after "
                         f"it, the file holds {size - 8 - length:,} (a truncated copy?)")
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise ValueError("__metadata__ is not a map of strings")
    return meta


def _json(text: str, what: str):
    """json.loads, with JSON nested more than MAX_JSON_DEPTH deep (a crafted file: '[[[[...') a ValueError
    naming `what`, as any other JSON that cannot be read: not a RecursionError traceback, from the parser
    or later from whatever walks the value (model-info's rendering, dataclasses.asdict)."""
    try:
        value = json.loads(text)
    except RecursionError:
        value = None
    else:
        if not _deeper_than(value, MAX_JSON_DEPTH):
            return value
    raise ValueError(f"{what}'s JSON is nested more than {MAX_JSON_DEPTH} deep")


def _deeper_than(value, limit: int) -> bool:
    """Whether JSON `value` nests objects and arrays more than `limit` deep (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def spec_problem(spec: ModelSpec) -> str | None:
    """What makes a spec unusable (a value no track could be analysed with, or that `model-info` could
    not show), or None: checked once, when the model is read, so that a bad model file is one error
    and never a failure of every track it analyses (whose rows would replace finished results)."""
    labels, clips = spec.labels, spec.clips
    for name in ("name", "version", "trained_on", "created"):
        if not isinstance(getattr(spec, name), str):
            return f"{name} {getattr(spec, name)!r} must be text"
    for name in ("name", "version"):  # a scan's cache and the MOODTAG_MODEL tag tell models apart by them
        if not getattr(spec, name).strip():
            return f"{name} {getattr(spec, name)!r} is empty"
    if not isinstance(spec.metrics, dict):
        return f"metrics must be a JSON object, not {type(spec.metrics).__name__}"
    if not isinstance(spec.architecture, dict) or not isinstance(spec.architecture.get("name"), str):
        return f"architecture {spec.architecture!r} must be an object with a name"
    if len(labels) < 2 or len(set(labels)) != len(labels) or not all(isinstance(l, str) and l for l in labels):
        return f"labels must be two or more distinct names, not {list(labels)}"
    if not _whole(spec.sample_rate, 1000, 384000):
        return f"sample_rate {spec.sample_rate!r} is not a sample rate"
    if not _whole(clips.count, 1, 100):
        return f"clips.count {clips.count!r} must be a whole number from 1 to 100"
    if not _number(clips.seconds) or not 0.1 <= clips.seconds <= 120:
        return f"clips.seconds {clips.seconds!r} must be from 0.1 to 120"
    if clips.placement not in ("contiguous", "spread"):
        return f"clips.placement {clips.placement!r} must be contiguous or spread"
    if not _number(clips.span) or not 0 < clips.span <= 1:
        return f"clips.span {clips.span!r} must be above 0 and at most 1"
    top_db = spec.features.top_db
    if top_db is not None and not (_number(top_db) and 10 <= top_db <= 200):
        return f"features.top_db {top_db!r} must be from 10 to 200 (or absent)"
    if spec.threshold is not None and not (_number(spec.threshold) and 0 < spec.threshold < 1):
        return f"threshold {spec.threshold!r} must be between 0 and 1"
    descriptors = spec.architecture["name"] == DESCRIPTOR_ARCHITECTURE
    if descriptors != (spec.features.kind == "descriptors"):
        return (f"features.kind {spec.features.kind!r} does not go with architecture "
                f"{spec.architecture['name']!r} (descriptors go with {DESCRIPTOR_ARCHITECTURE})")
    return None if descriptors else _network_input_problem(spec)


def check_taggable(path: Path, spec: ModelSpec) -> None:
    """ModelError for a model with a label that cannot name a tag field (TAG_LABEL: 'very calm', 'énergique';
    an old file, trained before `train` refused them): every track of a scan writing its tags would fail
    as they were written. Called before any work by a command that writes tags; classify, evaluate,
    model-info and a scan that writes none (--no-write) use such a model as they would another."""
    odd = next((label for label in spec.labels if not TAG_LABEL.match(label)), None)
    if odd is not None:
        raise ModelError(f"{path}: label {odd!r} cannot be a tag field name ({TAG_LABEL_RULE}), so this model "
                         "cannot write tags: use it without writing them (moodtag scan --no-write, beet moodtag -W), or "
                         "retrain it with other labels")


def _number(value) -> bool:
    """A finite int or float (not a bool, which JSON's true would give)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _network_input_problem(spec: ModelSpec) -> str | None:
    """What makes a network model's input recipe unusable (features, normalization), or None."""
    f = spec.features
    if f.kind not in ("mel", "stft", "mfcc"):
        return f"features.kind {f.kind!r} must be mel, stft, mfcc or descriptors"
    for name, low, high in (("n_fft", 16, 65536), ("hop_length", 1, 65536), ("n_mels", 1, 1024),
                            ("n_mfcc", 1, 1024), ("channels", 1, 64)):
        if not _whole(getattr(f, name), low, high):
            return f"features.{name} {getattr(f, name)!r} must be a whole number from {low} to {high}"
    if not (isinstance(f.size, tuple) and len(f.size) == 2 and all(_whole(n, 1, 4096) for n in f.size)):
        return f"features.size {f.size!r} must be two whole numbers from 1 to 4096"
    if f.center not in ("none", "band"):
        return f"features.center {f.center!r} must be none or band"
    if not (_number(f.fmin) and 0 <= f.fmin < spec.sample_rate / 2):
        return f"features.fmin {f.fmin!r} must be from 0 to below half the sample rate"
    if f.fmax is not None and not (_number(f.fmax) and f.fmin < f.fmax <= spec.sample_rate / 2):
        return f"features.fmax {f.fmax!r} must be above fmin and at most half the sample rate (or absent)"
    clips = spec.clips
    frames = 1 + int(clips.seconds * spec.sample_rate) // f.hop_length  # torch.stft's, centred
    cells = clips.count * frames * (f.n_fft // 2 + 1)
    if cells > MAX_SPECTROGRAM_VALUES:  # each in range, but the STFT of a track's clips would not fit in memory
        return (f"features.n_fft {f.n_fft} and hop_length {f.hop_length} give {cells:,} spectrogram values for a "
                f"track's {clips.count} clips of {clips.seconds:g} s at {spec.sample_rate} Hz "
                f"(at most {MAX_SPECTROGRAM_VALUES:,})")
    values = clips.count * f.channels * f.size[0] * f.size[1]
    if values > MAX_INPUT_VALUES:
        return (f"features.size {f.size} and channels {f.channels} give {values:,} input values for a track's "
                f"{clips.count} clips (at most {MAX_INPUT_VALUES:,})")
    norm = spec.normalization
    if not (isinstance(norm, dict) and _number(norm.get("mean")) and _number(norm.get("std")) and norm["std"] >= 0):
        return f"normalization {norm!r} must hold a number 'mean' and a number 'std' of 0 or more"
    return None


def load_model(model: str | Path | None = None, *, device: str = "cpu") -> LoadedModel:
    """Load a model file (path, shipped name, or None for the default): a descriptor model becomes a
    numpy `DescriptorRegression` (torch is not imported; `device` is ignored), a CNN an eval-mode torch
    network on `device` ('cpu', 'cuda' or 'auto', see tagger.device; ModelError for 'cuda' without CUDA)."""
    path = resolve_model(model)
    spec = read_spec(path)
    if spec.architecture.get("name") == DESCRIPTOR_ARCHITECTURE:
        return _load_regression(path, spec)
    try:
        import torch  # the default model needs no torch; a network model does
    except ImportError:
        raise ModelError(f"{path}: {spec.name} is a PyTorch network and torch is not installed "
                         "(pip install 'torch>=2.1')") from None
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except Exception as exc:
        raise ModelError(f"{path}: cannot read tensors ({exc})") from None
    if not all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point()):
        raise ModelError(f"{path}: its tensors hold NaN or infinite values (a damaged model file)")
    try:
        network = _network_of(spec, state)
    except (ValueError, RuntimeError, TypeError) as exc:
        raise ModelError(f"{path}: tensors do not fit the spec's architecture ({str(exc).splitlines()[0]})") from None
    from tagger.device import resolve_device

    where = resolve_device(device)
    network.eval().to(where)
    return LoadedModel(spec=spec, network=network, path=path, sha256=file_sha256(path), device=where)


def _network_of(spec: ModelSpec, state: dict):
    """The spec's network holding the tensors `state`. The architecture is first built on torch's meta
    device (no memory, no initialisation) and its tensors' names and shapes compared with the file's, so
    that a small crafted file (a spec asking for a layer of 100,000 units, and no tensors) is refused
    before gigabytes are allocated, naming the first tensor that does not fit. ValueError, TypeError or
    RuntimeError for an architecture that cannot be built or does not fit."""
    import warnings

    import torch

    from tagger.model import build_model

    with warnings.catch_warnings():  # a zero-sized layer: torch's "Initializing zero-element tensors is a no-op"
        warnings.simplefilter("ignore")
        with torch.device("meta"):
            needed = build_model(spec.architecture, len(spec.labels)).state_dict()
        problem = _tensor_mismatch({k: list(v.shape) for k, v in needed.items()},
                                   {k: list(v.shape) for k, v in state.items()})
        if problem:
            raise ValueError(problem)
        network = build_model(spec.architecture, len(spec.labels))
        network.load_state_dict(state)
    return network


def _tensor_mismatch(needed: dict[str, list[int]], held: dict[str, list[int]]) -> str | None:
    """The first tensor the architecture needs that the file lacks or holds in another shape, else the
    first the file holds that the architecture has no place for; None when they match."""
    for name, shape in needed.items():
        if name not in held:
            return f"tensor {name!r} is missing"
        if held[name] != shape:
            return f"tensor {name!r} has shape {held[name]}, the architecture needs {shape}"
    extra = [name for name in held if name not in needed]
    return f"tensor {extra[0]!r} has no place in the architecture" if extra else None


def _load_regression(path: Path, spec: ModelSpec) -> LoadedModel:
    import numpy as np
    from safetensors.numpy import load_file

    from tagger.regression import DescriptorRegression

    try:
        state = load_file(str(path))
    except Exception as exc:
        raise ModelError(f"{path}: cannot read tensors ({exc})") from None
    if not all(np.all(np.isfinite(t)) for t in state.values() if t.dtype.kind == "f"):
        raise ModelError(f"{path}: its tensors hold NaN or infinite values (a damaged model file)")
    if spec.features.kind != "descriptors" or not spec.features.descriptors:
        raise ModelError(f"{path}: a {DESCRIPTOR_ARCHITECTURE} model needs features.kind 'descriptors' and their names")
    try:
        from tagger.descriptors import check_names

        check_names(spec.features.descriptors)
        network = DescriptorRegression.from_tensors(state, n_features=len(spec.features.descriptors),
                                                    n_labels=len(spec.labels))
        wants_quantiles = (spec.architecture or {}).get("transform") == "quantile_normal"
        if wants_quantiles != (network.quantiles is not None):
            raise ValueError("the spec's transform and the 'quantiles' tensor disagree")
    except ValueError as exc:
        raise ModelError(f"{path}: tensors do not fit the spec ({exc})") from None
    return LoadedModel(spec=spec, network=network, path=path, sha256=file_sha256(path))
