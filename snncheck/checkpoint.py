"""Reading `.pth` files safely, and the deployed (integer) checkpoint format, written down here.

Nothing here unpickles code: every `.pth` goes through `torch.load(..., weights_only=True)`. Every problem with a
user's file becomes one InputError naming the file and what is wrong with it.

The deployed checkpoint B is a dict of integer-valued tensors under A's names, BatchNorm folded (`<synapse>.weight`
int8, `<synapse>.bias` int32; a conv whose BatchNorm was folded carries its folded bias even if A's conv had none),
plus a `snncheck` entry: `vthr` ({neuron: int}, or a list in neuron order), `input_scale`, `reset` (one mode, or
per neuron), `rule`, and where they are not the default: `v_reset`, `leak` (additive leaks), `v_init`, and
`readout_scale` ({readout head: k}: an integer head computed off-chip gives k times A's value). An identity
shortcut has no tensor: it is A's weight deployed at the merge neuron's scale, vthr / theta_A. Values may be stored
in integer dtypes or as integer-valued floats.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import numpy as np
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, StrictFloat, StrictInt, ValidationError,
                      model_validator)

from .backends.paibox.limits import THRESHOLD_MAX
from .convert import fit_scale, prepare, primary, shortcut_scale, weighted_terms
from .errors import InputError, require
from .files import write_together
from .graph import Graph
from .graph import primitives as P

DEPLOY_KEY = "snncheck"
RESETS = (None, "hard", "soft")

__all__ = ["DEPLOY_KEY", "Deployed", "FloatModel", "atomic_torch_save", "fit_scale", "infer_model", "load_deployed",
           "load_float", "load_into", "load_state_dict", "save_deployed"]


# ------------------------------------------------------------------------------------------------- metadata
def _whole(v):
    """An integer stored as an int or an integer-valued float, within int32 (thresholds, resets, leaks)."""
    if isinstance(v, float) and not (np.isfinite(v) and v == round(v)):
        raise ValueError(f"expected an integer, got {v!r}")
    if abs(v) > 2 ** 31 - 1:
        raise ValueError(f"{v!r} is outside the 32-bit integer range")
    return int(v)


Whole = Annotated[Union[StrictInt, StrictFloat], AfterValidator(_whole)]
Reset = Literal["hard", "soft"]
PerNeuron = Union[Whole, list[Whole], dict[str, Whole]]


class DeployMeta(BaseModel):
    """The deployed checkpoint's `snncheck` entry (docs/checkpoint.md): each value for every spiking layer at once,
    a list in spiking-layer order, or {layer name: value}. Unknown keys are errors; nothing is coerced."""
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    vthr: Optional[PerNeuron] = None
    input_scale: Optional[float] = Field(None, gt=0, le=2 ** 31, allow_inf_nan=False)
    reset: Optional[Union[Reset, list[Reset], dict[str, Reset]]] = None
    rule: Optional[str] = None
    v_reset: Optional[PerNeuron] = None
    v_init: Optional[PerNeuron] = None
    leak: Optional[Union[Whole, list[Union[Whole, list[Whole]]], dict[str, Union[Whole, list[Whole]]]]] = None
    # {readout head: k}, an integer head computed off-chip gives k times A's value (written by convert)
    readout_scale: Optional[dict[str, Annotated[float, Field(gt=0, allow_inf_nan=False)]]] = None

    @model_validator(mode="before")
    @classmethod
    def _plain(cls, raw):
        """Tensors and NumPy values (allowed by weights_only loading) as plain numbers and lists."""
        return _plain_values(raw)

    @classmethod
    def read(cls, raw, path) -> dict:
        require(isinstance(raw, dict), lambda: f"{path}: '{DEPLOY_KEY}' entry must be a dict, "
                                               f"found {type(raw).__name__}")
        try:
            return cls.model_validate(raw).model_dump(exclude_none=True)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            raise InputError(f"{path}: {DEPLOY_KEY}.{field}: {err['msg']} (got {err['input']!r:.80})") from None


def _plain_values(v):
    if isinstance(v, dict):
        return {k: _plain_values(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain_values(x) for x in v]
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):
        return _plain_values(v.tolist())
    return v


# ------------------------------------------------------------------------------------------------- raw files
def load_state_dict(path) -> dict:
    """A state_dict (or a dict holding one under `net`/`state_dict`/`model`) as {name: np.ndarray}, plus the
    deployed metadata under DEPLOY_KEY if present."""
    import pickle
    import torch
    path = Path(path)
    require(path.is_file(), lambda: f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsupported content"
        raise InputError(f"{path}: refused to load: it holds pickled objects, not just tensors "
                         f"(loaded with weights_only=True; {first[:160]})") from None
    except Exception as exc:  # zip/pickle corruption surfaces as many types
        raise InputError(f"{path}: not a readable PyTorch checkpoint "
                         f"({type(exc).__name__}: {str(exc)[:160]})") from None
    require(isinstance(obj, dict), lambda: f"{path}: expected a dict of tensors, found {type(obj).__name__}")
    meta = obj.get(DEPLOY_KEY)
    for key in ("net", "state_dict", "model"):
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    out = {}
    for name, value in obj.items():
        if name == DEPLOY_KEY or not isinstance(value, torch.Tensor):
            continue   # optimizer steps, epochs, ...: not parameters
        arr = _array(path, name, value)
        require(arr.dtype.kind != "f" or bool(np.all(np.isfinite(arr))),
                lambda: f"{path}: {name!r} contains NaN or inf")
        out[str(name)] = arr
    require(out, lambda: f"{path}: no tensors found")
    if meta is not None:
        out[DEPLOY_KEY] = DeployMeta.read(meta, path)
    return out


def _array(path, name, t) -> np.ndarray:
    """A dense real tensor as a NumPy array (bfloat16, which NumPy lacks, as float32: exact); sparse, quantized
    and complex tensors are refused, naming the tensor."""
    import torch
    require(t.layout == torch.strided and not t.is_quantized, lambda: (
        f"{path}: {name!r} is a {'quantized' if t.is_quantized else str(t.layout).replace('torch.', '')} tensor; "
        "dense tensors are expected"))
    require(not t.is_complex(), lambda: f"{path}: {name!r} is complex ({t.dtype}); real tensors are expected")
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.detach().cpu().numpy()


def infer_model(state: dict) -> str:
    """The built-in model whose parameter names and shapes match the checkpoint."""
    from .frontends import models
    keys = {k: v.shape for k, v in state.items() if k != DEPLOY_KEY and not k.endswith("num_batches_tracked")}
    for name, factory in models.ZOO.items():
        sd = {k: tuple(v.shape) for k, v in factory().state_dict().items() if not k.endswith("num_batches_tracked")}
        if set(sd) <= set(keys) and all(tuple(keys[k]) == sd[k] for k in sd):
            return name
    raise InputError("cannot tell which architecture this checkpoint belongs to: pass --model FILE.py:FACTORY "
                     f"or a built-in name ({', '.join(models.ZOO)})")


def atomic_torch_save(obj, path, inputs=()) -> None:
    """torch.save through `snncheck.files.write_together`: never over an input, a device or a directory, and no
    temporary file left on failure."""
    import torch
    write_together({path: lambda f: torch.save(obj, f)}, inputs)


def _looks_float(state: dict, want: set) -> bool:
    """A float training checkpoint rather than a deployed one: BatchNorm statistics, or weights that are not
    integers."""
    if any(k.endswith(("num_batches_tracked", "running_mean", "running_var")) for k in state):
        return True
    weights = [np.asarray(v) for k, v in state.items() if k in want and k.endswith(".weight")]
    return bool(weights) and not any(P.is_integer_valued(w) for w in weights)


def _few(names, n=4) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def _mismatch(path, missing: list, extra: list, what: str) -> str:
    return f"{path}: layers do not match {what}: " + "; ".join(
        p for p in (f"missing {_few(missing)}" if missing else "", f"unexpected {_few(extra)}" if extra else "") if p)


# ------------------------------------------------------------------------------------------------- float model
@dataclasses.dataclass(frozen=True, eq=False)
class FloatModel:
    graph: Graph            # A as a graph, BatchNorm not folded
    model: Any              # what the SpikingJelly import returns beside the graph (the module, traced)
    spec: str


def load_float(path, spec: Optional[str] = None, input_shape=None, shape_hint=None) -> FloatModel:
    """The float model A: the checkpoint loaded into the module that `spec` builds (inferred from the parameter
    names when not given), imported as a graph. Its input shape: `input_shape`, else what the model says, else
    `shape_hint` (the inputs file's): inputs never reshape a model that says its shape."""
    state = load_state_dict(path)
    require(DEPLOY_KEY not in state,
            lambda: f"{path}: this is a deployed (integer) checkpoint; A must be the float one")
    from .frontends import models
    from .frontends.spikingjelly import import_module
    spec = spec or infer_model(state)
    module = models.build_module(spec)
    load_into(module, state, path)
    shape = input_shape or getattr(module, "input_shape", None) or models.INPUT_SHAPES.get(spec) or shape_hint
    require(shape is not None, lambda: f"input shape of {spec!r} unknown: give --input-shape C,H,W (or --inputs "
                                       "FILE.npy, or set module.input_shape)")
    graph, model = import_module(module.eval(), tuple(shape), Path(str(path)).stem)
    return FloatModel(graph, model, spec)


def load_into(module, state: dict, path) -> None:
    """The checkpoint's tensors into `module`, every name and shape checked first."""
    import torch
    expected = module.state_dict()
    given = {k: v for k, v in state.items() if k != DEPLOY_KEY}
    missing = [k for k in expected if k not in given and not k.endswith("num_batches_tracked")]
    extra = [k for k in given if k not in expected]
    require(not missing and not extra, lambda: _mismatch(path, missing, extra, "the model"))
    for k, v in expected.items():
        if k in given:
            require(tuple(given[k].shape) == tuple(v.shape),
                    lambda: f"{path}: {k!r} has shape {tuple(given[k].shape)}, the model expects {tuple(v.shape)}")
    module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in given.items()}, strict=False)


