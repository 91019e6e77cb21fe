"""The one compiled part of the project: the collector's per-event work.

``ingestion/rowpass.py`` (plain Python) is compiled by Cython into the C extension
``ingestion._rowpass`` whenever the project is installed (``make``, ``pip install -e .``; the
build needs gcc and the Python headers, and takes Cython, pinned in ``pyproject.toml``'s
``build-system``, from PyPI), with the C types and C functions ``ingestion/rowpass.pxd``
declares for it. The extension is built from a copy of the two that records their SHA-256s, so
``ingestion.contract.row_pass`` uses it only while they match ``rowpass.py`` and
``rowpass.pxd``: an edited source runs interpreted (with a warning) until the next install.
Everything else about the package is in ``pyproject.toml``.
"""

import hashlib
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

SOURCE = Path("ingestion/rowpass.py")
DECLARATIONS = Path("ingestion/rowpass.pxd")
MARKER = b'SOURCE_SHA256 = ""'
DECLARATIONS_MARKER = b'DECLARATIONS_SHA256 = ""'


def _stamped_copy() -> str:
    """``rowpass.py`` as ``build/cython/_rowpass.py`` (the extension's module name), with
    ``SOURCE_SHA256`` set to the source's digest and ``DECLARATIONS_SHA256`` to
    ``rowpass.pxd``'s, which is copied next to it as ``_rowpass.pxd`` (where Cython reads it)."""
    text = SOURCE.read_bytes()
    for marker in (MARKER, DECLARATIONS_MARKER):
        if text.count(marker) != 1:
            raise SystemExit(f"{SOURCE} must hold exactly one line {marker.decode()}")
    declarations = DECLARATIONS.read_bytes()
    digest = hashlib.sha256(text).hexdigest()
    declarations_digest = hashlib.sha256(declarations).hexdigest()
    copy = Path("build/cython/_rowpass.py")
    copy.parent.mkdir(parents=True, exist_ok=True)
    stamped = text.replace(MARKER, f'SOURCE_SHA256 = "{digest}"'.encode()).replace(
        DECLARATIONS_MARKER, f'DECLARATIONS_SHA256 = "{declarations_digest}"'.encode()
    )
    declarations_copy = copy.parent / "ingestion" / "_rowpass.pxd"
    declarations_copy.parent.mkdir(exist_ok=True)
    for path, content in ((copy, stamped), (declarations_copy, declarations)):
        if not path.exists() or path.read_bytes() != content:
            path.write_bytes(content)
    return str(copy)


setup(
    ext_modules=cythonize(
        [Extension("ingestion._rowpass", [_stamped_copy()])],
        include_path=["build/cython"],
        # The types are rowpass.pxd's alone: its annotations are for readers and type checkers.
        compiler_directives={"language_level": 3, "annotation_typing": False},
        quiet=True,
    )
)
