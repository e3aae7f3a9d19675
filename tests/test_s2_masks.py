"""Pure unit tests: SCL masks, ROI fractions, DN -> reflectance, GML cloud masks."""

from __future__ import annotations

import numpy as np
import pytest

from senprep_core.bands import SCL_CLASSES
from senprep_core.errors import MetadataError, UnknownBandError
from senprep_core.geo.grid import TargetGrid
from senprep_core.s2.masks import CLOUD_CLASSES, gml_cloud_masks, roi_fractions, scl_cloud, scl_mask
from senprep_core.s2.radiometry import dn_to_auxiliary, dn_to_reflectance

SCL = np.array([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]], dtype=np.uint8)


@pytest.mark.parametrize("name", list(SCL_CLASSES))
def test_scl_mask_every_class(name: str) -> None:
    mask = scl_mask(SCL, name)
    assert mask.dtype == np.uint8
    expected = np.zeros(12, dtype=np.uint8)
    expected[SCL_CLASSES[name]] = 1
    np.testing.assert_array_equal(mask.ravel(), expected)


def test_scl_mask_unknown_name() -> None:
    with pytest.raises(UnknownBandError, match="scl_clouds"):
        scl_mask(SCL, "scl_clouds")


def test_scl_cloud_classes() -> None:
    assert CLOUD_CLASSES == (8, 9, 10)
    np.testing.assert_array_equal(scl_cloud(SCL).ravel(), [False] * 8 + [True, True, True, False])


def test_roi_fractions_numbers() -> None:
    valid = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=bool)
    cloud = np.array([[1, 0, 0, 1], [0, 1, 0, 1]], dtype=bool)
    roi = np.array([[1, 1, 1, 1], [0, 1, 1, 0]], dtype=bool)
    f = roi_fractions(valid, cloud, roi)
    # roi: 6 pixels; valid & roi: (0,0) (0,1) (0,2) (1,1) = 4; cloud among them: (0,0), (1,1) = 2
    assert (f.n_roi, f.n_valid, f.n_cloud) == (6, 4, 2)
    assert f.valid_fraction == pytest.approx(4 / 6)
    assert f.cloud_fraction == pytest.approx(0.5)


def test_roi_fractions_no_cloud_layer_and_no_valid() -> None:
    roi = np.ones((2, 2), dtype=bool)
    f = roi_fractions(np.ones((2, 2), dtype=bool), None, roi)
    assert f.valid_fraction == 1.0 and f.cloud_fraction is None and f.n_cloud == 0
    g = roi_fractions(np.zeros((2, 2), dtype=bool), np.ones((2, 2), dtype=bool), roi)
    assert g.valid_fraction == 0.0 and g.cloud_fraction is None and g.n_valid == 0
    empty = roi_fractions(np.ones((2, 2), dtype=bool), None, np.zeros((2, 2), dtype=bool))
    assert empty.valid_fraction == 0.0 and empty.n_roi == 0


def test_roi_fractions_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="one shape"):
        roi_fractions(np.ones((2, 2), dtype=bool), None, np.ones((3, 2), dtype=bool))


def test_dn_to_reflectance_numbers() -> None:
    dn = np.array([[0, 1000, 1500], [11000, 65535, 1]], dtype=np.uint16)
    out = dn_to_reflectance(dn, -1000, 10000)
    assert out.dtype == np.float32
    expected = np.array([[np.nan, 0.0, 0.05], [1.0, 6.4535, -0.0999]], dtype=np.float32)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(dn_to_reflectance(dn, 0, 10000)[0], [np.nan, 0.1, 0.15], atol=1e-7, equal_nan=True)


def test_dn_to_auxiliary_and_bad_quantification() -> None:
    np.testing.assert_allclose(
        dn_to_auxiliary(np.array([0, 89, 1000])), [np.nan, 0.089, 1.0], atol=1e-7, equal_nan=True
    )
    with pytest.raises(MetadataError, match="QUANTIFICATION_VALUE"):
        dn_to_reflectance(np.array([1]), 0, 0)


GML = b"""<?xml version="1.0" encoding="UTF-8"?>
<eop:Mask xmlns:eop="http://www.opengis.net/eop/2.0" xmlns:gml="http://www.opengis.net/gml/3.2">
  <gml:boundedBy><gml:Envelope srsName="urn:ogc:def:crs:EPSG::32610"/></gml:boundedBy>
  <eop:maskMembers>
    <eop:MaskFeature gml:id="OPAQUE.1">
      <eop:maskType codeSpace="urn:x">OPAQUE</eop:maskType>
      <eop:extentOf><gml:Polygon><gml:exterior><gml:LinearRing>
        <gml:posList srsDimension="2">0 100 40 100 40 60 0 60 0 100</gml:posList>
      </gml:LinearRing></gml:exterior></gml:Polygon></eop:extentOf>
    </eop:MaskFeature>
    <eop:MaskFeature gml:id="CIRRUS.1">
      <eop:maskType codeSpace="urn:x">CIRRUS</eop:maskType>
      <eop:extentOf><gml:Polygon><gml:exterior><gml:LinearRing>
        <gml:posList srsDimension="2">80 20 100 20 100 0 80 0 80 20</gml:posList>
      </gml:LinearRing></gml:exterior></gml:Polygon></eop:extentOf>
    </eop:MaskFeature>
  </eop:maskMembers>
</eop:Mask>"""


def test_gml_cloud_masks_rasterized() -> None:
    grid = TargetGrid(32610, 20.0, 0.0, 100.0, 5, 5)
    masks = gml_cloud_masks(GML, 32610, grid)
    opaque = np.zeros((5, 5), dtype=bool)
    opaque[0:2, 0:2] = True  # x 0..40, y 100..60
    cirrus = np.zeros((5, 5), dtype=bool)
    cirrus[4, 4] = True  # x 80..100, y 20..0
    np.testing.assert_array_equal(masks["opaque_clouds"], opaque)
    np.testing.assert_array_equal(masks["cirrus_clouds"], cirrus)


def test_gml_missing_or_empty_means_no_clouds() -> None:
    grid = TargetGrid(32610, 20.0, 0.0, 100.0, 5, 5)
    for data in (None, b"", b'<eop:Mask xmlns:eop="http://www.opengis.net/eop/2.0"/>'):
        masks = gml_cloud_masks(data, 32610, grid)
        assert not masks["opaque_clouds"].any() and not masks["cirrus_clouds"].any()
    with pytest.raises(MetadataError, match="not well-formed"):
        gml_cloud_masks(b"<eop:Mask", 32610, grid)