# ------------------------------------------------------------------------------------------------- deployed
def save_deployed(conversion, path, inputs=()) -> None:
    """Writes the deployed checkpoint of a `convert.Conversion`: integer tensors under the float model's names and
    the `snncheck` entry (see the module docstring)."""
    import torch
    g = conversion.graph
    out = {}
    for syn in g.of_type(*P.SYNAPSES):
        node = g.nodes[syn]
        w = np.asarray(node.weight)
        require(P.is_integer_valued(w) and w.min(initial=0) >= -128 and w.max(initial=0) <= 127,
                lambda: f"{syn}.weight is not int8 and cannot be saved as a deployed checkpoint")
        out[f"{syn}.weight"] = torch.from_numpy(w.astype(np.int8))
        if node.bias is not None:
            out[f"{syn}.bias"] = torch.from_numpy(np.asarray(node.bias).astype(np.int32))
    neurons = [(n, g.nodes[n]) for n in g.neurons]
    vthr = {n: int(node.threshold) for n, node in neurons}
    modes = {n: node.reset for n, node in neurons}
    meta = {"vthr": vthr if len(vthr) > 1 else list(vthr.values()), "input_scale": float(conversion.input_scale),
            "reset": modes if len(set(modes.values())) > 1 else next(iter(modes.values())), "rule": conversion.rule}
    extra = {"v_reset": {n: int(node.v_reset) for n, node in neurons if not node.soft_reset and node.v_reset != 0},
             "leak": {n: _plain(node.leak) for n, node in neurons if np.any(getattr(node, "leak", 0))},
             "v_init": {n: int(node.v_init) for n, node in neurons if node.v_init is not None},
             "readout_scale": dict(conversion.readout_scales)}
    meta.update({k: v for k, v in extra.items() if v})
    out[DEPLOY_KEY] = meta
    atomic_torch_save(out, path, inputs)


