"""MkDocs hook (mkdocs.yml `hooks:`): lay the site out as the repository is laid out.

The pages are written for the repository's web view, where README.md links `docs/render.md` and a guide links
`../ARCHITECTURE.md`. MkDocs reads only `docs_dir` (docs/), so here every file found there is moved under `docs/`
and the top-level pages (README.md, ARCHITECTURE.md, CHANGES.md) are added beside it: each relative link then
resolves in the site exactly as in the repository, and `mkdocs build --strict` checks it.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
TOP_LEVEL = ("README.md", "ARCHITECTURE.md", "CHANGES.md")


def on_files(files: Files, config) -> Files:
    laid_out = Files([])
    docs_dir = Path(config.docs_dir).resolve()
    for file in files:
        if file.abs_src_path is None or docs_dir not in Path(file.abs_src_path).resolve().parents:
            laid_out.append(file)  # the theme's and plugins' own files stay where they were put
            continue
        laid_out.append(File.generated(config, f"docs/{file.src_uri}", abs_src_path=file.abs_src_path,
                                       inclusion=file.inclusion))
    for name in TOP_LEVEL:
        laid_out.append(File.generated(config, name, abs_src_path=str(ROOT / name)))
    return laid_out
