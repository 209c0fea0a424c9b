"""The reader base all input formats share: sharding, limits, progress, and accounting.

datatrove's own readers skip unreadable or text-less records with at most one warning. An audit
must account for every record, so these readers yield a document for every record they can parse
(with a `status`), and an error document, logged with file and position, for every record or file
remainder they cannot.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator

from datatrove.data import Document, DocumentsPipeline
from datatrove.io import DataFolderLike
from datatrove.pipeline.readers.base import BaseDiskReader
from datatrove.utils.logging import logger

from audit import records
from audit.progress import Progress
from audit.records import ReadError

#: One item of a format reader: the document, and how many input bytes it took.
Item = tuple[Document, int]


class RecordReader(BaseDiskReader):
    """Reads an explicit list of files (relative to `data_folder`), `files[rank::world_size]` per task."""

    type = "📖 - READER"
    file_kind = "input"  # how progress lines name this reader's files

    def __init__(
        self,
        data_folder: DataFolderLike,
        files: list[str],
        text_key: str = "text",
        id_key: str = "id",
        limit: int = -1,
        progress: bool = True,
    ):
        super().__init__(data_folder, limit=limit, text_key=text_key, id_key=id_key, add_file_path=False)
        self.files = list(files)
        self.progress = progress

    @abstractmethod
    def read_items(self, filepath: str, source: str) -> Iterator[Item]:
        """Yield one item per record of `filepath`; errors inside a record become error documents."""

    def read_file(self, filepath: str) -> Iterator[Item]:
        """The format's items, with a failure of the file itself (truncation, corruption) turned
        into a file-scope error that says after which record the rest was lost."""
        source = self.data_folder.resolve_paths(filepath)
        last_record = -1
        try:
            for document, nbytes in self.read_items(filepath, source):
                last_record = document.metadata.get(records.RECORD, last_record)
                yield document, nbytes
        except Exception as exc:  # noqa: BLE001 - any failure of a file must be recorded, never crash the run
            where = "before its first record" if last_record < 0 else f"after record {last_record}"
            error = ReadError(
                file=source,
                record=last_record + 1,
                byte_offset=None,
                scope="file",
                reason=f"file unreadable {where}: {type(exc).__name__}: {exc}",
            )
            yield records.error_document(error), 0
            return
        if last_record < 0:
            error = ReadError(file=source, record=None, byte_offset=None, scope="file", reason="empty file: no records")
            yield records.error_document(error), 0

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data:
            yield from data
        shard = self.files[rank::world_size]
        progress = Progress(rank=rank, enabled=self.progress, label=f" ({len(shard)} {self.file_kind} files)")
        count = 0
        try:
            for filepath in shard:
                self.stat_update("input_files")
                for document, nbytes in self.read_file(filepath):
                    if self.limit != -1 and count >= self.limit:
                        return
                    count += 1
                    progress.update(nbytes=nbytes)
                    self.stat_update("input_bytes", value=nbytes, unit="record")
                    if records.is_error(document):
                        error = document.metadata[records.ERROR]
                        where = f"record {error.record}" if error.record is not None else "file"
                        if error.byte_offset is not None:
                            where += f" (byte {error.byte_offset})"
                        logger.warning(f"{error.file}: {where}: {error.reason}; skipped")
                        self.stat_update(f"read_error_{error.scope}")
                    else:
                        self.stat_update("records")
                    yield document
        finally:
            progress.close()

    def document_from_fields(self, data: dict, source: str, index: int, url: str | None = None) -> Document:
        """A record document from a parsed dict, with the status its text field deserves."""
        doc_id = data.get(self.id_key)
        doc_id = records.default_id(source, index) if doc_id is None or doc_id == "" else str(doc_id)
        text = data.get(self.text_key)
        if not isinstance(text, str):
            text, status = "", records.NO_TEXT
        elif not text.strip():
            status = records.EMPTY
        else:
            status = records.OK
        if url is None:
            url = record_url(data)
        return records.record_document(text, doc_id, source, index, url, status)


def record_url(data: dict) -> str | None:
    """The record's URL: a top-level `url`, or Dolma's `metadata.url` / `metadata.warc_url`."""
    url = data.get("url")
    metadata = data.get("metadata")
    if not url and isinstance(metadata, dict):
        url = metadata.get("warc_url") or metadata.get("url")
    return str(url) if url else None
