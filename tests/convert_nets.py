"""Float graphs for the conversion and diagnosis tests, built by hand as snncheck.graph.Graph (torch-free): the
trained digits CSNN from its checkpoint, seeded AlexNet-style and 28x28 CSNN stacks with thresholds balanced on
resized digits, and the diagnosis as the pipeline runs it, on reference runs of A and B.

Node names are the module paths of the zoo's models (`conv_fc.0`, `features.3`), as the SpikingJelly import names
them, so the messages and fixes read as they do for a user's model."""
from __future__ import annotations

from pathlib import Path

import numpy as np

import snncheck
from snncheck import checkpoint, data
from snncheck.backends.reference import ReferenceBackend, evaluate
from snncheck.diagnose import dynamic, static
from snncheck.graph import Graph, chain, fold_batchnorm
from snncheck.graph import primitives as P

DIGITS = Path(snncheck.__file__).parent / "models" / "digits_csnn.pth"


def _if(reset: str) -> P.IF:
    return P.IF(threshold=1.0, reset=reset, v_reset=0.0)


def _bn(state, name) -> P.BatchNorm:
    return P.BatchNorm(state[f"{name}.running_mean"], state[f"{name}.running_var"], state[f"{name}.weight"],
                       state[f"{name}.bias"], 1e-5)


def csnn_layers(state: dict, reset: str = "hard") -> list:
    """The zoo's CSNN under `conv_fc`: (conv-BN-IF-maxpool) x 2, flatten, (linear-IF) x 2."""
    return [("conv_fc.0", P.Conv2d(state["conv_fc.0.weight"], state.get("conv_fc.0.bias"), padding=(1, 1))),
            ("conv_fc.1", _bn(state, "conv_fc.1")), ("conv_fc.2", _if(reset)), ("conv_fc.3", P.MaxPool2d()),
            ("conv_fc.4", P.Conv2d(state["conv_fc.4.weight"], state.get("conv_fc.4.bias"), padding=(1, 1))),
            ("conv_fc.5", _bn(state, "conv_fc.5")), ("conv_fc.6", _if(reset)), ("conv_fc.7", P.MaxPool2d()),
            ("conv_fc.8", P.Flatten()),
            ("conv_fc.9", P.Linear(state["conv_fc.9.weight"], state["conv_fc.9.bias"])), ("conv_fc.10", _if(reset)),
            ("conv_fc.11", P.Linear(state["conv_fc.11.weight"], state["conv_fc.11.bias"])),
            ("conv_fc.12", _if(reset))]


def digits_graph(reset: str = "hard") -> Graph:
    """The embedded, trained digits CSNN (1 -> 8 -> 16 channels, 64 -> 32 -> 10), BatchNorm unfolded."""
    return chain(csnn_layers(checkpoint.load_state_dict(DIGITS), reset), (1, 8, 8), name="digits")


def _uniform(rng, shape, fan_in):
    bound = 1.0 / np.sqrt(fan_in)           # torch's default init for Conv2d/Linear
    return rng.uniform(-bound, bound, shape).astype(np.float32)


