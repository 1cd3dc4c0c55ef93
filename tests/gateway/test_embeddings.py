"""Embeddings: 1024 floats of unit norm whatever the upstream returns, float and base64."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from tests.fakes.upstream import Fault, embedding_vector
from wits import ledger

pytestmark = pytest.mark.django_db(transaction=True)


def test_upstream_vectors_are_cut_to_1024_and_normalised(oai, account, catalogue, fake):
    resp = oai.embeddings.create(
        model=catalogue.embed, input=["one two three", "four five"], encoding_format="float"
    )

    assert [d.index for d in resp.data] == [0, 1]
    for item, text in zip(resp.data, ["one two three", "four five"], strict=True):
        vector = np.array(item.embedding)
        assert vector.shape == (1024,)
        assert abs(np.linalg.norm(vector) - 1) < 1e-6
        raw = np.array(embedding_vector(text, 1024))
        assert np.allclose(vector, raw / np.linalg.norm(raw), atol=1e-6)
    assert (resp.usage.prompt_tokens, resp.usage.total_tokens) == (5, 5)
    sent = fake.requests[-1].body
    assert sent["dimensions"] == 1024
    assert sent["input"] == ["one two three", "four five"]
    assert sent["encoding_format"] == "base64"
    assert ledger.balance(user_id=account.user.id) == ledger.Balance(1_000_000 - 5, 0, 5)


def test_a_provider_answering_float_lists_to_base64_gives_the_same_vectors(
    oai, account, catalogue, fake
):
    # Given the vectors of a provider that honours encoding_format=base64
    inputs = ["one two three", "four five"]
    honoured = oai.embeddings.create(model=catalogue.embed, input=inputs, encoding_format="float")

    # When the provider ignores it and sends float lists
    fake.set_fault(Fault.FLOAT_EMBEDDINGS)
    try:
        ignored = oai.embeddings.create(
            model=catalogue.embed, input=inputs, encoding_format="float"
        )
    finally:
        fake.set_fault(None)

    # Then the client gets the very same floats and is billed the same
    assert fake.requests[-1].body["encoding_format"] == "base64"
    assert isinstance(fake.requests[-1].body["input"], list)
    assert [d.embedding for d in ignored.data] == [d.embedding for d in honoured.data]
    assert ledger.balance(user_id=account.user.id) == ledger.Balance(1_000_000 - 10, 0, 10)


def test_base64_is_what_the_sdk_asks_for_by_default(oai, catalogue):
    resp = oai.embeddings.create(model=catalogue.embed, input="alpha beta")
    vector = np.array(resp.data[0].embedding)
    assert vector.shape == (1024,)
    assert abs(np.linalg.norm(vector) - 1) < 1e-6


def test_base64_encoding_is_little_endian_float32(live_server, account, catalogue):
    import requests

    body = requests.post(
        live_server.url + "/v1/embeddings",
        json={"model": catalogue.embed, "input": "alpha", "encoding_format": "base64"},
        headers={"Authorization": f"Bearer {account.key}"},
        timeout=10,
    ).json()
    vector = np.frombuffer(base64.b64decode(body["data"][0]["embedding"]), dtype="<f4")
    assert vector.shape == (1024,)
    assert abs(float(np.linalg.norm(vector)) - 1) < 1e-5


def test_local_embeddings_are_semantic(oai, catalogue):
    resp = oai.embeddings.create(
        model=catalogue.local_embed,
        input=["Hôm nay trời đẹp quá", "The weather is lovely today", "Quarterly tax filing rules"],
        encoding_format="float",
    )
    a, b, c = (np.array(d.embedding) for d in resp.data)
    assert all(v.shape == (1024,) for v in (a, b, c))
    assert a @ b > a @ c
    assert resp.model_extra["x_clawwits"]["provider"] == "local-test"


def test_auto_picks_the_ranked_embedding_model(oai, catalogue, fake):
    resp = oai.embeddings.create(model="auto", input="x y", encoding_format="float")
    assert resp.model == catalogue.embed
    assert fake.requests[-1].path == "/v1/embeddings"


def test_wrong_dimensions_and_token_arrays_are_400(live_server, account, catalogue):
    import requests

    for body, param in [
        ({"input": "x", "dimensions": 512}, "dimensions"),
        ({"input": [[1, 2, 3]]}, "input[0]"),
        ({"input": []}, "input"),
        ({"input": "x", "encoding_format": "hex"}, "encoding_format"),
    ]:
        response = requests.post(
            live_server.url + "/v1/embeddings",
            json={"model": catalogue.embed, **body},
            headers={"Authorization": f"Bearer {account.key}"},
            timeout=10,
        )
        assert response.status_code == 400, body
        assert response.json()["error"]["param"] == param
    assert ledger.balance(user_id=account.user.id) == ledger.Balance(1_000_000, 0, 0)


def test_float_vectors_are_the_base64_float32s_printed_in_their_shortest_digits(
    live_server, account, catalogue
):
    import json
    import re

    import requests

    def create(encoding: str) -> requests.Response:
        return requests.post(
            live_server.url + "/v1/embeddings",
            json={
                "model": catalogue.embed,
                "input": ["alpha", "beta"],
                "encoding_format": encoding,
            },
            headers={"Authorization": f"Bearer {account.key}"},
            timeout=10,
        )

    # Given the same inputs embedded as float lists and as base64
    as_float, as_base64 = create("float"), create("base64")
    assert as_float.headers["Content-Type"] == "application/json"
    floats, packed = as_float.json(), as_base64.json()

    # Then the float lists read back as exactly the float32s base64 carries
    for item, other in zip(floats["data"], packed["data"], strict=True):
        assert item["object"] == "embedding"
        assert item["index"] == other["index"]
        exact = np.frombuffer(base64.b64decode(other["embedding"]), dtype="<f4")
        assert np.array_equal(np.array(item["embedding"], dtype=np.float32), exact)

    # each printed in the fewest significant digits that read back as that float32 (numpy's
    # shortest float32 repr), 9 at most as in OpenAI's float32 embeddings, not the 17 of a
    # float64's repr
    def digits(number: str) -> str:
        return number.lstrip("-").split("e")[0].replace(".", "").strip("0")

    arrays = re.findall(r'"embedding":\[([^\]]*)\]', as_float.text)
    numbers = ",".join(arrays).split(",")
    assert (len(arrays), len(numbers)) == (2, 2 * 1024)
    shortest = [np.format_float_scientific(np.float32(number), unique=True) for number in numbers]
    assert [digits(n) for n in numbers] == [digits(n) for n in shortest]
    assert max(len(digits(n)) for n in numbers) <= 9
    # and the rest of the body is as before
    assert floats["object"] == "list"
    assert floats["model"] == catalogue.embed
    assert floats["usage"] == packed["usage"]
    assert set(floats["x_clawwits"]) == set(json.loads(as_base64.text)["x_clawwits"])
