"""process_rank() and the import-cost promise (no server needed)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mattermost_notify.ranks import process_rank


@pytest.mark.parametrize(
    ("env", "rank"),
    [
        ({}, None),
        ({"RANK": "0"}, 0),
        ({"RANK": "7", "LOCAL_RANK": "0"}, 7),  # RANK wins
        ({"LOCAL_RANK": "0", "NODE_RANK": "0"}, 0),
        ({"LOCAL_RANK": "0", "NODE_RANK": "2"}, 3),  # not 0 (size unknown)
        ({"LOCAL_RANK": "1", "NODE_RANK": "0"}, 1),
        ({"LOCAL_RANK": "1", "NODE_RANK": "2", "LOCAL_WORLD_SIZE": "4"}, 9),
        ({"LOCAL_RANK": "0", "GROUP_RANK": "1"}, 2),
        ({"SLURM_PROCID": "5"}, 5),
        ({"SLURM_PROCID": "0", "LOCAL_RANK": "3"}, 0),  # the global SLURM rank beats a local one
        ({"OMPI_COMM_WORLD_RANK": "2"}, 2),
        ({"PMI_RANK": "0"}, 0),
        ({"LOCAL_RANK": "2"}, 2),  # one node
        ({"RANK": "abc", "SLURM_PROCID": "1"}, 1),  # not an integer: ignored, not a crash
        ({"RANK": " "}, None),
    ],
)
def test_process_rank(env: dict[str, str], rank: int | None) -> None:
    assert process_rank(env) == rank


def test_import_does_not_load_tqdm() -> None:
    code = (
        "import sys, mattermost_notify as m\n"
        "assert 'tqdm' not in sys.modules\n"
        "m.tqdm\n"
        "assert 'tqdm' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
