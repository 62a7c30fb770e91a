"""Hyperparameter search over dltool runs, on Optuna: spaces, studies, trials, storage.

``prepare_study`` validates and creates (or reopens) a study dir, ``tune`` runs its trials,
``open_study`` loads a study dir's study. Optuna is imported only when a study is used.
"""

from dltool.tuning.prepare import prepare_study
from dltool.tuning.progress import StudyStart, TuneObserver
from dltool.tuning.records import BestTrial, StudyRecord
from dltool.tuning.settings import StudyOptions, TuneSettings
from dltool.tuning.space import Param, SearchSpace, load_space, parse_space
from dltool.tuning.study import TrialRow, open_study, read_study_json
from dltool.tuning.tuner import TuneResult, tune

__all__ = [
    "BestTrial",
    "Param",
    "SearchSpace",
    "StudyOptions",
    "StudyRecord",
    "StudyStart",
    "TrialRow",
    "TuneObserver",
    "TuneResult",
    "TuneSettings",
    "load_space",
    "open_study",
    "parse_space",
    "prepare_study",
    "read_study_json",
    "tune",
]
