"""Cache entries built by several processes at once: the first complete one is kept, readers never lose it."""

from rlhf_lab.paths import publish_cache_entry


def _built(parent, name, text):
    d = parent / name
    d.mkdir()
    (d / "config.json").write_text(text)
    (d / "weights").write_text(text)
    return d


def test_a_second_build_of_the_same_entry_is_dropped_and_the_first_kept(tmp_path):
    final = tmp_path / "model"
    publish_cache_entry(_built(tmp_path, ".model.a", "first"), final)
    late = _built(tmp_path, ".model.b", "second")
    publish_cache_entry(late, final)
    assert (final / "weights").read_text() == "first"
    assert not late.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_leftover_without_its_complete_file_is_replaced(tmp_path):
    final = tmp_path / "model"
    final.mkdir()
    (final / "weights").write_text("half")  # an entry some older code left unfinished
    publish_cache_entry(_built(tmp_path, ".model.a", "new"), final)
    assert (final / "config.json").read_text() == "new" and (final / "weights").read_text() == "new"
