#!/usr/bin/env bash
# icectl's bash completion against the fake control daemon (tests/cli/test_completion.sh): verbs
# and options as icectl has them, device, hardware and key names through the socket (issue 18).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec bash "$here/../cli/test_completion.sh" "${ICE_BUILD:?ICE_BUILD is set by run.sh}/icectl"
