"""``dltool train --overfit-batches N`` and ``--find-lr``: checks before a long run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from dltool._text import counted
from dltool.commands._output import emit_json, emit_line, say, stderr


def run_sanity_check(config: Any, recipe: str | None, overfit: int | None, runs_dir: Path, as_json: bool) -> None:
    if overfit is not None:
        _overfit(config, overfit, as_json)
    else:
        _find_lr(config, recipe, runs_dir, as_json)


def _overfit(config: Any, batches: int, as_json: bool) -> None:
    """Exit 0 when the model memorises the batches, 1 when it cannot."""
    from dltool.engine.sanity import overfit_batches

    result = overfit_batches(config, batches)
    verdict = "passed" if result.reached else "FAILED: the model cannot memorise them; look for a bug"
    stderr.print(
        f"overfit {counted(result.batches, 'batch', 'batches')}: loss "
        f"{result.initial_loss:.4g} → {result.final_loss:.4g} in {result.steps} steps "
        f"(target < {result.target}): {verdict}",
        soft_wrap=True,
    )
    if as_json:
        emit_json(
            {
                "batches": result.batches,
                "steps": result.steps,
                "initial_loss": result.initial_loss,
                "final_loss": result.final_loss,
                "target": result.target,
                "reached": result.reached,
            }
        )
    if not result.reached:
        raise typer.Exit(1)


def _find_lr(config: Any, recipe: str | None, runs_dir: Path, as_json: bool) -> None:
    """Print the suggested learning rate; the curve goes to <runs-dir>/<recipe>-find-lr-<n>/."""
    from dltool.config import resolve_source
    from dltool.engine.sanity import find_lr, save_lr_curve

    result = find_lr(config)
    curve = save_lr_curve(result, config, runs_dir, resolve_source(recipe or "").name)
    document = {"suggested_lr": result.suggested_lr, "curve": str(curve), "lrs": result.lrs, "losses": result.losses}
    say(
        f"LR range test over {len(result.lrs)} steps ({result.lrs[0]:.1e} → {result.lrs[-1]:.1e}): "
        f"suggested lr {result.suggested_lr:.3g}; curve in {curve}"
    )
    if as_json:
        emit_json(document)
    else:
        emit_line(f"{result.suggested_lr:.6g}")
