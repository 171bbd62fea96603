"""tokens: the offline estimator, calibrated on real recordings."""

from __future__ import annotations

import base64
import math
import struct
from pathlib import Path
from typing import Any

import pytest
import yaml

from leanloop import tokens
from leanloop.cachesim import prompt_from_request
from leanloop.tokens import (
    PDF_TOKENS_PER_PAGE,
    TRAILING_PROMPT_TOKENS,
    UNKNOWN_PDF_PAGES,
    Estimator,
    count_text,
    image_size,
    image_tokens,
)


def _recorded(shared_data: Path, name: str) -> list[tuple[dict[str, Any], int]]:
    recording = yaml.safe_load((shared_data / "anthropic-recordings" / name).read_text())
    out = []
    for interaction in recording["interactions"]:
        usage = interaction["response"]["parsed_body"]["usage"]
        total = usage["input_tokens"] + usage["cache_creation_input_tokens"] + usage["cache_read_input_tokens"]
        out.append((interaction["request"]["parsed_body"], total))
    return out


def test_estimates_match_real_prompt_counts_within_two_percent(shared_data: Path) -> None:
    cases = _recorded(shared_data, "test_anthropic_cache_real_api.yaml")
    cases += _recorded(shared_data, "test_multiple_parallel_tool_calls.yaml")
    assert len(cases) == 4
    for request, real in cases:
        estimated = prompt_from_request(request).total_tokens
        assert abs(estimated - real) / real < 0.02, (estimated, real)


def test_estimates_are_deterministic_and_monotonic() -> None:
    text = "The checkout service failed to reach db-primary:5432 after 3 retries (timeout=30s)."
    assert count_text(text) == count_text(text)
    assert count_text(text + " More words here.") > count_text(text)
    assert count_text("") == 0
    assert count_text("x" * 100_000) > count_text("x" * 10_000)


def test_random_ids_cost_more_than_words() -> None:
    assert count_text("toolu_01XFyAjstT3966qvRynZyVPo") > count_text("information about people")


def test_newer_tokenizer_counts_about_thirty_percent_more() -> None:
    blocks = [("user+", {"type": "text", "text": "A sentence about logs and errors. " * 200})]
    old = Estimator().count_request("claude-sonnet-4-6", blocks)[0]
    new = Estimator().count_request("claude-opus-4-7", blocks)[0]
    assert 1.25 < new / old < 1.35
    assert Estimator().count_request("claude-opus-5-5", blocks)[0] == new


