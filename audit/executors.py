"""Choosing and configuring the datatrove executor that runs a scan's pipeline.

Steps never know their executor; this module never imports pipeline internals.
"""

from __future__ import annotations

import sys

from datatrove.executor import LocalPipelineExecutor
from datatrove.utils.logging import logger

_FORMAT = "{time:HH:mm:ss} | <level>{level: <7}</level> | {message}"


def _console_filter(level: str) -> dict:
    """Our own lines at `level`; datatrove's (per-task stats tables, launch notices) only from WARNING."""
    return {"": max(level, "WARNING", key=lambda name: logger.level(name).no), "audit": level}


def console_logging(level: str) -> None:
    """Send log lines to stderr in a short format: ours at `level`, datatrove's warnings and errors."""
    logger.remove()
    logger.add(sys.stderr, level=level, filter=_console_filter(level), format=_FORMAT, colorize=sys.stderr.isatty())


def _task_logger(logging_dir, rank: int, local_rank: int = 0, node_rank: int = -1, level: str = "INFO"):
    """datatrove's per-task logger with our console filter; the task's full log still goes to its file."""
    logger.remove()
    logfile = logging_dir.open(f"logs/task_{rank:05d}.log", "w")
    console_level = level if local_rank == 0 else "ERROR"
    logger.add(
        sys.stderr,
        level=console_level,
        filter=_console_filter(console_level),
        format=_FORMAT,
        colorize=sys.stderr.isatty(),
    )
    logger.add(logfile, level="DEBUG", colorize=False)
    return logfile


def _close_task_logger(logfile, level: str = "INFO") -> None:
    """datatrove's task-logger teardown, restoring our console handler rather than loguru's default."""
    logger.complete()
    console_logging(level)
    logfile.close()


class AuditLocalExecutor(LocalPipelineExecutor):
    """datatrove's LocalPipelineExecutor, logging at the scan's console level in every worker."""

    def __init__(self, *args, console_level: str = "INFO", **kwargs):
        super().__init__(*args, **kwargs)
        self.console_level = console_level

    def _run_for_rank(self, rank: int, local_rank: int = 0, node_rank: int = -1):
        import functools

        import datatrove.executor.base as executor_base

        executor_base.add_task_logger = functools.partial(_task_logger, level=self.console_level)
        executor_base.close_task_logger = functools.partial(_close_task_logger, level=self.console_level)
        return super()._run_for_rank(rank, local_rank, node_rank)


def make_executor(kind: str, pipeline: list, tasks: int, workers: int, logging_dir: str, console_level: str):
    """The executor for `kind`; only `local` exists so far."""
    if kind != "local":
        raise ValueError(f"executor {kind!r} is not available; use 'local'")
    return AuditLocalExecutor(
        pipeline=pipeline,
        tasks=tasks,
        workers=workers,
        logging_dir=logging_dir,
        console_level=console_level,
        skip_completed=True,
    )
