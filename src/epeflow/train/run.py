"""`epeflow train`: read the stage's inputs, resume or start the run, train, write model.pt.

I/O and bookkeeping live here (inputs, fingerprint, checkpoints, provenance) so that `loop.train_loop`
stays about training.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from epeflow.artifacts import checkpoints as ckpt
from epeflow.artifacts.init_state import read_init_state
from epeflow.artifacts.labels import read_labels_info
from epeflow.artifacts.manifest import read_content_digest
from epeflow.artifacts.matches import load_pairs
from epeflow.artifacts.model import write_model
from epeflow.artifacts.tensorboard import TrainingBoard
from epeflow.common.lpips import build_lpips
from epeflow.common.runtime import Runtime, process_group
from epeflow.common.taxonomy import NUM_MATERIALS, NUM_UNIVERSAL_CLASSES
from epeflow.common.vgg16 import build_vgg16
from epeflow.errors import EpeflowError, RunStopped
from epeflow.models.disc_inputs import IMAGE
from epeflow.models.gan_losses import GAN_LOSSES
from epeflow.provenance import any_random, marked_random, stamp
from epeflow.train.data import Frames, MatchedPairs, PairBatches, check_crop_sizes, load_frames, make_loader
from epeflow.train.init_from import check_settings, start_from
from epeflow.train.loop import (
    DISCRIMINATORS,
    Objectives,
    TrainState,
    build_state,
    discriminator_config,
    generator_config,
    train_loop,
)
from epeflow.train.settings import TrainSettings
from epeflow.train.stop import stop_on_signals
from epeflow.train.watch import Watch
from epeflow.weights import sha256_of, weights_sha256

log = logging.getLogger(__name__)


IMAGE_ONLY_GBUFFERS = {"channels": 0, "names": [], "mean": [], "std": [], "mode": "img"}  # model.pt's entry


def gbuffer_mode(store: Any) -> str:
    """The reference's name for the store's G-buffers: `fake`, or the channel group of real ones."""
    return "fake" if store.mode == "fake" else str(store.attrs.get("gbuffer_channels", "all"))


def open_gbuffers(path: Path | None, settings: TrainSettings, frames: int, manifest: Path) -> Any:
    """The G-buffer store training reads; None for an image-only generator (it reads no G-buffers)."""
    from epeflow.artifacts.gbuffers import GBufferStore

    if settings.image_only:
        return None
    if path is None:
        raise EpeflowError("training without G-buffers (no --gbuffers) is the image-only mode: set config key "
                           "`train.image_only: true` (implied for a source dataset with `gbuffers: none`)")
    store = GBufferStore(path)
    if len(store) != frames:
        raise EpeflowError(f"{path} has {len(store)} frames but {manifest} has {frames}; "
                           "rerun `epeflow gbuffers` for this manifest")
    return store


def frames_digest(frames: Frames) -> str:
    """Which frames, in which order, at which sizes: ids are relative paths, so moving a dataset is no change."""
    has_gt = np.array([p is not None for p in frames.gt_label_paths])
    return ckpt.array_digest(np.array(frames.ids, dtype=object), frames.sizes, has_gt)


@dataclass(frozen=True)
class TrainInputs:
    """The files training reads, all written by earlier stages."""

    src_manifest: Path  # manifest.parquet of the synthetic dataset
    dst_manifest: Path  # ... of the real dataset
    src_labels: Path  # robust label folders
    dst_labels: Path
    gbuffers: Path | None  # gbuffers.zarr of the synthetic dataset; None: image-only (`train.image_only`)
    matches: Path  # matches.parquet
    pair_weights: Path  # weights.parquet
    src_crops: Path  # crops.zarr of both datasets: the matches hold crop ids, the stores their boxes
    dst_crops: Path


def _read_init(settings: TrainSettings) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The init state of `train.init_from` (None without one) and what model.pt's provenance says of it."""
    if settings.init_from is None:
        return None, {}
    path = Path(settings.init_from)
    init = read_init_state(path)
    check_settings(init, settings, str(path))
    record = {"path": str(path), "sha256": sha256_of(path), "iteration": init["iteration"],
              "source": init.get("source", {}), "provenance": init["provenance"]}
    return init, record


