"""dltool tune in one process: spaces and their errors, samplers, grids, seeds, pruning,
failed trials, the study record, and the stale-trial sweeps of both storages."""

from __future__ import annotations

import itertools
import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from dltool.config import load_config
from dltool.errors import ConfigError
from dltool.tuning import liveness, open_study, parse_space
from dltool.tuning._optuna import quiet_optuna, storage_of, trial_id
from dltool.tuning.liveness import sweep_stale_trials, worker_identity
from dltool.tuning.storage import JOURNAL, open_storage
from studies import QUICK, RANDOM_SPACE, study_json, trials_csv, write

# --- search spaces --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ("optimizer.lrr: [1.0e-3]", "optimizer.lrr: unknown key; did you mean 'lr'?"),
        ("optimizer.momentum: [0.9]", "optimizer.momentum: unknown key; 'momentum' is a key of optimizer sgd"),
        ("optimizer.lr: {type: float, low: 0.1, high: 0.001}", "optimizer.lr: low 0.1 is greater than high 0.001"),
        ("optimizer.lr: {type: float, low: 0, high: 0.1, log: true}", "optimizer.lr: a log range needs low > 0"),
        ("model.activation: {type: categorical, choices: []}", "model.activation: empty list of choices"),
        ("model.width: []", "model.width: empty list of choices"),
        ("model.width: {type: int, low: 32, hi: 64}", "model.width.hi: unknown field; did you mean 'high'?"),
        ("model.width: {type: int, low: 32.5, high: 64}", "model.width.low: an int range needs whole numbers"),
        ("model.width: {low: 32, high: 64, log: true, step: 2}", "model.width: a whole-number range takes log or step"),
        ("model.width: [-3, 64]", "model.width: should be greater than or equal to 1 (got -3)"),
        ("model.activation: [relu, tahn]", "model.activation: "),
        ("lr: [0.1]", "lr: expected a dotted config key"),
        ("optimizer.lr: 0.1", "to fix a value use --set optimizer.lr=0.1"),
        ("train.epochz: [1, 2]", "train.epochz: unknown key; did you mean 'epochs'?"),
    ],
)
def test_a_bad_space_is_a_usage_error_naming_the_key(cli, tmp_path: Path, space: str, message: str) -> None:
    result = cli("tune", "digits-mlp", "--space", write(tmp_path / "space.yaml", space + "\n"), code=2)
    assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert result.stdout == "" and not (tmp_path / "runs").exists()  # nothing was created


def test_a_grid_needs_values_a_flag_cannot_also_fix_a_tuned_key_and_sqlite_takes_one_worker(
    cli, tmp_path: Path
) -> None:
    space = write(tmp_path / "space.yaml", "optimizer.lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}\n")
    result = cli("tune", "digits-mlp", "--space", space, "--sampler", "grid", code=2)
    assert "optimizer.lr: grid search needs a list of values or a range with a step" in result.stderr
    result = cli("tune", "digits-mlp", "--space", space, "--lr", "0.1", code=2)
    assert "optimizer.lr: both fixed by --lr and tuned by the space" in result.stderr
    result = cli("tune", "digits-mlp", "--space", space, "--set", "optimizer.lr=0.1", code=2)
    assert "optimizer.lr: both fixed by --set" in result.stderr
    result = cli("tune", "digits-mlp", "--space", space, "--storage", "sqlite:///s.db", "--workers", "2", code=2)
    assert "SQLite cannot take several workers" in result.stderr
    result = cli("tune", "digits-mlp", "--space", space, "--sampler", "tpee", code=2)
    assert "unknown sampler 'tpee'; did you mean 'tpe'?" in result.stderr
    result = cli("tune", "digits-mlp", "--space", space, "--metric", "val_accuracy", code=2)
    assert "unknown metric 'val_accuracy'; did you mean 'val_acc'?" in result.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ("postgres://me@db/studies", "unknown database 'postgres'; did you mean 'postgresql'?"),
        ("file:///tmp/study.journal", "unknown database 'file'; expected a database URL such as"),
        ("sqlite://study.db", "'study.db' is read as a host; a SQLite file is sqlite:///study.db"),
        ("sqlite:///", "an in-memory SQLite database ends with its connection"),
        ("sqlite:///:memory:", "an in-memory SQLite database ends with its connection"),
    ],
)
def test_a_storage_url_that_names_no_database_is_a_usage_error(cli, tmp_path: Path, storage: str, message) -> None:
    # Unknown kinds were "cannot open: Can't load plugin: sqlalchemy.dialects:postgres" (exit 1,
    # passed by --dry-run); an in-memory SQLite database an internal error after the study dir
    # was made ("KeyError: 'Record does not exist.'").
    space = write(tmp_path / "space.yaml", "optimizer.lr: [1.0e-3]\n")
    for dry_run in (["--dry-run"], []):
        result = cli("tune", "digits-mlp", "--space", space, *QUICK, "--storage", storage, *dry_run, code=2)
        assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "runs").exists()


