"""Finding the finished tables of one or more scan folders, for the commands that read a scan.

`report` and `manifest` read `documents/`, `passages/` and `errors/` through DuckDB; this module
turns the user's OUT arguments (local paths or fsspec URLs) into the file lists DuckDB reads,
and opens a DuckDB connection that can read them and holds to a memory limit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import duckdb
import fsspec
from datatrove.io import DataFolder, get_datafolder

from audit.labels import LABELS
from audit.records import InputError
from audit.stats import table_files


@dataclass
class ScanOutput:
    """The finished files of one scan folder (URLs DuckDB can read) and its stats.json."""

    path: str
    folder: DataFolder
    documents: list[str] = field(default_factory=list)
    passages: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    @property
    def model(self) -> dict:
        """The model version and threshold the scan ran with ({} for a scan without stats.json)."""
        return self.stats.get("model", {})


def _urls(folder: DataFolder, table: str, extension: str) -> list[str]:
    return [folder.fs.unstrip_protocol(folder.resolve_paths(f)) for f in table_files(folder, table, extension)]


def load_scans(paths: list[str]) -> list[ScanOutput]:
    """The scans in `paths`; raises InputError naming a folder that holds no scan."""
    if not paths:
        raise InputError("no scan folder given")
    scans = []
    for path in paths:
        folder = get_datafolder(path)
        if not folder.exists("stats.json") and not folder.isdir("documents"):
            raise InputError(f"{path}: not a scan folder (no stats.json or documents/); run `portrayal-audit scan`")
        stats = {}
        if folder.exists("stats.json"):
            with folder.open("stats.json", "rt") as handle:
                stats = json.load(handle)
        scans.append(
            ScanOutput(
                path=path,
                folder=folder,
                documents=_urls(folder, "documents", "parquet"),
                passages=_urls(folder, "passages", "parquet"),
                errors=_urls(folder, "errors", "jsonl"),
                stats=stats,
            )
        )
    return scans


def connect(filesystems: list[fsspec.AbstractFileSystem], memory_limit: str = "2GB") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that reads these (fsspec) filesystems and spills to disk past `memory_limit`."""
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute("SET preserve_insertion_order = false")
    registered: set[str] = set()
    for fs in filesystems:
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        if protocol not in ("file", "local") and protocol not in registered:
            con.register_filesystem(fs)
            registered.add(protocol)
    return con


def sql_list(values: list[str]) -> str:
    """A DuckDB list literal of strings."""
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def values_table(rows: list[tuple], names: str) -> str:
    """An inline VALUES table `t`, e.g. the five labels in their fixed order."""
    body = ", ".join("(" + ", ".join(repr(v) for v in row) + ")" for row in rows)
    return f"(VALUES {body}) AS t({names})"


#: The five labels and their order, as a table `t(label, ord)` to left-join counts onto.
LABEL_TABLE = values_table([(label, i) for i, label in enumerate(LABELS)], "label, ord")


def _empty(con: duckdb.DuckDBPyConnection, name: str, table) -> str:
    con.register(name, table)
    return f"SELECT *, CAST(NULL AS VARCHAR) AS scan FROM {name}"


def create_views(con: duckdb.DuckDBPyConnection, scans: list[ScanOutput]) -> None:
    """Views `documents`, `passages` and `errors` over every scan, each with a `scan` column naming its folder.

    A table no scan has is an empty view of the right columns, so queries need no special case.
    """
    import pyarrow as pa

    from audit.schema import DOCUMENT_SCHEMA, ERROR_FIELDS, PASSAGE_SCHEMA

    error_columns = (
        "{'file': 'VARCHAR', 'record': 'BIGINT', 'byte_offset': 'BIGINT', 'scope': 'VARCHAR', 'reason': 'VARCHAR'}"
    )
    readers = {
        "documents": (lambda s: s.documents, lambda files: f"read_parquet({files})", DOCUMENT_SCHEMA),
        "passages": (lambda s: s.passages, lambda files: f"read_parquet({files})", PASSAGE_SCHEMA),
        "errors": (
            lambda s: s.errors,
            lambda files: f"read_json({files}, format = 'newline_delimited', columns = {error_columns})",
            pa.schema(
                [(name, pa.int64() if name in ("record", "byte_offset") else pa.string()) for name in ERROR_FIELDS]
            ),
        ),
    }
    for view, (files_of, read, schema) in readers.items():
        parts = [
            f"SELECT *, {sql_list([s.path])[1:-1]} AS scan FROM {read(sql_list(files_of(s)))}"
            for s in scans
            if files_of(s)
        ]
        if not parts:
            parts = [_empty(con, f"_empty_{view}", schema.empty_table())]
        con.execute(f"CREATE OR REPLACE VIEW {view} AS " + " UNION ALL BY NAME ".join(parts))
