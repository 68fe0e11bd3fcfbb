# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Where a GPU training step of the residual variant goes: a plain-PyTorch breakdown.

Same model and batch as gpu_check.py (ResidualAutoencoder b=32, C=16, batch 16 of 256², data
already on the GPU, no DataLoader, no Lightning), adding one ingredient at a time: the network
alone with an MSE loss, then the fp32 SSIM term, then the per-step host sync that the
non-finite-loss guard implies. Prints ms/step (CUDA events) for each.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
import torch.nn.functional as F

from autoenc.models import ResidualAutoencoder
from autoenc.task import ssim_fp32


def run(name: str, *, ssim: bool, sync: bool, cl: bool, dtype: torch.dtype, steps: int) -> float:
    torch.manual_seed(0)
    model = ResidualAutoencoder(16, 32, 2).cuda()
    x = torch.rand(16, 1, 256, 256, device="cuda")
    if cl:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-5)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for i in range(steps + 20):
        if i == 20:
            torch.cuda.synchronize()
            start.record()
        with torch.autocast("cuda", dtype=dtype):
            x_hat = model(x)["x_hat"]
        loss = F.mse_loss(x_hat.float(), x)
        if ssim:
            loss = 0.5 * loss + 0.5 * (1 - ssim_fp32(x_hat, x))
        if sync and not torch.isfinite(loss):
            continue
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    end.record()
    torch.cuda.synchronize()
    ms = start.elapsed_time(end) / steps
    print(f"{name:<34} {ms:7.2f} ms/step  {1000 / ms:6.1f} it/s", flush=True)
    return ms


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    if not torch.cuda.is_available():
        sys.stderr.write("gpu_breakdown needs CUDA\n")
        return 2
    out = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
    bf16 = torch.bfloat16
    for name, kw in [
        ("net+mse, bf16, NCHW", {"ssim": False, "sync": False, "cl": False, "dtype": bf16}),
        ("net+mse, bf16, channels_last", {"ssim": False, "sync": False, "cl": True, "dtype": bf16}),
        ("+ssim, bf16, channels_last", {"ssim": True, "sync": False, "cl": True, "dtype": bf16}),
        (
            "+ssim+sync, bf16, channels_last",
            {"ssim": True, "sync": True, "cl": True, "dtype": bf16},
        ),
        (
            "+ssim+sync, fp16, channels_last",
            {"ssim": True, "sync": True, "cl": True, "dtype": torch.float16},
        ),
    ]:
        out[name] = run(name, steps=args.steps, **kw)  # type: ignore[arg-type]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
