"""Choosing and configuring the datatrove executor that runs a scan's pipeline.

Steps never know their executor; this module never imports pipeline internals. The same pipeline
runs on one machine (`local`), on a Ray cluster (`ray`: datatrove's RayPipelineExecutor) or as a
Slurm job array (`slurm`: datatrove's SlurmPipelineExecutor). On a cluster every worker must see
the output folder (a shared file system or an fsspec URL such as s3://), and have this package
installed.
"""

from __future__ import annotations

import contextlib
import math
import sys
from dataclasses import dataclass, field

from datatrove.executor import LocalPipelineExecutor
from datatrove.utils.logging import logger

from audit.records import InputError

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


@dataclass
class ClusterConfig:
    """How a scan runs on a cluster; none of it changes what the scan computes."""

    ray_address: str | None = None  # an existing Ray cluster ("host:port", "auto"); default: start a local one
    cpus_per_task: int = 1
    mem_per_cpu_gb: float = 2.0
    partition: str | None = None  # Slurm: required
    time: str = "24:00:00"  # Slurm: time limit per job of the array
    qos: str | None = None
    job_name: str = "portrayal-audit"
    sbatch_args: dict[str, str] = field(default_factory=dict)  # passed through as #SBATCH --key=value
    venv_path: str | None = None  # Slurm: `source`d in the job before running (a virtualenv's bin/activate)
    env_command: str | None = None  # Slurm: any shell command run before the job instead
    dry_run: bool = False  # Slurm: write the sbatch script (logs/launch_script.slurm) but do not submit it


def make_executor(
    kind: str,
    pipeline: list,
    tasks: int,
    workers: int,
    logging_dir: str,
    console_level: str,
    cluster: ClusterConfig | None = None,
):
    """The datatrove executor for `kind` ("local", "ray" or "slurm")."""
    cluster = cluster or ClusterConfig()
    if kind == "local":
        return AuditLocalExecutor(
            pipeline=pipeline,
            tasks=tasks,
            workers=workers,
            logging_dir=logging_dir,
            console_level=console_level,
            skip_completed=True,
        )
    if kind == "ray":
        return _ray_executor(pipeline, tasks, workers, logging_dir, cluster)
    if kind == "slurm":
        return _slurm_executor(pipeline, tasks, workers, logging_dir, cluster)
    raise ValueError(f"executor {kind!r} is not available; use 'local', 'ray' or 'slurm'")


def _ray_executor(pipeline: list, tasks: int, workers: int, logging_dir: str, cluster: ClusterConfig):
    try:
        import ray
        from datatrove.executor import RayPipelineExecutor
    except ImportError as exc:
        raise InputError("--executor ray needs Ray: pip install 'portrayal-audit[ray]'") from exc
    if not ray.is_initialized():
        # an address joins a running cluster; none starts a local one on this machine
        ray.init(address=cluster.ray_address, log_to_driver=False, include_dashboard=False)
    return RayPipelineExecutor(
        pipeline=pipeline,
        tasks=tasks,
        workers=workers,
        logging_dir=logging_dir,
        cpus_per_task=cluster.cpus_per_task,
        mem_per_cpu_gb=cluster.mem_per_cpu_gb,
        skip_completed=True,
    )


def _slurm_executor(pipeline: list, tasks: int, workers: int, logging_dir: str, cluster: ClusterConfig):
    from datatrove.executor import SlurmPipelineExecutor

    if not cluster.partition:
        raise InputError("--executor slurm needs --partition")
    executor = SlurmPipelineExecutor(
        pipeline=pipeline,
        tasks=tasks,
        workers=workers if workers < tasks else -1,  # -1: no limit on running array jobs
        time=cluster.time,
        partition=cluster.partition,
        cpus_per_task=cluster.cpus_per_task,
        mem_per_cpu_gb=math.ceil(cluster.mem_per_cpu_gb),  # sbatch takes whole gigabytes here ("2G")
        qos=cluster.qos,
        job_name=cluster.job_name,
        sbatch_args=dict(cluster.sbatch_args),
        venv_path=cluster.venv_path,
        env_command=cluster.env_command,
        logging_dir=logging_dir,
        skip_completed=True,
    )
    return executor


def run_executor(executor, cluster: ClusterConfig | None = None) -> None:
    """Run (locally, on Ray) or submit (Slurm) the executor's pipeline; a Slurm dry run only writes the script."""
    from datatrove.executor import SlurmPipelineExecutor

    if isinstance(executor, SlurmPipelineExecutor) and cluster is not None and cluster.dry_run:
        _launch_without_submitting(executor)
    else:
        executor.run()


DRY_RUN_JOB_ID = "dry-run"


def _launch_without_submitting(executor) -> None:
    """datatrove's own launch (pickled pipeline, ranks to run, launch_script.slurm) with the
    `sbatch` call replaced, so the script can be read before anything is queued."""
    import datatrove.executor.slurm as slurm

    with contextlib.ExitStack() as stack:
        stack.callback(setattr, slurm, "launch_slurm_job", slurm.launch_slurm_job)
        slurm.launch_slurm_job = lambda *args, **kwargs: DRY_RUN_JOB_ID
        executor.launch_job()
    script = executor.logging_dir.resolve_paths("launch_script.slurm")
    logger.info(f"dry run: nothing submitted; the script is {script}")
