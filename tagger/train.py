"""Train a network of the spec's architecture on labelled tracks; cross-validate by group.

Data flow: items -> split by group (a whole group on one side) -> one cached feature matrix per track
(`feature_cache`) -> each step draws tracks by source-balanced weights and a random clip position in the
middle of each track -> augmentation in the dB domain (mixing with another track of the same label,
optional label mixup, EQ tilt and bumps, gain, noise) -> the clip's time axis resized as inference does
-> normalised with the training set's statistics -> the network. Validation scores each held-out track
on the spec's inference clips (mean of the clips' probabilities, as `analyze_track` does).

Reproducible: the same items, options and seed give the same weights on the same machine and thread
count (numpy and torch seeded, deterministic torch algorithms).
"""
from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from tagger.audio import clip_offsets
from tagger.dataset import Item, labels_of
from tagger.errors import AudioError, MoodtagError
from tagger.evaluate import EvalReport, TrackRow, evaluate_model, report_from_rows
from tagger.feature_cache import TrackMatrix, track_matrix
from tagger.features import AMIN, resize, to_input
from tagger.metrics import best_threshold
from tagger.model import build_model
from tagger.records import counted
from tagger.weights import LoadedModel, ModelSpec

FLOOR_DB = 10 * math.log10(AMIN)  # the dB floor of the features: -100
_DB = 10 / math.log(10)            # dB = _DB * ln(power)


@dataclass(frozen=True)
class Augment:
    """Training-time changes to each clip's dB matrix. `none()` turns them all off."""

    gain_db: float = 6.0            # uniform gain in +-gain_db
    tilt_db: float = 6.0            # EQ tilt: +-tilt_db at the lowest/highest band, linear in between
    eq_db: float = 4.0              # two smooth random EQ bumps of +-eq_db
    eq_prob: float = 0.8
    noise_prob: float = 0.4         # add coloured noise at a random SNR
    snr_db: tuple[float, float] = (10.0, 40.0)
    mix_prob: float = 0.5           # mix with a clip of another track of the same label (another group if any)
    mix_weight: tuple[float, float] = (0.15, 0.5)   # the partner's share of the power
    mixup_prob: float = 0.0         # label mixing: partner of any label, soft targets
    label_smoothing: float = 0.05

    @classmethod
    def none(cls) -> "Augment":
        return cls(gain_db=0.0, tilt_db=0.0, eq_db=0.0, eq_prob=0.0, noise_prob=0.0, mix_prob=0.0,
                   mixup_prob=0.0, label_smoothing=0.0)


@dataclass(frozen=True)
class ProgressEvent:
    """What training reports: stage 'features' (done/total tracks), 'step' (done/total steps of an
    epoch), 'epoch' (an epoch's loss and validation metrics), 'skipped' (a track left out, message)."""

    stage: str
    done: int = 0
    total: int = 0
    epoch: int = 0
    epochs: int = 0
    loss: float | None = None
    metrics: dict | None = None
    message: str = ""
    fold: int = 0
    folds: int = 0


@dataclass
class TrainResult:
    """A trained network's weights, its spec (normalisation, threshold, metrics, trained_on, created),
    per-epoch history, the groups on each side, the final validation report (a binary model's at 0.5, as
    the epochs' figures: its rows' scores give it at the spec's threshold), and skipped tracks."""

    state_dict: dict
    spec: ModelSpec
    history: list[dict]
    train_groups: tuple[str, ...]
    val_groups: tuple[str, ...]
    validation: EvalReport | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def loaded(self) -> LoadedModel:
        """The trained network as a LoadedModel (eval mode), for evaluate_model / analyze_track."""
        net = build_model(self.spec.architecture, len(self.spec.labels))
        net.load_state_dict(self.state_dict)
        net.eval()
        return LoadedModel(spec=self.spec, network=net)


Progress = Callable[[ProgressEvent], None] | None


# ---------------------------------------------------------------- split and balance

