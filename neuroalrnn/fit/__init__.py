"""Training: a generic resumable trainer, task fitting and teacher forcing, one model or an ensemble."""

from neuroalrnn.fit.trainer import NonFiniteLossError, TrainResult, train

__all__ = ["train", "TrainResult", "NonFiniteLossError", "fit_task", "task_accuracy", "task_outputs",
           "model_choices", "fit_teacher_forcing", "TeacherForcingObjective", "ObservedALRNN",
           "train_ensemble", "fit_task_ensemble", "fit_teacher_forcing_ensemble"]


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
    if name == "train_ensemble":
        from neuroalrnn.fit.ensemble import train_ensemble

        return train_ensemble
    if name == "fit_task_ensemble":
        from neuroalrnn.fit.ensemble_task import fit_task_ensemble

        return fit_task_ensemble
    if name == "fit_teacher_forcing_ensemble":
        from neuroalrnn.fit.ensemble_tf import fit_teacher_forcing_ensemble

        return fit_teacher_forcing_ensemble
    raise AttributeError(f"module 'neuroalrnn.fit' has no attribute {name!r}")
