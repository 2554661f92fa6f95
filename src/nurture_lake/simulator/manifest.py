"""What the simulator wrote: per region, good events and bad events per expected quarantine reason.

Ingest tests compare their counts with these exactly. The manifest holds counts only, no personal data.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RegionManifest:
    """Counts for one region's landing folder."""

    region: str
    leads: int
    good_events: int = 0
    """Valid, distinct events written (late ones included); each must reach ``silver.events``."""
    bad_events: dict[str, int] = field(default_factory=dict)
    """Bad lines per quarantine reason code they must get."""
    late_events: int = 0
    """Valid events whose ``occurred_at`` is at least a day before their file's day."""
    out_of_order_lines: int = 0
    """Valid lines whose ``occurred_at`` is earlier than the line before them in the same file."""
    event_types: dict[str, int] = field(default_factory=dict)
    """Valid events per event type."""
    files: list[str] = field(default_factory=list)
    """Landing file names, in write (= lexical = time) order."""

    @property
    def lines(self) -> int:
        """Every line written: good plus bad."""
        return self.good_events + sum(self.bad_events.values())


@dataclass
class Manifest:
    """The whole run: settings and one :class:`RegionManifest` per region."""

    seed: int
    start: str
    days: int
    regions: dict[str, RegionManifest] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for code, region in self.regions.items():
            out["regions"][code]["lines"] = region.lines
        return out

    def write(self, path: Path) -> Path:
        """Write the manifest as JSON (atomically) and return the path."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def read(cls, path: Path) -> Manifest:
        raw = json.loads(Path(path).read_text())
        regions = {}
        for code, item in raw.pop("regions").items():
            item.pop("lines", None)
            regions[code] = RegionManifest(**item)
        return cls(**raw, regions=regions)

    def summary(self) -> str:
        """A few human-readable lines."""
        out = [f"seed={self.seed} start={self.start} days={self.days}"]
        for code, r in self.regions.items():
            bad = ", ".join(f"{k}={v}" for k, v in sorted(r.bad_events.items()) if v) or "none"
            out.append(
                f"  {code}: leads={r.leads} files={len(r.files)} good={r.good_events} late={r.late_events} "
                f"bad={sum(r.bad_events.values())} ({bad})"
            )
        return "\n".join(out)