def test_prompt_ends_with_uncacheable_assistant_opening() -> None:
    p = prompt_from_request({"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "hi"}]})
    assert p.total_tokens == sum(b.tokens for b in p.blocks) + TRAILING_PROMPT_TOKENS


# ---------------------------------------------------------------------------------------------------------------
# Images and documents: made by hand (the few header bytes the estimator reads), so the sizes are known exactly


def png(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\0" * 4 + b"IDAT" * 50


def jpeg(width: int, height: int, exif_bytes: int = 0) -> bytes:
    segments = b""
    while exif_bytes > 0:  # APP1 segments (EXIF, thumbnails) before the frame header, as cameras write them
        size = min(exif_bytes, 65_000)
        segments += b"\xff\xe1" + struct.pack(">H", size + 2) + b"E" * size
        exif_bytes -= size
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x22\x00" * 3
    return b"\xff\xd8" + b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\0" + b"\0" * 9 + segments + sof + b"\xff\xd9"


def gif(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\0" * 20


def webp(width: int, height: int, kind: str) -> bytes:
    if kind == "VP8X":
        body = b"VP8X" + struct.pack("<I", 10) + b"\0" * 4 + (width - 1).to_bytes(3, "little")
        body += (height - 1).to_bytes(3, "little")
    elif kind == "VP8L":
        bits = (width - 1) | (height - 1) << 14
        body = b"VP8L" + struct.pack("<I", 5) + b"\x2f" + struct.pack("<I", bits)
    else:
        body = b"VP8 " + struct.pack("<I", 10) + b"\0\0\0\x9d\x01\x2a" + struct.pack("<HH", width, height)
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body + b"\0" * 16


def image(data: bytes, media_type: str = "image/png") -> dict[str, Any]:
    encoded = base64.b64encode(data).decode()
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": encoded}}


def tokens_of(block: dict[str, Any], model: str = "claude-sonnet-4-6") -> int:
    return Estimator().count_request(model, [("user", block)])[0]


@pytest.mark.parametrize(
    ("data", "media_type", "expected"),
    [
        (png(1000, 1000), "image/png", 1334),  # Anthropic's example: 1000x1000 px ~ 1,334 tokens
        (png(200, 200), "image/png", 54),  # and 200x200 px ~ 54
        (jpeg(1092, 1092), "image/jpeg", 1590),  # and 1092x1092 px ~ 1,590
        (jpeg(640, 480, exif_bytes=200_000), "image/jpeg", 410),  # the frame header after 200 KB of EXIF
        (gif(300, 200), "image/gif", 80),
        (webp(640, 480, "VP8X"), "image/webp", 410),
        (webp(640, 480, "VP8L"), "image/webp", 410),
        (webp(640, 480, "VP8 "), "image/webp", 410),
    ],
)
def test_an_image_costs_its_pixels_over_750(data: bytes, media_type: str, expected: int) -> None:
    assert tokens_of(image(data, media_type)) == expected + 1  # + the block's framing token
    assert image_tokens(*_size(data), model="claude-sonnet-4-6") == expected


def _size(data: bytes) -> tuple[int, int]:
    size = image_size(data)
    assert size is not None
    return size


def test_a_large_image_is_counted_at_the_size_the_api_resizes_it_to() -> None:
    big = image(jpeg(4000, 3000), "image/jpeg")
    old = tokens_of(big, "claude-sonnet-4-6")  # long edge 1,568 px and ~1,600 tokens (1.2 megapixels) at most
    assert old == tokens_of(image(png(8000, 6000))) == math.ceil(1264 * 948 / 750) + 1
    new = tokens_of(big, "claude-opus-4-7")  # 4.7 and later: 2,576 px and ~3.75 megapixels
    assert new == math.ceil(2236 * 1677 / 750) + 1
    assert image_tokens(1000, 1000, model="claude-opus-4-7") == 1334  # pixels, not text: no tokenizer factor


def test_an_image_without_readable_pixels_gets_the_largest_size_the_model_takes() -> None:
    url = {"type": "image", "source": {"type": "url", "url": "https://example.com/x.png"}}
    cap = image_tokens(100_000, 100_000, model="claude-sonnet-4-6")
    assert tokens_of(url) == cap + 1
    assert tokens_of(image(b"not an image")) == cap + 1
    assert tokens_of({"type": "image", "source": {"type": "file", "file_id": "file_1"}}) == cap + 1


def pdf(pages: int) -> bytes:
    objects = b"".join(b"%d 0 obj << /Type /Page /Parent 2 0 R >> endobj\n" % (i + 3) for i in range(pages))
    return b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n" + objects + b"%%EOF\n"


def document(source: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "document", "source": source, **extra}


def test_a_pdf_costs_a_documented_estimate_per_page() -> None:
    three = document({"type": "base64", "media_type": "application/pdf", "data": base64.b64encode(pdf(3)).decode()})
    one = document({"type": "base64", "media_type": "application/pdf", "data": base64.b64encode(pdf(1)).decode()})
    assert tokens_of(three) - tokens_of(one) == 2 * PDF_TOKENS_PER_PAGE
    compressed = b"%PDF-1.7\n1 0 obj << /Type /Pages /Kids [3 0 R 4 0 R] /Count 12 >> endobj\n%%EOF"
    from_tree = document({"type": "base64", "media_type": "application/pdf", "data": base64.b64encode(compressed)})
    assert tokens_of(from_tree) - tokens_of(one) == 11 * PDF_TOKENS_PER_PAGE
    url = document({"type": "url", "url": "https://example.com/report.pdf"})
    assert tokens_of(url) - tokens_of(one) == (UNKNOWN_PDF_PAGES - 1) * PDF_TOKENS_PER_PAGE


def test_a_text_document_costs_its_text() -> None:
    text = "The checkout service failed to reach db-primary:5432 after 3 retries. " * 40
    plain = document({"type": "text", "media_type": "text/plain", "data": text}, title="incident.log")
    assert tokens_of(plain) == count_text(text) + count_text("incident.log") + 1
    assert tokens_of(plain, "claude-opus-4-7") == round((count_text(text) + count_text("incident.log") + 1) * 1.3)
    blocks = document({"type": "content", "content": [{"type": "text", "text": text}, image(png(200, 200))]})
    assert tokens_of(blocks) == count_text(text) + 2 + 54 + 2 + 1  # each inner block: its own framing + 1


def test_images_inside_tool_results_are_counted() -> None:
    result = {"type": "tool_result", "tool_use_id": "t1", "content": [image(png(1000, 1000))]}
    assert tokens_of(result) > 1334


def test_the_calibration_stated_in_the_docstring_is_the_current_one(shared_data: Path) -> None:
    cases = _recorded(shared_data, "test_anthropic_cache_real_api.yaml")
    cases += _recorded(shared_data, "test_multiple_parallel_tool_calls.yaml")
    table = [line.split() for line in (tokens.__doc__ or "").splitlines() if line[:1].isalpha() and "#" in line]
    for (request, real), row in zip(cases, table, strict=False):
        estimated = prompt_from_request(request).total_tokens
        error = f"{100 * (estimated - real) / real:+.1f}".replace("+0.0", "0.0")
        assert row[-4:] == [f"{real:,}", f"{estimated:,}", error, "%"], row
