#!/bin/bash
# strict-agent and production end to end (production_tests: each mode's
# sandbox starts with every layer, and each of its rules refuses on its
# own), and the escape suite from inside a sandbox in every mode
# (escape_tests), on a host where production mode can start.
# shellcheck source=tests/system/lib.sh
. "$(dirname "$0")/lib.sh"
run_catch2 production_tests
run_catch2 escape_tests
finish
