"""Generator and discriminator cost: forward + backward time and peak memory, ours vs the reference's code.

Cases run one per fresh process (so each peak RSS is its own): the reference setting (batch 1, 196² crops,
full widths, pfd2cs config, fake G-buffers) and the demo setting (batch 2, 64² crops, the demo's widths).
The reference generator is built at run time from the reference code the user points to
(EPEFLOW_REFERENCE_CODE=<dir holding code/epe>); without it those rows are skipped. Also: parameters and
forward FLOPs (torch's flop counter) of the generator per 960x540 frame.

    python -m bench.bench_networks [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from bench.harness import fmt_s, peak_rss_of, ratio, write_result

TESTS = Path(__file__).resolve().parents[1] / "tests"
REFERENCE_SETTING = {"batch": 1, "size": 196, "width": 1.0, "stages": 4, "gbuffer_layers": 3}
DEMO_SETTING = {"batch": 2, "size": 64, "width": 0.125, "stages": 3, "gbuffer_layers": 1}
FAKE_CHANNELS, CLASSES = 32, 12


def generator_inputs(batch: int, size: int, height: int | None = None) -> tuple[torch.Tensor, ...]:
    h, w = (height or size), size
    torch.manual_seed(0)
    materials = torch.zeros(batch, CLASSES, h, w)
    materials[:, 3] = 1
    return torch.rand(batch, 3, h, w), torch.randn(batch, FAKE_CHANNELS, h, w), materials


def our_generator(setting: dict) -> torch.nn.Module:
    from epeflow.models.ienet import IENet, IENetConfig

    return IENet(IENetConfig(gbuffer_mode="fake", num_stages=setting["stages"],
                             num_gbuffer_layers=setting["gbuffer_layers"], width=setting["width"]))


def reference_generator() -> torch.nn.Module:
    sys.path.insert(0, str(TESTS))
    from epe_reference import build_reference_generator, reference_code_dir, reference_network_modules

    code = reference_code_dir()
    if code is None:
        raise SystemExit("EPEFLOW_REFERENCE_CODE is not set")
    with reference_network_modules(code) as modules:
        return build_reference_generator(modules, "fake")


def our_discriminator(setting: dict) -> tuple[torch.nn.Module, torch.nn.Module]:
    from epeflow.common.vgg16 import VGG16
    from epeflow.models.ppde import PPDE, PPDEConfig

    max_dim, layers = (256, 4) if setting["width"] == 1.0 else (64, 2)
    width = 1.0 if setting["width"] == 1.0 else 0.25
    return PPDE(PPDEConfig(max_dim=max_dim, num_layers=layers, width=width)), VGG16("replicate").eval()


def step_seconds(fn, repeat: int) -> float:
    fn()  # warm-up (allocator, lazy init)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run_case(case: str, repeat: int) -> dict:
    """One forward + backward of one network in this process; prints {"seconds": ...}."""
    torch.set_num_threads(torch.get_num_threads())
    side, net, which = case.split("-")  # ours|ref, gen|disc, reference|demo
    setting = REFERENCE_SETTING if which == "reference" else DEMO_SETTING
    if net == "gen":
        model = reference_generator() if side == "ref" else our_generator(setting)
        model.train()
        image, g, m = generator_inputs(setting["batch"], setting["size"])

        def step() -> None:
            model.zero_grad(set_to_none=True)
            if side == "ref":  # the reference's ResidualGenerator takes one batch object
                from types import SimpleNamespace

                out = model(SimpleNamespace(img=image, gbuffers=g, gt_labels=m))
            else:
                out = model(image, g, m)
            out.float().mean().backward()
    else:
        from epeflow.models.disc_inputs import discriminator_inputs

        disc, vgg = our_discriminator(setting)
        image = torch.rand(setting["batch"], 3, setting["size"], setting["size"], requires_grad=True)
        labels = torch.randint(0, 194, (setting["batch"], setting["size"], setting["size"]))

        def step() -> None:
            disc.zero_grad(set_to_none=True)
            maps = disc(discriminator_inputs(vgg, image, disc.input_names), labels)
            sum(m.float().mean() for m in maps if m is not None).backward()
    return {"seconds": step_seconds(step, repeat)}


def frame_cost() -> dict:
    """Parameters and forward FLOPs of the reference-width generator on one 960x540 frame."""
    from torch.utils.flop_counter import FlopCounterMode

    model = our_generator(REFERENCE_SETTING).eval()
    image, g, m = generator_inputs(1, 960, height=540)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(image, g, m)
    return {"parameters": sum(p.numel() for p in model.parameters()), "gflops": counter.get_total_flops() / 1e9}


def main(quick: bool = False) -> None:
    import os

    cases = ["ours-gen-demo", "ours-disc-demo"]
    if not quick:
        cases += ["ours-gen-reference", "ours-disc-reference"]
    has_reference = bool(os.environ.get("EPEFLOW_REFERENCE_CODE"))
    if has_reference and not quick:  # the reference has no width multiplier: only its own setting exists
        cases += ["ref-gen-reference"]
    results = {}
    for case in cases:
        repeat = "1" if case.endswith("reference") else "3"
        cmd = [sys.executable, "-m", "bench.bench_networks", "--case", case, "--repeat", repeat]
        peak_mib, _ = peak_rss_of(cmd)
        seconds = json.loads(Path(f"/tmp/bench_networks_{case}.json").read_text())["seconds"]
        results[case] = {"seconds": seconds, "peak_rss_mib": round(peak_mib, 1)}
        print(f"{case}: {fmt_s(seconds)} fwd+bwd, peak RSS {peak_mib:.0f} MiB", flush=True)
    summary = [
        {"what": f"{case.replace('-', ' ')} fwd+bwd (peak RSS {r['peak_rss_mib']:.0f} MiB)",
         "ours": fmt_s(r["seconds"])}
        for case, r in results.items() if case.startswith("ours")
    ]
    if "ref-gen-reference" in results and "ours-gen-reference" in results:
        ours, ref = results["ours-gen-reference"], results["ref-gen-reference"]
        summary.append({"what": "generator fwd+bwd, batch 1, 196², pfd2cs (fake G-buffers)",
                        "ours": fmt_s(ours["seconds"]), "reference": fmt_s(ref["seconds"]),
                        "ratio": f"{ratio(ref['seconds'], ours['seconds']):.2f}x"})
    if not quick:
        cost = frame_cost()
        results["frame_960x540"] = cost
        summary.append({"what": "generator per 960x540 frame (reference widths)",
                        "ours": f"{cost['parameters'] / 1e6:.1f} M params, {cost['gflops']:.0f} GFLOP forward"})
    write_result("networks", {"quick": quick, "settings": {"reference": REFERENCE_SETTING, "demo": DEMO_SETTING},
                              "results": results, "summary": summary})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        Path(f"/tmp/bench_networks_{args.case}.json").write_text(json.dumps(run_case(args.case, args.repeat)))
    else:
        main(args.quick)
