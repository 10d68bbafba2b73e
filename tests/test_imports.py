"""Imports point one way, and the command line answers --help without the heavy libraries."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "keras", "sklearn", "pandas", "pyarrow", "matplotlib", "tf2onnx", "onnxruntime")


def test_help_and_usage_errors_import_no_heavy_library():
    code = ("import sys\nfrom tfseq.cli.main import build_parser, main\n"
            "build_parser().format_help()\nassert main(['train']) == 2\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_imports_point_one_way():
    """data and models know nothing above them; training and export know models; nothing imports the CLI."""
    tool = ROOT.parent / "shared" / "tools" / "layers.py"
    script = tool if tool.is_file() else ROOT / ".ci" / "layers.py"
    done = subprocess.run([sys.executable, str(script), str(ROOT)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout
    assert "0 imports break the layering" in done.stdout


def test_the_public_api_a_type_checker_sees_is_the_one_users_get():
    """tfseq's names load lazily; its TYPE_CHECKING block must name the same objects, no more, no less."""
    import ast

    import tfseq

    tree = ast.parse((ROOT / "tfseq" / "__init__.py").read_text())
    typed = {alias.asname: node.module for block in tree.body if isinstance(block, ast.If)
             for node in block.body if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert set(typed) == set(tfseq._EXPORTS)
    for name, module in typed.items():
        assert getattr(tfseq, name) is getattr(__import__(module, fromlist=[name]), name), name


def test_nothing_below_the_workflows_imports_them():
    """The RUN workflows sit above data, models, training, export and tuning: none of those imports them."""
    import ast

    below = ("data", "models", "training", "export", "tuning", "analysis")
    broken = []
    for path in sorted((ROOT / "tfseq").rglob("*.py")):
        part = path.relative_to(ROOT / "tfseq").parts[0]
        if part not in below:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            broken += [f"{path.relative_to(ROOT)}:{node.lineno} imports {n}" for n in names
                       if n == "tfseq.workflows" or n.startswith("tfseq.workflows.")]
    assert broken == []
