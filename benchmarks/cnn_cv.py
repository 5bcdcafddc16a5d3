#!/usr/bin/env python3
"""The seed CNN on real recordings, at the seed's full schedule and beyond, nested leave-one-game-out (issue 12).

    # here (CPU, librosa): the inputs, ~40 MB
    python benchmarks/cnn_features.py --games CORPUS/dev --games-csv ../shared/corpus/dev.csv \\
        --games MORE/dev --games-csv benchmarks/data/more-games/dev.csv --out benchmarks/out/cnn/dev.npz
    # on a GPU machine (torch and numpy only): every training, predictions written to OUT
    python benchmarks/cnn_cv.py train benchmarks/out/cnn/dev.npz --out OUT --workers 8 --seeds 3
    # anywhere: the nested figures from those predictions (and a late fusion with real_cv.py's)
    python benchmarks/cnn_cv.py report benchmarks/out/cnn/dev.npz OUT/predictions.npz [--fuse REAL_CV.json]

Why a separate trainer: `moodtag train` (tagger/train.py) takes 20-25 min for 7 trainings of 2 epochs x 4
clips on the 2-core development machine, so the seed's own schedule (12 epochs x 16 clips per track) was
never run nested. This script runs the same recipe on a GPU: the seed CNN (tagger.model.SeedCNN),
source-balanced draws of tracks (tagger.train.balance_weights' rule, power 0.5), a random 5 s crop from
the middle of each drawn track, moodtag's dB-domain augmentation (mixing with a same-label track of
another game, EQ tilt and bumps, gain, coloured noise, label smoothing), AdamW with a one-cycle schedule,
batch 32, and each held-out track scored as `moodtag scan` scores it (mean softmax over its five
contiguous inference clips). One difference: the crops are taken from a matrix whose time axis was resized
once (cnn_features.py), and augmented after that resize rather than before it.

Nesting, as in real_cv.py: every configuration (CONFIGS) is trained on every development set that lacks
one game (6) or two games (15); the model without games {g, h} scores h for the inner selection of outer
fold g (and g for fold h). For each held-out game the configuration with the best pooled inner
(BA + AUC) / 2 is chosen, and the model trained without that game alone scores it. The lockbox games
were never packed, so nothing here can see them.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

_DB = 10 / math.log(10)
FLOOR_DB = -100.0
BASE = dict(center="band", epochs=12, clips_per_track=16, batch=32, lr=1e-3, weight_decay=1e-4,
            mix=0.5, noise=0.4, gain=6.0, tilt=6.0, eq=4.0, eq_prob=0.8, mixup=0.0, smoothing=0.05)
CONFIGS = {
    "seed": {},                                                        # moodtag-cnn's recipe, full schedule
    "seed-noaug": dict(mix=0.0, noise=0.0, gain=0.0, tilt=0.0, eq=0.0, eq_prob=0.0, smoothing=0.0),
    "long": dict(epochs=30),
    "long-mixup": dict(epochs=30, mixup=0.3),
    "plain": dict(center="none"),                                      # level and tone colour kept
    "plain-long": dict(center="none", epochs=30),
}


# ---------------------------------------------------------------- data

def load(path: Path) -> dict:
    d = np.load(path)
    out = {k: d[k] for k in d.files}
    out["starts"] = np.concatenate([[0], np.cumsum(out["lengths"])[:-1]])
    return out


def balance(groups: np.ndarray, y: np.ndarray, power: float = 0.5, iterations: int = 200) -> np.ndarray:
    """tagger.train.balance_weights on (group, label) arrays (kept here: this file runs without librosa)."""
    gs = sorted(set(groups.tolist()))
    counts = np.zeros((len(gs), 2))
    for gi, g in enumerate(gs):
        for c in (0, 1):
            counts[gi, c] = ((groups == g) & (y == c)).sum()
    mass = np.where(counts > 0, counts ** power, 0.0)
    present = counts.sum(axis=0) > 0
    share = counts.sum(axis=1, keepdims=True) ** power
    share /= share.sum()
    for _ in range(iterations):
        col = mass.sum(axis=0)
        mass[:, present] *= (1 / present.sum()) / col[present]
        row = mass.sum(axis=1, keepdims=True)
        mass *= share / np.where(row > 0, row, 1)
    col = mass.sum(axis=0)
    mass[:, present] *= (1 / present.sum()) / col[present]
    w = np.array([mass[gs.index(g), c] / counts[gs.index(g), c] for g, c in zip(groups.tolist(), y.tolist())])
    return w / w.sum()


# ---------------------------------------------------------------- training (torch)

class Trainer:
    def __init__(self, data: dict, device: str):
        import torch

        self.torch, self.device = torch, device
        self.data = data
        self.pool = torch.from_numpy(data["pool"]).to(device)                       # (128, total) uint8
        self.infer = torch.from_numpy(data["infer"]).to(device)                     # (N, 5, 128, 128) uint8
        self.lo, self.step = float(data["db_lo"]), float(data["db_step"])
        self.starts = torch.from_numpy(data["starts"]).to(device)
        self.lengths = torch.from_numpy(data["lengths"]).to(device)

    def db(self, q):
        return q.float() * self.step + self.lo

    def crops(self, idx, gen):
        torch = self.torch
        room = (self.lengths[idx] - 128 + 1).clamp_min(1)
        off = (torch.rand(len(idx), device=self.device, generator=gen) * room).long()
        cols = (self.starts[idx] + off)[:, None] + torch.arange(128, device=self.device)
        return self.db(self.pool[:, cols.reshape(-1)].view(128, len(idx), 128).permute(1, 0, 2))

    def augment(self, x, partner, target, r, cfg, gen, y, partner_idx):
        """tagger.train.augment_batch on the GPU; `r` < mix: mix with `partner` (same label), else
        r < mix + mixup: label mixup with it."""
        torch = self.torch
        b, h, _ = x.shape
        u = lambda *shape: torch.rand(*shape, device=self.device, generator=gen)  # noqa: E731
        same = r < cfg["mix"]
        label_mix = (~same) & (r < cfg["mix"] + cfg["mixup"])
        use = same | label_mix
        if use.any():
            w = (0.15 + 0.35 * u(b)).view(-1, 1, 1)
            p = partner + ((u(b) * 2 - 1) * cfg["gain"]).view(-1, 1, 1)
            mixed = _DB * torch.logaddexp(x / _DB + torch.log1p(-w), p / _DB + torch.log(w))
            x = torch.where(use.view(-1, 1, 1), mixed, x)
            if label_mix.any():
                soft = torch.nn.functional.one_hot(y[partner_idx], 2).float()
                wl = torch.where(label_mix, w.view(-1), torch.zeros_like(w.view(-1))).view(-1, 1)
                target = (1 - wl) * target + wl * soft
        band = torch.linspace(-1.0, 1.0, h, device=self.device)
        if cfg["tilt"] or cfg["eq"]:
            on = (u(b) < cfg["eq_prob"]).float().view(-1, 1)
            tilt = ((u(b) * 2 - 1) * cfg["tilt"]).view(-1, 1) * band
            centre = u(b, 2, 1) * 2 - 1
            width = 0.1 + 0.3 * u(b, 2, 1)
            height = (u(b, 2, 1) * 2 - 1) * cfg["eq"]
            bumps = (height * torch.exp(-0.5 * ((band - centre) / width) ** 2)).sum(dim=1)
            x = x + (on * (tilt + bumps)).unsqueeze(-1)
        if cfg["gain"]:
            x = x + ((u(b) * 2 - 1) * cfg["gain"]).view(-1, 1, 1)
        if cfg["noise"]:
            noisy = u(b) < cfg["noise"]
            level = _DB * torch.logsumexp(x.reshape(b, -1) / _DB, dim=1) - _DB * math.log(x[0].numel())
            snr = 10 + 30 * u(b)
            slope = (-12 + 15 * u(b)).view(-1, 1, 1)
            grain = (-torch.log1p(-u(*x.shape).clamp_max(1 - 1e-7))).clamp_min(1e-6)  # exponential(1)
            noise = (level - snr).view(-1, 1, 1) + slope * band.view(1, -1, 1) + _DB * torch.log(grain)
            x = torch.where(noisy.view(-1, 1, 1), _DB * torch.logaddexp(x / _DB, noise / _DB), x)
        if cfg["smoothing"]:
            target = target * (1 - cfg["smoothing"]) + cfg["smoothing"] / 2
        return x.clamp_min(FLOOR_DB), target

    def net_input(self, x, cfg, norm):
        if cfg["center"] == "band":
            x = x - x.mean(dim=-1, keepdim=True)
        x = (x - norm[0]) / norm[1]
        return x[:, None].expand(-1, 3, -1, -1).contiguous()

    def normalization(self, train_idx, cfg):
        """Mean and sd over the training pool (band-centred per 128-column window with center "band")."""
        torch = self.torch
        s = sq = n = 0.0
        for i in train_idx.tolist():
            m = self.db(self.pool[:, int(self.starts[i]):int(self.starts[i] + self.lengths[i])]).double()
            if cfg["center"] == "band":
                k = m.shape[1] // 128
                if k == 0:
                    continue
                w = m[:, :k * 128].reshape(128, k, 128)
                m = w - w.mean(dim=-1, keepdim=True)
            s += float(m.sum())
            sq += float((m ** 2).sum())
            n += m.numel()
        mean = s / n
        return mean, max(math.sqrt(max(sq / n - mean ** 2, 0.0)), 1e-3)

    def train(self, train_idx: np.ndarray, cfg: dict, seed: int):
        torch = self.torch
        from tagger.model import SeedCNN

        torch.manual_seed(seed)
        gen = torch.Generator(device=self.device).manual_seed(seed)
        y_all = torch.from_numpy(self.data["y"]).to(self.device)
        games = self.data["games"]
        norm = self.normalization(train_idx, cfg)
        net = SeedCNN(2).to(self.device)
        w = torch.from_numpy(balance(games[train_idx], self.data["y"][train_idx])).to(self.device)
        tr = torch.from_numpy(train_idx).to(self.device)
        # same-label partners from another game (tagger.train._Sampler)
        partners = []
        for i in train_idx:
            same = train_idx[(self.data["y"][train_idx] == self.data["y"][i]) & (games[train_idx] != games[i])]
            if not len(same):
                same = train_idx[(self.data["y"][train_idx] == self.data["y"][i]) & (train_idx != i)]
            partners.append(same if len(same) else np.array([i]))
        width = max(len(p) for p in partners)
        ptab = torch.from_numpy(np.stack([np.resize(p, width) for p in partners])).to(self.device)
        plen = torch.tensor([len(p) for p in partners], device=self.device)
        per_epoch = len(train_idx) * cfg["clips_per_track"]
        steps = max(1, per_epoch // cfg["batch"])
        opt = torch.optim.AdamW(net.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"], total_steps=cfg["epochs"] * steps,
                                                    pct_start=0.2)
        net.train()
        for _ in range(cfg["epochs"] * steps):
            pick = torch.multinomial(w, cfg["batch"], replacement=True, generator=gen)
            idx = tr[pick]
            r = torch.rand(len(pick), device=self.device, generator=gen)
            label_any = (torch.rand(len(pick), device=self.device, generator=gen) * len(train_idx)).long()
            partner_same = ptab[pick, (torch.rand(len(pick), device=self.device, generator=gen) * plen[pick]).long()]
            partner_idx = torch.where(r < cfg["mix"], partner_same, tr[label_any])
            x = self.crops(idx, gen)
            target = torch.nn.functional.one_hot(y_all[idx], 2).float()
            if cfg["mix"] or cfg["mixup"] or cfg["noise"] or cfg["gain"] or cfg["eq"] or cfg["tilt"]:
                partner = self.crops(partner_idx, gen)
                x, target = self.augment(x, partner, target, r, cfg, gen, y_all, partner_idx)
            logits = net(self.net_input(x, cfg, norm))
            loss = -(target * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        net.eval()
        return net, norm, float(loss.detach()), cfg["epochs"] * steps

    def score(self, net, norm, cfg) -> np.ndarray:
        """P(exciting) of every packed track: mean softmax over its five inference clips."""
        torch = self.torch
        out = []
        with torch.inference_mode():
            for k in range(0, len(self.infer), 64):
                q = self.infer[k:k + 64]
                x = self.net_input(self.db(q.reshape(-1, 128, 128)), cfg, norm)
                p = torch.softmax(net(x), dim=1).view(q.shape[0], q.shape[1], 2).mean(dim=1)[:, 1]
                out.append(p.float().cpu().numpy())
        return np.concatenate(out)


def jobs_for(games: np.ndarray, configs, seeds: int, pairs: bool = True) -> list[tuple]:
    """(left-out games, config, seed): every set lacking one development game (plain leave-one-game-out),
    then, with `pairs`, every set lacking two (the inner folds of the nested choice); seed 0 of every
    (set, config) first, so that a run cut short still holds whole seeds."""
    gs = sorted(set(games.tolist()))
    singles = [(s, c, seed) for seed in range(seeds) for c in configs for s in [(g,) for g in gs]]
    if not pairs:
        return singles
    return singles + [(s, c, seed) for seed in range(seeds) for c in configs for s in itertools.combinations(gs, 2)]


def worker(rank: int, path: str, device: str, queue, results) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    data = load(Path(path))
    tr = Trainer(data, device)
    while True:
        job = queue.get()
        if job is None:
            return
        left, name, seed, cfg = job
        t0 = time.perf_counter()
        try:
            train_idx = np.flatnonzero(~np.isin(data["games"], left))
            net, norm, loss, steps = tr.train(train_idx, cfg, seed)
            p = tr.score(net, norm, cfg)
        except Exception as exc:  # said and counted by the parent, which would otherwise wait for it forever
            results.put((left, name, seed, None, f"{type(exc).__name__}: {exc}", None, None, time.perf_counter() - t0))
            continue
        results.put((left, name, seed, p, norm, loss, steps, time.perf_counter() - t0))


def train_main(args) -> int:
    import torch
    import torch.multiprocessing as mp

    data = load(args.data)
    names = args.configs.split(",") if args.configs else list(CONFIGS)
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        sys.exit(f"--configs: no configuration {unknown[0]!r} (known: {', '.join(CONFIGS)})")
    override = {"epochs": args.epochs} if args.epochs else {}
    # each job carries its whole configuration: the workers are spawned, they re-import this file
    jobs = [(left, name, seed, {**BASE, **CONFIGS[name], **override})
            for left, name, seed in jobs_for(data["games"], names, args.seeds, pairs=not args.singles)]
    if args.limit:
        jobs = jobs[:args.limit]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"{len(jobs)} trainings on {device} ({torch.cuda.get_device_name() if device == 'cuda' else 'cpu'}), "
          f"{args.workers} workers", flush=True)
    ctx = mp.get_context("spawn")
    queue, results = ctx.Queue(), ctx.Queue()
    for j in jobs:
        queue.put(j)
    for _ in range(args.workers):
        queue.put(None)
    procs = [ctx.Process(target=worker, args=(r, str(args.data), device, queue, results)) for r in range(args.workers)]
    for p in procs:
        p.start()
    args.out.mkdir(parents=True, exist_ok=True)
    got: dict = {}
    failed = 0
    t0 = time.perf_counter()
    for k in range(len(jobs)):
        left, name, seed, p, norm, loss, steps, secs = results.get()
        if p is None:
            failed += 1
            print(f"[{k + 1}/{len(jobs)}] without {'+'.join(left) or '-'} {name} seed {seed}: failed ({norm})", flush=True)
            continue
        got[f"{'+'.join(left) or 'all'}|{name}|{seed}"] = p
        print(f"[{k + 1}/{len(jobs)} {time.perf_counter() - t0:.0f}s] without {'+'.join(left) or '-'} {name} "
              f"seed {seed}: {steps} steps, loss {loss:.3f}, {secs:.1f} s", flush=True)
        tmp = args.out / "predictions.tmp.npz"    # after every training: a run cut short keeps what it did
        np.savez_compressed(tmp, **got)
        tmp.replace(args.out / "predictions.npz")
    for p in procs:
        p.join()
    print(f"done in {time.perf_counter() - t0:.0f} s" + (f"; {failed} of {len(jobs)} trainings failed" if failed else ""),
          flush=True)
    return 1 if failed else 0


# ---------------------------------------------------------------- the nested report (numpy only)

def ba_auc(y, p) -> tuple[float, float]:
    from tagger import metrics

    return metrics.balanced_accuracy(y, (p >= 0.5).astype(int), 2), metrics.binary_auc(y == 1, p)


def predictions(pred: dict, names, seeds) -> dict:
    """{(left-out games, config): P(exciting) per track, the mean over the seeds present (all of `seeds`)}."""
    out = {}
    for key in pred:
        left, name, _ = key.split("|")
        if name not in names:
            continue
        have = [pred.get(f"{left}|{name}|{s}") for s in seeds]
        if all(h is not None for h in have):
            out[(tuple(left.split("+")), name)] = np.mean(have, axis=0)
    return out


def nested(P: dict, y, games, names) -> tuple[np.ndarray, list]:
    gs = sorted(set(games.tolist()))
    p = np.full(len(y), np.nan)
    picks = []
    for g in gs:
        scored = []
        for name in names:
            inner = np.full(len(y), np.nan)
            for h in gs:
                if h == g:
                    continue
                key = (tuple(sorted((g, h))), name)
                if key in P:
                    inner[games == h] = P[key][games == h]
            m = ~np.isnan(inner)
            if m.sum() and len(set(y[m].tolist())) == 2:
                ba, auc = ba_auc(y[m], inner[m])
                scored.append(((ba + auc) / 2, ba, auc, name))
        if not scored or ((g,), max(scored)[3]) not in P:
            continue
        best = max(scored)
        p[games == g] = P[((g,), best[3])][games == g]
        picks.append({"held_out": g, "config": best[3], "inner": {s[3]: [round(s[1], 3), round(s[2], 3)] for s in scored}})
    return p, picks


def held_out(P: dict, games: np.ndarray, name: str) -> np.ndarray:
    """Plain leave-one-game-out: each track scored by `name`'s model trained without its game (NaN where missing)."""
    q = np.full(len(games), np.nan)
    for g in sorted(set(games.tolist())):
        if ((g,), name) in P:
            q[games == g] = P[((g,), name)][games == g]
    return q


