"""Inception FID / KID evaluation: time for N frames at 526x957, and ours side by side with torch-fidelity.

Our side is the evaluate stage's path for `kid_inception` / `fid_inception`: PNG frames decoded, Inception-v3
pool3 features (`epeflow.metrics.inception`), KID (100 subsets, float32 sums, torch-fidelity's draws) and the
Fréchet distance (pytorch-fid's sqrtm form), for N generated frames against N others. The reference is
torch-fidelity 0.4.0 itself (`FeatureExtractorInceptionV3`, `kid_features_to_metric`,
`fid_features_to_statistics` + `fid_statistics_to_metric`, its eigenvalue form), loaded as
tests/torch_fidelity_site.py says (`pip install --no-deps --target /tmp/tfid_site torch-fidelity==0.4.0`,
or `$EPEFLOW_TORCH_FIDELITY_SITE`). Both networks load one random-weight state dict in the FID files' layout
(the real file is not on this machine; the time and the agreement do not depend on the values). KID and FID
are compared on identical features (torch-fidelity's), so they must agree to 1e-6 relative; the features
themselves are compared too.

The KID subset size is min(1000, N), recorded: torch-fidelity's 1000 needs 1000 frames a side.

    python -m bench.bench_evaluate [--frames N] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts OpenMP, as `epeflow` does

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.harness import fmt_s, remove_scratch, scratch_dir, set_threads, textured_frame, write_result  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_inception import random_state  # noqa: E402
from torch_fidelity_site import KID_KWARGS, load_torch_fidelity  # noqa: E402

HEIGHT, WIDTH = 526, 957


def write_frames(folder: Path, count: int, seed: int) -> list[Path]:
    from epeflow.io import write_png

    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        paths.append(folder / f"{i:05d}.png")
        write_png(paths[-1], textured_frame(rng, HEIGHT, WIDTH))
    return paths


def relative(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100, help="frames per set (the issue's target is 1000)")
    parser.add_argument("--quick", action="store_true", help="12 frames a set, 10 KID subsets (smoke test)")
    args = parser.parse_args()
    n = 12 if args.quick else args.frames
    subsets = 10 if args.quick else 100
    size = min(1000, n)
    threads = set_threads()

    from epeflow.metrics.inception import inception_features, load_inception
    from epeflow.metrics.kid import fid, kid

    tf = load_torch_fidelity()
    if isinstance(tf, str):
        raise SystemExit(tf)
    out = scratch_dir("evaluate")
    weights = out / "inception-random.pth"
    torch.save(random_state(), weights)
    fake, real = write_frames(out / "fake", n, 1), write_frames(out / "real", n, 2)

    # features: ours (frames -> pool3 as kid_inception / fid_inception run it) and torch-fidelity's extractor on
    # the same files (decoded with Pillow alike), alternating every 16 frames so a busy spell on this shared
    # machine hits both sides
    from epeflow.io import read_image

    model, _ = load_inception({"path": str(weights)})
    theirs_net = tf.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                                feature_extractor_weights_path=str(weights))

    def tf_features(paths: list[Path]) -> torch.Tensor:
        batch = torch.stack([torch.from_numpy(read_image(p).transpose(2, 0, 1).copy()) for p in paths])
        with torch.no_grad():
            return theirs_net(batch)[0]

    ours_chunks, tf_chunks, t_features, t_tf_features = [], [], 0.0, 0.0
    for paths in (fake, real):
        for i in range(0, len(paths), 16):
            chunk = paths[i:i + 16]
            start = time.perf_counter()
            ours_chunks.append(inception_features(model, chunk, threads=threads, batch_size=16))
            t_features += time.perf_counter() - start
            start = time.perf_counter()
            tf_chunks.append(tf_features(chunk))
            t_tf_features += time.perf_counter() - start
    ours_fake, ours_real = np.concatenate(ours_chunks[: len(ours_chunks) // 2]), np.concatenate(
        ours_chunks[len(ours_chunks) // 2:])
    tf_fake, tf_real = torch.cat(tf_chunks[: len(tf_chunks) // 2]), torch.cat(tf_chunks[len(tf_chunks) // 2:])
    feature_error = max(float(np.abs(ours_fake - tf_fake.numpy()).max()),
                        float(np.abs(ours_real - tf_real.numpy()).max()))
    feature_scale = float(tf_real.abs().max())

    # KID and FID on identical features (torch-fidelity's), ours vs theirs
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_kid import kid_features_to_metric

    start = time.perf_counter()
    k_ours = kid(tf_fake.numpy(), tf_real.numpy(), subsets, size, dtype=np.float32)
    t_kid = time.perf_counter() - start
    start = time.perf_counter()
    k_tf = kid_features_to_metric(tf_fake, tf_real, **{**KID_KWARGS, "kid_subsets": subsets, "kid_subset_size": size})
    t_tf_kid = time.perf_counter() - start
    start = time.perf_counter()
    f_ours = fid(tf_fake.numpy(), tf_real.numpy())
    t_fid = time.perf_counter() - start
    start = time.perf_counter()
    f_tf = fid_statistics_to_metric(fid_features_to_statistics(tf_fake), fid_features_to_statistics(tf_real), False)
    t_tf_fid = time.perf_counter() - start
    kid_rel = relative(k_ours.mean, k_tf["kernel_inception_distance_mean"])
    kid_std_rel = relative(k_ours.std, k_tf["kernel_inception_distance_std"])
    fid_rel = relative(f_ours.value, f_tf["frechet_inception_distance"])
    assert kid_rel <= 1e-6 and kid_std_rel <= 1e-6 and fid_rel <= 1e-6, (kid_rel, kid_std_rel, fid_rel)
    assert feature_error <= 1e-5 * feature_scale, (feature_error, feature_scale)

    total = t_features + t_kid + t_fid
    result = {
        "quick": args.quick, "frames_per_set": n, "frame_size": [HEIGHT, WIDTH], "device": "cpu", "threads": threads,
        "kid_subsets": subsets, "kid_subset_size": size,
        "ours_s": {"features": t_features, "kid": t_kid, "fid": t_fid, "total": total},
        "torch_fidelity_s": {"features": t_tf_features, "kid": t_tf_kid, "fid": t_tf_fid,
                             "total": t_tf_features + t_tf_kid + t_tf_fid},
        "values": {"kid_ours": k_ours.mean, "kid_torch_fidelity": k_tf["kernel_inception_distance_mean"],
                   "kid_std_ours": k_ours.std, "kid_std_torch_fidelity": k_tf["kernel_inception_distance_std"],
                   "fid_ours": f_ours.value, "fid_torch_fidelity": f_tf["frechet_inception_distance"],
                   "kid_relative_difference": kid_rel, "kid_std_relative_difference": kid_std_rel,
                   "fid_relative_difference": fid_rel, "feature_max_abs_difference": feature_error,
                   "feature_max_abs": feature_scale},
        "summary": [
            {"what": f"Inception features of 2x{n} frames {HEIGHT}x{WIDTH}, cpu fp32 (feature max diff "
                            f"{feature_error / feature_scale:.0e} of max)",
             "ours": f"{2 * n / t_features:.3g} frames/s", "reference": f"{2 * n / t_tf_features:.3g} frames/s "
             "torch-fidelity", "ratio": round(t_tf_features / t_features, 2)},
            {"what": f"KID, {subsets} subsets of {size}, identical features (rel. diff {kid_rel:.0e})",
             "ours": fmt_s(t_kid), "reference": f"{fmt_s(t_tf_kid)} torch-fidelity",
             "ratio": round(t_tf_kid / t_kid, 2)},
            {"what": f"FID 2048-d, {n} vs {n} (sqrtm vs torch-fidelity's eigvals, rel. diff {fid_rel:.0e})",
             "ours": fmt_s(t_fid), "reference": f"{fmt_s(t_tf_fid)} torch-fidelity",
             "ratio": round(t_tf_fid / t_fid, 2)},
            {"what": f"evaluate {n} frames vs {n} at {HEIGHT}x{WIDTH} (features + KID + FID), cpu",
             "ours": fmt_s(total), "reference": f"{fmt_s(t_tf_features + t_tf_kid + t_tf_fid)} torch-fidelity",
             "ratio": round((t_tf_features + t_tf_kid + t_tf_fid) / total, 2)},
        ],
    }
    write_result("evaluate", result)
    remove_scratch("evaluate")


if __name__ == "__main__":
    main()
