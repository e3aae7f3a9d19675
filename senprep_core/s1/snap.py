"""Optional ESA SNAP backend: write a GPT processing graph for a Sentinel-1 GRD and run it.

senprep's own S1 chain does not need SNAP. When SNAP's ``gpt`` is installed this module offers the
classic SNAP chain as a reference or alternative::

    Read -> Apply-Orbit-File -> ThermalNoiseRemoval -> Calibration -> Speckle-Filter
         -> Terrain-Correction -> Subset -> LinearToFromdB -> Write (GeoTIFF-BigTIFF)

Apply-Orbit-File is left out for ``orbit_type="annotation"``, Speckle-Filter for the ``none``
filter and LinearToFromdB for linear output. Parameter names follow the operators' documented
parameters (``gpt <operator> -h``).

The terrain-corrected grid uses the target grid's CRS and pixel size and is aligned on multiples of
the pixel size (``alignToStandardGrid`` with origin 0, 0), as :class:`TargetGrid` is; the Subset
keeps the grid's bounds (a lon/lat polygon), so the written GeoTIFF covers the grid and may hold
a pixel more on a side: callers crop it with :meth:`TargetGrid.window_of`.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from lxml import etree

from senprep_core.errors import ConfigError, SnapError
from senprep_core.geo.grid import TargetGrid
from senprep_core.geo.projection import transformer
from senprep_core.s1.speckle import SpeckleFilter

logger = logging.getLogger(__name__)

GRAPH_ID = "senprep"
OUTPUT_FORMAT = "GeoTIFF-BigTIFF"

ORBIT_TYPES = {
    "precise": "Sentinel Precise (Auto Download)",
    "restituted": "Sentinel Restituted (Auto Download)",
    "annotation": None,
}
"""senprep orbit choice -> SNAP ``orbitType`` (None: keep the annotation orbit, no Apply-Orbit-File)."""

SNAP_FILTER_NAMES = {
    "boxcar": "Boxcar",
    "median": "Median",
    "lee": "Lee",
    "refined_lee": "Refined Lee",
    "lee_sigma": "Lee Sigma",
    "gamma_map": "Gamma Map",
    "frost": "Frost",
}
"""senprep speckle filter name -> SNAP ``Speckle-Filter`` ``filter`` value."""

SNAP_DEMS = (
    "Copernicus 30m Global DEM",
    "Copernicus 90m Global DEM",
    "SRTM 1Sec HGT",
    "SRTM 3Sec",
    "GETASSE30",
    "ACE30",
    "CDEM",
)
"""DEM names SNAP downloads by itself."""

DEFAULT_DEM = "Copernicus 30m Global DEM"
BACKSCATTER_BANDS = {"sigma0": "Sigma0", "beta0": "Beta0", "gamma0": "Gamma0"}
RESAMPLING_METHODS = ("NEAREST_NEIGHBOUR", "BILINEAR_INTERPOLATION", "CUBIC_CONVOLUTION", "BICUBIC_INTERPOLATION")
_POLARISATIONS = ("VV", "VH", "HH", "HV")
_SNAP_SIGMAS = ("0.5", "0.6", "0.7", "0.8", "0.9")
_METRES_PER_DEGREE = 111_319.490_793_273_57  # WGS84 equator, as SNAP converts between spacings


def snap_available() -> str | None:
    """Path of SNAP's ``gpt`` found on PATH, or None."""
    return shutil.which("gpt")


def esa_snappy_available() -> bool:
    """True when the ``esa_snappy`` Python bridge is importable (checked without importing it)."""
    return importlib.util.find_spec("esa_snappy") is not None


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _node(graph: etree._Element, node_id: str, source: str | None, parameters: dict[str, object]) -> None:
    node = etree.SubElement(graph, "node", id=node_id)
    etree.SubElement(node, "operator").text = node_id
    sources = etree.SubElement(node, "sources")
    if source is not None:
        etree.SubElement(sources, "sourceProduct", refid=source)
    params = etree.SubElement(node, "parameters", attrib={"class": "com.bc.ceres.binding.dom.XppDomElement"})
    for key, value in parameters.items():
        etree.SubElement(params, key).text = _text(value)


def _read_target(product_path: Path) -> str:
    """What SNAP's Read operator opens: the zip itself, or the manifest of a .SAFE folder."""
    if product_path.is_dir():
        return str((product_path / "manifest.safe").resolve())
    return str(product_path.resolve())


