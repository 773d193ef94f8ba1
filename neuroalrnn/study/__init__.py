"""The nonlinearity study: when does a recurrent network need ReLU units, and what do they do?

``run_study`` runs the task suite (``neuroalrnn.tasks.SUITE``) x numbers of ReLU units x seeds,
cross-validated, with each task's recommended settings, and extracts each fitted model's
mechanism; ``summarize_study`` gives scores (mean, SEM, corrected paired tests against P = 0)
and the fraction of fits that show each mechanism; ``write_report`` an HTML report.
"""

from neuroalrnn.study.report import write_report
from neuroalrnn.study.runner import P_VALUES, run_study, study_config
from neuroalrnn.study.summary import summarize_study

__all__ = ["run_study", "study_config", "summarize_study", "write_report", "P_VALUES"]
