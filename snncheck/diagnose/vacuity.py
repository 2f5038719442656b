"""Empty checks: what was compared cannot show a difference, so "consistent" would claim what nobody saw.

A layer is *quiet* when no compared run fires in it, or when every run fires fewer than MIN_SPIKES spikes at a rate
below QUIET_RATE per neuron and step: any error of that layer (a threshold twice too high, a reset the other way)
then changes nothing, or next to nothing, that was compared. (A small output layer firing 9 spikes over 3 samples
at 10% is not quiet: a threshold error would move them.) A plan with A
and B whose A-against-B pair did not run compared their parameters only. Each gives a `vacuous` warning; with no
error the verdict is then `inconclusive` (exit 3), never `consistent` (`snncheck.diagnose.verdict`).
"""
from __future__ import annotations

from . import Diagnosis

MIN_SPIKES = 10            # spikes a layer must fire in a pair's runs before its agreement means anything ...
QUIET_RATE = 1e-3          # ... unless it fires at least this often per neuron and step


def quiet_layers(pairs: list, layers) -> dict:
    """{layer: most spikes any compared run fired in it} for the layers quiet in every pair."""
    out = {}
    for name in layers:
        seen = [(max(int(lc.count_a.sum()), int(lc.count_b.sum())), max(float(lc.rate_a.mean()),
                                                                        float(lc.rate_b.mean())))
                for p in pairs for lc in p.layers if lc.name == name]
        if not seen:
            continue
        spikes, rate = max(s for s, _ in seen), max(r for _, r in seen)
        if spikes == 0 or (spikes < MIN_SPIKES and rate < QUIET_RATE):
            out[name] = spikes
    return out


def check(pairs: list, layers, a_vs_b_planned: bool, a_vs_b_ran: bool, samples: int) -> list:
    """`vacuous` warnings for the quiet layers (all of them at once, named at the first) and for an A-against-B
    comparison that was planned (A and B given) but not run."""
    out = []
    quiet = quiet_layers(pairs, layers)
    if quiet:
        first = next(iter(quiet))
        every = len(quiet) == len(tuple(layers))
        shown = ", ".join(f"{n} ({c} spikes)" for n, c in list(quiet.items())[:6]) + (", ..." if len(quiet) > 6
                                                                                     else "")
        out.append(Diagnosis(
            "vacuous", first, "warning",
            ("every layer" if every else f"{len(quiet)} of {len(tuple(layers))} layers") +
            f" (almost) never fired in any compared run over {samples} sample(s): {shown}. "
            "A fault in a layer that does not fire changes nothing that was compared, so agreement there shows "
            "nothing; a pipelined layer that never fires has no detectable lag ('?' in the lag column)",
            evidence={"layer": first, "quiet": quiet, "min_spikes": MIN_SPIKES, "samples": samples},
            fix="compare on inputs that make these layers fire (more samples, --samples N; real data rather than "
                "noise), or check that the network's thresholds suit its weights (a random network barely fires)"))
    if a_vs_b_planned and not a_vs_b_ran:
        out.append(Diagnosis(
            "vacuous", None, "warning",
            "A and B were not run against each other (no A~B pair: A's runs were left out or not asked for): "
            "only B's runs against each other and the parameters of B against A were compared",
            evidence={"a_vs_b": False},
            fix="include a backend that runs A (--runners reference,spikingjelly,...)"))
    return out
