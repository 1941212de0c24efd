"""
Export a bundle to ONNX in a child process, for callers that must keep their own pace.

A running tracker that needs a graph of another decoder depth cannot export it itself: the
export is Python work that holds the interpreter lock for a second or more, and the tracking
thread of the same process would stall with it. :func:`export_in_subprocess` runs this module
as ``python -m detrack_model.export.worker`` instead, on one CPU thread, and can be cancelled.
"""

import argparse
import os
import pathlib
import subprocess
import sys
import threading
from typing import List, Optional, Union

PathLike = Union[str, pathlib.Path]
POLL_SEC = 0.05
# CPU priority steps the export gives up (see export_in_subprocess).
NICE = 5


class ExportCancelled(RuntimeError):
    """The export was cancelled before it finished; nothing was written."""


def export_in_subprocess(bundle: PathLike, output: PathLike, num_layers: Optional[int],
                         candidate_elimination: bool = True,
                         cancel: Optional[threading.Event] = None,
                         timeout_s: float = 600.0, nice: int = NICE) -> pathlib.Path:
    """
    Write ``bundle`` as the ONNX file ``output`` from a child process; return ``output``.

    The file appears complete or not at all (export_onnx writes beside it and renames). Raise
    ExportCancelled when ``cancel`` is set before the child finishes (the child is killed),
    and RuntimeError with the child's last output lines when it fails or runs past
    ``timeout_s``. The child runs ``nice`` steps below this process's CPU priority: on a busy
    machine the caller's tracking wins, and the export waits.
    """
    output = pathlib.Path(output)
    partial = output.with_name(output.name + '.partial')
    command = [sys.executable, '-m', 'detrack_model.export.worker', str(bundle), str(output),
               '--nice', str(nice)]
    if num_layers is not None:
        command += ['--decoder-layers', str(num_layers)]
    if not candidate_elimination:
        command.append('--no-candidate-elimination')
    # One thread: the caller's inference keeps the other cores.
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env=env, text=True)
    waited = 0.0
    while True:
        try:
            log, _ = process.communicate(timeout=POLL_SEC)
            break
        except subprocess.TimeoutExpired:
            waited += POLL_SEC
        if (cancel is not None and cancel.is_set()) or waited > timeout_s:
            process.kill()
            process.communicate()
            partial.unlink(missing_ok=True)
            if waited > timeout_s:
                raise RuntimeError(f'exporting {bundle} took over {timeout_s:.0f} s; stopped')
            raise ExportCancelled(f'export of {bundle} cancelled')
    if process.returncode != 0 or not output.is_file():
        tail = ' | '.join(log.strip().splitlines()[-3:])
        raise RuntimeError(f'exporting {bundle} failed (exit {process.returncode}): {tail}')
    return output


def main(argv: Optional[List[str]] = None) -> int:
    """Export one bundle (the child side of export_in_subprocess)."""
    parser = argparse.ArgumentParser(prog='python -m detrack_model.export.worker')
    parser.add_argument('bundle')
    parser.add_argument('output')
    parser.add_argument('--decoder-layers', type=int)
    parser.add_argument('--no-candidate-elimination', action='store_true')
    parser.add_argument('--nice', type=int, default=0,
                        help="lower this process's CPU priority by this much first")
    args = parser.parse_args(argv)
    if args.nice:
        os.nice(args.nice)
    import torch

    from detrack_model.export.bundle import load_bundle
    from detrack_model.export.onnx import export_onnx
    torch.set_num_threads(1)
    export_onnx(load_bundle(args.bundle), args.output, num_layers=args.decoder_layers,
                candidate_elimination=not args.no_candidate_elimination)
    return 0


if __name__ == '__main__':
    sys.exit(main())
