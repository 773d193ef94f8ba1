"""Task generators: each returns a seeded TrialDataset with inputs, targets, mask and trial coords.

Steps where the loss applies are marked by the variable ``loss_weight``
((trial, time) or (trial, time, output)); ``mask`` marks valid steps only.
"""

from neuroalrnn.tasks.image_sequence import digit_sequence
from neuroalrnn.tasks.memory import TASKS, addition, copy_task, delayed_match, flipflop, multitask
from neuroalrnn.tasks.recommended import SUITE, is_solved, make_task, recommended
from neuroalrnn.tasks.stimulus_selection import choice_accuracy, ideal_observer, stimulus_selection

__all__ = ["stimulus_selection", "ideal_observer", "choice_accuracy", "addition", "copy_task",
           "flipflop", "delayed_match", "multitask", "TASKS", "digit_sequence",
           "SUITE", "recommended", "make_task", "is_solved"]
