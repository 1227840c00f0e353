import pytest

from mediasift.identity import ObjectVersion, normalize_etag, object_id, parse_s3_uri, version_hash


@pytest.mark.parametrize(("raw", "normal"), [
    ('"9B2CF535F27731C974343645A3985328"', "9b2cf535f27731c974343645a3985328"),
    ("bb676e14c2f339524aed698bd153f741-3", "bb676e14c2f339524aed698bd153f741-3"),
    (None, ""),
])
def test_etags_are_normalised(raw, normal):
    assert normalize_etag(raw) == normal


@pytest.mark.parametrize("key", ["../../etc/passwd", "a\nb", "x" * 2000, "ünï code/ with spaces+%.mp4", "/"])
def test_partition_keys_are_short_hex_whatever_the_key(key):
    h = version_hash("media", key, "abc")
    assert len(h) == 16 and all(c in "0123456789abcdef" for c in h)


def test_version_hash_distinguishes_etag_and_version_id_but_not_quoting():
    base = version_hash("b", "k", "abc")
    assert version_hash("b", "k", '"ABC"') == base
    assert version_hash("b", "k", "abd") != base
    assert version_hash("b", "k", "abc", "v1") != base
    assert version_hash("b", "k2", "abc") != base
    assert object_id("b", "k") != object_id("b2", "k")


def test_object_version_lineage_fields_with_normalised_etag():
    v = ObjectVersion("media", "a/b.mp4", '"ETAG"')
    assert v.lineage() == {"bucket": "media", "key": "a/b.mp4", "etag": "etag", "version_id": None,
                           "object_id": object_id("media", "a/b.mp4")}
    assert v.version_hash == version_hash("media", "a/b.mp4", "etag")


@pytest.mark.parametrize("bad", ["media/key", "s3://", "s3://bucket", "s3:///key"])
def test_bad_s3_uris_are_refused(bad):
    with pytest.raises(ValueError, match="s3://BUCKET/KEY"):
        parse_s3_uri(bad)


def test_s3_uri_keeps_the_key_whole():
    assert parse_s3_uri("s3://media/a/../b c+d") == ("media", "a/../b c+d")
