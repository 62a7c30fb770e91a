"""The base type of every registry entry's parameters: a strict, validated pydantic model.

A section of the config that names a registry entry (``model``, ``optimizer``,
``scheduler``, ``loss``) is validated against that entry's ``Params`` subclass, so an
unknown key or a bad value is caught before anything is built.
"""

from __future__ import annotations

from typing import Any, ClassVar, get_args

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

INT64_MAX = 2**63 - 1


def fits_int64(value: Any) -> Any:
    """A field validator: whole numbers (and lists of them) fit torch's 64-bit integers, so a
    ``width: 1e30`` is a config error rather than an overflow deep inside torch."""
    items = value if isinstance(value, (list, tuple)) else [value]
    if any(isinstance(v, int) and not isinstance(v, bool) and abs(v) > INT64_MAX for v in items):
        raise ValueError("should be a whole number below 2^63")
    return value


def no_true_for_numbers(cls: type[BaseModel], value: Any, info: ValidationInfo) -> Any:
    """A field validator run before pydantic's: ``true`` where a number is wanted is refused,
    as pydantic would read it as 1: ``grayscale: true`` (written like ``flip: true``) turned
    every training image grey, ``cutout: true`` cut one pixel. ``false`` reads as 0, which is
    "off" wherever a number can be 0."""
    if value is True and info.field_name and _numbers_only(cls.model_fields[info.field_name].annotation):
        raise ValueError("should be a number; true would be read as 1")
    return value


def _numbers_only(annotation: Any) -> bool:
    """Whether ``annotation`` takes an int or a float, and neither a bool nor a section that reads
    true as its defaults (``blur: true``)."""
    kinds = set(_leaves(annotation))
    return bool(kinds & {int, float}) and not any(
        k is bool or isinstance(k, type) and issubclass(k, BaseModel) for k in kinds
    )


def _leaves(annotation: Any) -> list[Any]:
    """The plain types inside ``annotation`` (``int | Literal["auto"]``, ``Annotated[float, ...]``)."""
    return [leaf for arg in get_args(annotation) for leaf in _leaves(arg)] or [annotation]


class Params(BaseModel):
    """Keyword arguments of one builder, plus the fields every entry of its kind shares."""

    # Every float parameter is finite: `weight_decay: .inf` or NaN betas are refused here.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    _fits_int64 = field_validator("*")(fits_int64)
    _no_true_for_numbers = field_validator("*", mode="before")(no_true_for_numbers)

    name: str
    # Fields handled by dltool itself rather than passed to the builder.
    common: ClassVar[frozenset[str]] = frozenset({"name"})
    # Fields holding filesystem paths: a run records them absolute, so it works from anywhere.
    path_fields: ClassVar[frozenset[str]] = frozenset()

    def builder_kwargs(self) -> dict[str, Any]:
        """The keywords the builder receives: every field that is not a common one."""
        return {k: v for k, v in self.model_dump().items() if k not in self.common}

    @classmethod
    def accepted_keys(cls, name: str) -> set[str]:
        """The keys entry ``name`` takes (what a config keeps when it switches to this entry)."""
        del name  # the fields say it, whatever the entry's name
        return set(cls.model_fields)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Every field with its default (``None`` where one is required)."""
        return {
            key: None if field.is_required() else field.get_default(call_default_factory=True)
            for key, field in cls.model_fields.items()
        }
