"""Stage: the labelled synthetic set. Generate digits per class, let the teacher label
them, keep the confident ones, and save everything in MNIST's own idx format.

Labels: by default the stored label is the teacher's argmax (what the thesis' text
describes); ``label_mode='requested'`` keeps the class that was asked of the diffusion
model (what the thesis' code did) so the two can be compared.

A set can be made as shards (:func:`build_shard`, :func:`merge_shards`): one per torchrun rank
(:mod:`kr_utils.distributed`) or per worker process on a CPU (:func:`kr_utils.pipeline.synthetic_set`).
"""
from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass
import io
import json
import math
from pathlib import Path

import numpy as np
import torch

from .config import SamplerConfig, SynthConfig
from .data import read_images_labels, to_model_range, to_uint8, write_idx
from .diffusion import generate
from .live import progress as progress_bar
from .models import predict_logits
from .store import atomic_write_bytes, atomic_write_text
from .thesis import RECIPE

IMAGES_FILE = "train-images-synthetic-idx3-ubyte.gz"
LABELS_FILE = "train-labels-synthetic-idx1-ubyte.gz"


class SyntheticSetError(RuntimeError):
    """The quotas could not be filled above the threshold floor."""


def draw(model, sampler, labels: torch.Tensor, guidance_w: float, generator: torch.Generator,
         x_T_scale: float = 1.0) -> torch.Tensor:
    """Images in [-1, 1] of the classes ``labels``: the diffusion model's chain run by
    ``sampler`` (:func:`kr_utils.diffusion.generate`), or, with ``sampler=None``, one pass of a
    generator of :mod:`kr_utils.generators` (``model.sample(labels, generator)``: a VAE's
    decoder or a GAN's generator, which have no guidance and no chain)."""
    if sampler is None:
        if not hasattr(model, "sample"):
            raise TypeError(f"sampler=None needs a one-pass generator with .sample(labels, generator), "
                            f"got a {type(model).__name__}")
        return model.sample(labels, generator)
    return generate(model, sampler, labels, guidance_w, generator, x_T_scale=x_T_scale)


def label_with_teacher(teacher, images_uint8: np.ndarray, device) -> torch.Tensor:
    """Teacher logits for stored (uint8) digits: the teacher sees exactly what the
    student will see, after the same quantisation and the same [-1, 1] mapping."""
    return predict_logits(teacher, to_model_range(images_uint8), device=device)


@dataclass(frozen=True)
class DigitSource:
    """Where synthetic digits come from and who reads them: the generator ``model``, the
    ``sampler`` that runs its chain (None: a one-pass generator, :func:`draw`), and the
    ``teacher`` whose logits label and filter what it draws."""

    model: object
    sampler: object
    teacher: object


def draw_labelled(source: DigitSource, requested, sampling: SamplerConfig, *, seed: int, device,
                  progress: bool = True, postprocess=None) -> dict:
    """Digits of the classes ``requested`` drawn from ``source`` (:class:`DigitSource`; the
    guidance weight, starting-noise scale and batch size of ``sampling``), every one kept,
    stored as uint8, with the teacher's logits: an unfiltered pool that thresholds can be
    applied to afterwards. ``postprocess`` (uint8 images -> uint8 images) runs before the
    teacher sees them."""
    model, sampler, teacher = source.model, source.sampler, source.teacher
    gen = torch.Generator(device=torch.device(device).type if torch.device(device).type == "cuda" else "cpu")
    gen.manual_seed(seed)
    requested = np.asarray(requested)
    images, logits = [], []
    bar = progress_bar(total=len(requested), desc="drawing", disable=not progress, mininterval=2)
    for chunk in np.array_split(requested, max(1, math.ceil(len(requested) / sampling.batch_size))):
        imgs = to_uint8(draw(model, sampler, torch.as_tensor(chunk, dtype=torch.long), sampling.guidance_w, gen,
                             x_T_scale=sampling.x_T_scale))
        if postprocess is not None:
            imgs = postprocess(imgs)
        images.append(imgs)
        logits.append(label_with_teacher(teacher, imgs, device).numpy())
        bar.update(len(chunk))
    bar.close()
    return {"images": np.concatenate(images), "requested": requested, "logits": np.concatenate(logits)}


