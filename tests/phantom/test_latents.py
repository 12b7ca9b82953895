"""Marker prevalences, latent distributions and the exact Bayes posterior of the phantom spec."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from gliomics.phantom.latents import bayes_posterior, sample_latents

N = 20_000


@pytest.fixture(scope="module")
def draws():
    rng = np.random.default_rng(12345)
    return [sample_latents(rng) for _ in range(N)]


def _within_binomial_ci(k: int, n: int, p: float, z: float = 4.0) -> bool:
    return abs(k / n - p) <= z * np.sqrt(p * (1 - p) / n)


def test_marker_prevalences_match_spec(draws):
    idh = np.array([d.idh for d in draws])
    codel = np.array([d.codel_1p19q for d in draws])
    tert = np.array([d.tert for d in draws])
    assert _within_binomial_ci(idh.sum(), N, 0.40)
    assert codel[idh == 0].sum() == 0  # codeletion only in IDH-mutant tumours
    assert _within_binomial_ci(codel[idh == 1].sum(), int(idh.sum()), 0.35)
    assert _within_binomial_ci(tert[idh == 0].sum(), int((idh == 0).sum()), 0.70)
    m = (idh == 1) & (codel == 1)
    assert _within_binomial_ci(tert[m].sum(), int(m.sum()), 0.95)
    m = (idh == 1) & (codel == 0)
    assert _within_binomial_ci(tert[m].sum(), int(m.sum()), 0.10)


def test_latents_follow_group_tables(draws):
    astro = [d for d in draws if d.group == "astro"]
    wt = [d for d in draws if d.group in ("wt_tm", "wt_tw")]
    assert _within_binomial_ci(sum(d.mismatch for d in astro), len(astro), 0.35)
    assert _within_binomial_ci(sum(d.mismatch for d in wt), len(wt), 0.03)
    wt_tm = [d for d in draws if d.group == "wt_tm"]
    assert _within_binomial_ci(sum(d.necrosis for d in wt_tm), len(wt_tm), 0.85)
    assert abs(np.mean([d.enhancing_fraction for d in wt_tm]) - 0.6) < 0.01  # Beta(6, 4) mean
    assert abs(np.median([d.edema_ratio for d in wt_tm]) - 2.0) < 0.06
    ages = np.array([d.age for d in draws])
    assert ages.min() >= 18 and ages.max() <= 85
    assert _within_binomial_ci(sum(d.sex == "M" for d in draws), N, 0.58)
    assert _within_binomial_ci(sum(d.postop for d in draws), N, 0.5)


def test_observed_labels_flip_two_percent(draws):
    flips = sum(d.observed["idh"] != d.idh for d in draws)
    assert _within_binomial_ci(flips, N, 0.02)


def _brute_force_posterior(lat) -> dict[str, float]:
    """Enumerate all eight marker combinations with the spec's tables written out independently."""
    lobes = ["frontal", "temporal", "parietal", "deep"]
    table = {  # group: lobe probs, e Beta, necrosis, mismatch, calcification, r Beta, edema median
        "wt_tm": ([.25, .35, .25, .15], (6, 4), .85, .03, .05, (4, 4), 2.0),
        "wt_tw": ([.25, .35, .25, .15], (4, 5), .55, .03, .05, (4, 4), 1.8),
        "astro": ([.45, .25, .15, .15], (2, 5), .20, .35, .10, (5, 3), 1.3),
        "oligo": ([.60, .15, .15, .10], (3, 5), .25, .05, .45, (3, 5), 1.2),
    }
    joint = {}
    for idh, codel, tert in itertools.product((0, 1), repeat=3):
        p = 0.4 if idh else 0.6
        if idh:
            p *= 0.35 if codel else 0.65
            pt = 0.95 if codel else 0.10
        else:
            if codel:
                continue
            pt = 0.70
        p *= pt if tert else 1 - pt
        g = ("oligo" if codel else "astro") if idh else ("wt_tm" if tert else "wt_tw")
        lp, eb, pn, pm, pc, rb, em = table[g]
        p *= lp[lobes.index(lat.lobe)]
        p *= stats.beta(*eb).pdf(lat.enhancing_fraction) * stats.beta(*rb).pdf(lat.margin_sharpness)
        p *= (pn if lat.necrosis else 1 - pn) * (pm if lat.mismatch else 1 - pm) * (pc if lat.calcification else 1 - pc)
        p *= stats.lognorm(s=0.5, scale=em).pdf(lat.edema_ratio)
        joint[(idh, codel, tert)] = p
    z = sum(joint.values())
    return {"idh": sum(v for k, v in joint.items() if k[0]) / z,
            "codel_1p19q": sum(v for k, v in joint.items() if k[1]) / z,
            "tert": sum(v for k, v in joint.items() if k[2]) / z}


def test_bayes_posterior_equals_brute_force(draws):
    for lat in draws[:200]:
        fast, slow = bayes_posterior(lat), _brute_force_posterior(lat)
        for m in fast:
            assert fast[m] == pytest.approx(slow[m], rel=1e-9, abs=1e-12)


def test_bayes_auc_matches_spec_monte_carlo(draws):
    sub = draws[:6000]
    post = [bayes_posterior(d) for d in sub]
    expected = {"idh": 0.949, "codel_1p19q": 0.928, "tert": 0.845}
    for m, ref in expected.items():
        auc = roc_auc_score([getattr(d, m) for d in sub], [p[m] for p in post])
        assert abs(auc - ref) < 0.015, (m, auc)


def test_posterior_without_necrosis_marginalises_it(draws):
    lat = next(d for d in draws if d.necrosis)
    without = bayes_posterior(lat, unobserved=("necrosis",))
    # the same case with either necrosis value gives the same posterior once necrosis is unobserved
    flipped = {**lat.to_dict(), "necrosis": 0}
    assert bayes_posterior(flipped, unobserved=("necrosis",)) == pytest.approx(without)
    assert bayes_posterior(flipped) != pytest.approx(bayes_posterior(lat))
    # and seeing less can only lower the IDH AUC on average
    sub = draws[:3000]
    y = [d.idh for d in sub]
    full = roc_auc_score(y, [bayes_posterior(d)["idh"] for d in sub])
    blind = roc_auc_score(y, [bayes_posterior(d, unobserved=("necrosis",))["idh"] for d in sub])
    assert blind < full
    with pytest.raises(ValueError, match="unknown latents"):
        bayes_posterior(lat, unobserved=("age",))
