from emopulse.ingest import av2bv, bv2av


def test_known_pair() -> None:
    assert av2bv(170001) == "BV17x411w7KC"
    assert bv2av("BV17x411w7KC") == 170001


def test_round_trip_small_and_large_aids() -> None:
    for aid in (1, 160008, 67829931, 609351579, 1_100_000_000_000):
        assert bv2av(av2bv(aid)) == aid


def test_malformed_bv_id_is_a_value_error_naming_it() -> None:
    import pytest

    for bad in ("BV1", "BV1xx", "hello world!", "BV1O0Il00000"):
        with pytest.raises(ValueError, match="not a BV id"):
            bv2av(bad)
