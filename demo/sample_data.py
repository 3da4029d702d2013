"""The project's own sample datasets, deterministic and synthetic, with numeric and categorical
columns and missing values: for classification a credit-risk table with a binary string label
(``default``: "yes"/"no"); for regression a food-delivery table whose target is the delivery
time in minutes (``delivery_minutes``, a number with one decimal).

``python -m demo.sample_data --rows N --output data.parquet [--task regression]`` writes one."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
import pandas as pd

TARGET = "default"
REGRESSION_TARGET = "delivery_minutes"
TARGETS = {"classification": TARGET, "regression": REGRESSION_TARGET}
REGIONS = ["north", "south", "east", "west", "central", "coast", "mountain", "islands"]
OCCUPATIONS = [f"occ_{i:02d}" for i in range(15)]
EDUCATION = ["none", "primary", "secondary", "bachelor", "master", "doctorate"]
CONTRACTS = ["monthly", "yearly", "two_year"]


def _with_missing(values: pd.Series, rate: float, rng: np.random.Generator) -> pd.Series:
    return values.mask(rng.random(len(values)) < rate)


def generate(rows: int, seed: int = 7) -> pd.DataFrame:
    """``rows`` rows; the same arguments always give the same table."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, rows)
    income = rng.lognormal(10.5, 0.6, rows)
    debt_ratio = rng.beta(2, 5, rows)
    tenure = rng.integers(0, 240, rows)
    late_payments = rng.poisson(0.7, rows)
    region = rng.choice(REGIONS, rows)
    occupation = rng.choice(
        OCCUPATIONS, rows, p=np.linspace(2, 1, 15) / np.linspace(2, 1, 15).sum()
    )
    education = rng.choice(EDUCATION, rows, p=[0.05, 0.15, 0.35, 0.3, 0.12, 0.03])
    contract = rng.choice(CONTRACTS, rows, p=[0.5, 0.3, 0.2])
    occ_risk = dict(zip(OCCUPATIONS, rng.normal(0, 0.6, 15), strict=True))
    region_risk = dict(zip(REGIONS, rng.normal(0, 0.4, len(REGIONS)), strict=True))
    edu_risk = dict(zip(EDUCATION, [0.8, 0.5, 0.1, -0.3, -0.5, -0.6], strict=True))
    logit = (
        -1.2
        + 3.0 * (debt_ratio - 0.3)
        - 0.9 * (np.log(income) - 10.5)
        + 0.55 * late_payments
        - 0.006 * tenure
        + 0.0004 * (age - 45) ** 2
        + np.vectorize(occ_risk.get)(occupation)
        + np.vectorize(region_risk.get)(region)
        + np.vectorize(edu_risk.get)(education)
        + np.where(contract == "monthly", 0.5, -0.2) * (debt_ratio > 0.4)
    )
    label = rng.random(rows) < 1 / (1 + np.exp(-logit))
    frame = pd.DataFrame(
        {
            "age": age,
            "income": _with_missing(pd.Series(income.round(2)), 0.05, rng),
            "debt_ratio": debt_ratio.round(4),
            "tenure_months": _with_missing(pd.Series(tenure.astype("float64")), 0.03, rng),
            "late_payments": late_payments,
            "region": region,
            "occupation": _with_missing(pd.Series(occupation, dtype="object"), 0.04, rng),
            "education": education,
            "contract_type": contract,
            TARGET: np.where(label, "yes", "no"),
        }
    )
    return frame


# Minutes a kitchen takes to prepare an order, by kind of restaurant.
KITCHENS = {
    "fast_food": 6.0, "burger": 9.0, "pizza": 14.0, "sushi": 16.0,
    "indian": 18.0, "thai": 15.0, "grill": 20.0, "bakery": 5.0,
}  # fmt: skip
# Minutes per km on the road in light traffic, by vehicle.
PACE = {"on_foot": 11.0, "bicycle": 4.0, "scooter": 2.6, "car": 2.2}
TRAFFIC = {"low": 1.0, "medium": 1.2, "high": 1.5, "jam": 2.1}
WEATHER = {"clear": 1.0, "cloudy": 1.03, "rain": 1.25, "fog": 1.15, "snow": 1.5}
ZONES = {"centre": 2.5, "inner": 1.0, "outer": 0.5, "suburb": 3.0}  # minutes to hand over


