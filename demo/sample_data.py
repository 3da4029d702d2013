"""The project's own sample dataset: a deterministic synthetic credit-risk table with numeric and
categorical columns, missing values and a binary string label (``default``: "yes"/"no").

``python -m demo.sample_data --rows N --output data.parquet`` writes it."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
import pandas as pd

TARGET = "default"
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--output", required=True, help="parquet or .csv path")
    args = parser.parse_args(argv)
    frame = generate(args.rows, args.seed)
    if args.output.endswith(".csv"):
        frame.to_csv(args.output, index=False)
    else:
        frame.to_parquet(args.output, index=False)
    print(f"wrote {len(frame)} rows to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