def test_a_space_may_switch_the_optimizer_and_tune_each_ones_own_keys() -> None:
    import optuna

    base = load_config("digits-mlp").to_dict()
    space = parse_space({"optimizer.momentum": [0.5, 0.9], "optimizer.name": ["adam", "sgd"]}, base)
    assert space.keys == ["optimizer.name", "optimizer.momentum"]  # the entry is chosen first
    assert list(space.grid(base)) == [
        {"optimizer.name": "adam"},
        {"optimizer.name": "sgd", "optimizer.momentum": 0.5},
        {"optimizer.name": "sgd", "optimizer.momentum": 0.9},
    ]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        values = space.suggest(trial, base)
        config = space.apply(base, values)
        assert ("optimizer.momentum" in values) == (config.optimizer.name == "sgd")
        study.tell(trial, 0.0)
    with pytest.raises(ConfigError, match="optimizer.momentum: unknown key"):
        parse_space({"optimizer.momentum": [0.9], "optimizer.name": ["adam", "adamw"]}, base)


def test_list_valued_choices_reach_the_config() -> None:
    import optuna

    base = load_config("digits-mlp", flags={"model.name": "cnn"}).to_dict()
    space = parse_space({"model.widths": [[8, 16], [16, 32]]}, base)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(10):
        trial = study.ask()
        seen.add(tuple(space.apply(base, space.suggest(trial, base)).model.widths))
        study.tell(trial, 0.0)
    assert seen == {(8, 16), (16, 32)}


def test_random_search_samples_log_ranges_uniformly_in_log_space() -> None:
    """Kolmogorov-Smirnov on the seeded sampler's draws: uniform in log10, far from uniform."""
    import optuna
    from scipy import stats

    from dltool.tuning.samplers import build_sampler

    base = load_config("digits-mlp").to_dict()
    space = parse_space(
        {
            "optimizer.lr": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
            "model.width": {"type": "int", "low": 8, "high": 512, "log": True},
            "train.batch_size": {"type": "int", "low": 16, "high": 256, "step": 16},
        },
        base,
    )
    sampler = build_sampler("random", seed=0, parallel=False)
    study = optuna.create_study(sampler=sampler)
    draws = []
    for _ in range(3000):
        trial = study.ask()
        draws.append(space.suggest(trial, base))
        study.tell(trial, 0.0)
    lr = [math.log10(d["optimizer.lr"]) for d in draws]
    assert min(lr) >= -5 and max(lr) <= -1
    assert stats.kstest(lr, stats.uniform(loc=-5, scale=4).cdf).pvalue > 0.01
    assert stats.kstest([10**x for x in lr], stats.uniform(loc=1e-5, scale=0.1).cdf).pvalue < 1e-9
    width = [math.log2(d["model.width"]) for d in draws]  # int log range: 8..512 → 3..9 in log2
    assert abs(sum(w < 6 for w in width) / len(width) - 0.5) < 0.05
    assert {d["train.batch_size"] % 16 for d in draws} == {0}


# --- studies end to end ---------------------------------------------------------------


