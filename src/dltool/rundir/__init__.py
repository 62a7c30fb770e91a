"""The run directory (DESIGN.md, Run directory): its layout and its records, known only here."""

from dltool.rundir.claims import claimed_with_lock, create_run_dir, wait_until_made
from dltool.rundir.kinds import (
    is_dltool_output,
    make_plots_folder,
    open_run_dir,
    refuse_parent_of_runs,
    runs_named_after,
)
from dltool.rundir.layout import (
    BEST,
    STUDY,
    RunDir,
    cv_record,
    is_run_dir,
    read_json_object,
    read_weights_header,
    run_dir_of,
    stand_in_named,
)
from dltool.rundir.outputs import check_output, is_run_file, refuse_read_only
from dltool.rundir.records import EpochRecord, Summary, WeightsMetadata

__all__ = [
    "BEST",
    "STUDY",
    "EpochRecord",
    "RunDir",
    "Summary",
    "WeightsMetadata",
    "check_output",
    "claimed_with_lock",
    "create_run_dir",
    "cv_record",
    "is_dltool_output",
    "is_run_dir",
    "is_run_file",
    "make_plots_folder",
    "open_run_dir",
    "read_json_object",
    "read_weights_header",
    "refuse_parent_of_runs",
    "refuse_read_only",
    "run_dir_of",
    "runs_named_after",
    "stand_in_named",
    "wait_until_made",
]
