"""Reading documents and cutting them into chunks: every format, every way a file can be bad."""

import itertools
import json
import random

import pytest

from discover.knowledge_base.ingest import (
    COGNITION_SECTIONS,
    IngestError,
    chunk_text,
    is_cognition,
    parse_cognition,
    read_documents,
)
from discover.knowledge_base.store import STARTER_COGNITION

ENTRY = """# Short convolutions

## Design insight
A causal depthwise convolution over a few tokens gives every position local context.

## When it helps
Recall fails on pairs whose key spans two tokens.

## How to implement
Apply a width-4 depthwise Conv1d with left padding of 3 to q, k and v.

## Reference
Poli et al., Hyena Hierarchy, 2023.

Tags: convolution, recall
"""


def test_each_format_is_read(tmp_path):
    (tmp_path / "a.md").write_text("intro\n\n# Decay gates\n\nbody text\n")
    (tmp_path / "b.txt").write_text("\n  First line is the title  \nmore\n")
    records = [
        {"title": "P1", "abstract": "short", "body": "long", "url": "u", "year": 2024},
        {"title": "P2", "body": "b"},
    ]
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    (tmp_path / "skip.pdf").write_bytes(b"%PDF")
    documents = read_documents(tmp_path, collection="papers")
    assert [d.title for d in documents] == ["Decay gates", "First line is the title", "P1", "P2"]
    assert {d.collection for d in documents} == {"papers"}
    p1 = documents[2]
    assert p1.body == "short\n\nlong" and p1.meta == {"url": "u", "year": 2024, "abstract": "short"}
    assert p1.source.endswith("c.jsonl#1") and documents[3].source.endswith("c.jsonl#2")


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("bad.jsonl", '{"title": "ok", "body": "x"}\n{not json\n', "bad.jsonl:2: not valid JSON"),
        ("bad.jsonl", '{"abstract": "no title"}\n', "bad.jsonl:1: needs a non-empty string 'title'"),
        ("bad.jsonl", '{"title": "t"}\n', "needs a non-empty 'abstract' or 'body'"),
        ("bad.jsonl", "[1, 2]\n", "expected a JSON object"),
        ("bad.jsonl", '{"title": "t", "body": 5}\n', "'body' must be a string"),
        ("empty.md", "  \n", "empty document"),
        ("paper.pdf", "%PDF", "unsupported file type"),
    ],
)
def test_bad_files_are_refused_with_their_name(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(IngestError, match=message) as error:
        read_documents(tmp_path / name)
    assert "\n" not in str(error.value)


def test_unreadable_inputs(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(IngestError, match="not UTF-8"):
        read_documents(tmp_path / "latin1.txt")
    with pytest.raises(IngestError, match="no such file"):
        read_documents(tmp_path / "missing.md")


def test_content_hash_follows_the_content(tmp_path):
    path = tmp_path / "n.md"
    path.write_text("# N\n\none\n")
    first = read_documents(path)[0].content_hash
    assert read_documents(path)[0].content_hash == first
    assert read_documents(path, collection="other")[0].content_hash != first
    path.write_text("# N\n\ntwo\n")
    assert read_documents(path)[0].content_hash != first


def test_a_cognition_entry_keeps_its_sections(tmp_path):
    path = tmp_path / "short-conv.md"
    path.write_text(ENTRY)
    assert is_cognition(ENTRY)
    document = read_documents(path)[0]
    assert document.title == "Short convolutions"
    assert document.meta["when_it_helps"] == "Recall fails on pairs whose key spans two tokens."
    assert document.meta["tags"] == ["convolution", "recall"] and document.meta["kind"] == "cognition"


@pytest.mark.parametrize(
    "broken, message",
    [
        (
            ENTRY.replace("## When it helps\nRecall fails on pairs whose key spans two tokens.\n", ""),
            "sections must be",
        ),
        (ENTRY.replace("## Reference", "## Sources"), "sections must be"),
        (ENTRY.replace("Poli et al., Hyena Hierarchy, 2023.", ""), "section 'Reference' is empty"),
        (ENTRY.replace("Tags: convolution, recall", ""), "ends with a 'Tags:"),
        (ENTRY.replace("Tags: convolution, recall", "Tags: , "), "names no tags"),
        (ENTRY.replace("# Short convolutions", "Short convolutions"), "starts with '# <title>'"),
    ],
)
def test_malformed_cognition_entries_say_what_is_wrong(broken, message):
    with pytest.raises(IngestError, match=message):
        parse_cognition(broken, "entry.md")


def test_a_section_out_of_order_is_refused():
    design = ENTRY[ENTRY.index("## Design insight") : ENTRY.index("## When it helps")]
    swapped = ENTRY.replace(design, "").replace("## Reference", design + "## Reference")
    with pytest.raises(IngestError, match="in that order"):
        parse_cognition(swapped, "entry.md")


def test_every_shipped_cognition_entry_parses():
    entries = sorted(STARTER_COGNITION.glob("*.md"))
    assert len(entries) >= 25
    for path in entries:
        text = path.read_text()
        assert is_cognition(text), f"{path.name} does not have the cognition sections {COGNITION_SECTIONS}"
        entry = parse_cognition(text, path.name)
        assert entry.reference and entry.tags


def random_text(rng):
    words = ["".join(rng.choices("abcdefghij", k=rng.randint(1, 12))) for _ in range(200)]
    paragraphs = []
    for _ in range(rng.randint(1, 30)):
        kind = rng.random()
        if kind < 0.15:
            paragraphs.append("# " + " ".join(rng.choices(words, k=rng.randint(1, 6))))
        elif kind < 0.2:
            paragraphs.append("x" * rng.randint(100, 3000))  # one enormous word
        else:
            sentences = [
                " ".join(rng.choices(words, k=rng.randint(1, 40))) + rng.choice(".?!")
                for _ in range(rng.randint(1, 15))
            ]
            paragraphs.append(" ".join(sentences))
    return "\n\n".join(paragraphs)


@pytest.mark.parametrize("seed", range(25))
def test_chunks_are_bounded_and_lose_no_text(seed):
    rng = random.Random(seed)
    text = random_text(rng)
    limit = rng.choice([80, 200, 1200])
    chunks = chunk_text(text, max_chars=limit)
    assert all(0 < len(chunk) <= limit for chunk in chunks)
    assert chunks == chunk_text(text, max_chars=limit)
    unrepeated = chunks[:1]
    for previous, chunk in itertools.pairwise(chunks):
        heading = previous.split("\n", 1)[0]
        repeated = heading.startswith("#") and chunk.startswith(heading + "\n\n")
        unrepeated.append(chunk[len(heading) :] if repeated else chunk)
    assert "".join("".join(unrepeated).split()) == "".join(text.split())  # nothing lost, nothing added


def test_a_heading_is_repeated_on_its_sections_later_chunks():
    text = (
        "# Gating\n\n"
        + "\n\n".join(f"Paragraph {i} " + "word " * 30 for i in range(6))
        + "\n\n# Next\n\nlast"
    )
    chunks = chunk_text(text, max_chars=300)
    assert len(chunks) > 2
    assert all(chunk.startswith("# Gating") for chunk in chunks[:-1])
    assert chunks[-1] == "# Next\n\nlast"
