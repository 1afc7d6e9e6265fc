"""Number format and memory layout: milliseconds per training step and per inference batch of
the ResNet PreAct classifier and the profile's U-Net, in float32 and under bfloat16 autocast,
with contiguous and channels-last tensors. It is the measurement behind ``runtime.bf16``
(bf16 where the device runs it natively) and the layouts chosen in ``train`` and ``diffusion``.

    python benchmarks/precision.py --profile cpu

Writes results/<profile>/precision_benchmark.json with the device named.
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F

import kr_utils
from kr_utils import diffusion, models, runtime, store


def ms_per_call(fn, warmup: int, reps: int, device) -> float:
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 1000 * (time.perf_counter() - t0) / reps


def measure(kind: str, cfg: dict, bf16: bool, channels_last: bool, device, reps: int) -> dict:
    torch.manual_seed(0)
    dc = cfg.diffusion
    unet = kind == "unet"
    model = (models.ConditionalUNet(base=dc.base, mults=dc.mults, attention=dc.attention) if unet
             else models.build_classifier("resnet_preact")).to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    batch = dc.batch_size if unet else cfg.student.batch_size
    x = torch.randn(batch, 1, 28, 28, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,), device=device)
    schedule = diffusion.NoiseSchedule.from_config(dc)
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    def amp():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    def train_step():
        with amp():
            loss = diffusion.diffusion_loss(model, x, y, schedule, 0.1) if unet else F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    n_inf = cfg.sampler.batch_size
    xi = torch.randn(n_inf, 1, 28, 28, device=device).contiguous(memory_format=fmt)
    yi, ti = torch.randint(0, 10, (n_inf,), device=device), torch.full((n_inf,), 500, device=device)

    @torch.no_grad()
    def infer():
        with amp():
            model(xi, ti, yi) if unet else model(xi)

    train_ms = ms_per_call(train_step, 3, reps, device)
    model.eval()
    return {"model": kind, "bf16_autocast": bf16, "channels_last": channels_last, "train_batch": batch,
            "train_ms_per_step": train_ms, "inference_batch": n_inf, "inference_ms": ms_per_call(infer, 2, reps, device)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="cpu")
    p.add_argument("--reps", type=int, default=10)
    args = p.parse_args()
    cfg = kr_utils.get_config(args.profile)
    dev = runtime.device()
    rows = [measure(k, cfg, b, c, dev, args.reps) for k in ("resnet_preact", "unet") for b in (False, True)
            for c in (False, True)]
    for r in rows:
        print(json.dumps(r), flush=True)
    report = {"profile": cfg.profile, "environment": runtime.environment(), "runs": rows,
              "chosen": {"bf16_autocast": runtime.bf16(dev), "classifier_channels_last": True,
                         "unet_channels_last": diffusion.unet_memory_format(dev) == torch.channels_last}}
    dest = store.repo_root() / "results" / cfg.profile / "precision_benchmark.json"
    store.atomic_write_text(dest, json.dumps(report, indent=2))
    print("->", dest)


if __name__ == "__main__":
    main()
