from pipeline.io.keys import sample_key


def test_safe_ids_are_kept_verbatim():
    assert sample_key("utt_001-a") == "utt_001-a"


def test_unsafe_ids_become_safe_and_distinct():
    ids = ["a/b", "a_b", "a.b", "../../x", "..", "名前", "名字", "a b", "x" * 300]
    keys = [sample_key(i) for i in ids]
    assert len(set(keys)) == len(ids)
    for key in keys:
        assert "/" not in key and "." not in key and key.isascii() and 0 < len(key) <= 100
    assert sample_key("a/b") == sample_key("a/b")  # deterministic
