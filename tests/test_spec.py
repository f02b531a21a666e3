import pytest

from fastkd.pipelines.spec import make_spec, parse_names


def test_composition_is_canonical():
    assert parse_names("mixup+crop_flip") == ("crop_flip", "mixup")
    s = make_spec("cutmix+cutout+crop_flip")
    assert s.crop_flip and s.cutout and s.mix == "cutmix" and s.name == "crop_flip+cutout+cutmix"
    assert make_spec("none").name == "none"


@pytest.mark.parametrize("bad,msg", [("mixpu", "unknown transform"), ("mixup+cutmix", "at most one mixing"),
                                     ("cutout+cutout", "repeated"), ("", "unknown")])
def test_bad_specs_name_the_problem(bad, msg):
    with pytest.raises(ValueError, match=msg):
        parse_names(bad)


def test_bad_parameters_name_the_key():
    with pytest.raises(ValueError, match="aug.cutmix_prob"):
        make_spec("cutmix", cutmix_prob=1.5)
