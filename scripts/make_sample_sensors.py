"""Generate sample_tiles/sensors/readings.csv: synthetic 15-minute readings for the demo probes.

Nothing from the real log is copied: the script measures statistics from the EcoIrrigate log
(../shared/data/iot/ecoirrigate_kolkata_2025.csv) - each quantity's diurnal profile, the
day-to-day variability of its daily mean and the 15-minute noise - and generates September
2016 series for the three Danish demo probes from them, with levels moved to a Danish
September (see `LEVELS`). probe-003 stops reporting on 2016-09-20 (silence alert) and
probe-002's soil dries over the last week (drought alert).

    python scripts/make_sample_sensors.py [--log PATH] [--out PATH] [--seed N]
"""

from __future__ import annotations

import argparse
import csv
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DEFAULT_LOG_CANDIDATES = (
    REPO.parent / "shared" / "data" / "iot" / "ecoirrigate_kolkata_2025.csv",
    Path("/work/shared/data/iot/ecoirrigate_kolkata_2025.csv"),
)
# Our column -> the log's column it takes its dynamics from.
SOURCES = {
    "soil_moisture_pct": "Volumetric_Moisture_Pct",
    "soil_temp_c": "Soil_Temperature_C",
    "air_temp_c": "Atm_Temperature_C",
    "air_pressure_hpa": "Atm_Pressure_inHg",
    "battery_v": "Sensor_Voltage_V",
}
INHG_TO_HPA = 33.8638866667
# Mean levels for a Danish September (approximate climate normals, not measured here); soil
# moisture per probe for a loam after a wet August. Battery and pressure keep the log's means.
LEVELS = {"soil_temp_c": 14.5, "air_temp_c": 13.5}
DIURNAL_SCALE = {"soil_temp_c": 0.6, "air_temp_c": 0.6}  # weaker sun than Kolkata's dry season
DEVICES = {
    "probe-001": {"soil_moisture_pct": 24.0},
    "probe-002": {"soil_moisture_pct": 22.0},
    "probe-003": {"soil_moisture_pct": 26.0},
}
START = datetime(2016, 9, 1)
END = datetime(2016, 10, 1)  # exclusive
SILENT_DEVICE, SILENT_FROM = "probe-003", datetime(2016, 9, 20)
DRY_DEVICE, DRY_FROM, DRY_RATE_PER_DAY = "probe-002", datetime(2016, 9, 23), 1.6
LOCAL_OFFSET_H = 2  # CEST


def measure(log_path: Path) -> dict[str, dict[str, object]]:
    """Per quantity: mean, hourly profile (deviation from the mean), daily-mean step std, noise std."""
    df = pd.read_csv(log_path, parse_dates=["Timestamp"])
    out: dict[str, dict[str, object]] = {}
    for ours, theirs in SOURCES.items():
        profiles, steps, noises, means = [], [], [], []
        for _, g in df.groupby("Farm_ID"):
            s = g.set_index("Timestamp")[theirs].astype(float)
            if ours == "air_pressure_hpa":
                s = s * INHG_TO_HPA
            means.append(s.mean())
            profiles.append((s.groupby(s.index.hour).mean() - s.mean()).reindex(range(24)).to_numpy())
            steps.append(s.resample("D").mean().diff().std())
            noises.append((s - s.rolling(5, center=True).mean()).std())
        out[ours] = {
            "mean": float(np.mean(means)),
            "profile": np.mean(profiles, axis=0),
            "daily_step": float(np.mean(steps)),
            "noise": float(np.mean(noises)),
        }
    return out


def generate(stats: dict[str, dict[str, object]], seed: int) -> list[list[object]]:
    rng = np.random.default_rng(seed)
    times = pd.date_range(START, END, freq="15min", inclusive="left")
    n_days = (END - START).days
    day_index = np.asarray((times - pd.Timestamp(START)).days)
    local_hour = (times.hour + times.minute / 60 + LOCAL_OFFSET_H) % 24
    rows: list[list[object]] = []
    for device_id, levels in DEVICES.items():
        series = {}
        for col, st in stats.items():
            mean = levels.get(col, LEVELS.get(col, st["mean"]))
            # Daily level: a mean-reverting walk with the log's day-to-day variability.
            level = np.empty(n_days)
            level[0] = mean
            for d in range(1, n_days):
                level[d] = level[d - 1] + 0.2 * (mean - level[d - 1]) + rng.normal(0, st["daily_step"])
            profile = np.asarray(st["profile"]) * DIURNAL_SCALE.get(col, 1.0)
            diurnal = np.interp(local_hour, np.arange(25), np.append(profile, profile[0]))
            # Smooth the daily steps across midnight so the series has no jumps.
            daily = np.interp(day_index + times.hour / 24, np.arange(n_days) + 0.5, level)
            series[col] = daily + diurnal + rng.normal(0, st["noise"], len(times))
        if device_id == DRY_DEVICE:
            days_dry = np.clip((times - pd.Timestamp(DRY_FROM)) / pd.Timedelta(days=1), 0, None)
            series["soil_moisture_pct"] = series["soil_moisture_pct"] - DRY_RATE_PER_DAY * np.asarray(days_dry)
        for i, ts in enumerate(times):
            if device_id == SILENT_DEVICE and ts >= SILENT_FROM:
                break
            rows.append(
                [
                    device_id,
                    ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    round(float(np.clip(series["soil_moisture_pct"][i], 1, 60)), 2),
                    round(float(series["soil_temp_c"][i]), 2),
                    round(float(series["air_temp_c"][i]), 2),
                    round(float(series["air_pressure_hpa"][i]), 1),
                    round(float(series["battery_v"][i]), 3),
                ]
            )
    rows.sort(key=lambda r: (r[1], r[0]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=REPO / "sample_tiles" / "sensors" / "readings.csv")
    parser.add_argument("--seed", type=int, default=2016)
    args = parser.parse_args()
    log_path = args.log or next((p for p in DEFAULT_LOG_CANDIDATES if p.exists()), None)
    if log_path is None or not log_path.exists():
        raise SystemExit("the EcoIrrigate log was not found; pass --log PATH (see shared/data/README.md)")
    rows = generate(measure(log_path), args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["device_id", "ts", *SOURCES])
        w.writerows(rows)
    print(f"wrote {len(rows)} rows to {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
