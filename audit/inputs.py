"""Turn the user's INPUT arguments (files, directories, globs; local or fsspec URLs) into
per-format groups of files that datatrove readers can shard across tasks."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import fsspec
from fsspec.core import url_to_fs

from audit.records import InputError

FORMATS: tuple[str, ...] = ("jsonl", "parquet", "warc", "wet")

# longest suffix first, so ".warc.wet.gz" is not taken for ".warc.gz" or ".gz"
_SUFFIXES: tuple[tuple[str, str], ...] = tuple(
    sorted(
        {
            ".warc.wet.gz": "wet",
            ".wet.gz": "wet",
            ".wet": "wet",
            ".warc.gz": "warc",
            ".warc": "warc",
            ".arc.gz": "warc",
            ".parquet": "parquet",
            ".pq": "parquet",
            ".jsonl": "jsonl",
            ".jsonl.gz": "jsonl",
            ".jsonl.zst": "jsonl",
            ".json": "jsonl",
            ".json.gz": "jsonl",
            ".json.zst": "jsonl",
            ".ndjson": "jsonl",
            ".ndjson.gz": "jsonl",
            ".gz": "jsonl",
            ".zst": "jsonl",
        }.items(),
        key=lambda item: -len(item[0]),
    )
)


def detect_format(path: str) -> str | None:
    """The input format implied by a file name, or None if the extension is unknown."""
    name = path.lower()
    for suffix, fmt in _SUFFIXES:
        if name.endswith(suffix):
            return fmt
    return None


@dataclass
class InputGroup:
    """Files of one format on one filesystem, as paths relative to `root`."""

    format: str
    root: str
    fs: fsspec.AbstractFileSystem
    paths: list[str] = field(default_factory=list)


@dataclass
class ResolvedInputs:
    groups: list[InputGroup]
    skipped: list[str]  # files inside directories whose format is unknown
    total_bytes: int

    @property
    def n_files(self) -> int:
        return sum(len(g.paths) for g in self.groups)


def _is_glob(path: str) -> bool:
    return any(ch in path for ch in "*?[")


def _check_readable(fs: fsspec.AbstractFileSystem, path: str, original: str) -> None:
    try:
        with fs.open(path, "rb") as handle:
            handle.read(1)
    except (OSError, PermissionError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InputError(f"{original}: cannot read {path}: {reason}") from None


def resolve_inputs(inputs: list[str], fmt: str | None = None) -> ResolvedInputs:
    """Expand INPUT arguments into readable files grouped by format.

    Raises InputError, naming the argument, for a path that does not exist, matches nothing,
    cannot be read, or is a file of unknown format when no `fmt` is forced.
    """
    if fmt is not None and fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if not inputs:
        raise InputError("no INPUT given")
    files: dict[tuple[str, str], tuple[fsspec.AbstractFileSystem, str, str]] = {}
    skipped: list[str] = []
    for original in inputs:
        fs, path = url_to_fs(original)
        path = path.rstrip("/") or "/"
        if _is_glob(path):
            matches = [p for p in sorted(fs.glob(path)) if fs.isfile(p)]
            if not matches:
                raise InputError(f"{original}: no files match this pattern")
            explicit = False
        elif fs.isdir(path):
            matches = sorted(p for p in fs.find(path) if not p.rsplit("/", 1)[-1].startswith("."))
            explicit = False
        elif fs.exists(path):
            matches = [path]
            explicit = True
        else:
            raise InputError(f"{original}: no such file or directory")
        for match in matches:
            file_format = fmt or detect_format(match)
            if file_format is None:
                if explicit:
                    raise InputError(
                        f"{original}: unknown format (extension not one of jsonl, json, gz, zst, parquet, warc, wet); "
                        "pass --format"
                    )
                skipped.append(fs.unstrip_protocol(match))
                continue
            _check_readable(fs, match, original)
            files[(fs.unstrip_protocol(match), file_format)] = (fs, match, file_format)
    if not files:
        raise InputError(f"no readable input files of a known format in: {' '.join(inputs)}")
    return ResolvedInputs(groups=_group(files.values()), skipped=skipped, total_bytes=_total_size(files.values()))


def _group(files) -> list[InputGroup]:
    by_key: dict[tuple[str, str], list[tuple[fsspec.AbstractFileSystem, str]]] = {}
    for fs, path, file_format in files:
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        by_key.setdefault((file_format, protocol), []).append((fs, path))
    groups = []
    for (file_format, _), members in sorted(by_key.items()):
        fs = members[0][0]
        paths = sorted(path for _, path in members)
        root = _common_dir(paths)
        groups.append(
            InputGroup(format=file_format, root=root, fs=fs, paths=[p[len(root) :].lstrip("/") for p in paths])
        )
    return groups


def _common_dir(paths: list[str]) -> str:
    parts = [p.split("/")[:-1] for p in paths]
    common = parts[0]
    for other in parts[1:]:
        n = 0
        while n < min(len(common), len(other)) and common[n] == other[n]:
            n += 1
        common = common[:n]
    root = "/".join(common)
    return root if root else ("/" if paths[0].startswith("/") else "")


def _total_size(files) -> int:
    total = 0
    for fs, path, _ in files:
        with contextlib.suppress(OSError):
            total += fs.size(path) or 0
    return total
