"""Each worker keeps rendered exports within EXPORT_CACHE_BYTES, least recently scraped
dropped first, and a dropped or outgrown one is rendered again, the same."""

from periskop_pushgateway.export_cache import ExportCache

from .helpers import aggregate, occurrence, post, push_body


def test_the_cache_keeps_the_most_recently_scraped_within_its_bytes():
    cache = ExportCache(max_bytes=10)
    cache.put("a", 1, b"aaaa")
    cache.put("b", 1, b"bbbb")
    assert cache.get("a", 1) == b"aaaa"  # now the most recent
    cache.put("c", 1, b"cccc")
    assert cache.get("b", 1) is None and cache.get("a", 1) and cache.get("c", 1)
    assert cache.get("a", 2) is None  # another version of the group: rendered anew
    cache.put("a", 2, b"a" * 11)  # larger than all of it: not kept
    assert cache.get("a", 2) is None and cache.size == 4


def test_many_large_groups_scraped_stay_within_the_bound(make_app):
    app = make_app(EXPORT_CACHE_BYTES=300_000)
    client = app.test_client()
    store = app.extensions["periskop_pushgateway"].store
    bodies = {}
    for group in range(6):  # about 100 KB of export each
        name = f"big-{group}"
        post(client, push_body(aggregate("k", 1, [occurrence("x" * 100_000)])), group=name)
        bodies[name] = client.get(f"/services/{name}/-/errors").data
        assert store.exports.size <= 300_000
    for name, body in bodies.items():  # the dropped ones are rendered again, the same
        assert client.get(f"/services/{name}/-/errors").data == body
    assert 0 < store.exports.size <= 300_000
