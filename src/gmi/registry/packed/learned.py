"""The learned parts of a packed state: the image-to-prompt ridge (from running sufficient
statistics) and the calibration (from a bounded sample of models), saved per state token."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import save

from gmi.encoders.base import l2_normalise
from gmi.registry.atomic import atomic_write
from gmi.registry.learning import fitted_or_none
from gmi.registry.packed.arrays import SLOT_COLUMNS, pairs_of, slot_arrays
from gmi.registry.packed.layout import LEARNED_DIR
from gmi.safetensors_io import load_with_metadata
from gmi.search.arrays import PackedArrays
from gmi.search.rules import padded
from gmi.settings import HubSettings
from gmi.spec.calibration import MAX_HELD_OUT, MIN_PER_MODEL, Calibration, held_out_distances
from gmi.spec.ridge import RidgeModel, RidgeStatistics

LEARNED_FORMAT = "3"


MAX_CALIBRATION_MODELS = 512  # calibration samples at most this many models: bounded cost


def fit_calibration(
    arrays: PackedArrays,
    image_to_prompt: RidgeModel | None,
    tau: float,
    scoring: str,
    seed: int = 0,
) -> Calibration:
    """Held-out genuine-match distances (gmi.spec.calibration) of a bounded sample: at most
    MAX_CALIBRATION_MODELS models, MAX_HELD_OUT images. Cost independent of the hub's size."""
    live = arrays.live_slots
    rng = np.random.default_rng(seed)
    chosen = (
        np.sort(rng.choice(live, MAX_CALIBRATION_MODELS, replace=False))
        if live.size > MAX_CALIBRATION_MODELS
        else live
    )
    stack, _ = padded(arrays, chosen, gram=scoring == "rkme")
    pair_counts = np.diff(arrays.pair_offsets)[chosen]
    rows = np.concatenate(
        [np.arange(arrays.pair_offsets[s], arrays.pair_offsets[s + 1]) for s in chosen]
    )
    features = np.asarray(arrays.pair_features)[rows]
    pair_model = np.repeat(np.arange(chosen.size), pair_counts)
    per_model = max(MIN_PER_MODEL, MAX_HELD_OUT // max(chosen.size, 1))
    held = []
    for m in range(chosen.size):
        mine = np.flatnonzero(pair_model == m)
        if mine.size > per_model:
            mine = np.sort(rng.choice(mine, per_model, replace=False))
        held.append(mine)
    picked = np.concatenate(held)
    predict = None
    if image_to_prompt is not None:  # every held-out image's prompt in one product
        predicted = np.zeros((features.shape[0], image_to_prompt.weights.shape[1]), np.float32)
        predicted[picked] = l2_normalise(image_to_prompt.predict(features[picked]))
        predict = predicted.__getitem__
    if arrays.space is not None:  # score where the points live; the ridge reads raw features
        queries = np.zeros((features.shape[0], arrays.dim), np.float32)  # r wide if compact
        queries[picked] = arrays.to_space(features[picked])
        features = queries
    distances = held_out_distances(stack, features, pair_model, picked, predict, tau, scoring)
    return Calibration(np.sort(distances))


def statistics_of(arrays: PackedArrays, slots: np.ndarray, d: int, e: int) -> RidgeStatistics:
    """Ridge sufficient statistics of these slots' pairs (one pass over their rows, in
    blocks of about 65,536 pairs)."""
    stats = RidgeStatistics.empty(d, e)
    counts = np.diff(arrays.pair_offsets)
    batch: list[int] = []
    size = 0
    for slot in np.asarray(slots, dtype=np.int64):  # full rebuilds only, not per query
        batch.append(int(slot))
        size += int(counts[slot])
        if size >= 65536:
            stats = stats.add(*pairs_of(arrays, np.array(batch)))
            batch, size = [], 0
    return stats.add(*pairs_of(arrays, np.array(batch, dtype=np.int64))) if batch else stats


def learned_path(home: Path, token: str) -> Path:
    return home / LEARNED_DIR / f"{token}.safetensors"


def load_learned(home: Path, token: str) -> tuple[RidgeStatistics, dict] | None:
    try:
        arrays, meta = load_with_metadata(learned_path(home, token))
        if meta.get("format") != LEARNED_FORMAT or meta.get("token") != token:
            return None
        part = {k.split("/", 1)[0] for k in arrays}
        if not {"stats", "calibration"} <= part:
            return None

        def group(prefix: str) -> dict[str, np.ndarray]:
            return {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith(prefix + "/")}

        learned: dict[str, RidgeModel | Calibration] = {
            "calibration": Calibration.from_arrays(group("calibration"))
        }
        if "image_to_prompt" in part:
            learned["image_to_prompt"] = RidgeModel.from_arrays(group("image_to_prompt"))
        return RidgeStatistics.from_arrays(group("stats")), learned
    except (OSError, SafetensorError, ValueError, KeyError, TypeError):
        return None


def save_learned(home: Path, token: str, stats: RidgeStatistics, learned: dict) -> None:
    arrays = {f"stats/{k}": v for k, v in stats.arrays().items()}
    for name, model in learned.items():
        arrays.update({f"{name}/{k}": np.asarray(v) for k, v in model.arrays().items()})
    (home / LEARNED_DIR).mkdir(exist_ok=True)
    atomic_write(
        learned_path(home, token),
        save(arrays, metadata={"format": LEARNED_FORMAT, "token": token}),
    )


def learn(
    arrays: PackedArrays,
    stats: RidgeStatistics,
    settings: HubSettings,
    *,
    all_live: bool = True,
) -> dict[str, RidgeModel | Calibration]:
    """The learned parts for a state: the ridge from its statistics (or, for a young hub with
    fewer pairs than dimensions and `arrays` holding all its live models, from the pairs: the
    thin SVD is cheaper than the d x d eigendecomposition and gives the same model), and the
    calibration on the models of `arrays` (a bounded sample)."""
    learned: dict[str, RidgeModel | Calibration] = {}
    ridge = None
    if all_live and arrays.feature_dim and 2 <= stats.n < arrays.feature_dim:
        ridge = fitted_or_none(
            "image-to-prompt ridge", lambda: RidgeModel.fit(*pairs_of(arrays, arrays.live_slots))
        )
    elif stats.n >= 2:
        ridge = fitted_or_none("image-to-prompt ridge", stats.solve)
    if ridge is not None:
        learned["image_to_prompt"] = ridge
    if arrays.live_slots.size:
        calibration = fitted_or_none(
            "calibration",
            lambda: fit_calibration(
                arrays, ridge if settings.interrogated else None, settings.tau, settings.scoring
            ),
        )
        if calibration is None and ridge is not None and settings.interrogated:
            calibration = fitted_or_none(  # the uniform-weight calibration, unlearned
                "calibration",
                lambda: fit_calibration(arrays, None, settings.tau, settings.scoring),
            )
        if calibration is not None:
            learned["calibration"] = calibration
    return learned


def calibration_sample(home, db, state, dims) -> tuple[PackedArrays, bool]:
    """The live models the calibration is computed on, and whether they are all of them: all
    up to MAX_CALIBRATION_MODELS, else that many drawn at random (by slot id, without reading
    the slot table whole), in slot order."""
    live_sql = f"SELECT {SLOT_COLUMNS} FROM packed_slots WHERE alive = 1 AND problem IS NULL"
    count = db.execute("SELECT COUNT(*) FROM packed_slots WHERE alive = 1 AND problem IS NULL")
    n_live = count.fetchone()[0]
    if n_live <= MAX_CALIBRATION_MODELS:
        rows = [tuple(r) for r in db.execute(live_sql + " ORDER BY slot")]
    else:
        low, high = db.execute("SELECT MIN(slot), MAX(slot) FROM packed_slots").fetchone()
        rng = np.random.default_rng(0)
        found: dict[int, tuple] = {}
        while len(found) < MAX_CALIBRATION_MODELS:
            ids = sorted({int(i) for i in rng.integers(low, high + 1, 2 * MAX_CALIBRATION_MODELS)})
            marks = ",".join("?" * len(ids))
            for row in db.execute(live_sql + f" AND slot IN ({marks})", ids):
                found.setdefault(row[0], tuple(row))
        rows = [found[k] for k in sorted(found)[:MAX_CALIBRATION_MODELS]]
    return slot_arrays(home, db, state, dims, rows), n_live <= MAX_CALIBRATION_MODELS
