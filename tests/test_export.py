"""Export a run folder to one zip: every file byte for byte, temp files and the zip itself left out, atomic."""

from __future__ import annotations

import shutil
import threading
import zipfile
from pathlib import Path

import pytest

from senprep_core.cli import main
from senprep_core.config import parse_config
from senprep_core.demo.catalog import demo_config_dict
from senprep_core.errors import ExportError, OutputError, exit_code_for
from senprep_core.events import Event, UnitFinished
from senprep_core.outputs import export
from senprep_core.outputs.export import default_zip_path, export_zip
from senprep_core.pipeline import run


@pytest.fixture(scope="module")
def finished_run(demo_products: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete S2 demo run (read-only: tests that change a run work on a copy)."""
    outdir = tmp_path_factory.mktemp("export") / "glasgow-run"
    result = run(parse_config(demo_config_dict()), outdir, sources=[f"local:{demo_products}"])
    assert result.status == "complete" and result.patches_written > 0
    return outdir


@pytest.fixture
def run_copy(finished_run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "work" / finished_run.name
    shutil.copytree(finished_run, target)
    return target


def _files(outdir: Path) -> dict[str, bytes]:
    """Relative POSIX name -> bytes of every file below ``outdir``."""
    return {
        p.relative_to(outdir).as_posix(): p.read_bytes()
        for p in outdir.rglob("*")
        if p.is_file() and not p.name.startswith(".senprep")
    }  # the lock files stay out of an export


def _unzipped(archive: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(archive) as zf:
        assert zf.testzip() is None  # every CRC checks out
        return {name: zf.read(name) for name in zf.namelist()}


def test_zip_holds_every_file_byte_for_byte(finished_run: Path, tmp_path: Path) -> None:
    dest = tmp_path / "share.zip"
    assert export_zip(finished_run, dest) == dest
    expected = _files(finished_run)
    kinds = {name.split("/")[0] for name in expected}
    assert {"run.json", "config.json", "catalog.json", "items", "patches"} <= kinds
    assert any(name.endswith("/unit.json") for name in expected)
    got = _unzipped(dest)
    assert got == {f"{finished_run.name}/{name}": data for name, data in expected.items()}


def test_entries_are_relative_sorted_and_compressed_by_kind(finished_run: Path, tmp_path: Path) -> None:
    dest = export_zip(finished_run, tmp_path / "share.zip")
    with zipfile.ZipFile(dest) as zf:
        infos = zf.infolist()
    names = [info.filename for info in infos]
    assert names == sorted(names)
    assert all(name.startswith(f"{finished_run.name}/") and ".." not in name.split("/") for name in names)
    tifs = [info for info in infos if info.filename.endswith(".tif")]
    others = [info for info in infos if not info.filename.endswith(".tif")]
    assert tifs and others
    assert {info.compress_type for info in tifs} == {zipfile.ZIP_STORED}
    assert {info.compress_type for info in others} == {zipfile.ZIP_DEFLATED}
    assert sum(info.compress_size for info in others) < sum(info.file_size for info in others)


def test_default_destination_is_next_to_the_run(run_copy: Path) -> None:
    dest = export_zip(run_copy)
    assert dest == run_copy.parent / f"{run_copy.name}.zip" == default_zip_path(run_copy)
    assert len(_unzipped(dest)) == len(_files(run_copy))


def test_relative_outdir_dot_is_named_after_the_folder(run_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(run_copy)
    dest = export_zip(Path("."))
    assert dest == run_copy.parent / f"{run_copy.name}.zip"
    assert all(name.startswith(f"{run_copy.name}/") for name in _unzipped(dest))


def test_exports_are_deterministic(finished_run: Path, tmp_path: Path) -> None:
    first = export_zip(finished_run, tmp_path / "a.zip")
    second = export_zip(finished_run, tmp_path / "b.zip")
    assert first.read_bytes() == second.read_bytes()


def test_leftover_temp_files_are_left_out(run_copy: Path, tmp_path: Path) -> None:
    unit = next(p for p in (run_copy / "patches").iterdir() if p.is_dir())
    leftovers = [
        run_copy / "run.tmp-4242.json",
        unit / "r000_c000_S2.tmp-4242.tif",
        run_copy / "items" / "x.tmp-1.json",
        run_copy / "half.tmp-7" / "inside.json",  # a temporary folder: nothing below it is packed
    ]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half-written")
    dest = export_zip(run_copy, tmp_path / "share.zip")
    names = set(_unzipped(dest))
    assert not any(".tmp-" in name for name in names)
    clean = {name: data for name, data in _files(run_copy).items() if ".tmp-" not in name}
    assert names == {f"{run_copy.name}/{name}" for name in clean}


def test_zip_inside_the_run_is_not_packed_into_itself(run_copy: Path) -> None:
    dest = run_copy / "share.zip"
    export_zip(run_copy, dest)
    size = dest.stat().st_size
    export_zip(run_copy, dest)  # the second export sees the first zip in the folder and must skip it
    names = set(_unzipped(dest))
    assert f"{run_copy.name}/share.zip" not in names
    assert len(names) == len(_files(run_copy)) - 1
    assert dest.stat().st_size == size


def test_partial_run_exports_what_is_there(demo_products: Path, tmp_path: Path) -> None:
    cancel = threading.Event()

    def stop_after_first_unit(event: Event) -> None:
        if isinstance(event, UnitFinished):
            cancel.set()

    outdir = tmp_path / "partial"
    result = run(parse_config(demo_config_dict()), outdir, sources=[f"local:{demo_products}"],
                 callback=stop_after_first_unit, cancel=cancel)  # fmt: skip
    assert result.status == "cancelled"
    assert not (outdir / "catalog.json").exists()
    got = _unzipped(export_zip(outdir))
    assert got == {f"partial/{name}": data for name, data in _files(outdir).items()}
    assert "partial/run.json" in got and any(name.endswith(".tif") for name in got)


def test_file_vanishing_during_export_is_left_out(
    run_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    listed = export._members

    def with_a_ghost(root: Path, skip: Path) -> list[tuple[str, Path]]:
        return [("aaa-gone.json", root / "aaa-gone.json"), *listed(root, skip)]

    monkeypatch.setattr(export, "_members", with_a_ghost)
    dest = export_zip(run_copy, tmp_path / "share.zip")
    names = set(_unzipped(dest))
    assert f"{run_copy.name}/aaa-gone.json" not in names
    assert len(names) == len(_files(run_copy))
    assert "disappeared" in caplog.text


def test_failed_write_leaves_no_zip_and_keeps_the_old_one(
    finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "share.zip"
    dest.write_bytes(b"previous export")
    calls = {"n": 0}
    copy = shutil.copyfileobj

    def disk_full(src: object, dst: object, length: int = 0) -> None:
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError(28, "No space left on device")
        copy(src, dst, length)  # type: ignore[arg-type]

    monkeypatch.setattr(export.shutil, "copyfileobj", disk_full)
    with pytest.raises(ExportError, match="No space left") as info:
        export_zip(finished_run, dest)
    assert exit_code_for(info.value) == 2
    assert dest.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["share.zip"]  # no temporary file left


def test_existing_zip_is_replaced(finished_run: Path, tmp_path: Path) -> None:
    dest = tmp_path / "share.zip"
    dest.write_bytes(b"not a zip")
    export_zip(finished_run, dest)
    assert zipfile.is_zipfile(dest)


def test_folder_without_run_json_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.tif").write_bytes(b"x")
    with pytest.raises(ExportError, match="not a senprep run") as info:
        export_zip(folder)
    assert isinstance(info.value, OutputError) and exit_code_for(info.value) == 2
    assert "run.json" in str(info.value)
    assert not (tmp_path / "photos.zip").exists()


def test_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="not a folder"):
        export_zip(tmp_path / "nope")


def test_demo_parent_folder_points_to_its_runs(tmp_path: Path) -> None:
    for name in ("s1", "s2"):
        (tmp_path / "demo" / name).mkdir(parents=True)
        (tmp_path / "demo" / name / "run.json").write_text("{}")
    with pytest.raises(ExportError, match=r"sub-folders \(s1, s2\)"):
        export_zip(tmp_path / "demo")


def test_destination_folder_is_refused(finished_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="is a folder"):
        export_zip(finished_run, tmp_path)


# ----- CLI -------------------------------------------------------------------------------


def test_cli_export_prints_the_zip_path(run_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(run_copy), "--zip"]) == 0
    printed = capsys.readouterr().out.strip()
    assert Path(printed) == run_copy.parent / f"{run_copy.name}.zip"
    assert _unzipped(Path(printed)) == {f"{run_copy.name}/{k}": v for k, v in _files(run_copy).items()}


def test_cli_export_output(finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "sub" / "mine.zip"
    assert main(["export", str(finished_run), "--zip", "--output", str(dest)]) == 0
    assert capsys.readouterr().out.strip() == str(dest)
    assert zipfile.is_zipfile(dest)


def test_cli_export_not_a_run_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(tmp_path), "--zip"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "error" in captured.err and "run.json" in captured.err


def test_cli_export_needs_a_format(finished_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["export", str(finished_run)])
    assert info.value.code == 2
    assert "--zip" in capsys.readouterr().err