def _plain(value):
    a = np.asarray(value)
    return int(a) if a.ndim == 0 else [int(v) for v in a.ravel()]


@dataclasses.dataclass(frozen=True, eq=False)
class Deployed:
    graph: Graph
    input_scale: float
    reset: str              # "hard", "soft" or "mixed"
    inferred: list          # what was neither in the checkpoint nor on the command line


def load_deployed(path, float_graph: Graph, vthr=None, input_scale=None, reset=None) -> Deployed:
    """The integer network B: A's graph with BatchNorm folded (shortcuts explicit, as `convert.prepare` makes it),
    carrying B's integer tensors and thresholds.

    Command-line values (`vthr`, `input_scale`, `reset`) override the checkpoint's `snncheck` entry; what neither
    gives is inferred (input scale 1, A's reset modes, thresholds by rounding A's threshold times the fitted scale
    of the layer) and listed in `inferred`."""
    state = load_state_dict(path)
    meta = dict(state.pop(DEPLOY_KEY, None) or {})
    g = prepare(float_graph)
    synapses = g.of_type(*P.SYNAPSES)
    want = {f"{n}.weight" for n in synapses} | {f"{n}.bias" for n in synapses}
    missing = sorted(f"{n}.weight" for n in synapses if f"{n}.weight" not in state)
    extra = sorted(k for k in state if k not in want)
    require(not _looks_float(state, want), lambda: f"{path}: B holds float weights: it looks like the float "
            "checkpoint (A), not its deployed integer version; make one with `snncheck convert A.pth --model SPEC "
            "--out B.pth`")
    require(not missing and not extra, lambda: _mismatch(path, missing, extra, "the float model"))
    inferred = []
    input_scale = float(_pick(input_scale, meta.get("input_scale"), 1.0, "input_scale", inferred))
    require(bool(np.isfinite(input_scale)) and input_scale > 0,
            lambda: f"input scale must be positive, got {input_scale}")
    nodes = {syn: _synapse(path, g, syn, state) for syn in synapses}
    neurons = g.neurons
    modes = _per_neuron(_pick(reset, meta.get("reset"), None, "reset", inferred), neurons, "reset", path)
    bad = [m for m in modes.values() if m not in RESETS]
    require(not bad, lambda: f"reset must be 'hard' or 'soft', got {bad[0]!r}")
    v_resets = _per_neuron(meta.get("v_reset"), neurons, "v_reset", path)
    leaks = _per_neuron(meta.get("leak"), neurons, "leak", path)
    v_inits = _per_neuron(meta.get("v_init"), neurons, "v_init", path)
    thresholds = _thresholds(vthr if vthr is not None else meta.get("vthr"), neurons, path)
    if thresholds is None:
        inferred.append("vthr")
    for n in neurons:
        a = g.nodes[n]
        terms = _terms(g, n, input_scale)
        k = _scale_of(g, nodes, terms)
        theta = thresholds[n] if thresholds else max(1, int(np.rint(float(a.threshold) * k)))
        changes = dict(threshold=int(theta), reset=modes[n] or a.reset,
                       v_reset=_integer(v_resets[n] or 0, path, f"v_reset of {n!r}"),
                       v_init=None if v_inits[n] is None else _integer(v_inits[n], path, f"v_init of {n!r}"))
        if isinstance(a, P.AdditiveLIF):
            if leaks[n] is None and np.any(a.leak):
                inferred.append(f"leak of {n}")
            leak = np.rint(np.asarray(a.leak, np.float64) * k) if leaks[n] is None else leaks[n]
            changes["leak"] = _integer(np.reshape(leak, np.shape(a.leak)), path, f"leak of {n!r}")
        nodes[n] = dataclasses.replace(a, **changes)
        for t in terms:
            if t.is_shortcut(g):
                s = shortcut_scale(theta, float(a.threshold), k) / t.amplitude
                nodes[t.weight] = P.Scale(int(np.rint(float(g.nodes[t.weight].factor) * s)))
    kinds = {nodes[n].reset for n in neurons}
    scales = meta.get("readout_scale")
    out = g.replace(nodes, name=Path(str(path)).stem, input_scale=input_scale,
                    meta=dict(g.meta, deployed=str(path), **({"readout_scale": dict(scales)} if scales else {})))
    return Deployed(out, input_scale, kinds.pop() if len(kinds) == 1 else "mixed", inferred)


