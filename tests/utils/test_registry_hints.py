"""A config naming a class that does not exist gets advice: the scoped name, or the closest names."""
import pytest
from mmengine.registry import MODELS, DefaultScope

import mae_transfer  # noqa: F401
from mae_transfer.utils.registry_hints import missing_type_hint


def build_error(scope: str, type_name: str) -> KeyError:
    with DefaultScope.overwrite_default_scope(scope), pytest.raises(KeyError) as info:
        MODELS.build(dict(type=type_name))
    return info.value


def test_our_class_without_the_scope_prefix_gets_the_scoped_name():
    hint = missing_type_hint(build_error('mmdet', 'MAEViT'))
    assert "type='mae_transfer.MAEViT'" in hint and 'custom_imports' in hint


def test_a_misspelt_name_gets_close_matches_from_ours_and_the_framework():
    assert 'mae_transfer.SimpleFPN' in missing_type_hint(build_error('mmdet', 'mae_transfer.SimpelFPN'))
    assert 'MaskRCNN' in missing_type_hint(build_error('mmdet', 'MaskRCN'))


def test_unrelated_errors_get_no_hint():
    assert missing_type_hint(KeyError('state_dict')) is None
    assert 'spelled right' in missing_type_hint(build_error('mmdet', 'Zzzzzzz'))
