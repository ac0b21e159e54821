"""Draw the project logo: a parrot standing on a turntable, chewing a vinyl record.

    python img/draw_logo.py        writes img/broken_record_parrot.svg and .png

The SVG is written by hand, shape by shape, with no randomness, so the same
script always gives the same bytes (tests/test_img.py checks that). The PNG
is rendered from the SVG with vl-convert (resvg), which is in the venv.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SVG_PATH = HERE / "broken_record_parrot.svg"
PNG_PATH = HERE / "broken_record_parrot.png"

WIDTH, HEIGHT = 512, 512

# The record lies flat on the platter, seen from the front and above: circles
# become ellipses with this vertical squash.
SQUASH = 0.42
CX, CY = 314.0, 294.0          # centre of the record's top surface
R_RECORD = 120.0
BITE_ANGLE = 184.0             # where the beak is; degrees, 0 = right, 90 = towards the viewer
NOTCH_ANGLE = 136.0            # where the missing piece is, just in front of the beak

# The parrot is drawn in its own coordinates (head centre at 0,0, facing
# right), then leaned forward, scaled and moved so its open beak sits on
# the record's edge at BITE_ANGLE.
PARROT_LEAN = 24.0
PARROT_SCALE = 1.12
MOUTH = (42.0, 20.0)            # between the mandibles, in parrot coordinates

SCENE_SCALE = 0.94
SCENE_SHIFT = (262 - SCENE_SCALE * 256, 302 - SCENE_SCALE * 330)


def num(x: float) -> str:
    """A compact, stable number: 12.0 -> '12', 3.14159 -> '3.14'."""
    s = f"{x:.2f}".rstrip("0").rstrip(".")
    return "0" if s == "-0" else s


def attrs(**kw) -> str:
    parts = []
    for key, value in kw.items():
        name = key.rstrip("_").replace("_", "-")
        if isinstance(value, float):
            value = num(value)
        parts.append(f'{name}="{value}"')
    return " ".join(parts)


def tag(name: str, **kw) -> str:
    return f"<{name} {attrs(**kw)}/>"


def ellipse(cx, cy, rx, ry, **kw) -> str:
    return tag("ellipse", cx=float(cx), cy=float(cy), rx=float(rx), ry=float(ry), **kw)


def path(d: str, **kw) -> str:
    return tag("path", d=d, **kw)


def on_record(r: float, angle_deg: float) -> tuple[float, float]:
    """Point at radius r and angle on the record's top surface, in picture coordinates."""
    a = math.radians(angle_deg)
    return CX + r * math.cos(a), CY + r * SQUASH * math.sin(a)


def pts(*xy: float) -> str:
    return " ".join(f"{num(xy[i])},{num(xy[i + 1])}" for i in range(0, len(xy), 2))


# --------------------------------------------------------------------------
# pieces of the picture, back to front


def defs() -> list[str]:
    return [
        "<defs>",
        '<radialGradient id="bg" cx="0.5" cy="0.42" r="0.6">'
        '<stop offset="0" stop-color="#fff8e1"/><stop offset="0.7" stop-color="#ffe0a3"/>'
        '<stop offset="1" stop-color="#f9c46b"/></radialGradient>',
        '<linearGradient id="wood_top" x1="0" y1="0" x2="0" y2="1">'
        '<stop offset="0" stop-color="#a0673a"/><stop offset="1" stop-color="#7a4a26"/></linearGradient>',
        '<linearGradient id="wood_front" x1="0" y1="0" x2="0" y2="1">'
        '<stop offset="0" stop-color="#5f3a1d"/><stop offset="1" stop-color="#432811"/></linearGradient>',
        '<linearGradient id="metal" x1="0" y1="0" x2="1" y2="0">'
        '<stop offset="0" stop-color="#8d949c"/><stop offset="0.35" stop-color="#eef1f4"/>'
        '<stop offset="0.6" stop-color="#b9c0c7"/><stop offset="1" stop-color="#6d747c"/></linearGradient>',
        '<radialGradient id="vinyl" cx="0.5" cy="0.5" r="0.5">'
        '<stop offset="0" stop-color="#2c2c30"/><stop offset="1" stop-color="#111114"/></radialGradient>',
        '<radialGradient id="red_body" cx="0.35" cy="0.3" r="0.8">'
        '<stop offset="0" stop-color="#ff5a4f"/><stop offset="1" stop-color="#c3161f"/></radialGradient>',
        '<radialGradient id="red_head" cx="0.4" cy="0.3" r="0.75">'
        '<stop offset="0" stop-color="#ff6b5e"/><stop offset="1" stop-color="#d01c24"/></radialGradient>',
        '<linearGradient id="beak" x1="0" y1="0" x2="1" y2="1">'
        '<stop offset="0" stop-color="#fffaf0"/><stop offset="1" stop-color="#d9ccb4"/></linearGradient>',
        '<mask id="bite" maskUnits="userSpaceOnUse" x="0" y="0" width="512" height="512">',
        tag("rect", x=0.0, y=0.0, width=512.0, height=512.0, fill="#fff"),
        *bite_holes(),
        "</mask>",
        "</defs>",
    ]


