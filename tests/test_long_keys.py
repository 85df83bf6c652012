"""Keys of any allowed length and script are stored, counted, exported and resolved alike on
every database: a key of MAX_KEY_LENGTH 4-byte characters is 4 KB of UTF-8, more than a
PostgreSQL B-tree index entry holds (2,704 bytes), so keys are indexed by a digest."""

import random
from urllib.parse import quote

import pytest

from .helpers import aggregate, counts, post, push_body, scrape

LONGEST = 1024  # MAX_KEY_LENGTH's default


# Random characters: PostgreSQL compresses a repeated one below the index limit.
SCRIPTS = {"emoji": (0x1F300, 0x1F64F), "cjk": (0x4E00, 0x9FFF), "latin": (0x61, 0x7A)}


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_key_of_the_longest_length_in_any_script_is_counted_and_resolved(client, script):
    first, last = SCRIPTS[script]
    key = "".join(chr(random.randint(first, last)) for _ in range(LONGEST))
    for total in (2, 2, 3):
        response = post(client, push_body(aggregate(key, total), target_uuid="p"))
        assert response.status_code == 200, response.data
    post(client, push_body(aggregate(key[:-1], 1), target_uuid="p"))  # a prefix: another key
    assert counts(scrape(client)) == {key: 3, key[:-1]: 1}
    assert client.delete(f"/-/errors/{quote(key, safe='')}").status_code == 200
    assert counts(scrape(client)) == {key[:-1]: 1}
