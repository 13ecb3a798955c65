"""The ticket QR codes in confirmation emails: the PNG shows the symbol its writer drew (zxing-cpp for ASCII, segno
beyond it), and a reader gets the code back."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
import zxingcpp
from hypothesis import example, given, settings
from hypothesis import strategies as st

from boxoffice.domain.tickets import Ticket, TicketSeal
from boxoffice.service_layer.notifications import QR_BORDER, QR_MASK, QR_SCALE, qr_modules, qr_png, qr_symbol

SEAL = TicketSeal(b"k" * 32)


def _pixels(png: bytes) -> tuple[int, list[list[int]]]:
    """A 1-bit greyscale PNG's rows as 0 (black) and 1 (white) per pixel; filters None and Up only."""
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    at, idat, width, height = 8, b"", 0, 0
    while at < len(png):
        (length,), kind = struct.unpack(">I", png[at:at + 4]), png[at + 4:at + 8]
        body = png[at + 8:at + 8 + length]
        assert struct.unpack(">I", png[at + 8 + length:at + 12 + length])[0] == zlib.crc32(kind + body)
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert (depth, colour) == (1, 0)
        elif kind == b"IDAT":
            idat += body
        at += 12 + length
    raw, stride = zlib.decompress(idat), (width + 7) // 8 + 1
    rows, previous = [], bytes(stride - 1)
    for y in range(height):
        kind, line = raw[y * stride], raw[y * stride + 1:(y + 1) * stride]
        assert kind in (0, 2)
        line = bytes((a + b) & 0xFF for a, b in zip(line, previous, strict=True)) if kind == 2 else line
        rows.append([(line[x // 8] >> (7 - x % 8)) & 1 for x in range(width)])
        previous = line
    return width, rows


def _read(png: bytes) -> list[str]:
    width, rows = _pixels(png)
    grey = bytes(255 * bit for row in rows for bit in row)
    return [code.text for code in zxingcpp.read_barcodes(memoryview(grey).cast("B", (len(rows), width)))]


def _segno_png(payload: str) -> bytes:
    out = io.BytesIO()
    qr_symbol(payload).save(out, kind="png", scale=QR_SCALE, border=QR_BORDER)
    return out.getvalue()


def _zxing_pixels(payload: str) -> tuple[int, list[list[int]]]:
    """zxing-cpp's own drawing of the symbol at the email's scale, in the email's white border."""
    image = zxingcpp.create_barcode(payload, zxingcpp.BarcodeFormat.QRCode, ec_level="M").to_image(
        scale=QR_SCALE, add_quiet_zones=False)
    height, width = image.shape
    grey, edge = bytes(memoryview(image)), QR_BORDER * QR_SCALE  # type: ignore[arg-type]
    size = width + 2 * edge
    rows = [[1] * size for _ in range(edge)]
    rows += [[1] * edge + [1 if grey[y * width + x] else 0 for x in range(width)] + [1] * edge for y in range(height)]
    return size, rows + [[1] * size for _ in range(edge)]


CODES = [SEAL.issue(Ticket("evt_rock_2030", "9f1c2d3e-1111-2222-3333-444455556666", seat))
         for seat in ("A1", "Stalls-Row-Z-123", "x" * 60)]


@pytest.mark.parametrize("code", CODES)
def test_an_ascii_ticket_has_zxings_own_pixels_and_reads_back(code: str) -> None:
    png = qr_png(code)
    assert _pixels(png) == _zxing_pixels(code)
    assert _read(png) == [code]


@pytest.mark.parametrize("seat", ["Balcón 7", "Ложа 3", "席 12"])
def test_a_ticket_beyond_ascii_has_segnos_own_pixels_and_reads_back(seat: str) -> None:
    code = SEAL.issue(Ticket("evt_rock_2030", "9f1c2d3e-1111-2222-3333-444455556666", seat))
    png = qr_png(code)
    assert _pixels(png) == _pixels(_segno_png(code))
    assert _read(png) == [code]


def test_the_symbol_is_full_size_with_error_level_m() -> None:
    for payload in ("¡", "Balcón 7"):  # segno's, with the fixed mask
        symbol = qr_symbol(payload)
        assert (symbol.is_micro, symbol.mask, symbol.error) == (False, QR_MASK, "M")
    for payload in ("A", *CODES):  # zxing-cpp's, as a reader finds it
        width, rows = _pixels(qr_png(payload))
        grey = bytes(255 * bit for row in rows for bit in row)
        [found] = zxingcpp.read_barcodes(memoryview(grey).cast("B", (len(rows), width)))
        assert (found.format, found.ec_level) == (zxingcpp.BarcodeFormat.QRCode, "M")
        assert len(qr_modules(payload)) >= 21  # a full-size symbol: Micro QR codes have 11 to 17 modules a side


@settings(max_examples=30, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=200))
@example("¡")  # read as "｡" (Shift JIS) when the symbol does not say UTF-8
@example("ଂ0")  # read as "牀Ｑ": its UTF-8 bytes pair as Shift JIS, and segno chose kanji mode for them
def test_any_text_reads_back(payload: str) -> None:
    assert _read(qr_png(payload)) == [payload]
