"""The paper's claim in small: a plain CNN vs the same CNN with deformable convs, then export.

    python -m samples.paper_demo.run [--quick] [--seed N] [--out DIR]

1. Synthetic shapes under strong scale / aspect / rotation variation (``data.py``).
2. Train the plain ``ShapeNet`` and the one with ``DeformConv2dPack`` in conv3..conv5
   (same seed, same data, same schedule; the offset convs at beta = 1 times the learning
   rate, as in the paper); print the test accuracy of each. Training runs the deformable
   layers through ``fast.py`` (same function, grid_sample kernels); accuracy, the figure
   and the export use the real ``DeformConv2dPack`` modules (``torch.ops.dcn``).
3. Draw the learned sampling locations of the three stacked deformable layers for a few
   units (the paper's Figure 5) to DIR/sampling_locations.png.
4. Export the trained deformable model with ``exporter.export(..., check=True)`` to
   DIR/model_dcn.onnx (ONNX Runtime with our ops vs PyTorch), save its state dict to
   DIR/model_dcn.pt and print the ``dcn-compare`` command that re-checks it.
5. Write DIR/results.json. Every file is written atomically (temp file + rename).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor, nn

from .data import ShapesConfig, make_shapes
from .model import IMAGE_SIZE, NUM_CLASSES, ShapeNet, build_dcn, build_plain

# Objects from 8 to 30 pixels wide (radius 4..15, log-uniform) in 32x32 images, aspect 0.5..1, any rotation.
DATA = ShapesConfig(size=IMAGE_SIZE, classes=("disk", "ring", "square", "frame"), min_radius=4.0, max_radius=15.0,
                    min_aspect=0.5, noise=0.08)
assert len(DATA.classes) == NUM_CLASSES


@dataclass(frozen=True)
class Schedule:
    train: int  # training images
    test: int  # test images
    epochs: int
    batch: int = 64
    lr: float = 3e-3
    offset_lr_mult: float = 1.0  # paper sec. 3: offset convs at beta = 1 times the learning rate
    weight_decay: float = 1e-4


DEFAULT = Schedule(train=3000, test=2000, epochs=6)
QUICK = Schedule(train=1500, test=1000, epochs=4)


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def train(model: ShapeNet, x: Tensor, y: Tensor, sched: Schedule, seed: int, say: Callable[[str], None]) -> float:
    """Adam, cosine learning rate, fixed-seed shuffling; returns seconds."""
    torch.manual_seed(seed)
    offsets = [p for n, p in model.named_parameters() if "conv_offset" in n]
    rest = [p for n, p in model.named_parameters() if "conv_offset" not in n]
    groups = [{"params": rest, "mult": 1.0}]
    if offsets:
        groups.append({"params": offsets, "mult": sched.offset_lr_mult})
    opt = torch.optim.Adam(groups, lr=sched.lr, weight_decay=sched.weight_decay)
    n = len(x)
    steps_per_epoch = n // sched.batch  # drop the last partial batch
    total = sched.epochs * steps_per_epoch
    model.fast = True
    step = 0
    t0 = time.perf_counter()
    try:
        for epoch in range(sched.epochs):
            model.train()
            perm = torch.randperm(n)
            running = 0.0
            for b in range(steps_per_epoch):
                lr = sched.lr * 0.5 * (1 + math.cos(math.pi * step / total))
                for g in opt.param_groups:
                    g["lr"] = lr * g["mult"]
                idx = perm[b * sched.batch:(b + 1) * sched.batch]
                loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                running += loss.item()
                step += 1
            say(f"  epoch {epoch + 1}/{sched.epochs}: loss {running / steps_per_epoch:.3f} "
                f"({time.perf_counter() - t0:.0f} s)")
    finally:
        model.fast = False
    model.eval()
    return time.perf_counter() - t0


@torch.no_grad()
def predict(model: ShapeNet, x: Tensor, fast: bool = False, batch: int = 250) -> Tensor:
    model.eval()
    model.fast = fast
    try:
        return torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)])
    finally:
        model.fast = False


def _pick_examples(params: Tensor, labels: Tensor, correct: Tensor, num_classes: int) -> list[int]:
    """One correctly classified test image per class, object sizes spread from small to large."""
    radius = params[:, 2]
    lo, hi = float(radius.min()), float(radius.max())
    picks = []
    for k in range(num_classes):
        target = lo + (hi - lo) * (0.1 + 0.8 * k / max(num_classes - 1, 1))
        pool = torch.nonzero((labels == k) & correct).flatten()
        if len(pool) == 0:
            pool = torch.nonzero(labels == k).flatten()
        if len(pool) == 0:
            continue
        picks.append(int(pool[torch.argmin((radius[pool] - target).abs())]))
    return picks


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m samples.paper_demo.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller data and fewer epochs (the test's setting; about 2 minutes on 2 shared CPU cores)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data, the initialisation and the shuffling")
    p.add_argument("--out", type=Path, default=Path("out/paper_demo"), help="output directory (default out/paper_demo)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    say = lambda s: print(s, flush=True)  # noqa: E731
    t_start = time.perf_counter()
    sched = QUICK if args.quick else DEFAULT
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    say(f"paper demo ({'quick' if args.quick else 'default'}, seed {args.seed}): {sched.train} training / "
        f"{sched.test} test images of {', '.join(DATA.classes)}, {DATA.size}x{DATA.size}, radius "
        f"{DATA.min_radius:g}..{DATA.max_radius:g} px, aspect {DATA.min_aspect:g}..1, any rotation")
    x_train, y_train, _ = make_shapes(sched.train, 1000 + args.seed, DATA)
    x_test, y_test, p_test = make_shapes(sched.test, 2000 + args.seed, DATA)

    results: dict = {"seed": args.seed, "mode": "quick" if args.quick else "default", "schedule": asdict(sched),
                     "data": asdict(DATA), "models": {}}
    models: dict[str, ShapeNet] = {}
    for name, build in (("plain", build_plain), ("deformable", build_dcn)):
        torch.manual_seed(args.seed)
        model = build()
        say(f"training {name} CNN" + (" (DeformConv2dPack in conv3..conv5)" if model.deformable else ""))
        seconds = train(model, x_train, y_train, sched, args.seed, say)
        logits = predict(model, x_test)  # deformable: the real DeformConv2dPack (torch.ops.dcn)
        acc = float((logits.argmax(1) == y_test).float().mean())
        say(f"  {name}: test accuracy {acc:.3f} (train {seconds:.0f} s)")
        results["models"][name] = {"accuracy": acc, "train_seconds": round(seconds, 1),
                                   "parameters": sum(t.numel() for t in model.parameters())}
        models[name] = model
        if model.deformable:  # the training formulation computes the same function
            fast = predict(model, x_test[:200], fast=True)
            diff = float((fast - logits[:200]).abs().max())
            results["models"][name]["fast_vs_dcn_op_max_abs"] = diff
            say(f"  grid_sample training path vs torch.ops.dcn.deform_conv2d: max |logit diff| {diff:.2e}")
            correct = logits.argmax(1) == y_test  # for picking the figure's examples
    plain_acc = results["models"]["plain"]["accuracy"]
    dcn_acc = results["models"]["deformable"]["accuracy"]
    say(f"accuracy: plain {plain_acc:.3f}, deformable {dcn_acc:.3f} ({100 * (dcn_acc - plain_acc):+.1f} points)")

    # Figure 5 in small
    dcn = models["deformable"]
    picks = _pick_examples(p_test, y_test, correct, NUM_CLASSES)
    centres = [(float(p_test[i, 1]), float(p_test[i, 0])) for i in picks]  # params: cx, cy -> (y, x)
    titles = [f"{DATA.classes[int(y_test[i])]}, radius {float(p_test[i, 2]):.0f} px" for i in picks]
    png = out / "sampling_locations.png"
    from .sampling import plot_sampling

    _atomic_write(png, lambda t: plot_sampling(
        dcn, x_test[picks], centres, titles, t,
        suptitle="learned sampling locations: unit (green), its 9 points in conv5 (yellow), 729 in conv3 (red)"))
    say(f"wrote {png}")

    # export: ONNX with dcn::DeformConv2d nodes, run in ONNX Runtime with our ops, compared with PyTorch
    import exporter
    from dcn_base.tolerance import model_tolerance

    onnx_path = out / "model_dcn.onnx"
    state = out / "model_dcn.pt"
    _atomic_write(state, lambda t: torch.save(dcn.state_dict(), t))
    example = x_test[:2].clone()
    res = exporter.export(dcn, (example,), onnx_path, input_names=["images"], output_names=["logits"],
                          dynamic={"images": {0: "batch"}}, check=True, log=lambda s: say(f"  {s}"))
    check = res.check
    say(res.summary())
    with torch.no_grad():
        ref = dcn(example).numpy()
    atol, rtol = model_tolerance("float32", ref)
    results["export"] = {
        "onnx": str(onnx_path), "state_dict": str(state), "dcn_nodes": len(res.dcn_nodes),
        "node_types": sorted(set(res.dcn_nodes.values())), "runtime": check.runtime, "passed": bool(check.passed),
        "max_abs_error": float(check.max_abs), "atol": float(atol), "rtol": float(rtol),
        "export_seconds": round(res.total_seconds, 1),
    }
    say(f"ONNX Runtime vs PyTorch: max abs error {check.max_abs:.2e} (tolerance atol {atol:.1e}) -> "
        f"{'PASS' if check.passed else 'FAIL'}")
    compare = (f"dcn-compare {state} {onnx_path} --factory samples.paper_demo.model:build_dcn "
               f"--input images:4x1x{DATA.size}x{DATA.size}")
    results["dcn_compare_command"] = compare
    say("re-check with Polygraphy (from the repository root, venv active):")
    say(f"  {compare}")

    results["deformable_beats_plain"] = dcn_acc > plain_acc
    results["seconds"] = round(time.perf_counter() - t_start, 1)
    results_path = out / "results.json"
    _atomic_write(results_path, lambda t: t.write_text(json.dumps(results, indent=2) + "\n"))
    say(f"wrote {results_path} ({results['seconds']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