def split_by_group(items: list[Item], *, val_groups=None, val_fraction: float = 0.0,
                   seed: int = 0) -> tuple[list[Item], list[Item]]:
    """(train, validation): whole groups go to validation, either those named in `val_groups` or,
    with `val_fraction` > 0, groups drawn at random (seeded) until they hold that share of the tracks."""
    groups = sorted({it.group for it in items})
    if val_groups:
        unknown = [g for g in val_groups if g not in groups]
        if unknown:
            raise MoodtagError(f"--val-groups: no group {unknown[0]!r} in DATA (groups: {', '.join(groups)})")
        chosen = set(val_groups)
    elif val_fraction > 0:
        if len(groups) < 2:
            raise MoodtagError(f"--val-fraction: DATA has one group only ({groups[0]}); "
                               "a validation split needs whole groups on each side")
        rng = np.random.default_rng(seed)
        sizes = Counter(it.group for it in items)
        chosen, held = set(), 0
        for g in rng.permutation(groups):
            if held >= val_fraction * len(items) or len(chosen) == len(groups) - 1:
                break
            chosen.add(str(g))
            held += sizes[g]
    else:
        chosen = set()
    train = [it for it in items if it.group not in chosen]
    val = [it for it in items if it.group in chosen]
    if not train:
        raise MoodtagError("the validation groups take every track: nothing left to train on")
    return train, val


def balance_weights(items: list[Item], labels: tuple[str, ...], *, power: float = 0.5,
                    iterations: int = 200) -> np.ndarray:
    """Sampling probability per item, so that labels weigh the same and no group dominates.

    Each (group, label) cell starts with mass count**power (power 1: as many draws as tracks; 0: every
    cell alike); iterative proportional fitting then scales the cells until every label holds
    1/n_labels of the mass and every group a share proportional to its size**power (as near as the
    cells allow): with power 0.5 a group of 266 tracks weighs 2.6 times one of 40, not 6.7 times,
    and a group of 2 tracks does not weigh as much as one of 40. A track gets its cell's mass
    shared equally with the cell's other tracks."""
    groups = sorted({it.group for it in items})
    gi = {g: i for i, g in enumerate(groups)}
    li = {label: i for i, label in enumerate(labels)}
    counts = np.zeros((len(groups), len(labels)))
    for it in items:
        counts[gi[it.group], li[it.label]] += 1
    mass = np.where(counts > 0, counts ** power, 0.0)
    present = counts.sum(axis=0) > 0
    group_share = counts.sum(axis=1, keepdims=True) ** power
    group_share /= group_share.sum()
    for _ in range(iterations):
        col = mass.sum(axis=0)
        mass[:, present] *= (1 / present.sum()) / col[present]
        row = mass.sum(axis=1, keepdims=True)
        mass *= group_share / np.where(row > 0, row, 1)
    col = mass.sum(axis=0)
    mass[:, present] *= (1 / present.sum()) / col[present]  # end on exact label balance
    w = np.array([mass[gi[it.group], li[it.label]] / counts[gi[it.group], li[it.label]] for it in items])
    return w / w.sum()


# ---------------------------------------------------------------- features and batches

def load_matrices(items: list[Item], *, spec: ModelSpec, span: float, cache_dir, on_progress: Progress = None,
                  fold: int = 0, folds: int = 0) -> tuple[list[Item], list[TrackMatrix], list[tuple[str, str]]]:
    """Cached matrices of the items; an undecodable or too short track is skipped (and reported)."""
    kept, mats, skipped = [], [], []
    for i, it in enumerate(items):
        try:
            mats.append(track_matrix(it.path, spec=spec, span=span, cache_dir=cache_dir))
            kept.append(it)
        except AudioError as exc:
            skipped.append((str(it.path), str(exc)))
            _emit(on_progress, ProgressEvent("skipped", message=f"{it.path}: {exc}", fold=fold, folds=folds))
        _emit(on_progress, ProgressEvent("features", done=i + 1, total=len(items), fold=fold, folds=folds))
    return kept, mats, skipped


