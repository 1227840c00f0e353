import dagster as dg

from mediasift.extraction.compute import Compute, RayCompute, compute_for
from resources.settings import SettingsResource

_computes: dict[str, Compute] = {}
"""One per process and settings: an inline worker keeps its models for the next run in the process."""


class ComputeResource(dg.ConfigurableResource):
    """Where extraction runs (`MEDIASIFT_RAY`): `off` (inline, in the run's process), `local` (a private
    local Ray) or a Ray cluster address (named actor pools that keep models warm for every run)."""

    settings: SettingsResource

    def get(self) -> Compute:
        key = self.settings.key
        if key not in _computes:
            _computes[key] = compute_for(self.settings.get())
        return _computes[key]

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Leave Ray at the end of the run, while the process is whole: left to Ray's exit hook, a run
        process lingered 10+ s after its run had finished, still using CPU."""
        for key, compute in list(_computes.items()):
            if isinstance(compute, RayCompute):
                compute.close()
                del _computes[key]
