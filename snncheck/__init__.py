"""snncheck: cross-simulator consistency checks for spiking neural networks (SpikingJelly, PAIBox, a NumPy
reference). The command line is `snncheck` (`python -m snncheck`); the Python API is `snncheck.api`."""


def register_neuron(cls, to_graph) -> None:
    """Teaches snncheck a user's own neuron class: `to_graph(module)` returns the graph neuron it computes
    (docs/plugins.md). Imported lazily: `import snncheck` stays light."""
    from .frontends.plugins import register_neuron as register
    register(cls, to_graph)
