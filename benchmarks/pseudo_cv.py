#!/usr/bin/env python3
"""Does self-training on unlabelled real game music help? real_cv's nested leave-one-game-out, with
pseudo-labels inside every fold.

    # once: download, unpack and list the unlabelled music (outside the repository)
    python benchmarks/pseudo_cv.py fetch --root ~/unlabelled --out benchmarks/data/unlabelled/packages.csv
    # the study (same development games, same configurations as real_cv.py)
    python benchmarks/pseudo_cv.py run --games CORPUS/dev --games-csv ../shared/corpus/dev.csv \\
        --games MORE/dev --games-csv benchmarks/data/more-games/dev.csv \\
        --unlabelled ~/unlabelled/root --unlabelled-csv benchmarks/data/unlabelled/packages.csv \\
        [--variant plain|balanced|agree] [--rounds 1|2] [--jobs 2] [--json OUT]

The unlabelled music: Debian packages of game music that no evaluation uses and that carry no labels
(../shared/corpus/README.md, "Unlabelled music"; PACKAGES below). From each, the files in a music
folder (`music`, `tunes`, `cdtracks`) of at least 30 s; sound effects, voices and ambient
soundscapes are left out. packages.csv lists every track (package, version, path, duration, sha256,
licence from the package's debian/copyright). The development games' own unlabelled tracks and the
lockbox games' packages (hedgewars-data, starfighter-data) are not used, nor lugaru-data and
openclonk-data (development games).

Self-training inside a fold, for a configuration cfg of real_cv and a setting (alpha, margin): fit cfg
on the fold's training games (the teacher, exactly real_cv's fit); label every unlabelled track whose
|P(exciting) - 0.5| >= margin with the teacher's decision; add them to the training set, each
package one more source whose (package, label) cells are weighted as real_cv weights a game's cells,
times alpha, before both labels are given the same total; refit cfg (`--rounds 2`: label again with
the refitted model, from scratch, and refit once more). alpha = 0 is real_cv's model exactly.

The choice is nested like every other one: for each held-out development game, an inner
leave-one-game-out over the other development games scores every (configuration, alpha, margin) with
alpha in {0, 0.25, 0.5, 1} and margin in {0.2, 0.3, 0.4} (the inner folds self-train too, and never
see the held-out game; the unlabelled tracks have no labels anywhere); the best by real_cv's rule
(mean of pooled inner BA and AUC; ties go to alpha = 0, then to real_cv's order) is self-trained on
all the other games and scores the held-out game. From the same run, the same choice restricted to
alpha = 0 (which is real_cv.py's result, fold for fold) gives the paired baseline; a paired game
bootstrap (the same resampled games for both) gives intervals of the difference.

Variants (`--variant`), each one more look at the same six games:
  plain     the rule above;
  balanced  class-balanced pseudo-labels: of the confident tracks, the k most confident of each
            label, k = the smaller label's count (none if one label has none);
  agree     only confident tracks whose five clips (each described alone) get the track's label.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import csv
import hashlib
import json
import subprocess
import sys
import time
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import real_cv  # noqa: E402
import real_features  # noqa: E402
from grouped_cv import cached_map  # noqa: E402

# package -> the licence of its music, from the package's debian/copyright
PACKAGES = {
    "nexuiz-music": "GPL-2+ (debian/copyright: Nexuiz (C) 2002-2009 Alientrap)",
    "singularity-music": "CC-BY-SA (Creative Commons Attribution-ShareAlike licence text in debian/copyright; "
                         "(C) 2007-2008,2012 Max McCracken)",
    "hyperrogue-music": "CC-BY-SA-3.0 (Files: music/*; Shawn Parrotte, Lincoln Domina, Will Savino)",
    "colobot-common-sounds": "GPL-3+ (Files: *; 2001-2016 Daniel Roux, EPSITEC SA & TerranovaTeam)",
    "fillets-ng-data": "GPL-2 (debian/copyright; upstream Ivo and Pavel Danihelka, ALTAR interactive et al.)",
    "btanks-data": "Battle-Tanks-License (GNU GPL with an exception; Files: *, 2005-2009 Battle Tanks Team)",
    "davegnukem-data": "Expat or GPL-2 or GPL-3 (Files: *; music by Eric Matyas, not listed separately)",
    "wizznic-data": "GPL-3 (Files: *; 2009 Adam Scotney)",
    "trackballs-data": "GPL-2+ (Files: *), ETHYMONICS-FREE-MUSIC-LICENSE for c64revival, crazy, eurovision",
    "asc-music": "GPL-2+ (Files: *; 2002 Michael Kievernagel)",
}
AUDIO = (".ogg", ".oga", ".mp3", ".flac", ".wav", ".opus")
MUSIC_DIRS = {"music", "tunes", "cdtracks"}
MIN_SECONDS = 30.0
ARCHIVES = (".pk3",)   # zip archives inside a package; unpacked beside it as NAME.d/

ALPHAS = (0.25, 0.5, 1.0)
MARGINS = (0.2, 0.3, 0.4)
SETTINGS = [(0.0, None)] + [(a, m) for a in ALPHAS for m in MARGINS]   # alpha = 0 first: ties go to it


# ---------------------------------------------------------------- the unlabelled music

def fetch(root: Path, out: Path, log) -> int:
    """apt-get download + dpkg-deb -x every package of PACKAGES under ROOT, unpack the zip archives it
    ships, and list the music tracks in OUT."""
    from tagger.audio import probe_duration

    debs, tree = root / "debs", root / "root"
    debs.mkdir(parents=True, exist_ok=True)
    missing = [p for p in PACKAGES if not list(debs.glob(f"{p}_*.deb"))]
    if missing:
        subprocess.run(["apt-get", "download", *missing], cwd=debs, check=True)
    rows = []
    for pkg in PACKAGES:
        deb = sorted(debs.glob(f"{pkg}_*.deb"))[-1]
        version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True,
                                 check=True).stdout.strip()
        dest = tree / pkg
        if not dest.exists():
            dest.mkdir(parents=True)
            subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True)
        for arc in sorted(f for f in dest.rglob("*") if f.suffix.lower() in ARCHIVES and f.is_file()):
            unpacked = arc.with_name(arc.name + ".d")
            if not unpacked.exists():
                zipfile.ZipFile(arc).extractall(unpacked)
        for f in sorted(dest.rglob("*")):
            rel = f.relative_to(dest)
            if not f.is_file() or f.suffix.lower() not in AUDIO or "doc" in rel.parts[:3]:
                continue
            if not (MUSIC_DIRS & {p.lower() for p in rel.parts[:-1]} or "music" in f.stem.lower()):
                continue
            seconds = probe_duration(f)
            if seconds < MIN_SECONDS:
                continue
            path = str(rel)
            for ext in ARCHIVES:   # name files from an archive as the corpus does: ARCHIVE!MEMBER
                path = path.replace(f"{ext}.d/", f"{ext}!")
            rows.append({"package": pkg, "version": version, "path": path, "duration_s": f"{seconds:.1f}",
                         "sha256": hashlib.sha256(f.read_bytes()).hexdigest(), "license": PACKAGES[pkg]})
        log(f"{pkg} {version}: {sum(r['package'] == pkg for r in rows)} tracks")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as fh:
        w = csv.DictWriter(fh, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    log(f"{len(rows)} tracks -> {out}")
    return 0


@dataclass(frozen=True)
class Unlabelled:
    path: str
    package: str


def unlabelled_tracks(tree: Path, table: Path) -> list[Unlabelled]:
    out = []
    for r in csv.DictReader(open(table, newline="")):
        rel = r["path"]
        for ext in ARCHIVES:
            rel = rel.replace(f"{ext}!", f"{ext}.d/")
        p = tree / r["package"] / rel
        if not p.exists():
            sys.exit(f"{table}: {p} not found (run `pseudo_cv.py fetch` first)")
        if r["package"].removesuffix("-data").removesuffix("-music") in real_cv.LOCKBOX:
            sys.exit(f"{table}: {r['package']} is a lockbox game")
        out.append(Unlabelled(str(p), r["package"]))
    return out


def compute_clips(path: str, alteration: str) -> dict:
    """Every candidate of each clip described alone (for the `agree` variant)."""
    from tagger.errors import AudioError

    try:
        samples = real_features.altered_clips(path, alteration.split("+")[0])
    except AudioError as exc:
        return {"path": path, "error": str(exc)}
    return {"path": path, "clips": [real_features.track_candidates(s[None]) for s in samples]}


# ---------------------------------------------------------------- self-training

def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def weights_mixed(y, src, menu, menus: str, pseudo: np.ndarray, alpha: float, scale: float) -> np.ndarray:
    """real_cv.weights_of with the pseudo-labelled sources' cells times alpha (`scale` in all)."""
    return real_cv.weights_of(y, src, menu, menus, factor=np.where(pseudo, alpha, 1.0), scale=scale)


