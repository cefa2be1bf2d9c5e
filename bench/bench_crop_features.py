"""Issue 4: crop feature throughput (crops/s), ours (`features.crops.extract_crops`) vs collect_crops.py.

The reference (epe/matching/feature_based/collect_crops.py) loads one frame at a time (DataLoader
batch_size=1, one loader worker), cuts its 15 crops and runs them through VGG16 (no padding, relu5_3,
fp32) as one batch of 15, frame after frame. Ours decodes frames in DataLoader workers, regroups crops of
several frames into batches of `batch_size` (32) and, on a GPU, runs them in bf16 with channels_last;
features stream into a crops.zarr store.

Both sides get the same frames, the same crop boxes (`features.boxes.sample_boxes`; the reference draws
its positions with torch.randint, which does not change the cost) and the same VGG16 weights: random
ones, since pretrained weights cannot be downloaded here, and throughput does not depend on the weight
values. Same result: fp32 on CPU must agree to float16 rounding; bf16 on GPU to cosine >= 0.99 a crop.
On a GPU we also report the model's share of the GPU's dense bf16 peak, from the FLOPs of VGG16 up to
relu5_3 on a 196x196 crop (counted per layer below, checked with torch's FlopCounterMode).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from bench.harness import ratio, remove_scratch, scratch_dir, set_threads, write_frames, write_result
from epeflow.artifacts.crops import CropStore, create_crop_store, mark_complete
from epeflow.artifacts.manifest import read_frames
from epeflow.common.vgg16 import _CFG, build_vgg16
from epeflow.features.boxes import sample_boxes
from epeflow.features.crop_stats import compute_crop_stats
from epeflow.features.crops import CropSettings, build_crop_model, crop_features, extract_crops, select_device
from epeflow.io import read_image

HEIGHT, WIDTH, CROP, PER_IMAGE = 1052, 1914, 196, 15
# Dense bf16 tensor-core peak (FLOP/s) by GPU name; the % of peak is only reported for GPUs listed here.
BF16_PEAK = {
    "H200": 989.4e12,
    "H100 SXM": 989.4e12,
    "H100 80GB HBM3": 989.4e12,
    "H100 NVL": 835.0e12,
    "H100 PCIe": 756.0e12,
    "H100": 756.0e12,
    "A100": 312.0e12,
    "L40S": 362.0e12,
    "A10": 125.0e12,
    "L4": 121.0e12,
}


def vgg16_flops(size: int, layer_count: int = len(_CFG)) -> int:
    """FLOPs (2 x multiply-adds) of unpadded VGG16 convolutions up to relu5_3 on one size x size crop."""
    flops, channels, side = 0, 3, size
    for v in _CFG[:layer_count]:
        if v == "M":
            side //= 2
        else:
            side -= 2  # 3x3 without padding
            flops += 2 * channels * int(v) * 9 * side * side
            channels = int(v)
    return flops


def counted_flops(model: torch.nn.Module, size: int) -> int:
    """The same count by torch's FlopCounterMode (one crop on the CPU)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.rand(1, 3, size, size))
    return int(counter.get_total_flops())


def bf16_peak(name: str) -> float | None:
    for key, peak in BF16_PEAK.items():
        if key in name:
            return peak
    return None


class ReferenceFrames(Dataset):
    """ImageDataset as collect_crops uses it: one (1, 3, H, W) float image in [0, 1] per item."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(read_image(self.paths[i]).copy()).permute(2, 0, 1).float().div_(255.0)


def reference_collect(frames, stats, device: torch.device, per_image: int) -> tuple[np.ndarray, np.ndarray]:
    """collect_crops.py's sampling loop: (boxes (M, 4), features (M, 512) float16)."""
    network, _ = build_vgg16(None, True, padding="none")
    network.set_normalization(stats["mean"], stats["std"])
    network = network.to(device)
    loader = DataLoader(ReferenceFrames(frames["path"].tolist()), batch_size=1, shuffle=False, num_workers=1,
                        pin_memory=device.type == "cuda")
    features = np.zeros((len(frames) * per_image, 512), np.float16)
    boxes = np.zeros((len(frames) * per_image, 4), np.int32)
    ip = 0
    with torch.no_grad():
        for i, img in enumerate(loader):
            n, _, h, w = img.shape
            frame_boxes = sample_boxes(int(frames["frame"].iloc[i]), h, w, CROP, per_image, 0)
            samples = []
            for r0, r1, c0, c1 in frame_boxes.tolist():
                samples.append(img[0, :, r0:r1, c0:c1].reshape(1, 3, CROP, CROP))
                boxes[ip] = (r0, r1, c0, c1)
                ip += 1
            samples = torch.cat(samples, 0).to(device, non_blocking=True)
            f = network(samples)["relu5_3"]  # (15, 512, 1, 1)
            features[ip - per_image : ip, :] = f.cpu().numpy().astype(np.float16).reshape(per_image, 512)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return boxes, features


