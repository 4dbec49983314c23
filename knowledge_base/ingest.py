"""Reading documents for the knowledge base, and cutting them into searchable chunks.

Accepted: Markdown (.md, .markdown), plain text (.txt), and JSON lines (.jsonl: one paper per line
with `title` and `abstract` and/or `body`). A Markdown file laid out as a cognition entry (the
format of `knowledge_base/cognition/`) also keeps its sections as structured fields.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MARKDOWN = (".md", ".markdown")
SUPPORTED = (*MARKDOWN, ".txt", ".jsonl")
COGNITION_SECTIONS = ("Design insight", "When it helps", "How to implement", "Reference")


class IngestError(ValueError):
    """A file that cannot be ingested; the message is one line naming the file (and line)."""


class DocumentInput(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str  # the file, plus "#<line>" for a JSON-lines record
    title: str
    body: str
    collection: str = "documents"
    meta: dict[str, Any] = Field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        """Identity for idempotent re-adding: the same text in the same collection."""
        return hashlib.sha256(f"{self.collection}\n{self.title}\n{self.body}".encode()).hexdigest()


class CognitionEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    title: str
    design_insight: str
    when_it_helps: str
    how_to_implement: str
    reference: str
    tags: tuple[str, ...]


# ----------------------------------------------------------------------------- reading files


def read_documents(path: Path, collection: str = "documents") -> list[DocumentInput]:
    """Every document in a file, or in every supported file under a folder (sorted by path)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED)
        return [document for file in files for document in read_file(file, collection)]
    if not path.exists():
        raise IngestError(f"{path}: no such file or folder")
    if path.suffix.lower() not in SUPPORTED:
        raise IngestError(f"{path}: unsupported file type; give {', '.join(SUPPORTED)} files or a folder")
    return read_file(path, collection)


