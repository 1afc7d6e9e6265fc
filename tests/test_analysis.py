from kr_utils import analysis


def test_recipe_differences_name_each_setting_the_two_runs_do_not_share():
    import kr_utils

    fm, mnist = kr_utils.get_config("cpu", dataset="fashion-mnist"), kr_utils.get_config("cpu")
    diffs = analysis.recipe_differences(fm, mnist)
    assert f"teacher epochs {fm.teacher.epochs} (MNIST {mnist.teacher.epochs})" in diffs
    assert all("threshold" not in d for d in diffs)  # a shared setting is not listed
    assert analysis.recipe_differences(mnist, mnist) == []


def test_the_background_reading_says_which_is_not_black():
    assert analysis.background_reading(0.0, 3.3) == "both black"
    assert "synthetic" in analysis.background_reading(0.0, 127.9) and "not black" in analysis.background_reading(0.0, 127.9)
    assert "real" in analysis.background_reading(40.0, 1.0)
    assert analysis.background_reading(40.0, 127.0) == "neither is black"
