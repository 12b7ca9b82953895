"""The data of a training run: its cohorts (one or several ``--data``/``--markers`` pairs), the patient-level
split, the marker class weights, the MONAI datasets and the training loader."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from gliomics.config import RunConfig
from gliomics.errors import ConfigError, InputError
from gliomics.runtime.distributed import DistInfo

logger = logging.getLogger(__name__)

#: A ``--markers`` value that pairs a cohort with no markers table (e.g. BraTS next to EGD).
NO_TABLE = frozenset({"none", "-"})


def data_sources(data: Path | str | Sequence[Path | str],
                 markers: Path | str | Sequence[Path | str] | None) -> list[tuple[Path, Path | None]]:
    """``(data, markers)`` pairs: one cohort, or several given as lists (one markers table per cohort, ``none`` for a
    cohort without one, or no tables at all)."""
    datas = [Path(data)] if isinstance(data, (str, Path)) else [Path(d) for d in data]
    tables = [] if markers is None else [markers] if isinstance(markers, (str, Path)) else list(markers)
    tables = [None if str(m).strip().lower() in NO_TABLE else Path(m) for m in tables]
    if not datas:
        raise ConfigError("no training data given")
    if tables and len(tables) != len(datas):
        raise ConfigError(f"{len(datas)} data sources but {len(tables)} markers tables: give one --markers per --data "
                          "(in the same order; 'none' for a cohort without a table), or none at all")
    return list(zip(datas, tables or [None] * len(datas), strict=True))


def prepare_data(cfg: RunConfig, sources: list[tuple[Path, Path | None]], out: Path, info: DistInfo, resume: bool):
    from gliomics.data.cohort import build_cohorts, supervision_counts
    from gliomics.data.splits import SPLITS_FILE, describe_splits, load_splits, make_splits, save_splits

    # every case must carry a segmentation, a whole-tumour mask or a known marker; the losses mask what it lacks
    cohort = build_cohorts(sources, layout=cfg.data.layout, require_supervision=True)
    # absolute paths in splits.json, so that `gliomics calibrate` finds the cohorts from any working folder
    data = [str(d.absolute()) for d, _ in sources]
    markers = [str(m.absolute()) if m else None for _, m in sources]
    splits_path = out / SPLITS_FILE
    save = None
    if resume and splits_path.is_file():
        splits = load_splits(splits_path)
    else:
        split_seed = cfg.train.seed if cfg.data.split_seed is None else cfg.data.split_seed
        splittable, train_only = _split_by_cohort(cfg, cohort, data)
        splits = make_splits(splittable, val_fraction=cfg.data.val_fraction, test_fraction=cfg.data.test_fraction,
                             holdout_sites=cfg.data.holdout_sites, seed=split_seed, folds=cfg.data.folds,
                             fold=cfg.data.fold)
        splits["train"] = sorted(splits["train"] + [c.case_id for c in train_only])
        if info.is_main:
            def save() -> None:
                save_splits(splits, splits_path, folds=cfg.data.folds, fold=cfg.data.fold,
                            val_fraction=cfg.data.val_fraction,
                            test_fraction=cfg.data.test_fraction, holdout_sites=cfg.data.holdout_sites,
                            seed=split_seed, data=data, markers=markers)
    by_id = {c.case_id: c for c in cohort}
    train = [by_id[c] for c in splits["train"] if c in by_id]
    val = [by_id[c] for c in splits["val"] if c in by_id]
    if not train:
        raise InputError(f"{', '.join(data)}: no training cases after splitting ({len(cohort)} cases found)")
    supervision = {"train": supervision_counts(train), "val": supervision_counts(val)}
    if info.is_main:
        logger.info("splits: %s", describe_splits(splits, cohort))
        for name, counts in supervision.items():
            logger.info("%s supervision: %d cases, %d with subregions, %d with a whole-tumour mask only, known "
                        "markers %s", name, counts["cases"], counts["subregions"], counts["wt_mask"],
                        counts["markers"])
    return train, val, save, supervision


def _split_by_cohort(cfg: RunConfig, cohort, data: list[str]):
    """The cases that the split may send to validation (those of ``data.val_cohorts``, or all) and those that only
    train.

    Raises:
        ConfigError: ``data.val_cohorts`` names a cohort that was not given, or ``train.cohort_shares`` does not
            give one share per cohort.
    """
    given = f"{len(data)} --data cohort(s) given ({', '.join(data)})"
    shares = cfg.train.cohort_shares
    if shares is not None and len(shares) != len(data):
        raise ConfigError(f"train.cohort_shares: {given}, but {len(shares)} shares; give one per cohort")
    if cfg.data.val_cohorts is None:
        return cohort, []
    bad = [p for p in cfg.data.val_cohorts if p >= len(data)]
    if bad:
        raise ConfigError(f"data.val_cohorts: {given}, but it names position(s) {bad} (0-based)")
    keep = set(cfg.data.val_cohorts)
    return [c for c in cohort if c.source in keep], [c for c in cohort if c.source not in keep]


def marker_pos_weight(cfg: RunConfig, train) -> dict[str, float]:
    """pos_weight per marker from the training split's prevalence, clipped to [0.1, 10] so that a marker with very
    few positives cannot dominate the loss."""
    from gliomics.losses import pos_weight_from_labels

    if cfg.loss.pos_weight is not None:
        return dict(cfg.loss.pos_weight)
    weights = pos_weight_from_labels(np.stack([c.marker_vector() for c in train]))
    return {m: float(np.clip(w, 0.1, 10.0)) for m, w in weights.items()}


def make_dataset(cases, transform, cache: bool):
    """Cases as a MONAI dataset; cached datasets run the deterministic transforms (and the gzip decoding) once."""
    from monai.data import CacheDataset, Dataset

    items = [{"case": c.case, "markers": c.marker_vector()} for c in cases]
    return CacheDataset(items, transform, cache_rate=1.0, num_workers=0, progress=False) if cache \
        else Dataset(items, transform)


def make_loader(cfg: RunConfig, train, info: DistInfo, seed: int):
    from monai.data import DataLoader
    from torch.utils.data import DistributedSampler, RandomSampler

    # a marker-only case has no tumour label: its patches centre anywhere in the head, which MONAI's sampler does
    # with a warning per patch
    warnings.filterwarnings("ignore", message=r"Num foregrounds 0, .*", category=UserWarning)

    from gliomics.data.transforms import train_transforms

    transform = train_transforms(cfg.train.patch_size, spacing=cfg.data.working_spacing,
                                 modality_dropout=cfg.train.modality_dropout, elastic_prob=cfg.train.elastic_prob,
                                 affine_prob=cfg.train.affine_prob, blur_noise_prob=cfg.train.blur_noise_prob,
                                 contrast_prob=cfg.train.contrast_prob, bias_field_max=cfg.train.bias_field_max,
                                 normalisation=cfg.data.normalisation, randomisation=cfg.train.randomisation,
                                 randomisation_ingredients=cfg.train.randomisation_ingredients)
    transform.set_random_state(seed=seed + info.rank)
    ds = make_dataset(train, transform, cfg.data.cache)
    weights = sampling_weights(cfg, train)
    if weights is not None:
        if info.enabled:
            raise ConfigError("train.subregion_share and train.cohort_shares are not supported under torchrun; "
                              "leave them unset")
        from torch.utils.data import WeightedRandomSampler

        # an epoch keeps its length (one patch per case on average), shared as the config asks
        sampler = WeightedRandomSampler(weights.tolist(), num_samples=len(train), replacement=True,
                                        generator=torch.Generator().manual_seed(seed))
    elif info.enabled:
        sampler = DistributedSampler(ds, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed)
    else:
        sampler = RandomSampler(ds, generator=torch.Generator().manual_seed(seed))
    return DataLoader(ds, batch_size=cfg.train.batch_size, sampler=sampler, num_workers=cfg.train.num_workers,
                      drop_last=len(ds) > cfg.train.batch_size, persistent_workers=cfg.train.num_workers > 0)


def sampling_weights(cfg: RunConfig, train) -> np.ndarray | None:
    """Per training case, the weight of drawing it: ``train.cohort_shares`` of the patches from each ``--data``
    cohort, or ``train.subregion_share`` of them from the cases with subregion labels; None where every case is
    drawn equally often (neither is set, or the cases are all of one kind)."""
    shares, share = cfg.train.cohort_shares, cfg.train.subregion_share
    if shares is not None and share is not None:
        raise ConfigError("train.cohort_shares and train.subregion_share both set: give one of them")
    if shares is not None:
        source = np.array([c.source for c in train])
        counts = np.bincount(source, minlength=len(shares))
        present = [k for k in range(len(shares)) if counts[k]]
        total = sum(shares[k] for k in present)
        return np.array([shares[k] / total / counts[k] for k in source])
    with_sub = np.array([c.has_subregions for c in train])
    if share is None or not 0 < with_sub.sum() < len(train):
        return None
    return np.where(with_sub, share / with_sub.sum(), (1.0 - share) / (~with_sub).sum())


def _random_states(transform) -> list[np.random.RandomState]:
    """Every RandomState a transform chain draws from, each once: those of nested chains, of wrappers and of the
    array transforms and grids inside MONAI's dictionary transforms (``RandAffined.rand_affine.rand_affine_grid``)."""
    from monai.transforms import Randomizable, Transform

    found: dict[int, np.random.RandomState] = {}
    seen: set[int] = set()
    stack = [transform]
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        if isinstance(getattr(t, "R", None), np.random.RandomState):
            found.setdefault(id(t.R), t.R)
        for value in vars(t).values():
            items = value if isinstance(value, (list, tuple)) else [value]
            stack.extend(v for v in items if isinstance(v, (Randomizable, Transform)))
    return list(found.values())  # the walk's order: the same for the same config


