"""Typed configuration of a scan, shared by the Python API and the CLI."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from audit.classify import STAGES
from audit.executors import ClusterConfig
from audit.gate import GateConfig
from audit.segment import SegmentConfig

EXECUTORS = ("local", "ray", "slurm")


@dataclass
class ScanConfig:
    """Everything `scan` needs; the CLI only fills this in."""

    inputs: list[str]  # files, directories or globs; local paths or fsspec URLs
    output: str  # folder (local or fsspec URL) that receives documents/, passages/, errors/, stats.json
    format: str | None = None  # force one input format instead of detecting it by extension
    text_key: str = "text"
    id_key: str = "id"
    tasks: int | None = None  # how many shards of work; default: one per input file (at most 1024)
    workers: int | None = None  # tasks run at once; default: the machine's cores, at most `tasks`
    limit: int = -1  # at most this many records per task (-1: all)
    threshold: float | None = None  # p_malevolent_ai at which text is flagged; default: the model's
    model_dir: str | None = None  # default: the shipped models
    stages: tuple[str, ...] = STAGES  # model stages to run: fastText, and the embedding stage
    overwrite: bool = False  # discard an earlier scan in `output` instead of resuming it
    progress: bool = True
    executor: str = "local"  # or "ray", "slurm"
    cluster: ClusterConfig = field(default_factory=ClusterConfig)  # how ray and slurm run it
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    gate: GateConfig = field(default_factory=GateConfig)

    def signature(self) -> dict:
        """The settings that must match for a rerun to resume rather than mix two scans."""
        data = asdict(self)
        for volatile in ("output", "workers", "overwrite", "progress", "executor", "cluster"):
            data.pop(volatile)
        return data