def test_a_2x3_grid_runs_exactly_its_six_points_and_running_again_adds_none(cli, tmp_path: Path) -> None:
    space = write(tmp_path / "grid.yaml", "optimizer.lr: [1.0e-3, 1.0e-2]\nmodel.width: [32, 64, 128]\n")
    args = ["tune", "digits-mlp", "--space", space, "--sampler", "grid", "--pruner", "none", *QUICK, "--name", "grid"]
    result = cli(*args, "--trials", "10")
    study = tmp_path / "runs" / "grid"
    assert result.stdout == "runs/grid\n"
    assert "the grid has 6 points: running 6 trials, not 10" in result.stderr
    rows = trials_csv(study)
    assert [r["state"] for r in rows] == ["COMPLETE"] * 6
    assert sorted((float(r["optimizer.lr"]), int(r["model.width"])) for r in rows) == sorted(
        itertools.product([1e-3, 1e-2], [32, 64, 128])
    )
    assert [r["run_dir"] for r in rows] == [f"trial-{n:04d}" for n in range(6)]
    assert all((study / r["run_dir"] / "model.safetensors").is_file() for r in rows)

    document = study_json(study)
    assert {"study_name", "storage", "metric", "direction", "n_trials", "states", "best", "sampler", "pruner"} <= set(
        document
    )
    assert (document["storage"], document["metric"], document["direction"]) == (JOURNAL, "val_acc", "maximize")
    assert document["n_trials"] == 6 and document["states"]["COMPLETE"] == 6
    assert (document["sampler"], document["pruner"]) == ("grid", "none")
    best = max(rows, key=lambda r: (float(r["value"]), -int(r["number"])))
    assert document["best"]["number"] == int(best["number"]) and document["best"]["run_dir"] == best["run_dir"]
    assert document["best"]["params"] == {
        "optimizer.lr": float(best["optimizer.lr"]),
        "model.width": int(best["model.width"]),
    }
    assert len(open_study(study).trials) == 6

    again = cli(*args)  # the same command continues the study: it has its 6 trials already
    assert again.stdout == "runs/grid\n" and len(trials_csv(study)) == 6
    conflict = cli(*args, "--direction", "minimize", code=2)
    assert "this study tunes val_acc (maximize)" in conflict.stderr


def test_continuing_with_a_space_that_changes_a_keys_kind_is_a_usage_error(cli, tmp_path: Path) -> None:
    # Optuna fails every new trial on such a key; it was a study of FAIL trials and exit 0
    ranged = write(tmp_path / "ranged.yaml", "optimizer.lr: {type: float, low: 1.0e-3, high: 1.0e-1, log: true}\n")
    listed = write(tmp_path / "listed.yaml", "optimizer.lr: [1.0e-3, 1.0e-2]\n")
    args = ["tune", "digits-mlp", *QUICK, "--name", "s", "--pruner", "none"]
    cli(*args, "--space", ranged, "--trials", "1")
    before = (study_json(tmp_path / "runs" / "s"), trials_csv(tmp_path / "runs" / "s"))
    result = cli(*args, "--space", listed, "--trials", "2", code=2)
    assert "--space: optimizer.lr: study 's' sampled it as FloatDistribution(" in result.stderr
    assert "optimizer.lr: study 's' sampled it" in cli(*args, "--space", listed, "--dry-run", code=2).stderr
    assert result.stderr.count("\n") == 1 and result.stdout == ""
    assert (study_json(tmp_path / "runs" / "s"), trials_csv(tmp_path / "runs" / "s")) == before
    wider = write(tmp_path / "wider.yaml", "optimizer.lr: {type: float, low: 1.0e-4, high: 0.5, log: true}\n")
    assert [r["state"] for r in trials_csv(tmp_path / "runs" / "s")] == ["COMPLETE"]
    cli(*args, "--space", wider, "--trials", "2")  # another range of the same kind continues
    assert [r["state"] for r in trials_csv(tmp_path / "runs" / "s")] == ["COMPLETE", "COMPLETE"]


def test_continuing_with_other_val_splits_is_a_usage_error_naming_the_key(cli, tmp_path: Path) -> None:
    # A study continued with data.split_seed (or split_by, val_fraction, ...) changed mixed
    # trials scored on one val split with trials scored on another, and ranked them together.
    space = write(tmp_path / "space.yaml", "optimizer.lr: [1.0e-3, 1.0e-2, 3.0e-2]\n")
    args = ["tune", "digits-mlp", *QUICK, "--name", "s", "--space", space, "--sampler", "grid", "--pruner", "none"]
    cli(*args, "--trials", "1")
    before = trials_csv(tmp_path / "runs" / "s")
    refused = cli(*args, "--trials", "2", "--set", "data.split_seed=1", code=2).stderr
    assert "data.split_seed: study 's' scored its trials on the val split of data.split_seed 0, and 1 may" in refused
    assert "keep data.split_seed: 0, or tune under another --name (or --restart-study)" in refused
    assert trials_csv(tmp_path / "runs" / "s") == before
    assert "data.val_fraction" in cli(*args, "--trials", "2", "--set", "data.val_fraction=0.2", code=2).stderr
    photos = tmp_path / "photos"  # another dataset under the same study was scored and ranked with it
    for label in ("a", "b"):
        (photos / label).mkdir(parents=True)
        for i in range(4):
            Image.new("L", (8, 8), i * 60).save(photos / label / f"{i}.png")
    other = cli(*args, "--trials", "2", "--dataset", photos, code=2).stderr
    assert "data.name: study 's' scored its trials on the val split of data.name 'digits', and '" in other
    assert "photos' may draw another" in other  # the folder's path, shortened
    cli(*args, "--trials", "2", "--set", "data.split_by=name")  # what an unset split_by means for a new run
    cli(*args, "--trials", "1", "--set", "data.split_seed=1", "--restart-study")  # a new study: allowed
    assert len(trials_csv(tmp_path / "runs" / "s")) == 1 and (tmp_path / "runs" / "s" / "restarted-1").is_dir()


