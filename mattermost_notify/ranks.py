"""Ranks of a distributed run: who sends (plain Python, no dependency).

Progress bars and :func:`mattermost_notify.on_done` send from rank 0 only, so that a
job of 64 processes posts one message, not 64. :func:`claim_host_report` lets the
other ranks report a failure once per host.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
from collections.abc import Mapping
from pathlib import Path

__all__ = ["claim_host_report", "process_rank", "run_key"]

log = logging.getLogger("mattermost_notify.ranks")

_RANK_VARIABLES = ("RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK")
# variables naming one distributed run (the same in every rank of it)
_RUN_VARIABLES = (
    "TORCHELASTIC_RUN_ID",
    "SLURM_JOB_ID",
    "SLURM_STEP_ID",
    "OMPI_MCA_ess_base_jobid",
    "PMI_ID",
    "MASTER_ADDR",
    "MASTER_PORT",
)


def process_rank(environ: Mapping[str, str] | None = None) -> int | None:
    """This process's global rank in a distributed run, or None when not in one.

    Looked up in order: ``RANK``; ``LOCAL_RANK`` together with ``NODE_RANK`` (or
    ``GROUP_RANK``); ``SLURM_PROCID``; ``OMPI_COMM_WORLD_RANK``; ``PMI_RANK``; and
    ``LOCAL_RANK`` alone (one node). Values that are not integers are ignored.
    With ``LOCAL_RANK`` and ``NODE_RANK`` the result is 0 exactly for local rank 0 on
    node 0 (and ``NODE_RANK * LOCAL_WORLD_SIZE + LOCAL_RANK`` when the size is known).
    """
    env = os.environ if environ is None else environ

    def read(name: str) -> int | None:
        value = env.get(name)
        if value is None or value.strip() == "":
            return None
        try:
            return int(value.strip())
        except ValueError:
            log.warning("ignoring %s=%r: not an integer", name, value)
            return None

    rank = read("RANK")
    if rank is not None:
        return rank
    local = read("LOCAL_RANK")
    node = read("NODE_RANK")
    if node is None:
        node = read("GROUP_RANK")
    if local is not None and node is not None:
        size = read("LOCAL_WORLD_SIZE")
        if size is not None and size > 0:
            return node * size + local
        return 0 if (local == 0 and node == 0) else max(local, 1) + node
    for name in _RANK_VARIABLES[1:]:
        rank = read(name)
        if rank is not None:
            return rank
    return local


def run_key(environ: Mapping[str, str] | None = None) -> str:
    """A string naming this distributed run, the same in all of its ranks.

    Built from the launchers' run variables (torchrun, Slurm, Open MPI, ``MASTER_ADDR``
    and ``MASTER_PORT``); without any, the parent process (the launcher that started the
    ranks of this host).
    """
    env = os.environ if environ is None else environ
    parts = [f"{name}={env[name]}" for name in _RUN_VARIABLES if env.get(name)]
    if not parts:
        parts = [f"ppid={os.getppid()}"]
    return ";".join(parts)


def claim_host_report(what: str, directory: str | os.PathLike[str] | None = None) -> bool:
    """True for the first process of this run on this host to claim ``what``; else False.

    A marker file created with ``O_EXCL`` under ``<user_data_dir>/ranks`` (or
    ``directory``): exactly one rank per host wins. When the marker cannot be written
    the answer is True (better twice than never).
    """
    if directory is None:
        from .config import user_data_dir

        directory = Path(user_data_dir()) / "ranks"
    host = socket.gethostname()
    digest = hashlib.sha256(f"{host}\0{run_key()}\0{what}".encode()).hexdigest()[:24]
    path = Path(directory) / f"{digest}.claimed"
    try:
        Path(directory).mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    except OSError as exc:
        log.warning("cannot write the rank marker %s (%s); reporting anyway", path, exc)
        return True
    with contextlib.suppress(OSError):
        os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True