def read_file(path: Path, collection: str) -> list[DocumentInput]:
    try:
        content = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise IngestError(f"{path}: not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise IngestError(f"{path}: {error.strerror}") from None
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return read_json_lines(path, content, collection)
    if not content.strip():
        raise IngestError(f"{path}: empty document")
    if suffix in MARKDOWN:
        if is_cognition(content):
            entry = parse_cognition(content, str(path))
            meta = {"kind": "cognition", **entry.model_dump(exclude={"title"})}
            meta["tags"] = list(entry.tags)
            return [
                DocumentInput(
                    source=str(path), title=entry.title, body=content, collection=collection, meta=meta
                )
            ]
        heading = re.search(r"^#\s+(.+?)\s*$", content, re.MULTILINE)
        title = heading.group(1) if heading else path.stem
    else:
        title = next(line.strip() for line in content.splitlines() if line.strip())[:200]
    return [DocumentInput(source=str(path), title=title, body=content, collection=collection)]


def read_json_lines(path: Path, content: str, collection: str) -> list[DocumentInput]:
    documents = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except ValueError as error:
            raise IngestError(f"{where}: not valid JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise IngestError(f"{where}: expected a JSON object with a title")
        title, abstract, body = (record.get(key) for key in ("title", "abstract", "body"))
        if not isinstance(title, str) or not title.strip():
            raise IngestError(f"{where}: needs a non-empty string 'title'")
        for name, value in (("abstract", abstract), ("body", body)):
            if value is not None and not isinstance(value, str):
                raise IngestError(f"{where}: '{name}' must be a string")
        text = "\n\n".join(part for part in (abstract, body) if part and part.strip())
        if not text:
            raise IngestError(f"{where}: needs a non-empty 'abstract' or 'body'")
        meta = {key: record[key] for key in ("url", "year", "authors") if key in record}
        if abstract:
            meta["abstract"] = abstract
        documents.append(
            DocumentInput(
                source=f"{path}#{number}", title=title.strip(), body=text, collection=collection, meta=meta
            )
        )
    if not documents:
        raise IngestError(f"{path}: no records")
    return documents


# ----------------------------------------------------------------------------- cognition entries


def is_cognition(text: str) -> bool:
    """Whether a Markdown text has exactly the cognition entry's second-level headings."""
    return tuple(re.findall(r"^##\s+(.+?)\s*$", text, re.MULTILINE)) == COGNITION_SECTIONS


def parse_cognition(text: str, source: str) -> CognitionEntry:
    """Parse `# Title`, the four `## ...` sections in order, and a final `Tags: a, b` line."""
    lines = text.strip().splitlines()
    if not lines or not lines[0].startswith("# "):
        raise IngestError(f"{source}: a cognition entry starts with '# <title>'")
    title = lines[0][2:].strip()
    if not lines[-1].startswith("Tags:"):
        raise IngestError(f"{source}: a cognition entry ends with a 'Tags: a, b, c' line")
    tags = tuple(tag.strip() for tag in lines[-1][len("Tags:") :].split(",") if tag.strip())
    if not tags:
        raise IngestError(f"{source}: the Tags line names no tags")
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines[1:-1]:
        heading = re.fullmatch(r"##\s+(.+?)\s*", line)
        if heading:
            current = sections.setdefault(heading.group(1), [])
        elif current is not None:
            current.append(line)
        elif line.strip():
            raise IngestError(f"{source}: text before the first section: {line.strip()[:60]!r}")
    if tuple(sections) != COGNITION_SECTIONS:
        raise IngestError(
            f"{source}: sections must be {', '.join(COGNITION_SECTIONS)} in that order, found "
            f"{', '.join(sections) or 'none'}"
        )
    fields = {name: "\n".join(body).strip() for name, body in sections.items()}
    for name, value in fields.items():
        if not value:
            raise IngestError(f"{source}: section '{name}' is empty")
    return CognitionEntry(
        title=title,
        design_insight=fields["Design insight"],
        when_it_helps=fields["When it helps"],
        how_to_implement=fields["How to implement"],
        reference=fields["Reference"],
        tags=tags,
    )


# ----------------------------------------------------------------------------- chunking


def chunk_text(text: str, max_chars: int = 1200) -> list[str]:
    """Pack paragraphs into chunks of at most `max_chars`. A Markdown heading starts a new chunk
    and is repeated at the top of its section's later chunks, so each chunk says what it is about.
    Over-long paragraphs are cut at sentence ends, then at spaces, then anywhere."""
    if max_chars < 80:
        raise ValueError(f"max_chars must be at least 80, got {max_chars}")
    chunks: list[str] = []
    heading = ""
    current: list[str] = []

    def flush() -> None:
        if current:
            chunks.append("\n\n".join(current))
        current.clear()

    for paragraph in (p.strip() for p in re.split(r"\n\s*\n", text)):
        if not paragraph:
            continue
        if paragraph.startswith("#"):
            flush()
            first, _, rest = paragraph.partition("\n")
            # A heading too long to repeat is kept as ordinary text.
            heading = first if len(first) <= max_chars // 4 else ""
            if heading:
                current.append(heading)
                paragraph = rest.strip()
                if not paragraph:
                    continue
        budget = max_chars - (len(heading) + 2 if heading else 0)
        for piece in split_long(paragraph, budget):
            if current and len("\n\n".join([*current, piece])) > max_chars:
                flush()
            if not current and heading:
                current.append(heading)
            current.append(piece)
    flush()
    return chunks


def split_long(paragraph: str, limit: int) -> list[str]:
    if len(paragraph) <= limit:
        return [paragraph]
    pieces: list[str] = []
    for unit in re.split(r"(?<=[.!?])\s+", paragraph):
        while len(unit) > limit:
            cut = unit.rfind(" ", 0, limit)
            cut = cut if cut > 0 else limit
            pieces.append(unit[:cut].strip())
            unit = unit[cut:].strip()
        if pieces and len(pieces[-1]) + 1 + len(unit) <= limit:
            pieces[-1] += " " + unit
        elif unit:
            pieces.append(unit)
    return pieces