def ours_collect(
    frames, stats, settings: CropSettings, device: torch.device, out: Path
) -> tuple[CropStore, float]:
    """The `epeflow crops` stage body: extract_crops into a crops.zarr; (store, seconds after the model build)."""
    model, random_weights = build_crop_model(stats, settings.padding, {}, True, device)
    attrs = {**{k: stats[k] for k in ("mean", "std")}, "crop_size": settings.size, "per_image": settings.per_image,
             "seed": settings.seed, "padding": settings.padding, "feature": "vgg16_relu5_3",
             "random_weights": random_weights, "num_frames": len(frames), "chunk_size": settings.chunk_size}
    start = time.perf_counter()
    group, writer = create_crop_store(out, len(frames) * settings.per_image, settings.chunk_size, attrs)
    extract_crops(frames, settings, model, device, writer)
    mark_complete(group, writer)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return CropStore(out), time.perf_counter() - start


def model_throughput(device: torch.device, batch: int, iterations: int) -> float:
    """Crops/s of crop_features alone on random crops already on the device (bf16 on GPU)."""
    model, _ = build_crop_model({"mean": [0.5] * 3, "std": [0.25] * 3}, "none", {}, True, device)
    crops = torch.randint(0, 256, (batch, CROP, CROP, 3), dtype=torch.uint8, device=device)
    crop_features(model, crops, device)  # warm-up (cuDNN autotuning, lazy init)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iterations):
        crop_features(model, crops, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * iterations / (time.perf_counter() - start)


def main(quick: bool = False) -> None:
    threads = set_threads()
    device = select_device()
    cuda = device.type == "cuda"
    if quick:
        frames_n, height, width = 2, 256, 320
    else:
        frames_n, height, width = (200, HEIGHT, WIDTH) if cuda else (8, HEIGHT, WIDTH)
    root = scratch_dir("crop_features")
    manifest = write_frames(root, frames_n, height, width, seed=0)
    frames = read_frames(manifest)
    stats = compute_crop_stats(frames["path"].tolist(), 1000, 0, threads)
    per_image = 2 if quick else PER_IMAGE
    settings = CropSettings(per_image=per_image, size=CROP, padding="none", batch_size=32,
                            num_workers=2, chunk_size=4096)
    crops = frames_n * per_image

    # Warm-up of both paths on one frame (thread pools, allocator, cuDNN), then the timed runs.
    reference_collect(frames.iloc[:1], stats, device, per_image)
    ours_collect(frames.iloc[:1], stats, settings, device, root / "warmup.zarr")

    start = time.perf_counter()
    ref_boxes, ref_features = reference_collect(frames, stats, device, per_image)
    reference_s = time.perf_counter() - start
    store, ours_s = ours_collect(frames, stats, settings, device, root / "crops.zarr")

    ours_features = store.read(0, len(store), np.float32)
    ref32 = ref_features.astype(np.float32)
    same_frames = np.array_equal(store.frame, np.repeat(frames["frame"].to_numpy(), per_image))
    if not np.array_equal(store.box, ref_boxes) or not same_frames:
        raise AssertionError("crop boxes / frames differ from the reference's")
    cosine = np.sum(ours_features * ref32, axis=1) / (
        np.linalg.norm(ours_features, axis=1) * np.linalg.norm(ref32, axis=1) + 1e-12)
    max_rel = float(np.abs(ours_features - ref32).max() / max(np.abs(ref32).max(), 1e-12))
    if cuda:
        if cosine.min() < 0.99:
            raise AssertionError(f"bf16 features differ from fp32: min cosine {cosine.min():.4f}")
        check = f"bf16 vs fp32: min cosine {cosine.min():.4f}"
    else:
        if not np.allclose(ours_features, ref32, rtol=2e-3, atol=2e-3 * np.abs(ref32).max()):
            raise AssertionError(f"features differ beyond float16 rounding: max relative difference {max_rel:.2e}")
        check = f"fp32 both: max difference {max_rel:.1e} of the largest feature (float16 rounding)"

    flops = vgg16_flops(CROP)
    counted = counted_flops(build_vgg16(None, True, padding="none")[0], CROP)
    if counted != flops:
        raise AssertionError(f"VGG16 FLOP count {flops} differs from FlopCounterMode's {counted}")
    result = {
        "sizes": {"frames": frames_n, "frame": [height, width], "crop": CROP, "per_image": per_image,
                  "crops": crops, "padding": "none", "batch_size_ours": settings.batch_size,
                  "batch_size_reference": per_image, "loader_workers_ours": settings.num_workers,
                  "loader_workers_reference": 1},
        "quick": quick,
        "device": str(device),
        "precision_ours": "bf16 autocast + channels_last" if cuda else "fp32",
        "precision_reference": "fp32",
        "ours_s": ours_s,
        "reference_s": reference_s,
        "ours_crops_per_s": crops / ours_s,
        "reference_crops_per_s": crops / reference_s,
        "speedup": ratio(reference_s, ours_s),
        "same_result": check,
        "vgg16_relu5_3_flops_per_crop": flops,
        "ours_tflops_per_s": crops / ours_s * flops / 1e12,
        "reference_tflops_per_s": crops / reference_s * flops / 1e12,
        "random_weights": True,
        "notes": "random VGG16 weights (throughput does not depend on the weight values); the reference runs "
                 "the 15 crops of one frame as one batch (its DataLoader batch is one frame); timed from "
                 "decoding the PNG frames to features in memory (reference) / in crops.zarr (ours); "
                 + ("" if cuda else "no GPU here: CPU only, fp32 on both sides, "
                    f"{frames_n} frames to keep the run to minutes on {threads} cores"),
    }
    summary = [{
        "what": f"crop features, {crops} crops of {CROP} px from {height}x{width} frames, {device.type}"
                + (" (bf16 vs fp32)" if cuda else " fp32"),
        "ours": f"{crops / ours_s:.1f} crops/s",
        "reference": f"{crops / reference_s:.1f} crops/s",
        "ratio": f"{ratio(reference_s, ours_s)}x",
    }]
    if cuda:
        name = torch.cuda.get_device_name(0)
        peak = bf16_peak(name)
        model_rate = model_throughput(device, batch=256, iterations=5 if quick else 50)
        result.update({
            "gpu": name,
            "model_only_crops_per_s": model_rate,
            "model_only_tflops": model_rate * flops / 1e12,
            "end_to_end_tflops": crops / ours_s * flops / 1e12,
            "gpu_bf16_peak_tflops": peak / 1e12 if peak else None,
            "model_only_percent_of_bf16_peak": 100 * model_rate * flops / peak if peak else None,
            "end_to_end_percent_of_bf16_peak": 100 * crops / ours_s * flops / peak if peak else None,
        })
        pct = f"{100 * model_rate * flops / peak:.1f}% of bf16 peak" if peak else "peak unknown"
        summary.append({"what": f"VGG16 relu5_3 alone, batch 256 bf16 on {name} ({pct})",
                        "ours": f"{model_rate:.0f} crops/s", "reference": "", "ratio": ""})
    else:
        result["gpu_variant"] = "skipped: no CUDA device on this machine (bf16 + channels_last and % of peak "\
                                "are measured when one is present)"
    result["summary"] = summary
    write_result("crop_features", result)
    remove_scratch("crop_features")


if __name__ == "__main__":
    main()
