"""Training: a generic resumable trainer and task fitting on TrialDatasets."""

from neuroalrnn.fit.trainer import NonFiniteLossError, TrainResult, train

__all__ = ["train", "TrainResult", "NonFiniteLossError", "fit_task", "task_accuracy", "task_outputs",
           "model_choices", "fit_teacher_forcing", "TeacherForcingObjective", "ObservedALRNN"]


def __getattr__(name):
    if name in ("fit_task", "task_accuracy", "task_outputs", "model_choices", "masked_loss"):
        from neuroalrnn.fit import task

        return getattr(task, name)
    if name in ("fit_teacher_forcing", "TeacherForcingObjective", "make_evaluate"):
        from neuroalrnn.fit import teacher_forcing

        return getattr(teacher_forcing, name)
    if name in ("ObservedALRNN", "IdentityObservation", "LinearObservation"):
        from neuroalrnn.fit import observation

        return getattr(observation, name)
    raise AttributeError(f"module 'neuroalrnn.fit' has no attribute {name!r}")