def normalization_of(mats: list[TrackMatrix], center: str = "none") -> dict:
    """Mean and standard deviation over every value of the training matrices (with center "band":
    of their clip-long windows, each band's mean over the window removed, as `to_input` does)."""
    def values(m: TrackMatrix) -> np.ndarray:
        x = m.matrix.astype(np.float64)
        if center != "band":
            return x
        n = m.clip_frames
        windows = [x[:, k:k + n] for k in range(0, x.shape[1] - n + 1, n)]
        return np.concatenate([w - w.mean(axis=1, keepdims=True) for w in windows], axis=1)

    total = sum_ = sq = 0.0
    for m in mats:
        v = values(m)
        total += v.size
        sum_ += float(v.sum())
        sq += float((v ** 2).sum())
    mean = sum_ / total
    std = math.sqrt(max(sq / total - mean ** 2, 0.0))
    return {"mean": round(mean, 4) + 0.0, "std": round(max(std, 1e-3), 4)}  # + 0.0: no "-0.0"


def _crop(tm: TrackMatrix, k: int) -> np.ndarray:
    return tm.matrix[:, k:k + tm.clip_frames].astype(np.float32)


def _random_crop(tm: TrackMatrix, rng: np.random.Generator) -> np.ndarray:
    return _crop(tm, int(rng.integers(0, tm.matrix.shape[1] - tm.clip_frames + 1)))


