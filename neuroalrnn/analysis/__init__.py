"""Analysis of fitted AL-RNNs: linear subregions, fixed points and cycles (and more to come)."""

from neuroalrnn.analysis.regions import (bits_to_codes, codes_to_bits, region_codes, region_occupancy,
                                         region_transitions, regions_by_group, unit_flips)
from neuroalrnn.analysis._fixed_points import fixed_points
from neuroalrnn.analysis._pwl import model_params, region_jacobian
from neuroalrnn.analysis._cycles import cycles
from neuroalrnn.analysis.geometry import pca_condition_averages, project, tdr_axes, tdr_coefficients, tdr_trajectories
from neuroalrnn.analysis.similarity import (cca_correlations, cv_similarity, linear_cka, procrustes_distance, rdm,
                                            rdm_correlation, ridge_map, shuffled_baseline)
from neuroalrnn.analysis.alignment import (axes_to_latent, cosine_table, map_directions, principal_angles,
                                           slow_mode_alignment, slow_modes)
from neuroalrnn.analysis.behavior import fit_psychometric, psychometric, psychometric_function, signed_contrast
from neuroalrnn.analysis.mechanisms import context_attractors, marker_gating, memory_attractors, region_sharing
from neuroalrnn.analysis.dsr import (hellinger_distance, n_step_prediction_error, power_spectrum_error,
                                     state_space_divergence, state_space_divergences)