def test_a_study_dir_named_where_one_run_goes_is_a_usage_error_naming_its_best_trial(cli, tmp_path: Path) -> None:
    space = write(tmp_path / "space.yaml", "optimizer.lr: [1.0e-2]\n")
    cli("tune", "digits-mlp", "--space", space, *QUICK, "--name", "s", "--trials", "1")
    study = tmp_path / "runs" / "s"
    for command in (["eval", study], ["stats", study], ["predict", study, space], ["train", "--resume", study]):
        result = cli(*command, code=2)  # eval said "no best weights", stats "no image files"
        assert f"{study} is a tune study dir, not a run: name one of its trials, e.g. {study}/trial-0000" in (
            result.stderr
        ), command


def test_the_same_seed_samples_the_same_trials(cli, tmp_path: Path) -> None:
    space = write(tmp_path / "space.yaml", RANDOM_SPACE)
    studies = [
        cli(
            "tune",
            "digits-mlp",
            "--space",
            space,
            "--trials",
            "3",
            "--seed",
            "7",
            "--epochs",
            "1",
            "--limit-batches",
            "1",
            "-q",
        ).stdout.strip()
        for _ in range(2)
    ]
    first, second = (trials_csv(Path(s)) for s in studies)
    keys = ["optimizer.lr", "model.width", "model.activation", "value"]
    assert [[r[k] for k in keys] for r in first] == [[r[k] for k in keys] for r in second]
    assert len({r["optimizer.lr"] for r in first}) == 3
    assert study_json(Path(studies[0]))["seed"] == 7
    # Optuna's name for the value: optuna-dashboard showed "Objective 0", trials_dataframe() "value"
    assert open_study(Path(studies[0])).metric_names == ["val_acc"]


def test_a_moved_study_dir_lists_its_own_trial_dirs(cli, tmp_path: Path) -> None:
    # The storage records each trial's absolute run dir: a study dir moved (archived, another
    # mount) and continued listed every earlier trial, and its best, at the old place.
    space = write(tmp_path / "space.yaml", RANDOM_SPACE)
    args = ["tune", "digits-mlp", "--space", space, *QUICK, "--name", "s", "-q"]
    cli(*args, "--trials", "1")
    (tmp_path / "runs" / "s").rename(tmp_path / "s")
    cli(*args, "--trials", "2", "--runs-dir", tmp_path)
    assert [r["run_dir"] for r in trials_csv(tmp_path / "s")] == ["trial-0000", "trial-0001"]
    assert study_json(tmp_path / "s")["best"]["run_dir"] in ("trial-0000", "trial-0001")


def test_pruning_stops_hopeless_trials_after_an_epoch(cli, tmp_path: Path) -> None:
    # Five useful rates first (the median pruner's startup trials), then three hopeless ones.
    space = write(
        tmp_path / "space.yaml", "optimizer.lr: [3.0e-2, 2.0e-2, 1.0e-2, 5.0e-3, 3.0e-3, 1.0e-7, 5.0e-8, 1.0e-8]\n"
    )
    study = Path(
        cli(
            "tune",
            "digits-mlp",
            "--space",
            space,
            "--sampler",
            "grid",
            "--pruner",
            "median",
            "--epochs",
            "4",
            "--limit-batches",
            "3",
            "-q",
        ).stdout.strip()
    )
    rows = trials_csv(study)
    pruned = [r for r in rows if r["state"] == "PRUNED"]
    assert len(pruned) >= 2 and all(float(r["optimizer.lr"]) < 1e-6 for r in pruned), rows
    summary = json.loads((study / pruned[0]["run_dir"] / "summary.json").read_text())
    assert (summary["status"], summary["stop_reason"]) == ("interrupted", "pruned")
    assert summary["epochs_run"] < 4 and pruned[0]["value"] != ""
    assert study_json(study)["states"]["PRUNED"] == len(pruned)