def _mix_db(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Power-domain mix (1-w)*a + w*b of dB matrices a, b; w per sample in (0, 1)."""
    w = w.view(-1, 1, 1)
    return _DB * torch.logaddexp(a / _DB + torch.log1p(-w), b / _DB + torch.log(w))


def augment_batch(x: torch.Tensor, partner: torch.Tensor, aug: Augment, rng: np.random.Generator,
                  use_partner: np.ndarray, partner_weight: np.ndarray) -> torch.Tensor:
    """(B, H, T) dB matrices -> augmented copies. `partner` holds the mixing partners' crops;
    rows where `use_partner` is False are not mixed."""
    b, h, _ = x.shape
    if use_partner.any():
        w = torch.from_numpy(np.where(use_partner, partner_weight, 1e-6).astype(np.float32))
        mixed = _mix_db(x, partner, w)
        x = torch.where(torch.from_numpy(use_partner).view(-1, 1, 1), mixed, x)
    band = torch.linspace(-1.0, 1.0, h)
    if aug.tilt_db or aug.eq_db:
        on = torch.from_numpy((rng.random(b) < aug.eq_prob).astype(np.float32)).view(-1, 1)
        tilt = torch.from_numpy(rng.uniform(-aug.tilt_db, aug.tilt_db, b).astype(np.float32)).view(-1, 1) * band
        centre = torch.from_numpy(rng.uniform(-1, 1, (b, 2, 1)).astype(np.float32))
        width = torch.from_numpy(rng.uniform(0.1, 0.4, (b, 2, 1)).astype(np.float32))
        height = torch.from_numpy(rng.uniform(-aug.eq_db, aug.eq_db, (b, 2, 1)).astype(np.float32))
        bumps = (height * torch.exp(-0.5 * ((band - centre) / width) ** 2)).sum(dim=1)
        x = x + (on * (tilt + bumps)).unsqueeze(-1)
    if aug.gain_db:
        x = x + torch.from_numpy(rng.uniform(-aug.gain_db, aug.gain_db, b).astype(np.float32)).view(-1, 1, 1)
    if aug.noise_prob:
        noisy = rng.random(b) < aug.noise_prob
        if noisy.any():
            level = _DB * torch.logsumexp(x.reshape(b, -1) / _DB, dim=1) - _DB * math.log(x[0].numel())
            snr = torch.from_numpy(rng.uniform(*aug.snr_db, b).astype(np.float32))
            slope = torch.from_numpy(rng.uniform(-12, 3, b).astype(np.float32)).view(-1, 1, 1)
            grain = torch.from_numpy(rng.exponential(1.0, x.shape).astype(np.float32)).clamp_min(1e-6)
            noise = (level - snr).view(-1, 1, 1) + slope * band.view(1, -1, 1) + _DB * torch.log(grain)
            with_noise = _DB * torch.logaddexp(x / _DB, noise / _DB)
            x = torch.where(torch.from_numpy(noisy).view(-1, 1, 1), with_noise, x)
    return x.clamp_min(FLOOR_DB)


class _Sampler:
    """Draws training batches: source-balanced tracks, random clip positions, augmentation."""

    def __init__(self, items, mats, labels, weights, aug: Augment, rng: np.random.Generator):
        self.items, self.mats, self.labels, self.weights, self.aug, self.rng = items, mats, labels, weights, aug, rng
        self.y = np.array([labels.index(it.label) for it in items])
        self.by_label = {k: np.flatnonzero(self.y == k) for k in range(len(labels))}
        groups = np.array([it.group for it in items])
        # same-label partners from another group when there is one (mixing sources breaks the confound)
        self.partners = []
        for i in range(len(items)):
            same = self.by_label[self.y[i]]
            other = same[groups[same] != groups[i]]
            pool = other if len(other) else same[same != i]
            self.partners.append(pool if len(pool) else np.array([i]))

    def batch(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Track indices -> ((B, H, T) augmented dB crops, (B, n_labels) soft targets)."""
        rng, aug, n = self.rng, self.aug, len(self.labels)
        x = torch.from_numpy(np.stack([_random_crop(self.mats[i], rng) for i in idx]))
        target = F.one_hot(torch.from_numpy(self.y[idx]), n).float()
        use = np.zeros(len(idx), dtype=bool)
        weight = np.zeros(len(idx))
        partner_idx = np.array(idx)
        if aug.mix_prob or aug.mixup_prob:
            r = rng.random(len(idx))
            same = r < aug.mix_prob
            label_mix = (~same) & (r < aug.mix_prob + aug.mixup_prob)
            for j, i in enumerate(idx):
                if same[j]:
                    partner_idx[j] = rng.choice(self.partners[i])
                elif label_mix[j]:
                    partner_idx[j] = rng.integers(0, len(self.items))
            use = same | label_mix
            weight = rng.uniform(*aug.mix_weight, len(idx))
            partner = torch.from_numpy(np.stack([_random_crop(self.mats[i], rng) if use[j] else
                                                 np.zeros_like(x[0].numpy()) for j, i in enumerate(partner_idx)]))
            if aug.gain_db:  # the partner at its own level
                partner = partner + torch.from_numpy(
                    rng.uniform(-aug.gain_db, aug.gain_db, len(idx)).astype(np.float32)).view(-1, 1, 1)
            if label_mix.any():
                soft = F.one_hot(torch.from_numpy(self.y[partner_idx]), n).float()
                w = torch.from_numpy(np.where(label_mix, weight, 0.0).astype(np.float32)).view(-1, 1)
                target = (1 - w) * target + w * soft
        else:
            partner = x
        x = augment_batch(x, partner, aug, rng, use, weight)
        if aug.label_smoothing:
            target = target * (1 - aug.label_smoothing) + aug.label_smoothing / n
        return x, target


def _network_input(x: torch.Tensor, spec: ModelSpec) -> torch.Tensor:
    """(B, H, T) dB crops -> (B, channels, *size) as inference builds it (resize, normalise, channels)."""
    return to_input(resize(x.numpy(), spec.features.size), spec)


# ---------------------------------------------------------------- validation

def _score_tracks(net, items, mats, spec: ModelSpec) -> list[TrackRow]:
    """Mean softmax over the spec's inference clips, taken from the cached matrices."""
    rows = []
    net.eval()
    with torch.inference_mode():
        for it, tm in zip(items, mats):
            starts = clip_offsets(tm.duration, spec.clips)
            crops = torch.from_numpy(np.stack([_crop(tm, tm.frame_at(s)) for s in starts]))
            probs = torch.softmax(net(_network_input(crops, spec)), dim=1).mean(dim=0).numpy()
            rows.append(TrackRow(path=it.path, group=it.group, label=it.label, predicted=None,
                                 scores={label: float(p) for label, p in zip(spec.labels, probs)}))
    return rows


# ---------------------------------------------------------------- training

def train_model(items: list[Item], *, spec: ModelSpec, epochs: int = 12, clips_per_track: int = 16,
                seed: int = 0, val_groups=None, val_fraction: float = 0.0, batch_size: int = 32,
                lr: float = 1e-3, weight_decay: float = 1e-4, augment: Augment = Augment(),
                balance: float = 0.5, span: float = 0.6, threshold: float | str = "auto",
                cache_dir=None, threads: int | None = None, on_progress: Progress = None,
                fold: int = 0, folds: int = 0) -> TrainResult:
    """Train a fresh network of `spec.architecture` for `spec.labels` on `items`.

    `val_groups` (names) or `val_fraction` hold whole groups out for validation; `threshold` "auto"
    picks a binary model's threshold on P(labels[1]) by validation balanced accuracy (0.5 without
    validation), or a number fixes it. Returns the weights and the completed spec; writes nothing."""
    check_options(epochs=epochs, clips_per_track=clips_per_track, batch_size=batch_size, lr=lr,
                   span=span, val_fraction=val_fraction, balance=balance)
    labels = tuple(spec.labels)
    unknown = [it for it in items if it.label not in labels]
    if unknown:
        raise MoodtagError(f"{unknown[0].path}: label {unknown[0].label!r} is not one of {', '.join(labels)}")
    train_items, val_items = split_by_group(items, val_groups=val_groups, val_fraction=val_fraction, seed=seed)
    missing = [label for label in labels if not any(it.label == label for it in train_items)]
    if missing:
        raise MoodtagError(f"no training track labelled {missing[0]!r} once the validation groups are held out")

    old_threads, old_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    if threads:
        torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        return _train(train_items, val_items, spec=spec, epochs=epochs, clips_per_track=clips_per_track,
                      seed=seed, batch_size=batch_size, lr=lr, weight_decay=weight_decay, augment=augment,
                      balance=balance, span=span, threshold=threshold, cache_dir=cache_dir,
                      on_progress=on_progress, fold=fold, folds=folds)
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det)


