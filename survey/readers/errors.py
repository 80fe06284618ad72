"""Named errors of the readers, refining survey.errors (DESIGN.md §3: file, object, reason).

Every class keeps `source`, `object_id` (None for a whole-file problem) and `reason` attributes, so
`survey.ingest` can record a rejected object without parsing messages.

Which problems are per-object is decided by where they arise, not by class: an error raised while
reading one object, with `object_id` set, concerns that object only (ingest rejects it, records it
and goes on); an error raised while opening or listing an input, `object_id` None or not, stops
the whole read (ingest raises). Typical uses:
  CorruptFile       truncated or garbage bytes, not HDF5/FITS/an image at all
  LayoutMismatch    the file does not have the published layout (missing key, wrong shape)
  MissingKey        a required dataset, header key or CSV column is absent
  CalibrationError  pixel scale, position or band names missing or contradictory
  DuplicateObjectId two objects share an id (a CatalogError)
  EmptyStamp        a band of the stamp has no finite pixel (NaN-only)
  BandMismatch      this object's bands differ from the survey's (WrongBandCount: their number;
                    MissingBand: an object assembled from one file per band lacks a band's file)
  OffImage          a mosaic source lies entirely outside the image
  BadPosition       ra/dec not finite or out of range (a CatalogError)
"""

from __future__ import annotations

from survey.errors import CatalogError, LocatedError, UnreadableCutout


class CorruptFile(UnreadableCutout):
    """The bytes cannot be parsed: truncated, garbage, or the wrong file type."""


class LayoutMismatch(UnreadableCutout):
    """The file parses but does not have the layout the reader expects."""


class MissingKey(LayoutMismatch):
    """A required dataset, header key or catalog column is absent."""


class BandMismatch(LayoutMismatch):
    """The bands of a file or object are not the ones expected."""


class WrongBandCount(BandMismatch):
    """The number of image planes differs from the number of bands."""


class MissingBand(BandMismatch):
    """An object assembled from one file per band has no file for some of its bands."""


class CalibrationError(UnreadableCutout):
    """Pixel scale, sky position or band names cannot be determined (or disagree)."""


class EmptyStamp(UnreadableCutout):
    """A stamp (or one of its bands) has no finite pixel: nothing to learn from."""


class OffImage(UnreadableCutout):
    """A requested cutout lies entirely outside the mosaic."""


class _LocatedCatalogError(LocatedError, CatalogError):
    """A catalogue problem at a place in the input (file, object)."""


class DuplicateObjectId(_LocatedCatalogError):
    """Two or more objects share an object_id; the reader cannot tell which is which."""


class BadPosition(_LocatedCatalogError):
    """An object's ra/dec is not finite or outside [0, 360) x [-90, 90] degrees."""