def select(model: real_cv.Fit, XU, XUc, margin: float, variant: str):
    """Which unlabelled tracks get a pseudo-label, and which: (mask, label)."""
    z = model.margin(XU)
    lab = (z >= 0).astype(int)
    sel = np.abs(sigmoid(z) - 0.5) >= margin
    if variant == "agree":
        n, k, d = XUc.shape
        zc = model.margin(XUc.reshape(n * k, d)).reshape(n, k)
        sel &= np.all((zc >= 0) == (z >= 0)[:, None], axis=1)
    elif variant == "balanced":
        k = min(int((sel & (lab == 0)).sum()), int((sel & (lab == 1)).sum()))
        keep = np.zeros(len(z), bool)
        for c in (0, 1):
            idx = np.flatnonzero(sel & (lab == c))
            keep[idx[np.argsort(-np.abs(z[idx]), kind="stable")[:k]]] = True
        sel = keep
    return sel, lab


def self_train(cfg, XL, yL, gL, mL, XU, XUc, pkg, alpha, margin, rounds, variant, base=None):
    """The teacher (real_cv's fit) and, for alpha > 0, the model refitted with pseudo-labels.
    Returns (model, mask of pseudo-labelled tracks, their labels)."""
    if base is None:
        base = real_cv.fit(cfg, XL, yL, real_cv.weights_of(yL, gL, mL, cfg["menus"]))
    sel, lab = np.zeros(len(XU), bool), np.zeros(len(XU), int)
    if alpha == 0:
        return base, sel, lab
    model = base
    for _ in range(rounds):
        sel, lab = select(model, XU, XUc, margin, variant)
        if not sel.any():
            break
        n = int(sel.sum())
        X = np.vstack([XL, XU[sel]])
        y = np.concatenate([yL, lab[sel]])
        src = np.concatenate([gL.astype(object), np.array(["u:" + p for p in pkg[sel]], dtype=object)])
        menu = np.concatenate([mL, np.zeros(n, bool)])
        pseudo = np.concatenate([np.zeros(len(yL), bool), np.ones(n, bool)])
        w = weights_mixed(y, src, menu, cfg["menus"], pseudo, alpha, len(yL) + alpha * n)
        model = real_cv.fit(cfg, X, y, w)
    return model, sel, lab