def _check_polarisations(polarisations: Sequence[str]) -> list[str]:
    if isinstance(polarisations, str):
        polarisations = [p for p in polarisations.replace(",", " ").split() if p]
    pols = [str(p).upper() for p in polarisations]
    if not pols or any(p not in _POLARISATIONS for p in pols) or len(set(pols)) != len(pols):
        raise ConfigError("sentinel1.polarisations", list(polarisations), "list distinct ones of VV, VH, HH, HV")
    return pols


def _dem_parameters(dem: str | None, dem_nodata: float, dem_heights_geoid: bool) -> dict[str, object]:
    if dem is None or dem in SNAP_DEMS:
        return {"demName": dem or DEFAULT_DEM}
    path = Path(dem).expanduser()
    if not path.is_file():
        raise ConfigError(
            "sentinel1.dem", dem, f"give an existing DEM file or one of SNAP's DEM names: {', '.join(SNAP_DEMS)}"
        )
    return {
        "demName": "External DEM",
        "externalDEMFile": str(path.resolve()),
        "externalDEMNoDataValue": float(dem_nodata),
        "externalDEMApplyEGM": dem_heights_geoid,
    }


def _speckle_parameters(speckle: SpeckleFilter, bands: str) -> dict[str, object]:
    name = speckle.name
    params: dict[str, object] = {"sourceBands": bands, "filter": SNAP_FILTER_NAMES[name]}
    if name in ("boxcar", "median", "lee", "gamma_map", "frost"):
        params["filterSizeX"] = speckle.window
        params["filterSizeY"] = speckle.window
    if name == "frost":
        params["dampingFactor"] = speckle.damping
    if name in ("lee", "gamma_map"):
        params["estimateENL"] = False
        params["enl"] = speckle.looks
    if name == "refined_lee" and speckle.window != 7:
        raise ConfigError(
            "sentinel1.speckle_filter.window", speckle.window, "SNAP's Refined Lee always uses 7x7: set window 7"
        )
    if name == "lee_sigma":
        sigma = f"{speckle.sigma:.1f}"
        if sigma not in _SNAP_SIGMAS or abs(float(sigma) - speckle.sigma) > 1e-9:
            raise ConfigError(
                "sentinel1.speckle_filter.sigma",
                speckle.sigma,
                f"SNAP's Lee Sigma takes one of {', '.join(_SNAP_SIGMAS)}",
            )
        looks = min(4, max(1, round(speckle.looks)))
        if looks != speckle.looks:
            logger.info("SNAP's Lee Sigma knows 1-4 looks: using %d for ENL %.3g", looks, speckle.looks)
        params["numLooksStr"] = str(looks)
        params["windowSize"] = f"{speckle.window}x{speckle.window}"
        params["targetWindowSizeStr"] = f"{speckle.target_window}x{speckle.target_window}"
        params["sigmaStr"] = sigma
    return params


def _grid_projection(grid: TargetGrid) -> tuple[str, bool]:
    """The grid CRS as WKT1 (what SNAP's GeoTools parses) and whether it is geographic."""
    from pyproj import CRS

    crs = CRS.from_epsg(grid.epsg)
    return crs.to_wkt("WKT1_GDAL"), crs.is_geographic


def grid_lonlat_polygon(grid: TargetGrid, points_per_edge: int = 16) -> str:
    """The grid's outline as a WKT polygon in lon/lat (edges densified so projected curvature is covered)."""
    b = grid.bounds
    steps = [i / points_per_edge for i in range(points_per_edge)]
    ring = (
        [(b.left + t * b.width, b.top) for t in steps]
        + [(b.right, b.top - t * b.height) for t in steps]
        + [(b.right - t * b.width, b.bottom) for t in steps]
        + [(b.left, b.bottom + t * b.height) for t in steps]
    )
    lons, lats = transformer(grid.epsg, 4326).transform([x for x, _ in ring], [y for _, y in ring])
    coords = [(float(lon), float(lat)) for lon, lat in zip(lons, lats, strict=True)]
    if not all(math.isfinite(v) for xy in coords for v in xy):
        raise ConfigError("grid", grid.to_dict(), "the grid cannot be expressed in lon/lat; check its CRS and bounds")
    coords.append(coords[0])
    return "POLYGON ((" + ", ".join(f"{lon:.9f} {lat:.9f}" for lon, lat in coords) + "))"


