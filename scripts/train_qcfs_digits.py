"""Reproduces snncheck/models/digits_qcfs.pth: a small VGG-style network with QCFS activations (L = 4 steps,
trained thresholds), trained as an ANN on scikit-learn's digits, the embedded default of `snncheck ann2snn`.

Deterministic (fixed seeds, one thread, deterministic algorithms): `python scripts/train_qcfs_digits.py`
rewrites the same checkpoint bit for bit on the same torch build, in well under a minute on one CPU core.
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from snncheck import data
from snncheck.ann2snn.model import DIGITS_QCFS, qcfs_vgg_digits


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--out", default=str(DIGITS_QCFS))
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    net = qcfs_vgg_digits()
    (xtr, ytr), (xte, yte) = data.digits("train"), data.digits("test")
    x_tr, y_tr = torch.from_numpy(xtr), torch.from_numpy(ytr)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs)
    gen = torch.Generator().manual_seed(0)
    start = time.time()
    for epoch in range(args.epochs):
        net.train()
        for idx in torch.randperm(len(x_tr), generator=gen).split(64):
            loss = F.cross_entropy(net(x_tr[idx]), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        if epoch % 20 == 19 or epoch == args.epochs - 1:
            print(f"epoch {epoch + 1}: loss {loss.item():.4f}, test accuracy {accuracy(net, xte, yte):.4f}")
    net.eval()
    torch.save(net.state_dict(), args.out)
    ups = [round(float(m.up.detach()), 4) for m in net.modules() if hasattr(m, "up")]
    print(f"saved {args.out} after {time.time() - start:.0f} s; thresholds {ups}")


@torch.no_grad()
def accuracy(net, x, y) -> float:
    net.eval()
    return float((net(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


if __name__ == "__main__":
    main()