def force_black(images_uint8) -> np.ndarray:
    """The thesis' code's last step of sampling: every pixel below the middle of the range
    (model range < 0) set to black, ``torch.where(x < 0, -1, x)``."""
    images = np.asarray(images_uint8)
    return np.where(images < 128, 0, images).astype(np.uint8)


THESIS_BATCH = RECIPE.set_batch  # generate_balanced_dataset's batch: the unit its threshold rule counts in


def thesis_code_set(source: DigitSource, sampling: SamplerConfig, *, per_class: int, threshold: float, seed: int,
                    device, max_rounds: int = 20, black: bool = True) -> dict:
    """The synthetic set as the thesis' code built it (``generate_balanced_dataset``): digits of
    each class requested until ``per_class`` of each reach teacher confidence ``threshold``,
    each forced to a black background (:func:`force_black`) before the teacher sees it, and
    labelled by the **requested** class. As its code did, the digits are judged in batches of
    :data:`THESIS_BATCH` requested in class order, and a batch that keeps nothing lowers the
    threshold by 0.01, down to ``RECIPE.threshold_floor``. Unlike its code, which asked each batch
    for exactly what was still missing, each round here draws 1.25 times what is still missing,
    in whole batches (the classes still short cycled to fill the last), so the threshold may
    drop along another path. ``source``: the U-Net, its
    chain (:func:`kr_utils.studies.thesis_code_sampler`, with ``sampling``) and the teacher;
    ``black=False`` forces nothing
    (another sampler in its place, :mod:`kr_utils.ablation`). Returns images, labels, logits,
    requested, ``generated``, ``acceptance_rate`` (kept of drawn: the oversampling caps it),
    ``pass_rate`` (the share of drawn digits at the threshold of their batch) and the
    ``final_threshold``; raises :class:`SyntheticSetError` naming the short classes after
    ``max_rounds``."""
    k = source.model.null_class  # the dataset's number of classes
    counts, keep_img, keep_logit, keep_label, generated, passed = np.zeros(k, int), [], [], [], 0, 0
    floor = min(RECIPE.threshold_floor, threshold)  # its code's max(thr - 0.01, 0.5)
    for r in range(max_rounds):
        short = per_class - counts
        if not short.any():
            break
        requested = np.repeat(np.arange(k), np.ceil(short * 1.25).astype(int))
        pad = -len(requested) % THESIS_BATCH
        requested = np.sort(np.concatenate([requested, np.resize(np.flatnonzero(short > 0), pad)]), kind="stable")
        pool = draw_labelled(source, requested, sampling, seed=seed + 1000 * r, device=device,
                             postprocess=force_black if black else None)
        generated += len(requested)
        conf = torch.from_numpy(pool["logits"]).float().softmax(1).max(1).values.numpy()
        for start in range(0, len(requested), THESIS_BATCH):
            kept_here = 0
            for i in range(start, min(start + THESIS_BATCH, len(requested))):
                c = requested[i]
                passed += int(conf[i] >= threshold)
                if conf[i] >= threshold and counts[c] < per_class:
                    keep_img.append(pool["images"][i]); keep_logit.append(pool["logits"][i]); keep_label.append(c)
                    counts[c] += 1
                    kept_here += 1
            if kept_here == 0:
                threshold = max(floor, round(threshold - 0.01, 4))
    if (counts < per_class).any():
        raise SyntheticSetError(f"the thesis' code's set: after {max_rounds} rounds, classes "
                                f"{np.flatnonzero(counts < per_class).tolist()} have {counts.tolist()} of {per_class} "
                                f"digits at confidence >= {threshold}")
    labels = np.asarray(keep_label)
    order = np.argsort(labels, kind="stable")
    return {"images": np.stack(keep_img)[order], "labels": labels[order], "logits": np.stack(keep_logit)[order],
            "requested": labels[order], "generated": generated, "acceptance_rate": k * per_class / generated,
            "pass_rate": passed / generated, "final_threshold": threshold}


