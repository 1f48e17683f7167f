"""The Ray engine of ``satecco evaluate``: one row per clip pair (a clip alone without ground truth),
metrics computed in a map stage.

    clip pairs -> ClipEvaluator actors (metric networks loaded once each) -> rows back to the driver

The driver only pairs the clips (a directory listing) and writes metrics.json and the report from the
rows; every frame is decoded and measured on the workers. A bad clip comes back as a row with its
error and does not stop the others.
"""

from __future__ import annotations

from satecco.cluster import init_ray
from satecco.evaluate import ClipEvaluator, ClipPair, ClipResult, EvalSettings, pair_row


def evaluation_dataset(pairs: list[ClipPair], settings: EvalSettings, actors: int = 1, num_cpus: float = 1.0):
    """The Ray Data graph over clip pairs (lazy)."""
    import ray
    from ray.data import ActorPoolStrategy

    ds = ray.data.from_items([pair_row(p) for p in pairs], override_num_blocks=max(len(pairs), 1))
    # Actors, not tasks: LPIPS/DISTS/CLIP weights load once per actor. One clip per call keeps memory at
    # a few frames (clips are streamed). num_cpus may be a fraction on a small machine.
    return ds.map(ClipEvaluator, fn_constructor_kwargs=dict(settings=settings),
                  compute=ActorPoolStrategy(min_size=1, max_size=max(actors, 1)), num_cpus=num_cpus)


def evaluate_on_ray(pairs: list[ClipPair], settings: EvalSettings, address: str | None = None, actors: int = 1,
                    num_cpus: float = 1.0) -> list[ClipResult]:
    """Evaluate every pair on Ray (a local instance on loopback, or ``address``); results in ``pairs``' order."""
    if not pairs:
        return []
    init_ray(address)
    rows = evaluation_dataset(pairs, settings, actors, num_cpus).iter_rows()
    results = [ClipResult.from_row(row) for row in rows]
    order = {(p.method, p.clip): i for i, p in enumerate(pairs)}
    return sorted(results, key=lambda r: order[(r.method, r.clip)])
