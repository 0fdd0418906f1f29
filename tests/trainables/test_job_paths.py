"""In a submitted job, paths inside the shipped working directory are written relative to it,
and each node resolves them against its own copy; elsewhere they stay as they are."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainables import SHIPPED_ENV, FileSource, portable_path
from trainables._job_paths import local_path


def test_outside_a_submitted_job_paths_are_unchanged(tmp_path, monkeypatch):
    monkeypatch.delenv(SHIPPED_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    inside = str(tmp_path / ".caviar_job" / "net")

    assert portable_path(inside) == inside
    assert local_path(inside) == inside


def test_in_a_job_a_path_inside_the_working_dir_resolves_on_each_nodes_copy(tmp_path, monkeypatch):
    head, worker = tmp_path / "head", tmp_path / "worker"
    for root in (head, worker):
        (root / ".caviar_job" / "data").mkdir(parents=True)
    monkeypatch.setenv(SHIPPED_ENV, "1")
    monkeypatch.chdir(head)  # the job's driver starts in the head node's copy

    portable = portable_path(str(head / ".caviar_job" / "data" / "x.npz"))
    assert str(head) not in portable

    # A trial on the worker: Tune moved it into its trial directory and kept where it began.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TUNE_ORIG_WORKING_DIR", str(worker))
    assert Path(local_path(portable)) == worker / ".caviar_job" / "data" / "x.npz"
    monkeypatch.delenv("TUNE_ORIG_WORKING_DIR")
    monkeypatch.chdir(head)  # a driver, or a Ray task that was not moved
    assert Path(local_path(portable)) == head / ".caviar_job" / "data" / "x.npz"


@pytest.mark.parametrize("path", ["s3://bucket/x.parquet", "/elsewhere/x.parquet", ""])
def test_in_a_job_uris_and_paths_outside_the_working_dir_stay_as_written(
    tmp_path, monkeypatch, path
):
    monkeypatch.setenv(SHIPPED_ENV, "1")
    monkeypatch.chdir(tmp_path)

    assert portable_path(path) == path
    assert local_path(path) == path


def test_a_file_source_reads_its_portable_paths_on_this_node(tmp_path, monkeypatch):
    import numpy as np

    from trainables._files import read_file_arrays

    (tmp_path / "d").mkdir()
    np.savez(tmp_path / "d" / "x.npz", x=np.arange(12.0).reshape(6, 2), y=np.array([0, 1] * 3))
    monkeypatch.setenv(SHIPPED_ENV, "1")
    monkeypatch.chdir(tmp_path)
    source = FileSource(str(tmp_path / "d" / "x.npz")).portable()
    assert str(tmp_path) not in source.to_config()

    train, _ = read_file_arrays(FileSource.from_config(source.to_config()))

    assert train.x.shape == (6, 2)
    assert train.classes == ("0", "1")