def delivery_vehicles(distance: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Couriers on foot take only short trips, cars mostly the long ones."""
    vehicles = np.array(list(PACE))
    near = rng.choice(vehicles, len(distance), p=[0.25, 0.35, 0.3, 0.1])
    far = rng.choice(vehicles[1:], len(distance), p=[0.2, 0.4, 0.4])
    return np.where(distance < 1.5, near, far)


def delivery_minutes(frame: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Kitchen time (longer for bigger orders) + the ride (distance x the vehicle's pace, slower
    in traffic and bad weather) + a rush-hour wait + the hand-over, faster with experienced and
    well-rated couriers, plus noise; missing weather counts as clear, a missing rating as 4.5."""
    ride = (
        frame["distance_km"].to_numpy()
        * frame["vehicle"].map(PACE).to_numpy()
        * frame["traffic"].map(TRAFFIC).to_numpy()
        * frame["weather"].map(WEATHER).fillna(1.0).to_numpy()
    )
    hour = frame["order_hour"].to_numpy()
    rush = np.isin(hour, [12, 13, 18, 19, 20]) * 4.0 * frame["traffic"].map(TRAFFIC).to_numpy()
    kitchen = frame["restaurant_type"].map(KITCHENS).to_numpy()
    kitchen = kitchen * (1 + 0.08 * (frame["items"].to_numpy() - 1))
    skill = 0.12 * np.minimum(frame["courier_experience_months"].to_numpy(), 24)
    rating = 3.0 * (4.5 - frame["courier_rating"].fillna(4.5).to_numpy())
    handover = frame["city_zone"].map(ZONES).to_numpy()
    noise = rng.normal(0, 2.0 + 0.06 * ride, len(frame))  # longer rides vary more
    minutes = kitchen + ride + rush + handover - skill + rating + noise
    return np.maximum(minutes, 3.0).round(1)


def generate_regression(rows: int, seed: int = 7) -> pd.DataFrame:
    """``rows`` food deliveries and the minutes each took (``delivery_minutes``); the same
    arguments always give the same table."""
    rng = np.random.default_rng(seed)
    distance = np.clip(rng.gamma(2.0, 1.6, rows), 0.2, 25.0).round(2)
    frame = pd.DataFrame(
        {
            "distance_km": distance,
            "items": 1 + rng.poisson(1.5, rows),
            "order_hour": rng.choice(np.arange(10, 24), rows),
            "courier_rating": _with_missing(
                pd.Series(np.clip(rng.normal(4.5, 0.3, rows), 3.0, 5.0).round(1)), 0.06, rng
            ),
            "courier_experience_months": rng.integers(0, 61, rows),
            "restaurant_type": rng.choice(list(KITCHENS), rows),
            "vehicle": delivery_vehicles(distance, rng),
            "traffic": rng.choice(list(TRAFFIC), rows, p=[0.35, 0.35, 0.2, 0.1]),
            "weather": _with_missing(
                pd.Series(rng.choice(list(WEATHER), rows, p=[0.5, 0.25, 0.15, 0.05, 0.05])),
                0.04,
                rng,
            ),
            "city_zone": rng.choice(list(ZONES), rows, p=[0.3, 0.3, 0.25, 0.15]),
        }
    )
    frame[REGRESSION_TARGET] = delivery_minutes(frame, rng)
    return frame


def generate_for(task: str, rows: int, seed: int = 7) -> pd.DataFrame:
    """The sample of ``task`` (``classification`` or ``regression``)."""
    if task not in TARGETS:
        raise ValueError(f"task {task!r} is not one of {list(TARGETS)}")
    return generate_regression(rows, seed) if task == "regression" else generate(rows, seed)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--task", choices=list(TARGETS), default="classification")
    parser.add_argument("--output", required=True, help="parquet or .csv path")
    args = parser.parse_args(argv)
    frame = generate_for(args.task, args.rows, args.seed)
    if args.output.endswith(".csv"):
        frame.to_csv(args.output, index=False)
    else:
        frame.to_parquet(args.output, index=False)
    print(f"wrote {len(frame)} rows to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