def _train(train_items, val_items, *, spec, epochs, clips_per_track, seed, batch_size, lr, weight_decay,
           augment, balance, span, threshold, cache_dir, on_progress, fold, folds) -> TrainResult:
    labels = tuple(spec.labels)
    ev = dict(fold=fold, folds=folds)
    train_items, train_mats, skipped = load_matrices(train_items, spec=spec, span=span, cache_dir=cache_dir,
                                                     on_progress=on_progress, **ev)
    val_items, val_mats, val_skipped = load_matrices(val_items, spec=spec, span=span, cache_dir=cache_dir,
                                                     on_progress=on_progress, **ev)
    skipped += val_skipped
    lost = [label for label in labels if not any(it.label == label for it in train_items)]
    if lost:
        raise MoodtagError(f"label {lost[0]!r} has no training track left: none of its training tracks could be "
                           "decoded (see the skipped lines)")
    spec = spec.with_(normalization=normalization_of(train_mats, spec.features.center))

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = build_model(spec.architecture, len(labels))
    weights = balance_weights(train_items, labels, power=balance)
    sampler = _Sampler(train_items, train_mats, labels, weights, augment, rng)
    per_epoch = max(2, len(train_items) * clips_per_track)
    steps = max(1, per_epoch // batch_size) if per_epoch >= batch_size else 1
    bsz = min(batch_size, per_epoch)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps, pct_start=0.2)

    history: list[dict] = []
    rows: list[TrackRow] = []
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        net.train()
        draws = rng.choice(len(train_items), size=(steps, bsz), p=weights)
        total_loss = 0.0
        for step in range(steps):
            x, target = sampler.batch(draws[step])
            logits = net(_network_input(x, spec))
            loss = -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += loss.item()
            _emit(on_progress, ProgressEvent("step", done=step + 1, total=steps, epoch=epoch, epochs=epochs,
                                             loss=total_loss / (step + 1), **ev))
        record = {"epoch": epoch, "loss": round(total_loss / steps, 5)}
        if val_items:
            rows = _score_tracks(net, val_items, val_mats, spec)
            report = report_from_rows(rows, labels=labels, threshold=0.5 if len(labels) == 2 else None)
            record.update(val_accuracy=_r(report.accuracy), val_balanced_accuracy=_r(report.balanced_accuracy),
                          val_roc_auc=_r(report.roc_auc))
        record["seconds"] = round(time.perf_counter() - t0, 2)
        history.append(record)
        _emit(on_progress, ProgressEvent("epoch", done=epoch, total=epochs, epoch=epoch, epochs=epochs,
                                         loss=record["loss"], metrics=record, **ev))

    net.eval()
    chosen = _choose_threshold(threshold, labels, rows)
    spec = spec.with_(threshold=chosen)
    validation = None
    metrics: dict = {}
    if val_items:
        # the headline at 0.5: a threshold chosen on these same tracks would flatter them
        validation = report_from_rows(rows, labels=labels, threshold=0.5 if len(labels) == 2 else None)
        at_chosen = report_from_rows(rows, labels=labels, threshold=chosen)
        tuned = " (chosen on these same tracks: optimistic)" if threshold == "auto" and len(labels) == 2 else ""
        metrics["validation"] = {
            "what": f"held-out groups {', '.join(sorted({it.group for it in val_items}))}, scored on the "
                    f"model's inference clips after the last epoch; at_threshold: at the model's threshold{tuned}",
            "at_threshold": at_chosen.summary(), "at_0.5": validation.summary() if len(labels) == 2 else None}
    spec = spec.with_(metrics=metrics, trained_on=describe_items(train_items), created=_now())
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    return TrainResult(state_dict=state, spec=spec, history=history,
                       train_groups=tuple(sorted({it.group for it in train_items})),
                       val_groups=tuple(sorted({it.group for it in val_items})),
                       validation=validation, skipped=skipped)


