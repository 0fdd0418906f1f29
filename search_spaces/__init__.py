"""Search spaces for caviar sweeps: domains, the space they form, the samplers over it, and
coarse-to-fine search (`CoarseToFine`, plain ask/tell).

Nothing here imports Ray until `SearchSpace.to_tune` is called.
"""

from ._box_sampling import SamplerName
from ._coarse_to_fine import CoarseToFine
from ._domains import ChoiceDomain, Domain, FloatDomain, IntDomain, domain_from_dict
from ._errors import Problem, SearchSpaceError
from ._samplers import RandomSampler, Sampler, SobolSampler, grid_points
from ._space import SearchSpace

__all__ = [
    "ChoiceDomain",
    "CoarseToFine",
    "Domain",
    "FloatDomain",
    "IntDomain",
    "Problem",
    "RandomSampler",
    "Sampler",
    "SamplerName",
    "SearchSpace",
    "SearchSpaceError",
    "SobolSampler",
    "domain_from_dict",
    "grid_points",
]