def bite_holes() -> list[str]:
    """Overlapping tooth-marks: the piece of the record the parrot has bitten off."""
    out = []
    for da, depth, size in ((-13, 4, 13), (-6, 12, 16), (2, 14, 17), (10, 8, 14), (16, 2, 10)):
        x, y = on_record(R_RECORD + 4 - depth, NOTCH_ANGLE + da)
        out.append(ellipse(x, y, size, size * SQUASH * 1.3, fill="#000"))
    return out


def background() -> list[str]:
    return [
        tag("circle", cx=256.0, cy=248.0, r=236.0, fill="url(#bg)"),
        tag("circle", cx=256.0, cy=248.0, r=236.0, fill="none", stroke="#e8a33d", stroke_width=6.0),
    ]


def notes() -> list[str]:
    """Music notes rising from the record; the last one is broken in two."""
    out = ['<g transform="translate(-100 22)">']
    ink = "#3b3b6d"
    # a single eighth note
    out.append(ellipse(338, 150, 13, 9.5, fill=ink, transform="rotate(-20 338 150)"))
    out.append(tag("rect", x=348.0, y=92.0, width=4.5, height=58.0, fill=ink))
    out.append(path("M352.5,92 C366,104 378,108 372,128 C370,116 362,112 352.5,110 Z", fill=ink))
    # a pair of beamed notes, snapped in half with a zig-zag
    whole = (
        ellipse(392, 98, 12, 9, fill=ink, transform="rotate(-20 392 98)"),
        ellipse(434, 86, 12, 9, fill=ink, transform="rotate(-20 434 86)"),
        tag("rect", x=400.5, y=42.0, width=4.5, height=56.0, fill=ink),
        tag("rect", x=442.5, y=30.0, width=4.5, height=56.0, fill=ink),
        path("M400.5,42 L447,30 L447,42 L400.5,54 Z", fill=ink),
    )
    out.append('<g transform="translate(-8 6) rotate(-10 412 70)">')
    out.append('<clipPath id="note_left"><path d="M380,20 L424,20 L416,52 L426,64 L414,110 L380,110 Z"/></clipPath>')
    out.append('<g clip-path="url(#note_left)">' + "".join(whole) + "</g></g>")
    out.append('<g transform="translate(10 -4) rotate(12 430 60)">')
    out.append('<clipPath id="note_right"><path d="M424,20 L460,20 L460,110 L414,110 L426,64 L416,52 Z"/></clipPath>')
    out.append('<g clip-path="url(#note_right)">' + "".join(whole) + "</g></g>")
    out.append("</g>")
    return out


