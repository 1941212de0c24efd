"""docs/training.md's stage table: bundles on this machine, and figures carried for the rest."""

import pathlib

from tools import make_training_docs
import yaml

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


def test_a_pruned_stage_of_another_pipeline_run_is_not_read(tmp_path, monkeypatch):
    """A pruned bundle here with other widths, and the sparsity run it came from, carry."""
    default = yaml.safe_load((ROOT / 'models' / 'detrack_tiny_pool_p25.yaml').read_text())
    default['metadata']['pruning']['source'] = str(tmp_path / 'sparsity' / 'model')
    other = {**default, 'model': {**default['model'], 'encoder': {
        **default['model']['encoder'],
        'mlp_dims': [d + 1 for d in default['model']['encoder']['mlp_dims']]}}}
    unpruned = {**default, 'metadata': {k: v for k, v in default['metadata'].items()
                                        if k != 'pruning'}}
    for name, document in (('sparsity', unpruned), ('child', other), ('same', default),
                           ('default', default)):
        (tmp_path / name).mkdir()
        (tmp_path / name / 'model.yaml').write_text(yaml.safe_dump(document))
    monkeypatch.setattr(make_training_docs, 'STAGES', (
        ('sparsity', 'training/prune_tiny_sparsity.yaml', tmp_path / 'sparsity' / 'model'),
        ('child', 'training/prune_tiny_finetune.yaml', tmp_path / 'child' / 'model'),
        ('same', 'training/prune_tiny_finetune_long.yaml', tmp_path / 'same' / 'model'),
        ('default', 'training/prune_tiny_finetune_absent.yaml', tmp_path / 'default' / 'model')))
    assert make_training_docs.other_pruning_runs() == {tmp_path / 'sparsity' / 'model',
                                                       tmp_path / 'child' / 'model'}
    previous = tmp_path / 'training.md'
    previous.write_text(
        '| sparsity | `training/prune_tiny_sparsity.yaml` | 768 | 49152 | 23.0 * |\n'
        '| child | `training/prune_tiny_finetune.yaml` | 512 | 32768 | 4.3 * |\n')
    lines = make_training_docs.stage_table(previous)
    assert lines[2].endswith('| 768 | 49152 | 23.0 * |')
    assert lines[3].endswith('| 512 | 32768 | 4.3 * |')
    assert not lines[4].endswith('* |') and not lines[5].endswith('* |')
