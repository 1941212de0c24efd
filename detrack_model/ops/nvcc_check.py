"""
Compile-check the deformable-attention CUDA kernels with nvcc alone.

``deform_attn_cuda.cu`` includes CUDA headers only, so a CUDA toolkit compiles it to an
object file on any machine, GPU or not; the tests do this for every architecture we ship so a
kernel that no longer compiles is caught where no GPU would otherwise ever build it. The
macros PyTorch adds to every CUDA build (no implicit half/bfloat16 conversions) are set too.

Run by hand: ``python -m detrack_model.ops.nvcc_check [sm_80 sm_90 ...]``.
"""

from dataclasses import dataclass
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
from typing import List, Optional, Sequence

KERNEL_SOURCE = pathlib.Path(__file__).resolve().parent / 'csrc' / 'deform_attn_cuda.cu'
DEFAULT_ARCHS = ('sm_80', 'sm_90')
# What torch.utils.cpp_extension passes to nvcc, so the check sees the build's restrictions.
TORCH_CUDA_DEFINES = (
    '-D__CUDA_NO_HALF_OPERATORS__',
    '-D__CUDA_NO_HALF_CONVERSIONS__',
    '-D__CUDA_NO_BFLOAT16_CONVERSIONS__',
    '-D__CUDA_NO_HALF2_OPERATORS__',
)


@dataclass
class CompileResult:
    """Outcome of one nvcc run."""

    arch: str
    command: List[str]
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        """Say whether nvcc produced the object file."""
        return self.returncode == 0


def find_nvcc() -> Optional[str]:
    """Return the nvcc to use: on PATH, under $CUDA_HOME or $CUDA_PATH, or /usr/local/cuda."""
    found = shutil.which('nvcc')
    if found:
        return found
    candidates = [os.path.join(os.environ[var], 'bin', 'nvcc')
                  for var in ('CUDA_HOME', 'CUDA_PATH') if os.environ.get(var)]
    candidates.append('/usr/local/cuda/bin/nvcc')
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def find_cuda_include(nvcc: Optional[str] = None) -> Optional[pathlib.Path]:
    """Return the CUDA toolkit's include folder (the one holding cuda_fp16.h), if any."""
    roots = [os.environ.get('CUDA_HOME'), os.environ.get('CUDA_PATH')]
    nvcc = nvcc or find_nvcc()
    if nvcc:
        roots.append(str(pathlib.Path(os.path.realpath(nvcc)).parent.parent))
    roots.append('/usr/local/cuda')
    for root in filter(None, roots):
        include = pathlib.Path(root) / 'include'
        if (include / 'cuda_fp16.h').is_file():
            return include
    if nvcc:
        # nvcc may be a wrapper script; its dry run names the include folder it really uses.
        try:
            done = subprocess.run([nvcc, '--dryrun', '-c', '-x', 'cu', os.devnull, '-o',
                                   os.devnull], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, timeout=60, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        for folder in re.findall(r'INCLUDES="-I([^"]+?)"', done.stdout):
            include = pathlib.Path(folder.strip())
            if (include / 'cuda_fp16.h').is_file():
                return include.resolve()
    return None


def compile_kernels(arch: str, nvcc: Optional[str] = None,
                    source: pathlib.Path = KERNEL_SOURCE, std: str = 'c++17',
                    timeout_s: float = 600.0) -> CompileResult:
    """
    Compile ``source`` to an object file for ``arch`` (e.g. ``'sm_90'``) in a temporary folder.

    Raises ``FileNotFoundError`` when no nvcc is found; compiler errors are returned in the
    result, not raised.
    """
    nvcc = nvcc or find_nvcc()
    if nvcc is None:
        raise FileNotFoundError('nvcc (CUDA toolkit) not installed')
    with tempfile.TemporaryDirectory(prefix='detrack_nvcc_') as folder:
        command = [nvcc, '-c', str(source), f'-std={std}', f'-arch={arch}', '-O3',
                   '-Xcompiler', '-Wall', *TORCH_CUDA_DEFINES,
                   '-o', os.path.join(folder, f'deform_attn_cuda_{arch}.o')]
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=timeout_s, check=False)
    return CompileResult(arch, command, done.returncode, done.stdout)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Compile for each architecture given (default sm_80 and sm_90); 0 if all compiled."""
    archs = list(argv if argv is not None else sys.argv[1:]) or list(DEFAULT_ARCHS)
    try:
        results = [compile_kernels(arch) for arch in archs]
    except FileNotFoundError as error:
        print(error, file=sys.stderr)
        return 2
    for result in results:
        print(f"{result.arch}: {'ok' if result.ok else 'FAILED'}")
        if result.output.strip():
            print(result.output.rstrip())
    return 0 if all(result.ok for result in results) else 1


if __name__ == '__main__':
    sys.exit(main())
