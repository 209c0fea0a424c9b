"""WARC and WET: one record per response/resource/conversion; HTML is extracted to text.

Request, metadata and warcinfo records are not documents: they are counted in the task's stats
(`warc_skipped_<type>`), not written. A response that is not HTML or text (an image, a PDF)
still becomes a document row, with status `not_html`, so that it is visibly accounted for.
"""

from __future__ import annotations

from collections.abc import Iterator

from datatrove.pipeline.extractors import Trafilatura

from audit import records
from audit.readers.base import Item, RecordReader

DOCUMENT_TYPES = ("response", "resource", "conversion")
HTML_TYPES = ("text/html", "application/xhtml+xml")


class WarcRecordReader(RecordReader):
    name = "🕷 Warc (accounted)"
    file_kind = "WARC/WET"
    _requires_dependencies = ["warcio", "trafilatura"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.extractor = Trafilatura(favour_precision=True, timeout=5)

    def read_items(self, filepath: str, source: str) -> Iterator[Item]:
        from warcio.archiveiterator import ArchiveIterator

        index = 0
        with self.data_folder.open(filepath, "rb", compression=None) as handle:
            for record in ArchiveIterator(handle):
                if record.rec_type not in DOCUMENT_TYPES:
                    self.stat_update(f"warc_skipped_{record.rec_type}")
                    continue
                payload = record.content_stream().read()
                url = record.rec_headers.get_header("WARC-Target-URI")
                doc_id = record.rec_headers.get_header("WARC-Record-ID") or records.default_id(source, index)
                content_type, charset = _content_type(record)
                if record.rec_type == "conversion" or content_type == "text/plain":
                    text = payload.decode(charset or "utf-8", errors="replace")
                    status = records.OK if text.strip() else records.EMPTY
                elif content_type in HTML_TYPES or (content_type is None and _looks_like_html(payload)):
                    html = payload.decode(charset or "utf-8", errors="replace")
                    text = self.extractor.extract(html) or ""
                    status = records.OK if text.strip() else records.EMPTY
                else:
                    text, status = "", records.NOT_HTML
                yield records.record_document(text, doc_id, source, index, url, status), len(payload)
                index += 1


def _content_type(record) -> tuple[str | None, str | None]:
    headers = record.http_headers if record.http_headers is not None else record.rec_headers
    value = headers.get_header("Content-Type") if headers is not None else None
    if not value:
        return None, None
    parts = [p.strip() for p in value.split(";")]
    charset = None
    for part in parts[1:]:
        if part.lower().startswith("charset="):
            charset = part.split("=", 1)[1].strip("\"' ") or None
    if charset:
        try:
            "".encode(charset)
        except LookupError:
            charset = None
    return parts[0].lower(), charset


def _looks_like_html(payload: bytes) -> bool:
    head = payload[:512].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html")) or b"<body" in head
