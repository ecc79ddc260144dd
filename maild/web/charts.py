"""Bar charts as plain geometry, drawn as inline SVG by the report's template.

No script and no stylesheet from elsewhere: the shapes are computed here, the page's
template writes them as <rect> and <text> elements (autoescaped like everything else),
and the colours come from the site's own stylesheet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

WIDTH = 560
HEIGHT = 220
LEFT = 44  # room for the axis's numbers
BOTTOM = 28  # room for the weeks' names
TOP = 12
GRID_LINES = 4


@dataclass(frozen=True)
class Series:
    name: str
    values: list[float | None]  # one per label; None: nothing to show that week


@dataclass(frozen=True)
class Bar:
    series: int  # which series: its colour
    x: float
    y: float
    width: float
    height: float
    title: str  # the tooltip: label, series and value


@dataclass(frozen=True)
class Tick:
    y: float
    text: str


@dataclass(frozen=True)
class Label:
    x: float
    text: str


@dataclass(frozen=True)
class Chart:
    title: str
    unit: str
    series: list[str]
    bars: list[Bar]
    ticks: list[Tick]
    labels: list[Label]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    bottom: float = HEIGHT - BOTTOM


def _nice_ceiling(value: float) -> float:
    """The axis's top: 1, 2, 2.5 or 5 times a power of ten, at least `value`."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)


def _number(value: float) -> str:
    return f"{round(value, 2):g}"


def bar_chart(title: str, unit: str, labels: list[str], series: list[Series],
              top: float | None = None) -> Chart:
    """Grouped bars, one group per label, one bar per series; `top` fixes the axis's
    maximum (100 for percentages), else it is the next round number above the data."""
    shown = [v for s in series for v in s.values if v is not None]
    ceiling = top if top is not None else _nice_ceiling(max(shown, default=0.0))
    plot_width = WIDTH - LEFT - 8
    plot_height = HEIGHT - BOTTOM - TOP
    group = plot_width / max(1, len(labels))
    bar_width = group * 0.8 / max(1, len(series))
    bars = []
    for n, label in enumerate(labels):
        for s, one in enumerate(series):
            value = one.values[n]
            if value is None:
                continue
            height = plot_height * min(value, ceiling) / ceiling
            x = LEFT + n * group + group * 0.1 + s * bar_width
            bars.append(Bar(s, round(x, 1), round(TOP + plot_height - height, 1),
                            round(bar_width, 1), round(height, 1),
                            f"{label}: {one.name} {_number(value)}{unit}"))
    ticks = [Tick(round(TOP + plot_height - plot_height * k / GRID_LINES, 1),
                  _number(ceiling * k / GRID_LINES)) for k in range(GRID_LINES + 1)]
    every = max(1, math.ceil(len(labels) / 12))  # at most a dozen names under the axis
    names = [Label(round(LEFT + n * group + group / 2, 1), label)
             for n, label in enumerate(labels) if n % every == 0]
    return Chart(title, unit, [s.name for s in series], bars, ticks, names)
