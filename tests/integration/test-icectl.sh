#!/usr/bin/env bash
# icectl end to end against the fake control daemon (tests/cli): every verb, human and --json
# output, exit codes, key files (P4), malformed replies. Part of the integration tier.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec bash "$here/../cli/test_icectl.sh" "${ICE_BUILD:?ICE_BUILD is set by run.sh}/icectl"