# ---------------------------------------------------------------- the nested study

STATE: dict = {}


def inner_scores(cfg, train: np.ndarray) -> dict:
    """Inner leave-one-game-out over the games `train` selects, every setting: {setting: (score, ba, auc)}."""
    S = STATE
    y, games, menu = S["y"], S["games"], S["menu"]
    X, XU, XUc = S["feats"][cfg["features"]], S["ufeats"][cfg["features"]], S["uclips"].get(cfg["features"])
    z = {st: np.full(len(y), np.nan) for st in SETTINGS}
    for g in sorted(set(games[train].tolist())):
        test = train & (games == g)
        tr = train & (games != g)
        if len(set(y[tr].tolist())) < 2:
            continue
        base = real_cv.fit(cfg, X[tr], y[tr], real_cv.weights_of(y[tr], games[tr], menu[tr], cfg["menus"]))
        for st in SETTINGS:
            model, _, _ = self_train(cfg, X[tr], y[tr], games[tr], menu[tr], XU, XUc, S["pkg"], st[0], st[1],
                                     S["rounds"], S["variant"], base=base)
            z[st][test] = model.margin(X[test])
    out = {}
    for st, zz in z.items():
        m = train & ~np.isnan(zz)
        ba, auc = real_cv.pooled(y[m], sigmoid(zz[m]))
        out[st] = ((ba + auc) / 2, ba, auc)
    return out