def build_graph(
    product_path: str | Path,
    out_path: str | Path,
    grid: TargetGrid,
    dem: str | None,
    polarisations: Sequence[str],
    speckle: SpeckleFilter,
    output_db: bool,
    orbit_type: str,
    *,
    backscatter: str = "sigma0",
    resampling: str = "BILINEAR_INTERPOLATION",
    dem_nodata: float = -32768.0,
    dem_heights_geoid: bool = True,
) -> str:
    """The SNAP GPT graph XML (``<graph id="senprep">``) that turns one GRD into a GeoTIFF on ``grid``.

    ``dem``: None (SNAP downloads the Copernicus 30 m DEM), one of :data:`SNAP_DEMS`, or a DEM
    file (heights above the EGM96 geoid unless ``dem_heights_geoid`` is False; ``dem_nodata`` is
    its no-data value). ``orbit_type``: ``precise``, ``restituted`` (SNAP downloads the orbit
    file) or ``annotation``. ``backscatter``: ``sigma0``, ``beta0`` or ``gamma0`` (SNAP's
    ellipsoid gamma0, not terrain-flattened). ``out_path`` gets a ``.tif`` suffix if it has none,
    as SNAP's GeoTIFF writer would add one.
    """
    pols = _check_polarisations(polarisations)
    orbit_key = orbit_type.lower()
    if orbit_key not in ORBIT_TYPES:
        raise ConfigError("sentinel1.orbit", orbit_type, f"use one of {', '.join(ORBIT_TYPES)}")
    if backscatter not in BACKSCATTER_BANDS:
        raise ConfigError("sentinel1.backscatter", backscatter, f"use one of {', '.join(BACKSCATTER_BANDS)}")
    if resampling not in RESAMPLING_METHODS:
        raise ConfigError("sentinel1.resampling", resampling, f"use one of {', '.join(RESAMPLING_METHODS)}")
    product = Path(product_path).expanduser()
    if not product.exists():
        raise ConfigError("sentinel1.product", str(product_path), "give the path of an existing .SAFE folder or .zip")
    out = Path(out_path).expanduser()
    if out.suffix.lower() not in (".tif", ".tiff"):
        out = out.with_name(out.name + ".tif")
    dem_params = _dem_parameters(dem, dem_nodata, dem_heights_geoid)
    wkt, geographic = _grid_projection(grid)
    band_prefix = BACKSCATTER_BANDS[backscatter]
    bands = ",".join(f"{band_prefix}_{p}" for p in pols)

    graph = etree.Element("graph", id=GRAPH_ID)
    etree.SubElement(graph, "version").text = "1.0"
    _node(graph, "Read", None, {"file": _read_target(product)})
    previous = "Read"
    orbit_name = ORBIT_TYPES[orbit_key]
    if orbit_name is not None:
        _node(graph, "Apply-Orbit-File", previous, {"orbitType": orbit_name, "polyDegree": 3, "continueOnFail": False})
        previous = "Apply-Orbit-File"
    _node(
        graph,
        "ThermalNoiseRemoval",
        previous,
        {
            "selectedPolarisations": ",".join(pols),
            "removeThermalNoise": True,
            "outputNoise": False,
            "reIntroduceThermalNoise": False,
        },
    )
    _node(
        graph,
        "Calibration",
        "ThermalNoiseRemoval",
        {
            "sourceBands": ",".join(f"Intensity_{p}" for p in pols),
            "selectedPolarisations": ",".join(pols),
            "outputImageInComplex": False,
            "outputImageScaleInDb": False,
            "createGammaBand": False,
            "createBetaBand": False,
            "outputSigmaBand": backscatter == "sigma0",
            "outputGammaBand": backscatter == "gamma0",
            "outputBetaBand": backscatter == "beta0",
        },
    )
    previous = "Calibration"
    if speckle.name != "none":
        _node(graph, "Speckle-Filter", previous, _speckle_parameters(speckle, bands))
        previous = "Speckle-Filter"
    spacing_m = grid.resolution * _METRES_PER_DEGREE if geographic else grid.resolution
    spacing_deg = grid.resolution if geographic else grid.resolution / _METRES_PER_DEGREE
    _node(
        graph,
        "Terrain-Correction",
        previous,
        {
            "sourceBands": bands,
            **dem_params,
            "demResamplingMethod": "BILINEAR_INTERPOLATION",
            "imgResamplingMethod": resampling,
            "pixelSpacingInMeter": float(spacing_m),
            "pixelSpacingInDegree": float(spacing_deg),
            "mapProjection": wkt,
            "alignToStandardGrid": True,
            "standardGridOriginX": 0.0,
            "standardGridOriginY": 0.0,
            "nodataValueAtSea": False,
            "saveDEM": False,
            "saveLatLon": False,
            "saveIncidenceAngleFromEllipsoid": False,
            "saveLocalIncidenceAngle": False,
            "saveProjectedLocalIncidenceAngle": False,
            "saveSelectedSourceBand": True,
            "outputComplex": False,
            "applyRadiometricNormalization": False,
        },
    )
    _node(graph, "Subset", "Terrain-Correction", {"geoRegion": grid_lonlat_polygon(grid), "copyMetadata": True})
    previous = "Subset"
    if output_db:
        _node(graph, "LinearToFromdB", previous, {"sourceBands": bands})
        previous = "LinearToFromdB"
    _node(
        graph,
        "Write",
        previous,
        {"file": str(out.resolve()), "formatName": OUTPUT_FORMAT, "deleteOutputOnFailure": True},
    )
    return etree.tostring(graph, pretty_print=True, xml_declaration=True, encoding="UTF-8").decode("utf-8")


