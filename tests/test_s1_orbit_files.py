"""ESA orbit files: parse, pick the best file (POEORB over RESORB, newest, covering +-60 s), select or fall back.

There is no real EOF in the samples: the files are written here in the ESA layout from the real
annotation orbit of the Rome GRD (extended along its velocity where a longer arc is needed).
"""

from __future__ import annotations

import logging
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from senprep_core.errors import ConfigError, OrbitError
from senprep_core.s1 import find_orbit_file, read_orbit_file, read_s1_metadata, select_orbit
from senprep_core.s1.model import OrbitStateVectors, S1Metadata
from senprep_core.s1.orbit_files import parse_orbit_file_name, restrict_orbit
from tests.conftest import need_real_samples

ROME = ("sarsen-testdata", "S1B_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_5371.SAFE")
FMT = "%Y%m%dT%H%M%S"


@pytest.fixture(scope="module")
def rome() -> S1Metadata:
    return read_s1_metadata(need_real_samples(*ROME))


def _stamp(t: datetime) -> str:
    return t.strftime(FMT)


def eof_name(kind: str, start: datetime, stop: datetime, produced: datetime | None = None, mission: str = "S1B") -> str:
    produced = produced or stop + timedelta(days=20)
    return f"{mission}_OPER_AUX_{kind}_OPOD_{_stamp(produced)}_V{_stamp(start)}_{_stamp(stop)}.EOF"


def eof_xml(orbit: OrbitStateVectors, name: str, kind: str = "POEORB") -> str:
    """An orbit file in the ESA Earth Explorer layout holding ``orbit``'s samples."""
    osvs = []
    for t, p, v in zip(orbit.times, orbit.positions.tolist(), orbit.velocities.tolist(), strict=True):
        utc = (orbit.epoch + timedelta(seconds=float(t))).strftime("%Y-%m-%dT%H:%M:%S.%f")
        osvs.append(
            f"<OSV><TAI>TAI={utc}</TAI><UTC>UTC={utc}</UTC><UT1>UT1={utc}</UT1><Absolute_Orbit>+30148</Absolute_Orbit>"
            f'<X unit="m">{p[0]!r}</X><Y unit="m">{p[1]!r}</Y><Z unit="m">{p[2]!r}</Z>'
            f'<VX unit="m/s">{v[0]!r}</VX><VY unit="m/s">{v[1]!r}</VY><VZ unit="m/s">{v[2]!r}</VZ>'
            "<Quality>NOMINAL</Quality></OSV>"
        )
    return (
        '<?xml version="1.0"?>\n<Earth_Explorer_File><Earth_Explorer_Header><Fixed_Header>'
        f"<File_Name>{name.removesuffix('.EOF')}</File_Name><File_Type>AUX_{kind}</File_Type>"
        "</Fixed_Header><Variable_Header><Ref_Frame>EARTH_FIXED</Ref_Frame><Time_Reference>UTC</Time_Reference>"
        f'</Variable_Header></Earth_Explorer_Header><Data_Block type="xml"><List_of_OSVs count="{len(osvs)}">'
        + "".join(osvs)
        + "</List_of_OSVs></Data_Block></Earth_Explorer_File>"
    )


def extended(orbit: OrbitStateVectors, before: float, after: float) -> OrbitStateVectors:
    """The annotation samples plus 10 s samples out to ``before``/``after`` s, moved along the end velocities."""
    t0, t1 = orbit.times[0], orbit.times[-1]
    early = np.arange(t0 - before, t0 - 1, 10.0)
    late = np.arange(t1 + 10, t1 + after + 1, 10.0)
    times = np.concatenate([early, orbit.times, late])
    pos = np.concatenate(
        [
            orbit.positions[0] + np.outer(early - t0, orbit.velocities[0]),
            orbit.positions,
            orbit.positions[-1] + np.outer(late - t1, orbit.velocities[-1]),
        ]
    )
    vel = np.concatenate([np.repeat(orbit.velocities[:1], early.size, 0), orbit.velocities,
                          np.repeat(orbit.velocities[-1:], late.size, 0)])  # fmt: skip
    return OrbitStateVectors(orbit.epoch, times, pos, vel, "synthetic")


def write_eof(folder: Path, orbit: OrbitStateVectors, kind: str, start: datetime, stop: datetime, **kw: object) -> Path:
    name = eof_name(kind, start, stop, **kw)  # type: ignore[arg-type]
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(eof_xml(orbit, name, kind))
    return path


