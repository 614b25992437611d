"""ApiVersions: the advertised table, and KIP-511's rule for a request at a
version the broker does not know: answer in v0 format with
UNSUPPORTED_VERSION (35) and the ApiVersions range, so the client can retry
at a version both sides speak."""

import pytest

import kafka_wire

UNSUPPORTED_VERSION = 35
API_VERSIONS = 18

# The APIs and version ranges the broker serves (protocol/src/api.rs).
SERVED = {
    0: (3, 11),    # Produce (advertised from 0; see api.rs)
    1: (4, 12),    # Fetch
    2: (1, 7),     # ListOffsets
    3: (0, 12),    # Metadata
    18: (0, 3),    # ApiVersions
    19: None,      # CreateTopics
    20: None,      # DeleteTopics
    21: None,      # DeleteRecords
    22: None,      # InitProducerId
    23: None,      # OffsetForLeaderEpoch
    32: None,      # DescribeConfigs
    33: None,      # AlterConfigs
    37: None,      # CreatePartitions
    44: None,      # IncrementalAlterConfigs
    60: None,      # DescribeCluster
}


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_api_versions_lists_served_apis(broker, version):
    with kafka_wire.Connection(broker.address) as conn:
        r = kafka_wire.api_versions(conn, version)
    assert r.error_code == 0
    missing = sorted(set(SERVED) - set(r.api_keys))
    assert not missing, f"v{version}: APIs not advertised: {missing}"
    for key, (lo, hi) in r.api_keys.items():
        assert 0 <= lo <= hi, f"api {key}: range {lo}..{hi}"
    for key, served in SERVED.items():
        if served is not None:
            lo, hi = r.api_keys[key]
            assert lo <= served[0] and hi >= served[1], f"api {key}: advertised {lo}..{hi}, serves {served}"
    # Produce v3 and Fetch v4 together: librdkafka's condition for RecordBatch v2.
    assert r.api_keys[0][1] >= 3 and r.api_keys[1][1] >= 4


@pytest.mark.parametrize("version", [4, 99, 32767])
def test_api_versions_too_new_gets_v0_error_answer(broker, version):
    with kafka_wire.Connection(broker.address) as conn:
        r = kafka_wire.api_versions(conn, version)
        assert r.error_code == UNSUPPORTED_VERSION, f"v{version}: error {r.error_code}, want 35"
        assert API_VERSIONS in r.api_keys, f"v{version}: the answer does not list ApiVersions: {r.api_keys}"
        assert r.api_keys[API_VERSIONS] == (0, 3), r.api_keys[API_VERSIONS]
        # The client's retry at the newest common version works on the same connection.
        again = kafka_wire.api_versions(conn, 3)
        assert again.error_code == 0 and set(SERVED) <= set(again.api_keys)