def loader_random_state(loader) -> dict:
    """The training loader's random state (its sampler's generator and each augmentation's RandomState), as
    weights_only-safe tensors for a checkpoint."""
    states = []
    for r in _random_states(loader.dataset.transform):
        name, keys, pos, has_gauss, cached = r.get_state()
        states.append({"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                       "cached": float(cached)})
    generator = getattr(loader.sampler, "generator", None)
    return {"sampler": generator.get_state() if generator is not None else None, "transforms": states}


def set_loader_random_state(loader, state: dict) -> None:
    """Restore what :func:`loader_random_state` captured (a checkpoint of the same run's config).

    Raises:
        CheckpointError: The saved state does not fit this loader.
    """
    from gliomics.errors import CheckpointError

    randoms = _random_states(loader.dataset.transform)
    saved = state.get("transforms", [])
    if len(saved) != len(randoms):
        raise CheckpointError(f"the checkpoint holds {len(saved)} augmentation random states, the run has "
                              f"{len(randoms)}: it was written by another version")
    for r, s in zip(randoms, saved):
        r.set_state(("MT19937", s["keys"].numpy().astype(np.uint32), s["pos"], s["has_gauss"], s["cached"]))
    generator = getattr(loader.sampler, "generator", None)
    if generator is not None and state.get("sampler") is not None:
        generator.set_state(state["sampler"])