def build_synthetic_set(source: DigitSource, config: SynthConfig, sampling: SamplerConfig, *, seed: int = 0,
                        device="cpu", progress: bool = True, budget: int | None = None) -> dict:
    """Fill ``config.per_class`` digits of each class with teacher confidence >= ``config.threshold``
    (a :class:`kr_utils.config.SynthConfig`), drawn from ``source`` (:class:`DigitSource`) with
    the guidance weight, starting-noise scale and batch size of ``sampling``; a source without a
    sampler: a one-pass generator of :mod:`kr_utils.generators` (:func:`draw`; only its batch
    size counts).

    Each round generates for the classes still short (``oversample`` x what is missing).
    When a round keeps nothing, the threshold drops by 0.01 (the thesis' 1%) down to
    ``threshold_floor``; below it, or after ``max_rounds``, a :class:`SyntheticSetError`
    lists the per-class counts. ``mode='unconditional'`` samples with the null class
    (w = 0) and keeps ``10 * per_class`` confident digits whatever their class.
    ``label_mode``: the teacher's argmax, or the ``requested`` class (the thesis' code).
    ``budget``: generate at most this many digits and return what was kept, even if the
    quotas are not full (``result['complete']`` says which); the degradation study uses it
    so that a poor checkpoint costs the same time as a good one.
    """
    if budget is not None and budget < 1:
        raise ValueError(f"budget must be a positive number of digits, got {budget}")
    model, sampler, teacher = source.model, source.sampler, source.teacher
    per_class, threshold, threshold_floor = config.per_class, config.threshold, config.threshold_floor
    label_mode, mode, oversample, max_rounds = config.label_mode, config.mode, config.oversample, config.max_rounds
    guidance_w, x_T_scale, batch_size = sampling.guidance_w, sampling.x_T_scale, sampling.batch_size
    gen = torch.Generator(device=torch.device(device).type if torch.device(device).type == "cuda" else "cpu")
    gen.manual_seed(seed)
    k = model.null_class  # the classes the model draws: the dataset's (the null class is the last + 1)
    total = k * per_class
    counts = np.zeros(k, dtype=int)
    kept = {k: [] for k in ("images", "labels", "requested", "logits")}
    log = {k: [] for k in ("requested", "logits", "round")}  # every generated digit
    thr, thresholds, rounds = threshold, [], 0
    bar = progress_bar(total=total, desc="synthetic set", disable=not progress, mininterval=2)
    generated = 0
    while counts.sum() < total:
        if budget is not None and generated >= budget:
            break
        if rounds >= max_rounds:
            raise SyntheticSetError(f"gave up after {max_rounds} rounds at threshold {thr:.2f}; "
                                    f"per-class counts {counts.tolist()} of {per_class}")
        rounds += 1
        thresholds.append(thr)
        if mode == "balanced":
            need = np.maximum(per_class - counts, 0)
            req = np.repeat(np.arange(k), np.ceil(need * oversample).astype(int))
        else:
            req = np.full(int(math.ceil((total - counts.sum()) * oversample)), -1)
        if budget is not None:
            req = req[np.random.default_rng(seed + rounds).permutation(len(req))[: budget - generated]]
            req.sort()
        generated += len(req)
        kept_this_round = 0
        for chunk in np.array_split(req, max(1, math.ceil(len(req) / batch_size))):
            y = torch.as_tensor(chunk, dtype=torch.long)
            y_model = torch.where(y < 0, torch.full_like(y, model.null_class), y)
            w = 0.0 if mode == "unconditional" else guidance_w
            imgs = to_uint8(draw(model, sampler, y_model, w, gen, x_T_scale=x_T_scale))
            logits = label_with_teacher(teacher, imgs, device)
            conf, pred = logits.softmax(1).max(1)
            log["requested"].append(chunk); log["logits"].append(logits.numpy()); log["round"].append(
                np.full(len(chunk), rounds))
            for i in np.flatnonzero(conf.numpy() >= thr):
                label = int(pred[i]) if label_mode == "teacher" else int(chunk[i])
                cap = per_class if mode == "balanced" else total
                if (counts[label] if mode == "balanced" else counts.sum()) >= cap:
                    continue
                counts[label] += 1
                kept_this_round += 1
                kept["images"].append(imgs[i]); kept["labels"].append(label)
                kept["requested"].append(int(chunk[i])); kept["logits"].append(logits[i].numpy())
                bar.update(1)
        if kept_this_round == 0 and counts.sum() < total and budget is None:
            if thr - 0.01 < threshold_floor - 1e-9:
                raise SyntheticSetError(
                    f"no digit reached confidence {thr:.2f} in round {rounds}, and lowering it would pass "
                    f"the floor {threshold_floor}; per-class counts {counts.tolist()} of {per_class}")
            thr = round(thr - 0.01, 4)
    bar.close()
    logits_all = np.concatenate(log["logits"])
    req_all = np.concatenate(log["requested"])
    conf_all = torch.as_tensor(logits_all).softmax(1).max(1).values.numpy()
    order = np.argsort(np.array(kept["labels"]), kind="stable")  # class-sorted, reproducible
    if not kept["images"]:
        raise SyntheticSetError(f"no generated digit reached confidence {thr:.2f} within the budget of {budget}")
    result = {
        "complete": bool(counts.sum() >= total),
        "images": np.stack(kept["images"])[order], "labels": np.array(kept["labels"], dtype=np.uint8)[order],
        "requested": np.array(kept["requested"])[order], "logits": np.stack(kept["logits"])[order],
        "generated_requested": req_all, "generated_logits": logits_all,
        "thresholds": thresholds, "final_threshold": thr, "rounds": rounds,
        "generated": int(len(req_all)), "threshold": threshold, "label_mode": label_mode, "mode": mode,
    }
    result["acceptance_rate"] = float((conf_all >= thr).mean())
    # how often the teacher's argmax is the class that was asked for (in either label mode)
    result["agreement"] = (float((result["logits"].argmax(1) == result["requested"]).mean())
                           if mode == "balanced" else None)
    return result