def _write_target(graph_xml: str) -> Path:
    try:
        root = etree.fromstring(graph_xml.encode("utf-8"), parser=etree.XMLParser(resolve_entities=False))
    except etree.XMLSyntaxError as exc:
        raise SnapError(f"the SNAP graph is not valid XML ({exc}); build it with build_graph()") from exc
    files = [node.findtext("parameters/file") for node in root.findall("node") if node.findtext("operator") == "Write"]
    if len(files) != 1 or not files[0]:
        raise SnapError("the SNAP graph needs exactly one Write node with a file; build it with build_graph()")
    return Path(files[0])


def _tail(output: str, lines: int = 25) -> str:
    kept = [line for line in output.splitlines() if line.strip()]
    return "\n".join(kept[-lines:]) or "(gpt printed nothing)"


def run_graph(graph_xml: str, workdir: str | Path, *, timeout: float | None = None) -> Path:
    """Run ``gpt graph.xml`` in ``workdir`` and return the written file (the graph's Write target).

    gpt's whole output goes to ``workdir/gpt.log``. Raises :class:`SnapError` when gpt is not on
    PATH, fails, times out, or ends without writing its output.
    """
    gpt = snap_available()
    if gpt is None:
        raise SnapError("gpt not found; install ESA SNAP or use the native chain")
    target = _write_target(graph_xml)
    folder = Path(workdir)
    folder.mkdir(parents=True, exist_ok=True)
    graph_file = folder / "graph.xml"
    graph_file.write_text(graph_xml, encoding="utf-8")
    log_file = folder / "gpt.log"
    target.parent.mkdir(parents=True, exist_ok=True)
    logger.info("running SNAP: %s %s", gpt, graph_file)
    try:
        done = subprocess.run(
            [gpt, str(graph_file)],
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        output = exc.output if isinstance(exc.output, str) else (exc.output or b"").decode("utf-8", "replace")
        log_file.write_text(output, encoding="utf-8")
        raise SnapError(
            f"gpt did not finish within {timeout} s on {graph_file}; last output:\n{_tail(output)}\n"
            "Give it more time or a smaller region."
        ) from exc
    except OSError as exc:
        raise SnapError(f"gpt at {gpt} could not be started ({exc}); check the SNAP installation") from exc
    log_file.write_text(done.stdout, encoding="utf-8")
    if done.returncode != 0:
        raise SnapError(
            f"gpt failed with exit code {done.returncode} on {graph_file}; last output:\n{_tail(done.stdout)}\n"
            f"Full log: {log_file}. Check the product, the DEM and SNAP's memory (-Xmx in gpt.vmoptions)."
        )
    if not target.is_file():
        raise SnapError(
            f"gpt ended without error but did not write {target}; last output:\n{_tail(done.stdout)}\n"
            f"Full log: {log_file}."
        )
    return target
