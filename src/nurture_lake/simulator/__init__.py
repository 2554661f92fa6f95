"""The simulated world: organic landing traffic with bad records, responses to decisions, the oracle.

Example::

    from nurture_lake.simulator import World
    world = World(cfg)
    manifest = world.generate_organic()
    print(manifest.summary())
"""

from nurture_lake.simulator.config import BAD_KINDS, SimulatorConfig
from nurture_lake.simulator.manifest import Manifest, RegionManifest
from nurture_lake.simulator.population import LIFECYCLE_STAGES, SIM_CHANNELS, RegionPopulation
from nurture_lake.simulator.world import World, default_state_path, landing_root, split_due

__all__ = [
    "BAD_KINDS",
    "LIFECYCLE_STAGES",
    "SIM_CHANNELS",
    "Manifest",
    "RegionManifest",
    "RegionPopulation",
    "SimulatorConfig",
    "World",
    "default_state_path",
    "landing_root",
    "split_due",
]