def plinth() -> list[str]:
    top = "M74,206 L460,206 Q476,206 479,222 L502,376 Q504,392 488,392 L24,392 Q8,392 10,376 L50,222 Q54,206 74,206 Z"
    return [
        ellipse(256, 452, 236, 16, fill="#000", opacity="0.18"),
        tag("rect", x=40.0, y=430.0, width=40.0, height=16.0, rx=4.0, fill="#2a1a0c"),
        tag("rect", x=432.0, y=430.0, width=40.0, height=16.0, rx=4.0, fill="#2a1a0c"),
        path("M10,384 L502,384 L502,424 Q502,436 490,436 L22,436 Q10,436 10,424 Z", fill="url(#wood_front)"),
        path(top, fill="url(#wood_top)"),
        # wood grain
        path("M70,250 C180,244 300,256 468,248", fill="none", stroke="#8c5630", stroke_width=2.0, opacity="0.6"),
        path("M50,330 C200,322 330,338 486,328", fill="none", stroke="#8c5630", stroke_width=2.0, opacity="0.6"),
        path("M40,364 C150,370 320,358 492,366", fill="none", stroke="#8c5630", stroke_width=2.0, opacity="0.5"),
        path("M26,392 L486,392", stroke="#c08656", stroke_width=2.0, opacity="0.7"),
        # a knob and a power light on the front
        tag("circle", cx=460.0, cy=412.0, r=5.0, fill="#6dff8a", stroke="#1d5d2a", stroke_width=1.5),
        tag("rect", x=380.0, y=404.0, width=56.0, height=14.0, rx=7.0, fill="#2d1b0d"),
        tag("rect", x=384.0, y=407.0, width=22.0, height=8.0, rx=4.0, fill="#d6dade"),
        # 33/45 speed buttons on the deck
        ellipse(452, 366, 14, 6, fill="#d6dade", stroke="#555", stroke_width=1.0),
        ellipse(420, 370, 14, 6, fill="#9aa2aa", stroke="#555", stroke_width=1.0),
    ]


def platter() -> list[str]:
    r = R_RECORD + 10
    ry = r * SQUASH
    drop = 16
    return [
        ellipse(CX, CY + drop + 6, r + 4, ry + 4, fill="#000", opacity="0.25"),
        path(
            f"M{num(CX - r)},{num(CY + 4)} L{num(CX - r)},{num(CY + 4 + drop)} "
            f"A{num(r)},{num(ry)} 0 0 0 {num(CX + r)},{num(CY + 4 + drop)} "
            f"L{num(CX + r)},{num(CY + 4)} Z",
            fill="url(#metal)",
        ),
        # strobe dots around the platter's rim
        *[
            ellipse(CX + r * math.cos(math.radians(a)), CY + 4 + drop * 0.5 + ry * math.sin(math.radians(a)),
                    1.6, 2.4, fill="#555b62")
            for a in range(12, 180, 12)
        ],
        ellipse(CX, CY + 4, r, ry, fill="#d3d8dd", stroke="#7d848b", stroke_width=1.0),
        ellipse(CX, CY + 3, r - 8, ry - 4, fill="none", stroke="#a9b0b7", stroke_width=1.0),
    ]


def record() -> list[str]:
    ry = R_RECORD * SQUASH
    out = ['<g mask="url(#bite)">']
    out.append(ellipse(CX, CY + 3, R_RECORD, ry, fill="#050507"))  # its edge
    out.append(ellipse(CX, CY, R_RECORD, ry, fill="url(#vinyl)"))
    # grooves, with a few wider gaps between the tracks
    r = R_RECORD - 5
    i = 0
    while r > 58:
        colour = "#3a3a40" if i % 2 else "#1e1e22"
        out.append(ellipse(CX, CY, r, r * SQUASH, fill="none", stroke=colour, stroke_width=1.0))
        r -= 9 if i in (4, 9) else 4.2
        i += 1
    # light catching the grooves: two opposite wedges
    for a0, a1 in ((200, 232), (20, 52)):
        x0, y0 = on_record(R_RECORD - 4, a0)
        x1, y1 = on_record(R_RECORD - 4, a1)
        xi0, yi0 = on_record(60, a0)
        xi1, yi1 = on_record(60, a1)
        out.append(path(
            f"M{num(xi0)},{num(yi0)} L{num(x0)},{num(y0)} "
            f"A{num(R_RECORD - 4)},{num((R_RECORD - 4) * SQUASH)} 0 0 1 {num(x1)},{num(y1)} "
            f"L{num(xi1)},{num(yi1)} A60,{num(60 * SQUASH)} 0 0 0 {num(xi0)},{num(yi0)} Z",
            fill="#ffffff", opacity="0.13"))
    # the label
    out.append(ellipse(CX, CY, 54, 54 * SQUASH, fill="#2f8fd8"))
    out.append(ellipse(CX, CY, 46, 46 * SQUASH, fill="none", stroke="#ffd23f", stroke_width=2.0))
    out.append(path(f"M{num(CX - 30)},{num(CY - 8)} L{num(CX + 30)},{num(CY - 8)}",
                    stroke="#ffffff", stroke_width=3.0, stroke_linecap="round"))
    out.append(path(f"M{num(CX - 20)},{num(CY + 8)} L{num(CX + 20)},{num(CY + 8)}",
                    stroke="#ffffff", stroke_width=2.0, stroke_linecap="round", opacity="0.8"))
    # cracks running from the bite into the grooves
    for da, length, bend in ((-14, 34, 5), (-2, 46, -6), (12, 26, 4)):
        x0, y0 = on_record(R_RECORD - 12, NOTCH_ANGLE + da)
        x1, y1 = on_record(R_RECORD - 12 - length * 0.5, NOTCH_ANGLE + da + bend)
        x2, y2 = on_record(R_RECORD - 12 - length, NOTCH_ANGLE + da - bend * 0.5)
        out.append(path(f"M{num(x0)},{num(y0)} L{num(x1)},{num(y1)} L{num(x2)},{num(y2)}", fill="none",
                        stroke="#9aa0a8", stroke_width=1.2, stroke_linejoin="round"))
    out.append("</g>")
    # the spindle
    out.append(ellipse(CX, CY, 4.5, 2.5, fill="#d8dde2", stroke="#666", stroke_width=1.0))
    return out


