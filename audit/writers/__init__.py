"""Writers of the scan's outputs, one table per class."""

from audit.writers.errors import ErrorsWriter
from audit.writers.parquet import DocumentsWriter, PassagesWriter

__all__ = ["DocumentsWriter", "ErrorsWriter", "PassagesWriter"]
