"""The precision a run trained in, read from its train.py ``args.yaml`` as every trainer writes it."""
import pytest
import yaml

from timm_ignore.runs import read_run_args, run_precision


@pytest.mark.parametrize('args, precision', [
    ({'amp': True, 'amp_dtype': 'bfloat16'}, 'bfloat16'),  # the zoo's recipe on a CPU with bfloat16 hardware
    ({'amp': False, 'amp_dtype': 'bfloat16'}, 'float32'),  # the same recipe with --set amp=false
    ({'amp': True}, 'float16'),  # timm's train.py --amp, whose --amp-dtype defaults to float16
    ({'amp': True, 'amp_dtype': None}, 'float16'),
    ({'epochs': 2}, None),  # a run whose args do not say
])
def test_run_precision(args, precision):
    assert run_precision(args) == precision


def test_run_precision_of_a_run_folder(tmp_path):
    (tmp_path / 'args.yaml').write_text(yaml.safe_dump({'amp': False, 'amp_dtype': 'bfloat16', 'seed': 0}))
    assert run_precision(read_run_args(tmp_path)) == 'float32'
    assert run_precision(read_run_args(tmp_path / 'missing')) is None