# ------------------------------------------------------------------------------- shards
# The set made as several shards (one per torchrun rank, or per worker process of a CPU):
# rank r of R draws its own disjoint slice of every class quota with its own seed, and the
# merged shards are byte for byte the set that the same shards drawn one after another make.


def shard_quota(per_class: int, rank: int, world: int) -> int:
    """Digits per class that rank ``rank`` of ``world`` generates: ``per_class`` split as evenly as
    possible, the first ``per_class % world`` ranks one more."""
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank must be in [0, world) with world >= 1, got rank={rank}, world={world}")
    return per_class // world + (1 if rank < per_class % world else 0)


def shard_seed(seed: int, rank: int) -> int:
    """The generator seed of shard ``rank``: distinct per rank, the same in any process layout."""
    return seed * 1_000_003 + rank


def build_shard(source: DigitSource, config: SynthConfig, sampling, *, seed: int, rank: int, world: int,
                device, progress: bool = True) -> dict | None:
    """Shard ``rank`` of the synthetic set: :func:`build_synthetic_set` for its
    quota of every class, with its own seed (None when its quota is 0)."""
    quota = shard_quota(config.per_class, rank, world)
    if quota == 0:
        return None
    return build_synthetic_set(source, dataclasses.replace(config, per_class=quota), sampling,
                                     seed=shard_seed(seed, rank), device=device, progress=progress)