def _choose_threshold(threshold, labels, rows) -> float | None:
    if len(labels) != 2:
        return None
    if threshold != "auto":
        return float(threshold)
    ok = [r for r in rows if r.error is None]
    if not ok:
        return 0.5
    y = np.array([labels.index(r.label) for r in ok])
    return best_threshold(y, np.array([r.scores[labels[1]] for r in ok]))


def check_options(*, epochs, clips_per_track, batch_size, lr, span, val_fraction, balance) -> None:
    """MoodtagError, naming the option, for a training setting out of range."""
    if epochs < 1:
        raise MoodtagError(f"--epochs {epochs}: must be at least 1")
    if clips_per_track < 1:
        raise MoodtagError(f"--clips-per-track {clips_per_track}: must be at least 1")
    if batch_size < 2:
        raise MoodtagError(f"--batch-size {batch_size}: must be at least 2 (batch normalisation)")
    if not lr > 0:
        raise MoodtagError(f"--lr {lr}: must be positive")
    if not 0 < span <= 1:
        raise MoodtagError(f"--span {span}: must be in (0, 1]")
    if not 0 <= val_fraction < 1:
        raise MoodtagError(f"--val-fraction {val_fraction}: must be in [0, 1)")
    if not 0 <= balance <= 1:
        raise MoodtagError(f"--balance {balance}: must be in [0, 1]")


