"""Loading models and checkpoints safely, and the deployed (integer) checkpoint format of DESIGN.md.

Nothing here unpickles code: every `.pth` goes through `torch.load(..., weights_only=True)`. Every problem with a
user's file becomes one InputError naming the file and what is wrong with it.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Optional

import numpy as np

from . import ir, zoo
from .errors import InputError, require
from .frontends.spikingjelly import from_module

DEPLOY_KEY = "snncheck"


# ------------------------------------------------------------------------------------------------- raw files
def load_state_dict(path) -> dict:
    """A state_dict (or a dict holding one under `net`/`state_dict`) as {name: np.ndarray}, plus the deployed
    metadata under DEPLOY_KEY if present."""
    import pickle
    import torch
    path = Path(path)
    require(path.is_file(), f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsupported content"
        raise InputError(f"{path}: refused to load: it holds pickled objects, not just tensors "
                         f"(loaded with weights_only=True; {first[:160]})") from None
    except Exception as exc:  # zip/pickle corruption surfaces as many types
        raise InputError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {str(exc)[:160]})") from None
    require(isinstance(obj, dict), f"{path}: expected a dict of tensors, found {type(obj).__name__}")
    meta = obj.get(DEPLOY_KEY)
    for key in ("net", "state_dict", "model"):
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    out = {}
    for name, value in obj.items():
        if name == DEPLOY_KEY:
            continue
        if not isinstance(value, torch.Tensor):
            continue   # optimizer steps, epochs, ...: not parameters
        arr = value.detach().cpu().numpy()
        require(arr.dtype.kind != "f" or bool(np.all(np.isfinite(arr))), f"{path}: {name!r} contains NaN or inf")
        out[name] = arr
    require(out, f"{path}: no tensors found")
    if meta is not None:
        require(isinstance(meta, dict), f"{path}: '{DEPLOY_KEY}' entry must be a dict")
        out[DEPLOY_KEY] = meta
    return out


def resolve_factory(spec: str):
    """`path/to/file.py:FACTORY`, `package.module:FACTORY` or a zoo name -> a zero-argument callable."""
    if ":" not in spec:
        return zoo.get(spec)
    target, _, attr = spec.rpartition(":")
    if target.endswith(".py"):
        require(os.path.isfile(target), f"model file not found: {target}")
        name = f"_snncheck_user_{abs(hash(os.path.abspath(target)))}"
        loader = importlib.util.spec_from_file_location(name, target)
        module = importlib.util.module_from_spec(loader)
        sys.modules[name] = module
        try:
            loader.loader.exec_module(module)
        except Exception as exc:
            raise InputError(f"{target}: failed to import ({type(exc).__name__}: {exc})") from None
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise InputError(f"cannot import {target!r}: {exc}") from None
    fn = getattr(module, attr, None)
    require(callable(fn), f"{spec}: no callable named {attr!r} in {target}")
    return fn


def build_module(spec: str, what: str = "model factory"):
    """Calls the factory named by `spec`; whatever it raises becomes one InputError naming it."""
    fn = resolve_factory(spec)
    try:
        return fn()
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{what} {spec!r} failed: {type(exc).__name__}: {exc}") from None


def infer_model(state: dict) -> str:
    """The zoo model whose parameter names and shapes match the checkpoint."""
    keys = {k: v.shape for k, v in state.items() if k != DEPLOY_KEY and not k.endswith("num_batches_tracked")}
    for name, factory in zoo.ZOO.items():
        sd = {k: tuple(v.shape) for k, v in factory().state_dict().items() if not k.endswith("num_batches_tracked")}
        if set(sd) <= set(keys) and all(tuple(keys[k]) == sd[k] for k in sd):
            return name
    raise InputError("cannot tell which architecture this checkpoint belongs to: pass --model FILE.py:FACTORY "
                     f"or a built-in name ({', '.join(zoo.ZOO)})")


# ------------------------------------------------------------------------------------------------- float model
@dataclasses.dataclass
class FloatModel:
    module: object          # the SpikingJelly module with the checkpoint loaded
    network: ir.Network     # its description, BatchNorm not folded
    spec: str


def load_float(path, spec: Optional[str] = None, input_shape=None) -> FloatModel:
    state = load_state_dict(path)
    require(DEPLOY_KEY not in state, f"{path}: this is a deployed (integer) checkpoint; A must be the float one")
    spec = spec or infer_model(state)
    module = build_module(spec)
    load_into(module, state, path)
    shape = input_shape or getattr(module, "input_shape", None) or zoo.INPUT_SHAPES.get(spec)
    require(shape is not None, f"input shape of {spec!r} unknown: give --inputs or set module.input_shape")
    return FloatModel(module.eval(), from_module(module, tuple(shape), name=Path(str(path)).stem), spec)


def load_into(module, state: dict, path) -> None:
    import torch
    expected = module.state_dict()
    given = {k: v for k, v in state.items() if k != DEPLOY_KEY}
    missing = [k for k in expected if k not in given and not k.endswith("num_batches_tracked")]
    extra = [k for k in given if k not in expected]
    require(not missing and not extra, f"{path}: layers do not match the model: "
            + "; ".join(p for p in (f"missing {_few(missing)}" if missing else "",
                                    f"unexpected {_few(extra)}" if extra else "") if p))
    for k, v in expected.items():
        if k in given:
            require(tuple(given[k].shape) == tuple(v.shape),
                    f"{path}: {k!r} has shape {tuple(given[k].shape)}, the model expects {tuple(v.shape)}")
    module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in given.items()}, strict=False)


def _few(names, n=4) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


# ------------------------------------------------------------------------------------------------- deployed
def save_deployed(conversion, path) -> None:
    """Writes the deployed checkpoint: integer tensors under the float model's names + the `snncheck` entry."""
    import torch
    out = {}
    for layer in conversion.network.layers:
        if isinstance(layer, ir.SYNAPSE_TYPES):
            out[f"{layer.name}.weight"] = torch.from_numpy(np.asarray(layer.weight, np.int8))
            if layer.bias is not None:
                out[f"{layer.name}.bias"] = torch.from_numpy(np.asarray(layer.bias, np.int32))
    neurons = conversion.network.neurons
    modes = ["soft" if n.v_reset is None else "hard" for n in neurons]
    meta = {"vthr": [int(v) for v in conversion.vthr], "input_scale": float(conversion.input_scale),
            "reset": modes[0] if len(set(modes)) == 1 else modes, "rule": conversion.rule}
    if any(n.v_reset not in (None, 0) for n in neurons):       # an extension of DESIGN.md's format
        meta["v_reset"] = [None if n.v_reset is None else int(n.v_reset) for n in neurons]
    out[DEPLOY_KEY] = meta
    atomic_torch_save(out, path)


