"""Tumour geometry, BraTS 2024 labels and tissue intensities of one phantom case."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from gliomics.constants import LABELS, SEQUENCES
from gliomics.phantom.anatomy import CaseAnatomy, grid_affine, template_mask_at
from gliomics.phantom.latents import LOBE_CENTRES_MM, CaseLatents

#: Tissue means before site effects (WM in t1n = 1), per sequence in SEQUENCES order (t1n, t1c, t2w, t2f).
TISSUE_MEANS: dict[str, tuple[float, float, float, float]] = {
    "wm": (1.00, 1.00, 0.55, 0.65),
    "gm": (0.75, 0.78, 0.75, 0.85),
    "csf": (0.25, 0.25, 1.60, 0.15),
    "snfh": (0.70, 0.72, 1.15, 1.35),
    "et": (0.70, 1.50, 0.95, 1.10),
    "netc": (0.60, 0.62, 1.20, 1.15),
    "necrosis": (0.35, 0.38, 1.45, 0.75),
    "mismatch": (0.60, 0.62, 1.40, 0.70),
    "mismatch_rim": (0.60, 0.62, 1.40, 1.30),
    "rc": (0.25, 0.28, 1.55, 0.20),
    "calcification": (0.85, 0.85, 0.30, 0.35),
}
#: The cavity's rim enhances faintly on t1c (a gain over whatever tissue it crosses) and is not labelled ET.
RC_RIM_T1C_GAIN = 0.25
#: Tissues whose borders follow the margin sharpness; the others (cavity, calcified foci) stay sharp.
MARGIN_TISSUES = ("snfh", "et", "netc", "necrosis", "mismatch", "mismatch_rim")
SHARP_SIGMA_MM = 0.5
TEXTURE_SD = 0.04
TEXTURE_SMOOTH_MM = 1.0
CENTRE_JITTER_MM = 8.0
MIN_NECROSIS_FRACTION = 0.4
MIN_RESECTED_FRACTION = 0.3
RC_RADIUS_MM = (8.0, 20.0)


@dataclass
class RenderedCase:
    """Clean (site-free) images in SEQUENCES order, the label map and geometry facts for the truth table."""

    images: np.ndarray  # (4, X, Y, Z) float32
    seg: np.ndarray  # uint8
    centre_mni_mm: np.ndarray
    resected_fraction: float


def _tumour_centre(lat: CaseLatents, rng: np.random.Generator) -> np.ndarray:
    base = np.array(LOBE_CENTRES_MM[lat.lobe])
    if lat.side == "L":
        base[0] = -base[0]
    for _ in range(100):
        c = base + rng.uniform(-CENTRE_JITTER_MM, CENTRE_JITTER_MM, size=3)
        if template_mask_at(c[None])[0] > 0.5:
            return c
    return base  # lobe centres lie inside the brain


def _world_coords(shape: tuple[int, ...], spacing: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    aff = grid_affine(spacing)
    axes = [(aff[i, 3] + spacing * np.arange(n)).astype(np.float32) for i, n in enumerate(shape)]
    return np.meshgrid(*axes, indexing="ij", sparse=True)


def _surface_noise(u: list[np.ndarray], rng: np.random.Generator, n_terms: int = 6) -> np.ndarray:
    """A smooth function of direction in [-1, 1]: random low-frequency cosines over the unit sphere."""
    out = np.zeros(np.broadcast_shapes(*(x.shape for x in u)), dtype=np.float32)
    amps = rng.uniform(0.5, 1.0, n_terms)
    for a in amps:
        v = rng.normal(size=3)
        v /= np.linalg.norm(v)
        freq, phase = rng.uniform(1.0, 3.0), rng.uniform(0, 2 * np.pi)
        out += a * np.cos(freq * np.pi * (u[0] * v[0] + u[1] * v[1] + u[2] * v[2]) + phase)
    return out / amps.sum()


def _threshold_for_count(values: np.ndarray, count: int) -> float:
    """The value below which ``count`` of ``values`` lie (partial sort, no full sort)."""
    count = int(np.clip(count, 1, values.size))
    return float(np.partition(values, count - 1)[count - 1])


def render_case(lat: CaseLatents, anatomy: CaseAnatomy, spacing: float, rng: np.random.Generator) -> RenderedCase:
    """Place the tumour, derive the labels and render the four clean sequences."""
    shape = anatomy.brain.shape
    brain = anatomy.brain
    centre_mni = _tumour_centre(lat, rng)
    centre = anatomy.mni_to_world[:3, :3] @ centre_mni + anatomy.mni_to_world[:3, 3]
    rot = Rotation.random(random_state=rng).as_matrix()
    semi = lat.core_radius_mm * rng.uniform(0.7, 1.3, size=3)

    x, y, z = _world_coords(shape, spacing)
    rel = _relative_radius(x, y, z, centre, rot, semi, lat.margin_sharpness, rng)

    core = (rel < 1.0) & brain
    if not core.any():  # a tumour must show: keep at least the voxel at the centre
        core[tuple(np.round((np.linalg.inv(grid_affine(spacing)) @ np.r_[centre, 1])[:3]).astype(int))] = True
    seg, et, netc, et_threshold = _core_labels(lat, core, rel)
    _add_edema(seg, lat, anatomy, core, rel)
    tissue = _tumour_tissues(lat, seg, et, netc, rel, et_threshold, rng)
    if lat.calcification:
        tissue["calcification"] = _calcification(core, x, y, z, spacing, rng)

    resected = 0.0
    if lat.postop:
        rc, resected = _resection_cavity(x, y, z, centre, rot, semi, lat.core_radius_mm, core, brain, rng)
        rc_rim = ndimage.binary_dilation(rc, iterations=max(1, int(round(1.5 / spacing)))) & brain & ~rc & ~core
        seg[rc] = LABELS["RC"]
        for k in tissue:
            tissue[k] = tissue[k] & ~rc
        tissue["rc"] = rc
    else:
        rc_rim = None

    images = _render_intensities(tissue, anatomy, spacing, lat.margin_sharpness, rng)
    if rc_rim is not None:
        gain = ndimage.gaussian_filter(rc_rim.astype(np.float32), SHARP_SIGMA_MM / spacing)
        images[SEQUENCES.index("t1c")] *= 1.0 + RC_RIM_T1C_GAIN * gain
    seg[~brain] = 0
    return RenderedCase(images=images, seg=seg, centre_mni_mm=centre_mni, resected_fraction=resected)


def _relative_radius(x: np.ndarray, y: np.ndarray, z: np.ndarray, centre: np.ndarray, rot: np.ndarray,
                     semi: np.ndarray, sharpness: float, rng: np.random.Generator) -> np.ndarray:
    """Ellipsoidal radius of every voxel in the tumour frame over the irregular core surface: < 1 inside the core,
    1 on its surface."""
    d = (x - centre[0], y - centre[1], z - centre[2])
    q = [(d[0] * rot[0, i] + d[1] * rot[1, i] + d[2] * rot[2, i]) for i in range(3)]  # tumour frame
    rho = np.sqrt((q[0] / semi[0]) ** 2 + (q[1] / semi[1]) ** 2 + (q[2] / semi[2]) ** 2).astype(np.float32)
    norm = np.maximum(np.sqrt(q[0] ** 2 + q[1] ** 2 + q[2] ** 2), 1e-6)
    surface = 1.0 + 0.25 * (1.0 - sharpness) * _surface_noise([qi / norm for qi in q], rng)
    return rho / surface


def _core_labels(lat: CaseLatents, core: np.ndarray,
                 rel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Split the core into ET (its outer shell holding the enhancing fraction of its volume) and NETC; return the
    label map, the ET and NETC masks and the ``rel`` threshold between them."""
    core_rel = rel[core]
    seg = np.zeros(core.shape, dtype=np.uint8)
    et_threshold = 1.0
    if lat.enhancing_fraction >= 0.05:
        n_netc = int(round((1.0 - lat.enhancing_fraction) * core_rel.size))
        et_threshold = _threshold_for_count(core_rel, n_netc) if n_netc > 0 else -1.0
    et = core & (rel > et_threshold)
    netc = core & ~et
    seg[netc] = LABELS["NETC"]
    seg[et] = LABELS["ET"]
    return seg, et, netc, et_threshold


