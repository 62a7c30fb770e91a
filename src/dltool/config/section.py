"""The base of every config section: unknown keys refused, frozen, finite, no true for a number."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, field_validator

from dltool.params import fits_int64, no_true_for_numbers


class Section(BaseModel):
    # Every float of every section is finite: `--lr inf` or `std: [.nan]` is refused here.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    _fits_int64 = field_validator("*")(fits_int64)
    _no_true_for_numbers = field_validator("*", mode="before")(no_true_for_numbers)
