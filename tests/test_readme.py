"""The README's figures: every one it names is in the repository, and the gallery
shows every figure in docs/figures."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
FIGURE = re.compile(r"docs/figures/[\w.\-]+\.png")


def test_every_figure_the_readme_names_exists():
    named = set(FIGURE.findall(README))
    assert named, "the README shows figures"
    missing = sorted(path for path in named if not (ROOT / path).is_file())
    assert not missing, f"the README names figures that are not in the repository: {missing}"


def test_the_gallery_shows_every_figure():
    gallery = README[README.index("### Gallery"):README.index("\n## ", README.index("### Gallery"))]
    shown = set(FIGURE.findall(gallery))
    on_disk = {f"docs/figures/{path.name}" for path in (ROOT / "docs" / "figures").glob("*.png")}
    assert on_disk - shown == set(), f"figures missing from the gallery: {sorted(on_disk - shown)}"
