"""What an upscale job will cost before it starts: ``satecco upscale --dry-run``'s estimate.

The figures come from one table, ``satecco/costs.yaml``: seconds per output frame per preset and
machine, each with the output size and step count it holds for, and whether it was measured or
estimated (and from what). A job's estimate scales a row by the output pixels of its frames and by its
step count over the row's (the diffusion steps dominate the cost on a GPU; on a CPU the decoder weighs
as much, so the step scaling overstates changes there).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from satecco.config_files import read_yaml_mapping

#: The packaged table.
COST_TABLE = Path(__file__).with_name("costs.yaml")


@dataclass(frozen=True)
class CostRow:
    """Seconds per output frame of ``preset`` on ``machine`` at ``width`` x ``height`` and ``steps``."""

    preset: str
    machine: str
    seconds_per_frame: float
    width: int
    height: int
    steps: int
    kind: str  # "measured" or "estimate"
    source: str


def load_cost_table(path: str | Path = COST_TABLE) -> list[CostRow]:
    """The rows of the cost table ``path``; :class:`ValueError` naming the file if it is malformed."""
    try:
        return [CostRow(**row) for row in read_yaml_mapping(path, "cost table")["rows"]]
    except (KeyError, TypeError) as error:
        raise ValueError(f"{path}: every cost table row needs {', '.join(CostRow.__dataclass_fields__)} "
                         f"({error})") from error


def estimate_lines(outputs: list[tuple[int, int, int]], preset: str, steps: int,
                   table: list[CostRow] | None = None) -> list[str]:
    """The dry run's summary for ``outputs``, one ``(frames, width, height)`` per video to write, run with
    ``preset`` and ``steps`` sampling steps: totals, then the estimated hours on each machine the table
    has a row for."""
    frames = sum(n for n, _, _ in outputs)
    pixels = sum(n * w * h for n, w, h in outputs)
    lines = [f"plan: videos to write {len(outputs)}, frames {frames}, megapixels out {pixels / 1e6:.1f}"]
    rows = [row for row in (table if table is not None else load_cost_table()) if row.preset == preset]
    if not rows:
        return lines + [f"estimate: no row for preset {preset!r} in {COST_TABLE.name}"]
    for row in rows:
        seconds = row.seconds_per_frame * pixels / (row.width * row.height) * steps / row.steps
        lines.append(f"estimate: {seconds / 3600:.2f} h on {row.machine} at {steps} steps ({row.kind}: "
                     f"{row.seconds_per_frame} s per {row.width}x{row.height} frame at {row.steps} steps; "
                     f"{row.source})")
    return lines
