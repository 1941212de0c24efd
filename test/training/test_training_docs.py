"""docs/training.md's stage table: bundles on this machine, and figures carried for the rest."""

import pathlib

from tools import make_training_docs

ROOT = pathlib.Path(__file__).resolve().parents[2]
PARENT = ROOT / 'models' / 'detrack_tiny_pool'


def test_a_stage_without_its_bundle_keeps_the_figures_of_the_page_before(tmp_path, monkeypatch):
    """Rows read from the bundle where it is here; marked earlier figures; else 'not here'."""
    monkeypatch.setattr(make_training_docs, 'STAGES', (
        ('parent', 'training/synthetic_cpu_pool.yaml', PARENT),
        ('gone', 'training/prune_tiny_sparsity.yaml', tmp_path / 'missing' / 'model'),
        ('never measured', 'training/prune_tiny_finetune.yaml', tmp_path / 'other' / 'model')))
    previous = tmp_path / 'training.md'
    previous.write_text('| stage | recipe | steps | pairs | wall time (min) |\n'
                        '|:--|:--|--:|--:|--:|\n'
                        '| gone | `training/prune_tiny_sparsity.yaml` | 768 | 49152 | 23.0 * |\n')
    lines = make_training_docs.stage_table(previous)
    parent = make_training_docs.bundle_summary(PARENT)
    assert lines[2] == (f'| parent | `training/synthetic_cpu_pool.yaml` | {parent["steps"]} | '
                        f'{parent["pairs"]} | {parent["wall_s"] / 60:.1f} |')
    assert lines[3] == '| gone | `training/prune_tiny_sparsity.yaml` | 768 | 49152 | 23.0 * |'
    assert lines[4] == f'| **all stages** | | | | **{parent["wall_s"] / 60 + 23.0:.1f}** |'
    assert any(line.startswith('\\* Its bundle is not on this machine') for line in lines)
    assert lines[-1].endswith('so not in the total: never measured.')
    # The page it writes reads back the same: carried figures survive another regeneration.
    previous.write_text('\n'.join(lines))
    assert make_training_docs.recorded_stages(previous)[
        'training/prune_tiny_sparsity.yaml'] == ['768', '49152', '23.0']
    assert make_training_docs.stage_table(tmp_path / 'absent.md')[3].startswith('| **all')