def _synapse(path, g: Graph, syn: str, state: dict):
    """B's integer Conv2d/Linear `syn`: A's hyper-parameters, B's tensors (shapes and integers checked)."""
    a = g.nodes[syn]
    w = state[f"{syn}.weight"]
    require(w.shape == a.weight.shape,
            lambda: f"{path}: {syn}.weight has shape {w.shape}, the float model has {a.weight.shape}")
    _require_integers(path, f"{syn}.weight", w)
    b = state.get(f"{syn}.bias")
    if b is not None:
        require(b.shape == (a.weight.shape[0],),
                lambda: f"{path}: {syn}.bias has shape {b.shape}, expected ({a.weight.shape[0]},)")
        _require_integers(path, f"{syn}.bias", b)
    return dataclasses.replace(a, weight=w.astype(np.int64), bias=None if b is None else b.astype(np.int64))


def _terms(g: Graph, n: str, input_scale: float) -> list:
    try:
        return weighted_terms(g, n, input_scale)
    except InputError:          # no integer form in A (a neuron with no synapse...): B keeps what it stores
        return []


def _scale_of(g: Graph, nodes: dict, terms: list) -> float:
    """The layer scale B's weights imply: the fitted scale of the main synapse times its source's amplitude."""
    if not terms:
        return 1.0
    t = primary(g, terms)
    return fit_scale(nodes[t.weight].weight, g.nodes[t.weight].weight) * t.amplitude


