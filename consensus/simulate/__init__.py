"""The deterministic simulator: real replicas, simulated network, clock and disks.

`python -m consensus.simulate --help` runs it; `run(SimConfig(seed=...))` runs one seed.
"""

from consensus.simulate.world import RunResult, Scripted, SimConfig, run

__all__ = ["RunResult", "Scripted", "SimConfig", "run"]
