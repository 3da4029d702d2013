"""The checkpoint folder: commit by pointer, sha256 check, pruning, refusal of damaged or
foreign pointers, the same on S3 (moto) as on a local disk, storage errors named like every other
storage error, and no pickle on load."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from common.step import StepError
from tests.s3 import access_refused, object_keys
from trainer.checkpoint import LATEST, CheckpointStore, identity_hash

STATE: dict[str, Any] = {
    "weights": torch.arange(6.0).reshape(2, 3),
    "progress": json.dumps({"epoch": 1}),
}


def test_save_commits_the_pointer_and_load_returns_the_state(tmp_path: Path) -> None:
    store = CheckpointStore(str(tmp_path / "ckpt"))
    assert store.pointer() is None
    name = store.save(STATE, "e1", "run-a")
    pointer = store.pointer()
    assert pointer is not None
    assert (pointer["file"], pointer["identity"], pointer["history"]) == (name, "run-a", [name])
    loaded = store.load(pointer)
    assert torch.equal(loaded["weights"], STATE["weights"])
    assert loaded["progress"] == STATE["progress"]


def test_only_the_last_two_checkpoints_stay(tmp_path: Path) -> None:
    store = CheckpointStore(str(tmp_path))
    names = [store.save(STATE, f"e{i}", "run-a") for i in range(4)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*names[-2:], LATEST])
    assert store.pointer()["history"] == [names[3], names[2]]  # type: ignore[index]


def test_an_interrupted_write_never_becomes_latest(tmp_path: Path) -> None:
    store = CheckpointStore(str(tmp_path))
    good = store.save(STATE, "e1", "run-a")
    # A write cut off (process killed) before its pointer was replaced: a partial file under a
    # new name, which no pointer records.
    (tmp_path / "ckpt-e2-deadbeef.pt").write_bytes(b"\x80partial")
    assert store.pointer()["file"] == good  # type: ignore[index]
    assert torch.equal(store.load(store.pointer())["weights"], STATE["weights"])  # type: ignore[arg-type]
    store.save(STATE, "e3", "run-a")
    assert (tmp_path / "ckpt-e2-deadbeef.pt").exists(), "only recorded names are deleted"


def test_a_write_that_fails_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = CheckpointStore(str(tmp_path))
    good = store.save(STATE, "e1", "run-a")

    def cut_off(path: str, data: bytes) -> None:
        Path(path).write_bytes(data[:10])
        raise OSError("No space left on device")

    monkeypatch.setattr(store.fs, "pipe_file", cut_off)
    with pytest.raises(OSError, match="No space"):
        store.save(STATE, "e2", "run-a")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([good, LATEST])


def saved_pointer(folder: Path, **changes: object) -> dict[str, Any]:
    """Save one checkpoint in ``folder``, then rewrite its ``latest.json`` with ``changes``
    (MISSING removes a key); returns the rewritten pointer."""
    CheckpointStore(str(folder)).save(STATE, "e1", "run-a")
    pointer = json.loads((folder / LATEST).read_text())
    for key, value in changes.items():
        if value is MISSING:
            del pointer[key]
        else:
            pointer[key] = value
    (folder / LATEST).write_text(json.dumps(pointer))
    return dict(pointer)


MISSING = object()


@pytest.mark.parametrize(
    "name",
    ["../../outside.bin", "/etc/shadow", "/dev/zero", "sub/ckpt-e1.pt", "..", "notes.txt",
     "ckpt-..pt", "ckpt-e1.pt\\..\\x", "C:\\ckpt-e1.pt", ""],
)  # fmt: skip
def test_a_pointer_naming_a_file_outside_the_folder_is_refused(tmp_path: Path, name: str) -> None:
    """Only a plain checkpoint file name in the folder is ever read: a pointer that names any
    other path is refused naming latest.json and its key, before anything is opened."""
    folder = tmp_path / "runs" / "r1" / "ckpt"
    pointer = saved_pointer(folder)
    # What "../../outside.bin" reaches: a copy of the real checkpoint, sha256 and all.
    (tmp_path / "runs" / "outside.bin").write_bytes((folder / pointer["file"]).read_bytes())
    pointer = saved_pointer(folder, file=name)
    store = CheckpointStore(str(folder))
    expected = rf"^{re.escape(str(folder / LATEST))}: 'file' must be"
    with pytest.raises(StepError, match=expected):
        store.pointer()
    with pytest.raises(StepError, match=expected):
        store.load(pointer)


@pytest.mark.parametrize(
    ("key", "value"),
    [("sha256", MISSING), ("sha256", 12), ("sha256", "abc"), ("file", MISSING), ("file", 7),
     ("bytes", MISSING), ("bytes", "512"), ("bytes", -1), ("bytes", True), ("bytes", 2**40),
     ("identity", MISSING), ("identity", ["run-a"]), ("history", "ckpt-e1.pt"),
     ("history", ["ckpt-e1.pt", 3]), ("history", ["../../outside.bin"]), ("format", MISSING)],
)  # fmt: skip
def test_a_pointer_of_the_wrong_shape_names_latest_json_and_the_key(
    tmp_path: Path, key: str, value: object
) -> None:
    saved_pointer(tmp_path, **{key: value})
    expected = rf"^{re.escape(str(tmp_path / LATEST))}: '{key}' "
    with pytest.raises(StepError, match=expected):
        CheckpointStore(str(tmp_path)).pointer()


def test_a_file_of_another_size_than_recorded_is_refused_before_it_is_read(
    tmp_path: Path,
) -> None:
    store = CheckpointStore(str(tmp_path))
    name = store.save(STATE, "e1", "run-a")
    recorded = (tmp_path / name).stat().st_size
    with (tmp_path / name).open("ab") as fh:
        fh.write(b"\0" * 100)
    with pytest.raises(StepError, match=rf"{name} is {recorded + 100} bytes, {LATEST} says "):
        store.load(store.pointer())  # type: ignore[arg-type]


def test_a_link_in_place_of_a_checkpoint_is_not_followed(tmp_path: Path) -> None:
    store = CheckpointStore(str(tmp_path))
    name = store.save(STATE, "e1", "run-a")
    (tmp_path / name).unlink()
    (tmp_path / name).symlink_to("/dev/zero")
    with pytest.raises(StepError, match=f"{name} is not a plain file"):
        store.load(store.pointer())  # type: ignore[arg-type]


def test_files_the_store_did_not_write_are_left_and_reported_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    theirs = ["ckpt-best.pt", "ckpt-e1-00000000.pt", "notes.txt"]
    for name in theirs:
        (tmp_path / name).write_bytes(b"not ours")
    store = CheckpointStore(str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="trainer.checkpoint"):
        for epoch in range(4):
            store.save(STATE, f"e{epoch}", "run-a")
        store.clear()
    assert sorted(p.name for p in tmp_path.iterdir()) == theirs
    reports = [r.getMessage() for r in caplog.records if "did not write" in r.getMessage()]
    assert len(reports) == 1, reports
    assert all(name in reports[0] for name in theirs)


def test_a_damaged_checkpoint_is_refused_by_its_sha256(tmp_path: Path) -> None:
    store = CheckpointStore(str(tmp_path))
    name = store.save(STATE, "e1", "run-a")
    data = bytearray((tmp_path / name).read_bytes())
    data[-20] ^= 0xFF
    (tmp_path / name).write_bytes(bytes(data))
    with pytest.raises(StepError, match=f"{name} does not match the sha256"):
        store.load(store.pointer())  # type: ignore[arg-type]


@pytest.mark.parametrize("content", ["{not json", '{"format": 99, "file": "x"}', "[]"])
def test_a_bad_pointer_names_the_folder(tmp_path: Path, content: str) -> None:
    (tmp_path / LATEST).write_text(content)
    with pytest.raises(StepError, match=str(tmp_path / LATEST)):
        CheckpointStore(str(tmp_path)).pointer()


def test_a_pointer_to_a_missing_file(tmp_path: Path) -> None:
    store = CheckpointStore(str(tmp_path))
    name = store.save(STATE, "e1", "run-a")
    (tmp_path / name).unlink()
    with pytest.raises(StepError, match=f"names {name}, which does not exist"):
        store.load(store.pointer())  # type: ignore[arg-type]


def test_loading_runs_no_pickle_code(tmp_path: Path) -> None:
    """A file that would run code when unpickled is refused (weights_only loading)."""
    import hashlib
    import io
    import pickle

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("pwned",))

    buffer = io.BytesIO()
    torch.save({"x": Evil()}, buffer, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    (tmp_path / "ckpt-evil.pt").write_bytes(buffer.getvalue())
    data = buffer.getvalue()
    pointer = {"format": 1, "file": "ckpt-evil.pt", "sha256": hashlib.sha256(data).hexdigest(),
               "bytes": len(data), "identity": "run-a", "history": ["ckpt-evil.pt"]}  # fmt: skip
    with pytest.raises(pickle.UnpicklingError):
        CheckpointStore(str(tmp_path)).load(pointer)


def test_clear_removes_pointer_and_checkpoints_only(tmp_path: Path) -> None:
    store = CheckpointStore(str(tmp_path))
    store.save(STATE, "e1", "run-a")
    (tmp_path / "notes.txt").write_text("mine")
    store.clear()
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    assert store.pointer() is None


def test_the_same_on_s3(s3_bucket: str, s3_server: str) -> None:
    store = CheckpointStore(f"s3://{s3_bucket}/runs/r1/checkpoints")
    names = [store.save(STATE, f"e{i}", "run-a") for i in range(3)]
    keys = object_keys(s3_server, s3_bucket)
    assert keys == sorted(f"runs/r1/checkpoints/{n}" for n in [*names[-2:], LATEST])
    loaded = store.load(store.pointer())  # type: ignore[arg-type]
    assert torch.equal(loaded["weights"], STATE["weights"])
    store.clear()
    assert object_keys(s3_server, s3_bucket) == []


def test_a_bucket_refusing_access_is_named(s3_bucket: str) -> None:
    uri = f"s3://{s3_bucket}/runs/r2/checkpoints"
    store = CheckpointStore(uri)
    with access_refused(), pytest.raises(StepError, match=rf"^{uri}/latest\.json: access denied"):
        store.pointer()


def test_an_unsupported_uri_names_the_flag() -> None:
    with pytest.raises(StepError, match=r"^--checkpoint-dir nosuchscheme://b/c: unsupported URI"):
        CheckpointStore("nosuchscheme://b/c")


def test_keep_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="keep"):
        CheckpointStore(str(tmp_path), keep=0)


def test_a_checkpoint_of_a_trainer_without_a_setting_is_refused_naming_it(tmp_path: Path) -> None:
    # A run of a trainer from before --ensemble-size: its identity lacks the setting, so the
    # new trainer cannot take its state for its own (the networks differ); the refusal says why.
    from trainer.cli import build_parser, config_from_args
    from trainer.job import hyperparameters
    from trainer.resume import CheckpointOptions, RunCheckpoints

    args = build_parser().parse_args(["--data-path", "d", "--experiment-name", "e"])
    ours = {"experiment_name": "e", "data_path": "d", "data_fingerprint": "f",
            "config": hyperparameters(config_from_args(args))}  # fmt: skip
    theirs = {**ours, "config": {k: v for k, v in ours["config"].items() if k != "ensemble_size"}}
    meta = json.dumps({"identity": theirs, "mlflow_run_id": "r"})
    CheckpointStore(str(tmp_path)).save({"meta": meta}, "e1", identity_hash(theirs))
    with pytest.raises(StepError, match=r"different run \(differs in: ensemble_size\)"):
        RunCheckpoints(CheckpointOptions(str(tmp_path)), ours).resume_point()
