

def test_recipe_differences_name_each_setting_the_two_runs_do_not_share():
    import kr_utils
    from kr_utils import analysis

    fm, mnist = kr_utils.get_config("cpu", dataset="fashion-mnist"), kr_utils.get_config("cpu")
    diffs = analysis.recipe_differences(fm, mnist)
    assert f"teacher epochs {fm.teacher.epochs} (MNIST {mnist.teacher.epochs})" in diffs
    assert all("threshold" not in d for d in diffs)  # a shared setting is not listed
    assert analysis.recipe_differences(mnist, mnist) == []