def _add_edema(seg: np.ndarray, lat: CaseLatents, anatomy: CaseAnatomy, core: np.ndarray, rel: np.ndarray) -> None:
    """Label SNFH in ``seg``: a shell around the core of volume edema_ratio × core volume, reaching further along
    white matter."""
    outside = anatomy.brain & ~core & (anatomy.csf < 0.5)
    dist_mm = (rel - 1.0) * lat.core_radius_mm * (1.5 - anatomy.wm)
    n_edema = int(round(lat.edema_ratio * core.sum()))
    cand = dist_mm[outside]
    if n_edema > 0 and cand.size:
        seg[outside & (dist_mm <= _threshold_for_count(cand, n_edema))] = LABELS["SNFH"]


def _tumour_tissues(lat: CaseLatents, seg: np.ndarray, et: np.ndarray, netc: np.ndarray, rel: np.ndarray,
                    et_threshold: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The tissue masks that set the intensities: SNFH, ET, and NETC split into a mismatch rim and core or into
    necrosis and the rest, as the latents say."""
    tissue: dict[str, np.ndarray] = {"snfh": seg == LABELS["SNFH"], "et": et}
    if lat.mismatch:
        rim = netc & (rel > et_threshold - 2.0 / lat.core_radius_mm)
        tissue["mismatch_rim"] = rim
        tissue["mismatch"] = netc & ~rim
    elif lat.necrosis and netc.any():
        frac = rng.uniform(MIN_NECROSIS_FRACTION, 0.8)
        netc_rel = rel[netc]
        nec = netc & (rel <= _threshold_for_count(netc_rel, int(round(frac * netc_rel.size))))
        tissue["necrosis"] = nec
        tissue["netc"] = netc & ~nec
    else:
        tissue["netc"] = netc
    return tissue


def _calcification(core: np.ndarray, x: np.ndarray, y: np.ndarray, z: np.ndarray, spacing: float,
                   rng: np.random.Generator) -> np.ndarray:
    """3-12 calcified spheres of radius 1-2 mm centred on random core voxels, cut to the core."""
    idx = np.argwhere(core)
    foci = np.zeros(core.shape, dtype=bool)
    for k in rng.choice(len(idx), size=int(rng.integers(3, 13)), replace=True):
        r_mm = rng.uniform(1.0, 2.0)
        c_w = grid_affine(spacing)[:3, :3] @ idx[k] + grid_affine(spacing)[:3, 3]
        foci |= (x - c_w[0]) ** 2 + (y - c_w[1]) ** 2 + (z - c_w[2]) ** 2 <= r_mm**2
    return foci & core


def _resection_cavity(x, y, z, centre, rot, semi, radius, core, brain, rng) -> tuple[np.ndarray, float]:
    """An ellipsoidal cavity of radius 8–20 mm over the core that removes at least 30 % of it."""
    rc_radius = rng.uniform(*RC_RADIUS_MM)
    rc_semi = semi * (rc_radius / radius)
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    offset = rng.uniform(0.5, 1.2) * radius  # start off-centre: a cavity beside the remaining tumour
    n_core = max(int(core.sum()), 1)
    for _ in range(12):
        c = centre + offset * direction
        d = (x - c[0], y - c[1], z - c[2])
        q = [(d[0] * rot[0, i] + d[1] * rot[1, i] + d[2] * rot[2, i]) / rc_semi[i] for i in range(3)]
        rc = (q[0] ** 2 + q[1] ** 2 + q[2] ** 2 <= 1.0) & brain
        frac = float((rc & core).sum()) / n_core
        if frac >= MIN_RESECTED_FRACTION:
            break
        offset *= 0.5
        if offset < 1.0:
            offset, rc_semi = 0.0, rc_semi * 1.1
    return rc, frac


def _render_intensities(tissue: dict[str, np.ndarray], anatomy: CaseAnatomy, spacing: float, sharpness: float,
                        rng: np.random.Generator) -> np.ndarray:
    """Mix tissue means by soft tissue fractions; tumour borders blurred by the margin sharpness."""
    shape = anatomy.brain.shape
    brain_f = anatomy.brain.astype(np.float32)
    union = np.zeros(shape, dtype=bool)
    for m in tissue.values():
        union |= m
    margin_sigma = (0.5 + 3.0 * (1.0 - sharpness)) / spacing
    pad = int(np.ceil(3 * margin_sigma)) + 2
    idx = np.argwhere(union)
    lo, hi = np.maximum(idx.min(0) - pad, 0), np.minimum(idx.max(0) + pad + 1, shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))

    fractions: dict[str, np.ndarray] = {}
    for name, mask in tissue.items():
        if not mask.any():
            continue
        sigma = margin_sigma if name in MARGIN_TISSUES else SHARP_SIGMA_MM / spacing
        fractions[name] = ndimage.gaussian_filter(mask[box].astype(np.float32), sigma) * brain_f[box]
    total = sum(fractions.values()) if fractions else np.zeros(brain_f[box].shape, np.float32)
    scale = np.where(total > 1.0, 1.0 / np.maximum(total, 1e-6), 1.0).astype(np.float32)
    normal_box = 1.0 - total * scale

    texture = rng.standard_normal(shape, dtype=np.float32)
    texture = ndimage.gaussian_filter(texture, TEXTURE_SMOOTH_MM / spacing)
    texture *= TEXTURE_SD / max(float(texture.std()), 1e-6)
    texture += 1.0

    images = np.empty((len(SEQUENCES),) + shape, dtype=np.float32)
    for s in range(len(SEQUENCES)):
        img = (anatomy.wm * TISSUE_MEANS["wm"][s] + anatomy.gm * TISSUE_MEANS["gm"][s]
               + anatomy.csf * TISSUE_MEANS["csf"][s])
        sub = img[box] * normal_box
        for name, f in fractions.items():
            sub += f * scale * TISSUE_MEANS[name][s]
        img[box] = sub
        img *= texture
        img *= brain_f
        images[s] = img
    return images
