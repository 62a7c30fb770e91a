"""benches/results.json: every row has a stable id, the goal it is held to and whether it met
it; RESULTS.md and the README's table are generated from it."""

from __future__ import annotations

import json
import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "benches"))
import run_all
from _common import Row, slug, table


def test_met_compares_the_ratio_with_the_goal() -> None:
    assert Row("a", "1", "1", 0.97, id="b.at-goal", goal=0.97).met is True
    assert Row("a", "1", "1", 0.96, id="b.under", goal=0.97).met is False
    assert Row("a", "1", "1", 2.5, id="b.no-goal").met is None
    assert Row("a", "not measured (no CUDA device)", "", None, id="b.unmeasured", goal=0.3).met is None


@pytest.mark.parametrize("bad", ["", "startup", "Startup.help", "startup.", "startup.a_b", "startup.a--b", ".help"])
def test_an_id_that_is_not_a_slug_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="is not <bench>.<what>"):
        Row("a", "1", "1", 1.0, id=bad)


def test_a_row_round_trips_through_its_dict_and_met_is_worked_out_again() -> None:
    row = Row("eval (images/s)", "95", "100 bare", 0.95, id="eval-throughput.x", goal=0.98)
    stored = row.as_dict()
    assert stored["id"] == "eval-throughput.x" and stored["goal"] == 0.98 and stored["met"] is False
    assert Row.from_dict({**stored, "met": True}) == row  # a hand-edited `met` does not survive
    assert Row.from_dict({**stored, "met": True}).met is False


def test_slug_makes_an_id_word_of_a_label() -> None:
    assert slug("list --json") == "list-json"
    assert slug("photo recipe: RRC + flip") == "photo-recipe-rrc-flip"


def test_the_table_shows_the_goal_and_whether_it_was_met() -> None:
    rows = [(Row("loop", "9", "10", 0.9, id="b.loop", goal=0.97), "here"), (Row("n", "3", "", None, id="b.n"), "here")]
    lines = table(rows).splitlines()
    assert lines[0] == "| bench | dltool | reference | ratio | goal | met | machine |"
    assert lines[2] == "| loop | 9 | 10 | 0.90× | ≥ 0.97× | **no** | here |"
    assert lines[3] == "| n | 3 |  |  |  |  | here |"


def test_ids_must_carry_their_bench_name_and_be_unique() -> None:
    run_all.check_ids("eval_throughput", [Row("a", "1", "1", 1.0, id="eval-throughput.a")])
    with pytest.raises(ValueError, match="must begin with 'eval-throughput.': startup.a"):
        run_all.check_ids("eval_throughput", [Row("a", "1", "1", 1.0, id="startup.a")])
    twice = [Row("a", "1", "1", 1.0, id="startup.a"), Row("b", "2", "2", 1.0, id="startup.a")]
    with pytest.raises(ValueError, match="used twice: startup.a"):
        run_all.check_ids("startup", twice)


def test_a_bench_run_writes_ids_goals_and_met() -> None:
    import torch

    before = torch.get_num_threads()  # one here (conftest): a later in-process run trains on it
    result = run_all._run_one("startup", quick=True, device="cpu")
    assert torch.get_num_threads() == before  # every core for the bench only
    rows = {row["id"]: row for row in result["rows"]}
    assert list(rows)[:3] == ["startup.help", "startup.list", "startup.list-json"]
    assert all(rows[i]["goal"] is None and rows[i]["met"] is None and rows[i]["ratio"] > 0 for i in list(rows)[:3])
    # The import budget of a training run: torch's share, and none of the packages it never uses.
    assert float(rows["startup.train-imports.torch"]["dltool"].replace(",", "")) > 0
    assert rows["startup.train-imports.heavy"]["dltool"] == "none"


def test_the_stored_results_have_valid_rows_and_the_readme_is_generated_from_them() -> None:
    stored = json.loads((REPO / "benches" / "results.json").read_text(encoding="utf-8"))["benches"]
    assert set(stored) <= set(run_all.BENCHES)
    for name, result in stored.items():
        rows = [Row.from_dict(row) for row in result["rows"]]
        run_all.check_ids(name, rows)
        assert [row.met for row in rows] == [row["met"] for row in result["rows"]]
    markdown = run_all._markdown(stored)
    assert (REPO / "benches" / "RESULTS.md").read_text(encoding="utf-8") == markdown
    assert f"{run_all.START}\n{markdown}{run_all.END}" in (REPO / "README.md").read_text(encoding="utf-8")
