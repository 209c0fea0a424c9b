"""Readers that account for every input record, one format per module."""

from audit.readers.base import RecordReader
from audit.readers.jsonl import JsonlRecordReader
from audit.readers.parquet import ParquetRecordReader
from audit.readers.warc import WarcRecordReader

#: The reader class for each input format of `audit.inputs.FORMATS`.
READERS: dict[str, type[RecordReader]] = {
    "jsonl": JsonlRecordReader,
    "parquet": ParquetRecordReader,
    "warc": WarcRecordReader,
    "wet": WarcRecordReader,
}

__all__ = ["READERS", "RecordReader", "JsonlRecordReader", "ParquetRecordReader", "WarcRecordReader"]