def choose(train: np.ndarray) -> list:
    """Every (score, ba, auc, cfg, setting), best first; ties keep real_cv's order, alpha = 0 first."""
    scored = []
    for cfg in STATE["cands"]:
        for st, (s, ba, auc) in inner_scores(cfg, train).items():
            scored.append((s, ba, auc, cfg, st))
    scored.sort(key=lambda r: -r[0])
    return scored


def outer_fold(g: str) -> dict:
    S = STATE
    y, games, menu, dev = S["y"], S["games"], S["menu"], S["dev"]
    test = dev & (games == g)
    train = dev & (games != g)
    started = time.perf_counter()
    scored = choose(train)
    best = scored[0]
    best0 = next(r for r in scored if r[4][0] == 0)
    out = {"held_out": g, "seconds": None, "test": np.flatnonzero(test).tolist()}
    for key, (s, ba, auc, cfg, st) in (("self_training", best), ("alpha0", best0)):
        X = S["feats"][cfg["features"]]
        model, sel, lab = self_train(cfg, X[train], y[train], games[train], menu[train], S["ufeats"][cfg["features"]],
                                     S["uclips"].get(cfg["features"]), S["pkg"], st[0], st[1], S["rounds"],
                                     S["variant"])
        split = {}
        for p in sorted(set(S["pkg"].tolist())):
            m = sel & (S["pkg"] == p)
            if m.any():
                split[p] = {"calm": int((lab[m] == 0).sum()), "exciting": int((lab[m] == 1).sum())}
        out[key] = {"config": cfg, "alpha": st[0], "margin": st[1], "inner_score": s, "inner_ba": ba,
                    "inner_auc": auc, "p": sigmoid(model.margin(X[test])).tolist(),
                    "pseudo_labels": int(sel.sum()), "pseudo_calm": int((sel & (lab == 0)).sum()),
                    "pseudo_exciting": int((sel & (lab == 1)).sum()), "per_package": split}
    # for the record: the best inner score each setting reached in this fold
    out["best_inner_by_setting"] = {f"{a}/{m}": max(r[0] for r in scored if r[4] == (a, m)) for a, m in SETTINGS}
    out["seconds"] = time.perf_counter() - started
    return out


def paired_bootstrap(y, p1, p0, games, draws: int = 2000, seed: int = 0) -> dict:
    """95 % intervals of (self-training - alpha 0) in pooled BA and AUC, resampling whole games, the same
    draws for both (as real_cv.game_bootstrap draws them)."""
    rng = np.random.default_rng(seed)
    names = sorted(set(games.tolist()))
    idx = {g: np.flatnonzero(games == g) for g in names}
    dba, dauc = [], []
    for _ in range(draws):
        pick = np.concatenate([idx[g] for g in rng.choice(names, len(names))])
        if len(set(y[pick].tolist())) < 2:
            continue
        b1, a1 = real_cv.pooled(y[pick], p1[pick])
        b0, a0 = real_cv.pooled(y[pick], p0[pick])
        dba.append(b1 - b0)
        dauc.append(a1 - a0)
    q = lambda v: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))]  # noqa: E731
    return {"d_ba": q(dba), "d_auc": q(dauc), "p_d_ba_le_0": float(np.mean(np.array(dba) <= 0)),
            "p_d_auc_le_0": float(np.mean(np.array(dauc) <= 0)), "draws": len(dba)}


