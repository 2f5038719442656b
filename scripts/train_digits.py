"""Reproduces snncheck/models/digits_csnn.pth: the embedded default, trained in SpikingJelly on sklearn digits.

Deterministic (fixed seeds, one thread, deterministic algorithms): `python scripts/train_digits.py` rewrites the
same checkpoint bit for bit on the same torch build. About a minute on 2 cores.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional, surrogate, neuron

from snncheck import data
from snncheck.frontends import models as zoo

T_TRAIN = 8


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--out", default=str(zoo.DIGITS_CHECKPOINT))
    ap.add_argument("--deploy-only", action="store_true", help="only rewrite the int8 checkpoint from --out")
    args = ap.parse_args()
    if args.deploy_only:
        return deploy(args.out)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    net = zoo.digits_csnn()
    for m in net.modules():
        if isinstance(m, neuron.BaseNode):
            m.surrogate_function = surrogate.ATan()
    functional.set_step_mode(net, "m")
    xtr, ytr = data.digits("train")
    xte, yte = data.digits("test")
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs)
    gen = torch.Generator().manual_seed(0)
    x_tr, y_tr = torch.from_numpy(xtr), torch.from_numpy(ytr)
    start = time.time()
    for epoch in range(args.epochs):
        net.train()
        for idx in torch.randperm(len(x_tr), generator=gen).split(64):
            x = x_tr[idx].unsqueeze(0).repeat(T_TRAIN, 1, 1, 1, 1)
            rate = net(x).mean(0)
            loss = F.mse_loss(rate, F.one_hot(y_tr[idx], 10).float())
            opt.zero_grad()
            loss.backward()
            opt.step()
            functional.reset_net(net)
        sched.step()
        if epoch % 10 == 9 or epoch == args.epochs - 1:
            print(f"epoch {epoch + 1}: loss {loss.item():.4f}, test accuracy {accuracy(net, xte, yte):.3f}")
    torch.save(net.state_dict(), args.out)
    print(f"saved {args.out} after {time.time() - start:.0f} s")
    deploy(args.out)


def deploy(float_path):
    """The integer version for PAIBox: BatchNorm folded, int8 weights, 0-255 input (input_scale=255)."""
    from snncheck import checkpoint, convert
    out = zoo.DIGITS_DEPLOYED if Path(float_path) == zoo.DIGITS_CHECKPOINT else \
        Path(float_path).with_name(Path(float_path).stem + "_int8.pth")
    model = checkpoint.load_float(float_path, "digits_csnn")
    conv = convert.convert(model.graph, input_scale=255, rule="max")
    checkpoint.save_deployed(conv, out)
    print(f"saved {out}: vthr {conv.vthr}")


@torch.no_grad()
def accuracy(net, x, y) -> float:
    net.eval()
    functional.reset_net(net)
    out = net(torch.from_numpy(x).unsqueeze(0).repeat(T_TRAIN, 1, 1, 1, 1)).sum(0)
    functional.reset_net(net)
    return float((out.argmax(1).numpy() == y).mean())


if __name__ == "__main__":
    main()
