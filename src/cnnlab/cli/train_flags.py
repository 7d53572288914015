"""How `cnnlab train --help` presents TrainConfig's flags: its sections, and a line for fields without help.

A section opens at the field named here and runs until the next one, in TrainConfig's field order, so a field
added to TrainConfig lands in the section of its neighbours without an edit here.
"""

from __future__ import annotations

MODEL = "model and task"
DATA = "data"
OPTIMISATION = "optimisation"
REGULARISATION = "regularisation"
RUN = "run and output"
DEVICE = "device and processes"

SECTIONS = {
    "task": MODEL,
    "data": DATA,
    "epochs": OPTIMISATION,
    "l1": REGULARISATION,
    "monitor": RUN,
    "device": DEVICE,
    "tensorboard": RUN,
    "class_weights": "class imbalance and operating point",
}

# One line for each field whose TrainConfig metadata has no `help` (the metadata's own text wins).
HELP = {
    "layers": "a layer list given inline (a YAML config's `layers:`), instead of --model",
    "test_data": "a separate test set (default: the data set's own test split, if it has one)",
    "val_split": "fraction of the training data held out for validation",
    "resize": "resize images to N or H,W pixels",
    "channels": "convert images to 1 (grey) or 3 (colour) channels",
    "epochs": "passes over the training data",
    "batch_size": "images per training step",
    "eval_batch_size": "images per step when validating and testing",
    "optimizer.momentum": "SGD momentum",
    "optimizer.nesterov": "SGD with Nesterov momentum",
    "optimizer.betas": "Adam's two moment decay rates",
    "schedule.step_size": "step: epochs between learning-rate decays",
    "schedule.milestones": "multistep: the epochs at which the learning rate decays",
    "schedule.gamma": "step, multistep, plateau: the factor the learning rate is multiplied by",
    "schedule.min_lr": "cosine, plateau: the lowest learning rate",
    "label_smoothing": "share of each label spread over the other classes (Szegedy et al. 2016)",
    "early_stopping.min_delta": "the least change that counts as an improvement",
    "seed": "seeds data splits, initialisation, shuffling and augmentation",
    "deterministic": "deterministic kernels only (slower, bit-identical reruns)",
    "channels_last": "NHWC memory layout (faster convolutions on recent GPUs)",
    "compile": "torch.compile the model",
    "threads": "CPU threads for torch (default: torch's choice)",
    "tensorboard": "also log to TensorBoard (tensorboard/ in the run folder)",
    "progress": "show a progress bar while training",
}
