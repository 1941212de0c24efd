"""
detrack-export: write a model bundle as an ONNX file the onnxruntime backend runs.

The file is fixed to one set-up (decoder layers, candidate elimination) and to batch 1, and
carries its crop sizes in its metadata. ``--check`` runs PyTorch and onnxruntime on the same
random crops and fails (exit 1) unless they agree.
"""

import argparse
import pathlib
import sys
from typing import Any, Dict, List, Optional

from detrack_model.cli.common import positive_int, refuse_overwrite
from detrack_model.export.bundle import bundle_paths, BundleError, load_bundle
from detrack_model.export.onnx import export_onnx
from detrack_model.modeling import DETRack
from detrack_model.tracking.backends.torch_backend import TorchBackend
import numpy as np
import torch

# Agreement asked of --check, as numpy's allclose: |onnx - torch| <= ATOL + RTOL * |torch|.
RTOL, ATOL = 1e-3, 1e-5
CHECK_PAIRS = 8


def compare_backends(model: DETRack, path: pathlib.Path, num_layers: Optional[int],
                     candidate_elimination: bool, pairs: int = CHECK_PAIRS,
                     seed: int = 0) -> Dict[str, Any]:
    """
    Run both backends on ``pairs`` random crop pairs; return the largest differences.

    Keys: ``box_rel`` (max |onnx - torch| / |torch| over box coordinates), ``box_abs``,
    ``score_abs``, ``cells_mismatch`` (pairs whose cells differ), ``pairs`` and ``ok`` (True
    when boxes and scores are within RTOL/ATOL and every cell matches).
    """
    from detrack_model.tracking.backends.onnxruntime_backend import OnnxBackend

    onnx_backend = OnnxBackend(path)
    torch_backend = TorchBackend(model, torch.device('cpu'), num_layers, candidate_elimination)
    rng = np.random.default_rng(seed)
    worst: Dict[str, Any] = {'box_rel': 0.0, 'box_abs': 0.0, 'score_abs': 0.0,
                             'cells_mismatch': 0, 'pairs': pairs}
    ok = True
    try:
        for _ in range(pairs):
            template = rng.integers(0, 256, (onnx_backend.template_size,) * 2 + (3,), np.uint8)
            search = rng.integers(0, 256, (onnx_backend.search_size,) * 2 + (3,), np.uint8)
            results = []
            for backend in (onnx_backend, torch_backend):
                backend.set_template(template)
                results.append(backend.infer(search))
            (boxes, scores, cells), (ref_boxes, ref_scores, ref_cells) = results
            box_diff = np.abs(boxes - ref_boxes)
            tiny = np.finfo(np.float32).tiny
            worst['box_rel'] = max(worst['box_rel'],
                                   float(np.max(box_diff / np.maximum(np.abs(ref_boxes), tiny))))
            worst['box_abs'] = max(worst['box_abs'], float(box_diff.max()))
            worst['score_abs'] = max(worst['score_abs'],
                                     float(np.abs(scores - ref_scores).max()))
            same_cells = np.array_equal(cells, ref_cells)
            worst['cells_mismatch'] += 0 if same_cells else 1
            ok = ok and same_cells and np.allclose(boxes, ref_boxes, RTOL, ATOL) and \
                np.allclose(scores, ref_scores, RTOL, ATOL)
    finally:
        onnx_backend.release()
        torch_backend.release()
    worst['ok'] = bool(ok)
    return worst


def main(argv: Optional[List[str]] = None) -> int:
    """Export one bundle; with --check, also compare onnxruntime against PyTorch."""
    parser = argparse.ArgumentParser(prog='detrack-export', description=__doc__.strip())
    parser.add_argument('--model', required=True,
                        help='model bundle (<stem>, <stem>.safetensors or <stem>.yaml)')
    parser.add_argument('--output', required=True, help='ONNX file to write')
    parser.add_argument('--decoder-layers', type=positive_int,
                        help='decoder layers the graph runs (1..L, default all)')
    parser.add_argument('--no-candidate-elimination', action='store_true',
                        help='keep every search token in the encoder')
    parser.add_argument('--opset', type=positive_int,
                        help='ONNX opset (default 17; 18 with --dynamo)')
    parser.add_argument('--dynamo', action='store_true',
                        help='use the torch.export-based exporter (opset 18 or newer)')
    parser.add_argument('--check', action='store_true',
                        help='compare onnxruntime with PyTorch on random crops')
    parser.add_argument('--exact-heads', action='store_true',
                        help='pruned encoders: keep every head at its own width (gathers in '
                             'the graph) instead of padding heads to one width per block')
    args = parser.parse_args(argv)
    candidate_elimination = not args.no_candidate_elimination
    opset = args.opset if args.opset is not None else 18 if args.dynamo else 17
    try:
        refuse_overwrite(args.output, bundle_paths(args.model))
        model = load_bundle(args.model)
        path = export_onnx(model, args.output, args.decoder_layers, candidate_elimination,
                           opset, dynamo=args.dynamo, pad_heads=not args.exact_heads)
    except (BundleError, ValueError, OSError) as error:
        parser.error(str(error))
    config = model.config
    layers = ('none (conv head)' if config.head == 'conv'
              else f'{args.decoder_layers or config.decoder.layers}/{config.decoder.layers}')
    print(f'wrote {path} ({path.stat().st_size / 1e6:.1f} MB, opset {opset}): {config.name} '
          f'{config.template_size}/{config.search_size}, {config.head} head, decoder layers '
          f'{layers}, candidate elimination {"on" if candidate_elimination else "off"}')
    if not args.check:
        return 0
    result = compare_backends(model, path, args.decoder_layers, candidate_elimination)
    print(f'check: max relative box difference {result["box_rel"]:.2e} (absolute '
          f'{result["box_abs"]:.2e}), max score difference {result["score_abs"]:.2e}, '
          f'cells differ in {result["cells_mismatch"]} of {result["pairs"]} pairs: '
          f'{"OK" if result["ok"] else f"FAILED (rtol {RTOL}, atol {ATOL})"}')
    return 0 if result['ok'] else 1


if __name__ == '__main__':
    sys.exit(main())