def run(args, log) -> int:
    tracks = [t for folder, table in zip(args.games, args.games_csv) for t in real_cv.game_tracks(folder, table)]
    rows = real_cv.load(tracks, ("original",), args.cache, args.jobs, log)["original"]
    ok = np.array(["features" in r for r in rows])
    for i in np.flatnonzero(~ok):
        log(f"left out {tracks[i].path}: {rows[i].get('error')}")
    tracks = [t for t, k in zip(tracks, ok) if k]
    rows = [r for r, k in zip(rows, ok) if k]
    y = np.array([t.label for t in tracks])
    games = np.array([t.game for t in tracks])
    menu = np.array([t.menu for t in tracks])
    dev = ~np.isin(games, real_cv.LOCKBOX)

    utracks = unlabelled_tracks(args.unlabelled, args.unlabelled_csv)
    ufiles = [real_cv.cache_file(args.cache, u.path, "original") for u in utracks]
    urows = cached_map(real_cv.compute, [(u.path, "original") for u in utracks], ufiles, args.cache, args.jobs, log,
                       "unlabelled descriptors (original)")
    uok = np.array(["features" in r for r in urows])
    if args.variant == "agree":
        cfiles = [real_cv.cache_file(args.cache, u.path, "original+clips") for u in utracks]
        crows = cached_map(compute_clips, [(u.path, "original+clips") for u in utracks], cfiles, args.cache,
                           args.jobs, log, "unlabelled descriptors (each clip alone)")
        uok &= np.array(["clips" in r and len(r["clips"]) == 5 for r in crows])
    for i in np.flatnonzero(~uok):
        log(f"left out unlabelled {utracks[i].path}: {urows[i].get('error')}")
    keep = np.flatnonzero(uok)
    utracks = [utracks[i] for i in keep]
    urows = [urows[i] for i in keep]
    pkg = np.array([u.package for u in utracks])

    sets = args.only.split(",") if args.only else list(real_cv.FEATURE_SETS)
    feats = {n: real_cv.matrix(rows, real_cv.FEATURE_SETS[n]) for n in sets}
    ufeats = {n: real_cv.matrix(urows, real_cv.FEATURE_SETS[n]) for n in sets}
    uclips = {}
    if args.variant == "agree":
        crows = [crows[i] for i in keep]
        uclips = {n: np.array([[[c[f] for f in real_cv.FEATURE_SETS[n]] for c in r["clips"]] for r in crows])
                  for n in sets}
    cands = [c for c in real_cv.configs() if c["features"] in sets]
    STATE.update(y=y, games=games, menu=menu, dev=dev, feats=feats, ufeats=ufeats, uclips=uclips, pkg=pkg,
                 cands=cands, rounds=args.rounds, variant=args.variant)
    log(f"{int(dev.sum())} development tracks in {len(set(games[dev]))} games; {len(utracks)} unlabelled tracks from "
        f"{len(set(pkg))} packages {dict(Counter(pkg.tolist()))}; {len(cands)} configurations x {len(SETTINGS)} "
        f"self-training settings; variant {args.variant}, rounds {args.rounds}")

    started = time.perf_counter()
    held = sorted(set(games[dev].tolist()))
    if args.jobs > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("fork")) as pool:
            folds = list(pool.map(outer_fold, held))
    else:
        folds = [outer_fold(g) for g in held]
    p1, p0 = np.full(len(y), np.nan), np.full(len(y), np.nan)
    for f in folds:
        p1[f["test"]] = f["self_training"]["p"]
        p0[f["test"]] = f["alpha0"]["p"]
    elapsed = time.perf_counter() - started

    yd, gd = y[dev], games[dev]
    result = {"variant": args.variant, "rounds": args.rounds, "seconds": elapsed,
              "unlabelled": {"tracks": len(utracks), "per_package": dict(Counter(pkg.tolist())),
                             "paths": [{"package": u.package, "path": u.path} for u in utracks]}}
    for key, p in (("self_training", p1), ("alpha0", p0)):
        ba, auc = real_cv.pooled(yd, p[dev])
        result[key] = {"ba": ba, "auc": auc, "intervals": real_cv.game_bootstrap(yd, p[dev], gd),
                       "per_game": real_cv.per_game(yd, p[dev], gd), "user": real_cv.user_rates(yd, p[dev])}
    result["paired_difference"] = paired_bootstrap(yd, p1[dev], p0[dev], gd)
    result["per_game_difference"] = []
    for r1, r0 in zip(result["self_training"]["per_game"], result["alpha0"]["per_game"]):
        row = {"game": r1["game"], "tracks": r1["tracks"], "calm": r1["calm"], "exciting": r1["exciting"],
               "acc": [r1["accuracy"], r0["accuracy"]]}
        if "ba" in r1:
            row.update(ba=[r1["ba"], r0["ba"]], auc=[r1["auc"], r0["auc"]])
        result["per_game_difference"].append(row)
    result["folds"] = [{k: v for k, v in f.items() if k != "test"} for f in folds]
    for f in result["folds"]:
        for k in ("self_training", "alpha0"):
            f[k] = {kk: vv for kk, vv in f[k].items() if kk != "p"}

    log(f"\nnested leave-one-game-out, variant {args.variant}, rounds {args.rounds} ({elapsed:.0f} s)")
    log("held out      | chosen with self-training (alpha, margin, pseudo-labels calm/exc) | alpha = 0 choice")
    for f in result["folds"]:
        s, b = f["self_training"], f["alpha0"]
        log(f"  {f['held_out']:12s}| a={s['alpha']} m={s['margin']} n={s['pseudo_labels']} "
            f"({s['pseudo_calm']}/{s['pseudo_exciting']}) {s['config']} inner {s['inner_score']:.3f} "
            f"| {b['config']} inner {b['inner_score']:.3f}")
        if s["per_package"]:
            log(f"              per package calm/exciting: "
                + ", ".join(f"{p} {v['calm']}/{v['exciting']}" for p, v in s["per_package"].items()))
    for key in ("self_training", "alpha0"):
        r = result[key]
        log(f"{key:14s}: BA {r['ba']:.3f} {np.round(r['intervals']['ba'], 3).tolist()}, "
            f"AUC {r['auc']:.3f} {np.round(r['intervals']['auc'], 3).tolist()}")
    d = result["paired_difference"]
    log(f"difference     : BA {result['self_training']['ba'] - result['alpha0']['ba']:+.3f} "
        f"{np.round(d['d_ba'], 3).tolist()}, AUC {result['self_training']['auc'] - result['alpha0']['auc']:+.3f} "
        f"{np.round(d['d_auc'], 3).tolist()} (paired game bootstrap)")
    log("per game (self-training, alpha 0):")
    for r in result["per_game_difference"]:
        log(f"  {r}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1, default=str))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="download and unpack the unlabelled packages, list their music")
    f.add_argument("--root", type=Path, default=Path.home() / "unlabelled")
    f.add_argument("--out", type=Path, default=HERE / "data" / "unlabelled" / "packages.csv")
    r = sub.add_parser("run", help="the nested study")
    r.add_argument("--games", type=Path, action="append", required=True)
    r.add_argument("--games-csv", type=Path, action="append", required=True)
    r.add_argument("--unlabelled", type=Path, default=Path.home() / "unlabelled" / "root")
    r.add_argument("--unlabelled-csv", type=Path, default=HERE / "data" / "unlabelled" / "packages.csv")
    r.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "moodtag" / "real_cv")
    r.add_argument("--jobs", type=int, default=1)
    r.add_argument("--only", help="comma-separated feature sets to consider (default: all)")
    r.add_argument("--variant", choices=("plain", "balanced", "agree"), default="plain")
    r.add_argument("--rounds", type=int, choices=(1, 2), default=1)
    r.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    if args.cmd == "fetch":
        return fetch(args.root, args.out, log)
    return run(args, log)


if __name__ == "__main__":
    sys.exit(main())
