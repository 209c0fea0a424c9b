"""The scan: inputs -> readers -> segment -> gate -> classify -> aggregate -> writers, on datatrove."""

from __future__ import annotations

import json
import os
import time

from datatrove.io import DataFolder, get_datafolder
from datatrove.utils.logging import logger

from audit.aggregate import AggregateStep
from audit.classify import ClassifyStep
from audit.config import ScanConfig
from audit.executors import console_logging, make_executor, run_executor
from audit.gate import GateStep
from audit.inputs import ResolvedInputs, resolve_inputs
from audit.models import CALIBRATION_FILE, FASTTEXT_FILE, Calibration, file_digest, resolve_model_dir
from audit.readers import READERS
from audit.records import InputError
from audit.segment import SegmentStep
from audit.stats import summarize
from audit.writers import DocumentsWriter, ErrorsWriter, PassagesWriter

SCAN_FILE = "scan.json"
MAX_DEFAULT_TASKS = 1024
# report/ and index/ go too: left beside a new scan, they would describe the old one
OUTPUT_PARTS = ("documents", "passages", "errors", "logs", "stats.json", SCAN_FILE, "report", "index")


def build_pipeline(
    config: ScanConfig, inputs: ResolvedInputs, model_dir: str, threshold: float, prior: list[float]
) -> list:
    """The datatrove steps of a scan, runnable under any executor."""
    readers = [
        READERS[group.format](
            DataFolder(path=group.root, fs=group.fs),
            files=group.paths,
            text_key=config.text_key,
            id_key=config.id_key,
            limit=config.limit,
            progress=config.progress,
        )
        for group in inputs.groups
    ]
    return [
        *readers,
        GateStep(config.gate),
        SegmentStep(config.segment),
        ClassifyStep(model_dir=model_dir, stages=config.stages),
        AggregateStep(threshold=threshold, prior=prior),
        DocumentsWriter(config.output),
        PassagesWriter(config.output),
        ErrorsWriter(config.output),
    ]


def _prepare_output(output: DataFolder, signature: dict, overwrite: bool) -> None:
    """Start afresh, or check that the scan already in `output` is this same scan, to resume it."""
    if overwrite:
        for part in OUTPUT_PARTS:
            if output.exists(part):
                output.rm(part, recursive=True)
    elif output.exists(SCAN_FILE):
        with output.open(SCAN_FILE, "rt") as handle:
            previous = json.load(handle)["signature"]
        if previous != signature:
            changed = sorted(k for k in set(previous) | set(signature) if previous.get(k) != signature.get(k))
            raise InputError(
                f"{output.path} holds a scan with other settings ({', '.join(changed)} differ); "
                "pass --overwrite to replace it, or choose another --output"
            )
    with output.open(SCAN_FILE, "wt") as handle:
        json.dump({"signature": signature}, handle, indent=2, default=str)


def scan(config: ScanConfig) -> dict:
    """Scan `config.inputs` into `config.output`; returns the run's stats (also in stats.json).

    Re-running with the same config resumes: tasks that finished are skipped.
    Raises InputError for inputs or an output that cannot be used, before any work starts.
    """
    console_logging("INFO" if config.progress else "ERROR")
    started = time.monotonic()
    inputs = resolve_inputs(config.inputs, config.format)
    model_dir = resolve_model_dir(config.model_dir)
    calibration = Calibration.load(model_dir / CALIBRATION_FILE)
    threshold = calibration.threshold if config.threshold is None else config.threshold
    if not 0.0 < threshold <= 1.0:
        raise InputError(f"threshold must be in (0, 1], got {threshold}")
    tasks = config.tasks or max(1, min(inputs.n_files, MAX_DEFAULT_TASKS))
    if config.executor == "local":
        workers = max(1, min(config.workers or os.cpu_count() or 1, tasks))
    else:  # a cluster's scheduler places the tasks; --workers only caps how many run at once
        workers = max(1, min(config.workers or tasks, tasks))
    model = {
        "dir": str(model_dir),
        "version": calibration.model_version,
        "fasttext_sha256": file_digest(model_dir / FASTTEXT_FILE),
        "threshold": threshold,
    }
    output = get_datafolder(config.output)
    signature = {**config.signature(), "tasks": tasks, "files": [g.paths for g in inputs.groups], "model": model}
    signature = json.loads(json.dumps(signature, default=str))  # compared with what a rerun reads back
    _prepare_output(output, signature, config.overwrite)

    pipeline = build_pipeline(config, inputs, str(model_dir), threshold, calibration.gate_prior)
    executor = make_executor(
        config.executor,
        pipeline,
        tasks=tasks,
        workers=workers,
        logging_dir=output.resolve_paths("logs"),
        console_level="INFO" if config.progress else "ERROR",
        cluster=config.cluster,
    )
    done = len(executor.get_incomplete_ranks(range(tasks), skip_completed=False)) - len(
        executor.get_incomplete_ranks(range(tasks))
    )
    if done:
        logger.info(f"resuming {output.path}: {done} of {tasks} tasks already finished, skipping them")
    run_executor(executor, config.cluster)
    remaining = len(executor.get_incomplete_ranks(range(tasks)))
    if remaining and config.executor == "slurm":
        # submitted, not run: the outputs appear as the job array runs; rerun the scan to summarize
        script = output.resolve_paths("logs/launch_script.slurm")
        return {"submitted": {"tasks": remaining, "launch_script": script, "dry_run": config.cluster.dry_run}}
    extra = {
        "input": {"files": inputs.n_files, "bytes": inputs.total_bytes, "skipped_unknown_format": inputs.skipped},
        "tasks": tasks,
        "workers": workers,
        "model": model,
        "wall_seconds_last_run": round(time.monotonic() - started, 3),
    }
    return summarize(output, extra)
