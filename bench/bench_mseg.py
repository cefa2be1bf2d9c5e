"""Issue 5: MSeg inference frames/s, ours (`labels.mseg.segment`) vs mseg-semantic's sliding window.

The reference (mseg-semantic, tool/inference_task.py: execute_on_img, scale_process_cuda, net_process)
resizes the frame so its short side is scale x base_size, pads it with the mean colour, slides crop x crop
windows (stride 2/3 crop) and runs one window at a time through the network together with its mirror
image (a batch of 2), averaging softmax outputs; probabilities are resized to the frame, summed over
scales, argmax. Ours does the same with `batch_size` windows (and their mirrors) a forward pass, in bf16
with channels_last on a GPU. Here the reference is re-written from that code with torch in place of cv2
for the two resizes (same bilinear, half-pixel mapping) and drives the same HRNetV2-W48 module.

Random weights (MSeg's checkpoints cannot be downloaded here): the cost does not depend on the weight
values. Same result: the label maps must agree on >= 99.9% of pixels (windows batched differently give
float differences that can flip near-ties). Frames are 1052x1914 (PfD). On the CPU, single-scale runs at
MSeg's 1080 configuration (base 1080, crop 713: 8 windows) and multi-scale (scales 0.5..1.75) at
MSeg's 360 configuration (base 360: 9 windows instead of 77 at base 1080, which would take about 15
minutes a frame a side here), with one torch thread (see main). On a GPU both run at base 1080, ours in
bf16 and fp32, on a few frames.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch.nn import functional as F

from bench.harness import ratio, set_threads, textured_frame, write_result
from epeflow.labels.mseg import MULTI_SCALE, MsegSettings, build_mseg, segment
from epeflow.labels.mseg.inference import MEAN_255, STD_255, scale_probs, scaled_size

HEIGHT, WIDTH = 1052, 1914


# ------------------------------------------------------------------------------------------ reference
class ReferenceInference:
    """InferenceTask.execute_on_img for model_taxonomy = eval_taxonomy = universal, flip on."""

    def __init__(self, model: torch.nn.Module, base_size: int, crop: int, scales: tuple[float, ...],
                 device: torch.device) -> None:
        self.model, self.base_size, self.crop_h, self.crop_w = model, base_size, crop, crop
        self.scales, self.device = scales, device
        self.mean, self.std = list(MEAN_255), list(STD_255)
        self.num_eval_classes = model.config.num_classes
        self.softmax = torch.nn.Softmax(dim=1)

    def execute_on_img(self, image: np.ndarray) -> np.ndarray:
        h, w, _ = image.shape
        prediction = torch.zeros((h, w, self.num_eval_classes), device=self.device)
        for scale in self.scales:
            image_scaled = resize_by_scaled_short_side(image, self.base_size, scale)
            prediction = prediction + torch.as_tensor(self.scale_process(image_scaled, h, w), device=self.device)
        prediction /= len(self.scales)
        return np.uint8(torch.argmax(prediction, axis=2).cpu().numpy())

    def scale_process(self, image: np.ndarray, h: int, w: int, stride_rate: float = 2 / 3) -> np.ndarray:
        ori_h, ori_w, _ = image.shape
        image, pad_h_half, pad_w_half = pad_to_crop_sz(image, self.crop_h, self.crop_w, self.mean)
        new_h, new_w, _ = image.shape
        stride_h = int(np.ceil(self.crop_h * stride_rate))
        stride_w = int(np.ceil(self.crop_w * stride_rate))
        grid_h = int(np.ceil(float(new_h - self.crop_h) / stride_h) + 1)
        grid_w = int(np.ceil(float(new_w - self.crop_w) / stride_w) + 1)
        prediction_crop = torch.zeros((self.num_eval_classes, new_h, new_w), device=self.device)
        count_crop = torch.zeros((new_h, new_w), device=self.device)
        for index_h in range(0, grid_h):
            for index_w in range(0, grid_w):
                s_h = index_h * stride_h
                e_h = min(s_h + self.crop_h, new_h)
                s_h = e_h - self.crop_h
                s_w = index_w * stride_w
                e_w = min(s_w + self.crop_w, new_w)
                s_w = e_w - self.crop_w
                image_crop = image[s_h:e_h, s_w:e_w].copy()
                count_crop[s_h:e_h, s_w:e_w] += 1
                prediction_crop[:, s_h:e_h, s_w:e_w] += self.net_process(image_crop)
        prediction_crop /= count_crop.unsqueeze(0)
        prediction_crop = prediction_crop[:, pad_h_half : pad_h_half + ori_h, pad_w_half : pad_w_half + ori_w]
        # cv2.resize(prediction_crop HWC, (w, h), INTER_LINEAR) = bilinear with half-pixel centres
        prediction = F.interpolate(prediction_crop[None], size=(h, w), mode="bilinear", align_corners=False)[0]
        return prediction.permute(1, 2, 0).cpu().numpy()

    def net_process(self, image: np.ndarray, flip: bool = True) -> torch.Tensor:
        input = torch.from_numpy(image.transpose((2, 0, 1))).float()
        for t, m, s in zip(input, self.mean, self.std, strict=True):  # normalize_img
            t.sub_(m).div_(s)
        input = input.unsqueeze(0).to(self.device)
        if flip:
            input = torch.cat([input, input.flip(3)], 0)
        with torch.no_grad():
            output = self.model(input)
        _, _, h_i, w_i = input.shape
        _, _, h_o, w_o = output.shape
        if (h_o != h_i) or (w_o != w_i):
            output = F.interpolate(output, (h_i, w_i), mode="bilinear", align_corners=True)
        output = self.softmax(output)
        return (output[0] + output[1].flip(2)) / 2 if flip else output[0]


def resize_by_scaled_short_side(image: np.ndarray, base_size: int, scale: float) -> np.ndarray:
    """The reference's resize (cv2.resize INTER_LINEAR), with torch's bilinear (align_corners=False)."""
    h, w, _ = image.shape
    short_size = round(scale * base_size)
    new_h, new_w = short_size, short_size
    if h > w:
        new_h = round(short_size / float(w) * h)
    else:
        new_w = round(short_size / float(h) * w)
    x = torch.from_numpy(image).permute(2, 0, 1)[None]
    return F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()


def pad_to_crop_sz(image: np.ndarray, crop_h: int, crop_w: int, mean: list[float]) -> tuple[np.ndarray, int, int]:
    """cv2.copyMakeBorder with the mean colour, as the reference."""
    ori_h, ori_w, _ = image.shape
    pad_h, pad_w = max(crop_h - ori_h, 0), max(crop_w - ori_w, 0)
    pad_h_half, pad_w_half = int(pad_h / 2), int(pad_w / 2)
    if pad_h > 0 or pad_w > 0:
        padded = np.empty((ori_h + pad_h, ori_w + pad_w, 3), np.float32)
        padded[:] = np.asarray(mean, np.float32)
        padded[pad_h_half : pad_h_half + ori_h, pad_w_half : pad_w_half + ori_w] = image
        image = padded
    return image, pad_h_half, pad_w_half


# ----------------------------------------------------------------------------------------------- ours
def windows_of(height: int, width: int, settings: MsegSettings) -> int:
    """Number of crop x crop windows one frame needs over all scales."""
    total = 0
    stride = math.ceil(settings.crop * settings.stride_rate)
    for scale in settings.scales:
        h, w = scaled_size(height, width, round(scale * settings.base_size))
        ph, pw = max(h, settings.crop), max(w, settings.crop)
        total += (math.ceil((ph - settings.crop) / stride) + 1) * (math.ceil((pw - settings.crop) / stride) + 1)
    return total


def segment_fp32(model, rgb: np.ndarray, settings: MsegSettings, device: torch.device) -> np.ndarray:
    """Our `segment` with autocast off: the same scale_probs per scale in fp32 (for bf16 vs fp32 on a GPU)."""
    height, width = rgb.shape[:2]
    image = torch.from_numpy(np.ascontiguousarray(rgb)).to(device).permute(2, 0, 1).float()
    mean = torch.tensor(MEAN_255, device=device).view(3, 1, 1)
    std = torch.tensor(STD_255, device=device).view(3, 1, 1)
    total = None
    with torch.inference_mode():
        for scale in settings.scales:
            size = scaled_size(height, width, round(scale * settings.base_size))
            resized = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]
            probs = scale_probs(model, (resized - mean) / std, (height, width), settings)
            total = probs if total is None else total + probs
    return total.argmax(dim=0).to(torch.uint8).cpu().numpy()


def timed(fn, frames: list[np.ndarray], cuda: bool) -> tuple[float, list[np.ndarray]]:
    out = []
    start = time.perf_counter()
    for frame in frames:
        out.append(fn(frame))
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def agreement(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return float(np.mean([np.mean(x == y) for x, y in zip(a, b, strict=True)]))


def run_config(model, device, frames, settings: MsegSettings, with_fp32: bool) -> dict:
    cuda = device.type == "cuda"
    reference = ReferenceInference(model, settings.base_size, settings.crop, settings.scales, device)
    ref_input = [f.astype(np.float32) for f in frames]  # imread_rgb gives float32 RGB
    # Warm-up of the shared module (allocator, thread pool; on a GPU cuDNN autotuning for both batch sizes).
    for batch, bf16 in ((2, False), (2 * settings.batch_size, True)) if cuda else ((2, False),):
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            model(torch.zeros(batch, 3, settings.crop, settings.crop, device=device))
    ours_s, ours = timed(lambda f: segment(model, f, settings, device), frames, cuda)
    ref_s, ref = timed(reference.execute_on_img, ref_input, cuda)
    same = agreement(ours, ref)
    if same < 0.999:
        raise AssertionError(f"label maps agree on only {100 * same:.3f}% of pixels")
    result = {
        "base_size": settings.base_size, "crop": settings.crop, "scales": list(settings.scales),
        "batch_size_ours": settings.batch_size, "windows_per_frame": windows_of(*frames[0].shape[:2], settings),
        "frames": len(frames), "ours_s": ours_s, "reference_s": ref_s,
        "ours_frames_per_s": len(frames) / ours_s, "reference_frames_per_s": len(frames) / ref_s,
        "speedup": ratio(ref_s, ours_s), "label_agreement": same,
        "precision_ours": "bf16 autocast + channels_last" if cuda else "fp32", "precision_reference": "fp32",
    }
    if with_fp32:
        fp32_s, fp32 = timed(lambda f: segment_fp32(model, f, settings, device), frames, cuda)
        result.update({"ours_fp32_s": fp32_s, "ours_fp32_frames_per_s": len(frames) / fp32_s,
                       "bf16_speedup_over_fp32": ratio(fp32_s, ours_s), "bf16_vs_fp32_label_agreement":
                       agreement(ours, fp32)})
    return result


def main(quick: bool = False) -> None:
    threads = set_threads()
    cuda = torch.cuda.is_available()
    if not cuda:
        # HRNet is hundreds of small ops, each a barrier of the torch threads: on a shared CPU, when another
        # process holds a core, 2 threads ran 10-40x slower than 1 (measured here). One thread a side gives
        # stable per-core numbers; the comparison is unaffected (both sides run the same module).
        threads = 1
        torch.set_num_threads(threads)
    device = torch.device("cuda" if cuda else "cpu")
    model, random_weights = build_mseg(None, True)
    model = model.to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    rng = np.random.default_rng(0)
    if quick:
        height, width, count = 240, 428, 1
        configs = [MsegSettings(base_size=96, crop=64), MsegSettings(base_size=64, crop=64, scales=MULTI_SCALE)]
    elif cuda:
        height, width, count = HEIGHT, WIDTH, 3
        configs = [MsegSettings(), MsegSettings(scales=MULTI_SCALE)]
    else:
        height, width, count = HEIGHT, WIDTH, 1
        configs = [MsegSettings(), MsegSettings(base_size=360, scales=MULTI_SCALE)]
    frames = [textured_frame(rng, height, width) for _ in range(count)]
    runs = {}
    for settings in configs:
        name = "single_scale" if len(settings.scales) == 1 else "multi_scale"
        runs[name] = run_config(model, device, frames, settings, with_fp32=cuda)
    summary = []
    for name, r in runs.items():
        precision = "bf16 vs reference fp32" if cuda else "fp32"
        summary.append({
            "what": f"MSeg {name.replace('_', '-')} {height}x{width}, base {r['base_size']}, crop {r['crop']}, "
                    f"{r['windows_per_frame']} windows/frame, {device.type} {precision}, "
                    f"labels agree {100 * r['label_agreement']:.2f}%",
            "ours": f"{r['ours_frames_per_s']:.3g} frames/s",
            "reference": f"{r['reference_frames_per_s']:.3g} frames/s",
            "ratio": f"{r['speedup']}x",
        })
        if cuda:
            summary.append({"what": f"MSeg {name.replace('_', '-')} ours bf16 vs ours fp32",
                            "ours": f"{r['ours_frames_per_s']:.3g} frames/s",
                            "reference": f"{r['ours_fp32_frames_per_s']:.3g} frames/s (fp32)",
                            "ratio": f"{r['bf16_speedup_over_fp32']}x"})
    write_result("mseg", {
        "quick": quick, "device": str(device), "threads": threads, "frame": [height, width],
        "random_weights": random_weights, "runs": runs,
        "notes": "random HRNetV2-W48 weights (cost does not depend on them); reference re-written from "
                 "mseg-semantic's inference_task.py with torch resizes in place of cv2; "
                 + ("" if cuda else "CPU: multi-scale at base_size 360 instead of 1080 ("
                    f"{windows_of(HEIGHT, WIDTH, MsegSettings(scales=MULTI_SCALE))} windows a frame at 1080 would "
                    "take ~15 min a side here); one torch thread (2 threads on this shared machine ran 10-40x "
                    "slower whenever another process held a core); bf16 vs fp32 is measured when a GPU is present; ")
                 + "one frame per configuration on the CPU",
        "summary": summary,
    })


if __name__ == "__main__":
    main()