def run_train(
    inputs: TrainInputs,
    checkpoints: Path,
    out: Path,
    spec: Mapping[str, Any],
    weights: Mapping[str, Any],
    allow_random: bool,
    tensorboard: Path | None = None,
) -> TrainState:
    """Train (or continue training) and write `out`, with TensorBoard event files in `tensorboard` if given.

    One process, or each of the `train.gpus` processes torchrun started (only rank 0 writes files). CPU threads
    are the caller's choice (torch.set_num_threads).
    """
    settings = TrainSettings.from_spec(dict(spec))
    runtime = Runtime.detect(settings.amp, settings.device)
    check_world(settings, runtime)
    with process_group(runtime), _logs_of_rank_0_only(runtime):
        return _train(inputs, checkpoints, out, settings, runtime, weights, allow_random, tensorboard)


def check_world(settings: TrainSettings, runtime: Runtime) -> None:
    """As many processes as `train.gpus` asks for, each with an equal share of the global batch."""
    if settings.gpus != runtime.world_size:
        raise EpeflowError(
            f"config key `train.gpus` is {settings.gpus} but this is one of {runtime.world_size} process(es); "
            f"start training as `torchrun --standalone --nproc-per-node {settings.gpus} --no-python epeflow train "
            "...` (the `train` rule does) or set `gpus` to match"
        )
    if settings.batch_size % runtime.world_size:
        raise EpeflowError(
            f"config key `train.batch_size` ({settings.batch_size}) is not a multiple of `train.gpus` "
            f"({settings.gpus}); every GPU trains on an equal share of the batch: change one of them"
        )