def atomic_torch_save(obj, path) -> None:
    import torch
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


@dataclasses.dataclass
class Deployed:
    network: ir.Network
    input_scale: float
    reset: str
    inferred: list          # what was not in the checkpoint nor on the command line


def load_deployed(path, float_net: ir.Network, vthr=None, input_scale=None, reset=None) -> Deployed:
    """The integer network B: A's architecture with BatchNorm folded, B's integer tensors, B's thresholds.

    Command-line values override the checkpoint's `snncheck` entry; what neither gives is inferred (input
    scale 1, A's reset mode, thresholds by rounding A's threshold times the fitted weight scale) and listed."""
    state = load_state_dict(path)
    meta = dict(state.pop(DEPLOY_KEY, None) or {})
    folded = ir.fold_batchnorm(float_net)
    synapses = [l.name for l in folded.layers if isinstance(l, ir.SYNAPSE_TYPES)]
    want = {f"{n}.weight" for n in synapses} | {f"{n}.bias" for n in synapses}
    missing = sorted(f"{n}.weight" for n in synapses if f"{n}.weight" not in state)
    extra = sorted(k for k in state if k not in want)
    require(not missing and not extra, f"{path}: layers do not match the float model: "
            + "; ".join(p for p in (f"missing {_few(missing)}" if missing else "",
                                    f"unexpected {_few(extra)}" if extra else "") if p))
    inferred = []
    input_scale = _pick(input_scale, meta.get("input_scale"), 1.0, "input_scale", inferred)
    require(np.isfinite(input_scale) and input_scale > 0, f"input scale must be positive, got {input_scale}")
    reset = _pick(reset, meta.get("reset"), None, "reset", inferred)
    modes = _per_layer(reset, folded, "reset", path)
    require(all(m in (None, "hard", "soft") for m in modes), f"reset must be 'hard' or 'soft', got {reset!r}")
    v_resets = _per_layer(meta.get("v_reset"), folded, "v_reset", path)
    layers, scales = [], {}
    for layer in folded.layers:
        if isinstance(layer, ir.SYNAPSE_TYPES):
            w = state[f"{layer.name}.weight"]
            require(w.shape == layer.weight.shape,
                    f"{path}: {layer.name}.weight has shape {w.shape}, the float model has {layer.weight.shape}")
            _require_integers(path, f"{layer.name}.weight", w)
            b = state.get(f"{layer.name}.bias")
            if b is not None:
                require(b.shape == (layer.weight.shape[0],),
                        f"{path}: {layer.name}.bias has shape {b.shape}, expected ({layer.weight.shape[0]},)")
                _require_integers(path, f"{layer.name}.bias", b)
            layer = dataclasses.replace(layer, weight=w.astype(np.int64), bias=None if b is None else b.astype(np.int64))
            scales[layer.name] = fit_scale(layer.weight, folded.layer(layer.name).weight)
        layers.append(layer)
    vthr_list = _thresholds(vthr if vthr is not None else meta.get("vthr"), folded, path)
    if vthr_list is None:
        inferred.append("vthr")
    out, s_in, syn = [], input_scale, None
    for i, layer in enumerate(layers):
        if isinstance(layer, ir.SYNAPSE_TYPES):
            syn = layer.name
        if isinstance(layer, ir.NEURON_TYPES):
            k = s_in * scales.get(syn, 1.0)
            theta = vthr_list[len([l for l in out if isinstance(l, ir.NEURON_TYPES)])] if vthr_list else \
                max(1, int(np.rint(layer.threshold * k)))
            index = len([l for l in out if isinstance(l, ir.NEURON_TYPES)])
            mode = modes[index] or ("soft" if layer.v_reset is None else "hard")
            layer = dataclasses.replace(layer, threshold=int(theta), v_init=None,
                                        v_reset=None if mode == "soft" else int(v_resets[index] or 0))
            s_in = 1.0
        out.append(layer)
    kinds = {"soft" if n.v_reset is None else "hard" for n in out if isinstance(n, ir.NEURON_TYPES)}
    final_reset = kinds.pop() if len(kinds) == 1 else "mixed"
    net = dataclasses.replace(folded, layers=out, name=Path(str(path)).stem, input_scale=input_scale)
    return Deployed(net, input_scale, final_reset, inferred)


