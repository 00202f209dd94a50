"""Paths inside the static site: the file that serves a path, and relative links between pages.

The URLs themselves (/<lang>/<year>/<slug>/, the indexes, the feeds) are newsletter/links.py's:
one URL scheme for mail, web app and archive.
"""

from __future__ import annotations


def output_file(path: str) -> str:
    """The file that serves a site path: directories are served by their index.html."""
    path = path.lstrip("/")
    return path + "index.html" if path == "" or path.endswith("/") else path


def relative_href(from_path: str, to_path: str) -> str:
    """A link from one page to another that works under any prefix and from a local preview."""
    here = from_path.split("/")[1:-1]
    there = to_path.split("/")[1:]
    common, limit = 0, min(len(here), len(there) - 1)
    while common < limit and here[common] == there[common]:
        common += 1
    rel = "../" * (len(here) - common) + "/".join(there[common:])
    return rel or "./"
