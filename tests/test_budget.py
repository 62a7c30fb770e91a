"""data.memory_budget's default: half the memory this process may use, a container's limit
included (its cgroup files, v2 and v1, written here as the kernel lays them out)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dltool.config.schema import DataConfig
from dltool.data.budget import GIB, binary_size, cgroup_memory_limit, memory_budget, stream_shape
from dltool.data.images import ImageHeader
from dltool.errors import ConfigError


def cgroup_files(tmp_path: Path, files: dict[str, str], membership: str) -> tuple[Path, Path]:
    root = tmp_path / "sys" / "fs" / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text + "\n")
    (tmp_path / "cgroup").write_text(membership)
    return root, tmp_path / "cgroup"


@pytest.mark.parametrize(
    ("files", "membership", "limit"),
    [
        ({"memory.max": "4294967296"}, "0::/\n", 4 * GIB),  # v2, a container's own namespace
        ({"memory.max": "max"}, "0::/\n", None),  # v2, no limit
        ({"job/7/memory.max": "2147483648", "memory.max": "max"}, "0::/job/7\n", 2 * GIB),  # v2, a scheduler's slot
        ({"memory/memory.limit_in_bytes": "3221225472"}, "4:memory:/\n1:cpu:/\n", 3 * GIB),  # v1
        ({"memory/memory.limit_in_bytes": "9223372036854771712"}, "4:memory:/\n", None),  # v1 "unlimited"
        ({"memory/docker/ab/memory.limit_in_bytes": "1073741824"}, "4:cpuacct,memory:/docker/ab\n", GIB),
        ({}, "", None),  # no cgroup file at all (macOS, a locked-down /sys)
    ],
)
def test_the_cgroup_limit_is_read_as_the_kernel_writes_it(
    tmp_path: Path, files: dict[str, str], membership: str, limit: int | None
) -> None:
    root, cgroup = cgroup_files(tmp_path, files, membership)
    assert cgroup_memory_limit(root, cgroup) == limit


def test_the_default_budget_is_half_of_what_this_process_may_use() -> None:
    budget = memory_budget(None)
    limit = cgroup_memory_limit()
    assert budget.source.startswith("half of this")
    if limit is not None and "container" in budget.source:
        assert budget.bytes == limit // 2
    assert memory_budget(1.5).bytes == int(1.5 * GIB) and memory_budget(1.5).source == "set in the config"


@pytest.mark.parametrize(
    ("nbytes", "shown"),
    [
        (0, "0 bytes"),
        (1023, "1,023 bytes"),
        (176_000, "172 KiB"),
        (5e6, "4.77 MiB"),
        (12.7e9, "11.8 GiB"),
        (2**40, "1,024 GiB"),
    ],
)
def test_sizes_are_shown_in_the_unit_that_reads_best(nbytes: float, shown: str) -> None:
    # The auto loader's line named a folder of 60 small photos "≈ 0.000172 GiB".
    assert binary_size(nbytes) == shown


def test_streaming_mixed_sizes_suggests_a_size_near_the_images() -> None:
    # It suggested data.image_size=224 for images of 24 to 40 px: 50 times the pixels to decode.
    headers = [ImageHeader(side, side, False) for side in (24, 32, 32, 40)]
    shown = r"mixed or non-square sizes \(24x24, 32x32, 40x40\); e\.g\. .*image_size[=:] ?32$"
    with pytest.raises(ConfigError, match=shown):
        stream_shape(DataConfig(loader="stream"), headers, 4)
