"""The logo in img/: drawn by img/draw_logo.py, committed as SVG and PNG."""

import importlib.util
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

IMG = Path(__file__).resolve().parent.parent / "img"
SVG = IMG / "broken_record_parrot.svg"
PNG = IMG / "broken_record_parrot.png"


def load_draw_logo():
    spec = importlib.util.spec_from_file_location("draw_logo", IMG / "draw_logo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_svg_is_well_formed_xml():
    root = ET.parse(SVG).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("viewBox") == "0 0 512 512"
    # it is a drawing, not an embedded bitmap
    assert not root.findall(".//{http://www.w3.org/2000/svg}image")
    assert len(list(root.iter())) > 100


def test_png_is_a_png_of_sensible_size():
    data = PNG.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert 400 <= width <= 1024 and 300 <= height <= 1024
    assert 10_000 < len(data) < 1_000_000


def test_draw_script_reproduces_the_committed_svg():
    draw_logo = load_draw_logo()
    assert draw_logo.svg() == SVG.read_text(encoding="utf-8")
    assert draw_logo.svg() == draw_logo.svg()


def test_png_is_rendered_from_the_svg():
    draw_logo = load_draw_logo()
    png = draw_logo.render_png(SVG.read_text(encoding="utf-8"))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == struct.unpack(">II", PNG.read_bytes()[16:24])