def alexnet_graph(reset: str = "hard", seed: int = 0, size: int = 16) -> Graph:
    """The zoo's alexnet_small, seeded: conv-IF x3 with pooling and biases, then two linears."""
    rng = np.random.default_rng(seed)

    def conv(i, o):
        return P.Conv2d(_uniform(rng, (o, i, 3, 3), 9 * i), _uniform(rng, (o,), 9 * i), padding=(1, 1))

    def linear(i, o):
        return P.Linear(_uniform(rng, (o, i), i), _uniform(rng, (o,), i))

    feat = 32 * (size // 4) ** 2
    return chain([("features.0", conv(3, 16)), ("features.1", _if(reset)), ("features.2", P.MaxPool2d()),
                  ("features.3", conv(16, 32)), ("features.4", _if(reset)), ("features.5", P.MaxPool2d()),
                  ("features.6", conv(32, 32)), ("features.7", _if(reset)),
                  ("classifier.0", P.Flatten()), ("classifier.2", linear(feat, 64)), ("classifier.3", _if(reset)),
                  ("classifier.4", linear(64, 10)), ("classifier.5", _if(reset))], (3, size, size), name="alexnet")


def csnn28_graph(reset: str = "hard", seed: int = 0) -> Graph:
    """The zoo's csnn28 (16, 32 channels, 128 hidden), seeded, BatchNorm statistics spread out."""
    rng = np.random.default_rng(seed)
    state = {"conv_fc.0.weight": _uniform(rng, (16, 1, 3, 3), 9),
             "conv_fc.4.weight": _uniform(rng, (32, 16, 3, 3), 144),
             "conv_fc.9.weight": _uniform(rng, (128, 32 * 49), 32 * 49),
             "conv_fc.9.bias": _uniform(rng, (128,), 32 * 49),
             "conv_fc.11.weight": _uniform(rng, (10, 128), 128), "conv_fc.11.bias": _uniform(rng, (10,), 128)}
    for name, c in (("conv_fc.1", 16), ("conv_fc.5", 32)):
        state.update({f"{name}.running_mean": np.zeros(c, np.float32),
                      f"{name}.running_var": (rng.random(c) * 1.5 + 0.25).astype(np.float32),
                      f"{name}.weight": (rng.random(c) + 0.5).astype(np.float32),
                      f"{name}.bias": np.zeros(c, np.float32)})
    return chain(csnn_layers(state, reset), (1, 28, 28), name="csnn28")


def balance_thresholds(graph: Graph, inputs: np.ndarray, quantile: float = 0.9) -> Graph:
    """Threshold balancing, layer by layer in order: each neuron's threshold becomes the given quantile of its
    synaptic input over the inputs, so that untrained weights still give every layer spikes."""
    for n in graph.neurons:
        folded = fold_batchnorm(graph)
        x = folded.inputs_of(n)[0]
        value = evaluate(folded, {graph.input: inputs}, exact=False, targets=[], keep=[x])[x]
        graph = graph.with_node(n, threshold=max(float(np.quantile(value, quantile)), 1e-3))
    return graph


def digits_inputs(n: int, timesteps: int = 4, shape=(1, 8, 8), split: str = "test") -> np.ndarray:
    x, _ = data.digits(split)
    x = x[:n]
    return data.direct(x if x.shape[1:] == tuple(shape) else data.resize(x, shape), timesteps).astype(np.float32)


def model(arch: str, reset: str = "hard") -> tuple:
    """(float graph, inputs, calibration inputs) for "digits", "alexnet" or "csnn28"."""
    if arch == "digits":
        return digits_graph(reset), digits_inputs(16), digits_inputs(64, split="train")
    if arch == "alexnet":
        cal = digits_inputs(32, shape=(3, 16, 16), split="train")
        return balance_thresholds(alexnet_graph(reset), cal), digits_inputs(12, shape=(3, 16, 16)), cal
    cal = digits_inputs(8, shape=(1, 28, 28))
    return balance_thresholds(csnn28_graph(reset), cal), cal, cal


# ----------------------------------------------------------------------------------------------- the diagnosis
def runs(float_graph: Graph, int_graph: Graph, inputs: np.ndarray, input_scale: float) -> tuple:
    """(A's reference run, B's reference run on the deployed inputs round(x * input_scale))."""
    a = ReferenceBackend().run(float_graph, inputs, "reference:a")
    b = ReferenceBackend().run(int_graph, np.rint(np.asarray(inputs, np.float64) * input_scale), "reference:b")
    return a, b


def diagnose(float_graph: Graph, int_graph: Graph, inputs: np.ndarray, input_scale: float) -> tuple:
    """(static stats, dynamic extras, diagnoses) as the pipeline's conversion diagnosis makes them, from reference
    runs of A and B (the static diagnoses with the dynamic evidence joined, then the dynamic findings)."""
    a, b = runs(float_graph, int_graph, inputs, input_scale)
    stats, found = static.analyse(float_graph, int_graph, input_scale)
    extras, found = dynamic.analyse(float_graph, int_graph, a, {b.label: b}, inputs, input_scale,
                                    {n: st["scale"] for n, st in stats.items()}, found)
    return stats, extras, found


def pipeline_report(float_graph: Graph, int_graph: Graph, inputs: np.ndarray, input_scale: float,
                    backends=("reference",), **backend_options):
    """The full pipeline's report for A against B, for the tests marked NEEDS_PIPELINE (their assertions read the
    verdict, the pairs, the JSON...). To reconnect once `snncheck.pipeline` lands."""
    from snncheck import pipeline, plan
    a = plan.Subject(plan.Role.FLOAT, float_graph)
    b = plan.Subject(plan.Role.DEPLOYED, int_graph, input_scale)
    return pipeline.execute(plan.diff(a, b, plan.Inputs.sequences(inputs), backends=backends,
                                      backend_options=backend_options or None))
