"""The main job on embedded defaults: the bundled season from sensors to credit limits.

Sensor readings are replayed through an in-process MQTT broker (or a real one when given),
the example claims are submitted, and the nightly flow runs over `sample_tiles/` as of the end
of the sample season. Running it again on the same database adds nothing new.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from prefect import flow, task

from assets.config import settings as make_settings
from assets.flows.nightly import NightlyConfig, nightly, summary_of
from assets.pipeline import register_claims

SAMPLE_AS_OF = date(2016, 9, 30)  # end of the bundled 2016 season


@dataclass(frozen=True)
class DemoResult:
    sensors: dict
    claims_submitted: int
    nightly: dict

    @property
    def summary(self) -> str:
        n = self.nightly
        return (f"{self.sensors.get('stored', 0)} new sensor readings stored; {self.claims_submitted} claims; "
                f"{n['verified']} verified, {n['partial']} partial, {n.get('review', 0)} in review, "
                f"{n['rejected']} rejected "
                f"using {n['tiles']} tiles; {n['alerts']} alerts")


@task
def feed_sensors(db_path: str, tiles_dir: str, broker_url: str | None) -> dict:
    from assets.sensors.demo import feed_sample

    sensors = Path(tiles_dir) / "sensors"
    stats = feed_sample(db_path, sensors / "devices.json", sensors / "readings.csv", broker_url=broker_url)
    return stats.to_dict() if hasattr(stats, "to_dict") else dict(vars(stats))


@task
def submit_claims(db_path: str, claims_file: str) -> int:
    s = make_settings(db_path=db_path)
    return len(register_claims(Path(db_path), claims_file, Path(claims_file).stem, s))


@flow(name="demo", log_prints=True)
def demo(db_path: str = "assets.duckdb", tiles_dir: str | None = None, broker_url: str | None = None) -> DemoResult:
    tiles_dir = tiles_dir or str(make_settings().tiles_dir)
    sensors = feed_sensors(db_path, tiles_dir, broker_url)
    files = sorted((Path(tiles_dir) / "claims").glob("*.geojson"))
    submitted = sum(submit_claims(db_path, str(f)) for f in files)
    summary = summary_of(nightly(NightlyConfig(db_path=db_path, tiles_dir=tiles_dir, as_of=SAMPLE_AS_OF), kind="demo",
                                 return_state=True))
    return DemoResult(sensors=sensors, claims_submitted=submitted, nightly=summary)
