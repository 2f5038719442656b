"""The network as a graph: primitives with their equations (`primitives`), the graph with shapes inferred along
its edges (`graph`), and transforms that keep its function (`transforms`)."""
from . import primitives
from .graph import Graph, Term, chain
from .primitives import *  # noqa: F401,F403  (the primitives are the vocabulary of every other module)
from .primitives import LINEAR_OPS, NEURONS, READOUTS, SYNAPSES, is_integer_valued, is_neuron, parameters
from .transforms import fold_batchnorm, folded_from

__all__ = ["Graph", "Term", "chain", "fold_batchnorm", "folded_from", "LINEAR_OPS", "NEURONS",
           "READOUTS", "SYNAPSES", "is_integer_valued", "is_neuron", "parameters", "primitives"] + \
    [name for name in dir(primitives) if isinstance(getattr(primitives, name), type)
     and issubclass(getattr(primitives, name), primitives.Primitive) and not name.startswith("_")]
