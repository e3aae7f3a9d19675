"""Parse product XML safely: no entity expansion, no network, clear errors for damaged files."""

from __future__ import annotations

from lxml import etree

from senprep_core.errors import MetadataError


def parse_xml(data: bytes, label: str) -> etree._Element:
    """The root element of ``data``; :class:`MetadataError` naming ``label`` when it is not XML."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise MetadataError(
            f"{label} is not well-formed XML ({exc}); the product is damaged, download it again"
        ) from exc
    if root is None:
        raise MetadataError(f"{label} is empty; the product is damaged, download it again")
    return root
