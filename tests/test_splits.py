from heart_sr_tf.data.acdc import GROUPS
from heart_sr_tf.data.splits import split_patients


def _patients(n_per_group=20, testing=()):
    out = []
    for g, group in enumerate(GROUPS):
        for k in range(n_per_group):
            pid = f"patient{g * n_per_group + k + 1:03d}"
            out.append((pid, group, "testing" if pid in testing else "training"))
    return out


def test_disjoint_complete_deterministic_and_stratified():
    patients = _patients()
    a = split_patients(patients, seed=3)
    assert a == split_patients(list(reversed(patients)), seed=3)
    assert a != split_patients(patients, seed=4)
    assert set(a) == {p for p, _, _ in patients}
    counts = {s: sum(v == s for v in a.values()) for s in ("train", "validation", "test")}
    assert counts == {"train": 70, "validation": 15, "test": 15}
    group = {p: g for p, g, _ in patients}
    for split in ("validation", "test"):
        per_group = [sum(1 for p, s in a.items() if s == split and group[p] == g) for g in GROUPS]
        assert min(per_group) == 3 and max(per_group) == 3


def test_testing_folder_is_the_test_split():
    testing = {"patient001", "patient050"}
    a = split_patients(_patients(testing=testing), seed=0)
    assert {p for p, s in a.items() if s == "test"} == testing
    assert sum(v == "validation" for v in a.values()) == 15


def test_tiny_sets_still_get_every_split():
    a = split_patients(_patients(1), seed=0)
    assert sorted(a.values()).count("train") == 3
    assert set(a.values()) == {"train", "validation", "test"}