def test_a_failing_trial_is_recorded_with_its_error_and_the_study_goes_on(cli, tmp_path: Path) -> None:
    space = write(tmp_path / "space.yaml", "optimizer.lr: [1.0e+12, 1.0e-2]\n")  # SGD at 1e12 diverges
    result = cli(
        "tune",
        "digits-mlp",
        "--space",
        space,
        "--sampler",
        "grid",
        "--pruner",
        "none",
        *QUICK,
        "--optimizer",
        "sgd",
        "--set",
        "model.batch_norm=false",
    )
    study = Path(result.stdout.strip())
    failed, complete = trials_csv(study)
    assert failed["state"] == "FAIL" and "train_loss is nan at epoch 1" in failed["error"]
    assert complete["state"] == "COMPLETE" and study_json(study)["best"]["number"] == 1
    summary = json.loads((study / failed["run_dir"] / "summary.json").read_text())
    assert summary["status"] == "failed" and "nan" in summary["error"]
    assert "trial 0 FAIL" in result.stderr and "trial 1 started: optimizer.lr=0.01\n" in result.stderr


def test_a_study_where_no_trial_completes_exits_1(cli, tmp_path: Path) -> None:
    space = write(tmp_path / "space.yaml", "optimizer.lr: [1.0e+12]\n")
    result = cli(
        "tune", "digits-mlp", "--space", space, *QUICK, "--optimizer", "sgd", "--set", "model.batch_norm=false", code=1
    )
    assert result.stdout.strip().endswith("digits-mlp-tune-1")
    assert "no trial of" in result.stderr and "completed" in result.stderr
    assert not (Path(result.stdout.strip()) / "best.yaml").exists()


def test_a_trial_is_shown_as_started_only_once_all_its_values_are_chosen(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A supervisor of --workers K reads the storage while a worker suggests values one by
    # one: it printed "trial 5 started: optimizer.lr=0.001097 model.width=46", the rest missing.
    import optuna

    from dltool.commands._tune_progress import PlainTuneProgress
    from dltool.tuning.study import trial_rows

    with quiet_optuna():
        study = optuna.create_study(storage=open_storage(JOURNAL, tmp_path), study_name="s")
        trial = study.ask()
    progress = PlainTuneProgress()
    progress.on_trials([])
    trial.suggest_float("optimizer.lr", 1e-4, 1e-1, log=True)
    progress.on_trials(trial_rows(study, tmp_path))
    assert "trial 0 started" not in capsys.readouterr().err  # model.width is not chosen yet
    trial.suggest_int("model.width", 32, 128)
    trial.set_user_attr("run_dir", str(tmp_path / "trial-0000"))  # as run_trial does once all are chosen
    progress.on_trials(trial_rows(study, tmp_path))
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("trial ")]
    assert line.startswith("trial 0 started: optimizer.lr=") and " model.width=" in line


# --- storage ---------------------------------------------------------------------------


def test_the_journal_sweep_fails_trials_whose_worker_is_gone(tmp_path: Path) -> None:
    import optuna

    study = optuna.create_study(storage=open_storage(JOURNAL, tmp_path), study_name="s")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    identities = {
        "mine": worker_identity(),
        "dead": {**worker_identity(), "pid": int(dead.stdout), "started": None},
        "far, silent": {"host": "elsewhere", "pid": 1, "started": None},
        "far, beating": {"host": "elsewhere", "pid": 1, "started": None},
        # another container with this host name: its pids are not ours to look at, its heartbeat tells
        "contained, silent": {**worker_identity(), "pid": 1, "pid_ns": "pid:[1]"},
    }
    trials = {}
    for name, identity in identities.items():
        trials[name] = study.ask()
        trials[name].set_user_attr("worker", identity)
    trials["far, beating"].set_user_attr("heartbeat", time.time())
    later = time.time() + liveness.GRACE_S / 2  # the silent one started long before that
    for silent in ("far, silent", "contained, silent"):
        storage_of(study).set_trial_user_attr(trial_id(trials[silent]), "heartbeat", later - liveness.GRACE_S - 1)

    swept = [trials[name].number for name in ("dead", "far, silent", "contained, silent")]
    assert sweep_stale_trials(study, now=later) == swept
    states = {name: study.trials[t.number].state.name for name, t in trials.items()}
    assert states == {
        "mine": "RUNNING",
        "dead": "FAIL",
        "far, silent": "FAIL",
        "far, beating": "RUNNING",
        "contained, silent": "FAIL",
    }
    assert study.trials[trials["dead"].number].user_attrs["stopped"].startswith("lost: worker process")


