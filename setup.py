"""The one compiled part of the project: the collector's per-event work.

``ingestion/rowpass.py`` (plain Python) is compiled by Cython into the C extension
``ingestion._rowpass`` whenever the project is installed (``make``, ``pip install -e .``; the
build needs gcc and the Python headers, and takes Cython, pinned in ``pyproject.toml``'s
``build-system``, from PyPI). The extension is built from a copy of the source that records its
SHA-256, so ``ingestion.contract.row_pass`` uses it only while it matches ``rowpass.py``: an
edited source runs interpreted (with a warning) until the next install. Everything else about
the package is in ``pyproject.toml``.
"""

import hashlib
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

SOURCE = Path("ingestion/rowpass.py")
MARKER = b'SOURCE_SHA256 = ""'


def _stamped_copy() -> str:
    """``rowpass.py`` as ``build/cython/_rowpass.py`` (the extension's module name), with
    ``SOURCE_SHA256`` set to the source's digest."""
    text = SOURCE.read_bytes()
    if text.count(MARKER) != 1:
        raise SystemExit(f"{SOURCE} must hold exactly one line {MARKER.decode()}")
    digest = hashlib.sha256(text).hexdigest()
    copy = Path("build/cython/_rowpass.py")
    copy.parent.mkdir(parents=True, exist_ok=True)
    stamped = text.replace(MARKER, f'SOURCE_SHA256 = "{digest}"'.encode())
    if not copy.exists() or copy.read_bytes() != stamped:
        copy.write_bytes(stamped)
    return str(copy)


setup(
    ext_modules=cythonize(
        [Extension("ingestion._rowpass", [_stamped_copy()])],
        compiler_directives={"language_level": 3},
        quiet=True,
    )
)