def describe_items(items: list[Item]) -> str:
    """'137 tracks (calm 87, exciting 50) in 3 groups: 0ad-data (calm 56, exciting 2), ...'."""
    def counts(its):
        return ", ".join(f"{k} {v}" for k, v in sorted(Counter(it.label for it in its).items()))
    groups = sorted({it.group for it in items})
    parts = [f"{g} ({counts([it for it in items if it.group == g])})" for g in groups]
    return f"{counted(len(items), 'track')} ({counts(items)}) in {counted(len(groups), 'group')}: " + "; ".join(parts)


def _r(x):
    return None if x is None else round(float(x), 4)


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _emit(on_progress: Progress, event: ProgressEvent) -> None:
    if on_progress is not None:
        on_progress(event)


# ---------------------------------------------------------------- cross-validation

@dataclass
class CrossValidation:
    """Leave-one-group-out: per fold, the held-out groups' report; `pooled` over all held-out tracks.
    Every held-out track is scored by the real inference path with a fixed threshold (0.5 for binary
    models), never one tuned on the held-out tracks."""

    folds: list[tuple[tuple[str, ...], EvalReport]]
    pooled: EvalReport
    histories: list[list[dict]] = field(default_factory=list)

    def summary(self) -> dict:
        groups = [g for fold_groups, _ in self.folds for g in fold_groups]
        pooled = self.pooled.summary()
        per_fold = {", ".join(fg): {k: r.summary()[k] for k in ("tracks", "accuracy", "balanced_accuracy", "roc_auc")}
                    for fg, r in self.folds}
        return {"method": f"leave-one-group-out over {', '.join(groups)}: each held-out group's tracks "
                          "scored by a model trained without it (same options), threshold "
                          f"{self.pooled.threshold}; pooled over the held-out tracks",
                "pooled": pooled, "folds": per_fold}


def cross_validate(items: list[Item], *, spec: ModelSpec, cv_groups=None, on_progress: Progress = None,
                   **train_options) -> CrossValidation:
    """Hold out each group of `cv_groups` (default: every group) in turn, train on the rest, and score
    the held-out tracks with `evaluate_model`. Groups not in `cv_groups` always stay in training."""
    groups = sorted({it.group for it in items})
    cv_groups = list(cv_groups or groups)
    unknown = [g for g in cv_groups if g not in groups]
    if unknown:
        raise MoodtagError(f"--cv-groups: no group {unknown[0]!r} in DATA (groups: {', '.join(groups)})")
    if len(groups) < 2:
        raise MoodtagError("cross-validation needs at least two groups in DATA")
    train_options = {k: v for k, v in train_options.items() if k not in ("val_groups", "val_fraction")}
    threshold = 0.5 if len(spec.labels) == 2 else None
    folds, rows, histories = [], [], []
    for i, group in enumerate(cv_groups, start=1):
        result = train_model(items, spec=spec, val_groups=[group], threshold=0.5,
                             on_progress=on_progress, fold=i, folds=len(cv_groups), **train_options)
        held = [it for it in items if it.group == group]
        report = evaluate_model(held, result.loaded())
        folds.append(((group,), report))
        histories.append(result.history)
        rows += list(report.rows)
    pooled = report_from_rows(rows, labels=tuple(spec.labels), threshold=threshold)
    return CrossValidation(folds=folds, pooled=pooled, histories=histories)


def prepare_spec(spec: ModelSpec, items: list[Item], labels=None) -> ModelSpec:
    """`spec` with the labels of the data (or `labels`, checked against the data)."""
    return spec.with_(labels=labels_of(items, labels))


__all__ = ["Augment", "ProgressEvent", "TrainResult", "CrossValidation", "train_model", "cross_validate",
           "split_by_group", "balance_weights", "describe_items", "prepare_spec"]
