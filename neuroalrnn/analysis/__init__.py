"""Analysis of fitted AL-RNNs: linear subregions, fixed points and cycles (and more to come)."""

from neuroalrnn.analysis.regions import (bits_to_codes, codes_to_bits, region_codes, region_occupancy,
                                         region_transitions, regions_by_group, unit_flips)
from neuroalrnn.analysis.fixed_points import fixed_points, model_params, region_jacobian
from neuroalrnn.analysis.cycles import cycles