def _day(meta: S1Metadata) -> tuple[datetime, datetime]:
    """A POEORB-like validity period (26 h) around the acquisition."""
    return meta.start_time - timedelta(hours=6), meta.start_time + timedelta(hours=20)


# ----- reading ---------------------------------------------------------------------------------------


def test_read_orbit_file_gives_the_written_samples(rome: S1Metadata, tmp_path: Path) -> None:
    annotation = rome.images["VV"].orbit
    path = write_eof(tmp_path, annotation, "POEORB", *_day(rome))
    orbit = read_orbit_file(path, rome.epoch)
    assert orbit.source == f"POEORB:{path.name}" and orbit.epoch == rome.epoch
    assert orbit.times.size == annotation.times.size == 16
    assert np.abs(orbit.times - annotation.times).max() < 1e-6  # EOF times written with microseconds
    assert np.array_equal(orbit.positions, annotation.positions)
    assert np.array_equal(orbit.velocities, annotation.velocities)


def test_zipped_eof_and_resorb_source(rome: S1Metadata, tmp_path: Path) -> None:
    plain = write_eof(tmp_path / "plain", rome.images["VV"].orbit, "RESORB", rome.start_time - timedelta(hours=1),
                      rome.start_time + timedelta(hours=2))  # fmt: skip
    archive = tmp_path / (plain.name + ".zip")
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(plain, plain.name)
    orbit = read_orbit_file(archive, rome.epoch)
    assert orbit.source == f"RESORB:{archive.name}" and orbit.times.size == 16
    assert parse_orbit_file_name(archive) is not None and parse_orbit_file_name(tmp_path / "x.EOF") is None


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"<Earth_Explorer_File><Data_Block>", "not well-formed XML"),
        (b"<Earth_Explorer_File><Data_Block><List_of_OSVs/></Data_Block></Earth_Explorer_File>", "holds no"),
        (b"<Other/>", "not an ESA Earth Explorer orbit file"),
        (
            b"<Earth_Explorer_File><Data_Block><List_of_OSVs><OSV><UTC>UTC=2021-12-23T05:00:00.000000</UTC>"
            b"<X>abc</X><Y>1</Y><Z>1</Z><VX>1</VX><VY>1</VY><VZ>1</VZ></OSV></List_of_OSVs></Data_Block>"
            b"</Earth_Explorer_File>",
            "malformed time or number",
        ),
        (
            b"<Earth_Explorer_File><Data_Block><List_of_OSVs><OSV><UTC>UTC=2021-12-23T05:00:00.000000</UTC>"
            b"<X>1</X><Y>1</Y></OSV></List_of_OSVs></Data_Block></Earth_Explorer_File>",
            "lacks UTC/X/Y/Z",
        ),
    ],
    ids=["truncated", "no-osv", "wrong-root", "bad-number", "missing-field"],
)
def test_malformed_orbit_file_raises(rome: S1Metadata, tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / eof_name("POEORB", *_day(rome))
    path.write_bytes(content)
    with pytest.raises(OrbitError, match=match):
        read_orbit_file(path, rome.epoch)
    with pytest.raises(OrbitError):  # select_orbit picks it (the name covers) and must not fall back silently
        select_orbit(rome, rome.images["VV"], tmp_path)


# ----- finding ------------------------------------------------------------------------------------------


def test_find_prefers_poeorb_then_newest(rome: S1Metadata, tmp_path: Path) -> None:
    orbit = rome.images["VV"].orbit
    start, stop = rome.start_time, rome.stop_time
    day = _day(rome)
    produced = rome.start_time + timedelta(days=20)
    resorb = write_eof(tmp_path, orbit, "RESORB", start - timedelta(hours=1), start + timedelta(hours=2))
    older = write_eof(tmp_path / "2021" / "12", orbit, "POEORB", *day, produced=produced)
    newer = write_eof(tmp_path / "2021" / "12", orbit, "POEORB", *day, produced=produced + timedelta(days=1))
    write_eof(tmp_path, orbit, "POEORB", *day, produced=produced + timedelta(days=5), mission="S1A")
    write_eof(tmp_path, orbit, "POEORB", day[0] - timedelta(days=1), start - timedelta(seconds=5),
              produced=produced + timedelta(days=9))  # fmt: skip
    assert find_orbit_file(tmp_path, "S1B", start, stop) == newer
    newer.unlink()
    assert find_orbit_file(tmp_path, "s1b", start, stop) == older
    older.unlink()
    assert find_orbit_file(tmp_path, "S1B", start, stop) == resorb
    assert find_orbit_file(tmp_path, "S1C", start, stop) is None


@pytest.mark.parametrize(("lead", "found"), [(30, False), (59, False), (60, True), (61, True)])
def test_validity_must_cover_60_s_margins(rome: S1Metadata, tmp_path: Path, lead: int, found: bool) -> None:
    start = rome.start_time.replace(microsecond=0)
    stop = rome.stop_time.replace(microsecond=0) + timedelta(seconds=1)
    path = write_eof(tmp_path, rome.images["VV"].orbit, "RESORB", start - timedelta(seconds=lead),
                     stop + timedelta(hours=1))  # fmt: skip
    assert (find_orbit_file(tmp_path, "S1B", start, stop) == path) is found


# ----- selecting -----------------------------------------------------------------------------------------


def test_select_orbit_uses_a_covering_file_restricted_to_the_image(rome: S1Metadata, tmp_path: Path) -> None:
    image = rome.images["VV"]
    long_arc = extended(image.orbit, before=3600, after=3600)
    path = write_eof(tmp_path, long_arc, "POEORB", *_day(rome))
    orbit = select_orbit(rome, image, tmp_path)
    assert orbit.source == f"POEORB:{path.name}"
    assert orbit.times.min() >= image.first_line_time - 300 and orbit.times.max() <= image.last_line_time + 300
    assert 55 <= orbit.times.size <= 65  # 10 s samples over the 25 s image plus 2 x 300 s
    inside = np.isin(np.round(orbit.times, 3), np.round(image.orbit.times, 3))
    assert inside.sum() == 16
    assert np.array_equal(orbit.positions[inside], image.orbit.positions)


def test_select_orbit_falls_back_to_the_annotation(
    rome: S1Metadata, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    image = rome.images["VV"]
    assert select_orbit(rome, image, None) is image.orbit
    write_eof(tmp_path, image.orbit, "POEORB", *_day(rome), mission="S1A")  # wrong mission: not used
    with caplog.at_level(logging.WARNING, logger="senprep_core.s1.orbit_files"):
        orbit = select_orbit(rome, image, tmp_path)
    assert orbit is image.orbit and orbit.source == "annotation"
    assert "using the annotation orbit" in caplog.text
    with pytest.raises(ConfigError, match=r"sentinel1\.orbit_folder"):
        select_orbit(rome, image, tmp_path / "missing")


def test_file_whose_samples_do_not_cover_the_image_raises(rome: S1Metadata, tmp_path: Path) -> None:
    image = rome.images["VV"]
    short = image.orbit
    keep = short.times <= image.last_line_time + 20  # validity (name) covers, samples stop 20 s after the image
    cut = OrbitStateVectors(short.epoch, short.times[keep], short.positions[keep], short.velocities[keep])
    write_eof(tmp_path, cut, "POEORB", *_day(rome))
    with pytest.raises(OrbitError, match=r"does not cover .* plus 60 s"):
        select_orbit(rome, image, tmp_path)


def test_orbit_with_a_gap_raises(rome: S1Metadata) -> None:
    image = rome.images["VV"]
    arc = extended(image.orbit, before=600, after=600)
    gap = (arc.times < image.first_line_time - 10) | (arc.times > image.first_line_time + 70)
    holed = OrbitStateVectors(arc.epoch, arc.times[gap], arc.positions[gap], arc.velocities[gap], "POEORB:x")
    with pytest.raises(OrbitError, match="gap of 90 s"):
        restrict_orbit(holed, image.first_line_time, image.last_line_time)
    assert restrict_orbit(arc, image.first_line_time, image.last_line_time).times.size == 62  # -291.6 .. 318.4 s


def test_eof_times_are_utc(rome: S1Metadata, tmp_path: Path) -> None:
    """A sample written at a known UTC time lands at the right offset from the epoch."""
    epoch = rome.epoch
    one = OrbitStateVectors(epoch, np.array([-3600.0]), np.ones((1, 3)), np.ones((1, 3)))
    path = write_eof(tmp_path, one, "POEORB", *_day(rome))
    orbit = read_orbit_file(path, datetime(2021, 12, 23, 4, 11, 22, 594441, tzinfo=timezone.utc))
    assert orbit.times.tolist() == [0.0]