def merge_shards(shards: list[dict | None]) -> dict:
    """One set from the shards (in rank order): the kept digits class by class, each class in
    rank order; the generation log concatenated; counts summed; thresholds and rates recomputed."""
    shards = [s for s in shards if s is not None]
    if not shards:
        raise ValueError("no shard to merge")
    cat = lambda key: np.concatenate([s[key] for s in shards])  # noqa: E731
    labels = cat("labels")
    order = np.argsort(labels, kind="stable")  # class-sorted, ties in rank order
    merged = {k: cat(k)[order] for k in ("images", "labels", "requested", "logits")}
    merged.update(generated_requested=cat("generated_requested"), generated_logits=cat("generated_logits"),
                  generated=int(sum(s["generated"] for s in shards)), rounds=max(s["rounds"] for s in shards),
                  thresholds=[t for s in shards for t in s["thresholds"]],
                  final_threshold=min(s["final_threshold"] for s in shards),
                  complete=all(s["complete"] for s in shards), threshold=shards[0]["threshold"],
                  label_mode=shards[0]["label_mode"], mode=shards[0]["mode"])
    conf = torch.as_tensor(merged["generated_logits"]).softmax(1).max(1).values.numpy()
    merged["acceptance_rate"] = float((conf >= merged["final_threshold"]).mean())
    merged["agreement"] = (float((merged["logits"].argmax(1) == merged["requested"]).mean())
                           if merged["mode"] == "balanced" else None)
    return merged


def build_sharded_set(source: DigitSource, config: SynthConfig, sampling, *, seed: int, world: int, device,
                      progress: bool = True) -> dict:
    """The set that ``world`` ranks generate, made by one process: every shard in turn, merged."""
    return merge_shards([build_shard(source, config, sampling, seed=seed, rank=r, world=world,
                                     device=device, progress=progress) for r in range(world)])


BLACK_BELOW = 16.0  # a mean corner value under this (of 255) reads as a black background


def background_level(images_uint8) -> float:
    """The background of ``images_uint8`` (..., H, W; 0-255): the mean of their top-left and
    bottom-right 3x3 corners, where a centred digit leaves no ink."""
    x = np.asarray(images_uint8, dtype=np.float64)
    return float(np.concatenate([x[..., :3, :3], x[..., -3:, -3:]], -1).mean())


# display labels of :func:`confidence_table`'s columns (the csv and the metrics keep the ids)
CONFIDENCE_LABELS = {"generated": "generated", "conf_mean": "mean confidence", "conf_std": "confidence std",
                     "frac_above_threshold": "share at or above the threshold",
                     "teacher_agrees": "teacher's class = requested", "kept": "kept"}


def confidence_table(result: dict) -> list[dict]:
    """Per class (requested class; teacher's class in unconditional mode) over every
    generated digit: confidence mean/std, fraction >= threshold, agreement with the request
    (:data:`CONFIDENCE_LABELS` names the columns for a reader)."""
    logits = torch.as_tensor(result["generated_logits"])
    conf, pred = logits.softmax(1).max(1)
    conf, pred = conf.numpy(), pred.numpy()
    req = result["generated_requested"]
    group = pred if result["mode"] == "unconditional" else req
    rows = []
    for c in range(logits.shape[1]):
        m = group == c
        rows.append({"class": c, "generated": int(m.sum()),
                     "conf_mean": float(conf[m].mean()) if m.any() else float("nan"),
                     "conf_std": float(conf[m].std()) if m.any() else float("nan"),
                     "frac_above_threshold": float((conf[m] >= result["threshold"]).mean()) if m.any() else float("nan"),
                     "teacher_agrees": float((pred[m] == c).mean()) if m.any() else float("nan"),
                     "kept": int((result["labels"] == c).sum())})
    return rows


def cached_summary(folder, key: str) -> dict | None:
    """The summary of the set in ``folder`` if it was built from inputs with this key and
    its files read back consistently, else None (then the set is rebuilt)."""
    path = Path(folder) / "summary.json"
    if not path.exists() or json.loads(path.read_text()).get("inputs_key") != key:
        return None
    try:
        return load_synthetic_set(folder)["summary"]
    except (OSError, ValueError):
        return None