def test_a_worker_killed_while_writing_the_journal_leaves_it_unlocked(tmp_path: Path) -> None:
    import optuna

    optuna.create_study(storage=open_storage(JOURNAL, tmp_path), study_name="s")
    holder = (
        "import os, signal, sys; from dltool.tuning.storage import KernelFileLock\n"
        "KernelFileLock(sys.argv[1]).acquire(); os.kill(os.getpid(), signal.SIGKILL)"
    )
    killed = subprocess.run([sys.executable, "-c", holder, str((tmp_path / "study.journal.lock").resolve())])
    assert killed.returncode == -signal.SIGKILL
    started = time.monotonic()
    study = optuna.load_study(study_name="s", storage=open_storage(JOURNAL, tmp_path))
    study.enqueue_trial({"x": 1})  # a write: takes the lock
    assert time.monotonic() - started < 5 and len(study.trials) == 1


def test_database_storage_fails_trials_without_a_heartbeat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import optuna

    monkeypatch.setattr(liveness, "HEARTBEAT_S", 1)
    monkeypatch.setattr(liveness, "GRACE_S", 1)
    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path / 's.db'}", tmp_path), study_name="s")
    with quiet_optuna():  # Optuna expects heartbeats with optimize(), not ask()
        lost, alive = study.ask(), study.ask()
    storage_of(study).record_heartbeat(trial_id(lost))
    time.sleep(2.5)  # SQLite's clock counts whole seconds
    with liveness.heartbeat(study, alive):
        assert sweep_stale_trials(study) == [lost.number]
    assert [t.state.name for t in study.trials] == ["FAIL", "RUNNING"]


def test_database_storage_fails_a_trial_whose_process_is_gone_from_this_host_at_once(tmp_path: Path) -> None:
    # It waited for Optuna's heartbeat check (60 s), so a --workers supervisor whose workers
    # were all killed ended with their trials RUNNING ("worker 0 was killed ...; its trial was
    # marked FAIL", which it was not).
    import optuna

    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path / 's.db'}", tmp_path), study_name="s")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    with quiet_optuna():
        lost, alive, contained = study.ask(), study.ask(), study.ask()
    lost.set_user_attr("worker", {**worker_identity(), "pid": int(dead.stdout), "started": None})
    alive.set_user_attr("worker", worker_identity())
    # a container sharing this host name (docker's host network) sees pids of its own
    contained.set_user_attr("worker", {**worker_identity(), "pid": int(dead.stdout), "pid_ns": "pid:[1]"})
    with liveness.heartbeat(study, lost), liveness.heartbeat(study, alive), liveness.heartbeat(study, contained):
        assert sweep_stale_trials(study) == [lost.number]  # all beat: only the pid tells
    assert [t.state.name for t in study.trials] == ["FAIL", "RUNNING", "RUNNING"]
    assert (
        study.trials[0].user_attrs["stopped"]
        == f"lost: worker process {dead.stdout.strip()} on {liveness.HOST} is gone"
    )


def test_the_password_of_a_database_is_never_recorded() -> None:
    from dltool.tuning.storage import check_storage, public_url

    url = check_storage("postgresql://me:secret@db.example.org:5432/studies", workers=4)
    assert url.startswith("postgresql+psycopg://me:secret@")  # psycopg 3, dltool[postgres]
    assert public_url(url) == "postgresql+psycopg://me@db.example.org:5432/studies"


def test_tune_help_imports_neither_torch_nor_optuna() -> None:
    probe = (
        "import sys, runpy; sys.argv = ['dltool', 'tune', '--help']\n"
        "try:\n    runpy.run_module('dltool', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'optuna', 'sqlalchemy') if m in sys.modules), file=sys.stderr)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stderr.strip().endswith("[]"), result.stderr
