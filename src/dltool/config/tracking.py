"""The tracking keys of ``train``: the experiment trackers a run reports to
(``engine/trackers.py`` opens each by name) and MLflow's settings."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

Tracker = Literal["mlflow", "tensorboard"]


def _once_each(trackers: list[str]) -> list[str]:
    """A tracker listed twice would report every run twice (two MLflow runs of one training)."""
    if twice := sorted({name for name in trackers if trackers.count(name) > 1}):
        raise ValueError(f"{', '.join(twice)} listed more than once")
    return trackers


# One name, a list of names, or none.
Trackers = Annotated[
    list[Tracker],
    BeforeValidator(lambda v: [] if v in (None, "none") else [v] if isinstance(v, str) else v),
    AfterValidator(_once_each),
]


class MlflowConfig(BaseModel):
    # As every config section: unknown keys refused, frozen (only strings here: no number checks).
    model_config = ConfigDict(extra="forbid", frozen=True)

    experiment: str | None = Field(None, description="experiment name; null: $MLFLOW_EXPERIMENT_NAME, else dltool")
    run_name: str | None = Field(None, description="null: the run dir's name")
    parent_run: str | None = Field(None, description="the run id this run is a child of (tune sets it)")
