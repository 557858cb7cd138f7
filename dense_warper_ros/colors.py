"""Per-track colours, the same in RViz markers and in the pictures of a replay."""
from __future__ import annotations

TRACK_PALETTE: tuple[tuple[float, float, float], ...] = (
    (0.12, 0.47, 0.71), (1.00, 0.50, 0.05), (0.17, 0.63, 0.17), (0.84, 0.15, 0.16),
    (0.58, 0.40, 0.74), (0.55, 0.34, 0.29), (0.89, 0.47, 0.76), (0.50, 0.50, 0.50),
    (0.74, 0.74, 0.13), (0.09, 0.75, 0.81),
)


def track_color(track_id: int) -> tuple[float, float, float]:
    """The stable RGB (0..1) of a track."""
    return TRACK_PALETTE[int(track_id) % len(TRACK_PALETTE)]


def track_color_u8(track_id: int) -> tuple[int, int, int]:
    """The same as 0..255 RGB, for drawing on images."""
    return tuple(int(round(255 * c)) for c in track_color(track_id))
