"""What travels between pipeline steps: per-record metadata keys, statuses and read errors.

Every input record becomes one datatrove `Document`. A record that cannot be read at all still
travels, as an *error document* (empty text, `metadata["error"]` set), so that the writers can
account for it in `errors/` and nothing is lost between reader and output.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from datatrove.data import Document

# metadata keys
SOURCE = "source"
RECORD = "record"
URL = "url"
STATUS = "status"
ERROR = "error"
PASSAGES = "passages"
GATE = "gate"  # the lexical gate's GateDecision
RESULT = "result"

# statuses of classified records (`documents.status`)
OK = "ok"
EMPTY = "empty"
NO_TEXT = "no_text"
NOT_HTML = "not_html"
TOO_LONG_TRUNCATED = "too_long_truncated"
STATUSES: tuple[str, ...] = (OK, EMPTY, NO_TEXT, NOT_HTML, TOO_LONG_TRUNCATED)


class InputError(Exception):
    """An input the user named cannot be used; the message names it and says why."""


@dataclass(frozen=True, slots=True)
class ReadError:
    """A record, or the rest of a file, that could not be read: one line of `errors/`."""

    file: str
    record: int | None
    byte_offset: int | None
    scope: str  # "record": one record lost; "file": the rest of the file (or all of it) lost
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def record_document(text: str, doc_id: str, source: str, record: int, url: str | None, status: str) -> Document:
    """A readable record, ready to be segmented and classified."""
    return Document(
        text=text,
        id=doc_id,
        metadata={SOURCE: source, RECORD: record, URL: url, STATUS: status},
    )


def error_document(error: ReadError) -> Document:
    """A record that could not be read, carried to the errors writer."""
    return Document(
        text="",
        id=f"{error.file}#{error.record}",
        metadata={SOURCE: error.file, RECORD: error.record, ERROR: error},
    )


def is_error(document: Document) -> bool:
    return ERROR in document.metadata


def default_id(source: str, record: int) -> str:
    """The id of a record that has none: `<file>#<record index>` (DESIGN.md)."""
    return f"{source}#{record}"
