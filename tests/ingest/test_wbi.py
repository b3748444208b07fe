import hashlib

from emopulse.ingest import wbi

IMG, SUB = "7cd084941338484aae1ad9425b84077c", "4932caff0ff746eab6f01bf08b70ac45"


def test_doc_vector_mixin_key() -> None:
    assert wbi.mixin_key(IMG, SUB) == "ea1db124af3c7062474693fa704f4ff8"


def test_doc_vector_w_rid() -> None:
    signed = wbi.sign({"foo": "114", "bar": "514", "zab": 1919810}, IMG, SUB, wts=1702204169)
    assert signed["wts"] == "1702204169"
    assert signed["w_rid"] == "8f6f2b5b3d485fe1886cec6a0be8c5d4"
    assert wbi.verify(signed, IMG, SUB)


def test_values_are_cleaned_and_spaces_encoded_as_percent_20() -> None:
    signed = wbi.sign({"keyword": "a b!'()*c"}, IMG, SUB, wts=1)
    assert signed["keyword"] == "a bc"
    query = "keyword=a%20bc&wts=1"
    assert signed["w_rid"] == hashlib.md5((query + wbi.mixin_key(IMG, SUB)).encode()).hexdigest()


def test_verify_rejects_tampering_wrong_keys_and_missing_fields() -> None:
    signed = wbi.sign({"oid": 1, "pagination_str": '{"offset":""}'}, IMG, SUB, wts=5)
    assert wbi.verify(signed, IMG, SUB)
    assert not wbi.verify({**signed, "oid": "2"}, IMG, SUB)
    assert not wbi.verify(signed, SUB, IMG)
    assert not wbi.verify({k: v for k, v in signed.items() if k != "wts"}, IMG, SUB)
    assert not wbi.verify({k: v for k, v in signed.items() if k != "w_rid"}, IMG, SUB)


def test_keys_from_nav_take_the_file_names() -> None:
    data = {"wbi_img": {"img_url": f"https://i0.hdslb.com/bfs/wbi/{IMG}.png",
                        "sub_url": f"https://i0.hdslb.com/bfs/wbi/{SUB}.png"}}
    assert wbi.keys_from_nav(data) == (IMG, SUB)
