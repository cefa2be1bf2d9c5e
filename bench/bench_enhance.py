"""Enhancement speed: frames/s of `epeflow.enhance.Enhancer` at 960x540 and 1914x1052, whole frames vs
tiles, at the demo's generator width and the reference's, and how far tiled output is from whole-frame output.

Tiles are forced with a memory budget that holds a quarter of the frame plus the 64-pixel overlap. Both
ways of normalising in tiles are timed: `frame` statistics (gathered over the tiles first, one sweep per
step of the longest chain of normalisations; tiled = whole frame) and `tile` statistics (one pass, each
tile by itself). The
generators are random with their last conv at its usual scale (a fresh IENet is shrunk to nearly the
identity, which would make every tiling look exact), fed textured frames, smooth G-buffers and material
regions. On a GPU the Enhancer runs bf16 autocast with channels-last; this machine has none.

The reference width on the CPU is slow (minutes a frame): one frame per case there, and the `frame`
statistics case at that width is measured on a 240x135 frame only (tens of tile passes).

    python -m bench.bench_enhance [--quick]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts OpenMP, as `epeflow` does (cli.quiet_openmp)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.harness import fmt_s, set_threads, textured_frame, write_result

DEMO = {"width": 0.125, "stages": 3, "gbuffer_layers": 1}
REFERENCE = {"width": 1.0, "stages": 4, "gbuffer_layers": 3}
FAKE_CHANNELS, CLASSES = 32, 12


def generator(setting: dict) -> torch.nn.Module:
    from epeflow.models.ienet import IENet, IENetConfig

    torch.manual_seed(0)
    net = IENet(IENetConfig(gbuffer_mode="fake", num_stages=setting["stages"],
                            num_gbuffer_layers=setting["gbuffer_layers"], width=setting["width"])).eval()
    last = net.network.up_layers[-1][-1]
    with torch.no_grad():
        last.weight.mul_(100)  # undo the near-identity start: outputs differ from inputs as a trained model's do
        last.bias.normal_(0, 0.1)
    return net


def frame(height: int, width: int, seed: int):
    from epeflow.enhance import FrameInputs

    rng = np.random.default_rng(seed)

    def smooth(channels: int, cell: int) -> np.ndarray:
        coarse = torch.from_numpy(rng.random((1, channels, height // cell + 2, width // cell + 2)))
        return torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear")[0].float().numpy()

    material = np.clip((smooth(1, 96)[0] * CLASSES).astype(int), 0, CLASSES - 1)
    return FrameInputs(textured_frame(rng, height, width), smooth(FAKE_CHANNELS, 32) * 2 - 1,
                       (material[None] == np.arange(CLASSES)[:, None, None]).astype(np.float32))


def enhancer(net: torch.nn.Module, **spec):
    from epeflow.common.runtime import Runtime
    from epeflow.enhance import Enhancer, EnhanceSettings

    runtime = Runtime.detect(True, "auto")
    return Enhancer(runtime.prepare(net), runtime, EnhanceSettings.from_spec({"batch_size": 1, **spec}))


def run_case(net: torch.nn.Module, size: tuple[int, int], frames: int, statistics: str | None) -> dict:
    """Enhance `frames` frames whole (statistics None) or in tiles; frames/s, and the outputs of frame 0."""
    from epeflow.enhance.engine import MIB

    whole = enhancer(net, memory_mb=10**7)
    inputs = [frame(*size, seed) for seed in range(frames)]
    spec = {"memory_mb": 10**7}
    if statistics is not None:  # a budget that holds a quarter of the frame with its overlap: about 2x2 tiles
        quarter = [-(-n // 2) + 64 for n in size]
        spec = {"memory_mb": whole.forward_bytes(1, *quarter) / MIB, "tile_statistics": statistics}
    e = enhancer(net, **spec)
    tiles = e.plan(*size)
    e.plan(16, 16)  # the memory probes, outside the timing
    if statistics == "frame":
        e.norm_depths()
    start = time.perf_counter()
    outputs = e(inputs)
    seconds = time.perf_counter() - start
    result = {
        "frames": frames, "seconds": round(seconds, 2), "frames_per_s": frames / seconds,
        "tiles": len(tiles), "tile_shape": list(max(t.shape for t in tiles)),
        "estimated_mib": round(e.forward_bytes(1, *tiles[0].shape) / MIB, 1),
        "sweeps": max(e.norm_depths()) if statistics == "frame" else 0,
    }
    return result | {"_output": outputs[0]}


def main(quick: bool = False) -> None:
    threads = set_threads()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    sizes = [(540, 960), (1052, 1914)] if not quick else [(270, 480)]
    plan = []
    if not quick:
        plan += [("reference", REFERENCE, (135, 240), 1, ("frame", "tile")),
                 ("reference", REFERENCE, (540, 960), 1, ("tile",))]
    plan += [("demo", DEMO, size, 2 if size[0] < 1000 else 1, ("frame", "tile")) for size in sizes]
    if device == "cuda" and not quick:
        plan.append(("reference", REFERENCE, (1052, 1914), 2, ("frame", "tile")))
    results, summary = [], []
    for name, setting, size, frames, tiled in plan:
        net = generator(setting)
        base = run_case(net, size, frames, None)
        reference_output = base.pop("_output")
        row = {"width": name, "size": list(size), "untiled": base}
        print(f"{name} {size[1]}x{size[0]} untiled: {base['frames_per_s']:.3g} frames/s", flush=True)
        for statistics in tiled:
            case = run_case(net, size, 1, statistics)
            error = np.abs(case.pop("_output") - reference_output)
            case["max_abs_error"], case["mean_abs_error"] = float(error.max()), float(error.mean())
            row[f"tiled_{statistics}"] = case
            print(f"  tiled ({statistics} statistics): {case['frames_per_s']:.3g} frames/s, {case['tiles']} tiles, "
                  f"max error {case['max_abs_error']:.1e}, mean {case['mean_abs_error']:.1e}", flush=True)
            summary.append({
                "what": f"enhance {size[1]}x{size[0]}, {name} width ({setting['width']:g}), {device}: "
                        f"{case['tiles']} tiles, {statistics} statistics, max error {case['max_abs_error']:.0e}",
                "ours": f"{case['frames_per_s']:.3g} frames/s ({fmt_s(case['seconds'])})",
                "reference": f"{base['frames_per_s']:.3g} frames/s untiled",
                "ratio": f"{case['frames_per_s'] / base['frames_per_s']:.2f}x",
            })
        results.append(row)
        _write(quick, device, threads, results, summary)  # after every row: a late failure keeps the earlier ones


def _write(quick: bool, device: str, threads: int, results: list, summary: list) -> None:
    write_result("enhance", {"quick": quick, "device": device, "threads": threads,
                             "settings": {"demo": DEMO, "reference": REFERENCE}, "results": results,
                             "summary": summary})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    main(parser.parse_args().quick)