def _per_layer(value, net: ir.Network, what: str, path) -> list:
    """A value for every spiking layer: one for all, or a list in spiking-layer order."""
    count = len(net.neurons)
    if not isinstance(value, (list, tuple)):
        return [value] * count
    require(len(value) == count, f"{path}: {what} has {len(value)} values for {count} spiking layers")
    return list(value)


def fit_scale(int_w: np.ndarray, float_w: np.ndarray) -> float:
    """Least-squares s with int_w ~ s * float_w."""
    a, b = np.asarray(float_w, np.float64).ravel(), np.asarray(int_w, np.float64).ravel()
    den = float(a @ a)
    return float(a @ b / den) if den > 0 else 1.0


def _pick(cli, stored, default, name, inferred):
    if cli is not None:
        return cli
    if stored is not None:
        return stored
    inferred.append(name)
    return default


def _require_integers(path, name, arr) -> None:
    if arr.dtype.kind == "f":
        require(bool(np.all(np.isfinite(arr))), f"{path}: {name} contains NaN or inf")
        bad = int(np.sum(arr != np.round(arr)))
        require(bad == 0, f"{path}: {name} has {bad} non-integer values (e.g. {arr[arr != np.round(arr)].ravel()[0]:.4g}): "
                          "the deployed checkpoint must hold integers")


def _thresholds(vthr, net: ir.Network, path):
    """vthr as a list (in spiking-layer order) or {layer name: int} -> list of ints, validated."""
    if vthr is None:
        return None
    names = [n.name for n in net.neurons]
    if isinstance(vthr, dict):
        unknown = [k for k in vthr if k not in names]
        require(not unknown, f"{path}: vthr names unknown spiking layers {unknown}; layers are {names}")
        require(len(vthr) == len(names), f"{path}: vthr gives {len(vthr)} of {len(names)} spiking layers")
        vthr = [vthr[n] for n in names]
    vthr = list(vthr)
    require(len(vthr) == len(names), f"vthr has {len(vthr)} values for {len(names)} spiking layers ({', '.join(names)})")
    out = []
    for name, v in zip(names, vthr):
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise InputError(f"vthr for {name!r} is not a number: {v!r}") from None
        require(np.isfinite(f) and f == round(f), f"vthr for {name!r} must be an integer, got {v!r}")
        require(0 <= f <= 2 ** 29 - 1, f"vthr for {name!r} is {int(f)}, outside PAIBox's range 0..{2 ** 29 - 1}")
        out.append(int(f))
    return out