def crumbs() -> list[str]:
    """Shards of vinyl bitten off, on the deck below the beak."""
    shards = [
        (118, 380, "0,0 9,-3 7,6 -1,5"),
        (146, 372, "0,0 6,-4 10,2 3,5"),
        (104, 364, "0,0 5,-2 4,4"),
        (176, 380, "0,0 7,-1 5,5 -2,3"),
        (134, 388, "0,0 4,-3 6,2"),
    ]
    return [tag("polygon", points=p, fill="#111114", stroke="#3a3a40", stroke_width=1.0,
                transform=f"translate({x} {y})") for x, y, p in shards]


def tonearm() -> list[str]:
    px, py = 456.0, 232.0  # pivot
    hx, hy = 414.0, 292.0  # where the headshell meets the arm
    return [
        # arm rest
        tag("rect", x=463.0, y=272.0, width=6.0, height=26.0, fill="#9aa2aa"),
        ellipse(466, 272, 8, 4, fill="#c9ced3"),
        # base and pivot
        ellipse(px, py + 12, 26, 11, fill="#5b6168"),
        tag("rect", x=px - 22, y=py - 6, width=44.0, height=18.0, fill="url(#metal)"),
        ellipse(px, py - 6, 22, 9, fill="#dfe3e7", stroke="#7d848b", stroke_width=1.0),
        # counterweight behind the pivot
        path(f"M{num(px)},{num(py - 10)} L{num(px + 30)},{num(py - 36)}", stroke="#8d949c", stroke_width=5.0),
        tag("rect", x=px + 20, y=py - 56, width=22.0, height=26.0, rx=5.0, fill="url(#metal)",
            transform=f"rotate(-40 {num(px + 31)} {num(py - 43)})"),
        # the arm: a curved silver tube
        path(f"M{num(px)},{num(py - 10)} C{num(px - 6)},{num(py + 30)} {num(hx + 30)},{num(hy - 10)} {num(hx)},{num(hy)}",
             fill="none", stroke="#5b6168", stroke_width=7.0, stroke_linecap="round"),
        path(f"M{num(px)},{num(py - 10)} C{num(px - 6)},{num(py + 30)} {num(hx + 30)},{num(hy - 10)} {num(hx)},{num(hy)}",
             fill="none", stroke="#e3e7eb", stroke_width=3.5, stroke_linecap="round"),
        # headshell with the cartridge and its finger lift
        tag("polygon", points=pts(hx + 6, hy - 4, hx - 22, hy + 2, hx - 20, hy + 14, hx + 4, hy + 8),
            fill="#2b2b30", stroke="#111", stroke_width=1.0),
        tag("rect", x=hx - 17, y=hy + 8, width=12.0, height=9.0, fill="#e94f37"),
        path(f"M{num(hx - 20)},{num(hy + 3)} L{num(hx - 30)},{num(hy - 4)}", stroke="#bfc5cb",
             stroke_width=2.5, stroke_linecap="round"),
    ]


