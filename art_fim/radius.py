"""Temporary shim: the names ``art_fim.lipschitz.certify`` still imports from here.

The first-order radius moved to modules of one job each: :mod:`art_fim.norms` (threat norms),
:mod:`art_fim.checks` (labels), :mod:`art_fim.margins` (margin maths and radii),
:mod:`art_fim.competitors`, :mod:`art_fim.box_search` and :mod:`art_fim.curve` (the robust
fraction). Delete this module once ``art_fim/lipschitz/certify.py`` imports from those.
"""

from art_fim.checks import check_labels
from art_fim.curve import robust_fraction
from art_fim.norms import parse_norm

__all__ = ["check_labels", "parse_norm", "robust_fraction"]
