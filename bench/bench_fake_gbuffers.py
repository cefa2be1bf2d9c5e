"""Issue 5: fake G-buffers, frames/s and bytes a frame on disk, ours (`gbuffers.fake`) vs the reference.

The reference (epe/dataset/generate_fake_gbuffers.py) computes the dataset's RGB mean / std (first 1000
frames of a shuffled loader), then frame by frame (batch 1): VGG16 without padding up to relu2_2,
averages groups of 4 channels to 32, upsamples them bicubically to the frame size and saves them as a
float16 (H, W, 32) array with np.savez_compressed, one npz a frame. Ours runs frames of one size in
batches, keeps the 32 channels at feature resolution (float16, zstd) in one gbuffers.zarr and upsamples
on read (`GBufferStore.read`), which gives the reference's array.

Same result: for every frame, our upsampled read must equal the reference's array to float16 precision
(ours rounds to float16 before upsampling, the reference after: the difference is bounded by a few
float16 steps of the largest value). Random VGG16 weights (cost does not depend on them; compressed size
does a little). Both sides use every frame for the RGB statistics (fewer than 1000 frames).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader

from bench.bench_crop_features import ReferenceFrames
from bench.harness import dir_bytes, ratio, remove_scratch, scratch_dir, set_threads, write_frames, write_result
from epeflow.artifacts.gbuffers import GBufferStore
from epeflow.artifacts.manifest import read_frames
from epeflow.common.vgg16 import build_vgg16
from epeflow.gbuffers import GBufferSettings
from epeflow.gbuffers.fake import FAKE_CHANNELS, FAKE_LAYER, compute_fake_gbuffers

HEIGHT, WIDTH = 1052, 1914
MIB = 2**20


def reference_generate(frames, out_dir: Path, device: torch.device) -> None:
    """generate_fake_gbuffers.py's __main__ after argument parsing, as written (frame order unshuffled for
    the statistics: with fewer than 1000 frames every frame is used either way)."""
    network, _ = build_vgg16(None, True, padding="none")
    network = network.to(device)
    dataset = ReferenceFrames(frames["path"].tolist())
    loader = DataLoader(dataset, batch_size=1, shuffle=False, num_workers=1, pin_memory=device.type == "cuda")
    m, s = [], []
    for _, img in zip(range(1000), loader, strict=False):
        m.append(img.mean(dim=(2, 3)))
        s.append(img.std(dim=(2, 3)))
    m = torch.cat(m, 0).mean(dim=0)
    s = torch.cat(s, 0).mean(dim=0)
    network.set_normalization(m.tolist(), s.tolist())
    with torch.no_grad():
        for i, img in enumerate(loader):
            n, _, h, w = img.shape
            img = img.to(device, non_blocking=True)
            f = network(img, layers=(FAKE_LAYER,))[FAKE_LAYER]  # fw_relu(img, 3) + relu_3: relu2_2
            f = f.reshape(1, 32, 4, f.shape[-2], f.shape[-1]).mean(dim=2)
            f = F.interpolate(f, size=(h, w), mode="bicubic")
            f = f.reshape(32, h, w).permute(1, 2, 0).cpu().numpy().astype(np.float16)
            np.savez_compressed(out_dir / f"{Path(frames['path'].iloc[i]).stem}", data=f)


def main(quick: bool = False) -> None:
    threads = set_threads()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    if quick:
        count, height, width = 2, 128, 160
    else:
        count, height, width = (32, HEIGHT, WIDTH) if cuda else (4, HEIGHT, WIDTH)
    root = scratch_dir("fake_gbuffers")
    manifest = write_frames(root, count, height, width, seed=0)
    frames = read_frames(manifest)
    settings = GBufferSettings(kind="fake")  # the pipeline's defaults: batch 8, 2 loader workers, 1000 stats frames

    # Warm-up on one frame each (allocator, thread pools, cuDNN), then the timed runs.
    compute_fake_gbuffers(frames.iloc[:1], root / "warmup.zarr", settings, None, True, threads)
    (root / "warmup_npz").mkdir()
    reference_generate(frames.iloc[:1], root / "warmup_npz", device)

    store_path = root / "gbuffers.zarr"
    start = time.perf_counter()
    compute_fake_gbuffers(frames, store_path, settings, None, True, threads)
    ours_s = time.perf_counter() - start
    npz_dir = root / "reference_npz"
    npz_dir.mkdir()
    start = time.perf_counter()
    reference_generate(frames, npz_dir, device)
    if cuda:
        torch.cuda.synchronize()
    reference_s = time.perf_counter() - start

    store = GBufferStore(store_path)
    worst = 0.0
    for i, path in enumerate(frames["path"]):
        ref = np.load(npz_dir / f"{Path(path).stem}.npz")["data"].astype(np.float32).transpose(2, 0, 1)  # (32, H, W)
        ours = store.read(i, normalize=False)
        scale = max(float(np.abs(ref).max()), 1e-12)
        worst = max(worst, float(np.abs(ours - ref).max()) / scale)
    tolerance = 1e-2 if cuda else 4e-3  # bf16 on a GPU (ours) vs fp32 (reference)
    if worst > tolerance:
        raise AssertionError(f"fake G-buffers differ from the reference's by {worst:.2e} of the largest value")

    ours_bytes = dir_bytes(store_path) / count
    blocks_bytes = dir_bytes(store_path / "blocks") / count
    ref_bytes = sum(p.stat().st_size for p in npz_dir.glob("*.npz")) / count
    raw_full = height * width * FAKE_CHANNELS * 2
    write_result("fake_gbuffers", {
        "sizes": {"frames": count, "frame": [height, width], "channels": FAKE_CHANNELS,
                  "stored_resolution_ours": list(store.stored_sizes[0].tolist())},
        "quick": quick,
        "device": str(device),
        "precision_ours": "bf16 autocast + channels_last" if cuda else "fp32",
        "precision_reference": "fp32",
        "settings_ours": {"batch_size": settings.batch_size, "num_workers": settings.num_workers,
                          "stats_frames": settings.stats_frames, "threads": threads},
        "ours_s": ours_s,
        "reference_s": reference_s,
        "ours_frames_per_s": count / ours_s,
        "reference_frames_per_s": count / reference_s,
        "speedup": ratio(reference_s, ours_s),
        "ours_bytes_per_frame": ours_bytes,
        "ours_blocks_bytes_per_frame": blocks_bytes,
        "reference_bytes_per_frame": ref_bytes,
        "full_resolution_float16_bytes_per_frame": raw_full,
        "disk_ratio": ref_bytes / ours_bytes,
        "max_difference_of_largest_value": worst,
        "random_weights": True,
        "notes": "timed end to end: RGB statistics, VGG16, writing (ours: zarr at feature resolution; reference: "
                 "npz at full resolution); ours' bytes include the store's metadata and per-frame moments; "
                 + ("" if cuda else f"CPU: {count} frames; ") + "random VGG16 weights",
        "summary": [
            {"what": f"fake G-buffers, {count} frames {height}x{width}, {device.type} "
                     + ("bf16 vs fp32" if cuda else "fp32") + f", same array to {worst:.1e}",
             "ours": f"{count / ours_s:.3g} frames/s", "reference": f"{count / reference_s:.3g} frames/s",
             "ratio": f"{ratio(reference_s, ours_s)}x"},
            {"what": "fake G-buffers on disk a frame (ours zarr at feature resolution vs npz float16 full res)",
             "ours": f"{ours_bytes / MIB:.1f} MiB", "reference": f"{ref_bytes / MIB:.1f} MiB",
             "ratio": f"{ref_bytes / ours_bytes:.1f}x smaller"},
        ],
    })
    remove_scratch("fake_gbuffers")


if __name__ == "__main__":
    main()