def feather_row(x0, y0, x1, y1, n, bulge) -> str:
    """A scalloped edge of n feathers from (x0,y0) to (x1,y1), bulging to the left of travel."""
    dx, dy = (x1 - x0) / n, (y1 - y0) / n
    length = math.hypot(dx, dy)
    nx, ny = -dy / length * bulge, dx / length * bulge
    d = f"M{num(x0)},{num(y0)}"
    for i in range(n):
        ax, ay = x0 + dx * i, y0 + dy * i
        d += (f" C{num(ax + nx)},{num(ay + ny)} {num(ax + dx + nx)},{num(ay + dy + ny)} "
              f"{num(ax + dx)},{num(ay + dy)}")
    return d


def parrot_transform() -> str:
    """translate/rotate/scale that puts the parrot's mouth on the bite."""
    bx, by = on_record(R_RECORD - 2, BITE_ANGLE)
    a = math.radians(PARROT_LEAN)
    mx, my = MOUTH[0] * PARROT_SCALE, MOUTH[1] * PARROT_SCALE
    tx = bx - (mx * math.cos(a) - my * math.sin(a))
    ty = by - (mx * math.sin(a) + my * math.cos(a))
    return f"translate({num(tx)} {num(ty)}) rotate({num(PARROT_LEAN)}) scale({num(PARROT_SCALE)})"


def parrot_behind() -> list[str]:
    """The lower mandible: under the record's edge, so drawn before the record."""
    return [f'<g transform="{parrot_transform()}">',
            path("M24,14 C40,14 56,20 62,30 C54,42 38,44 28,36 C22,30 22,20 24,14 Z", fill="#2b2b2b",
                 stroke="#111", stroke_width=1.0),
            "</g>"]