def _pick(cli, stored, default, name, inferred):
    if cli is not None:
        return cli
    if stored is not None:
        return stored
    inferred.append(name)
    return default


def _per_neuron(value, names: list, what: str, path) -> dict:
    """{neuron: value or None}: one value for all, a list in neuron order, or {neuron name: value}."""
    if isinstance(value, dict):
        unknown = [k for k in value if k not in names]
        require(not unknown, lambda: f"{path}: {what} names unknown spiking layers {unknown}; layers are {names}")
        return {n: value.get(n) for n in names}
    if isinstance(value, (list, tuple)):
        require(len(value) == len(names),
                lambda: f"{path}: {what} has {len(value)} values for {len(names)} spiking layers")
        return dict(zip(names, value))
    return {n: value for n in names}


def _integer(value, path, what: str):
    a = np.asarray(value)
    require(a.dtype.kind in "biuf" and P.is_integer_valued(a),
            lambda: f"{path}: {what} must be an integer, got {value!r}")
    return a.astype(np.int64) if a.ndim else int(a)


def _require_integers(path, name: str, arr: np.ndarray) -> None:
    """Integer dtypes pass; integer-valued floats too (the message is built only for a bad tensor)."""
    if arr.dtype.kind != "f":
        return
    require(bool(np.all(np.isfinite(arr))), lambda: f"{path}: {name} contains NaN or inf")
    bad = arr != np.round(arr)
    require(not bad.any(), lambda: f"{path}: {name} has {int(bad.sum())} non-integer values (e.g. "
                                    f"{arr[bad].ravel()[0]:.4g}): the deployed checkpoint must hold integers")


def _thresholds(vthr, names: list, path) -> Optional[dict]:
    """vthr as a list (in neuron order) or {neuron name: int} -> {neuron: int}, validated; None when not given."""
    if vthr is None:
        return None
    if isinstance(vthr, dict):
        unknown = [k for k in vthr if k not in names]
        require(not unknown, lambda: f"{path}: vthr names unknown spiking layers {unknown}; layers are {names}")
        require(len(vthr) == len(names), lambda: f"{path}: vthr gives {len(vthr)} of {len(names)} spiking layers")
        vthr = [vthr[n] for n in names]
    vthr = list(vthr) if isinstance(vthr, (list, tuple, np.ndarray)) else [vthr]
    require(len(vthr) == len(names),
            lambda: f"vthr has {len(vthr)} values for {len(names)} spiking layers ({', '.join(names)})")
    out = {}
    for name, v in zip(names, vthr):
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise InputError(f"vthr for {name!r} is not a number: {v!r}") from None
        require(bool(np.isfinite(f)) and f == round(f), lambda: f"vthr for {name!r} must be an integer, got {v!r}")
        require(1 <= f <= THRESHOLD_MAX, lambda: f"vthr for {name!r} is {int(f)}, outside PAIBox's range "
                                                 f"1..{THRESHOLD_MAX}")
        out[name] = int(f)
    return out


def __getattr__(name: str):
    """`build_module` and `resolve_factory` live in `snncheck.frontends.models`; the old names still reach them."""
    if name in ("build_module", "resolve_factory"):
        from .frontends import models
        return getattr(models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
