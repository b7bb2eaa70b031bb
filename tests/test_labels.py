"""Precision labels sort naturally in legends and tables (quest_lab.quant.specs.label_sort_key)."""
from quest_lab.quant.specs import label_sort_key


def test_labels_sort_base_first_bits_wide_to_narrow_groups_numerically() -> None:
    labels = ["absmax:w4a4", "absmax:w4a4g256", "absmax:w4a4g32", "absmax:w4a4g16", "bf16", "absmax:w4a16",
              "quest:w2a2", "quest:w8a8", "quartet:w4a4b4", "quartet:w4a4"]
    assert sorted(labels, key=label_sort_key) == [
        "bf16", "absmax:w4a16", "absmax:w4a4g16", "absmax:w4a4g32", "absmax:w4a4g256", "absmax:w4a4",
        "quartet:w4a4", "quartet:w4a4b4", "quest:w8a8", "quest:w2a2"]


def test_an_unparseable_label_sorts_last_instead_of_raising() -> None:
    assert sorted(["odd label", "bf16", "quest:w4a4"], key=label_sort_key) == ["bf16", "quest:w4a4", "odd label"]