def parrot() -> list[str]:
    """A scarlet macaw facing right, head down, beak over the record's edge."""
    out = [f'<g transform="{parrot_transform()}">']
    # tail: long red feathers with blue tips, hanging over the front of the deck
    for dx, rot, colour in ((-10, 10, "#1f5fbf"), (8, -2, "#c3161f"), (-2, 4, "#e0282e")):
        out.append(
            f'<g transform="rotate({rot - 30} -66 116)">'
            + path(f"M{-74 + dx},112 C{-80 + dx},160 {-92 + dx},200 {-98 + dx},236 "
                   f"C{-86 + dx},236 {-74 + dx},200 {-56 + dx},116 Z", fill=colour, stroke="#7a0c12",
                   stroke_width=1.0)
            + path(f"M{-88 + dx},196 C{-92 + dx},212 {-96 + dx},226 {-98 + dx},236 "
                   f"C{-88 + dx},236 {-82 + dx},214 {-79 + dx},196 Z", fill="#2a7bd6")
            + "</g>")
    # body
    out.append(path("M-8,24 C-44,22 -88,60 -86,110 C-84,140 -60,152 -36,146 "
                    "C-6,138 14,100 16,66 C18,44 10,28 -8,24 Z", fill="url(#red_body)",
                    stroke="#8e0f16", stroke_width=1.5))
    # a few breast feathers
    for fx, fy in ((-2, 70), (-14, 92), (4, 94), (-24, 114), (-6, 116)):
        out.append(path(f"M{fx - 8},{fy} C{fx - 4},{fy + 7} {fx + 4},{fy + 7} {fx + 8},{fy}", fill="none",
                        stroke="#a5121b", stroke_width=1.3, opacity="0.7"))
    # legs and zygodactyl feet: they undo the lean so the toes lie flat on the deck
    for fx in (-46, -24):
        out.append(f'<g transform="rotate({num(-PARROT_LEAN)} {fx} 148)">')
        out.append(path(f"M{fx},134 L{fx},150", stroke="#7d7468", stroke_width=7.0, stroke_linecap="round"))
        out.append(path(f"M{fx},151 C{fx + 6},150 {fx + 12},151 {fx + 15},154", fill="none",
                        stroke="#7d7468", stroke_width=5.0, stroke_linecap="round"))
        out.append(path(f"M{fx},151 C{fx - 5},151 {fx - 10},152 {fx - 12},155", fill="none",
                        stroke="#7d7468", stroke_width=5.0, stroke_linecap="round"))
        out.append("</g>")
    # wing: yellow shoulder, green band, long blue flight feathers
    out.append(path("M-16,40 C-46,44 -78,84 -86,128 C-90,150 -96,172 -100,190 "
                    "C-82,174 -66,150 -52,124 C-34,96 -14,70 -16,40 Z",
                    fill="#1f5fbf", stroke="#123a78", stroke_width=1.5))
    out.append(path("M-16,40 C-44,46 -70,78 -78,112 C-70,112 -58,104 -48,96 C-30,80 -14,62 -16,40 Z",
                    fill="#2e9e4f"))
    out.append(path("M-14,40 C-36,44 -58,64 -66,88 C-50,84 -36,74 -26,62 C-18,54 -12,48 -14,40 Z",
                    fill="#ffc93c"))
    out.append(path(feather_row(-66, 88, -14, 42, 4, 6), fill="none", stroke="#d99a12", stroke_width=1.5))
    out.append(path(feather_row(-78, 112, -24, 60, 4, 6), fill="none", stroke="#1e7a39", stroke_width=1.5))
    for i in range(4):
        x0 = -82 + i * 8
        out.append(path(f"M{x0},{124 + i * 2} C{x0 - 6},{148 - i * 4} {x0 - 10},{164 - i * 8} {x0 - 14},{180 - i * 10}",
                        fill="none", stroke="#123a78", stroke_width=1.2))
    # head
    out.append(tag("circle", cx=0.0, cy=0.0, r=38.0, fill="url(#red_head)", stroke="#8e0f16", stroke_width=1.5))
    out.append(path("M-34,-14 C-28,-30 -10,-40 6,-38", fill="none", stroke="#ff8a7a", stroke_width=3.0,
                    stroke_linecap="round", opacity="0.7"))
    # white face patch with fine feather lines, and the eye
    out.append(path("M4,-22 C22,-26 36,-16 38,0 C38,14 30,22 18,20 C6,18 0,6 0,-8 C0,-14 1,-19 4,-22 Z",
                    fill="#fbf7f2"))
    for j in range(3):
        y = -6 + j * 8
        out.append(path(f"M{8 + j},{y + 6} C{14 + j},{y + 3} {22 + j},{y + 3} {28 + j},{y + 6}", fill="none",
                        stroke="#e39a96", stroke_width=1.0))
    out.append(tag("circle", cx=16.0, cy=-10.0, r=8.5, fill="#f5d76e", stroke="#3a2a10", stroke_width=1.0))
    out.append(tag("circle", cx=17.5, cy=-10.0, r=4.8, fill="#111"))
    out.append(tag("circle", cx=19.5, cy=-12.5, r=1.9, fill="#fff"))
    # upper mandible: the big hooked beak, over the record
    out.append(path("M30,-20 C54,-26 76,-8 78,18 C79,32 72,44 62,48 C64,38 62,28 54,22 "
                    "C46,16 36,16 30,16 C34,4 34,-10 30,-20 Z", fill="url(#beak)", stroke="#6b5f4d",
                    stroke_width=1.5))
    out.append(path("M62,48 C66,40 66,30 60,24", fill="none", stroke="#3a3128", stroke_width=3.0,
                    stroke_linecap="round"))
    out.append(path("M34,-14 C44,-14 52,-10 56,-2", fill="none", stroke="#ffffff", stroke_width=2.0,
                    stroke_linecap="round", opacity="0.8"))
    out.append("</g>")
    return out


def svg() -> str:
    # The scene is drawn at full size, then shrunk a little to sit inside the badge.
    scene = [*plinth(), *platter(), *parrot_behind(), *record(), *tonearm(), *crumbs(), *parrot()]
    body = [*background(), *notes(), f'<g transform="translate({num(SCENE_SHIFT[0])} {num(SCENE_SHIFT[1])}) '
            f'scale({num(SCENE_SCALE)})">', *scene, "</g>"]
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}">')
    title = "<title>Broken Record Parrot: a parrot on a turntable, chewing a record</title>"
    return "\n".join([head, title, *defs(), *body, "</svg>"]) + "\n"


def render_png(svg_text: str, width: int = 512) -> bytes:
    import vl_convert

    return vl_convert.svg_to_png(svg_text, scale=width / WIDTH)


def main(argv: list[str]) -> int:
    text = svg()
    SVG_PATH.write_text(text, encoding="utf-8")
    if "--svg-only" not in argv:
        PNG_PATH.write_bytes(render_png(text))
    print(f"wrote {SVG_PATH.relative_to(HERE.parent)}"
          + ("" if "--svg-only" in argv else f" and {PNG_PATH.relative_to(HERE.parent)}"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