@contextlib.contextmanager
def _logs_of_rank_0_only(runtime: Runtime) -> Iterator[None]:
    """Other ranks log warnings and errors only, so a torchrun log reads like a one-process one."""
    logger, level = logging.getLogger("epeflow"), logging.getLogger("epeflow").level
    if not runtime.is_main:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _train(inputs: TrainInputs, checkpoints: Path, out: Path, settings: TrainSettings, runtime: Runtime,
           weights: Mapping[str, Any], allow_random: bool, tensorboard: Path | None) -> TrainState:
    src_manifest, dst_manifest, gbuffers = inputs.src_manifest, inputs.dst_manifest, inputs.gbuffers
    src_labels, dst_labels = inputs.src_labels, inputs.dst_labels
    from epeflow.train.data import WeightedPairSampler

    log.info("training on %s (amp: %s%s) for %d iterations", runtime.device, runtime.amp,
             f", {runtime.world_size} processes" if runtime.world_size > 1 else "", settings.iterations)

    pairs = load_pairs(inputs.matches, inputs.pair_weights, inputs.src_crops, inputs.dst_crops)
    src, _ = load_frames(src_manifest)
    dst, _ = load_frames(dst_manifest)
    store = open_gbuffers(gbuffers, settings, len(src.paths), src_manifest)
    gbuffer_info = IMAGE_ONLY_GBUFFERS if store is None else store.describe()
    crop_h, crop_w = check_crop_sizes(pairs, settings.crop_size)
    log.info("%d matched pairs, training crops %dx%d, batch %d", len(pairs), crop_h, crop_w, settings.batch_size)
    src_labels_info, dst_labels_info = read_labels_info(src_labels), read_labels_info(dst_labels)
    init, init_record = _read_init(settings)

    vgg, vgg_random = None, False  # a PatchGAN judges pixels: no VGG16 to build, load or run
    if any(name != IMAGE for name in DISCRIMINATORS[settings.discriminator].input_names):
        vgg, vgg_random = build_vgg16(weights.get("vgg16"), allow_random, padding="replicate")  # as the reference's
        vgg = runtime.prepare(vgg)
    lpips, lpips_random = build_lpips(weights, allow_random)
    lpips = runtime.prepare(lpips)
    upstream = {
        "gbuffers": store is not None and store.random_weights, "matches": marked_random(pairs.meta),
        "pair_weights": marked_random(pairs.weight_meta),
        "src_labels": src_labels_info["random_weights"], "dst_labels": dst_labels_info["random_weights"],
    }
    if init is not None:
        upstream["init_from"] = marked_random(init["provenance"])
    random_weights = any_random(vgg_random, lpips_random, *upstream.values())

    inputs = {
        "pairs": ckpt.array_digest(pairs.src_frame, pairs.src_box, pairs.dst_frame, pairs.dst_box, pairs.weight),
        "src_frames": frames_digest(src), "dst_frames": frames_digest(dst),
        "src_content": read_content_digest(src_manifest), "dst_content": read_content_digest(dst_manifest),
        "gbuffers": None if store is None else {**gbuffer_info, "content": store.content},
        "src_labels": src_labels_info, "dst_labels": dst_labels_info,
        # sha256 of the weight files used (None: random); LPIPS runs on a VGG16 trunk even without a VGG16 judge
        "pretrained": {name: weights_sha256(name, weights.get(name), allow_random) for name in ("vgg16", "lpips")},
    }
    if init is not None:
        inputs["init_from"] = {"sha256": init_record["sha256"]}
    fp = ckpt.fingerprint(settings.fingerprinted(), inputs)
    if runtime.is_main:  # the others wait: claiming may move files aside
        ckpt.lock(checkpoints)  # one training per checkpoint folder (an orphan of a killed Snakemake holds it)
        ckpt.claim(checkpoints, fp, {"settings": settings.fingerprinted(), "inputs": inputs})

    gen_config = generator_config(settings, "img" if store is None else gbuffer_mode(store),
                                  0 if store is None else store.channels, NUM_MATERIALS)
    num_labels = int(src_labels_info["num_classes"] or NUM_UNIVERSAL_CLASSES)
    disc_config = discriminator_config(settings, num_labels)
    min_size = getattr(disc_config, "min_input_size", 1)
    if min(crop_h, crop_w) < min_size:
        raise EpeflowError(
            f"config key `train.crop_size`: training crops of {crop_h}x{crop_w} px are smaller than the "
            f"{settings.discriminator} discriminator can judge ({min_size} px); use larger crops or "
            "`discriminator: ppde`"
        )
    state = build_state(settings, gen_config, disc_config, runtime)
    sampler = WeightedPairSampler(pairs.weight, settings.seed)
    resumed = ckpt.load_latest(checkpoints, fp, settings.iterations) if runtime.is_main else None
    runtime.barrier()  # rank 0 moved aside what no rank may resume from; now all read the same newest one
    if not runtime.is_main:
        resumed = ckpt.load_latest(checkpoints, fp, settings.iterations)
    if resumed is not None:
        state.load_state_dict(resumed)
        sampler.load_state_dict(resumed["sampler"])
        ckpt.set_rng_state(resumed["rng"])
    elif init is not None:
        start_from(init, state, str(src_labels), str(settings.init_from))
    init = None  # its tensors are in the networks and optimizers now

    batches = PairBatches(sampler, settings.batch_size, state.iteration, settings.iterations, runtime.shard)
    dataset = MatchedPairs(pairs, src, dst, src_labels, dst_labels, None if store is None else gbuffers,
                           settings.crop_size, settings.flip, settings.seed)
    loader = make_loader(dataset, batches, settings.num_workers, pin_memory=runtime.is_cuda)

    def save_checkpoint(s: TrainState) -> None:
        state_dict = {**s.state_dict(), "format": ckpt.CHECKPOINT_FORMAT, "fingerprint": fp,
                      "sampler": batches.state_before(s.iteration), "rng": ckpt.rng_state(),
                      "settings": settings.to_dict()}
        path = ckpt.save_checkpoint(checkpoints, state_dict, settings.keep_checkpoints)
        log.info("checkpoint %s", path)

    objectives = Objectives(perceptual=lpips, gan=GAN_LOSSES[settings.gan_loss](),
                            perceptual_weight=settings.perceptual_weight, gan_weight=settings.gan_weight,
                            reg_weight=settings.reg_weight)
    board = TrainingBoard(tensorboard, state.iteration) if tensorboard is not None and runtime.is_main else None
    watch = Watch(board, settings.image_every)
    try:
        with stop_on_signals() as stop:
            train_loop(state, loader, vgg, objectives, settings, runtime, save_checkpoint, stop, watch)
    finally:
        watch.close()
    if state.iteration < settings.iterations:
        resume = ckpt.checkpoint_path(checkpoints, state.iteration) if state.iteration else "the start"
        raise RunStopped(f"stopped on {stop.name} at iteration {state.iteration} of {settings.iterations}; rerun the "
                         f"same command to continue from {resume}")

    provenance = stamp(
        random_weights, vgg16_random=vgg_random, lpips_random=lpips_random,
        random_inputs=sorted(k for k, v in upstream.items() if v), fingerprint=fp, iterations=state.iteration,
        device=str(runtime.device), **({"init_from": init_record} if init_record else {}),
    )
    if runtime.is_main:
        write_model(out, state.generator_to_keep().state_dict(), state.generator.config.to_dict(), gbuffer_info,
                    settings.to_dict(), provenance, state.losses.final_history(state.iteration))
        log.info("wrote %s%s", out, " (random weights: not a real measurement)" if random_weights else "")
        ckpt.unlock(checkpoints)
    return state
