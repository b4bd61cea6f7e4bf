#!/bin/bash
# The resource tests (tests/kernel): memory, pids, cpu and tmpfs limits
# against a kernel with every cgroup v2 controller.
# shellcheck source=tests/system/lib.sh
. "$(dirname "$0")/lib.sh"
run_catch2 kernel_tests
finish