def figures(y, p, games) -> dict:
    """Pooled BA and AUC, 95 % intervals from resampling whole games, per game, and what a user sees
    (real_cv.py's own functions: the same figures as the default model's)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import real_cv

    ba, auc = ba_auc(y, p)
    return {"ba": round(ba, 4), "auc": round(auc, 4), "intervals": real_cv.game_bootstrap(y, p, games),
            "per_game": real_cv.per_game(y, p, games), "user": real_cv.user_rates(y, p)}


def report_main(args) -> int:
    data = load(args.data)
    pred = dict(np.load(args.predictions))
    y, games = data["y"], data["games"]
    names = args.configs.split(",") if args.configs else list(CONFIGS)
    seed_sets = [[s] for s in range(args.seeds)] + ([list(range(args.seeds))] if args.seeds > 1 else [])
    result = {}
    for seeds in seed_sets:
        P = predictions(pred, names, seeds)
        tag = f"seeds {seeds}"
        entry: dict = {"plain_logo": {}}
        for name in names:
            q = held_out(P, games, name)
            if not np.isnan(q).any():
                entry["plain_logo"][name] = f = figures(y, q, games)
                print(f"{tag}, {name}, plain leave-one-game-out: BA {f['ba']:.3f} {_interval(f, 'ba')}, "
                      f"AUC {f['auc']:.3f} {_interval(f, 'auc')}; calm tagged exciting "
                      f"{f['user']['calm_tagged_exciting']:.0%}, exciting tagged calm {f['user']['exciting_tagged_calm']:.0%}")
                for row in f["per_game"]:
                    extra = f", BA {row['ba']:.2f}, AUC {row['auc']:.2f}" if "ba" in row else ""
                    print(f"    {row['game']}: {row['tracks']} tracks ({row['calm']} calm), accuracy "
                          f"{row['accuracy']:.2f}{extra}, mean P(exciting) {float(np.mean(q[games == row['game']])):.2f}")
        p, picks = nested(P, y, games, names)
        entry["picks"] = picks
        if not np.isnan(p).any():
            entry["nested"] = figures(y, p, games)
            entry["p"] = p.tolist()
            print(f"{tag}, nested (every choice inside the folds): BA {entry['nested']['ba']:.3f}, "
                  f"AUC {entry['nested']['auc']:.3f}")
            for pk in picks:
                print(f"    held out {pk['held_out']}: {pk['config']}")
        else:
            print(f"{tag}: no nested figure (it needs every configuration trained on the sets lacking two games: "
                  "train without --singles)")
        result[tag] = entry
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


def score_main(args) -> int:
    """A moodtag model file (a CNN: its spec's centring and normalisation) on the packed clips of `--games`
    (those it never heard), beside cnn_cv's own held-out predictions of them when given."""
    import torch

    from tagger.weights import load_model

    torch.set_num_threads(1)
    data = load(args.data)
    y, games = data["y"], data["games"]
    model = load_model(args.model)
    cfg = {**BASE, "center": model.spec.features.center}
    norm = (float(model.spec.normalization["mean"]), float(model.spec.normalization["std"]))
    p = Trainer(data, "cpu").score(model.network, norm, cfg)
    chosen = args.games.split(",")
    unknown = [g for g in chosen if g not in set(games.tolist())]
    if unknown:
        sys.exit(f"--games: no game {unknown[0]!r} in {args.data} (games: {', '.join(sorted(set(games.tolist())))})")
    m = np.isin(games, chosen)
    rows = {f"{model.spec.name} {model.spec.version}": p}
    if args.predictions:
        pred = dict(np.load(args.predictions))
        rows[f"cnn_cv {args.config}, held out"] = held_out(predictions(pred, [args.config], [0]), games, args.config)
    for name, q in rows.items():
        ba, auc = ba_auc(y[m], q[m])
        print(f"{name} on {', '.join(chosen)} ({int(m.sum())} tracks, {int((y[m] == 0).sum())} calm): BA {ba:.2f}, "
              f"AUC {auc:.2f}; mean P(exciting) per game: "
              + ", ".join(f"{g} {float(np.mean(q[games == g])):.2f}" for g in chosen))
    return 0


def _interval(f: dict, key: str) -> str:
    lo, hi = f["intervals"][key]
    return f"({lo:.2f}-{hi:.2f})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("data", type=Path)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--workers", type=int, default=8)
    t.add_argument("--seeds", type=int, default=1)
    t.add_argument("--configs")
    t.add_argument("--singles", action="store_true",
                   help="only the sets lacking one game: each configuration's plain leave-one-game-out, no nesting")
    t.add_argument("--limit", type=int, help="only the first N trainings (a smoke test)")
    t.add_argument("--epochs", type=int, help="override every configuration's epochs (a smoke test)")
    r = sub.add_parser("report")
    r.add_argument("data", type=Path)
    r.add_argument("predictions", type=Path)
    r.add_argument("--seeds", type=int, default=1)
    r.add_argument("--configs")
    r.add_argument("--json", type=Path)
    c = sub.add_parser("score", help="a model file on the packed clips of games it never heard")
    c.add_argument("data", type=Path)
    c.add_argument("model", type=Path)
    c.add_argument("--games", required=True, help="comma-separated games")
    c.add_argument("--predictions", type=Path, help="cnn_cv's predictions.npz, for its held-out figures beside")
    c.add_argument("--config", default="seed")
    args = ap.parse_args(argv)
    return {"train": train_main, "report": report_main, "score": score_main}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