def save_synthetic_set(folder, result: dict, key: str | None = None, extra: dict | None = None) -> dict:
    """Write the set as MNIST idx .gz files plus the teacher's outputs and a CSV of
    per-class confidence. Returns the summary written to ``summary.json`` (with the
    ``inputs_key`` of :func:`kr_utils.store.fingerprint` and any ``extra`` fields)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / IMAGES_FILE, result["images"])
    write_idx(folder / LABELS_FILE, result["labels"])
    probs = torch.as_tensor(result["logits"]).softmax(1).numpy().astype(np.float32)
    for name, arr in (("teacher_probs.npy", probs), ("teacher_logits.npy", result["logits"].astype(np.float32)),
                      ("requested.npy", result["requested"].astype(np.int64))):
        buf = io.BytesIO(); np.save(buf, arr); atomic_write_bytes(folder / name, buf.getvalue())
    rows = confidence_table(result)
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(rows[0]))
    w.writeheader(); w.writerows(rows)
    atomic_write_text(folder / "confidence_per_class.csv", out.getvalue())
    summary = {k: result[k] for k in ("generated", "threshold", "final_threshold", "rounds", "acceptance_rate",
                                       "agreement", "label_mode", "mode", "complete")}
    summary["size"] = int(len(result["labels"]))
    summary["class_counts"] = np.bincount(result["labels"], minlength=result["logits"].shape[1]).tolist()
    summary.update(extra or {}, inputs_key=key)
    atomic_write_text(folder / "summary.json", json.dumps(summary, indent=2))
    return summary


def load_synthetic_set(folder) -> dict:
    """Read a saved set back, checking that every file agrees on the number of digits."""
    folder = Path(folder)
    images, labels = read_images_labels(folder / IMAGES_FILE, folder / LABELS_FILE)
    logits = np.load(folder / "teacher_logits.npy")
    requested = np.load(folder / "requested.npy")
    if len(logits) != len(labels) or len(requested) != len(labels):
        raise ValueError(f"{folder}: {len(labels)} labels but {len(logits)} teacher outputs and "
                         f"{len(requested)} requested classes")
    return {"images": images, "labels": labels, "logits": logits, "requested": requested,
            "summary": json.loads((folder / "summary.json").read_text())}


def threshold_report(stored: dict, per_class) -> dict:
    """How a saved set (:func:`load_synthetic_set`) met its confidence threshold:
    ``accepted_at_threshold``, the share of every generated digit whose teacher confidence
    reached the configured ``threshold`` (the per-class table's ``frac_above_threshold``, a
    table with ``generated`` and ``frac_above_threshold`` columns, weighted by what each class
    generated); ``final_threshold``, where rounds that kept nothing lowered it to (the summary's
    ``acceptance_rate`` is measured there); and ``kept_below_threshold``, how many kept digits
    are under the configured threshold."""
    summary = stored["summary"]
    generated = np.asarray(per_class["generated"], dtype=float)
    share = np.asarray(per_class["frac_above_threshold"], dtype=float)
    conf = torch.as_tensor(stored["logits"]).float().softmax(1).max(1).values.numpy()
    return {"threshold": summary["threshold"], "final_threshold": summary["final_threshold"],
            "accepted_at_threshold": float(np.nansum(generated * share) / generated.sum()),
            "kept_below_threshold": int((conf < summary["threshold"]).sum())}


def export_torchvision(folder, root, dataset: str) -> Path:
    """The synthetic set of ``folder`` laid out as torchvision reads ``dataset`` (a name of
    :data:`kr_utils.data.DATASETS`): ``<root>/<MNIST|FashionMNIST>/raw/`` with the synthetic
    images and labels as the *training* split, and the real test split copied beside them, in
    the uncompressed idx files that ``torchvision.datasets.FashionMNIST(root, train=True)``
    opens (without downloading). Returns the ``raw`` folder."""
    from .data import SPLITS, load, source

    raw = Path(root) / source(dataset).torchvision / "raw"
    stored = load_synthetic_set(folder)
    test_images, test_labels = load(dataset, "test")
    for (img_name, lbl_name, _), (images, labels) in zip((SPLITS["train"], SPLITS["test"]),
                                                         ((stored["images"], stored["labels"]), (test_images, test_labels))):
        write_idx(raw / img_name, np.asarray(images, np.uint8))
        write_idx(raw / lbl_name, np.asarray(labels, np.uint8))
    return raw
