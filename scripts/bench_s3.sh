#!/usr/bin/env bash
# What an S3 object's lease costs (SPEC §7): the lease writes (PUTs of the lease: the take,
# progress, renewals) and report segments one daemon makes for one object, against its rows
# and the creates it took, for Repsly and Plannr `store` objects on a fast CRM and on a slow,
# rate-limited one. A real daemon against moto_server (`python3 -m pip install 'moto[server]'`)
# and the sandbox, counted through a proxy; prints one line per object.
#   scripts/bench_s3.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CRM_INGEST_REQUIRE_TOOLS=1 cargo test --quiet --test s3_replicas \
    lease_writes_per_object_are_bounded_by_its_creates -- --nocapture 2>&1 |
    grep -E "object of [0-9]+ rows|panicked|FAILED"
