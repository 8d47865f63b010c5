"""Nothing untrusted is unpickled, and nothing secret is committed.

Weights and embeddings are safetensors; a ``torch.load`` must say ``weights_only=True``; no code asks
for ``trust_remote_code``; the shipped assets hold no pickle-based weight files; no notebook holds a
token-like string. Each scan is also fed a bad example, so a scan that matches nothing fails.
"""
import ast
import json
from pathlib import Path

import pytest

from tests.harness import SECRETS as SECRET_PATTERNS

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {".git", "build", ".venv", "venv", "node_modules", "__pycache__", ".ipynb_checkpoints"}
PICKLE_SUFFIXES = {".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle", ".npy", ".npz", ".joblib"}


def _project_files(suffixes: set[str]) -> list[Path]:
    return sorted(p for p in ROOT.rglob("*") if p.is_file() and p.suffix in suffixes
                  and not SKIP_DIRS & set(p.relative_to(ROOT).parts))


def _code_of(path: Path) -> str:
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        # IPython magics (!pip, %matplotlib) are not Python: blank them so ast can parse the rest.
        return "\n".join("\n".join("" if line.lstrip().startswith(("!", "%")) else line
                                   for line in "".join(c["source"]).splitlines())
                         for c in cells if c["cell_type"] == "code")
    return path.read_text()


def unsafe_calls(source: str) -> list[str]:
    """Calls that could run code hidden in a file or a remote repository."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        keywords = {k.arg: k.value for k in node.keywords}
        if name.endswith("torch.load") or name == "load" and "weights_only" in keywords:
            safe = keywords.get("weights_only")
            if not (isinstance(safe, ast.Constant) and safe.value is True):
                problems.append(f"line {node.lineno}: {name}(...) without weights_only=True")
        if name.split(".")[-1] in ("loads", "load") and name.split(".")[0] in ("pickle", "dill",
                                                                               "joblib", "cloudpickle"):
            problems.append(f"line {node.lineno}: {name}(...) unpickles")
        for key in ("trust_remote_code", "allow_pickle"):
            value = keywords.get(key)
            if value is not None and not (isinstance(value, ast.Constant) and value.value is False):
                problems.append(f"line {node.lineno}: {name}(..., {key}=...)")
    return problems


@pytest.mark.parametrize("bad", [
    "import torch\nstate = torch.load('x.pt')",
    "import torch\nstate = torch.load('x.pt', weights_only=False)",
    "import pickle\nobj = pickle.load(open('x', 'rb'))",
    "from transformers import AutoModel\nm = AutoModel.from_pretrained('x', trust_remote_code=True)",
    "import numpy as np\na = np.load('x.npy', allow_pickle=True)",
])
def test_the_scan_catches_unsafe_loading(bad):
    assert unsafe_calls(bad)


def test_the_scan_passes_safe_loading():
    assert unsafe_calls("import torch\ns = torch.load('o.pt', weights_only=True)\n"
                        "from safetensors.torch import load_file\nt = load_file('w.safetensors')") == []


def test_no_code_or_lesson_unpickles_or_trusts_remote_code():
    files = _project_files({".py", ".ipynb"})
    assert any(f.suffix == ".ipynb" for f in files) and any(f.name == "course.py" for f in files)
    problems = [f"{f.relative_to(ROOT)} {p}" for f in files for p in unsafe_calls(_code_of(f))]
    assert problems == [], "\n".join(problems)


def test_shipped_weights_are_safetensors_only():
    weights = _project_files(PICKLE_SUFFIXES)
    assert weights == [], f"pickle-format files in the project: {weights}; save as safetensors"
    assert _project_files({".safetensors"}), "no shipped safetensors found: the scan looked nowhere"


def test_no_file_in_the_project_holds_a_token():
    files = _project_files({".py", ".ipynb", ".md", ".txt", ".json", ".cfg", ".ini", ".toml"})
    found = [f"{f.relative_to(ROOT)}: {what}" for f in files for what, pattern in SECRET_PATTERNS.items()
             if pattern.search(f.read_text(errors="replace"))]
    assert found == [], found
    assert SECRET_PATTERNS["Hugging Face token"].search("hf_" + "a1B2" * 9)
