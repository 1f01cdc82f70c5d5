"""The compatibility step runs in fresh interpreters: it must act before torchvision is first imported."""
import subprocess
import sys
import textwrap

from crack_utils import torchvision_compat


def run_fresh(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


def test_smp_imports_and_status_matches_the_extension():
    out = run_fresh("""
        from crack_utils.torchvision_compat import ensure_torchvision_importable, _extension_path, _load_extension
        path = _extension_path()
        loads = path is not None and _load_extension(path)
        status = ensure_torchvision_importable()
        import segmentation_models_pytorch as smp, torchvision
        print(status, loads, torchvision.extension._has_ops())
    """)
    status, loads, has_ops = out.split()[-3:]
    # Active only where the real extension does not load; where it loads torchvision uses it.
    assert status == ("native" if loads == "True" else "shim")
    assert has_ops == loads


def test_shim_declares_schemas_without_kernels():
    out = run_fresh("""
        import torch
        from crack_utils.torchvision_compat import ensure_torchvision_importable
        print(ensure_torchvision_importable(load_extension=lambda path: False))
        import torchvision
        try:
            torchvision.ops.nms(torch.rand(3, 4), torch.rand(3), 0.5)
            print("nms-ran")
        except RuntimeError as err:
            print("nms-unavailable")
    """)
    lines = out.splitlines()
    if lines[0] == "shim":
        assert lines[-1] == "nms-unavailable"  # a clear error, never a silent wrong answer
    else:  # the real extension was already registered by torch (native build): nothing to shim
        assert lines[0] == "native"


def test_idempotent_and_respects_an_earlier_import():
    out = run_fresh("""
        from crack_utils.torchvision_compat import ensure_torchvision_importable
        first = ensure_torchvision_importable()
        print(first == ensure_torchvision_importable())
    """)
    assert out == "True"
    out = run_fresh("""
        import sys, types
        sys.modules["torchvision"] = types.ModuleType("torchvision")
        from crack_utils.torchvision_compat import ensure_torchvision_importable
        print(ensure_torchvision_importable())
    """)
    assert out == "already-imported"


def test_without_the_step_the_cpu_machine_fails_as_documented():
    path = torchvision_compat._extension_path()
    code = "import torchvision"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    if result.returncode != 0:  # CPU torch next to a CUDA torchvision: the documented failure
        assert "torchvision::nms does not exist" in result.stderr
    else:  # a matching torchvision (e.g. the GPU image): the real extension must be there
        assert path is not None
