"""The ML engineer's loop (issue 16): feature cache, heads, stacker, evaluation, model cards.

Kept apart from the product pipeline: the node only *loads* what this package
trains (``inference.models.heads``, ``inference.stacker``), through the checked
weights manifest.

    extract_features   ctnode features DIR --out CACHE
    train              ctnode train --features CACHE --labels labels.csv
    evaluate_features  ctnode evaluate --features CACHE --labels labels.csv
"""

from inference.training.cohort import write_phantom_cohort
from inference.training.dataset import Dataset, load_dataset
from inference.training.evaluate import EvaluationReport, evaluate_features
from inference.training.extract import ExtractionSummary, StudyExtraction, extract_features
from inference.training.fit import TrainingResult, TrainOptions, train
from inference.training.labels import Labels, LabelsError, read_labels

__all__ = [
    "Dataset", "EvaluationReport", "ExtractionSummary", "Labels", "LabelsError",
    "StudyExtraction", "TrainOptions", "TrainingResult", "evaluate_features",
    "extract_features", "load_dataset", "read_labels", "train", "write_phantom_cohort",
]
