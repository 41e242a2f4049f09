"""Statistics across ``runnx serve --workers N``: each worker publishes its Triton statistics and
its ``/metrics`` counters to a folder the supervisor made, and whichever worker answers ``/stats``
or ``/metrics`` adds up its own live figures and the others' latest. A worker publishes at most every ``PERIOD_S`` while it has answered
requests since, so the others' part lags by at most that (perf_analyzer reads ``/stats`` around
windows of seconds).

>>> merge_model_stats([{"name": "m", "version": "1", "last_inference": 5, "inference_count": 2,
...     "execution_count": 1, "inference_stats": {"success": {"count": 2, "ns": 10}},
...     "batch_stats": [{"batch_size": 2, "compute_infer": {"count": 1, "ns": 4}}]}] * 2
... )["inference_stats"]["success"]
{'count': 4, 'ns': 20}
"""

from __future__ import annotations

import asyncio
import json
import os

PERIOD_S = 0.025


def merge_model_stats(parts: list[dict]) -> dict:
    """One model version's Triton statistics from several processes' (same name and version)."""
    out = json.loads(json.dumps(parts[0]))  # a deep copy
    for p in parts[1:]:
        out["last_inference"] = max(out["last_inference"], p["last_inference"])
        out["inference_count"] += p["inference_count"]
        out["execution_count"] += p["execution_count"]
        for key, d in p["inference_stats"].items():
            mine = out["inference_stats"].setdefault(key, {"count": 0, "ns": 0})
            mine["count"] += d["count"]
            mine["ns"] += d["ns"]
        by_size = {b["batch_size"]: b for b in out["batch_stats"]}
        for b in p["batch_stats"]:
            mine = by_size.get(b["batch_size"])
            if mine is None:
                by_size[b["batch_size"]] = json.loads(json.dumps(b))
                continue
            for key, d in b.items():
                if key != "batch_size":
                    mine[key]["count"] += d["count"]
                    mine[key]["ns"] += d["ns"]
        out["batch_stats"] = [by_size[s] for s in sorted(by_size)]
    return out


class SharedStats:
    """This worker's side: ``publish`` its statistics, ``others`` read the other workers'."""

    def __init__(self, folder: str):
        self.folder = folder
        self.path = os.path.join(folder, f"{os.getpid()}.json")

    def publish(self, stats: dict) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(stats, f)
        os.replace(tmp, self.path)  # readers see the old file or the new one, never half

    def others(self) -> list[dict]:
        out = []
        try:
            names = os.listdir(self.folder)
        except OSError:
            return out
        for n in names:
            full = os.path.join(self.folder, n)
            if not n.endswith(".json") or full == self.path:
                continue
            try:
                with open(full) as f:
                    out.append(json.load(f))
            except (OSError, ValueError):
                continue  # a worker that never published, or gone with its folder
        return out

    async def publish_forever(self, snapshot, changed) -> None:
        """Publishes ``snapshot()`` whenever ``changed()`` says so, at most every PERIOD_S."""
        while True:
            await asyncio.sleep(PERIOD_S)
            if changed():
                self.publish(snapshot())
